"""imgflow.yaml -> a frozen, validated Config.

Precedence: command-line flags > IMGFLOW_* environment variables > the file > defaults.
Every key of the file is documented in imgflow.yaml.example. An environment variable is
named after its key: ``fetch.timeout`` is ``IMGFLOW_FETCH_TIMEOUT``, the top-level
``backend`` is ``IMGFLOW_BACKEND``. Errors name the key.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from imgflow.engine.settings import DEFAULT_OPT_OUT, FetchConfig
from imgflow.engine.user_agent import valid_contact
from imgflow.errors import ConfigError
from imgflow.network_checks import validate_network

DEFAULT_CONFIG_FILE = "imgflow.yaml"
# The retention periods CloudWatch Logs accepts (PutRetentionPolicy), in days.
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545,
    731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip
ENV_PREFIX = "IMGFLOW_"
USER_CONFIG_NAME = "imgflow/imgflow.yaml"
# IMGFLOW_* variables that are not config keys: what deploy hands the Lambdas, what
# notify.command is given, and where deploy's zip builder keeps wheels.
RUNTIME_ENV = frozenset(
    {
        "IMGFLOW_DEPLOYMENT",
        "IMGFLOW_BUCKET",
        "IMGFLOW_TABLE",
        "IMGFLOW_TOPIC_ARN",
        "IMGFLOW_PREFIX",
        "IMGFLOW_FETCH_SETTINGS",
        "IMGFLOW_ALLOW_PRIVATE_TARGETS",
        "IMGFLOW_INLINE_MAX_MESSAGES",
        "IMGFLOW_RUN_ID",
        "IMGFLOW_FAILURES_FILE",
        "IMGFLOW_WHEEL_CACHE",
    }
)


@dataclass(frozen=True)
class JobDefaults:
    """Defaults for `imgflow run` flags."""

    concurrency: int = 5
    batch_size: int = 250
    max_batches: int = 4
    tolerate_failures: float = 0.0
    # Full URLs from many hosts (scheduled per host): requests in flight across all hosts,
    # and the connection failures in a row (DNS, refused) that pause a host.
    max_in_flight: int = 64
    host_failures: int = 5


@dataclass(frozen=True)
class LocalConfig:
    """The local backend."""

    data_dir: str = "imgflow-data"
    fsync: bool = True
    workers: int | Literal["auto"] = 1  # processes fetching and storing (imgflow/local/workers)


LAYOUTS = ("files", "webdataset", "parquet")


@dataclass(frozen=True)
class OutputConfig:
    """How a local run lays out what it stores (imgflow/local/layouts/)."""

    layout: str = "files"  # files | webdataset | parquet
    shard_size: int = 10_000  # samples per shard (webdataset, parquet)


@dataclass(frozen=True)
class NotifyConfig:
    """Where failure notices go."""

    command: str | tuple[str, ...] | None = None
    shell: bool = False
    emails: tuple[str, ...] = ()
    inline_max_messages: int = 50


@dataclass(frozen=True)
class StorageConfig:
    """S3 storage settings of the aws backend."""

    glacier_after_days: int | None = 1
    jobs_expire_days: int | None = 30  # job objects under jobs/ (null: kept forever)
    prefix: str = "images/"
    tls_only: bool = True


@dataclass(frozen=True)
class LambdaConfig:
    """Settings shared by imgflow's Lambda functions."""

    runtime: str = "python3.12"
    architecture: Literal["x86_64", "arm64"] = "x86_64"  # arm64: about 20% less per GB-s
    timeout: int = 300
    memory: int = 1024
    plan_memory: int = 512
    consolidate_memory: int = 512
    # The plan function's /tmp (Lambda: 512 to 10240 MB); a job of 10,000,000 paths
    # spills about 2 GB of partitions there.
    plan_ephemeral_mb: int = 3072
    log_retention_days: int | None = 30


@dataclass(frozen=True)
class ApiConfig:
    """The HTTP API that starts executions."""

    auth: Literal["iam", "none"] = "iam"
    route: str = "/jobs"


@dataclass(frozen=True)
class ServeConfig:
    """`imgflow serve`: where it listens, who may use it, and its limits."""

    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = None
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    max_body_bytes: int = 10 * 1024 * 1024
    max_json_depth: int = 16
    read_timeout: float = 10.0
    max_connections: int = 100
    max_queued: int = 100
    log_file: str | None = None


@dataclass(frozen=True)
class AwsConfig:
    """The aws backend: where and what to deploy."""

    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None
    state_dir: str = ".imgflow/deployed"
    allow_private_targets: bool = False
    sfn_log_level: Literal["OFF", "ERROR", "FATAL", "ALL"] = "ERROR"
    xray: bool = False


@dataclass(frozen=True)
class EtiquetteConfig:
    """Crawl etiquette: robots.txt, the sites' opt-out headers, who to contact."""

    contact: str | None = None  # a URL or e-mail address, named in the User-Agent
    robots: bool = True  # read and obey robots.txt (--ignore-robots turns it off)
    opt_out: tuple[str, ...] = DEFAULT_OPT_OUT  # X-Robots-Tag directives, tdm-reservation
    max_crawl_delay: float = 30.0  # seconds: the longest Crawl-delay obeyed


@dataclass(frozen=True)
class Config:
    """All of imgflow's settings."""

    backend: Literal["local", "aws"] = "local"
    deployment: str = "imgflow"
    job: JobDefaults = field(default_factory=JobDefaults)
    fetch: FetchConfig = field(default_factory=FetchConfig)
    local: LocalConfig = field(default_factory=LocalConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    aws: AwsConfig = field(default_factory=AwsConfig)
    lambda_: LambdaConfig = field(default_factory=LambdaConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    etiquette: EtiquetteConfig = field(default_factory=EtiquetteConfig)
    source: str | None = None


# Keys whose YAML name differs from the attribute name.
_YAML_NAMES = {"lambda_": "lambda"}
_NOT_IN_FILE = {"source"}


def _yaml_name(attr: str) -> str:
    return _YAML_NAMES.get(attr, attr)


def _fields(cls: type) -> dict[str, dataclasses.Field[Any]]:
    return {
        _yaml_name(f.name): f
        for f in dataclasses.fields(cls)
        if f.name not in _NOT_IN_FILE and not f.metadata.get("etiquette")
    }


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " or ".join(repr(a) for a in typing.get_args(tp))
    if origin in (types.UnionType, typing.Union):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if origin is tuple:
        item = _describe(typing.get_args(tp)[0])
        return "a list of " + {"a string": "strings", "an integer": "integers"}.get(item, item)
    if tp is type(None):
        return "null"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


# IMGFLOW_* values YAML reads one way only, read here without loading the YAML parser.
_PLAIN_BOOLS = {"true": True, "false": False}


def _env_value(raw: str, tp: Any) -> Any:
    """Parse an IMGFLOW_* value: YAML scalars, except where a plain string is wanted."""
    args = typing.get_args(tp) if typing.get_origin(tp) in (types.UnionType, typing.Union) else ()
    if tp is str or (str in args and raw.strip().lower() not in ("", "null", "~", "none")):
        return raw
    if typing.get_origin(tp) is not tuple:
        if raw in _PLAIN_BOOLS:
            return _PLAIN_BOOLS[raw]
        if raw.isascii() and raw.isdigit() and (raw == "0" or not raw.startswith("0")):
            return int(raw)  # (YAML's int: no sign, "_" or leading 0)
    elif not raw.lstrip().startswith("["):
        separator = "\n" if "\n" in raw else ","
        return [v.strip() for v in raw.split(separator) if v.strip()]
    import yaml  # here: a run without a config file or variables never loads it

    try:  # (a tuple's value here is a YAML list, for items holding commas)
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


def _coerce(key: str, value: Any, tp: Any) -> Any:
    """Check `value` against the type `tp`, naming `key` when it does not fit."""
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        for arg in typing.get_args(tp):
            try:
                return _coerce(key, value, arg)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: expected {_describe(tp)}, got {value!r}")
    if origin is Literal:
        if value in typing.get_args(tp):
            return value
        raise ConfigError(f"{key}: expected {_describe(tp)}, got {value!r}")
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected {_describe(tp)}, got {value!r}")
        item_tp = typing.get_args(tp)[0]
        return tuple(_coerce(f"{key}[{i}]", v, item_tp) for i, v in enumerate(value))
    if tp is type(None):
        if value is None:
            return None
        raise ConfigError(f"{key}: expected null, got {value!r}")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    raise ConfigError(f"{key}: unsupported setting type")  # pragma: no cover


def _build(cls: type, data: Mapping[str, Any], prefix: str, env: Mapping[str, str]) -> Any:
    fields = _fields(cls)
    hints = _hints(cls)
    for name in data:
        if name not in fields:
            where = f"{prefix}{name}"
            import difflib

            close = difflib.get_close_matches(str(name), list(fields), n=1, cutoff=0.6)
            if close:
                raise ConfigError(f"{where}: unknown key; did you mean {close[0]}?")
            known = ", ".join(sorted(fields))
            raise ConfigError(f"{where}: unknown key (known keys here: {known})")
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        key = f"{prefix}{name}"
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            sub = data.get(name, {})
            if sub is None:
                sub = {}
            if not isinstance(sub, Mapping):
                raise ConfigError(f"{key}: expected a mapping of settings, got {sub!r}")
            kwargs[f.name] = _build(tp, sub, f"{key}.", env)  # type: ignore[arg-type]
            continue
        env_name = ENV_PREFIX + key.replace(".", "_").upper()
        if env_name in env:
            kwargs[f.name] = _coerce(env_name, _env_value(env[env_name], tp), tp)
        elif name in data:
            kwargs[f.name] = _coerce(key, data[name], tp)
    return cls(**kwargs)


def _validate(cfg: Config) -> None:
    checks: list[tuple[bool, str]] = [
        (cfg.job.concurrency >= 1, "job.concurrency: must be at least 1"),
        (cfg.job.batch_size >= 1, "job.batch_size: must be at least 1"),
        (cfg.job.max_batches >= 1, "job.max_batches: must be at least 1"),
        (cfg.job.max_in_flight >= 1, "job.max_in_flight: must be at least 1"),
        (cfg.job.host_failures >= 1, "job.host_failures: must be at least 1"),
        (0 <= cfg.job.tolerate_failures <= 100, "job.tolerate_failures: must be 0 to 100"),
        (cfg.fetch.timeout > 0, "fetch.timeout: must be greater than 0"),
        (cfg.fetch.connect_timeout > 0, "fetch.connect_timeout: must be greater than 0"),
        (cfg.fetch.retries >= 0, "fetch.retries: must be 0 or more"),
        (cfg.fetch.backoff_base >= 0, "fetch.backoff_base: must be 0 or more"),
        (cfg.fetch.backoff_max >= 0, "fetch.backoff_max: must be 0 or more"),
        (cfg.fetch.max_bytes >= 1, "fetch.max_bytes: must be at least 1"),
        (cfg.fetch.max_redirects >= 0, "fetch.max_redirects: must be 0 or more"),
        (
            cfg.fetch.rate is None or cfg.fetch.rate > 0,
            "fetch.rate: must be greater than 0 (requests per second), or null for none",
        ),
        (cfg.fetch.burst >= 1, "fetch.burst: must be at least 1"),
        (cfg.fetch.throttle_patience >= 0, "fetch.throttle_patience: must be 0 or more seconds"),
        (bool(cfg.fetch.allowed_types), "fetch.allowed_types: must list at least one type"),
        (bool(cfg.local.data_dir), "local.data_dir: must not be empty"),
        (
            cfg.local.workers == "auto" or 1 <= cfg.local.workers <= 64,
            "local.workers: must be 1 to 64, or auto",
        ),
        (
            cfg.output.layout in LAYOUTS,
            f"output.layout: expected one of {', '.join(LAYOUTS)}, got {cfg.output.layout!r}",
        ),
        (cfg.output.shard_size >= 1, "output.shard_size: must be at least 1"),
        (cfg.lambda_.timeout >= 1, "lambda.timeout: must be at least 1 second"),
        (cfg.lambda_.timeout <= 900, "lambda.timeout: Lambda allows at most 900 seconds"),
        (128 <= cfg.lambda_.memory <= 10240, "lambda.memory: must be 128 to 10240 MB"),
        (
            512 <= cfg.lambda_.plan_ephemeral_mb <= 10240,
            "lambda.plan_ephemeral_mb: Lambda's /tmp must be 512 to 10240 MB, got "
            f"{cfg.lambda_.plan_ephemeral_mb}",
        ),
        (
            cfg.lambda_.log_retention_days in (None, *LOG_RETENTION_DAYS),
            "lambda.log_retention_days: CloudWatch Logs accepts "
            + ", ".join(map(str, LOG_RETENTION_DAYS))
            + " days, or null to keep logs forever",
        ),
        (
            cfg.storage.jobs_expire_days is None or cfg.storage.jobs_expire_days >= 1,
            "storage.jobs_expire_days: must be at least 1, or null",
        ),
        (
            cfg.storage.glacier_after_days is None or cfg.storage.glacier_after_days >= 0,
            "storage.glacier_after_days: must be 0 or more, or null",
        ),
        (bool(cfg.serve.host), "serve.host: must not be empty"),
        (0 <= cfg.serve.port <= 65535, "serve.port: must be 0 to 65535"),
        (
            cfg.serve.token is None or len(cfg.serve.token) >= 16,
            "serve.token: use at least 16 characters (or null for a token generated at start)",
        ),
        (cfg.serve.max_body_bytes >= 1, "serve.max_body_bytes: must be at least 1"),
        (cfg.serve.max_json_depth >= 2, "serve.max_json_depth: must be at least 2"),
        (cfg.serve.read_timeout > 0, "serve.read_timeout: must be greater than 0"),
        (cfg.serve.max_connections >= 1, "serve.max_connections: must be at least 1"),
        (cfg.serve.max_queued >= 1, "serve.max_queued: must be at least 1"),
        (_valid_name(cfg.deployment), "deployment: use 3-40 lowercase letters, digits or '-'"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    validate_network(cfg.fetch)
    _validate_etiquette(cfg.etiquette)


def _validate_etiquette(etiquette: EtiquetteConfig) -> None:
    contact = etiquette.contact
    if contact is not None and not valid_contact(contact):
        raise ConfigError(
            f"etiquette.contact: {contact!r} is neither an http(s) URL nor an e-mail address"
        )
    if not etiquette.max_crawl_delay > 0:
        raise ConfigError("etiquette.max_crawl_delay: must be greater than 0 seconds")


def engine_fetch(cfg: Config) -> FetchConfig:
    """The engine's fetch settings: `fetch` with the `etiquette` section handed in.

    Derived where a run's settings are built (the local run settings, the Lambda
    environment), never kept in the Config: a Config changed after it was loaded (a CLI
    override, a `dataclasses.replace`) hands on the etiquette it holds."""
    etiquette = cfg.etiquette
    return dataclasses.replace(
        cfg.fetch,
        robots=etiquette.robots,
        opt_out=tuple(o.strip().lower() for o in etiquette.opt_out),
        max_crawl_delay=etiquette.max_crawl_delay,
        contact=etiquette.contact,
    )


def _valid_name(name: str) -> bool:
    return (
        3 <= len(name) <= 40
        and name[0].isalpha()
        and all(c.islower() or c.isdigit() or c == "-" for c in name)
    )


def from_mapping(
    data: Mapping[str, Any] | None,
    env: Mapping[str, str] | None = None,
    source: str | None = None,
) -> Config:
    """Build a validated Config from parsed YAML and IMGFLOW_* variables."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source or 'config'}: the top level must be a mapping of settings")
    env = {
        k: v for k, v in (os.environ if env is None else env).items() if k.startswith("IMGFLOW_")
    }
    data = _headers_as_list(data)
    cfg: Config = _build(Config, data, "", env)
    cfg = dataclasses.replace(cfg, source=source)
    _validate(cfg)
    return cfg


def _headers_as_list(data: Mapping[str, Any]) -> Mapping[str, Any]:
    """fetch.headers may be a mapping {Name: value}: the list of "Name: value" it means."""
    fetch = data.get("fetch")
    if not isinstance(fetch, Mapping) or not isinstance(fetch.get("headers"), Mapping):
        return data
    headers = [f"{name}: {value}" for name, value in fetch["headers"].items()]
    return {**data, "fetch": {**fetch, "headers": headers}}


def user_config_path(env: Mapping[str, str] | None = None) -> Path:
    """The user-level config: ``$XDG_CONFIG_HOME/imgflow/imgflow.yaml`` (~/.config)."""
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME") or str(Path("~/.config").expanduser())
    return Path(base) / USER_CONFIG_NAME


def _user_file_there(file: Path) -> bool:
    """Whether the user-level file is there: behind a folder this user may not search (a
    HOME they cannot read, as after `su` without `-` or under cron) it is not, for them."""
    try:
        return file.is_file()
    except PermissionError:
        return False


def _read_yaml(file: Path) -> Any:
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{file}: not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read ({exc.strerror})") from None
    import yaml  # here: a run without a config file or variables never loads it

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{file}:{where}: YAML syntax error: {problem}") from None


def _merge(below: Any, above: Any) -> Any:
    """`above` over `below`, section by section (mappings merge; anything else replaces)."""
    if isinstance(below, Mapping) and isinstance(above, Mapping):
        merged = dict(below)
        for key, value in above.items():
            merged[key] = _merge(below.get(key), value) if key in below else value
        return merged
    return above


def load(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Load imgflow.yaml (or `path`) over the user-level config; missing files mean defaults.

    The user-level file (`user_config_path`) sets personal defaults once, such as
    ``local.data_dir``; the project's file and then IMGFLOW_* variables override it.
    """
    explicit = path is not None
    file = Path(path) if path is not None else Path(DEFAULT_CONFIG_FILE)
    user_file = user_config_path(env)
    data: Any = None
    sources: list[str] = []
    if _user_file_there(user_file):
        data = _read_yaml(user_file)
        if data is not None and not isinstance(data, Mapping):
            raise ConfigError(f"{user_file}: the top level must be a mapping of settings")
        sources.append(str(user_file))
    if file.exists():
        data = _merge(data or {}, _read_yaml(file))
        sources.append(str(file))
    elif explicit:
        raise ConfigError(f"{file}: config file not found")
    return from_mapping(data, env, source=" + ".join(sources) or None)


def config_env_names() -> dict[str, str]:
    """Every IMGFLOW_* variable a config key reads, with its key (``fetch.timeout``)."""
    names: dict[str, str] = {}

    def walk(cls: type, prefix: str) -> None:
        hints = _hints(cls)
        for name, f in _fields(cls).items():
            if dataclasses.is_dataclass(hints[f.name]):
                walk(hints[f.name], f"{prefix}{name}.")
            else:
                key = f"{prefix}{name}"
                names[ENV_PREFIX + key.replace(".", "_").upper()] = key

    walk(Config, "")
    return names


def unknown_env(env: Mapping[str, str] | None = None) -> list[str]:
    """A warning for each IMGFLOW_* variable that no setting reads, naming the closest."""
    import difflib

    env = os.environ if env is None else env
    known = config_env_names()
    warnings = []
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX) or name in known or name in RUNTIME_ENV:
            continue
        close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]} ({known[close[0]]})?" if close else ""
        warnings.append(f"{name} is not an imgflow setting and is ignored{hint}")
    return warnings


def with_overrides(
    cfg: Config,
    *,
    backend: Literal["local", "aws"] | None = None,
    **sections: Mapping[str, Any],
) -> Config:
    """Apply command-line overrides: `backend`, and section -> {key: value} (None means
    not given; the ``lambda`` section is passed as ``**{"lambda": {...}}``)."""
    if backend is not None:
        cfg = dataclasses.replace(cfg, backend=backend)
    for section, values in sections.items():
        given = {k: v for k, v in values.items() if v is not None}
        if not given:
            continue
        attr = "lambda_" if section == "lambda" else section
        current = getattr(cfg, attr)
        cfg = dataclasses.replace(cfg, **{attr: dataclasses.replace(current, **given)})
    _validate(cfg)
    return cfg
