"""A moto server for end-to-end CLI runs: ``python tests/aws/moto_server.py PORTFILE``.

Starts ``moto.server.ThreadedMotoServer`` on 127.0.0.1 (a free port), with Step Functions
executing definitions, Lambda without Docker, and the `lambda_invoke` patch applied in this
process (so handlers run from the deployed zip here, reaching moto through MOTO_PORT and
AWS_ENDPOINT_URL). Writes the port to PORTFILE and serves until killed.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from lambda_invoke import install
from moto.core.config import default_user_config
from moto.server import ThreadedMotoServer


def serve(port_file: Path, started: Callable[[], None] = lambda: None) -> None:
    """Run the server with the `lambda_invoke` patch, call `started` once it listens, write
    its port to `port_file` (and MOTO_PORT) and serve until killed."""
    sys.setrecursionlimit(20_000)
    default_user_config.update(
        {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
    )
    install()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    started()
    _, port = server.get_host_and_port()
    os.environ["MOTO_PORT"] = str(port)
    port_file.write_text(str(port))
    threading.Event().wait()


if __name__ == "__main__":
    serve(Path(sys.argv[1]))
