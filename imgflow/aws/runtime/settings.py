"""The download pipeline's settings, read from the Lambda environment deploy sets."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass

from imgflow.engine.settings import FetchConfig
from imgflow.errors import ConfigError

DEFAULT_INLINE_MAX_MESSAGES = 50
AWS_LAYOUTS = ("files", "webdataset")  # output.layout on aws (parquet: local only)


@dataclass(frozen=True)
class LambdaSettings:
    """What the handlers need to know about their deployment."""

    bucket: str
    table: str
    topic_arn: str
    prefix: str
    fetch: FetchConfig
    allow_private_targets: bool
    inline_max_messages: int
    layout: str = "files"  # files: an object per image; webdataset: a shard per batch

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LambdaSettings:
        """Settings from IMGFLOW_* variables (ConfigError names a missing one)."""
        env = os.environ if env is None else env

        def need(name: str) -> str:
            value = env.get(name)
            if not value:
                raise ConfigError(f"{name}: not set in the function's environment")
            return value

        fetch = env.get("IMGFLOW_FETCH_SETTINGS")
        layout = env.get("IMGFLOW_LAYOUT") or "files"
        if layout not in AWS_LAYOUTS:
            raise ConfigError(f"IMGFLOW_LAYOUT: expected one of {', '.join(AWS_LAYOUTS)}")
        return cls(
            bucket=need("IMGFLOW_BUCKET"),
            table=need("IMGFLOW_TABLE"),
            topic_arn=env.get("IMGFLOW_TOPIC_ARN", ""),
            prefix=env.get("IMGFLOW_PREFIX", "images/"),
            fetch=FetchConfig.from_json(json.loads(fetch)) if fetch else FetchConfig(),
            allow_private_targets=env.get("IMGFLOW_ALLOW_PRIVATE_TARGETS", "").lower() == "true",
            inline_max_messages=int(
                env.get("IMGFLOW_INLINE_MAX_MESSAGES") or DEFAULT_INLINE_MAX_MESSAGES
            ),
            layout=layout,
        )
