"""A redirect whose target fails: the message names the target, and the host that refused
is the one charged for it (politeness is per host), never the host that redirected."""

from __future__ import annotations

from pathlib import Path

from support.cli_run import imgflow_run
from support.faultserver import FaultServer, Redirect
from support.processes import free_port


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
