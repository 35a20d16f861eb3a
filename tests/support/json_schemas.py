"""The JSON schemas of imgflow's `--output json` documents (tests/schemas/, one a command)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SCHEMAS = Path(__file__).parent.parent / "schemas"


def validate(document: Any, schema: str) -> Any:
    """`document`, after checking it against tests/schemas/<schema>.json."""
    validator = jsonschema.Draft202012Validator(_schema(f"{schema}.json"), registry=_registry())
    validator.validate(document)
    return document


@cache
def _schema(name: str) -> Any:
    return json.loads((SCHEMAS / name).read_text())


@cache
def _registry() -> Registry[Any]:
    """tests/schemas/, each schema by its file name (for "$ref": "common.json#...")."""
    return Registry().with_resources(
        (path.name, Resource.from_contents(_schema(path.name), DRAFT202012))
        for path in SCHEMAS.glob("*.json")
    )
