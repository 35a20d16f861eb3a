"""The servers of the benchmark on 127.0.0.1: nginx (plain and TLS), the slow server and
tinyproxy; each stopped when its ``with`` block ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.paths import BENCH, WORK


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports (their sockets held open together while they are chosen:
    one at a time, the kernel may hand the same port out twice)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def wait_for_port(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    for _ in range(500):
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited at start-up (code {proc.returncode})")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.01)
    raise SystemExit(f"{what} did not listen on 127.0.0.1:{port}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


NGINX_CONF = """\
{user}worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nodelay on;
    keepalive_timeout 65;
    keepalive_requests 1000000;
    types {{ image/gif gif; image/png png; image/jpeg jpg; }}
    default_type application/octet-stream;
    client_body_temp_path {dir}/tmp-body;
    proxy_temp_path {dir}/tmp-proxy;
    fastcgi_temp_path {dir}/tmp-fastcgi;
    uwsgi_temp_path {dir}/tmp-uwsgi;
    scgi_temp_path {dir}/tmp-scgi;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {root};
    }}
}}
"""


@contextlib.contextmanager
def nginx(root: Path, folder: Path | None = None, template: str = NGINX_CONF) -> Iterator[int]:
    """nginx serving `root` on a free loopback port, with keep-alive; stopped on exit.

    `template` is NGINX_CONF or a variant of it (TLS_CONF), written in
    `folder` (default bench/work/nginx) with the user, folder, port and root filled in."""
    folder = folder or WORK / "nginx"
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    while f"127.0.0.1:{port} " in template:  # a port the template's other servers listen on
        port = free_port()
    user = ""
    if os.geteuid() == 0:
        import pwd

        user = f"user {pwd.getpwuid(root.stat().st_uid).pw_name};\n"
    conf = folder / "nginx.conf"
    conf.write_text(template.format(user=user, dir=folder, port=port, root=root))
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    proc = subprocess.Popen([binary, "-p", str(folder), "-c", str(conf)])
    try:
        wait_for_port(port, proc, "nginx")
        yield port
    finally:
        stop(proc)


DELAY = 0.05  # what bench/slow_server.py waits before each response


@contextlib.contextmanager
def slow_server(python: str) -> Iterator[int]:
    """bench/slow_server.py on a free loopback port; stopped on exit."""
    port = free_port()
    proc = subprocess.Popen([python, str(BENCH / "slow_server.py"), str(port), str(DELAY)])
    (WORK / "slow_server.pid").write_text(str(proc.pid))
    try:
        wait_for_port(port, proc, "slow server")
        yield port
    finally:
        stop(proc)


def server_stats(port: int, what: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_{what}", timeout=10) as response:
        result: dict[str, Any] = json.loads(response.read())
        return result


# NGINX_CONF's nginx, listening with TLS and a session cache.
TLS_CONF = NGINX_CONF.replace(
    "    server {{\n", "    ssl_session_cache shared:SSL:10m;\n    server {{\n"
).replace(
    "listen 127.0.0.1:{port} backlog=4096;",
    "listen 127.0.0.1:{port} ssl backlog=4096;\n"
    "        ssl_certificate {dir}/cert.pem;\n"
    "        ssl_certificate_key {dir}/key.pem;",
)


def _certificate(folder: Path) -> Path:
    """A self-signed certificate for 127.0.0.1 (its own CA); returns the PEM to trust."""
    cert = folder / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(folder / "key.pem"), "-out", str(cert), "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert


@contextlib.contextmanager
def tls_nginx(root: Path) -> Iterator[tuple[int, Path]]:
    """nginx serving `root` over https on a free port: (port, the certificate to trust)."""
    folder = WORK / "nginx-tls"
    folder.mkdir(parents=True, exist_ok=True)
    cert = _certificate(folder)
    with nginx(root, folder, TLS_CONF) as port:
        yield port, cert


@contextlib.contextmanager
def tinyproxy() -> Iterator[str]:
    """tinyproxy on a free port, in the foreground; yields its URL."""
    binary = shutil.which("tinyproxy") or "/usr/bin/tinyproxy"
    if not Path(binary).exists():
        raise FileNotFoundError("tinyproxy is not installed")
    folder = WORK / "tinyproxy"
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = folder / "tinyproxy.conf"
    conf.write_text(
        f"Port {port}\nListen 127.0.0.1\nTimeout 60\nMaxClients 512\n"
        f'LogFile "{folder}/tinyproxy.log"\nLogLevel Warning\nAllow 127.0.0.1\n'
    )
    log = (WORK / "logs" / "tinyproxy.log").open("ab")
    proc = subprocess.Popen([binary, "-d", "-c", str(conf)], stdout=log, stderr=log)
    try:
        wait_for_port(port, proc, "tinyproxy")
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)
        log.close()
