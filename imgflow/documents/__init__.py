"""Data documents and plain-text lines, shared by the command line and `imgflow serve`.

run.py       the `--output json` document of one run, streamed record by record
listing.py   listings of recent runs (local runs, aws executions): JSON rows and table cells
keys.py      camelCase keys, the one key style of imgflow's JSON output
text.py      counts in words, the summary line, byte sizes

No terminal code here: the documents are data, written to any text stream.
"""
