"""`imgflow serve`: a job service on the local backend."""

from __future__ import annotations

from typing import Annotated

import typer

from imgflow.cli.exits import errors
from imgflow.cli.options import ConfigOpt, DataDirOpt, load_config


def serve(
    host: Annotated[
        str | None, typer.Option("--host", help="Address to listen on (serve.host: 127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None,
        typer.Option("--port", help="Port to listen on (serve.port: 8080).", min=0, max=65535),
    ] = None,
    no_auth: Annotated[
        bool,
        typer.Option(
            "--no-auth",
            help="Take requests without a bearer token (only on a loopback address).",
        ),
    ] = False,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Run a job service: POST the original body to api.route (default /jobs).

    Accepted jobs are stored in the data folder's imgflow.db before the 202 answer and
    run on the local backend one at a time; a restart resumes them. Clients send
    'Authorization: Bearer <token>' (serve.token, or the one printed at start).
    GET /runs, GET /runs/<id>, GET /runs/<id>/failures, DELETE /runs/<id>; the API is
    described at /openapi.json. Listens on 127.0.0.1 unless --host says otherwise.
    SIGTERM or Ctrl-C stops it; the running job keeps its finished images and resumes
    at the next start.
    """
    with errors():
        from rich.markup import escape

        from imgflow.backends.local import data_folder
        from imgflow.report import render_local
        from imgflow.serve.service import JobService, Options
        from imgflow.ui.console import err

        cfg = load_config(config)
        options = Options(
            host=cfg.serve.host if host is None else host,
            port=cfg.serve.port if port is None else port,
            no_auth=no_auth,
        )
        service = JobService(cfg, data_folder(cfg, data_dir), options, render_local)
        info = service.startup
        for warning in info.warnings:
            err.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)
        if info.token is None:
            err.print("imgflow: no token required (--no-auth)")
        elif info.token_generated:
            err.print(
                f"imgflow: token for this start: {info.token} "
                "(send 'Authorization: Bearer <token>'; set serve.token to keep one)",
                soft_wrap=True,
            )
        err.print(
            f"imgflow: taking jobs at {info.url}{cfg.api.route} (SIGTERM or Ctrl-C stops)",
            soft_wrap=True,
        )
        service.run()
