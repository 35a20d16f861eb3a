"""The tests' CLI runner keeps the developer's environment out of the process it starts."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from support.cli_run import cli_argv, run_cli

from imgflow.demo.server import StaticServer

BREAKERS = {
    "IMGFLOW_FETCH_TIMEOUT": "nonsense",
    "HTTP_PROXY": "http://127.0.0.1:9",
    "https_proxy": "http://127.0.0.1:9",
    "SSL_CERT_FILE": "/no/such/bundle.pem",
}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """HOME at a folder whose ~/.config/imgflow/imgflow.yaml breaks every run; the work folder."""
    user_config = tmp_path / "home" / ".config" / "imgflow" / "imgflow.yaml"
    user_config.parent.mkdir(parents=True)
    user_config.write_text("fetch:\n  retries: -1\n")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    for name in ("IMGFLOW_FETCH_TIMEOUT", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    work = tmp_path / "work"
    work.mkdir()
    (work / "paths.txt").write_text("ad/ad.gif\n")
    return work


def _run(flag_server: StaticServer) -> list[str]:
    return ["run", "--base-url", flag_server.base_url, "--paths-file", "paths.txt"]


def _unguarded(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli_argv(*args), cwd=cwd, capture_output=True, text=True, timeout=120)


def test_the_user_config_does_not_reach_the_cli(home: Path, flag_server: StaticServer) -> None:
    leaked = _unguarded(_run(flag_server), home)
    assert leaked.returncode == 2 and "fetch.retries" in leaked.stderr, leaked.stderr
    done = run_cli(*_run(flag_server), cwd=home)
    assert done.returncode == 0, done.stderr
    assert any((home / "imgflow-data" / "images").rglob("ad.gif"))


def test_the_callers_variables_do_not_reach_the_cli(
    home: Path, flag_server: StaticServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    (home / "imgflow.yaml").write_text("fetch:\n  retries: 0\n")  # over the user-level file
    assert _unguarded(_run(flag_server), home).returncode == 0
    for name, value in BREAKERS.items():
        monkeypatch.setenv(name, value)
    leaked = _unguarded(_run(flag_server), home)
    assert leaked.returncode != 0, leaked.stderr
    monkeypatch.delenv("IMGFLOW_FETCH_TIMEOUT")
    proxied = _unguarded([*_run(flag_server), "--force"], home)
    assert proxied.returncode != 0, proxied.stderr  # the proxy and TLS variables alone
    done = run_cli(*_run(flag_server), "--force", cwd=home)
    assert done.returncode == 0, done.stderr


def test_a_variable_the_test_passes_reaches_the_cli(home: Path, flag_server: StaticServer) -> None:
    done = run_cli(*_run(flag_server), cwd=home, env={"IMGFLOW_FETCH_TIMEOUT": "nonsense"})
    assert done.returncode == 2 and "IMGFLOW_FETCH_TIMEOUT" in done.stderr, done.stderr
