"""A real terminal for tests: tmux at a given size, a command in it, the screen as text.

    with Terminal(80, 24, cwd=tmp_path, env=env) as term:
        term.start(["imgflow", "status"])
        term.wait_for("total", timeout=20)
        lines = term.screen()          # the visible rows and the scrollback, joined wraps

`screen()` joins lines the terminal wrapped (tmux's -J), so a line longer than the width is
one that wrapped; `wrapped()` lists them.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import time
import uuid
from pathlib import Path


class Terminal:
    """One tmux server and session of `width` x `height`, its own socket."""

    def __init__(self, width: int, height: int, cwd: Path, env: dict[str, str]) -> None:
        self.width, self.height, self.cwd, self.env = width, height, cwd, env
        self.socket = f"imgflow-test-{uuid.uuid4().hex[:8]}"

    def _tmux(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, "-f", "/dev/null", *args],
            capture_output=True, text=True, timeout=10, check=True,
        )  # fmt: skip
        return done.stdout

    def __enter__(self) -> Terminal:
        return self

    def start(self, argv: list[str]) -> None:
        """Run `argv` in a new session; the pane stays after it ends (remain-on-exit)."""
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env.items())
        # (the shell survives a Ctrl-C to print the exit code; the command gets SIGINT)
        command = (
            f"trap true INT; cd {shlex.quote(str(self.cwd))} && env {exports} {shlex.join(argv)}"
        )
        command += "; echo __exit=$?; sleep 600"
        self._tmux(
            "new-session", "-d", "-s", "t", "-x", str(self.width), "-y", str(self.height),
            "sh", "-c", command,
        )  # fmt: skip
        self._tmux("set-option", "-g", "history-limit", "5000")

    def keys(self, *keys: str) -> None:
        """Type `keys` (tmux key names, e.g. ``C-c``)."""
        self._tmux("send-keys", "-t", "t", *keys)

    def screen(self) -> list[str]:
        """Every line, scrollback included, wrapped lines joined, right-trimmed."""
        text = self._tmux("capture-pane", "-p", "-J", "-S", "-", "-t", "t")
        lines = [line.rstrip() for line in text.splitlines()]
        while lines and not lines[-1]:
            lines.pop()
        return lines

    def wait_for(self, needle: str, timeout: float = 30) -> list[str]:
        """The screen once `needle` (a regular expression) matches a line of it."""
        deadline = time.monotonic() + timeout
        while True:
            lines = self.screen()
            if any(re.search(needle, line) for line in lines):
                return lines
            if time.monotonic() > deadline:
                raise AssertionError(f"{needle!r} not on screen:\n" + "\n".join(lines))
            time.sleep(0.1)

    def exit_code(self, timeout: float = 60) -> int:
        """The command's exit code, once it has ended."""
        for line in self.wait_for("__exit=", timeout):
            if line.startswith("__exit="):
                return int(line.removeprefix("__exit="))
        raise AssertionError("no exit code")

    def wrapped(self) -> list[str]:
        """The lines that did not fit the width (the terminal wrapped them)."""
        return [line for line in self.screen() if len(line) > self.width]

    def __exit__(self, *exc: object) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=10)


def term_env(base: dict[str, str]) -> dict[str, str]:
    """`base` for a program in tmux: a real TERM, no COLUMNS/LINES to override the pane."""
    env = {k: v for k, v in base.items() if k not in ("COLUMNS", "LINES")}
    env["TERM"] = "xterm-256color"
    env.setdefault("PATH", os.environ.get("PATH", ""))
    return env
