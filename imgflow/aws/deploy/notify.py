"""Plan the SNS failure topic and its email subscriptions."""

from __future__ import annotations

from imgflow.aws.client import optional
from imgflow.aws.deploy.context import Context, pairs_to_dict, tag_pairs
from imgflow.aws.deploy.plan import Step, step

TOPIC = "sns topic"
KMS_KEY = "alias/aws/sns"


def _subscriptions(ctx: Context) -> dict[str, str]:
    """Email address -> subscription ARN ("PendingConfirmation" until confirmed)."""
    sns = ctx.aws.sns()
    found: dict[str, str] = {}
    for page in sns.get_paginator("list_subscriptions_by_topic").paginate(
        TopicArn=ctx.names.topic_arn
    ):
        for sub in page["Subscriptions"]:
            if sub.get("Protocol") == "email":
                found[sub["Endpoint"]] = sub["SubscriptionArn"]
    return found


def topic_step(ctx: Context) -> Step:
    """Create or update the encrypted topic, its tags and its email subscriptions."""
    sns, arn, name = ctx.aws.sns(), ctx.names.topic_arn, ctx.names.topic
    wanted = set(ctx.cfg.notify.emails)
    changes: list[str] = []
    subscribed: dict[str, str] = {}
    with ctx.reading(TOPIC, name):
        found = optional(lambda: sns.get_topic_attributes(TopicArn=arn))
        if found is not None:
            tags = pairs_to_dict(sns.list_tags_for_resource(ResourceArn=arn)["Tags"])
            ctx.check_owned("topic", TOPIC, name, tags)
            if found["Attributes"].get("KmsMasterKeyId") != KMS_KEY:
                changes.append("encryption")
            if ctx.missing_tags(tags):
                changes.append("tags")
            subscribed = _subscriptions(ctx)
    add = sorted(wanted - set(subscribed))
    remove = sorted(e for e in set(subscribed) - wanted if subscribed[e].startswith("arn:"))
    changes += [f"subscribe {e}" for e in add] + [f"unsubscribe {e}" for e in remove]

    def apply() -> None:
        if found is None:
            sns.create_topic(
                Name=name, Attributes={"KmsMasterKeyId": KMS_KEY}, Tags=tag_pairs(ctx.tags)
            )
            ctx.state.remember("topic", name=name, arn=arn)
        if "encryption" in changes:
            sns.set_topic_attributes(
                TopicArn=arn, AttributeName="KmsMasterKeyId", AttributeValue=KMS_KEY
            )
        if "tags" in changes:
            sns.tag_resource(ResourceArn=arn, Tags=tag_pairs(ctx.tags))
        for email in add:
            sns.subscribe(TopicArn=arn, Protocol="email", Endpoint=email)
        for email in remove:
            sns.unsubscribe(SubscriptionArn=subscribed[email])

    ids = {"name": name, "arn": arn}
    settings = ("encrypted", *(f"subscribe {e}" for e in add))
    exists = found is not None
    return step("topic", TOPIC, name, changes, apply, exists=exists, ids=ids, settings=settings)
