"""`imgflow report`: a run as one self-contained HTML page.

render_local(data_dir, run_id) -> str     the page of a local run (for `imgflow serve`)
write_local(data_dir, run_id, output)     write it to a file, making thumbnails first
resolve_run(data_dir, run_id | None)      the run to report (default: the newest)
"""

from __future__ import annotations

from imgflow.report.local import default_output, render_local, resolve_run, write_local

__all__ = ["default_output", "render_local", "resolve_run", "write_local"]
