"""What every resource planner needs: config, clients, names, state, tags and a sleep."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from imgflow.aws.client import Aws, AwsError, aws_errors
from imgflow.aws.deploy.state import DeployState
from imgflow.errors import DeployError
from infra.names import TAG_KEY, Names

if TYPE_CHECKING:
    from imgflow.config import Config

T = TypeVar("T")

# IAM changes take seconds to reach Lambda and Step Functions: retry this long.
IAM_RETRY_DELAYS = (1.0, 2.0, 3.0, 5.0, 5.0, 8.0, 10.0)


class DefinitionBuilder(Protocol):
    """`infra.statemachine.definition`: the state machine definition from ARNs."""

    def __call__(
        self,
        *,
        plan_arn: str,
        download_arn: str,
        consolidate_arn: str,
        topic_arn: str,
        bucket: str,
        max_batches: int,
    ) -> dict[str, Any]: ...


HINTS = {
    "AccessDenied": "check that your credentials (--profile) may manage this resource",
    "AccessDeniedException": "check that your credentials (--profile) may manage this resource",
    "BucketAlreadyExists": "the bucket name is taken; use another deployment name",
    "403": "the name may belong to another account, or your credentials may not read it",
    "NoCredentials": "set AWS_PROFILE or pass --profile",
    "EndpointConnectionError": "check --region and aws.endpoint_url",
    "Throttling": "wait a minute and run `imgflow deploy` again",
    "ThrottlingException": "wait a minute and run `imgflow deploy` again",
    "LimitExceeded": "raise the account limit or remove unused resources, then deploy again",
    "LimitExceededException": "raise the account limit or remove unused resources",
}
DEFAULT_HINT = "fix the cause and run `imgflow deploy` again; it resumes where it stopped"


def deploy_error(kind: str, name: str, exc: AwsError, hint: str = "") -> DeployError:
    """One line naming the resource, the failed call, the AWS error code and what to try."""
    hint = hint or HINTS.get(exc.code, DEFAULT_HINT)
    message = exc.aws_message.strip().rstrip(".")
    return DeployError(f"{kind} {name}: {exc.call} failed with {exc.code}: {message}. {hint}")


def tag_pairs(tags: dict[str, str], key: str = "Key", value: str = "Value") -> list[Any]:
    """{k: v} as [{"Key": k, "Value": v}] (the shape most AWS services use)."""
    return [{key: k, value: v} for k, v in sorted(tags.items())]


def pairs_to_dict(pairs: list[Any], key: str = "Key", value: str = "Value") -> dict[str, str]:
    """[{"Key": k, "Value": v}] as {k: v}."""
    return {str(p[key]): str(p[value]) for p in pairs}


@dataclass
class Context:
    """One deploy (or teardown) of `cfg.deployment` through `aws`."""

    cfg: Config
    aws: Aws
    names: Names
    state: DeployState
    sleep: Callable[[float], None]

    @property
    def tags(self) -> dict[str, str]:
        """The tags every resource carries."""
        return {TAG_KEY: self.cfg.deployment}

    def missing_tags(self, actual: dict[str, str]) -> bool:
        """True when `actual` lacks one of our tags."""
        return any(actual.get(k) != v for k, v in self.tags.items())

    def check_owned(self, key: str, kind: str, name: str, actual: dict[str, str]) -> None:
        """Refuse to touch an existing resource that is neither tagged ours nor in our state."""
        if self.missing_tags(actual) and key not in self.state.resources:
            raise DeployError(
                f"{kind} {name}: exists but is not tagged {TAG_KEY}={self.cfg.deployment}; "
                "it may belong to something else: choose another deployment name, or tag it "
                "to let imgflow adopt it"
            )

    @contextmanager
    def reading(self, kind: str, name: str) -> Iterator[None]:
        """Turn an AWS failure while looking at a resource into a DeployError."""
        try:
            with aws_errors(f"{kind} {name}"):
                yield
        except AwsError as exc:
            if type(exc) is not AwsError:  # NotFoundError is for the caller
                raise
            raise deploy_error(kind, name, exc) from None

    def retry_iam(self, call: Callable[[], T], is_propagation: Callable[[AwsError], bool]) -> T:
        """`call()`, retried while a new IAM role has not yet reached the calling service."""
        for delay in (*IAM_RETRY_DELAYS, None):
            try:
                with aws_errors("iam propagation"):
                    return call()
            except AwsError as exc:
                if delay is None or not is_propagation(exc):
                    raise
                self.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover
