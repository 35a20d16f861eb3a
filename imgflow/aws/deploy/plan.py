"""A deployment plan: one step per resource, saying create, update, no change or delete
(a resource an older deployment made that this one no longer uses), and why."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from imgflow.aws.deploy.state import DeploymentOutputs

Action = Literal["create", "update", "no change", "delete"]


def _nothing() -> None:
    return None


@dataclass(frozen=True)
class Step:
    """What deploy will do to one resource; `apply` makes the mutating calls."""

    key: str
    kind: str
    name: str
    action: Action
    changes: tuple[str, ...] = ()
    apply: Callable[[], None] = field(default=_nothing, compare=False, repr=False)
    ids: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def mutates(self) -> bool:
        """True when running this step calls AWS to change something."""
        return self.action != "no change"

    def to_json(self) -> dict[str, object]:
        """The step as JSON (for `--output json`)."""
        return {
            "resource": self.kind,
            "name": self.name,
            "action": self.action,
            "changes": list(self.changes),
        }


@dataclass(frozen=True)
class Plan:
    """The steps of a deploy, in dependency order, and the outputs it will leave."""

    steps: tuple[Step, ...]
    outputs: DeploymentOutputs
    warnings: tuple[str, ...] = ()

    @property
    def changes(self) -> int:
        """How many steps change something."""
        return sum(1 for step in self.steps if step.mutates)

    def to_json(self) -> dict[str, object]:
        """The plan as JSON."""
        return {
            "steps": [step.to_json() for step in self.steps],
            "outputs": self.outputs.to_json(),
            "warnings": list(self.warnings),
        }


def step(
    key: str,
    kind: str,
    name: str,
    changes: list[str],
    apply: Callable[[], None],
    *,
    exists: bool,
    ids: dict[str, str],
    settings: tuple[str, ...] = (),
) -> Step:
    """A create step when the resource is missing, update when `changes`, else no change.

    `ids` identify the resource in the state file; a create step's `apply` records them
    itself right after the create call, so a later failure cannot lose the resource.
    A create step lists the main `settings` it will set.
    """
    if not exists:
        return Step(key, kind, name, "create", settings, apply, ids)
    if changes:
        return Step(key, kind, name, "update", tuple(changes), apply, ids)
    return Step(key, kind, name, "no change", ids=ids)
