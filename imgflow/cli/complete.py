"""Tab completion without loading the app: answered from complete_table.py.

The shell runs `imgflow` with `_IMGFLOW_COMPLETE=complete_<shell>` at every tab. Typer
answers by importing the app and every command's options (about 0.35 s here); this module
answers the same from the table that complete_gen.py writes from the app (shlex and the
table only), in the format of Typer's completion classes for bash, zsh, fish and
PowerShell. What it cannot tell from the table alone (an option before the command, `--`,
joined short options, an unknown word) it leaves to Typer (`answer` returns None).
tests/test_completion.py checks the table against the app and the answers against Typer's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from imgflow.cli.complete_table import COMMANDS, OPTIONS, ROOT, Option

Item = tuple[str, str]  # (value, help)
VARIABLE = "_IMGFLOW_COMPLETE"


def answer(environ: Mapping[str, str]) -> tuple[str | None, int] | None:
    """What to print for `environ` (a line, or nothing) and the exit status, or None when
    Typer must answer (a source script, an unknown shell, a case the table cannot tell)."""
    instruction, _, shell = environ.get(VARIABLE, "").partition("_")
    if instruction != "complete":
        return None
    if shell == "bash":
        words = _split(environ.get("COMP_WORDS", ""))
        try:
            cword = int(environ.get("COMP_CWORD", ""))
        except ValueError:
            return None
        args, incomplete = words[1:cword], (words[cword] if cword < len(words) else "")
    elif shell in ("zsh", "fish"):
        line = environ.get("_TYPER_COMPLETE_ARGS", "")
        args = _split(line)[1:]
        incomplete = ""
        if args and not line.endswith(" "):
            args, incomplete = args[:-1], args[-1]
    elif shell in ("powershell", "pwsh"):
        incomplete = environ.get("_TYPER_COMPLETE_WORD_TO_COMPLETE", "")
        words = _split(environ.get("_TYPER_COMPLETE_ARGS", ""))
        args = words[1:-1] if incomplete else words[1:]
    else:
        return None
    items = completions(args, incomplete)
    if items is None:
        return None
    return _format(shell, items, environ)


def completions(args: Sequence[str], incomplete: str) -> list[Item] | None:
    """What completes `incomplete` after `args` (the words after `imgflow`), or None."""
    args = list(args)
    if incomplete == "=":
        incomplete = ""
    elif "=" in incomplete and incomplete.startswith("-"):
        name, _, incomplete = incomplete.partition("=")
        args.append(name)
    if not args:
        names = [(name, text) for name, text in COMMANDS if name.startswith(incomplete)]
        return names + _names(ROOT, set(), incomplete)
    command, *words = args
    options = OPTIONS.get(command)
    if options is None or "--" in words:
        return None
    given = _given(options, words)
    if given is None:
        return None
    if incomplete.startswith("-"):
        return _names(options, given, incomplete)
    if words and (last := _option(options, words[-1])) is not None and last[2]:
        return [(value, "") for value in last[5] if value.startswith(incomplete)]
    return []  # an argument, or a word after a flag: plain text, nothing to offer


def _names(options: Sequence[Option], given: set[int], incomplete: str) -> list[Item]:
    """The names of the options not given yet (a repeatable one always) that start so."""
    if not incomplete or incomplete[0].isalnum():
        return []
    return [
        (name, text)
        for index, (names, text, _, multiple, hidden, _) in enumerate(options)
        if not hidden and (multiple or index not in given)
        for name in names
        if name.startswith(incomplete)
    ]


def _given(options: Sequence[Option], words: Sequence[str]) -> set[int] | None:
    """Which options `words` set (by index in `options`), or None if unsure."""
    given: set[int] = set()
    waiting = False  # the word is the value of the option before it
    for at, word in enumerate(words):
        if waiting:
            waiting = False
            continue
        if not word.startswith("-") or word == "-":
            continue
        name, equals, _ = word.partition("=")
        found = _option(options, name if word.startswith("--") else word)
        if found is None or (equals and not found[2]):
            return None
        waiting = found[2] and not equals
        if waiting and at == len(words) - 1:
            break  # (its value is still to come: not given yet)
        given.add(options.index(found))
    return given


def _option(options: Sequence[Option], name: str) -> Option | None:
    return next((option for option in options if name in option[0]), None)


def _split(text: str) -> list[str]:
    """Words as shlex splits them, a last unfinished quote or escape kept as it is."""
    import shlex

    lex = shlex.shlex(text, posix=True)
    lex.whitespace_split = True
    lex.commenters = ""
    words: list[str] = []
    try:
        words.extend(lex)
    except ValueError:
        words.append(lex.token)
    return words


def _zsh_escape(text: str) -> str:
    return (
        text.replace('"', '""')
        .replace("'", "''")
        .replace("$", "\\$")
        .replace("`", "\\`")
        .replace(":", r"\\:")
    )


def _format(shell: str, items: list[Item], environ: Mapping[str, str]) -> tuple[str | None, int]:
    if shell == "bash":
        return "\n".join(value for value, _ in items), 0
    if shell == "zsh":
        if not items:
            return "_files", 0
        lines = (
            f'"{_zsh_escape(value)}":"{_zsh_escape(text)}"' if text else f'"{_zsh_escape(value)}"'
            for value, text in items
        )
        return "_arguments '*: :((" + "\n".join(lines) + "))'", 0
    if shell == "fish":
        action = environ.get("_TYPER_COMPLETE_FISH_ACTION", "")
        if action == "is-args":  # (answered by the exit status alone)
            return None, 0 if items else 1
        if action != "get-args" or not items:
            return "", 0
        return "\n".join(_fish(value, text) for value, text in items), 0
    return "\n".join(f"{value}:::{text or ' '}" for value, text in items), 0


def _fish(value: str, text: str) -> str:
    return value + "\t" + re.sub(r"\s", " ", text) if text else value
