"""Sources: where a job's items come from.

A Source (`base.Source`) yields `Item`s, as often as it is asked (streamed, so memory stays
flat in the number of items), and knows how many there are, an optional concurrency hint,
the seed contract's base URL where it has one, and how to describe itself for the run
record. One module per kind of input:

- `paths`     a base URL and a file of resource paths (or standard input): the seed job;
- `job_json`  the original pipeline's job body (``baseUrl``, ``resourcePaths``,
              ``lambdaConcur``), read from a file or kept by `imgflow serve`.

A retry's source, the failed items of a run read back from the index, is
`imgflow.local.retry.RetrySource` (it reads the local backend's index).

A table of full URLs (txt/csv/tsv/jsonl/parquet) is a module of its own next to these
(`sources/table.py`), yielding `Item(url, key, meta)` with an empty `path` and no base URL;
nothing here changes for it.
"""
