"""Terminal output of the command line: consoles, messages, tables, live progress.

console.py   stdout and stderr consoles; error, warning and progress lines
tables.py    a run's per-image table, listings of recent runs
run.py       a run shown as a table and summary line, or as the JSON document
progress.py  the live progress bars of a local run and of an aws execution
deploy.py    deploy's plan and outputs, teardown's result

The JSON documents themselves are data (imgflow/documents/), shared with `imgflow serve`.
"""
