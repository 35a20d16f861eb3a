"""Write complete_table.py from the Typer app: `python -m imgflow.cli.complete_gen`.

Run it after a command or an option changes; tests/test_completion.py fails while the table
and the app disagree. Every entry is what Typer's own completion answers for the app:
command names and short help, option names and help (as Typer shows it), which options
take a value and the values a choice offers. (Keep square brackets out of help texts:
Typer's completion reads them as rich markup and drops them.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

TABLE = Path(__file__).with_name("complete_table.py")

HEADER = '''# ruff: noqa: E501
"""The command line's commands and options for tab completion (written by complete_gen.py).

Generated from the Typer app by `python -m imgflow.cli.complete_gen`; do not edit.
Each option: (names, help, takes a value, may repeat, hidden, the values it offers).
"""

from __future__ import annotations

Option = tuple[tuple[str, ...], str, bool, bool, bool, tuple[str, ...]]

# One entry a line (ruff format would spread each over several).
# fmt: off
'''


def _completer() -> Any:
    import typer
    from typer._completion_classes import BashComplete, completion_init

    from imgflow.cli.app import app
    from imgflow.cli.help import plain_metavars

    completion_init()
    group = typer.main.get_command(app)
    plain_metavars(group)
    return group, BashComplete(group, {}, "imgflow", "_IMGFLOW_COMPLETE")


def _options(command: Any, completer: Any, prefix: list[str]) -> list[Any]:
    """`command`'s options as table entries, in the order completion lists them."""
    from typer._click.core import Context

    helps = {item.value: item.help or "" for item in completer.get_completions(prefix, "-")}
    entries: list[Any] = []
    for param in command.get_params(Context(command)):
        if param.param_type_name == "argument":
            # An argument completes nothing (plain text): the table has no place for more.
            for incomplete in ("", "a", "x"):
                if completer.get_completions(prefix, incomplete):
                    raise SystemExit(f"{param.name}: an argument that completes is not supported")
            continue
        if param.nargs != 1:
            raise SystemExit(f"{param.name}: nargs={param.nargs} is not supported")
        names = (*param.opts, *param.secondary_opts)
        if param.name == "help":  # (its names come from a set: their order varies by run)
            names = tuple(sorted(names, key=len))
        takes_value = not (param.is_flag or param.count)
        choices: tuple[str, ...] = ()
        if takes_value:
            offered = completer.get_completions([*prefix, names[0]], "")
            choices = tuple(item.value for item in offered)
        shown = [name for name in names if name in helps]
        help_text = helps[shown[0]] if shown else (param.help or "")
        entries.append(
            (
                names,
                _shown(help_text),
                takes_value,
                bool(param.multiple),
                bool(param.hidden),
                choices,
            )
        )
    return entries


def _shown(text: str) -> str:
    """Help as Typer's completion shows it: rich markup rendered (``[x]`` is a style tag to
    rich, so it is dropped), not wrapped."""
    import typer.rich_utils

    typer.rich_utils.MAX_WIDTH = 10_000
    return str(typer.rich_utils.rich_render_text(text)) if text else text


def render() -> str:
    """The table module's text for the app as it is."""
    group, completer = _completer()
    items = completer.get_completions([], "")
    commands = [(item.value, _shown(item.help or "")) for item in items]
    options = {
        name: tuple(_options(group.commands[name], completer, [name])) for name, _ in commands
    }
    lines = [HEADER]
    lines.append(_block("COMMANDS: tuple[tuple[str, str], ...] = (", commands, ")", 1))
    lines.append(_block("ROOT: tuple[Option, ...] = (", _options(group, completer, []), ")", 1))
    lines.append("OPTIONS: dict[str, tuple[Option, ...]] = {")
    for name, entries in options.items():
        lines.append(_block(f"    {_literal(name)}: (", entries, "    ),", 2))
    lines.append("}\n")
    formatted = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--stdin-filename", str(TABLE), "-"],
        input="\n".join(lines),
        capture_output=True,
        text=True,
        check=True,
    )
    return formatted.stdout


def _block(opening: str, entries: Any, closing: str, depth: int) -> str:
    """`entries` one a line between `opening` and `closing`, indented `depth` levels."""
    pad = "    " * depth
    return "\n".join([opening, *(f"{pad}{_literal(entry)}," for entry in entries), closing])


def _literal(value: Any) -> str:
    """A string, bool or tuple of them as Python source (double quotes, as ruff writes)."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, tuple):
        inner = ", ".join(_literal(item) for item in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    return repr(value)


def main() -> None:
    """Rewrite the table (or, with --check, exit 1 if it is out of date)."""
    text = render()
    if "--check" in sys.argv[1:]:
        sys.exit(0 if TABLE.read_text() == text else 1)
    TABLE.write_text(text)


if __name__ == "__main__":
    main()
