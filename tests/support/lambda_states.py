"""Lambda's function states on moto, which reports every function Active and updated at once.

AWS answers CreateFunction while the function is ``Pending`` and an update while its
``LastUpdateStatus`` is ``InProgress``; meanwhile it refuses invocations (Pending) and
further updates (Pending or InProgress) with ``ResourceConflictException`` (HTTP 409).
`LambdaStates` does the same on every botocore client made while it is installed (the
deployer's, the handlers', and moto's Step Functions interpreter's): botocore event
handlers rewrite GetFunction / GetFunctionConfiguration answers for ``polls`` polls after
a create or an update, and answer a refused call with AWS's error instead of sending it.

botocore's waiters sleep between polls (1 s for Lambda's): while installed, their sleep
returns at once (counted in ``waiter_sleeps``).
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import botocore.handlers
import botocore.waiter
from botocore.awsrequest import AWSResponse

CONFLICT = "ResourceConflictException"


def function_name(value: str) -> str:
    """A function's name from its name, ARN or partial ARN (with or without a qualifier)."""
    if ":function:" in value:
        value = value.split(":function:", 1)[1]
    return value.split(":", 1)[0]


class _Sleepless:
    """botocore.waiter's `time`, with a sleep that only counts."""

    def __init__(self, states: LambdaStates) -> None:
        self._states = states

    def sleep(self, seconds: float) -> None:
        with self._states.lock:
            self._states.waiter_sleeps += 1

    def __getattr__(self, name: str) -> Any:
        import time

        return getattr(time, name)


@dataclass
class LambdaStates:
    """Pending after create, InProgress after an update, for `polls` GetFunction polls."""

    polls: int = 3
    pending: dict[str, int] = field(default_factory=dict)
    updating: dict[str, int] = field(default_factory=dict)
    refused: Counter[str] = field(default_factory=Counter)
    waiter_sleeps: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    # --- event handlers -----------------------------------------------------------------

    def _created(self, parsed: dict[str, Any], **_: Any) -> None:
        if "FunctionName" in parsed:
            with self.lock:
                self.pending[parsed["FunctionName"]] = self.polls
            self._report(parsed["FunctionName"], parsed, count=False)

    def _updated(self, parsed: dict[str, Any], **_: Any) -> None:
        if "FunctionName" in parsed:
            with self.lock:
                self.updating[parsed["FunctionName"]] = self.polls
            self._report(parsed["FunctionName"], parsed, count=False)

    def _polled(self, parsed: dict[str, Any], **_: Any) -> None:
        config = parsed.get("Configuration", parsed)
        if "FunctionName" in config:
            self._report(config["FunctionName"], config, count=True)

    def _report(self, name: str, config: dict[str, Any], *, count: bool) -> None:
        """Rewrite `config` as AWS would report it now; a poll brings the end closer."""
        with self.lock:
            if self.pending.get(name, 0) > 0:
                config.update(State="Pending", StateReason="The function is being created.")
                config.update(StateReasonCode="Creating", LastUpdateStatus="InProgress")
                self.pending[name] -= count
            elif self.updating.get(name, 0) > 0:
                config.update(State="Active", LastUpdateStatus="InProgress")
                config.update(LastUpdateStatusReason="The function is being updated.")
                self.updating[name] -= count

    def _refuse(self, operation: str, params: dict[str, Any]) -> tuple[AWSResponse, Any] | None:
        name = function_name(str(params.get("FunctionName", "")))
        with self.lock:
            is_pending = self.pending.get(name, 0) > 0
            is_updating = self.updating.get(name, 0) > 0
        if is_pending:
            message = (
                f"The operation cannot be performed at this time. The function {name} is "
                "currently in the following state: Pending"
            )
        elif is_updating and operation != "Invoke":
            message = (
                f"The operation cannot be performed at this time. An update is in progress "
                f"for resource: arn:aws:lambda:function:{name}"
            )
        else:
            return None
        with self.lock:
            self.refused[operation] += 1
        parsed = {
            "Error": {"Code": CONFLICT, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": 409},
        }
        return AWSResponse("https://lambda.amazonaws.com", 409, {}, None), parsed

    def _before(self, model: Any, params: dict[str, Any], **_: Any) -> Any:
        # `params` is the serialized request: Lambda names the function in the URL path.
        return self._refuse(model.name, {"FunctionName": _name_in_path(params)})

    def handlers(self) -> list[tuple[str, Any]]:
        """(event, handler) pairs for botocore's BUILTIN_HANDLERS."""
        return [
            ("after-call.lambda.CreateFunction", self._created),
            ("after-call.lambda.UpdateFunctionCode", self._updated),
            ("after-call.lambda.UpdateFunctionConfiguration", self._updated),
            ("after-call.lambda.GetFunction", self._polled),
            ("after-call.lambda.GetFunctionConfiguration", self._polled),
            ("before-call.lambda.Invoke", self._before),
            ("before-call.lambda.UpdateFunctionCode", self._before),
            ("before-call.lambda.UpdateFunctionConfiguration", self._before),
        ]

    @contextlib.contextmanager
    def installed(self) -> Iterator[LambdaStates]:
        """Active for every botocore session created inside the block."""
        added = self.handlers()
        botocore.handlers.BUILTIN_HANDLERS.extend(added)
        original_time = botocore.waiter.time
        botocore.waiter.time = _Sleepless(self)  # type: ignore[assignment]
        try:
            yield self
        finally:
            botocore.waiter.time = original_time
            for pair in added:
                botocore.handlers.BUILTIN_HANDLERS.remove(pair)


def _name_in_path(request: dict[str, Any]) -> str:
    """The function a serialized Lambda request names (``/2015-03-31/functions/<name>/...``)."""
    path = str(request.get("url_path", ""))
    if "/functions/" not in path:
        return ""
    return function_name(unquote(path.split("/functions/", 1)[1].split("/", 1)[0]))
