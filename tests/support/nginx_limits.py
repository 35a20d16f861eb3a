"""A run of imgflow against a loopback nginx that limits it (limit_req, limit_conn).

The tests assert what nginx's own access log says it answered, so the limit is the
server's, counted by the server.
"""

from __future__ import annotations

from pathlib import Path

from support.cli_run import imgflow_run, site
from support.nginx import Nginx, Server


def limit_req_zone(rate: int) -> str:
    """The ``http { }`` line of a limit_req zone "one" of `rate` requests a second."""
    return f"limit_req_zone $binary_remote_addr zone=one:1m rate={rate}r/s;"


def run_limited(
    tmp_path: Path, count: int, http: str, limits: str, *flags: str, size: int = 0
) -> tuple[dict[str, object], list[str]]:
    """`imgflow run` of `count` GIFs (0.gif, 1.gif, ...) served by nginx with `http` in its
    ``http { }`` block and `limits` in ``location /``: the run's JSON document and nginx's
    access log."""
    root = site(tmp_path, count, size=size)
    body = f"location / {{ root {root}; {limits} }}"
    with Nginx(tmp_path, [Server(body)], http=http) as web:
        doc = imgflow_run(tmp_path, web.url(0, ""), [f"{i}.gif" for i in range(count)], *flags)
        log = web.access_log()
    return doc, log
