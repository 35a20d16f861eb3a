"""What `imgflow run` says about its crawl etiquette: the contact, the User-Agent, robots."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from imgflow.config import Config

IGNORED_ROBOTS = (
    "robots.txt was not read this run (--ignore-robots: only for sites you own or may"
    " crawl); opt-out headers still apply"
)


class _Warnings(logging.Handler):
    """The engine's etiquette warnings (a Crawl-delay capped), as imgflow's warnings."""

    def emit(self, record: logging.LogRecord) -> None:
        from imgflow.ui.console import warning

        warning(record.getMessage())


def listen_to_engine() -> None:
    """Show the engine's etiquette warnings (a Crawl-delay capped) as they happen."""
    log = logging.getLogger("imgflow.etiquette")
    if not any(isinstance(h, _Warnings) for h in log.handlers):
        log.addHandler(_Warnings())
        log.propagate = False


def announce(cfg: Config, ignore_robots: bool) -> None:
    """Once per run, after its summary: no contact set, a User-Agent posing as a browser,
    robots.txt ignored (so a run's bad input is still one line, and no warning precedes
    it)."""
    from imgflow.engine.user_agent import poses_as_browser
    from imgflow.ui.console import warning

    user_agent = cfg.fetch.user_agent
    if not user_agent and cfg.etiquette.contact is None:
        warning(
            "etiquette.contact is not set: site owners cannot tell whom to ask about this"
            " crawl (set a URL or e-mail address; it goes into the User-Agent)"
        )
    if user_agent and poses_as_browser(user_agent):
        warning(
            f"the User-Agent {user_agent!r} poses as a browser: sites cannot tell it is imgflow"
        )
    if ignore_robots:
        warning(
            "--ignore-robots: robots.txt is not read; use it only for sites you own or may crawl"
        )
