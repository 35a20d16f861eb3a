"""Plan the IAM roles: one per Lambda and one for the state machine; delete former ones.

A role an older deployment made and this one no longer uses (infra/names.py
FORMER_ROLE_PURPOSES: the API's former integration role) gets a delete step, planned only
when it exists and is ours (tagged, or in the state file). IAM refuses DeleteRole while the
role has inline or attached managed policies (DeleteConflict), so `delete_role` removes
those first; a deploy stopped between the two finds the role without policies and deletes it.
"""

from __future__ import annotations

import json
from typing import Any

from imgflow.aws.client import optional
from imgflow.aws.deploy.context import Context, pairs_to_dict, tag_pairs
from imgflow.aws.deploy.plan import Step, step
from infra.iam import Policy, role_policies, trust_policy
from infra.names import FORMER_ROLE_PURPOSES

ROLE = "iam role"
POLICY_NAME = "imgflow"


def _document(value: Any) -> Any:
    """A policy document as AWS returns it (dict or URL-decoded JSON text) -> dict."""
    return json.loads(value) if isinstance(value, str) else value


def role_step(ctx: Context, purpose: str, service: str, policy: Policy) -> Step:
    """Create or update the role for `purpose`: trust, inline policy, tags."""
    iam, name = ctx.aws.iam(), ctx.names.role(purpose)
    key = f"role:{purpose}"
    changes: list[str] = []
    trust = trust_policy(service, ctx.names)
    with ctx.reading(ROLE, name):
        found = optional(lambda: iam.get_role(RoleName=name))
        if found is not None:
            tags = pairs_to_dict(iam.list_role_tags(RoleName=name)["Tags"])
            ctx.check_owned(key, ROLE, name, tags)
            if _document(found["Role"]["AssumeRolePolicyDocument"]) != trust_policy(
                service, ctx.names
            ):
                changes.append("trust policy")
            inline = optional(lambda: iam.get_role_policy(RoleName=name, PolicyName=POLICY_NAME))
            if inline is None or _document(inline["PolicyDocument"]) != policy:
                changes.append("permissions")
            if ctx.missing_tags(tags):
                changes.append("tags")

    def apply() -> None:
        if found is None:
            iam.create_role(
                RoleName=name,
                AssumeRolePolicyDocument=json.dumps(trust),
                Description=f"imgflow {ctx.cfg.deployment}: {purpose}",
                Tags=tag_pairs(ctx.tags),
            )
            ctx.state.remember(key, name=name, arn=ctx.names.role_arn(purpose))
        if "trust policy" in changes:
            iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(trust))
        if found is None or "permissions" in changes:
            iam.put_role_policy(
                RoleName=name, PolicyName=POLICY_NAME, PolicyDocument=json.dumps(policy)
            )
        if "tags" in changes:
            iam.tag_role(RoleName=name, Tags=tag_pairs(ctx.tags))

    ids = {"name": name, "arn": ctx.names.role_arn(purpose)}
    count = len(policy["Statement"])
    statements = f"{count} statement" + ("" if count == 1 else "s")
    settings = (f"trusts {service.split('.')[0]}", statements)
    exists = found is not None
    return step(key, ROLE, name, changes, apply, exists=exists, ids=ids, settings=settings)


def role_steps(ctx: Context) -> list[Step]:
    """A step for every role of the deployment."""
    policies = role_policies(
        ctx.names,
        ctx.cfg.storage.prefix,
        logging=ctx.cfg.aws.sfn_log_level != "OFF",
        xray=ctx.cfg.aws.xray,
        shards=ctx.cfg.output.layout != "files",
    )
    return [role_step(ctx, purpose, svc, policy) for purpose, (svc, policy) in policies.items()]


def delete_role(ctx: Context, name: str) -> None:
    """Delete role `name`: its inline policies and attached managed policies first, as IAM
    refuses DeleteRole (DeleteConflict) while it has any."""
    iam = ctx.aws.iam()
    for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]:
        iam.delete_role_policy(RoleName=name, PolicyName=policy)
    for attached in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
        iam.detach_role_policy(RoleName=name, PolicyArn=attached["PolicyArn"])
    iam.delete_role(RoleName=name)


def former_role_step(ctx: Context, purpose: str) -> Step | None:
    """A delete step for the former role `purpose`, when it still exists and is ours."""
    iam, name, key = ctx.aws.iam(), ctx.names.role(purpose), f"role:{purpose}"
    with ctx.reading(ROLE, name):
        if optional(lambda: iam.get_role(RoleName=name)) is None:
            return None
        tags = pairs_to_dict(iam.list_role_tags(RoleName=name)["Tags"])
    if ctx.missing_tags(tags) and key not in ctx.state.resources:
        return None  # a role of that name someone else made: not ours to delete

    def apply() -> None:
        delete_role(ctx, name)
        ctx.state.forget(key)

    return Step(key, ROLE, name, "delete", ("no longer used",), apply)


def former_role_steps(ctx: Context) -> list[Step]:
    """A delete step for every former role of the deployment that still exists and is ours."""
    steps = (former_role_step(ctx, purpose) for purpose in FORMER_ROLE_PURPOSES)
    return [s for s in steps if s is not None]
