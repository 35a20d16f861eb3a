"""The environment variables deploy sets on all three Lambda functions (one place)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from imgflow.config import Config


def environment(cfg: Config, bucket: str, table: str, topic_arn: str) -> dict[str, str]:
    """IMGFLOW_* variables the handlers read: where to store, how to fetch, whom to notify."""
    return {
        "IMGFLOW_DEPLOYMENT": cfg.deployment,
        "IMGFLOW_BUCKET": bucket,
        "IMGFLOW_TABLE": table,
        "IMGFLOW_TOPIC_ARN": topic_arn,
        "IMGFLOW_PREFIX": cfg.storage.prefix,
        "IMGFLOW_FETCH_SETTINGS": json.dumps(lambda_fetch_settings(cfg), sort_keys=True),
        "IMGFLOW_ALLOW_PRIVATE_TARGETS": "true" if cfg.aws.allow_private_targets else "false",
        "IMGFLOW_INLINE_MAX_MESSAGES": str(cfg.notify.inline_max_messages),
        "IMGFLOW_LAYOUT": cfg.output.layout,
    }


def lambda_fetch_settings(cfg: Config) -> dict[str, object]:
    """fetch.* as each download Lambda applies it.

    Up to job.max_batches download Lambdas run at once (the Map's MaxConcurrency), each
    with its own politeness gate, so each gets fetch.rate / max_batches: together they
    stay within the rate the user set for the host.
    """
    from imgflow.config import engine_fetch

    settings = engine_fetch(cfg).to_json()
    if cfg.fetch.rate is not None:
        settings["rate"] = cfg.fetch.rate / cfg.job.max_batches
    return settings
