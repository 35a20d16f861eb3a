"""The deployment state file `.imgflow/deployed/<name>.json` and the outputs it records.

Deploy saves it after every step, so a deploy that fails midway still knows what it made.
The job driver finds a deployment with ``load_outputs(cfg)``; when the file is lost,
``imgflow.aws.deploy.discover`` finds the tagged resources instead.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from imgflow.config import Config

STATE_VERSION = 1


@dataclass(frozen=True)
class DeploymentOutputs:
    """What a deployment made and where: everything `imgflow run` needs to use it."""

    deployment: str
    region: str
    endpoint_url: str | None
    account: str
    bucket: str
    table: str
    topic_arn: str
    state_machine_arn: str
    api_id: str | None
    api_url: str | None
    functions: dict[str, str] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The outputs as JSON."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DeploymentOutputs:
        """Outputs written by `to_json`."""
        return cls(**data)


@dataclass
class DeployState:
    """What deploy has made so far (resource key -> identifiers), saved after every step."""

    path: Path
    deployment: str
    resources: dict[str, dict[str, str]] = field(default_factory=dict)
    outputs: DeploymentOutputs | None = None

    def remember(self, key: str, **ids: str) -> None:
        """Record that resource `key` exists (with `ids`) and save at once."""
        self.resources[key] = {**self.resources.get(key, {}), **ids}
        self.save()

    def forget(self, key: str) -> None:
        """Record that resource `key` is gone and save at once."""
        if self.resources.pop(key, None) is not None:
            self.save()

    def save(self) -> None:
        """Write the file atomically (a temporary file renamed over the old one)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "version": STATE_VERSION,
            "deployment": self.deployment,
            "resources": self.resources,
            "outputs": self.outputs.to_json() if self.outputs else None,
        }
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, self.path)

    def delete(self) -> None:
        """Remove the file (after a complete teardown)."""
        self.path.unlink(missing_ok=True)


def state_path(cfg: Config) -> Path:
    """Where the state file of `cfg.deployment` lives."""
    return Path(cfg.aws.state_dir) / f"{cfg.deployment}.json"


def load_state(cfg: Config) -> DeployState:
    """The saved state of `cfg.deployment` (empty when there is no file or it is unreadable)."""
    path = state_path(cfg)
    state = DeployState(path, cfg.deployment)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return state
    if not isinstance(data, dict) or data.get("deployment") != cfg.deployment:
        return state
    state.resources = {k: dict(v) for k, v in (data.get("resources") or {}).items()}
    if data.get("outputs"):
        state.outputs = DeploymentOutputs.from_json(data["outputs"])
    return state


def load_outputs(cfg: Config) -> DeploymentOutputs | None:
    """The outputs of the last complete deploy of `cfg.deployment`, or None."""
    return load_state(cfg).outputs
