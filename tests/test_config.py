"""Config: defaults, the file, IMGFLOW_* variables, flags, and errors that name the key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from imgflow import config
from imgflow.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[1] / "imgflow.yaml.example"


def test_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = config.load(env={})
    assert (
        cfg.backend == "local" and cfg.job.concurrency == 5 and cfg.local.data_dir == "imgflow-data"
    )


def test_precedence_flags_over_env_over_file(tmp_path: Path) -> None:
    file = tmp_path / "imgflow.yaml"
    file.write_text("job:\n  concurrency: 3\n  batch_size: 10\nfetch:\n  timeout: 2\n")
    cfg = config.load(file, env={"IMGFLOW_JOB_CONCURRENCY": "7", "IMGFLOW_FETCH_RETRIES": "0"})
    assert (cfg.job.concurrency, cfg.job.batch_size, cfg.fetch.timeout, cfg.fetch.retries) == (
        7,
        10,
        2.0,
        0,
    )
    cfg = config.with_overrides(cfg, job={"concurrency": 9, "batch_size": None})
    assert (cfg.job.concurrency, cfg.job.batch_size) == (9, 10)


def test_overrides_set_the_backend_and_are_checked_like_the_file() -> None:
    cfg = config.with_overrides(config.from_mapping({}, env={}), backend="aws")
    assert cfg.backend == "aws"
    with pytest.raises(ConfigError, match=r"job\.concurrency: must be at least 1"):
        config.with_overrides(cfg, job={"concurrency": 0})


def test_env_lists_and_nulls() -> None:
    cfg = config.from_mapping(
        {},
        env={
            "IMGFLOW_FETCH_ALLOWED_TYPES": "image/png, image/gif",
            "IMGFLOW_NOTIFY_COMMAND": "cat",
        },
    )
    assert cfg.fetch.allowed_types == ("image/png", "image/gif") and cfg.notify.command == "cat"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"fetch": {"timeot": 1}}, "fetch.timeot: unknown key"),
        ({"bogus": 1}, "bogus: unknown key"),
        ({"job": {"concurrency": 0}}, "job.concurrency: must be at least 1"),
        ({"job": {"concurrency": -4}}, "job.concurrency: must be at least 1"),
        ({"job": {"concurrency": "many"}}, "job.concurrency: expected an integer"),
        ({"job": {"concurrency": True}}, "job.concurrency: expected an integer"),
        ({"fetch": {"timeout": 0}}, "fetch.timeout: must be greater than 0"),
        ({"fetch": "fast"}, "fetch: expected a mapping"),
        ({"backend": "gcp"}, "backend: expected 'local' or 'aws'"),
        ({"notify": {"emails": "a@b"}}, "notify.emails: expected a list of strings"),
        ({"lambda": {"timeout": 901}}, "lambda.timeout"),
        ({"lambda": {"log_retention_days": 10}}, "lambda.log_retention_days: CloudWatch"),
        ({"lambda": {"log_retention_days": "forever"}}, "lambda.log_retention_days: expected"),
        ({"deployment": "Bad_Name"}, "deployment:"),
        ({"serve": {"port": 65536}}, "serve.port: must be 0 to 65535"),
    ],
)
def test_errors_name_the_key(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        config.from_mapping(data, env={})


def test_log_retention_days_default_allowed_values_and_null() -> None:
    assert config.from_mapping({}, env={}).lambda_.log_retention_days == 30
    for days in (1, 14, 365, 3653, None):
        cfg = config.from_mapping({"lambda": {"log_retention_days": days}}, env={})
        assert cfg.lambda_.log_retention_days == days
    env = {"IMGFLOW_LAMBDA_LOG_RETENTION_DAYS": "null"}
    assert config.from_mapping({}, env=env).lambda_.log_retention_days is None


def test_bad_env_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="IMGFLOW_JOB_CONCURRENCY: expected an integer"):
        config.from_mapping({}, env={"IMGFLOW_JOB_CONCURRENCY": "lots"})


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    file = tmp_path / "imgflow.yaml"
    file.write_text("job:\n  concurrency: [1,\n")
    with pytest.raises(ConfigError, match=r"imgflow.yaml: line \d+: YAML syntax error"):
        config.load(file, env={})


def test_missing_explicit_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        config.load(tmp_path / "nope.yaml", env={})


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    file = tmp_path / "imgflow.yaml"
    file.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        config.load(file, env={})


def _keys(cls: type, prefix: str = "") -> list[str]:
    found = []
    for f in dataclasses.fields(cls):
        if f.name == "source" or f.metadata.get("etiquette"):
            continue  # (fetch's etiquette fields are set from the etiquette section)
        name = prefix + ("lambda" if f.name == "lambda_" else f.name)
        if dataclasses.is_dataclass(f.default_factory):  # type: ignore[arg-type]
            found += _keys(f.default_factory, name + ".")  # type: ignore[arg-type]
        else:
            found.append(name)
    return found


def test_example_documents_every_key_and_loads() -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    config.from_mapping(data, env={})
    for key in _keys(config.Config):
        node = data
        for part in key.split("."):
            assert isinstance(node, dict) and part in node, f"{key} is not in imgflow.yaml.example"
            node = node[part]
