"""The curated mutants: each breaks one promise imgflow makes, in one small textual change.

A mutant names the file, an exact ``old`` string that must occur there exactly once, its
``new`` text (the tree must still import and type-check), the promise it breaks (where it is
made: README, docs/architecture.md or imgflow.yaml.example) and the tests that must notice,
fastest first (they run with ``-x``). When the code a mutant targets moves, update the
mutant; ``tests/mutants/run`` refuses to run a mutant that no longer applies.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mutant:
    name: str
    promise: str
    file: str
    old: str
    new: str
    tests: tuple[str, ...]
    timeout: float = 180.0


FETCH = "tests/test_fetch.py"
TRANSPORT = "tests/test_transport_habits.py"
LOCAL = "tests/test_local_run.py"
JOB = "tests/test_job.py"
GUARD = "tests/aws/test_guard.py"
IAM = "tests/aws/test_iam_policies.py"
REV = "tests/test_revalidate.py"
DIRECT = "tests/test_direct_body.py"
URL_LANES = "tests/aws/test_url_lanes.py"
URL_LANES_STREAM = (
    "tests/aws/test_url_lanes_stream.py::"
    "test_a_streamed_urls_job_is_planned_as_its_body_is_in_memory"
)
SHARDS_COMMIT = "tests/test_shards_commit.py"
SHARDS_REWRITE = "tests/test_shards_rewrite.py"
SHARDS_REWORKERS = "tests/test_shards_rewrite_workers.py"
HOSTS = "tests/test_hosts.py"
TABLES = "tests/test_url_tables.py"
PATHS_STREAM = "tests/test_paths_stream.py"
AWS_SHARDS = "tests/aws/test_shards_aws.py"
SERVE_NOTES = "tests/test_serve_host_notes.py"
FORMER_ROLE = "tests/aws/test_former_api_role.py"

MUTANTS: list[Mutant] = [
    # -- atomicity: a file appears at its final name only when complete ----------------------
    Mutant(
        "store-writes-in-place",
        "files appear at their final name only when complete (README, architecture)",
        "imgflow/local/store.py",
        "        fd, name = self._temporary()\n        return FileWriter(self, key, fd, name)",
        "        fd, name = self._temporary()\n        self.tree.place(self.tmp, name, key)\n"
        "        return FileWriter(self, key, fd, name)",
        ("tests/test_atomic_store.py::test_a_reader_never_sees_a_partial_file",),
    ),
    Mutant(
        "stale-tmp-kept",
        "temporary folders of dead runs are swept at the next start (architecture)",
        "imgflow/local/folder.py",
        "            if stale:\n                remove_tree(tmp, name)",
        "            if False:\n                remove_tree(tmp, name)",
        (
            "tests/adversarial/test_local_storage.py::"
            "test_a_live_runs_tmp_folder_is_never_swept_whatever_its_pid",
            "tests/adversarial/test_local_storage.py",
        ),
    ),
    # -- one record per path ----------------------------------------------------------------
    Mutant(
        "plan-duplicates-replace",
        "duplicates are fetched once and reported; one record per unique path (README)",
        "imgflow/local/index/results.py",
        '"INSERT OR IGNORE INTO results (run_id, seq, path, url, key, outcome)"',
        '"INSERT OR REPLACE INTO results (run_id, seq, path, url, key, outcome)"',
        ("tests/test_local_run.py::test_demo_job_stores_everything_but_the_missing_flag",),
    ),
    Mutant(
        "results-unique-by-path",
        "one result per URL of a run, whatever its source names it (architecture: Item)",
        "imgflow/local/index/schema.py",
        "    UNIQUE (run_id, url)\n",
        "    UNIQUE (run_id, path)\n",
        ("tests/test_sources.py::test_planned_items_read_back_whole_and_one_per_url",),
    ),
    Mutant(
        "plan-drops-meta",
        "an item's metadata goes with it from its source to its result (architecture: Item)",
        "imgflow/local/index/results.py",
        "        meta=meta_view(json.loads(meta)) if meta else NO_META,",
        "        meta=NO_META,",
        ("tests/test_sources.py::test_planned_items_read_back_whole_and_one_per_url",),
    ),
    Mutant(
        "batch-loses-a-record",
        "one record per item, even when an item raises (architecture)",
        "imgflow/engine/batch.py",
        "        return failed_record(item, FetchFailure(kind, message, None, attempts))",
        "        raise",
        ("tests/test_limits.py::test_one_record_per_item_even_when_storing_one_raises",),
    ),
    Mutant(
        "skip-ignores-missing-file",
        "the next run skips only what is still there with the indexed size (architecture)",
        "imgflow/local/runner.py",
        "            found = self.store.intact(row.key, row.bytes, mtime, row.sha256)\n",
        "            found = mtime or 0\n",
        ("tests/test_local_run.py::test_rerun_skips_what_is_stored_and_force_fetches_again",),
    ),
    Mutant(
        "run-ignores-its-layout",
        "a run stores through the Layout it is given, nothing else (architecture: Layout)",
        "imgflow/local/runner.py",
        "store = settings.layout.open_run(folder, tmp, fsync=settings.fsync)",
        "store = RunSettings().layout.open_run(folder, tmp, fsync=settings.fsync)",
        ("tests/test_layout_seam.py::test_a_run_stores_skips_and_checks_through_the_layout_only",),
    ),
    # -- no outside writes ------------------------------------------------------------------
    Mutant(
        "store-key-escapes",
        "a key can never point outside the store (architecture: no outside writes)",
        "imgflow/local/safefs.py",
        'if any(name in ("", ".", "..") for name in names):',
        'if any(name in ("", ".") for name in names):',
        ("tests/test_atomic_store.py::test_a_key_never_points_outside_the_store",),
    ),
    Mutant(
        "job-path-escapes-base",
        "paths are relative to the base URL; .. cannot leave it (README)",
        "imgflow/engine/job.py",
        'if segment == "..":',
        'if segment == "...":',
        ("tests/test_job.py::test_bad_paths_are_named",),
    ),
    Mutant(
        "job-path-merges-empty-segments",
        "a path is requested as written: a//b is not a/b (README)",
        "imgflow/engine/job.py",
        '        elif segment != ".":',
        '        elif segment not in (".", ""):',
        ("tests/test_job.py::test_paths_are_normalised",),
    ),
    # -- collision-free keys ----------------------------------------------------------------
    Mutant(
        "key-drops-port",
        "the key is the host and port when not the default (README)",
        "imgflow/engine/keys.py",
        'else f"{host}:{port}"',
        "else host",
        ("tests/test_job.py::test_keys_distinguish_ports_and_queries",),
    ),
    Mutant(
        "key-drops-query",
        "keys never collide: a query adds a digest (architecture)",
        "imgflow/engine/keys.py",
        'stem = f"{stem}%q{digest}"',
        'stem = f"{stem}"',
        ("tests/test_job.py", "tests/test_keys.py"),
    ),
    Mutant(
        "key-drops-empty-segments",
        "keys never collide: an empty segment is % (architecture)",
        "imgflow/engine/keys.py",
        '    if not segment:\n        return "%"',
        '    if not segment:\n        return "_"',
        (
            "tests/test_limits.py::test_an_empty_segment_keeps_a_key_of_its_own",
            "tests/adversarial/test_local_faults.py::test_paths_that_could_share_a_key_never_do",
        ),
    ),
    # -- caps ---------------------------------------------------------------------------------
    Mutant(
        "batch-cap-plus-one",
        "--concurrency caps requests in flight for one batch (README)",
        "imgflow/engine/batch.py",
        "own = asyncio.Semaphore(concurrency)",
        "own = asyncio.Semaphore(concurrency + 1)",
        ("tests/test_local_run.py::test_politeness_cap_per_batch_and_in_total",),
    ),
    Mutant(
        "total-cap-plus-one",
        "at most concurrency x max-batches requests in flight (README)",
        "imgflow/local/job.py",
        "        return self.concurrency * self.max_batches\n",
        "        return self.concurrency * self.max_batches + 1\n",
        ("tests/test_limits.py::test_the_next_batch_borrows_no_slot_beyond_the_total_cap",),
    ),
    Mutant(
        "open-batches-plus-one",
        "--max-batches batches run at once (README)",
        "imgflow/local/runner.py",
        "open_batches = asyncio.Semaphore(self.job.max_batches)",
        "open_batches = asyncio.Semaphore(self.job.max_batches + 1)",
        ("tests/test_limits.py::test_a_batch_starts_only_once_every_item_before_it_has_started",),
    ),
    Mutant(
        "size-cap-on-encoded-bytes",
        "largest image accepted, in bytes, after content decoding (imgflow.yaml.example)",
        "imgflow/engine/fetch.py",
        'headers.get_list("content-encoding", split_commas=True) if coded else ()',
        "()",
        ("tests/test_limits.py::test_the_size_cap_counts_decoded_bytes_to_the_byte",),
    ),
    Mutant(
        "size-cap-off-by-far",
        "max_bytes caps the image size (imgflow.yaml.example)",
        "imgflow/engine/body.py",
        "if self.size > self._max:",
        "if self.size > 2 * self._max:",
        ("tests/test_limits.py::test_the_size_cap_counts_decoded_bytes_to_the_byte",),
    ),
    Mutant(
        "declared-size-ignored",
        "an oversize Content-Length fails without reading the body (imgflow.yaml.example)",
        "imgflow/engine/fetch.py",
        "if declared_size is not None and declared_size > settings.max_bytes:",
        "if declared_size is not None and declared_size > 2 * settings.max_bytes:",
        ("tests/test_limits.py::test_a_declared_length_over_the_cap_fails_before_the_body",),
    ),
    # -- retries and their limits --------------------------------------------------------------
    Mutant(
        "retries-off-by-one",
        "extra attempts after a 5xx, timeout or connection error (imgflow.yaml.example)",
        "imgflow/engine/fetch.py",
        "if retried > self.settings.retries:",
        "if retried >= self.settings.retries:",
        ("tests/test_fetch.py::test_persistent_502_fails_after_retries",),
    ),
    Mutant(
        "retry-after-ignored",
        "Retry-After is honoured, for every worker of the host at once (architecture)",
        "imgflow/engine/politeness.py",
        "        if retry_after is not None:\n            wait = retry_after",
        "        if False:\n            wait = 0.0",
        (
            "tests/test_fetch.py::test_429_retry_after_is_honoured",
            "tests/test_throttling.py::test_retry_after_cools_the_whole_host_down_not_just_one_request",
        ),
    ),
    Mutant(
        "throttle-keeps-concurrency",
        "a throttling host's requests in flight are halved (imgflow.yaml.example fetch.rate)",
        "imgflow/engine/politeness.py",
        "self.limit = max(1.0, self.limit / 2)",
        "self.limit = max(1.0, self.limit)",
        (
            "tests/test_throttling.py::test_a_throttle_halves_concurrency_once_and_success_grows_it_back",
        ),
    ),
    Mutant(
        "rate-not-enforced",
        "--rate caps requests per second to each host (imgflow.yaml.example fetch.rate)",
        "imgflow/engine/politeness.py",
        "            if self._tokens >= 1.0:\n                self._tokens -= 1.0",
        "            if True:\n                self._tokens -= 1.0",
        (
            "tests/test_throttling.py::test_a_fixed_rate_spaces_requests_even_for_waiters_that_wait_together",
            "tests/test_throttling.py::test_a_fixed_rate_keeps_under_an_nginx_limit",
        ),
    ),
    Mutant(
        "throttle-patience-ignored",
        "429/503 are retried for fetch.throttle_patience seconds (imgflow.yaml.example)",
        "imgflow/engine/fetch.py",
        "if waited + ahead > self.settings.throttle_patience:",
        "if True:",
        ("tests/test_fetch.py::test_a_throttling_host_is_retried_for_its_patience_not_a_count",),
    ),
    Mutant(
        "retry-after-max-ignored",
        "a Retry-After longer than retry_after_max fails the image (imgflow.yaml.example)",
        "imgflow/engine/outcome.py",
        "if wait is not None and wait > retry_after_max:",
        "if wait is not None and wait > retry_after_max + 3600:",
        ("tests/test_limits.py::test_a_retry_after_over_the_limit_fails_without_waiting",),
    ),
    Mutant(
        "backoff-not-capped",
        "backoff is capped at backoff_max (imgflow.yaml.example)",
        "imgflow/engine/fetch.py",
        "ceiling = min(self.settings.backoff_max, ",
        "ceiling = max(self.settings.backoff_max, ",
        ("tests/test_limits.py::test_backoff_doubles_with_jitter_and_stops_at_its_cap",),
    ),
    Mutant(
        "503-not-retried",
        "a 5xx is retried (imgflow.yaml.example)",
        "imgflow/engine/outcome.py",
        "RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})",
        "RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 504})",
        ("tests/test_fetch.py::test_a_throttling_host_is_retried_for_its_patience_not_a_count",),
    ),
    Mutant(
        "redirect-limit-plus-one",
        "max_redirects redirects followed per image (imgflow.yaml.example)",
        "imgflow/engine/fetch.py",
        "for _ in range(self.settings.max_redirects + 1):",
        "for _ in range(self.settings.max_redirects + 2):",
        ("tests/test_limits.py::test_redirects_are_followed_up_to_the_limit_exactly",),
    ),
    Mutant(
        "response-headers-said-ascii",
        "a response's headers read as httpx reads them, whatever their bytes (architecture)",
        "imgflow/engine/transport/headers.py",
        "    if all(name.isascii() and value.isascii() for name, _, value in triples):",
        "    if True:",
        (
            "tests/test_request_build.py::test_a_response_s_headers_are_what_httpx_makes_of_the_same_bytes",
        ),
    ),
    Mutant(
        "request-headers-shared-with-client",
        "a request's headers are its own: changing them leaves the client's (architecture)",
        "imgflow/engine/transport/headers.py",
        "        return headers_of(list(triples))",
        "        return headers_of(triples)",
        (
            "tests/test_request_build.py::test_a_get_request_is_what_httpx_makes_of_the_same_url_and_headers",
        ),
    ),
    Mutant(
        "normal-path-shortcut-takes-dot-segments",
        "a path that would leave the base URL is refused (README: the paths file)",
        "imgflow/engine/job.py",
        '_NORMAL = re.compile(r"[A-Za-z0-9_~-]',
        '_NORMAL = re.compile(r"[A-Za-z0-9._~-]',
        (
            "tests/test_job.py::test_a_path_in_normal_form_is_what_the_whole_normalisation_makes_of_it",
            "tests/test_job.py::test_bad_paths_are_named",
        ),
    ),
    Mutant(
        "normal-path-shortcut-ignores-length",
        "a path over 1,024 characters is refused (README: the paths file)",
        "imgflow/engine/job.py",
        "    if len(path) <= MAX_PATH_CHARS and _NORMAL.fullmatch(path):",
        "    if _NORMAL.fullmatch(path):",
        (
            "tests/test_job.py::test_a_path_in_normal_form_is_what_the_whole_normalisation_makes_of_it",
            "tests/test_job.py::test_bad_paths_are_named",
        ),
    ),
    Mutant(
        "bench-run-pays-earlier-rows-writes",
        "every bench run starts with nothing waiting to be written back (bench/README.md)",
        "bench/harness/measure.py",
        "    os.sync()\n",
        "",
        ("tests/test_bench_measure.py::test_every_measured_run_starts_after_a_sync",),
    ),
    Mutant(
        "bench-script-goal-compares-another-row",
        "the bench's per-image goals compare fsync off with the aiohttp script at 64 (issue 23)",
        "bench/cases/throughput.py",
        '    script, curl = row_at_64(rows, "aiohttp"), row_at_64(rows, "curl")\n',
        '    script = next(r for r in rows if r["tool"] == "aiohttp")\n'
        '    curl = row_at_64(rows, "curl")\n',
        ("tests/test_bench_goals.py::test_the_goal_table_holds_issue_23_s_targets",),
    ),
    # -- framing strictness -----------------------------------------------------------------
    Mutant(
        "short-body-accepted",
        "a body shorter than its Content-Length is an error, not an image (architecture)",
        "imgflow/engine/transport/parse.py",
        "        elif self.until_close:\n",
        "        elif self.until_close or self.head_done:\n",
        ("tests/test_framing.py::test_body_cut_short_is_incomplete",),
    ),
    Mutant(
        "parse-errors-ignored",
        "responses are framed strictly; a malformed one fails as a bad response (README)",
        "imgflow/engine/transport/parse.py",
        "            elif self.error is None:\n                self.error = BadResponse(",
        "            elif self.error is None and False:\n                self.error = BadResponse(",
        ("tests/test_framing.py::test_malformed_response_fails_once_as_bad_response",),
    ),
    Mutant(
        "leftover-bytes-reused",
        "a connection with bytes left after a response is never reused (architecture)",
        "imgflow/engine/transport/stream.py",
        "            and not exchange.leftover\n",
        "            and exchange.leftover is not None\n",
        (
            "tests/test_framing.py::test_bytes_after_a_complete_response_close_the_connection",
            "tests/test_framing.py::test_a_second_response_after_an_empty_one_never_reaches_the_next_image",
        ),
    ),
    Mutant(
        "head-waits-for-a-body",
        "a HEAD reply is its head alone, so the connection stays usable (architecture)",
        "imgflow/engine/transport/pool.py",
        'exchange = conn.start(head_only=request.method == "HEAD")',
        "exchange = conn.start(head_only=False)",
        ("tests/test_transport_habits.py::test_a_head_reply_has_no_body",),
    ),
    # -- no request is silently sent twice -------------------------------------------------------
    Mutant(
        "resend-fresh-connections",
        "only a request on a reused keep-alive connection is resent (architecture)",
        "imgflow/engine/transport/pool.py",
        "if not (reused and idempotent and conn.received == before):",
        "if not (idempotent and conn.received == before):",
        ("tests/test_transport_habits.py::test_a_get_on_a_fresh_connection_is_not_resent",),
    ),
    Mutant(
        "resend-after-an-answer",
        "a request the server began answering is never resent (architecture)",
        "imgflow/engine/transport/pool.py",
        "if not (reused and idempotent and conn.received == before):",
        "if not (reused and idempotent):",
        ("tests/test_transport_habits.py::test_a_get_the_server_began_answering_is_not_resent",),
    ),
    Mutant(
        "resend-non-idempotent",
        "a POST is never resent (architecture)",
        "imgflow/engine/transport/pool.py",
        "if not (reused and idempotent and conn.received == before):",
        "if not (reused and conn.received == before):",
        ("tests/test_transport_habits.py::test_a_post_is_never_resent",),
    ),
    Mutant(
        "resend-never",
        "a reused keep-alive connection closed while idle is resent transparently (architecture)",
        "imgflow/engine/transport/pool.py",
        "if not (reused and idempotent and conn.received == before):",
        "if not (reused and idempotent and conn.received == before) or True:",
        (
            "tests/test_transport_habits.py::test_a_connection_closed_while_idle_is_replaced_without_a_failure",
        ),
    ),
    # -- SSRF guard ---------------------------------------------------------------------------
    Mutant(
        "guard-skips-redirects",
        "every redirect hop goes through the guard (architecture)",
        "imgflow/engine/fetch.py",
        "await self._guard(current)",
        "await self._guard(url)",
        ("tests/aws/test_guard.py::test_every_redirect_hop_is_checked",),
    ),
    Mutant(
        "guard-no-unwrap",
        "IPv6 embeddings of refused IPv4 addresses are refused (guard)",
        "imgflow/engine/guard.py",
        "    inner = unwrap(address)\n",
        "    inner = address\n",
        ("tests/aws/test_guard.py::test_refuses_non_public_literals",),
    ),
    Mutant(
        "guard-runtime-api",
        "the Lambda runtime API address is refused (guard)",
        "imgflow/engine/guard.py",
        "if inner in set(extra) or address in set(extra):",
        "if inner in set() or address in set():",
        ("tests/aws/test_guard.py::test_refuses_the_lambda_runtime_api_address",),
    ),
    Mutant(
        "connect-not-pinned",
        "the transport connects to the address it checked (DNS rebinding)",
        "imgflow/engine/transport/pool.py",
        "        return addresses[:1]\n",
        "        return [host]\n",
        ("tests/test_address_resolved_once.py",),
    ),
    # -- many hosts: each host's queue on its own, caps per host and in all ------------------
    Mutant(
        "host-cap-is-the-total",
        "--concurrency holds per host for full URLs from many hosts (architecture)",
        "imgflow/local/runner.py",
        "Politeness(gates(self.settings.fetch, self.job.concurrency), self.on_throttle)",
        "Politeness(gates(self.settings.fetch, in_flight), self.on_throttle)",
        (HOSTS + "::test_a_slow_and_a_throttling_host_hold_no_other_host_up",),
    ),
    Mutant(
        "hosts-share-one-fifo-queue",
        "a slow or throttled host's queue never holds another host up (architecture)",
        "imgflow/engine/hosts.py",
        "                host = host_key(item.url)\n",
        '                host = "all"\n',
        (HOSTS + "::test_a_slow_and_a_throttling_host_hold_no_other_host_up",),
    ),
    Mutant(
        "no-total-cap-across-hosts",
        "--max-in-flight caps requests in flight across all hosts (architecture)",
        "imgflow/local/runner.py",
        "            max_connections=in_flight,\n            politeness=politeness,\n",
        "            max_connections=4 * in_flight,\n            politeness=politeness,\n",
        (HOSTS + "::test_max_in_flight_holds_across_all_hosts",),
    ),
    Mutant(
        "lookup-holds-a-slot",
        "a host's slow DNS lookup holds none of the requests in flight of others (architecture)",
        "imgflow/engine/transport/pool.py",
        "        if not self._idle.get(route):\n",
        "        if False:\n",
        (HOSTS + "::test_a_host_whose_lookup_is_slow_holds_no_slot_of_the_others",),
    ),
    Mutant(
        "idle-connections-per-host-unbounded",
        "idle connections of every host together stay within the pool (architecture)",
        "imgflow/engine/transport/pool.py",
        "            if self._idle_total >= self._max_idle:\n",
        "            if False:\n",
        (HOSTS + "::test_idle_connections_of_every_host_stay_within_the_pool",),
    ),
    Mutant(
        "idle-eviction-closes-a-busy-hosts-connection",
        "the idle connection closed for room is the one idle the longest (architecture)",
        "imgflow/engine/transport/pool.py",
        "        conn, route = self._idle_since.popitem(last=False)\n",
        "        conn, route = self._idle_since.popitem(last=True)\n",
        (HOSTS + "::test_idle_connections_of_every_host_stay_within_the_pool",),
    ),
    Mutant(
        "idle-budget-only-the-requests-in-flight",
        "hosts beyond the requests in flight keep their idle connections (architecture)",
        "imgflow/engine/transport/pool.py",
        "    return max(max_connections, min(IDLE_CONNECTIONS, limit))\n",
        "    return max_connections\n",
        (HOSTS + "::test_hosts_beyond_the_requests_in_flight_keep_their_connections",),
    ),
    Mutant(
        "breaker-one-late",
        "a host is paused after job.host_failures connection failures in a row (architecture)",
        "imgflow/engine/breaker.py",
        "        if count >= self.threshold:",
        "        if count > self.threshold:",
        (HOSTS + "::test_a_host_refusing_connections_is_paused_after_n_failures",),
    ),
    Mutant(
        "dns-asked-per-request",
        "one DNS lookup per host per run (architecture)",
        "imgflow/engine/dns.py",
        "            if entry is None or self._clock() >= entry.expires:",
        "            if True:",
        (HOSTS + "::test_a_name_that_does_not_resolve_is_looked_up_once",),
    ),
    Mutant(
        "slow-host-backlog-fills-the-lookahead",
        "a slow host's backlog never stops the reader from reaching other hosts (architecture)",
        "imgflow/engine/hosts.py",
        "                    if spill is not None:  # its share is held: the rest waits on disk\n",
        "                    if False:\n",
        (HOSTS + "::test_a_slow_hosts_backlog_past_the_lookahead_holds_no_other_host_up",),
    ),
    Mutant(
        "host-lines-not-kept",
        "the paused hosts' and DNS lines are in run -o json and in status (architecture)",
        "imgflow/local/index/runs.py",
        '                    column_or("host_notes", have),\n',
        '                    "NULL",\n',
        (HOSTS + "::test_the_host_lines_are_in_the_json_document_and_in_status",),
    ),
    # -- exit codes ---------------------------------------------------------------------------
    Mutant(
        "usage-exit-1",
        "exit 2 for bad usage, config or input (README)",
        "imgflow/errors.py",
        '    """The user\'s input is wrong; nothing was written."""\n\n    exit_code = 2',
        '    """The user\'s input is wrong; nothing was written."""\n\n    exit_code = 1',
        ("tests/test_cli.py::test_bad_input_is_one_line_exit_2_and_writes_nothing",),
    ),
    Mutant(
        "failure-exit-0",
        "exit 1 when an image failed (README)",
        "imgflow/cli/follow.py",
        "return 0 if outcome.ok else 1",
        "return 0",
        ("tests/test_cli.py::test_run_json_and_exit_codes",),
    ),
    # -- config: flags over IMGFLOW_* over the file, every value checked ----------------------
    Mutant(
        "override-dropped",
        "command-line flags override the file and IMGFLOW_* (config.py, README)",
        "imgflow/config.py",
        "cfg = dataclasses.replace(cfg, **{attr: dataclasses.replace(current, **given)})",
        "cfg = dataclasses.replace(cfg, **{attr: current})",
        ("tests/test_config.py::test_precedence_flags_over_env_over_file",),
    ),
    Mutant(
        "backend-flag-dropped",
        "--backend chooses the backend (README)",
        "imgflow/config.py",
        "cfg = dataclasses.replace(cfg, backend=backend)",
        "cfg = dataclasses.replace(cfg)",
        ("tests/test_config.py::test_overrides_set_the_backend_and_are_checked_like_the_file",),
    ),
    Mutant(
        "override-unchecked",
        "errors name the key, whether a value comes from a file or a flag (architecture)",
        "imgflow/config.py",
        "        cfg = dataclasses.replace(cfg, **{attr: dataclasses.replace(current, **given)})\n"
        "    _validate(cfg)",
        "        cfg = dataclasses.replace(cfg, **{attr: dataclasses.replace(current, **given)})",
        ("tests/test_config.py::test_overrides_set_the_backend_and_are_checked_like_the_file",),
    ),
    Mutant(
        "port-range-unchecked",
        "serve.port is 0 to 65535 (imgflow.yaml.example)",
        "imgflow/config.py",
        "(0 <= cfg.serve.port <= 65535,",
        "(0 <= cfg.serve.port,",
        ("tests/test_config.py::test_errors_name_the_key",),
    ),
    Mutant(
        "user-agent-unchecked",
        "a User-Agent is one line, from fetch.user_agent or --user-agent (imgflow.yaml.example)",
        "imgflow/network_checks.py",
        'if any(c in value for c in "\\r\\n\\0"):',
        "if False:",
        (
            "tests/test_request_options.py::test_bad_network_keys_name_the_key",
            "tests/test_request_options.py::test_cli_bad_request_options",
        ),
    ),
    Mutant(
        "tolerate-any",
        "exit 0 only when failures are within --tolerate-failures PERCENT (README)",
        "imgflow/engine/records.py",
        "return tolerate_percent > 0 and self.failed_percent() <= tolerate_percent",
        "return tolerate_percent >= 0 and self.failed_percent() <= tolerate_percent + 100",
        (
            "tests/test_local_run.py::test_demo_job_stores_everything_but_the_missing_flag",
            "tests/test_local_run.py::test_tolerated_failures_succeed",
        ),
    ),
    Mutant(
        "interrupt-exit-1",
        "exit 130 when interrupted (README)",
        "imgflow/errors.py",
        "    exit_code = 130",
        "    exit_code = 1",
        ("tests/test_cli.py::test_killed_run_is_consistent_and_a_rerun_completes",),
    ),
    # -- the original messages ------------------------------------------------------------------
    Mutant(
        "not-found-message",
        "Could not find: <url> (README)",
        "imgflow/engine/messages.py",
        'return f"{NOT_FOUND}: {url}"',
        'return f"{NOT_FOUND} {url}"',
        ("tests/test_fetch.py::test_404_uses_the_original_message",),
    ),
    Mutant(
        "http-error-message",
        "HTTP error 500 - Internal Server Error: <url> (README)",
        "imgflow/engine/messages.py",
        'return f"{HTTP_ERROR} {code} - {reason}: {url}"',
        'return f"{HTTP_ERROR} {code}: {url}"',
        ("tests/test_fetch.py::test_persistent_502_fails_after_retries",),
    ),
    # -- failure kinds ---------------------------------------------------------------------------
    Mutant(
        "404-kind-wrong",
        "every failed record carries its failure kind, set where it fails (failureKind)",
        "imgflow/engine/outcome.py",
        "return FetchFailure(FailureKind.NOT_FOUND, messages.not_found(url), status, attempts)",
        "return FetchFailure(FailureKind.HTTP_ERROR, messages.not_found(url), status, attempts)",
        (f"{FETCH}::test_every_failure_carries_its_kind",),
    ),
    Mutant(
        "cut-body-kind-reset",
        "a body cut short is an incomplete body, by its type (failureKind incomplete-body)",
        "imgflow/engine/outcome.py",
        "        return retry(FailureKind.INCOMPLETE, url, _at(target, str(exc)))",
        "        return retry(FailureKind.CONNECTION_RESET, url, _at(target, str(exc)))",
        (f"{FETCH}::test_every_failure_carries_its_kind",),
    ),
    Mutant(
        "record-drops-kind",
        "a failed record's JSON carries its failureKind",
        "imgflow/engine/batch.py",
        "        failure_kind=failure.kind,",
        "        failure_kind=None,",
        (f"{FETCH}::test_failed_records_carry_their_kind_in_json",),
    ),
    Mutant(
        "sns-summary-swapped",
        "the SNS summary for many failures is right (imgflow.yaml.example)",
        "imgflow/aws/runtime/consolidate.py",
        '"summary": f"{summary.failed} of {summary.total} images failed to download"',
        '"summary": f"{summary.total} of {summary.failed} images failed to download"',
        ("tests/aws/test_pipeline.py::test_more_failures_than_inline_max_send_the_summary",),
        timeout=300.0,
    ),
    Mutant(
        "sns-inline-off-by-one",
        "up to inline_max_messages failures, the message is the original array (yaml.example)",
        "imgflow/aws/runtime/consolidate.py",
        "if len(failures) <= inline_max and summary.failed <= inline_max:",
        "if len(failures) < inline_max and summary.failed < inline_max:",
        ("tests/aws/test_pipeline.py::test_more_failures_than_inline_max_send_the_summary",),
        timeout=300.0,
    ),
    Mutant(
        "download-rederives-keys",
        "a batch's items are fetched and stored as the plan made them (docs/aws.md)",
        "imgflow/aws/runtime/download.py",
        "    return run_batch_blocking(\n        spec.items,\n",
        "    return run_batch_blocking(\n"
        '        tuple(dataclasses.replace(i, key=i.url.split("://")[1]) for i in spec.items),\n',
        (
            "tests/aws/test_pipeline.py::"
            "test_a_batch_is_fetched_under_its_items_keys_and_indexes_their_meta",
        ),
        timeout=300.0,
    ),
    Mutant(
        "index-drops-meta",
        "the index row keeps the item's meta (docs/aws.md)",
        "imgflow/aws/runtime/index.py",
        "    if meta:\n",
        "    if False:\n",
        (
            "tests/aws/test_pipeline.py::"
            "test_a_batch_is_fetched_under_its_items_keys_and_indexes_their_meta",
        ),
        timeout=300.0,
    ),
    Mutant(
        "lambda-timeout-not-retried",
        "a batch that timed out (Sandbox.Timedout, as Lambda answers) is retried once",
        "infra/statemachine.py",
        '"ErrorEquals": [TIMEOUT_LAMBDA_ERROR, UNKNOWN_LAMBDA_ERROR],',
        '"ErrorEquals": [UNKNOWN_LAMBDA_ERROR],',
        (
            "tests/aws/test_plan_batches.py::"
            "test_every_lambda_task_retries_unknown_once_and_service_errors_more",
        ),
    ),
    Mutant(
        "lambda-unknown-retried-like-transient",
        "a batch that timed out (Lambda.Unknown) is retried at most once (docs/aws.md)",
        "infra/statemachine.py",
        "UNKNOWN_ATTEMPTS = 1",
        "UNKNOWN_ATTEMPTS = 4",
        (
            "tests/aws/test_plan_batches.py::"
            "test_every_lambda_task_retries_unknown_once_and_service_errors_more",
        ),
    ),
    Mutant(
        "batch-bytes-unbounded",
        "no Map child input over 200 KB: batches split by bytes (docs/aws.md)",
        "imgflow/aws/runtime/plan.py",
        "if batch and (len(batch) >= size or used + cost > limit):",
        "if batch and len(batch) >= size:",
        ("tests/aws/test_plan_batches.py::test_batches_split_by_bytes_when_paths_are_long",),
    ),
    # -- a urls job on aws: one host per batch, a host's batches chained in one lane -----------
    Mutant(
        "url-lanes-mix-hosts",
        "a urls job's batches hold one host each, the hosts' lanes side by side (architecture)",
        "imgflow/aws/runtime/lane_plan.py",
        "(ranks.setdefault(host_of(item.url), len(ranks)), item)",
        '(ranks.setdefault("", len(ranks)), item)',
        (URL_LANES_STREAM, URL_LANES),
    ),
    Mutant(
        "url-lanes-unchained",
        "a host's batches run one after the other: its cap holds across Lambdas (architecture)",
        "imgflow/aws/runtime/lane_plan.py",
        'row = {**json.loads(line), "last": last}',
        'row = {**json.loads(line), "last": json.loads(line)["batch"]}',
        (URL_LANES_STREAM, URL_LANES),
    ),
    Mutant(
        "url-lane-stops-after-first-batch",
        "a lane runs every batch of its host (architecture)",
        "infra/statemachine.py",
        '                    {**_present("$.next"), "Next": "NextBatch"},\n',
        "",
        (URL_LANES,),
    ),
    Mutant(
        "url-lane-stops-at-a-crash",
        "a crashed batch is recorded failed and its lane's later batches still run (architecture)",
        "imgflow/aws/runtime/download.py",
        'return {**counts(spec, records), "next": spec.next_ref()}',
        'return {**counts(spec, records), "next": None}',
        (URL_LANES + "::test_a_crashed_batch_of_a_lane_is_recorded_and_the_lane_goes_on",),
    ),
    Mutant(
        "url-meta-not-in-results",
        "an item's metadata is in its result record on aws (architecture)",
        "imgflow/aws/runtime/jobs.py",
        '        data["meta"] = dict(meta)',
        "        pass",
        (URL_LANES,),
    ),
    Mutant(
        "url-rejected-entries-unreported",
        "a bad urls entry fails on its own, named by its index (architecture)",
        "imgflow/aws/runtime/plan.py",
        "    if rejected:  # a last batch, run by no lane: its results are written now",
        "    if False:",
        ("tests/aws/test_plan_batches.py::test_a_urls_job_is_planned_in_lanes_of_one_host_each",),
    ),
    Mutant(
        "serve-urls-bad-entry-dropped",
        "imgflow serve fails a bad urls entry alone, named by its index (architecture)",
        "imgflow/sources/job_json.py",
        " for e in self._in_order()]",
        " for e in self.entries]",
        (
            "tests/test_serve.py::"
            "test_a_job_of_urls_from_several_hosts_runs_beside_the_original_body",
        ),
    ),
    Mutant(
        "iam-download-cannot-read-lane-batches",
        "a urls job's lanes run under the download role's policy (docs/aws.md)",
        "infra/iam.py",
        '_allow("ReadLaneBatches", ["s3:GetObject"], [f"{_jobs_objects(names)}/batches/*"]),',
        '_allow("ReadLaneBatches", ["s3:GetObject"], [f"{names.bucket_arn}/{prefix}*"]),',
        ("tests/aws/test_roles_enforced.py::test_the_pipeline_runs_with_each_role_enforced",),
    ),
    Mutant(
        "serve-urls-meta-dropped",
        "imgflow serve keeps a urls entry's metadata with its image (README)",
        "imgflow/sources/job_json.py",
        "else url_entry(e) for e in",
        "else e.url for e in",
        (
            "tests/test_serve.py::"
            "test_a_job_of_urls_from_several_hosts_runs_beside_the_original_body",
        ),
    ),
    # -- IAM least privilege --------------------------------------------------------------------
    Mutant(
        "iam-download-reads-all-job-objects",
        "the download role reads only the job's robots.txt answers and lane batches (architecture)",
        "infra/iam.py",
        '_allow("ReadRobots", ["s3:GetObject"], [f"{_jobs_objects(names)}/robots/*"]),',
        '_allow("ReadRobots", ["s3:GetObject"], [_jobs_objects(names)]),',
        (f"{IAM}::test_download_role_writes_its_bucket_and_table_only",),
    ),
    Mutant(
        "iam-plan-cannot-read-jobs",
        "the Lambdas can read their job objects (least privilege, but enough)",
        "infra/iam.py",
        '_allow("JobObjects", ["s3:GetObject", "s3:PutObject"], [_jobs_objects(names)]),\n'
        '        _logs(names, "plan"),',
        '_allow("JobObjects", ["s3:PutObject"], [_jobs_objects(names)]),\n'
        '        _logs(names, "plan"),',
        (
            "tests/aws/test_iam_policies.py::test_every_call_each_role_makes_is_allowed_and_nothing_unused",
            "tests/aws/test_roles_enforced.py::test_the_pipeline_runs_with_each_role_enforced",
        ),
        timeout=300.0,
    ),
    Mutant(
        "iam-download-writes-anywhere",
        "the download role writes images under its prefix only (least privilege)",
        "infra/iam.py",
        '    uploads = [f"{names.bucket_arn}/{prefix}*"]',
        '    uploads = [f"{names.bucket_arn}/*"]',
        ("tests/aws/test_iam_policies.py::test_download_role_writes_its_bucket_and_table_only",),
    ),
    Mutant(
        "iam-shards-always-writable",
        "the download role writes shards/ only when deployed with a shard layout (least privilege)",
        "infra/iam.py",
        "    if shards:\n        uploads.append",
        "    if True:\n        uploads.append",
        (f"{IAM}::test_the_download_role_writes_shards_only_with_a_shard_layout",),
    ),
    Mutant(
        "iam-publish-wildcard",
        "the state machine publishes to its own topic only (least privilege)",
        "infra/iam.py",
        '_allow("PublishFailures", ["sns:Publish"], [names.topic_arn]),',
        '_allow("PublishFailures", ["sns:Publish"], ["*"]),',
        ("tests/aws/test_iam_policies.py::test_no_wildcard_resource_outside_logs",),
    ),
    # -- idempotent deploy, teardown keeps data ---------------------------------------------------
    Mutant(
        "deploy-always-updates",
        "a second deploy makes no mutating call (docs/aws.md)",
        "imgflow/aws/deploy/plan.py",
        "    if changes:\n        return Step(",
        "    if True:\n        return Step(",
        ("tests/aws/test_deploy.py::test_second_deploy_makes_no_mutating_call",),
    ),
    Mutant(
        "deploy-lambda-pending",
        "deploy waits while a function is Pending or updating (real AWS)",
        "imgflow/aws/deploy/functions.py",
        "            wait_for(ctx, ACTIVE, name)\n            return",
        "            return",
        (
            "tests/aws/test_deploy_lambda_states.py::"
            "test_functions_are_active_and_invocable_when_a_first_deploy_returns",
            "tests/aws/test_deploy_lambda_states.py",
        ),
    ),
    Mutant(
        "teardown-drops-bucket",
        "teardown keeps the images unless --delete-data (docs/aws.md)",
        "imgflow/aws/teardown.py",
        "        if not delete_data:\n            return",
        "        if delete_data:\n            return",
        ("tests/aws/test_teardown.py::test_data_is_kept_without_delete_data",),
    ),
    Mutant(
        "teardown-drops-table",
        "teardown keeps the index unless --delete-data (docs/aws.md)",
        "imgflow/aws/teardown.py",
        '.get("Count", 0) and not delete_data:',
        '.get("Count", 0) and delete_data:',
        ("tests/aws/test_teardown.py::test_data_is_kept_without_delete_data",),
    ),
    # -- revalidation (--refresh) ----------------------------------------------------------
    Mutant(
        "refresh-sends-no-etag",
        "--refresh sends If-None-Match with the stored ETag (README)",
        "imgflow/engine/fetch.py",
        '        headers.append(("If-None-Match", validators.etag))',
        "        pass",
        (f"{REV}::test_conditional_headers_carry_the_stored_validators",),
    ),
    Mutant(
        "refresh-304-is-a-failure",
        "--refresh: a 304 keeps the stored file, outcome unchanged (README)",
        "imgflow/engine/fetch.py",
        "            if status == 304 and validators:",
        "            if status == 304 and not validators:",
        (f"{REV}::test_conditional_headers_carry_the_stored_validators",),
    ),
    Mutant(
        "refresh-skips",
        "--refresh re-checks stored images instead of skipping them (README)",
        "imgflow/engine/batch.py",
        "    if stored is not None and not refresh:",
        "    if stored is not None:",
        (f"{REV}::test_refresh_keeps_what_the_server_confirms_and_replaces_what_changed",),
    ),
    Mutant(
        "refresh-update-not-indexed",
        "--refresh: a 200 replaces the file and its index row (README)",
        "imgflow/local/index/images.py",
        "            if r.outcome.wrote\n",
        "            if r.outcome is Outcome.STORED\n",
        (f"{REV}::test_refresh_keeps_what_the_server_confirms_and_replaces_what_changed",),
    ),
    Mutant(
        "refresh-interrupt-drops-update",
        "an interrupt never loses data already stored (architecture: revalidation)",
        "imgflow/local/store.py",
        "[k for k in self._unsettled if k not in keep]",
        "list(self._unsettled)",
        (f"{REV}::test_an_interrupt_keeps_a_new_version_that_replaced_a_stored_file",),
    ),
    Mutant(
        "seal-skips-renames-in-progress",
        "no file is left without its index row after an interrupt (architecture: atomic files)",
        "imgflow/local/store.py",
        "            self._lock.wait_for(lambda: not self._renaming)",
        "            pass",
        (
            "tests/test_atomic_store.py::"
            "test_a_seal_waits_for_renames_in_progress_so_none_is_left_unsettled",
        ),
    ),
    Mutant(
        "group-renames-before-sync",
        "with fsync on, a file is at its final name only once its bytes are on disk"
        " (architecture: durability in groups)",
        "imgflow/local/durability.py",
        "                    synced = await self._synced(loop)",
        "                    synced = True",
        (
            "tests/test_durability.py::"
            "test_every_file_is_synced_after_it_is_handed_over_and_before_it_is_renamed",
        ),
    ),
    Mutant(
        "group-sync-trusts-any-file-system",
        "with fsync on, a file is at its final name only once its bytes are on disk, on any"
        " file system (architecture: durability in groups)",
        "imgflow/local/durability.py",
        "    if SYNCFS is None or fs_type(folder) not in SYNCFS_SAFE:",
        "    if SYNCFS is None:",
        (
            "tests/test_durability.py::"
            "test_on_a_file_system_not_known_to_sync_whole_each_file_gets_its_own_fsync",
        ),
    ),
    Mutant(
        "group-waits-with-open-files",
        "a request holds at most its connection and its part file (architecture: descriptors)",
        "imgflow/local/store.py",
        "        mtime_ns = self._store._close(fd, self._name, False)\n",
        "        mtime_ns = os.fstat(fd).st_mtime_ns\n",
        (
            "tests/test_durability.py::test_files_waiting_for_their_group_hold_no_descriptor",
            "tests/test_descriptors.py::test_a_low_descriptor_limit_stores_every_image_and_warns_once",
        ),
    ),
    Mutant(
        "group-waits-for-a-slow-sync",
        "with fsync on, another program's writes do not hold up imgflow's commits"
        " (architecture: durability in groups)",
        "imgflow/local/durability.py",
        "            return await asyncio.wait_for(asyncio.shield(syncing), SYNC_PATIENCE)",
        "            return await syncing",
        (
            "tests/test_durability.py::"
            "test_a_slow_sync_does_not_hold_its_group_each_file_gets_its_own_fsync",
        ),
    ),
    Mutant(
        "group-syncs-over-others-writes",
        "with fsync on, another program's writes do not hold up imgflow's commits"
        " (architecture: durability in groups)",
        "imgflow/local/durability.py",
        "        if dirty_bytes() > DIRTY_LIMIT:",
        "        if False:",
        (
            "tests/test_durability.py::"
            "test_with_much_waiting_to_be_written_a_group_is_not_synced_whole",
        ),
    ),
    Mutant(
        "failed-group-sync-skips-own-fsync",
        "with fsync on, a file is at its final name only once its bytes are on disk"
        " (architecture: durability in groups)",
        "imgflow/local/durability.py",
        "self._publish, key, name, mtime_ns, True)",
        "self._publish, key, name, mtime_ns, False)",
        (
            "tests/test_durability.py::"
            "test_a_failed_sync_gives_each_file_its_own_fsync_before_its_rename",
        ),
    ),
    Mutant(
        "refusal-burst-steps-backoff",
        "refusals answering requests sent before a cool-down are one signal (architecture)",
        "imgflow/engine/politeness.py",
        "        if now < self.cool_until:\n            # An answer to a request sent before",
        "        if False:\n            # An answer to a request sent before",
        ("tests/test_throttling.py::test_a_burst_of_refusals_is_one_step_of_the_backoff",),
    ),
    Mutant(
        "burst-refusal-spends-the-image-signal",
        "an image's refusal that came with others' in a burst leaves it its own signal"
        " (architecture)",
        "imgflow/engine/fetch.py",
        "signals += gate.release(signal, wait)",
        "signals += gate.release(signal, wait) or signal is Signal.THROTTLED",
        (
            "tests/test_throttling.py::"
            "test_a_refusal_taken_as_part_of_a_burst_leaves_the_image_its_own_signal",
        ),
    ),
    Mutant(
        "rate-spacing-lost",
        "with a burst of 1, requests leave 1/rate apart even after a late one (README --rate)",
        "imgflow/engine/politeness.py",
        "self._tokens + (now - self._filled) * rate)",
        "self._tokens + (now - self._filled) * rate) + 0.9",
        ("tests/test_throttling.py::test_a_late_departure_pushes_the_next_ones_back",),
    ),
    # -- large bodies: read in a thread of their own, framed as strictly as on the loop ------
    Mutant(
        "direct-body-on-the-loop",
        "a large body goes from socket to file in a thread of its own (architecture)",
        "imgflow/engine/body.py",
        "DIRECT_BYTES = 256 * 1024",
        "DIRECT_BYTES = 1 << 62",
        (f"{DIRECT}::test_a_large_body_is_written_by_its_own_thread_not_the_event_loop",),
    ),
    Mutant(
        "direct-leftover-reused",
        "bytes after a complete large body close its connection (architecture: large bodies)",
        "imgflow/engine/transport/direct.py",
        "    return Rest(leftover=bool(extra), closed=not extra)",
        "    return Rest(leftover=False, closed=False)",
        (f"{DIRECT}::test_bytes_right_after_a_large_body_close_its_connection",),
    ),
    Mutant(
        "direct-short-body-stored",
        "a large body cut short is Incomplete body, never stored (architecture: large bodies)",
        "imgflow/engine/transport/direct.py",
        "            if n == 0:\n                raise IncompleteBody(",
        "            if n == 0:\n                return Rest(leftover=False, closed=True)\n"
        "            if n < 0:\n                raise IncompleteBody(",
        (f"{DIRECT}::test_a_large_body_cut_short_is_incomplete_and_leaves_nothing",),
    ),
    Mutant(
        "direct-no-read-timeout",
        "a large body that stalls times out after fetch.timeout (architecture: large bodies)",
        "imgflow/engine/transport/stream.py",
        "exchange.received, write, self._timeout, stop",
        "exchange.received, write, None, stop",
        (f"{DIRECT}::test_a_large_body_that_stalls_times_out",),
        timeout=90.0,
    ),
    Mutant(
        "direct-cancel-reads-on",
        "a cancel stops a large body's thread before its part goes (architecture: large bodies)",
        "imgflow/engine/transport/stream.py",
        "            stop.set()\n            conn.shut()\n",
        "            pass\n",
        (f"{DIRECT}::test_a_cancelled_large_body_stops_its_thread_before_the_part_is_removed",),
    ),
    Mutant(
        "abort-fails-after-interrupt",
        "an interrupt leaves nothing half-written and ends the run (README, architecture)",
        "imgflow/engine/body.py",
        "                except RuntimeError:  # the run's threads are gone",
        "                except KeyError:  # the run's threads are gone",
        (f"{DIRECT}::test_an_abort_after_the_runs_threads_stopped_still_discards_the_part",),
    ),
    Mutant(
        "signal-dropped-in-callback",
        "a signal ends the command with one line and exit 130 at any moment (architecture)",
        "imgflow/signals.py",
        "                _raise_again(signum, delay)\n",
        "                _previous_hook[0](unraisable)\n",
        ("tests/test_signals.py",),
    ),
    Mutant(
        "signal-dropped-in-its-own-hook",
        "a signal sent again while the hook that took it back still runs is not dropped",
        "imgflow/signals.py",
        "                delay = max(2 * delay, 0.01)\n",
        "                return\n",
        ("tests/test_signals.py",),
    ),
    # -- concurrent runs: a new data folder opened by runs together ---------------------------
    Mutant(
        "wal-switch-not-retried",
        "runs that open a new data folder together all open it (architecture)",
        "imgflow/local/index/connection.py",
        '        "locked",\n        seconds=BUSY_TIMEOUT_MS',
        '        "never retried",\n        seconds=BUSY_TIMEOUT_MS',
        (
            f"{REV}::test_a_switch_to_wal_refused_as_locked_is_tried_again",
            f"{REV}::test_a_new_database_opened_at_once_by_several_runs_switches_to_wal_for_each",
        ),
    ),
    # -- a compressed body is stored only when its stream ended ------------------------------
    Mutant(
        "decoder-end-unchecked",
        "a bad server never makes imgflow store wrong bytes: a cut compressed stream fails"
        " (README)",
        "imgflow/engine/body.py",
        "        decoder.finish()\n    except TruncatedStream",
        "    except TruncatedStream",
        ("tests/test_compressed_cut.py",),
    ),
    Mutant(
        "gzip-first-member-only",
        "a multi-member gzip body is decoded whole (README)",
        "imgflow/engine/decode.py",
        "        if rest.startswith(_GZIP_MAGIC):\n            self._after",
        "        if False:\n            self._after",
        ("tests/test_compressed_cut.py::test_every_member_of_a_multi_member_gzip_body_is_decoded",),
    ),
    Mutant(
        "credentials-cross-origins",
        "credential headers go only to the image URL's origin, never past a redirect away (README)",
        "imgflow/engine/fetch.py",
        "            away = away or _origin(result) != _origin(url)",
        "            away = False",
        ("tests/test_redirect_credentials.py",),
    ),
    Mutant(
        "head-limit-per-read",
        "a response head over 64 KB fails as Bad response (README)",
        "imgflow/engine/transport/parse.py",
        "            if len(data) > room:",
        "            if len(data) > room + HEAD_LIMIT:",
        ("tests/test_framing.py::test_one_head_limit_of_64_kb",),
    ),
    Mutant(
        "redirect-target-refusal-charges-origin",
        "politeness is per host: a redirect target's refusal slows that host, not the one"
        " that redirected (architecture)",
        "imgflow/engine/fetch.py",
        "isinstance(result, Retry) and result.host:",
        "isinstance(result, Retry) and not result.host:",
        ("tests/test_redirect_target.py",),
    ),
    Mutant(
        "transfer-coding-unnamed",
        "a transfer coding other than chunked fails as Bad response naming it (README)",
        "imgflow/engine/transport/parse.py",
        "        if self.coding is not None:",
        "        if False:",
        ("tests/test_framing.py::test_a_transfer_coding_other_than_chunked_is_named",),
    ),
    Mutant(
        "chunk-extension-whitespace-refused",
        "chunk extensions are accepted with whitespace before their ; (README)",
        "imgflow/engine/transport/parse.py",
        "lenient_spaces_after_chunk_size=True",
        "lenient_spaces_after_chunk_size=False",
        ("tests/test_framing.py::test_chunk_extension_after_whitespace_is_accepted",),
    ),
    # -- field round 3, local side (issue 30) ---------------------------------------------
    Mutant(
        "in-flight-ignores-descriptors",
        "requests in flight fit the file descriptor limit (README)",
        "imgflow/local/descriptors.py",
        "    if wanted <= allowed:",
        "    if True:",
        ("tests/test_descriptors.py::test_fit_caps_requests_to_a_limit_that_cannot_be_raised",),
    ),
    Mutant(
        "full-disk-loses-report",
        "a run's summary comes out whatever the disk; failures.json when space allows (README)",
        "imgflow/local/consolidate.py",
        "        except (OSError, StorageError) as exc:",
        "        except StorageError as exc:",
        ("tests/test_full_disk.py::test_a_disk_without_a_block_left_at_the_end_still_reports",),
    ),
    Mutant(
        "status-follows-links",
        "every command that opens a data folder refuses links in it (README, architecture)",
        "imgflow/backends/local.py",
        "        refuse_linked(self.folder)\n        if not",
        "        if not",
        ("tests/test_folder_links.py::test_a_linked_runs_folder_or_index_is_refused[status-runs]",),
    ),
    Mutant(
        "copied-folder-fetched-again",
        "a rerun skips a stored file whose time changed but whose bytes did not (README)",
        "imgflow/local/store.py",
        "                same = sha256_of(stream) == sha256",
        "                same = False",
        ("tests/test_copied_folder.py::test_a_rerun_in_a_copied_folder_fetches_nothing_again",),
    ),
    Mutant(
        "check-locks-read-only-media",
        "plain check works on a read-only data folder (README)",
        "imgflow/local/folder.py",
        "            if reading and exc.errno == errno.EROFS:",
        "            if False:",
        ("tests/test_readonly_folder.py::test_check_verifies_a_read_only_folder",),
    ),
    Mutant(
        "lambda-ignores-time-left",
        "a download batch stops starting requests before the function's timeout (docs/aws.md)",
        "imgflow/aws/runtime/download.py",
        "        may_start=time_watch(settings, clock),",
        "        may_start=None,",
        (
            "tests/aws/test_lambda_timeout.py"
            "::test_a_slow_batch_stops_in_time_and_its_rest_runs_again",
        ),
    ),
    Mutant(
        "index-key-unbounded",
        "a URL of any length is indexed: long keys use a digest (docs/aws.md)",
        "imgflow/aws/runtime/index.py",
        "    if len(url.encode()) <= MAX_KEY_BYTES:\n        return url",
        "    if True:\n        return url",
        ("tests/aws/test_index_keys.py::test_a_url_of_any_length_is_indexed_and_found",),
    ),
    Mutant(
        "plan-failure-sends-no-notice",
        "every failed execution ends with the SNS notice, wherever it fails (docs/aws.md)",
        "infra/statemachine.py",
        '                Catch=_caught("Plan"),\n',
        "",
        ("tests/aws/test_notify_failures.py::test_an_invalid_job_fails_with_a_notice",),
    ),
    # -- the terminal: whole run ids, the next command, one JSON document ----------------------
    Mutant(
        "tables-cut-kept-columns",
        "run ids and counts are never cut: other columns shrink or drop first (README)",
        "imgflow/ui/fit.py",
        "    while least() > width and any(columns[i].keep for i in shown):",
        "    while False:",
        ("tests/test_terminal.py::test_live_line_final_table_and_status_fit",),
    ),
    Mutant(
        "interrupt-without-next-command",
        "after Ctrl-C, done/total and the command that continues are printed (README)",
        "imgflow/backends/local.py",
        "            raise self._interrupted(run_id, str(exc)) from None",
        "            raise",
        ("tests/test_terminal.py::test_the_interrupt_says_how_far_and_how_to_continue",),
    ),
    Mutant(
        "interrupted-json-run-prints-nothing",
        "run -o json stopped by a signal prints the run so far, saying where it stopped (README)",
        "imgflow/cli/commands/run.py",
        "        if output is Output.json:\n            fields =",
        "        if False:\n            fields =",
        (
            "tests/test_interrupted_json.py::"
            "test_an_interrupted_json_run_prints_its_document_so_far",
        ),
    ),
    Mutant(
        "completion-offers-given-options",
        "tab completion answers as Typer would, from a table (README, architecture)",
        "imgflow/cli/complete.py",
        "        if not hidden and (multiple or index not in given)",
        "        if not hidden",
        ("tests/test_completion.py::test_the_answers_are_typers",),
    ),
    Mutant(
        "status-ignores-retries",
        "status after a retry shows the latest outcome per image (docs/aws.md)",
        "imgflow/aws/job_latest.py",
        "            yield newer.pop(record.url, record)",
        "            yield record",
        ("tests/aws/test_cli_aws.py::test_retry_new_and_the_executions_listing",),
        timeout=400.0,
    ),
    Mutant(
        "throttles-without-refusal-rate",
        "a throttled run says how often it was refused per image (README)",
        "imgflow/documents/text.py",
        '    rate = f" for {plural(images, \'image\')} ({refused / images:.0%})" if images else ""',
        '    rate = ""',
        (
            "tests/test_throttling.py::"
            "test_the_throttle_line_gives_the_refusals_per_image_and_what_lessens_them",
            "tests/test_throttling.py::"
            "test_a_429_storm_without_retry_after_ends_with_every_image_stored",
        ),
    ),
    Mutant(
        "validators-not-read-back",
        "etag and lastModified in --output json come from the index (README)",
        "imgflow/local/index/results.py",
        "                etag=row[11],",
        "                etag=None,",
        ("tests/test_json_documents.py::test_run_status_retry_documents_and_validators",),
    ),
    # -- --workers: one run on several processes ----------------------------------------------
    Mutant(
        "worker-takes-permits-locally",
        "each host's --concurrency holds across every worker (architecture: workers)",
        "imgflow/local/workers/worker.py",
        "                politeness=politeness,\n",
        "                politeness=None,\n",
        ("tests/test_workers.py::test_workers_never_have_more_than_the_hosts_cap_in_flight",),
    ),
    Mutant(
        "lease-kept-and-given-back",
        "a worker's leased slots stay counted in the host's gate: the sum of leases never"
        " exceeds the cap (architecture: workers)",
        "imgflow/local/workers/permits.py",
        "                asyncio.get_running_loop().call_soon(self._tell_oks)\n"
        "            self._slot()\n",
        "                asyncio.get_running_loop().call_soon(self._tell_oks)\n"
        "            self._slot()\n"
        '            self.link.send("release", self.host, signal.value, retry_after)\n',
        ("tests/test_workers_permits.py::test_a_leased_slot_is_kept_or_given_back_never_both",),
    ),
    Mutant(
        "paced-grant-spaced-from-the-grant",
        "a rated host's next token is spaced from when the last grant reached its worker"
        " (architecture: workers)",
        "imgflow/local/workers/coordinator.py",
        "            gate.left(await left)\n",
        "            await left\n",
        (
            "tests/test_workers_permits.py::test_a_paced_grant_spaces_the_next_token_from_its_arrival",
        ),
    ),
    Mutant(
        "paced-grant-not-timed-by-its-request",
        "a paced grant is timed when its request takes it (architecture: workers)",
        "imgflow/local/workers/permits.py",
        "                waiter.set_result(paced)\n",
        "                waiter.set_result(None)\n",
        ("tests/test_workers_permits.py::test_a_paced_grant_is_timed_when_its_request_takes_it",),
    ),
    Mutant(
        "claim-requeues-finished-items",
        "a dead worker's unfinished items run again, finished ones never (architecture: workers)",
        "imgflow/local/workers/coordinator.py",
        "        return [item for item in self.items if item.url not in self.done]",
        "        return list(self.items)",
        (
            "tests/test_workers.py::"
            "test_a_killed_worker_has_its_images_run_again_and_the_run_finishes",
        ),
    ),
    Mutant(
        "coordinator-rate-per-worker",
        "--rate is the whole run's, not each worker's (architecture: workers)",
        "imgflow/local/workers/coordinator.py",
        '        gate = self.politeness.gate(host)\n        if kind == "cool":',
        '        gate = self.politeness.gate(f"{host}#{id(peer)}")\n        if kind == "cool":',
        ("tests/test_workers.py::test_a_rate_is_the_whole_runs_not_each_workers",),
    ),
    # -- shard layouts: a shard at a final name is whole and indexed; a URL in one shard ------
    Mutant(
        "shard-renamed-before-fsync",
        "a shard is written under a temporary name, fsynced, then renamed (architecture)",
        "imgflow/local/layouts/shards.py",
        "            os.fsync(shard.stream.fileno())",
        "            pass",
        (f"{SHARDS_COMMIT}::test_a_shard_is_fsynced_before_it_is_renamed",),
    ),
    Mutant(
        "shard-renamed-without-its-rows",
        "a shard's samples are indexed in the same step as its rename (architecture)",
        "imgflow/local/layouts/shards.py",
        "            for name in published:  # never a shard at a final name without its rows",
        "            for name in []:",
        (f"{SHARDS_COMMIT}::test_a_commit_that_fails_after_the_rename_leaves_no_shard_and_no_row",),
    ),
    Mutant(
        "shard-rows-without-their-place",
        "the index records each sample's shard and member (README)",
        "imgflow/local/index/__init__.py",
        "                self._index(run_id, records, now, dict.fromkeys(places, mtime), places)",
        "                self._index(run_id, records, now, dict.fromkeys(places, mtime))",
        (
            "tests/test_shards.py::test_webdataset_shards_read_back_with_tarfile_and_webdataset",
            f"{SHARDS_COMMIT}::test_a_commit_that_fails_after_the_rename_leaves_no_shard_and_no_row",
        ),
    ),
    Mutant(
        "shard-samples-never-intact",
        "a sample is never in two shards: a rerun skips what a shard holds (README)",
        "imgflow/local/layouts/shards.py",
        "        if found is None or found[1] != size or found[2] != sha256:",
        "        if True:",
        (f"{SHARDS_COMMIT}::test_every_url_once_across_shards_when_runs_repeat",),
    ),
    Mutant(
        "shard-unlisted-kept",
        "a shard renamed but never committed is removed by the next run (architecture)",
        "imgflow/local/layouts/shard_rewrite.py",
        "            if stats_run(shards, name) in runs:",
        "            if False:",
        (f"{SHARDS_COMMIT}::test_a_shard_renamed_but_never_committed_is_removed_by_the_next_run",),
    ),
    Mutant(
        "aws-shard-offset-at-the-header",
        "the aws report's thumbnails of shard samples are read with one ranged GET each, at"
        " the offset the shard's rows record (architecture)",
        "imgflow/aws/runtime/shards.py",
        "        at = self._offset + BLOCK  # the image's bytes, after its one header block",
        "        at = self._offset",
        (f"{AWS_SHARDS}::test_the_aws_report_embeds_thumbnails_read_from_shards_with_ranged_gets",),
    ),
    Mutant(
        "shard-superseded-sample-not-recounted",
        "a sample is never in two shards, also after --refresh or retry: the shards its"
        " samples leave are marked in its commit and rewritten without them (architecture)",
        "imgflow/local/layouts/shards.py",
        "            db.recount_shards(left)",
        "            db.recount_shards([])",
        (f"{SHARDS_REWRITE}::test_a_refresh_cuts_superseded_samples_and_removes_an_emptied_shard",),
    ),
    Mutant(
        "shard-forgotten-sample-left-in-its-old-shard",
        "a sample is never in two shards: one a run found not intact (its row forgotten, its"
        " shard marked in the same transaction) is cut from its old shard, also when a later"
        " run on workers fetches it (architecture)",
        "imgflow/local/index/images.py",
        "            self.recount_shards(sorted(holding))",
        "            self.recount_shards([])",
        (
            f"{SHARDS_REWRITE}::test_a_sample_a_run_finds_not_intact_is_cut_from_its_old_shard",
            f"{SHARDS_REWORKERS}::"
            "test_a_sample_found_not_intact_then_fetched_by_a_later_run_on_workers_is_in_one_shard",
        ),
    ),
    Mutant(
        "shard-rewrite-keeps-the-superseded-sample",
        "a shard's rewrite holds only the samples the index places in it (architecture)",
        "imgflow/local/layouts/webdataset.py",
        "                if stem in stems:",
        "                if True:",
        (
            f"{SHARDS_REWRITE}::"
            "test_a_refresh_cuts_superseded_samples_and_removes_an_emptied_shard[webdataset]",
        ),
    ),
    Mutant(
        "shard-rewrite-mark-cleared-first",
        "a rewrite cut short by a kill is finished by the next run: the stats file, its mark,"
        " is renamed last (architecture)",
        "imgflow/local/layouts/shard_rewrite.py",
        "        moves.append((partial_name(stats_name), stats_name))  # the mark cleared last",
        "        moves.insert(0, (partial_name(stats_name), stats_name))",
        (
            f"{SHARDS_REWRITE}::"
            "test_a_rewrite_cut_short_at_any_rename_is_finished_by_the_next_run[webdataset-1-2]",
        ),
    ),
    Mutant(
        "check-repair-leaves-the-bad-sample-in-its-shard",
        "check --repair cuts a bad sample from its shard, so the next run's fetch of it is"
        " its one sample (architecture)",
        "imgflow/local/check.py",
        "                    mend_folder(folder, db, fsync=True)",
        "                    pass",
        (
            f"{SHARDS_REWRITE}::"
            "test_check_repair_cuts_a_tampered_sample_and_the_next_run_fetches_it_again",
        ),
    ),
    Mutant(
        "two-workers-share-a-shard-number",
        "with --workers a shard is written by one worker, numbered once by the index's"
        " writer (architecture: workers)",
        "imgflow/local/layouts/shards.py",
        "        self._next = number + 1",
        "        self._next = number",
        (
            "tests/test_shards_workers.py::"
            "test_shards_two_workers_wrote_get_one_number_each_from_the_committer",
        ),
    ),
    Mutant(
        "worker-partial-shard-dropped",
        "a worker's last (or interrupted) partial shard is committed (architecture: workers)",
        "imgflow/local/workers/worker.py",
        "                worker.flush(final=True)  # a shard layout's last shard, however full",
        "                pass",
        (
            "tests/test_shards_workers.py::"
            "test_ctrl_c_commits_each_workers_partial_shard_and_a_rerun_completes",
        ),
    ),
    Mutant(
        "workers-end-before-the-plan-does",
        "workers claim a streamed table's batches while it is planned, and wait for more"
        " (architecture: workers)",
        "imgflow/local/workers/coordinator.py",
        "        elif not self.fed or (self._outstanding() and not peer.claims):",
        "        elif self._outstanding() and not peer.claims:",
        (
            "tests/test_workers.py::"
            "test_workers_claim_a_streamed_tables_batches_while_it_is_still_planned",
        ),
    ),
    # -- crawl etiquette: robots.txt, opt-out headers, on by default ------------------------
    Mutant(
        "robots-check-skipped",
        "a path robots.txt disallows is never requested (README, architecture)",
        "imgflow/engine/robots.py",
        "        if self.parser is not None and not self.parser.can_fetch(url, PRODUCT):",
        "        if False:",
        (
            "tests/test_robots.py::"
            "test_robots_is_read_first_and_once_and_a_disallowed_path_is_never_requested",
        ),
    ),
    Mutant(
        "opt-out-header-ignored",
        "an image with an opt-out header is not stored, its body not read (README)",
        "imgflow/engine/fetch.py",
        "            if why is not None:  # the body is left unread: the connection is closed",
        "            if False:",
        ("tests/test_opt_out.py::test_an_opt_out_header_keeps_the_image_out_and_its_body_unread",),
    ),
    Mutant(
        "robots-off-by-default",
        "robots.txt is read and obeyed by default (imgflow.yaml.example: etiquette.robots)",
        "imgflow/config.py",
        "    robots: bool = True  # read and obey robots.txt (--ignore-robots turns it off)",
        "    robots: bool = False",
        ("tests/test_robots.py::test_robots_is_on_by_default_and_exclusions_are_counted_apart",),
    ),
    Mutant(
        "crawl-delay-ignored",
        "robots.txt's Crawl-delay spaces a host's requests (README)",
        "imgflow/engine/robots.py",
        "        if rules.crawl_delay:",
        "        if False:",
        ("tests/test_robots.py::test_crawl_delay_spaces_requests_by_the_servers_clock",),
    ),
    Mutant(
        "excluded-retried",
        "an excluded image is never retried by `imgflow retry` (README)",
        "imgflow/local/index/results.py",
        "RETRIED = (_FAILED, PENDING)",
        'RETRIED = (_FAILED, "excluded")',
        ("tests/test_robots.py::test_robots_is_on_by_default_and_exclusions_are_counted_apart",),
    ),
    Mutant(
        "robots-cache-never-expires",
        "a robots.txt answer is reused for at most 24 hours across runs (README)",
        "imgflow/engine/robots.py",
        "        return 0 <= now - self.fetched_at < MAX_AGE",
        "        return 0 <= now - self.fetched_at",
        (
            "tests/test_robots_cache.py::"
            "test_the_engine_uses_a_fresh_kept_answer_and_reads_a_stale_one",
        ),
    ),
    Mutant(
        "robots-index-loads-stale",
        "the index hands a run only robots.txt answers younger than 24 hours",
        "imgflow/local/index/robots.py",
        '"SELECT origin, status, body, fetched_at FROM robots WHERE fetched_at > ?",',
        '"SELECT origin, status, body, fetched_at FROM robots WHERE fetched_at > ? - 1e9",',
        ("tests/test_robots_cache.py::test_the_index_loads_only_answers_younger_than_a_day",),
    ),
    Mutant(
        "robots-cache-unused",
        "a run within 24 hours of another's robots.txt read does not request it again",
        "imgflow/engine/robots.py",
        "        if kept is not None and kept.fresh(self._clock()):",
        "        if False:",
        ("tests/test_robots_cache.py::test_a_second_run_within_a_day_does_not_read_robots_again",),
    ),
    Mutant(
        "aws-robots-cache-unused",
        "on aws a job reads each host's robots.txt once; its later batches obey it with no"
        " request (architecture)",
        "imgflow/aws/runtime/download.py",
        "        robots_cache=S3RobotsCache(aws.s3(), settings.bucket, spec.job_id),",
        "        robots_cache=None,",
        (
            "tests/aws/test_robots_per_job.py::"
            "test_a_hosts_batches_read_robots_once_per_job_and_all_obey_it",
        ),
    ),
    Mutant(
        "robots-not-preloaded-in-workers",
        "worker processes use the robots.txt answers earlier runs kept (architecture)",
        "imgflow/local/workers/coordinator.py",
        "        self.robots: dict[str, Stored] = dict(start.robots or {})",
        "        self.robots: dict[str, Stored] = {}",
        ("tests/test_robots_cache.py::test_worker_processes_use_the_answers_of_earlier_runs",),
    ),
    Mutant(
        "robots-of-workers-not-saved",
        "robots.txt answers worker processes read are kept in the index too (architecture)",
        "imgflow/local/workers/coordinator.py",
        "        self.run.kept_robots(read)",
        "        pass",
        ("tests/test_robots_cache.py::test_answers_read_by_workers_are_kept_too",),
    ),
    Mutant(
        "worker-reads-robots-itself",
        "with --workers, robots.txt is read once per host per run, not once per worker",
        "imgflow/local/workers/permits.py",
        "        return await self.link.robots(origin)",
        "        return None",
        (
            "tests/test_workers.py::"
            "test_four_workers_read_robots_txt_once_and_never_ask_for_a_disallowed_path",
        ),
    ),
    Mutant(
        "robots-lease-not-passed-on-after-a-failed-read",
        "a robots.txt read that kept nothing (5xx) lets the next waiting worker read it",
        "imgflow/local/workers/coordinator.py",
        "            del self.leases[origin]\n            self._robots_next(origin)\n",
        "            self._robots_next(origin)\n",
        (
            "tests/test_workers.py::"
            "test_the_coordinators_robots_leases_pass_on_after_a_failure_or_a_death",
        ),
    ),
    Mutant(
        "robots-lease-kept-by-a-dead-worker",
        "a worker that dies reading robots.txt does not hold the others (architecture)",
        "imgflow/local/workers/coordinator.py",
        "        self._robots_gone(peer)\n",
        "",
        (
            "tests/test_workers.py::"
            "test_workers_killed_while_reading_robots_txt_do_not_hold_the_run",
        ),
        timeout=120.0,
    ),
    Mutant(
        "gallery-one-images",
        "counts read right for one: the gallery of one image says image (README)",
        "imgflow/report/page.py",
        '    images = "image" if gallery.count == 1 else "images"',
        '    images = "images"',
        ("tests/test_report.py::test_a_gallery_of_one_image_says_image",),
    ),
    Mutant(
        "aws-report-without-exclusions",
        "the report groups excluded images by host and reason, on aws too (README)",
        "imgflow/report/aws.py",
        "        if status.summary.excluded\n",
        "        if False\n",
        (
            "tests/test_report_aws.py::"
            "test_an_execution_report_groups_what_the_sites_kept_out_by_host_and_reason",
        ),
    ),
    Mutant(
        "robots-ignored-not-in-json",
        "run -o json says when --ignore-robots was used (README)",
        "imgflow/cli/commands/run.py",
        '    robots = "obeyed" if cfg.etiquette.robots else "ignored"',
        '    robots = "obeyed"',
        ("tests/test_robots_cache.py::test_ignore_robots_is_in_the_json_document",),
    ),
    Mutant(
        "robots-5xx-kept",
        "a 5xx robots.txt is never kept across runs (RFC 9309: retried later)",
        "imgflow/engine/robots.py",
        "                    return Rules(disallow_all=why, kind=kind, status_code=status), None",
        "                    return Rules(disallow_all=why, kind=kind, status_code=status), (200,"
        " b'')",
        ("tests/test_robots_cache.py::test_a_5xx_is_never_kept",),
    ),
    # -- URL tables: metadata, line numbers, keys, streamed planning ---------------------------
    Mutant(
        "table-metadata-dropped",
        "a URL table's caption and other columns are kept as each image's metadata, in"
        " --output json and in export (README)",
        "imgflow/local/index/results.py",
        "            if item.meta:\n                metas[seen] = json.dumps(dict(item.meta))",
        "            if False:\n                metas[seen] = json.dumps(dict(item.meta))",
        (f"{TABLES}::test_a_table_and_its_metadata_round_trip_through_export",),
    ),
    Mutant(
        "aws-export-meta-column-dropped",
        "export on aws writes the metadata's columns as the local export does (README)",
        "imgflow/aws/job_export.py",
        "    metas = meta_columns(list(names))",
        "    metas = meta_columns(list(names)[:-1])",
        (
            "tests/aws/test_export_aws.py::"
            "test_every_jobs_records_with_their_metadata_columns_in_pages",
        ),
    ),
    Mutant(
        "export-shard-member-dropped",
        "export names a shard layout's shard and member for every stored image (README)",
        "imgflow/local/index/export.py",
        '                row["member"] = None if failed or not shard else member',
        '                row["member"] = None',
        ("tests/test_export_shards.py::test_a_webdataset_runs_rows_name_their_shard_and_member",),
    ),
    Mutant(
        "aws-export-member-misnamed",
        "export on aws names a webdataset job's member as its shard holds it (README)",
        "imgflow/aws/job_export.py",
        '        "member": f"{stem}.{extension(record.content_type, record.path)}",',
        '        "member": stem,',
        ("tests/aws/test_export_aws.py::test_a_webdataset_jobs_rows_name_their_shard_and_member",),
    ),
    Mutant(
        "serve-host-notes-dropped",
        "serve's run documents carry a finished run's per-host lines, as status -o json"
        " does (architecture)",
        "imgflow/serve/documents.py",
        '            head["hostNotes"] = list(notes)',
        "            pass",
        (f"{SERVE_NOTES}::test_a_urls_jobs_document_carries_its_host_notes",),
    ),
    Mutant(
        "serve-finished-counts-not-from-the-index",
        "a finished serve job's document has its run's counts (README: GET /runs/<id>)",
        "imgflow/serve/documents.py",
        "                return info.summary, info.duplicates, info.host_notes",
        "                return Summary(total=job.total), info.duplicates, info.host_notes",
        (f"{SERVE_NOTES}::test_a_urls_jobs_document_carries_its_host_notes",),
    ),
    Mutant(
        "table-bad-row-line-off-by-one",
        "a bad row of a URL table fails with its line number (README)",
        "imgflow/sources/tables.py",
        "            yield reader.line_num + 1, row",
        "            yield reader.line_num, row",
        (f"{TABLES}::test_bad_rows_fail_with_their_line_number_and_the_others_run",),
    ),
    Mutant(
        "table-url-not-normalised",
        "a URL from a table and the same URL from base URL + path are one stored image (README)",
        "imgflow/engine/job.py",
        "    return url_for(base, normalize_path(rest, where))",
        "    return text",
        (f"{TABLES}::test_a_url_from_a_table_and_from_a_base_url_is_one_stored_image",),
    ),
    Mutant(
        "table-dimensions-not-recorded",
        "every stored image's width and height are recorded in the index (README)",
        "imgflow/local/index/images.py",
        'mtimes.get(r.key or ""), r.etag, r.last_modified, r.width, r.height,',
        'mtimes.get(r.key or ""), r.etag, r.last_modified, None, None,',
        (f"{TABLES}::test_a_url_from_a_table_and_from_a_base_url_is_one_stored_image",),
    ),
    Mutant(
        "jpeg-dimensions-swapped",
        "a JPEG's width and height are read from its frame header as imagesize reads them"
        " (architecture: where a small image's time goes)",
        "imgflow/engine/body.py",
        "            height, width = _BIG_16.unpack_from(head, position + 3)",
        "            width, height = _BIG_16.unpack_from(head, position + 3)",
        ("tests/test_dimensions.py::test_width_and_height_are_what_imagesize_reads",),
    ),
    Mutant(
        "robots-last-origin-for-any-url",
        "the last origin's robots.txt rules are reused only for a URL under that origin",
        "imgflow/engine/robots.py",
        "        return rules if prefix and url.startswith(prefix) else None",
        "        return rules if prefix else None",
        ("tests/test_robots.py::test_robots_txt_of_two_origins_each_rule_their_own_urls",),
    ),
    Mutant(
        "table-planned-before-fetching",
        "a URL table's first request goes out within 2 s whatever its size (README)",
        "imgflow/local/runner.py",
        "    if job.source.count is None:",
        "    if False:",
        ("tests/test_url_tables_stream.py",),
        timeout=900,
    ),
    # -- paths files: streamed planning, a run stopped while its input was read -----------
    Mutant(
        "paths-planned-before-fetching",
        "the first request of a 1,000,000-line paths file goes out within 2 s: a large paths"
        " file is planned while the run fetches (README, docs/architecture.md)",
        "imgflow/sources/paths.py",
        "_count(file, label, spool is None and file.stat().st_size > COUNTED_BYTES)",
        "_count(file, label, False)",
        (f"{PATHS_STREAM}::test_a_large_paths_file_is_counted_as_it_is_planned",),
    ),
    Mutant(
        "interrupted-plan-recorded-as-partial-job",
        "a run interrupted while its input was still read records the whole job or nothing:"
        " it stays unplanned and its retry covers every path (README, docs/architecture.md)",
        "imgflow/local/index/__init__.py",
        "        if whole():\n            self.planned(",
        "        if True:\n            self.planned(",
        (
            f"{PATHS_STREAM}::test_a_run_stopped_while_its_paths_were_read_is_unplanned_and_retried_whole",
        ),
    ),
    Mutant(
        "retry-forgets-the-unread-input",
        "the retry of a run stopped while its input was read reads the input again for the"
        " items never planned (README)",
        "imgflow/local/retry.py",
        "            rest = reopen(described)",
        "            rest = None",
        (
            f"{PATHS_STREAM}::test_a_run_stopped_while_its_paths_were_read_is_unplanned_and_retried_whole",
        ),
    ),
    Mutant(
        "unique-paths-partitioned-by-position",
        "a repeated path of a large job is dropped (every copy goes to the same partition)",
        "imgflow/aws/runtime/unique.py",
        "files[zlib.crc32(same.encode()) % self._partitions]",
        "files[position % self._partitions]",
        (
            "tests/aws/test_plan_scale.py::test_unique_paths_through_disk_keep_first_occurrences_in_order",
        ),
    ),
    Mutant(
        "plan-reads-any-manifest",
        "the plan step reads a manifest only under the deployment's jobs/ (docs/aws.md)",
        "imgflow/aws/runtime/plan.py",
        "    if named != bucket or not key.startswith(JOBS_PREFIX):",
        "    if False:",
        (
            "tests/aws/test_plan_scale.py::test_a_manifest_elsewhere_than_the_deployments_jobs_is_refused",
        ),
    ),
    Mutant(
        "consolidate-keeps-every-failure",
        "consolidate's memory does not grow with the number of failures (docs/aws.md)",
        "imgflow/aws/runtime/consolidate.py",
        "                if len(self.first) < self._keep:",
        "                if True:",
        (
            "tests/aws/test_plan_scale.py::test_consolidate_memory_is_flat_in_the_number_of_failures",
        ),
    ),
    Mutant(
        "job-stream-ignores-truncation",
        "a job object cut short is refused, not planned in part",
        "imgflow/aws/runtime/job_lines.py",
        '    raise JobError(f"{label}: ends before its list is closed")',
        "    return",
        (
            "tests/aws/test_plan_scale.py::test_the_job_object_is_valid_json_and_streams_back_entry_by_entry",
        ),
    ),
    # -- aws4: --workers refused on aws, plan ephemeral storage, 413, streamed url lanes -----
    Mutant(
        "aws-workers-silently-ignored",
        "run --workers with the aws backend is refused in one line (README)",
        "imgflow/cli/commands/run.py",
        '        if workers not in (None, "1") and cfg.backend == "aws":',
        "        if False:",
        ("tests/aws/test_aws_workers_flag.py",),
    ),
    Mutant(
        "aws-urls-plan-whole-in-memory",
        "a urls job's plan streams through /tmp: memory flat in the number of rows (docs/aws.md)",
        "imgflow/aws/runtime/plan.py",
        "        partitions = partitions_for(source.size)\n",
        "        partitions = 1\n",
        (URL_LANES_STREAM,),
    ),
    Mutant(
        "aws-urls-dedupe-on-whole-entry",
        "a repeated URL of a urls job is planned once, the first one's meta kept (architecture)",
        "imgflow/aws/runtime/lane_plan.py",
        "UniquePaths(self._lines(), self._partitions, key=_url_of)",
        "UniquePaths(self._lines(), self._partitions)",
        (
            "tests/aws/test_url_lanes_stream.py::"
            "test_a_streamed_urls_job_is_planned_as_its_body_is_in_memory",
        ),
    ),
    Mutant(
        "aws-plan-tmp-default",
        "the plan function gets lambda.plan_ephemeral_mb of /tmp at deploy (docs/aws.md)",
        "imgflow/aws/deploy/functions.py",
        '{"EphemeralStorage": {"Size": lam.plan_ephemeral_mb}} if role == "plan" else {}',
        "{}",
        ("tests/aws/test_plan_ephemeral.py::test_only_the_plan_function_asks_for_more_tmp",),
    ),
    Mutant(
        "aws-plan-tmp-range-unchecked",
        "lambda.plan_ephemeral_mb outside 512-10240 MB is refused in one line"
        " (imgflow.yaml.example)",
        "imgflow/config.py",
        "            512 <= cfg.lambda_.plan_ephemeral_mb <= 10240,",
        "            True,",
        (
            "tests/aws/test_plan_ephemeral.py::test_plan_tmp_outside_lambdas_range_is_refused_in_one_line",
        ),
    ),
    # -- aws shards: a shard per download batch, committed whole, never doubled -------------
    Mutant(
        "aws-shard-upload-not-aborted",
        "a batch's shard is one S3 upload, aborted on failure: nothing left (architecture)",
        "imgflow/aws/runtime/download.py",
        "        except BaseException:\n            shard.abort()\n            raise",
        "        except BaseException:\n            raise",
        (f"{AWS_SHARDS}::test_a_batch_that_fails_leaves_no_shard_and_no_pending_upload",),
    ),
    Mutant(
        "aws-retried-batch-new-shard-name",
        "a batch that is retried never leaves two shards with the same samples (architecture)",
        "imgflow/aws/runtime/shards.py",
        '    return f"{SHARDS_PREFIX}{job_id}/{batch:05d}{tail}"',
        '    return f"{SHARDS_PREFIX}{job_id}/{batch:05d}{tail}-{time.monotonic_ns()}"',
        (f"{AWS_SHARDS}::test_a_retried_batch_leaves_one_shard_holding_every_sample",),
    ),
    Mutant(
        "aws-retry-skips-own-shard",
        "a retried batch's shard holds every sample its index rows point at (architecture)",
        "imgflow/aws/runtime/download.py",
        "        carried = shard.carry(own) if own else set()",
        "        carried = set(own)",
        (f"{AWS_SHARDS}::test_a_retried_batch_leaves_one_shard_holding_every_sample",),
    ),
    Mutant(
        "report-shard-sample-links-images",
        "the report's gallery links only to files that exist: a shard's sample links nowhere"
        " (architecture)",
        "imgflow/report/local.py",
        '    return None if is_file is None or is_file(key) else ""',
        "    return None",
        ("tests/test_report.py::test_a_sharded_run_links_no_image_to_a_file_that_is_not_there",),
    ),
    Mutant(
        "retry-ignores-run-layout",
        "imgflow retry stores in the layout of the run it retries (README)",
        "imgflow/backends/local.py",
        "        if plan.layout is not None and plan.layout != self.cfg.output.layout:",
        "        if False:",
        ("tests/test_retry_layout.py",),
    ),
    Mutant(
        "run-settings-keep-a-stale-etiquette",
        "a run's engine settings are derived from the config's etiquette where they are"
        " built: a config changed after load reaches the requests (architecture)",
        "imgflow/backends/local.py",
        "        fetch=engine_fetch(cfg),",
        "        fetch=cfg.fetch,",
        (
            "tests/test_etiquette_settings.py::"
            "test_etiquette_replaced_after_load_reaches_the_requests",
        ),
    ),
    Mutant(
        "config-etiquette-robots-not-handed-on",
        "etiquette.robots: false is obeyed (imgflow.yaml.example)",
        "imgflow/config.py",
        "        robots=etiquette.robots,",
        "        robots=cfg.fetch.robots or True,",
        (
            "tests/test_etiquette_settings.py::"
            "test_etiquette_replaced_after_load_reaches_the_requests",
        ),
    ),
    Mutant(
        "retry-layout-sticks-to-the-backend",
        "a retry's layout is its own run's: the backend is not changed by a retry (architecture)",
        "imgflow/backends/local.py",
        "        return self._execute(plan.job, listener, new_id, plan.layout)",
        "        if plan.layout is not None:\n"
        "            self.cfg = replace(\n"
        "                self.cfg, output=replace(self.cfg.output, layout=plan.layout)\n"
        "            )\n"
        "        return self._execute(plan.job, listener, new_id, plan.layout)",
        ("tests/test_retry_layout.py::test_one_backend_gives_each_retry_its_own_runs_layout",),
    ),
    Mutant(
        "report-aws-shard-sample-linked",
        "an aws report links only objects that exist: a shard's sample links nowhere"
        " (architecture)",
        "imgflow/report/aws.py",
        "            if record.key.startswith(SHARDS_PREFIX):",
        "            if False:",
        (
            "tests/test_report_aws.py::"
            "test_an_image_in_a_shard_links_nowhere_and_an_object_key_is_not_prefixed_twice",
        ),
    ),
    # -- store calls handed back to the loop in groups (engine/handoff.py) ------------------
    Mutant(
        "handoff-wakes-per-completion",
        "completions that land while the loop is busy are settled by one wake-up"
        " (architecture: Where a small image's time goes)",
        "imgflow/engine/handoff.py",
        "            wake = not self._done  # otherwise a wake-up is already on its way",
        "            wake = True",
        (
            "tests/test_handoff.py::"
            "test_completions_landing_while_the_loop_is_busy_are_settled_by_one_wake_up",
        ),
    ),
    Mutant(
        "handoff-cancel-runs-anyway",
        "a store call whose wait was cancelled before it started never runs (as run_in_executor)",
        "imgflow/engine/handoff.py",
        "            submitted.cancel()  # not started: it never runs",
        "            pass",
        ("tests/test_handoff.py::test_a_wait_cancelled_before_its_call_starts_never_runs_it",),
    ),
    Mutant(
        "config-loads-yaml-at-import",
        "a run without a config file or IMGFLOW_* variables never loads the YAML parser"
        " (architecture: Where a small image's time goes)",
        "imgflow/config.py",
        "from imgflow.engine.settings import DEFAULT_OPT_OUT, FetchConfig\n",
        "import yaml  # noqa: F401\n"
        "from imgflow.engine.settings import DEFAULT_OPT_OUT, FetchConfig\n",
        (
            "tests/test_startup_imports.py::"
            "test_a_run_without_config_file_or_variables_does_not_load_yaml",
        ),
    ),
    Mutant(
        "submit-limit-check-off",
        "the API answers 413 to a body over Step Functions' execution input limit, never"
        " starting it (docs/aws.md)",
        "imgflow/aws/runtime/submit.py",
        "    if len(data) > MAX_EXECUTION_INPUT:",
        "    if False:",
        (
            "tests/aws/test_submit_413.py::"
            "test_the_handler_starts_a_body_at_the_limit_and_refuses_one_byte_more",
        ),
    ),
    Mutant(
        "refused-commit-after-stop-recorded-failed",
        "an image whose commit the sealed store refused at an interrupt stays unfinished,"
        " never failed, so a retry fetches it once (architecture: Atomic files)",
        "imgflow/local/runner.py",
        "        if self.stopped and record.failure_kind is FailureKind.STORE_FAILED:",
        "        if False:",
        (
            "tests/test_interrupt_in_flight.py::"
            "test_an_image_whose_response_comes_with_the_signal_stays_unfinished[asyncio-0]",
            "tests/test_interrupt_in_flight.py::"
            "test_an_image_whose_response_comes_with_the_signal_stays_unfinished[asyncio-1]",
            "tests/test_interrupt_in_flight.py::"
            "test_an_image_whose_response_comes_with_the_signal_stays_unfinished[asyncio-2]",
        ),
    ),
    Mutant(
        "interrupted-json-retry-prints-nothing",
        "retry -o json stopped by a signal prints the retry so far, saying where it stopped"
        " (README)",
        "imgflow/cli/commands/status.py",
        "        with printed_when_stopped(output):",
        "        with printed_when_stopped(Output.table):",
        (
            "tests/test_interrupted_json.py::"
            "test_an_interrupted_json_retry_prints_its_document_so_far",
        ),
    ),
    # -- the API's former integration role (least privilege) ----------------------------------
    Mutant(
        "deploy-makes-api-role",
        "deploy makes no role for API Gateway: the job route invokes the submit Lambda"
        " (docs/aws.md)",
        "infra/iam.py",
        "        SUBMIT: (LAMBDA_SERVICE, submit_policy(names)),\n",
        "        SUBMIT: (LAMBDA_SERVICE, submit_policy(names)),\n"
        '        "api": (API_SERVICE, submit_policy(names)),\n',
        (f"{FORMER_ROLE}::test_a_redeploy_of_an_older_deployment_deletes_its_api_role",),
    ),
    Mutant(
        "former-api-role-kept",
        "a redeploy of an older deployment deletes its API role (docs/aws.md)",
        "imgflow/aws/deploy/__init__.py",
        "        *former_role_steps(ctx),",
        "        *former_role_steps(ctx)[:0],",
        (f"{FORMER_ROLE}::test_a_redeploy_of_an_older_deployment_deletes_its_api_role",),
    ),
    Mutant(
        "former-role-policy-kept",
        "a role is deleted after its policies, as IAM requires (docs/aws.md)",
        "imgflow/aws/deploy/roles.py",
        "        iam.delete_role_policy(RoleName=name, PolicyName=policy)",
        "        pass",
        (f"{FORMER_ROLE}::test_a_redeploy_of_an_older_deployment_deletes_its_api_role",),
    ),
    Mutant(
        "former-role-not-ours-deleted",
        "deploy deletes a former role only when it is the deployment's own (docs/aws.md)",
        "imgflow/aws/deploy/roles.py",
        "    if ctx.missing_tags(tags) and key not in ctx.state.resources:",
        "    if False:",
        (f"{FORMER_ROLE}::test_a_role_with_the_name_but_not_ours_is_left_alone",),
    ),
    Mutant(
        "teardown-misses-former-role",
        "teardown removes the API role an older deployment left (docs/aws.md)",
        "imgflow/aws/deploy/discover.py",
        "(*ROLE_PURPOSES, *FORMER_ROLE_PURPOSES)",
        "ROLE_PURPOSES",
        (f"{FORMER_ROLE}::test_teardown_removes_the_api_role_an_older_deployment_left",),
    ),
    Mutant(
        "submit-integration-not-reused",
        "a move to the submit Lambda stopped halfway reuses its integration (docs/aws.md)",
        "imgflow/aws/deploy/api.py",
        '    if routed is None or routed.get("IntegrationSubtype"):',
        "    if routed is None:",
        (
            "tests/aws/test_submit_413.py::"
            "test_a_move_stopped_after_creating_the_lambda_integration_reuses_it",
        ),
    ),
    Mutant(
        "former-integration-left-unrouted",
        "a move to the submit Lambda stopped before deleting the former integration deletes it"
        " on the next deploy (docs/aws.md)",
        "imgflow/aws/deploy/api.py",
        'i.get("IntegrationSubtype") == SUBTYPE]',
        'i.get("IntegrationSubtype") == SUBTYPE\n'
        "               and f\"integrations/{i['IntegrationId']}\" == target]",
        (
            "tests/aws/test_submit_413.py::"
            "test_a_move_stopped_after_creating_the_lambda_integration_reuses_it",
        ),
    ),
    # -- shard marks in the index, rewrites at the run's end (issue 25's left-overs) ---------
    Mutant(
        "files-run-leaves-marked-shards",
        "a run of any layout rewrites the shards it marked at its end: a files-layout refresh"
        " cuts the shard sample it replaces (architecture)",
        "imgflow/local/runner.py",
        "                mend_folder(folder, db, fsync=settings.fsync)  # marked shards, once each",
        "                pass",
        (f"{SHARDS_REWORKERS}::test_a_files_layout_refresh_cuts_the_shard_sample_it_replaces",),
    ),
    Mutant(
        "shard-rewritten-after-each-commit",
        "an old shard is rewritten at most once per run, whatever the refresh's order"
        " (architecture)",
        "imgflow/local/layouts/shards.py",
        "        self._next = number + 1\n",
        "        self._next = number + 1\n        mend_shards(self.shards, db, fsync=self.fsync)\n",
        (
            f"{SHARDS_REWORKERS}::"
            "test_a_refresh_in_reverse_order_rewrites_each_old_shard_at_most_once[parquet]",
        ),
    ),
    Mutant(
        "shard-start-reads-every-stats-file",
        "a run's start reads only the stats files of the shards the index marks (architecture)",
        "imgflow/local/layouts/shard_rewrite.py",
        "        elif name in marked and stats_samples(shards, name) != counts[name][0]:",
        "        elif stats_samples(shards, name) != counts[name][0]:",
        (f"{SHARDS_REWORKERS}::test_a_start_reads_only_the_stats_of_marked_shards",),
    ),
    Mutant(
        "shard-mark-never-cleared",
        "a shard's mark is cleared once it is rewritten (architecture)",
        "imgflow/local/layouts/shard_rewrite.py",
        "    db.unmark_shards({name: counts[name][0] for name in marked})",
        "    pass",
        (f"{SHARDS_REWORKERS}::test_a_start_reads_only_the_stats_of_marked_shards",),
    ),
    Mutant(
        "shard-marks-lost-at-upgrade",
        "an index from before the shard marks has every shard marked once, so a rewrite a"
        " kill left undone is still done (architecture)",
        "imgflow/local/index/schema.py",
        '    conn.execute("UPDATE shards SET marked = 1")',
        "    pass",
        (
            f"{SHARDS_REWORKERS}::"
            "test_an_index_from_before_the_marks_has_its_pending_rewrite_done_after_the_upgrade",
        ),
    ),
    Mutant(
        "host-given-to-two-workers",
        "with --workers over a table of many hosts, each host's items go to one worker, so"
        " its -c holds and it sees one worker's connections (architecture: workers)",
        "imgflow/local/workers/coordinator.py",
        "            owner = self.owners.get(host) or self._give(host)\n",
        "            owner = self._give(host)\n",
        ("tests/test_workers_hosts.py::test_each_host_is_one_workers_and_its_cap_holds",),
    ),
    Mutant(
        "run-cap-not-split-among-owners",
        "--max-in-flight holds across workers that own hosts: each keeps a share"
        " (architecture: workers)",
        "imgflow/local/workers/coordinator.py",
        "        start = dataclasses.replace(self.start, in_flight=share)"
        " if share else self.start\n",
        "        start = self.start\n",
        ("tests/test_workers_hosts.py::test_each_host_is_one_workers_and_its_cap_holds",),
    ),
    Mutant(
        "owned-hosts-throttles-not-told",
        "the run's summary counts the throttles of the hosts workers own (architecture)",
        "imgflow/local/workers/permits.py",
        '            self.link.send("throttled", self.host, self.throttles - before)\n',
        "            pass\n",
        (
            "tests/test_workers_hosts.py::"
            "test_a_429_cools_its_owners_host_and_the_summary_counts_it",
        ),
    ),
    Mutant(
        "workers-url-table-host-cap-is-the-run-cap",
        "with --workers, a URL table's per-host cap is -c, as in one process (architecture:"
        " workers)",
        "imgflow/local/workers/coordinator.py",
        "        self.politeness = politeness(start.settings.fetch, start.host_cap, on_change)",
        "        self.politeness = politeness(start.settings.fetch, start.in_flight, on_change)",
        ("tests/test_workers_hosts.py::test_a_one_host_table_keeps_the_shared_gate_at_its_cap",),
    ),
    Mutant(
        "request-url-path-not-normalised",
        "a request's URL is the one httpx.URL makes of the same text, its origin parsed once"
        " (architecture: Where a small image's time goes)",
        "imgflow/engine/transport/request.py",
        "path=_parse.quote(_parse.normalize_path(path), safe=_parse.PATH_SAFE),",
        "path=_parse.quote(path, safe=_parse.PATH_SAFE),",
        ("tests/test_request_build.py",),
    ),
    Mutant(
        "request-url-origin-of-another-url",
        "a request's URL is the one httpx.URL makes of the same text, its origin parsed once"
        " (architecture: Where a small image's time goes)",
        "imgflow/engine/transport/request.py",
        "    origin = _origins.get(prefix)\n",
        "    origin = next(iter(_origins.values()), None)\n",
        ("tests/test_request_build.py",),
    ),
    Mutant(
        "validator-not-ascii-kept",
        "a response's ETag and Last-Modified are kept only when short printable ASCII"
        " (they are sent back verbatim)",
        "imgflow/engine/fetch.py",
        "return value if value.isascii() and value.isprintable() else None",
        "return value if value.isprintable() else None",
        (
            "tests/test_revalidate.py::"
            "test_a_validator_is_kept_only_when_it_is_short_printable_ascii",
        ),
    ),
    Mutant(
        "get-request-second-host",
        "a GET request is the one httpx.Request makes of the same URL and headers (a Host of"
        " the user's replaces the URL's; architecture: Where a small image's time goes)",
        "imgflow/engine/transport/headers.py",
        '    if any(lower == b"host" for _, lower, _ in triples):',
        "    if False:",
        ("tests/test_request_build.py",),
    ),
    Mutant(
        "gate-host-of-the-last-url",
        "each image passes the politeness gate of its own URL's host (architecture: Where a"
        " small image's time goes)",
        "imgflow/engine/fetch.py",
        "    if prefix and url.startswith(prefix):\n        return host\n",
        "    if prefix:\n        return host\n",
        ("tests/test_fetch.py::test_a_gate_s_host_is_the_netloc_of_each_url_whatever_came_before",),
    ),
    Mutant(
        "opt-out-headers-unread",
        "an image whose response opts out (X-Robots-Tag, tdm-reservation) is not stored, its"
        " headers read from the dict of the response's headers (docs/etiquette)",
        "imgflow/engine/fetch.py",
        "    why = None if OPT_OUT_NAMES.isdisjoint(fields) else opted_out(headers, self._opt_out)",
        "    why = None",
        ("tests/test_opt_out.py",),
    ),
    Mutant(
        "unwritten-index-read-as-sqlite-error",
        "an index a stopped first run left without its tables reads as no runs yet, never as"
        " an SQLite error (architecture: the index)",
        "imgflow/local/index/connection.py",
        "    return found is not None",
        "    return True",
        (
            "tests/test_index_unwritten.py::"
            "test_an_index_a_stopped_first_run_left_without_tables_reads_as_no_runs_yet",
        ),
    ),
    Mutant(
        "unwritten-index-probe-opens-a-linked-index",
        "nothing outside the data folder is touched: a linked index is refused, never opened"
        " (README: the data folder)",
        "imgflow/local/index/connection.py",
        "    if path.is_symlink():  # never opened here",
        "    if False:  # never opened here",
        (
            "tests/test_folder_links.py::"
            "test_a_linked_runs_folder_or_index_is_refused[check-imgflow.db]",
        ),
    ),
    Mutant(
        "parquet-row-group-unbounded",
        "a Parquet shard's row group holds about GROUP_BYTES (1 MB) of images, its buffers"
        " reused by the next (architecture: peak memory of the shard layouts)",
        "imgflow/local/layouts/parquet.py",
        "GROUP_BYTES = 1 << 20\n",
        "GROUP_BYTES = 8 << 20\n",
        (
            "tests/test_shard_memory_release.py::"
            "test_a_parquet_row_group_holds_about_group_bytes_and_the_heap_is_trimmed_every_few",
        ),
    ),
    Mutant(
        "metadata-table-converted-whole",
        "a metadata table is written TABLE_ROWS rows at a time, not converted whole"
        " (architecture: peak memory of the shard layouts)",
        "imgflow/local/layouts/parquet.py",
        "        group = list(itertools.islice(rows, TABLE_ROWS))\n        while True:",
        "        group = list(rows)\n        while True:",
        (
            "tests/test_shard_memory_release.py::test_a_metadata_table_is_written_a_row_group_at_a_time_then_handed_back",
        ),
    ),
    Mutant(
        "worker-writes-its-own-table",
        "with --workers, one process imports pyarrow for a tar's tables: the coordinator"
        " (architecture: Peak memory of the shard layouts)",
        "imgflow/local/layouts/shards.py",
        "        return WrittenShard(shard.name, None, shard.log.name,",
        "        return WrittenShard(shard.name, self._table(sample_rows(shard.log.entries("
        "self.tmp)), self.tmp, shard.name), shard.log.name,",
        ("tests/test_shards_workers.py::test_a_worker_leaves_its_tar_s_table_to_the_coordinator",),
    ),
    Mutant(
        "worker-tar-committed-without-table",
        "a tar shard at its final name has its metadata table beside it (README)",
        "imgflow/local/layouts/shards.py",
        "        if not self.fmt.sidecar:\n            return []",
        "        if True:\n            return []",
        (
            "tests/test_shards_workers.py::test_a_worker_leaves_its_tar_s_table_to_the_coordinator",
            "tests/test_shards_workers.py",
        ),
    ),
    Mutant(
        "open-shard-holds-its-samples",
        "an open shard keeps its samples' records, members and metadata on disk, not in"
        " memory (architecture: peak memory of the shard layouts)",
        "imgflow/local/layouts/shard_log.py",
        "        self.end += len(data)\n        self.pending = []\n",
        "        self.end += len(data)\n"
        '        self.kept = [*getattr(self, "kept", []), *self.pending]\n'
        "        self.pending = []\n",
        ("tests/test_shards_cost.py::test_an_open_shard_holds_only_its_urls_in_memory",),
    ),
    Mutant(
        "metadata-table-memory-kept",
        "a metadata table's freed memory is handed back once written (architecture: peak"
        " memory of the shard layouts)",
        "imgflow/local/layouts/parquet.py",
        "                break\n    release()\n",
        "                break\n",
        (
            "tests/test_shard_memory_release.py::test_a_metadata_table_is_written_a_row_group_at_a_time_then_handed_back",
        ),
    ),
    Mutant(
        "memory-release-trims-nothing",
        "release() returns the heap's free pages to the system (malloc_trim)",
        "imgflow/local/memory.py",
        "    trim(0)\n    return True",
        "    return True",
        (
            "tests/test_shard_memory_release.py::test_release_returns_freed_heap_pages_to_the_system",
        ),
    ),
    Mutant(
        "webdataset-layout-imports-pyarrow",
        "a webdataset run imports pyarrow (about 56 MB of RSS) only with its first metadata"
        " table (architecture: peak memory of the shard layouts)",
        "imgflow/backends/local.py",
        "        from imgflow.local.layouts.webdataset import webdataset_layout\n",
        "        from imgflow.local.layouts.webdataset import webdataset_layout\n"
        "        import pyarrow  # noqa: F401\n",
        (
            "tests/test_shard_memory_release.py::test_a_webdataset_layout_imports_no_pyarrow_before_its_first_table",
        ),
    ),
    Mutant(
        "run-converts-values-with-pydantic",
        "a plain run does not import pydantic: typer's conversion of a command's values is"
        " made without it where the answer is certain (architecture: Where a small image's"
        " time goes)",
        "imgflow/cli/app.py",
        "    install()  # (values converted without pydantic where the answer is certain)\n",
        "",
        ("tests/test_cli_coerce.py::test_a_plain_run_imports_only_what_it_uses",),
    ),
    Mutant(
        "plain-number-out-of-bounds-kept",
        "a command's value converted without pydantic is the value (or the error) typer"
        " gives: a number out of its option's bounds is typer's error (architecture: Where a"
        " small image's time goes)",
        "imgflow/cli/coerce.py",
        "            if (info.min is None or number >= info.min) and (",
        "            if (True or number >= info.min) and (",
        ("tests/test_cli_coerce.py::test_every_parameter_converts_every_value_as_typer_does",),
    ),
    Mutant(
        "env-plain-bool-loads-yaml",
        "a run whose IMGFLOW_* values are plain (true, false, a decimal integer) never loads"
        " the YAML parser (architecture: Where a small image's time goes)",
        "imgflow/config.py",
        "        if raw in _PLAIN_BOOLS:",
        "        if False:",
        ("tests/test_env_values.py::test_plain_variables_do_not_load_yaml",),
    ),
    Mutant(
        "env-leading-zero-read-as-decimal",
        "an IMGFLOW_* value reads as YAML reads it: 010 is YAML 1.1's octal 8, not 10",
        "imgflow/config.py",
        '        if raw.isascii() and raw.isdigit() and (raw == "0" or not raw.startswith("0")):',
        "        if raw.isascii() and raw.isdigit():",
        ("tests/test_env_values.py::test_a_variable_reads_as_yaml_reads_it",),
    ),
    Mutant(
        "run-imports-live-progress",
        "a run off a terminal does not import rich's live progress (architecture: Where a small"
        " image's time goes)",
        "imgflow/cli/follow.py",
        "from imgflow.ui.run import show_run\n",
        "from imgflow.ui.progress import live_progress  # noqa: F401\n"
        "from imgflow.ui.run import show_run\n",
        ("tests/test_cli_coerce.py::test_a_plain_run_imports_only_what_it_uses",),
    ),
    Mutant(
        "run-imports-result-tables",
        "a run without failures does not import rich's tables (architecture: Where a small"
        " image's time goes)",
        "imgflow/ui/run.py",
        "from imgflow.ui.console import err, out, warning\n",
        "from imgflow.ui.console import err, out, warning\n"
        "from imgflow.ui.tables import omitted  # noqa: F401\n",
        ("tests/test_cli_coerce.py::test_a_plain_run_imports_only_what_it_uses",),
    ),
    Mutant(
        "command-built-alone-is-another",
        "a command is built alone only when the command line names it: it says what the whole"
        " app says (architecture: Where a small image's time goes)",
        "imgflow/cli/app.py",
        "    only.registered_commands = named\n",
        "    only.registered_commands = app.registered_commands[:1]\n",
        ("tests/test_cli_coerce.py::test_a_command_built_alone_says_what_the_whole_app_says",),
    ),
    Mutant(
        "shard-sample-sizes-not-the-engines",
        "a sample's .json has the sizes its index row has, as the engine read them from the"
        " image's header (architecture: shards' cost)",
        "imgflow/local/layouts/shards.py",
        "                width=record.width,",
        "                width=record.height,",
        ("tests/test_shards_cost.py::test_a_samples_sizes_are_the_ones_its_index_row_has",),
    ),
    Mutant(
        "shard-members-written-one-by-one",
        "a shard's members reach its file in writes of a megabyte (architecture: shards' cost)",
        "imgflow/local/layouts/shards.py",
        '        stream = open(fd, "w+b", buffering=SHARD_BUFFER)',
        '        stream = open(fd, "w+b", buffering=-1)',
        ("tests/test_shards_cost.py::test_a_shards_small_members_reach_its_file_in_large_writes",),
    ),
    Mutant(
        "sample-row-shared-between-callers",
        "a sample's columns are made once, each caller gets its own dict (architecture: shards'"
        " cost)",
        "imgflow/local/layouts/shard_format.py",
        "        return dict(self._columns())",
        "        return self._columns()",
        (
            "tests/test_shards_cost.py::test_a_samples_columns_are_made_once_and_each_caller_gets_its_own",
        ),
    ),
    Mutant(
        "ustar-checksum-without-size-and-time",
        "a webdataset shard reads back with tarfile and the webdataset package (README)",
        "imgflow/engine/tar.py",
        '    checksum = b"%06o\\0 " % (_FIXED_SUM + sum(raw) + sum(times))',
        '    checksum = b"%06o\\0 " % (_FIXED_SUM + sum(raw))',
        ("tests/test_shards.py::test_webdataset_shards_read_back_with_tarfile_and_webdataset",),
    ),
    Mutant(
        "read-timer-fires-at-an-earlier-wait-s-deadline",
        "a read timeout ends a wait only at that wait's own deadline: a connection's one timer"
        " armed for an earlier wait never ends a later one early (architecture: where a small"
        " image's time goes)",
        "imgflow/engine/transport/connection.py",
        "        if deadline <= loop.time() + _RESOLUTION:",
        "        if True:",
        (
            "tests/test_read_timer.py::"
            "test_a_wait_ends_at_its_own_deadline_not_at_an_earlier_wait_s_timer",
        ),
    ),
    Mutant(
        "read-timer-not-rearmed",
        "a response that stops coming times out (README: timeouts): the connection's timer,"
        " armed for an earlier wait, is armed again for the wait in progress",
        "imgflow/engine/transport/connection.py",
        "        else:\n            self._timer = loop.call_at(deadline, self._expire)",
        "        else:\n            pass",
        (
            "tests/test_read_timer.py::"
            "test_a_quiet_wait_times_out_when_an_earlier_wait_s_timer_fires_first",
        ),
    ),
    Mutant(
        "fields-keep-the-last-of-a-repeated-header",
        "a response's headers are read as httpx reads them: a repeated header's values joined"
        " (architecture: where a small image's time goes)",
        "imgflow/engine/fetch.py",
        '        fields[name] = value if name not in fields else f"{fields[name]}, {value}"',
        "        fields[name] = value",
        (
            "tests/test_response_fields.py::test_a_response_s_fields_are_what_httpx_s_header_look_ups_give",
        ),
    ),
    Mutant(
        "cookie-not-sent-back",
        "a cookie a site sets goes back with its later requests, as with httpx's own transport"
        " (engine/fetch.py `_send`)",
        "imgflow/engine/fetch.py",
        "        if client.cookies:",
        "        if False:",
        ("tests/test_cookies.py::test_a_cookie_a_site_sets_goes_back_with_its_later_requests",),
    ),
    Mutant(
        "uvloop-connection-not-shut-down",
        "a connection shut down on uvloop's loop (a run's loop) ends at once for a worker"
        " thread reading its duplicate (engine/transport/connection.py `_shut_down`)",
        "imgflow/engine/transport/connection.py",
        "    with sock.dup() as copy:\n        copy.shutdown(socket.SHUT_RDWR)",
        "    return",
        (
            "tests/test_event_loop.py::"
            "test_shutting_a_connection_down_wakes_a_reader_of_its_duplicate",
        ),
    ),
    Mutant(
        "run-not-on-uvloop",
        "a run turns on uvloop's event loop where it is installed (engine/loop.py)",
        "imgflow/engine/loop.py",
        "    return uvloop.new_event_loop",
        "    return None",
        (
            "tests/test_event_loop.py::"
            "test_a_run_turns_on_uvloop_where_it_is_installed_and_on_asyncio_s_loop_elsewhere",
        ),
    ),
    Mutant(
        "shard-records-flushed-only-by-time",
        "a shard layout's held images reach the open shard at least every FLUSH_RECORDS"
        " records, not only every second (architecture: peak memory of the shard layouts)",
        "imgflow/local/runner.py",
        "            self.shards is not None and len(self.buffer) >= FLUSH_RECORDS",
        "            self.shards is not None and len(self.buffer) < 0",
        (
            "tests/test_shards_cost.py::"
            "test_held_images_are_flushed_into_the_shard_every_few_hundred_records",
        ),
    ),
    Mutant(
        "loop-signals-not-held",
        "a signal while the event loop is made, runs or is closed is held, then the interrupt;"
        " raised inside uvloop's own code it broke the loop (engine/loop.py `_Held`)",
        "imgflow/engine/loop.py",
        "        for signum in mine:\n            signal.signal(signum, self._hold)",
        "        for signum in mine:\n            pass",
        (
            "tests/test_event_loop.py::"
            "test_a_signal_while_the_loop_shuts_down_is_the_interrupt_and_the_loop_is_closed",
        ),
    ),
    Mutant(
        "unstarted-main-left-unawaited",
        "a run's coroutine that never started (a signal came first, or the loop could not be"
        ' made) is closed: no "never awaited" warning under the one line (engine/loop.py)',
        "imgflow/engine/loop.py",
        "                    coroutine.close()",
        "                    pass",
        (
            "tests/test_event_loop.py::"
            "test_a_signal_before_main_starts_is_the_interrupt_and_main_is_never_left_unawaited",
            "tests/test_event_loop.py::"
            "test_a_loop_that_cannot_be_made_leaves_no_coroutine_unawaited",
        ),
    ),
    Mutant(
        "interrupt-turned-into-an-error-is-a-traceback",
        "an error C code raised in place of a signal's KeyboardInterrupt is the interrupt:"
        " one line and 130 (cli/exits.py `errors`)",
        "imgflow/cli/exits.py",
        "        if not unwinding():\n            raise",
        "        raise",
        (
            "tests/test_signals.py::"
            "test_an_interrupt_that_c_code_turned_into_another_error_is_still_the_interrupt",
        ),
    ),
    Mutant(
        "outbox-closed-before-its-bytes-left",
        "a worker's last messages (its last shard) reach a coordinator that reads them late"
        " (imgflow/local/workers/wire.py `Outbox.close`)",
        "imgflow/local/workers/wire.py",
        "            self.writer.transport.set_write_buffer_limits(high=0)\n",
        "",
        ("tests/test_workers_wire.py",),
    ),
    Mutant(
        "shard-log-keeps-a-cut-list",
        "an open shard's samples are each committed or failed once, also after a write the"
        " disk cut short (imgflow/local/layouts/shard_log.py)",
        "imgflow/local/layouts/shard_log.py",
        "                os.ftruncate(self.fd, self.end)\n",
        "",
        ("tests/test_shard_log.py",),
    ),
    Mutant(
        "arrow-keeps-mimalloc",
        "Arrow's own allocations come from the system allocator, unless the user chose"
        " (imgflow/__init__.py; architecture: peak memory of the shard layouts)",
        "imgflow/__init__.py",
        'os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")',
        "pass",
        (
            "tests/test_shard_memory_release.py::"
            "test_arrow_allocates_from_the_system_allocator_unless_the_user_chose",
        ),
    ),
    Mutant(
        "parquet-heap-never-trimmed",
        "a Parquet shard's freed heap is handed back every TRIM_BYTES of images (architecture:"
        " peak memory of the shard layouts)",
        "imgflow/local/layouts/parquet.py",
        "            release()  # the groups' rows and columns",
        "            pass  # the groups' rows and columns",
        (
            "tests/test_shard_memory_release.py::"
            "test_a_parquet_row_group_holds_about_group_bytes_and_the_heap_is_trimmed_every_few",
        ),
    ),
]
