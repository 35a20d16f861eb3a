"""A property-based fuzz of `imgflow serve` from its own OpenAPI description (schemathesis).

schemathesis reads /openapi.json from the live process and sends generated requests (valid
and invalid bodies, parameters, and link-following sequences: POST then GET/DELETE the new
run), bounded in examples and time. It must find no 5xx, no answer outside the description
(status, headers, content type, schema), no invalid request accepted, and the server must
still be up and have logged no traceback.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from support.processes import signalled
from support.serveproc import ServeProcess

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
    ]
)


def test_the_api_holds_up_to_a_fuzz_from_its_own_description(tmp_path: Path) -> None:
    config = {
        # Generated jobs name hosts that do not exist: fail them fast.
        "fetch": {"retries": 0, "connect_timeout": 1, "timeout": 2},
        # The stateful phase posts hundreds of jobs; a full queue answers 503 (documented, but
        # a 5xx to the not_a_server_error check): room for all of them.
        "serve": {"max_queued": 1000},
    }
    with ServeProcess(tmp_path, config=config) as serve:
        runner = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
        assert runner is not None
        done = subprocess.run(
            [
                runner,
                "run",
                f"{serve.url}/openapi.json",
                "--header",
                f"Authorization: Bearer {serve.token}",
                "--checks",
                CHECKS,
                "--max-examples",
                "10",
                "--max-time",
                "60",
                "--workers",
                "1",
                "--seed",
                "20261129",
                "--generation-database",
                "none",
                "--request-timeout",
                "20",
                "--no-color",
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
            **signalled(),
        )
        assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
        assert serve.proc is not None and serve.proc.poll() is None, serve.log
        with serve.client() as client:
            assert client.get("/runs").status_code == 200
        assert "Traceback" not in serve.log, serve.log[-4000:]
        assert serve.stop() == 0
