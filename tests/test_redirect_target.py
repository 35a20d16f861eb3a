"""A redirect whose target fails: the message names the target, and the host that refused
is the one charged for it (politeness is per host), never the host that redirected."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from support.cli_run import imgflow_run
from support.faultserver import FaultServer, Ok, Redirect
from support.processes import free_port

from imgflow.demo.images import make_gif
from imgflow.engine import loop as engine_loop
from imgflow.engine.fetch import Fetcher
from imgflow.engine.outcome import Fetched
from imgflow.engine.settings import FetchConfig


def test_a_refusing_redirect_target_is_named_and_charged(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    dead = free_port()  # nothing listens there: every connection is refused
    for i in range(8):
        fault_server.set(f"/r/{i}.gif", Redirect(f"http://127.0.0.1:{dead}/x/{i}.gif"))
    (tmp_path / "imgflow.yaml").write_text("fetch:\n  retries: 1\n")
    doc = imgflow_run(tmp_path, fault_server.url("/r"), [f"{i}.gif" for i in range(8)], "-c", "8")
    assert doc["summary"] == {"total": 8, "stored": 0, "skipped": 0, "failed": 8}
    results = doc["results"]
    assert isinstance(results, list)
    for result in results:
        url, target = result["url"], f"http://127.0.0.1:{dead}/x/{result['path']}"
        assert result["error"] == f"Connection refused: {url} (redirected to {target})"
        assert result["failureKind"] == "connection-refused"
    stderr = str(doc["stderr"])
    origin = fault_server.url("/").split("/")[2]
    assert f"throttled by {origin} " not in stderr, stderr  # the redirecting host is fine
    assert f"throttled by 127.0.0.1:{dead} " in stderr, stderr


def test_a_redirect_waits_for_its_target_hosts_cool_down(fault_server: FaultServer) -> None:
    """The target's host was charged (it is cooling down): a redirect to it waits too, as a
    request made to it directly would."""
    gif = make_gif("cd")
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        await asyncio.sleep(seconds)

    with FaultServer() as target:
        target.set("/x/0.gif", Ok(gif))
        fault_server.set("/r/0.gif", Redirect(target.url("/x/0.gif")))

        async def go() -> object:
            async with Fetcher(FetchConfig(), max_connections=2, env={}, sleep=sleep) as fetcher:
                host = target.url("/").split("/")[2]
                fetcher.politeness.gate(host).cool_until = time.monotonic() + 0.5
                return await fetcher.fetch(fault_server.url("/r/0.gif"))

        result = engine_loop.run(go())
    assert isinstance(result, Fetched) and result.data == gif, result
    assert slept and 0.3 < max(slept) <= 0.5, slept
