"""A local run's settings, taken from the configuration by the commands that start runs."""

from __future__ import annotations

from imgflow.config import Config
from imgflow.local.settings import RunSettings


def run_settings(cfg: Config) -> RunSettings:
    """What a local run reads of `cfg`: fetching, fsync, tolerated failures, the notify hook."""
    return RunSettings(
        fetch=cfg.fetch,
        fsync=cfg.local.fsync,
        tolerate_failures=cfg.job.tolerate_failures,
        notify_command=cfg.notify.command,
        notify_shell=cfg.notify.shell,
    )
