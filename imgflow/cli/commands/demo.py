"""`imgflow demo`: the bundled sample flags, served here and downloaded."""

from __future__ import annotations

from typing import Annotated

import typer

from imgflow.cli.exits import errors
from imgflow.cli.options import ConfigOpt, DataDirOpt, Output, OutputOpt, load_config

DEMO_PORT = 8765
# Demo images are stored under the keys of this base URL whatever port serves them, so a
# second demo (on another port when 8765 is busy) reuses the same folder.
DEMO_KEY_BASE = f"http://127.0.0.1:{DEMO_PORT}"


def demo(
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", min=1, help="Most requests in flight per batch.")
    ] = 5,
    force: Annotated[bool, typer.Option("--force", help="Download again.")] = False,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Serve the bundled sample flags on 127.0.0.1 and run the demo job against them.

    The job lists the original pipeline's 102 flag paths (ht/ht.gif twice) and zz/zz.gif,
    which is missing on purpose to show the failure report. Exits 0 when exactly that
    one image fails.
    """
    with errors():
        from imgflow.backends import BACKENDS
        from imgflow.backends.base import Flags, RunView
        from imgflow.cli.follow import follow, shown
        from imgflow.config import with_overrides
        from imgflow.demo import FLAGS_DIR, PATHS_FILE
        from imgflow.demo.server import serve_directory
        from imgflow.sources.paths import from_paths_file
        from imgflow.ui.console import err, warn

        cfg = with_overrides(load_config(config), job={"concurrency": concurrency})
        try:
            server = serve_directory(FLAGS_DIR, port=DEMO_PORT)
        except OSError:
            server = serve_directory(FLAGS_DIR)
            warn(
                f"port {DEMO_PORT} is busy, so the flags are served at {server.base_url}; "
                f"they are still stored under {DEMO_KEY_BASE.split('//')[1]}/"
            )
        local = BACKENDS["local"](cfg, data_dir)
        flags = Flags(force=force)
        with server:
            spec = from_paths_file(server.base_url, str(PATHS_FILE), key_base=DEMO_KEY_BASE)
            err.print(
                f"serving the sample flags at {server.base_url}; this demo runs:\n"
                f"  imgflow run --base-url {server.base_url} --paths-file {PATHS_FILE}"
                f" --concurrency {concurrency}"
            )
            view = follow(local, lambda listener: local.run(spec, flags, listener))
            shown(view, output)
        assert isinstance(view, RunView)  # (a local run is always followed)
        failed = view.summary.failed
        if failed == 1 and view.failures_file is not None:
            err.print(
                "demo: as expected, zz/zz.gif is missing on purpose and is reported failed "
                f"(see {view.failures_file}); everything else is stored. "
                f"Next: imgflow status {view.id}"
            )
            code = 0
        else:
            err.print(f"demo: expected exactly 1 failure (zz/zz.gif), got {failed}")
            code = 1
    raise typer.Exit(code)
