"""Each screen in a real terminal (tmux) of 80x24 and of 200x50: nothing wraps, run ids and
done/total are whole, option names are never cut, the next command is printed."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from support.cli_run import cli_env
from support.tmux import Terminal, term_env

SIZES = [(80, 24), (200, 50)]
RUN_ID = re.compile(r"\b\d{8}-\d{6}-[0-9a-f]{6}\b")
COMMANDS = ["run", "status", "retry", "report", "check", "serve", "demo", "deploy", "teardown"]
IMGFLOW = [sys.executable, "-m", "imgflow.cli"]


def _terminal(tmp_path: Path, width: int, height: int) -> Terminal:
    env = term_env(cli_env(tmp_path))
    env.update({"IMGFLOW_FETCH_RETRIES": "0", "IMGFLOW_FETCH_TIMEOUT": "5"})
    return Terminal(width, height, tmp_path, env)


def _no_wraps(term: Terminal) -> None:
    assert term.wrapped() == [], "\n".join(term.screen())
    assert not [line for line in term.screen() if "…" in line], "\n".join(term.screen())


@pytest.mark.parametrize(("width", "height"), SIZES)
@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_fits_and_names_every_option(
    tmp_path: Path, command: str | None, width: int, height: int
) -> None:
    import typer

    from imgflow.cli.app import app
    from imgflow.cli.help import plain_metavars

    group = typer.main.get_command(app)
    plain_metavars(group)
    chosen = group if command is None else group.commands[command]  # type: ignore[attr-defined]
    names = [name for p in chosen.params for name in getattr(p, "opts", []) if name.startswith("-")]
    with _terminal(tmp_path, width, height) as term:
        term.start([*IMGFLOW, *([command] if command else []), "--help"])
        assert term.exit_code(30) == 0
        _no_wraps(term)
        text = "\n".join(term.screen())
        for name in names:
            assert re.search(re.escape(name) + r"\b", text), name
        assert not re.search(r"<(str|int|bool|float|path|list)", text), text
        assert "..." not in text.split("Commands:")[-1] or command is not None
