"""Help text as the terminal wraps it: the plain formatter, plain metavars.

Typer's own metavars read like types (``<str>``, ``<list[str]>``, ``<int range>``); the
help shows ``TEXT``, ``N``, ``PATH`` or the choices instead, and flags show none.
"""

from __future__ import annotations

from typing import Any

_METAVARS = {"int": "N", "float": "NUMBER", "path": "PATH"}


def plain_metavars(group: Any) -> None:
    """Give every option and argument of `group` and its commands a plain metavar."""
    for command in (group, *getattr(group, "commands", {}).values()):
        for param in command.params:
            if param.param_type_name == "argument":
                # (an argument's name is its metavar; its type is not shown)
                param.display_type_rich = _no_type
                param.metavar = param.metavar or str(param.name).upper()
            elif param.metavar is None and not getattr(param, "is_flag", False):
                param.metavar = _metavar(param)


def _no_type(ctx: Any) -> None:
    return None


def _metavar(param: Any) -> str:
    desc = param.type_descriptor
    if desc.is_choice:
        return "|".join(str(getattr(c, "value", c)) for c in desc.choices or ())
    if desc.is_path:
        return "PATH"
    label = desc.ranged_type_name if desc.is_ranged else param.bare_type()
    return _METAVARS.get(str(label).removeprefix("list[").removesuffix("]"), "TEXT")
