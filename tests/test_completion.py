"""Tab completion answers from a table, without loading the app: the table is the app's
(complete_gen.py), the answers are Typer's for every shell, and typer and rich stay out."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.rich_utils
from typer._click.shell_completion import get_completion_class
from typer._completion_classes import completion_init

from imgflow.cli import complete_gen
from imgflow.cli.app import app
from imgflow.cli.complete import VARIABLE, answer
from imgflow.cli.complete_table import COMMANDS, OPTIONS
from imgflow.cli.help import plain_metavars


def test_the_table_is_the_apps() -> None:
    assert complete_gen.render() == complete_gen.TABLE.read_text(), (
        "run: python -m imgflow.cli.complete_gen"
    )


def _lines() -> Iterator[str]:
    """Command lines up to the cursor, as zsh and fish pass them."""
    yield from ("imgflow ", "imgflow r", "imgflow -", "imgflow --v", "imgflow x", "imgflow -h r")
    for command, options in OPTIONS.items():
        yield from (f"imgflow {command} ", f"imgflow {command} -", f"imgflow {command} --")
        yield f"imgflow {command} word "
        yield f"imgflow {command} word -"
        yield f"imgflow {command} -- -"
        for names, _, takes_value, _, _, choices in options:
            first = names[0]
            yield f"imgflow {command} {first} -"
            if takes_value:
                yield f"imgflow {command} {first} "
                yield f"imgflow {command} {first} x -"
                yield f"imgflow {command} {first}=x --"
                if first.startswith("--"):
                    yield f"imgflow {command} {first}="
                for choice in choices:
                    yield f"imgflow {command} {first} {choice[:1]}"
                    yield f"imgflow {command} {first}={choice[:1]}"
    yield "imgflow run --base-url --backend "  # (--backend is --base-url's value)
    yield "imgflow run -c 4 --c"
    yield "imgflow run --concurrency 4 -"
    yield "imgflow run -H 'A: b' -H"
    yield "imgflow run -c4 -"
    yield "imgflow run --force=1 -"
    yield "imgflow report --no-thumbnails --"
    yield "imgflow report --thumbnails --no"
    yield "imgflow status 'a b --"


CASES = sorted(set(_lines()))
IMGFLOW = str(Path(sys.executable).with_name("imgflow"))


@functools.cache
def _group() -> Any:
    completion_init()
    group = typer.main.get_command(app)
    plain_metavars(group)
    return group


def _typer_answer(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> tuple[str, int]:
    """Typer's own answer, in this process (its help text unwrapped, as the table's)."""
    monkeypatch.setattr(typer.rich_utils, "MAX_WIDTH", 10_000)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    group = _group()
    shell = env[VARIABLE].partition("_")[2]
    comp = get_completion_class(shell)(group, {}, "imgflow", VARIABLE)  # type: ignore[misc]
    try:
        return comp.complete() + "\n", 0
    except SystemExit as exit:
        return "", int(exit.code or 0)


def _environ(shell: str, line: str) -> dict[str, str]:
    if shell == "bash":
        words = line.split(" ")
        return {VARIABLE: "complete_bash", "COMP_WORDS": line, "COMP_CWORD": str(len(words) - 1)}
    env = {VARIABLE: f"complete_{shell}", "_TYPER_COMPLETE_ARGS": line}
    if shell == "fish":
        env["_TYPER_COMPLETE_FISH_ACTION"] = "get-args"
    if shell == "powershell":
        env["_TYPER_COMPLETE_WORD_TO_COMPLETE"] = line.rpartition(" ")[2]
    return env


def _same(ours: tuple[str | None, int], theirs: tuple[str, int]) -> bool:
    """Equal outputs (lines in any order: the help option's names come from a set)."""
    text, code = ours
    return code == theirs[1] and _lines_of("" if text is None else text + "\n") == _lines_of(
        theirs[0]
    )


def _lines_of(output: str) -> list[str]:
    """The output's lines, sorted; zsh's items without the `_arguments` around them."""
    output = output.removesuffix("\n")
    if output.startswith(ZSH_HEAD) and output.endswith(ZSH_TAIL):
        output = output.removeprefix(ZSH_HEAD).removesuffix(ZSH_TAIL)
    return sorted(output.split("\n"))


ZSH_HEAD, ZSH_TAIL = "_arguments '*: :((", "))'"


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish", "powershell"])
def test_the_answers_are_typers(shell: str, monkeypatch: pytest.MonkeyPatch) -> None:
    answered = 0
    for line in CASES:
        env = _environ(shell, line)
        ours = answer(env)
        if ours is None:  # (left to Typer: an option before the command, --, -c4)
            continue
        answered += 1
        with monkeypatch.context() as patch:
            theirs = _typer_answer(env, patch)
        assert _same(ours, theirs), (line, ours, theirs)
    assert answered > 0.9 * len(CASES)


def test_fish_asks_whether_to_offer_files(monkeypatch: pytest.MonkeyPatch) -> None:
    for line in ("imgflow run --backend ", "imgflow run --paths-file ", "imgflow st"):
        env = _environ("fish", line) | {"_TYPER_COMPLETE_FISH_ACTION": "is-args"}
        with monkeypatch.context() as patch:
            assert answer(env) == (None, _typer_answer(env, patch)[1]), line


def test_what_the_table_cannot_tell_is_left_to_typer() -> None:
    for line in ("imgflow -V r", "imgflow nosuch -", "imgflow run -c4 -", "imgflow run -- -"):
        assert answer(_environ("bash", line)) is None, line
    assert answer({VARIABLE: "source_bash"}) is None
    assert answer({VARIABLE: "complete_tcsh"}) is None
    assert [name for name, _ in COMMANDS][:3] == ["run", "status", "retry"]


def _process(env: dict[str, str], *code: str) -> subprocess.CompletedProcess[str]:
    """Python running `code`, or without code the console script `imgflow`."""
    command = [sys.executable, "-c", "\n".join(code)] if code else [IMGFLOW]
    return subprocess.run(
        command,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_tab_loads_neither_typer_nor_rich() -> None:
    env = _environ("bash", "imgflow run --conc")
    done = _process(
        env,
        "import os, sys",
        "from imgflow.cli.complete import answer",
        "print(answer(os.environ))",
        "print(sorted(m for m in ('typer', 'rich', 'click', 'httpx') if m in sys.modules))",
    )
    assert done.stdout.splitlines() == ["('--concurrency', 0)", "[]"], done.stderr
    # The console script's entry point answers the same, and leaves what it cannot to Typer.
    tab = _process(env)
    assert (tab.stdout, tab.returncode) == ("--concurrency\n", 0), tab.stderr
    typer_tab = _process(_environ("bash", "imgflow run -fo --conc"))
    assert (typer_tab.stdout, typer_tab.returncode) == ("--concurrency\n", 0), typer_tab.stderr
