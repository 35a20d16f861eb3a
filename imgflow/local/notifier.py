"""Local failure notices: `runs/<run-id>/failures.json` and an optional command."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path


def write_failures(folder: int, name: str, messages: Iterable[str], tmp: int) -> int:
    """Write the JSON array of failure messages atomically (streamed); return their count.

    `folder` and `tmp` are folder descriptors (imgflow/local/safefs.py): the partial file
    is written in the run's temporary folder, where a run killed meanwhile leaves it to be
    swept, then renamed to `name` in `folder`, replacing a link there, never following it.
    """
    part = name + ".part"
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
    count = 0
    try:
        with open(os.open(part, flags, 0o644, dir_fd=tmp), "w", encoding="utf-8") as out:
            for piece in _json_pieces(messages):
                out.write(piece)
                count += 1
            out.flush()
            os.fsync(out.fileno())
        os.rename(part, name, src_dir_fd=tmp, dst_dir_fd=folder)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(part, dir_fd=tmp)  # a full disk: give back what the part file took
        raise
    return count - 2  # the array's opening and its end are pieces too


def failures_json(messages: Iterable[str]) -> bytes:
    """The failures file's bytes, made in memory (when it cannot be written)."""
    return "".join(_json_pieces(messages)).encode()


def _json_pieces(messages: Iterable[str]) -> Iterator[str]:
    """The JSON array of `messages`, one piece per message after its opening."""
    yield "["
    count = 0
    for message in messages:
        yield ("," if count else "") + "\n  " + json.dumps(message)
        count += 1
    yield "\n]\n" if count else "]\n"


def run_notify_command(
    command: str | Sequence[str],
    failures: Path | bytes,
    run_id: str,
    timeout: float = 60,
    *,
    shell: bool = False,
) -> str:
    """Pipe the failures file to `command`; an empty string on success, else the problem.

    A string is split like a shell would split it (shlex) and run without a shell, unless
    `shell` is true: then it runs under ``/bin/sh -c``, so pipes and redirections work. A
    list is the program and its arguments, run as they are. `failures` is the failures
    file, or its bytes when it could not be written (IMGFLOW_FAILURES_FILE is then empty).
    """
    args: list[str] | str
    if isinstance(command, str) and shell:
        args = command
    elif isinstance(command, str):
        try:
            args = shlex.split(command)
        except ValueError as exc:
            return f"notify.command cannot be parsed: {exc}"
    else:
        args = list(command)
    if not args:
        return "notify.command is empty"
    where = "" if isinstance(failures, bytes) else str(failures)
    env = {**os.environ, "IMGFLOW_RUN_ID": run_id, "IMGFLOW_FAILURES_FILE": where}
    try:
        with contextlib.ExitStack() as stack:
            stdin = (
                None if isinstance(failures, bytes) else stack.enter_context(failures.open("rb"))
            )
            done = subprocess.run(
                args,
                stdin=stdin,
                input=failures if isinstance(failures, bytes) else None,
                capture_output=True,
                timeout=timeout,
                env=env,
                check=False,
                shell=isinstance(args, str),
            )
    except FileNotFoundError:
        program = args if isinstance(args, str) else args[0]
        return f"notify.command: {program!r} not found"
    except subprocess.TimeoutExpired:
        return f"notify.command did not finish within {timeout:g}s"
    if done.returncode != 0:
        detail = done.stderr.decode(errors="replace").strip().splitlines()
        return f"notify.command exited {done.returncode}" + (f": {detail[-1]}" if detail else "")
    return ""
