"""A real nginx (Debian's /usr/sbin/nginx) for a test, with config snippets the test writes.

    with Nginx(tmp_path, [Server("location / { root /srv; }"),
                          Server("return 301 https://localhost:@PORT0@$request_uri;")]) as web:
        web.url(0, "/a.gif"), web.url(1, "/a.gif")
        web.access_log()            # lines "<server port> <status> <request line>"

Each `Server` is the inside of a ``server { }`` block; the runner adds its ``listen`` line
(``ssl`` and the certificate with `Server.tls`). ``@PORT<i>@`` in any snippet is the port of
server i. `http` is extra text for the ``http { }`` block (e.g. ``limit_req_zone``). nginx
runs in the foreground as one process (``master_process off``) under the test's user, with
every path in the test's folder, and is stopped when the ``with`` ends.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from support.processes import ServedByProcess, ServerProcess, free_port, listening
from support.tls import Leaf

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


@dataclass(frozen=True)
class Server:
    """One server block: its inside, and the certificate when it speaks TLS."""

    body: str
    tls: Leaf | None = None


class Nginx(ServedByProcess):
    """nginx serving `servers`, each on its own free port of 127.0.0.1."""

    def __init__(self, folder: Path, servers: Sequence[Server], http: str = "") -> None:
        self.folder = folder
        self.servers = list(servers)
        self.ports = [free_port() for _ in self.servers]
        self.log = folder / "error.log"
        self._access = folder / "access.log"
        self._http = http

    def url(self, index: int, path: str, host: str = "127.0.0.1") -> str:
        """The URL of `path` on server `index` (https when it has a certificate)."""
        scheme = "https" if self.servers[index].tls else "http"
        return f"{scheme}://{host}:{self.ports[index]}{path}"

    def _config(self) -> str:
        blocks = []
        for server, port in zip(self.servers, self.ports, strict=True):
            listen = f"listen 127.0.0.1:{port}"
            if server.tls is not None:
                listen += (
                    f" ssl;\n    ssl_certificate {server.tls.cert};\n"
                    f"    ssl_certificate_key {server.tls.key}"
                )
            blocks.append(f"  server {{\n    {listen};\n    {server.body}\n  }}")
        temp = self.folder / "temp"
        config = f"""
daemon off;
master_process off;
pid {self.folder}/nginx.pid;
error_log {self.log} info;
events {{ worker_connections 1024; }}
http {{
  log_format probe '$server_port $status "$request"';
  access_log {self._access} probe;
  client_body_temp_path {temp}/body;
  proxy_temp_path {temp}/proxy;
  fastcgi_temp_path {temp}/fastcgi;
  uwsgi_temp_path {temp}/uwsgi;
  scgi_temp_path {temp}/scgi;
  default_type application/octet-stream;
  types {{ image/gif gif; image/png png; image/jpeg jpg; }}
  keepalive_requests 10000;
{self._http}
{chr(10).join(blocks)}
}}
"""
        for i, port in enumerate(self.ports):
            config = config.replace(f"@PORT{i}@", str(port))
        return config

    def process(self) -> ServerProcess:
        """nginx in the foreground on its config file."""
        (self.folder / "temp").mkdir(parents=True, exist_ok=True)
        conf = self.folder / "nginx.conf"
        conf.write_text(self._config())
        argv = [NGINX, "-p", str(self.folder), "-c", str(conf)]
        return ServerProcess(argv, listening(*self.ports), output=self.log)

    def access_log(self) -> list[str]:
        """The access log so far: ``<port> <status> "<request line>"`` per request."""
        try:
            return self._access.read_text().splitlines()
        except FileNotFoundError:
            return []


def serving_images(folder: Path, images: Mapping[str, bytes]) -> str:
    """Writes `images` (name: bytes) to `folder/www/img/` and returns the ``location / { }``
    block that serves `folder/www`."""
    root = folder / "www"
    (root / "img").mkdir(parents=True)
    for name, data in images.items():
        (root / "img" / name).write_bytes(data)
    return f"location / {{ root {root}; }}"
