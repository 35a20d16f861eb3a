"""Local failure notices: `runs/<run-id>/failures.json` and an optional command."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path


def write_failures(folder: int, name: str, messages: Iterable[str], tmp: int) -> int:
    """Write the JSON array of failure messages atomically (streamed); return the count.

    `folder` and `tmp` are folder descriptors (imgflow/local/safefs.py): the partial file
    is written in the run's temporary folder, where a run killed meanwhile leaves it to be
    swept, then renamed to `name` in `folder`, replacing a link there, never following it.
    """
    part = name + ".part"
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
    count = 0
    with open(os.open(part, flags, 0o644, dir_fd=tmp), "w", encoding="utf-8") as out:
        out.write("[")
        for message in messages:
            out.write(("," if count else "") + "\n  " + json.dumps(message))
            count += 1
        out.write("\n]\n" if count else "]\n")
        out.flush()
        os.fsync(out.fileno())
    os.rename(part, name, src_dir_fd=tmp, dst_dir_fd=folder)
    return count


def run_notify_command(
    command: str | Sequence[str],
    failures_file: Path,
    run_id: str,
    timeout: float = 60,
    *,
    shell: bool = False,
) -> str:
    """Pipe the failures file to `command`; an empty string on success, else the problem.

    A string is split like a shell would split it (shlex) and run without a shell, unless
    `shell` is true: then it runs under ``/bin/sh -c``, so pipes and redirections work. A
    list is the program and its arguments, run as they are.
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
    env = {**os.environ, "IMGFLOW_RUN_ID": run_id, "IMGFLOW_FAILURES_FILE": str(failures_file)}
    try:
        with failures_file.open("rb") as stdin:
            done = subprocess.run(
                args,
                stdin=stdin,
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
