"""`imgflow serve` (a real process): a finished urls job's document carries the run's
per-host lines (`hostNotes`: a host paused after refused connections, names that did not
resolve), as `imgflow status -o json` does; the list of runs too; none without them."""

from __future__ import annotations

from pathlib import Path

from support.faultserver import FaultServer, Ok
from support.serveproc import ServeProcess
from test_hosts import closed_port

from imgflow.demo.images import make_gif

GIF = make_gif("notes")


def test_a_urls_jobs_document_carries_its_host_notes(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{closed_port()}"
    gone = "http://images.imgflow-test.invalid"
    with (
        FaultServer(fallback=Ok(GIF)) as site,
        ServeProcess(tmp_path, config={"job": {"host_failures": 2}}) as serve,
    ):
        urls = [f"{dead}/x{i}.gif" for i in range(4)] + [f"{gone}/n{i}.gif" for i in range(3)]
        run_id = serve.post_job({"urls": [*urls, site.url("/ok.gif")], "lambdaConcur": 1})
        document = serve.wait_for(run_id)
        clean = serve.post_job({"urls": [site.url("/ok2.gif")]})
        assert "hostNotes" not in serve.wait_for(clean)  # no host paused, every name resolved
        with serve.client() as client:
            listed = client.get("/runs").json()["runs"]
    assert document["state"] == "failed" and document["summary"]["stored"] == 1
    notes = document["hostNotes"]
    assert notes[-1] == "DNS lookup failed for 1 host (3 images)"
    assert [line.split(" (")[0] for line in notes[:-1]] == sorted(
        [f"host {dead} paused: refused connections 2 times in a row",
         f"host {gone} paused: did not resolve 2 times in a row"]
    )  # fmt: skip
    assert [r.get("hostNotes") for r in listed if r["run"] == run_id] == [notes]
