"""A real forward proxy for a test: tinyproxy (Debian's), in the foreground, with its log.

    with Tinyproxy(tmp_path, auth=("user", "secret")) as proxy:
        proxy.url                   # http://127.0.0.1:<port>
        proxy.requests()            # ["GET http://127.0.0.1:8080/a.gif HTTP/1.1", "CONNECT ..."]

tinyproxy logs every request it relays (log level Connect); `requests` reads them from its
own log file, so a test can prove its traffic went through the proxy.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from support.processes import ServedByProcess, ServerProcess, free_port, listening

TINYPROXY = shutil.which("tinyproxy") or "/usr/bin/tinyproxy"
_REQUEST = re.compile(r"Request \(file descriptor \d+\): (.+)$")


class Tinyproxy(ServedByProcess):
    """tinyproxy on a free port of 127.0.0.1, with Basic authentication when `auth`."""

    def __init__(self, folder: Path, auth: tuple[str, str] | None = None) -> None:
        self.folder = folder
        self.port = free_port()
        self.log = folder / "tinyproxy.log"
        self._auth = auth

    @property
    def url(self) -> str:
        """The proxy's URL, without credentials."""
        return f"http://127.0.0.1:{self.port}"

    def url_with(self, user: str, password: str) -> str:
        """The proxy's URL with credentials."""
        return f"http://{user}:{password}@127.0.0.1:{self.port}"

    def process(self) -> ServerProcess:
        """tinyproxy in the foreground on its config file."""
        self.folder.mkdir(parents=True, exist_ok=True)
        lines = [
            f"Port {self.port}",
            "Listen 127.0.0.1",
            "Timeout 30",
            f'LogFile "{self.log}"',
            "LogLevel Connect",
            "MaxClients 200",
            "Allow 127.0.0.1",
        ]
        if self._auth is not None:
            lines.append(f"BasicAuth {self._auth[0]} {self._auth[1]}")
        conf = self.folder / "tinyproxy.conf"
        conf.write_text("\n".join(lines) + "\n")
        argv = [TINYPROXY, "-d", "-c", str(conf)]
        return ServerProcess(argv, listening(self.port), output=self.folder / "tinyproxy.out")

    def requests(self) -> list[str]:
        """Every request line the proxy logged ("GET http://... HTTP/1.1", "CONNECT ...")."""
        try:
            text = self.log.read_text(errors="replace")
        except FileNotFoundError:
            return []
        return [m.group(1) for line in text.splitlines() if (m := _REQUEST.search(line))]
