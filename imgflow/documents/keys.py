"""camelCase keys, the one key style of imgflow's JSON output."""

from __future__ import annotations

from typing import Any


def camel_keys(value: Any) -> Any:
    """`value` with every mapping key in camelCase (``api_url`` -> ``apiUrl``), the one
    key style of imgflow's JSON output (as in the original job body: ``baseUrl``)."""
    if isinstance(value, dict):
        return {_camel(str(k)): camel_keys(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [camel_keys(v) for v in value]
    return value


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)
