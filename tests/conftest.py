"""Shared fixtures: ``fault_server`` (scriptable, per test) and ``flag_server`` (the demo flags).

Test modules import the fault server's replies with ``from support.faultserver import Ok, ...``
(pytest puts ``tests/`` on ``sys.path`` because it has no ``__init__.py``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.faultserver import FaultServer

from imgflow.demo import FLAGS_DIR
from imgflow.demo.server import StaticServer, serve_directory


@pytest.fixture
def fault_server() -> Iterator[FaultServer]:
    """A fresh scriptable server on 127.0.0.1; unknown paths get 404."""
    with FaultServer() as server:
        yield server


@pytest.fixture(scope="session")
def flag_server() -> Iterator[StaticServer]:
    """The bundled flag set over HTTP: ``flag_server.url("ad/ad.gif")``; ``zz/zz.gif`` is 404."""
    with serve_directory(FLAGS_DIR) as server:
        yield server
