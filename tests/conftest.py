"""Shared fixtures: ``fault_server`` (scriptable, per test) and ``flag_server`` (the demo flags).

Every test also gets the process environment back as it found it (in-process Lambda handlers
and session fixtures must not leave ``AWS_ENDPOINT_URL``, ``MOTO_PORT`` or ``IMGFLOW_*``
values to later tests), and the session sweeps the unpacked Lambda code folders of test
processes that have ended.

Test modules import the fault server's replies with ``from support.faultserver import Ok, ...``
(pytest puts ``tests/`` on ``sys.path`` because it has no ``__init__.py``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from support.faultserver import FaultServer
from support.scratch import sweep_dead_lambda_code

from imgflow.demo import FLAGS_DIR
from imgflow.demo.server import StaticServer, serve_directory


@pytest.hookimpl(wrapper=True)
def pytest_sessionstart(session: pytest.Session) -> Iterator[None]:
    """Say "bringing up nodes..." once: without a terminal, pytest-xdist says it again when
    collection ends (with -q its status line has nothing else to say)."""
    yield
    reporter = session.config.pluginmanager.get_plugin("terminaldistreporter")
    if reporter is not None:
        reporter.ensure_show_status = lambda: None


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    """Print the random order's seed last, even with -q (which hides the header)."""
    seed = getattr(config.option, "randomly_seed", None)
    if isinstance(seed, int) and config.pluginmanager.has_plugin("randomly"):
        terminalreporter.write_line(
            f"random test order, seed {seed} (repeat it with --randomly-seed={seed})"
        )


# The longest tests (from `pytest --durations`), started first: with `-n 3 --dist worksteal`
# (pyproject.toml) none of them then starts last and runs alone while the others idle. Three
# workers on two cores: the suite waits on servers and processes much of the time (load about
# 1.8 with two workers), so a third keeps the cores busy.
# A node id prefix each; the rest keep pytest-randomly's order, and so do these among
# themselves. A test missing here is only scheduled less well.
SLOW_FIRST: tuple[str, ...] = (
    "tests/aws/test_submit_413.py::test_a_seed_body_and_a_manifest_reference_start_executions_as_before",
    "tests/aws/test_submit_413.py::test_a_body_over_the_execution_input_limit_is_a_413_naming_the_way_round",
    "tests/test_url_tables_stream.py::test_a_million_row_table_streams_in_flat_memory",
    "tests/test_paths_stream_cli.py::test_a_million_line_paths_file_starts_at_once",
    "tests/aws/test_cli_aws_e2e.py::test_deploy_run_status_teardown",
    "tests/aws/test_plan_scale.py::test_a_job_of_100000_paths_is_planned",
    "tests/aws/test_plan_ephemeral.py::test_plan_tmp_is_set_at_deploy_and_updated_on_redeploy",
    "tests/aws/test_url_lanes_stream.py::test_urls_plan_memory_is_flat_in_the_number_of_rows",
    "tests/test_throttling.py::test_a_429_storm_without_retry_after_ends_with_every_image_stored",
    "tests/adversarial/test_local_faults.py::test_faults_never_lose_a_record_and_a_healed_rerun",
    "tests/test_url_tables.py::test_export_writes_csv_and_parquet_and_one_run",
    "tests/test_serve_fuzz.py::test_the_api_holds_up_to_a_fuzz_from_its_own_description",
    "tests/test_workers.py::test_four_runs_with_workers_at_once_on_one_data_folder",
    "tests/test_workers.py::test_leased_slots_move_between_workers_and_never_exceed_the_hosts_cap",
    "tests/aws/test_cli_aws.py::test_retry_new_and_the_executions_listing",
    "tests/aws/test_deploy_cli.py::test_aws_error_is_one_line_naming_the_resource",
    "tests/aws/test_deploy_cli.py::test_deploy_twice_then_teardown",
    "tests/test_shards_disk.py::test_a_full_disk_during_shard_writes",
    "tests/test_workers.py::test_a_signal_ends_every_worker_and_the_run_with_130",
    "tests/aws/test_export_aws.py::test_a_urls_jobs_results_export_as_the_local_table_with",
    "tests/test_serve_host_notes.py::test_a_urls_jobs_document_carries_its_host_notes",
    "tests/test_export_shards.py::test_a_webdataset_runs_rows_name_their_shard_and_member",
    "tests/test_shards_rewrite.py::test_kill_9_during_a_rewrite_then_a_rerun_has_every_url_in_one_shard",
    "tests/test_terminal.py::"
    "test_a_streamed_input_counts_with_separators_and_ends_without_its_reading_note",
    "tests/test_interrupted_json.py::test_an_interrupted_json_retry_prints_its_document_so_far",
    "tests/test_shards_rewrite_workers.py::"
    "test_a_refresh_on_two_workers_leaves_every_url_in_one_shard",
    "tests/test_shards_rewrite_workers.py::"
    "test_a_sample_found_not_intact_then_fetched_by_a_later_run_on_workers_is_in_one_shard",
    "tests/test_workers_hosts.py::test_a_killed_workers_hosts_are_taken_over_and_the_run_finishes",
    "tests/test_workers_hosts.py::test_each_host_is_one_workers_and_its_cap_holds",
    "tests/test_workers_hosts.py::test_a_429_cools_its_owners_host_and_the_summary_counts_it",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Move the tests named in SLOW_FIRST to the front (a stable sort: after
    pytest-randomly's shuffle, which runs first, and the same on every xdist worker)."""
    if SLOW_FIRST:
        items.sort(key=lambda item: not item.nodeid.startswith(SLOW_FIRST))


@pytest.fixture(autouse=True)
def _environment_is_restored() -> Iterator[None]:
    before = dict(os.environ)
    yield
    if dict(os.environ) != before:
        os.environ.clear()
        os.environ.update(before)


@pytest.fixture(scope="session", autouse=True)
def _dead_lambda_code_is_swept() -> Iterator[None]:
    yield
    sweep_dead_lambda_code()


@pytest.fixture
def fault_server() -> Iterator[FaultServer]:
    """A fresh scriptable server on 127.0.0.1; unknown paths get 404."""
    with FaultServer() as server:
        yield server


@pytest.fixture(scope="session")
def flag_server() -> Iterator[StaticServer]:
    """The bundled flag set over HTTP: ``flag_server.url("ad/ad.gif")``; ``zz/zz.gif`` is 404."""
    with serve_directory(FLAGS_DIR) as server:
        yield server
