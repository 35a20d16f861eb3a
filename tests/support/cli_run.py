"""Run the imgflow command line as a real process, in an environment of the test's own.

    done = run_cli("status", cwd=tmp_path)                   # exit code, stdout, stderr (text)
    proc = start_cli("run", ..., cwd=tmp_path, env={"IMGFLOW_LOCAL_FSYNC": "false"})
    doc = imgflow_run(tmp_path, base_url, ["0.gif", "1.gif"], "-c", "8")

Every child gets the caller's environment without its IMGFLOW_ settings, its proxy variables
(HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY, in either case) and its TLS trust variables
(SSL_CERT_FILE, SSL_CERT_DIR, REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE), and with XDG_CONFIG_HOME
at an empty folder, so neither a developer's shell nor their ~/.config/imgflow/imgflow.yaml
reaches a test. What a test passes in `env` is set on top; `drop` names more prefixes to
clear (such as ``AWS_``).
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from imgflow.demo.images import make_gif

CLI = (sys.executable, "-m", "imgflow.cli")
CLEARED = frozenset(
    {
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "NO_PROXY",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
    }
)
CONTACT = "https://imgflow.test/crawl"  # etiquette.contact of the tests' CLI runs
FAST_ENV = {
    "IMGFLOW_LOCAL_FSYNC": "false",
    "IMGFLOW_FETCH_BACKOFF_BASE": "0.1",
    "IMGFLOW_FETCH_BACKOFF_MAX": "1",
}


@cache
def empty_config_home() -> Path:
    """A read-only empty folder for XDG_CONFIG_HOME, removed when the test process ends."""
    folder = Path(tempfile.mkdtemp(prefix="imgflow-no-config-"))
    folder.chmod(0o555)
    atexit.register(folder.rmdir)
    return folder


def cli_argv(*args: str) -> list[str]:
    """The command line of ``imgflow ARGS`` (this interpreter, ``-m imgflow.cli``)."""
    return [*CLI, *args]


def cli_env(env: Mapping[str, str] | None = None, drop: tuple[str, ...] = ()) -> dict[str, str]:
    """The child's environment (see the module docstring), with `env` on top."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("IMGFLOW_", *drop)) and k.upper() not in CLEARED
    }
    clean["XDG_CONFIG_HOME"] = str(empty_config_home())
    # A user who set etiquette.contact (no warning each run), unless `drop` names it.
    if not "IMGFLOW_ETIQUETTE_CONTACT".startswith(drop):
        clean["IMGFLOW_ETIQUETTE_CONTACT"] = CONTACT
    clean.update(env or {})
    return clean


def run_cli(
    *args: str,
    env: Mapping[str, str] | None = None,
    drop: tuple[str, ...] = (),
    timeout: float = 120,
    **kwargs: Any,
) -> subprocess.CompletedProcess[str]:
    """``imgflow ARGS`` to its end, its output captured as text; `kwargs` go to subprocess.run."""
    return subprocess.run(
        cli_argv(*args),
        env=cli_env(env, drop),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kwargs,
    )


def start_cli(
    *args: str, env: Mapping[str, str] | None = None, drop: tuple[str, ...] = (), **kwargs: Any
) -> subprocess.Popen[Any]:
    """``imgflow ARGS`` started; `kwargs` go to subprocess.Popen."""
    return subprocess.Popen(cli_argv(*args), env=cli_env(env, drop), **kwargs)


def imgflow_run(tmp_path: Path, base_url: str, paths: list[str], *flags: str) -> dict[str, object]:
    """`imgflow run -o json` of `paths` in `tmp_path` (its data folder
    ``tmp_path/imgflow-data``), fsync off and short backoffs: its JSON document with "stderr"
    and "exit" added."""
    (tmp_path / "paths.txt").write_text("\n".join(paths) + "\n")
    done = run_cli(
        "run", "--base-url", base_url, "--paths-file", "paths.txt", "-o", "json", *flags,
        cwd=tmp_path, env=FAST_ENV, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr
    doc: dict[str, object] = json.loads(done.stdout)
    doc["stderr"] = done.stderr
    doc["exit"] = done.returncode
    return doc


def site(tmp_path: Path, count: int, size: int = 0) -> Path:
    """`tmp_path/site` with `count` GIFs named 0.gif, 1.gif, ... (about `size` bytes each)."""
    root = tmp_path / "site"
    root.mkdir()
    for i in range(count):
        (root / f"{i}.gif").write_bytes(make_gif(f"t{i}", 4, target_bytes=size))
    return root
