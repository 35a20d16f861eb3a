"""A deploy plan's words read right for one and for many (a role of 1 statement)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from imgflow.aws.deploy import DeployResult
from imgflow.config import Config


def test_role_settings_count_statements_in_words(
    run_deploy: Callable[..., DeployResult], deploy_cfg: Config, monkeypatch: Any
) -> None:
    import imgflow.aws.deploy.roles as roles

    real = roles.role_step

    def one_statement(ctx: Any, purpose: str, service: str, policy: Any) -> Any:
        if purpose == "submit":  # (a policy of one statement, as a smaller role may have)
            policy = {**policy, "Statement": policy["Statement"][:1]}
        return real(ctx, purpose, service, policy)

    monkeypatch.setattr(roles, "role_step", one_statement)
    plan = run_deploy(deploy_cfg, dry_run=True).plan
    counted = [s for step in plan.steps for s in step.changes if "statement" in s]
    assert counted, [step.changes for step in plan.steps]
    for text in counted:
        count, word = re.fullmatch(r"(\d+) (statements?)", text).groups()  # type: ignore[union-attr]
        assert word == ("statement" if count == "1" else "statements"), text
    assert "1 statement" in counted
