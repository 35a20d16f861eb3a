"""Typer's conversion of a command's values, without pydantic where the answer is certain.

Typer (0.29) converts every value a command is given through a pydantic ``TypeAdapter`` it
builds on first use, and importing pydantic alone is about 70 ms of CPU: a fifth of a small
run's start. The values a command line mostly carries (a string; a plain decimal integer
within its bounds; a path; one of a choice's names; repeated strings) convert to a known
answer without it. Anything else, and every value that fails (its message is typer's),
goes to typer's own conversion, built then, as before.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, get_args, get_origin

# What pydantic reads as this number without doubt (no sign, space, "_", exponent or
# leading 0; a float's digits are correctly rounded by both).
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,17}")
_FRACTION = re.compile(r"(0|[1-9][0-9]{0,14})(\.[0-9]{1,15})?")
_UNSURE = object()


def install() -> None:
    """From now on every typer parameter converts its value here first (typer builds each
    parameter's conversion, lazily, with ``typer.core.build_runtime_param``); a typer
    without these internals is left as it is."""
    try:
        import typer.core
        from typer._coercion import RuntimeParam
    except ImportError:  # pragma: no cover (another typer: its own conversion)
        return
    if getattr(typer.core, "build_runtime_param", None) is None:  # pragma: no cover
        return
    plain = _plain_class(RuntimeParam)

    def build(descriptor: Any) -> Any:
        return plain(
            parameter_info=descriptor.parameter_info,
            annotation=descriptor.annotation,
            descriptor=descriptor,
        )

    typer.core.build_runtime_param = build  # type: ignore[attr-defined]


def _plain_class(runtime_param: type[Any]) -> type[Any]:
    @dataclass(frozen=True)
    class Plain(runtime_param):  # type: ignore[misc]
        """A value converted here when the answer is certain, else by typer."""

        descriptor: Any

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            try:
                found = plain_value(self.descriptor, value, param, ctx)
            except Exception:  # (typer's own conversion says what is wrong)
                found = _UNSURE
            if found is not _UNSURE:
                return found
            from typer._coercion import build_runtime_param

            typers = build_runtime_param(self.descriptor)
            param._runtime_param = typers
            return typers._coerce_value(value, param=param, ctx=ctx)

    return Plain


def plain_value(descriptor: Any, value: Any, param: Any, ctx: Any) -> Any:
    """`value` as typer's conversion would give it, or _UNSURE (typer's conversion then)."""
    info = descriptor.parameter_info
    kind = descriptor.annotation
    if info.parser is not None or descriptor.file_annotation is not None:
        return _UNSURE
    if kind is str:
        return value if type(value) is str else _UNSURE
    if kind is int or kind is float:
        digits = _DECIMAL if kind is int else _FRACTION
        if type(value) is str and not info.clamp and digits.fullmatch(value):
            number = kind(value)
            if (info.min is None or number >= info.min) and (
                info.max is None or number <= info.max
            ):
                return number
        return _UNSURE
    if isinstance(kind, type) and issubclass(kind, Enum):
        from typer._param_types import coerce_cli_choice

        return coerce_cli_choice(
            value, choices=list(kind), case_sensitive=info.case_sensitive, ctx=ctx
        )
    if kind is Path and info.path_type is None and type(value) is str:
        from typer._param_types import coerce_cli_path

        # (typer makes the Path with pydantic, then checks it: the same Path, checked)
        return coerce_cli_path(Path(value), info, path_type=Path, param=param, ctx=ctx)
    if get_origin(kind) is list and get_args(kind) == (str,) and isinstance(value, tuple | list):
        return list(value) if all(type(item) is str for item in value) else _UNSURE
    return _UNSURE
