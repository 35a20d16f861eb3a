"""Make moto's Step Functions interpreter refuse what AWS refuses in a Distributed Map.

moto runs every child of a Distributed Map whatever its input size, and a child that fails
never fails the Map. AWS does both: a child execution whose input is over 256 KiB cannot
start (it fails with States.DataLimitExceeded), and a Map run with more failed children than
it tolerates (none, unless ToleratedFailureCount/Percentage say otherwise) fails the Map
state with States.ExceedToleratedFailureThreshold, which the Map's Catch may handle.

`strict_map()` patches both in, for the duration of the block. `started_inputs()` lists the
sizes of the child inputs that were started, so a test can check none was over a limit.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from typing import Any

from moto.stepfunctions.parser.api import HistoryEventType, MapRunFailedEventDetails
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
    FailureEvent,
    FailureEventException,
)
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import (
    StatesErrorName,
)
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
    StatesErrorNameType,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration import (
    distributed_iteration_component as iteration,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.itemprocessor import (
    distributed_item_processor_worker as worker,
)
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

MAX_INPUT_BYTES = 256 * 1024

_lock = threading.Lock()
_started: list[int] = []


def started_inputs() -> list[int]:
    """Byte sizes of the child inputs started since the block began."""
    with _lock:
        return list(_started)


def _input_bytes(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")).encode())


@contextlib.contextmanager
def strict_map() -> Iterator[None]:
    """Children over 256 KiB cannot start; any failed child fails the Map run."""
    Worker = worker.DistributedItemProcessorWorker
    Component = iteration.DistributedIterationComponent
    eval_job, map_run = Worker._eval_job, Component._map_run

    def checked_eval_job(self: Any, env: Any, job: Any) -> None:
        size = _input_bytes(job.job_input)
        if size > MAX_INPUT_BYTES:  # States.DataLimitExceeded: the child never starts
            record = self._map_run_record
            record.item_counter.total.count()
            record.item_counter.failed.count()
            record.execution_counter.total.count()
            record.execution_counter.failed.count()
            job.job_output = None
            return
        with _lock:
            _started.append(size)
        eval_job(self, env, job)

    def failing_map_run(self: Any, env: Any, eval_input: Any) -> None:
        map_run(self, env, eval_input)
        record = eval_input.map_run_record
        failed = record.item_counter.failed.get()
        total = max(1, record.item_counter.total.get())
        over_count = failed > eval_input.tolerated_failure_count
        over_percent = 100.0 * failed / total > eval_input.tolerated_failure_percentage
        if failed and (over_count and over_percent):
            name = StatesErrorNameType.StatesExceedToleratedFailureThreshold
            cause = "The specified tolerated failure threshold was exceeded"
            raise FailureEventException(
                FailureEvent(
                    env=env,
                    error_name=StatesErrorName(typ=name),
                    event_type=HistoryEventType.MapRunFailed,
                    event_details=EventDetails(
                        mapRunFailedEventDetails=MapRunFailedEventDetails(
                            error=name.to_name(), cause=cause
                        )
                    ),
                )
            )

    with _lock:
        _started.clear()
    Worker._eval_job = checked_eval_job  # type: ignore[method-assign]
    Component._map_run = failing_map_run  # type: ignore[method-assign]
    try:
        yield
    finally:
        Worker._eval_job = eval_job  # type: ignore[method-assign]
        Component._map_run = map_run  # type: ignore[method-assign]
