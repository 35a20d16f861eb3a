"""Checks of the network settings (proxy, TLS, headers, User-Agent), shared by the config
file's keys (imgflow/config.py) and the command line's flags; errors name the key or flag."""

from __future__ import annotations

from pathlib import Path

from imgflow.engine.proxy import ProxySettingError, parse_no_proxy, parse_proxy
from imgflow.engine.request_headers import HeaderError, parse_header
from imgflow.engine.settings import FetchConfig
from imgflow.errors import ConfigError


def validate_network(fetch: FetchConfig) -> None:
    """The proxy, TLS and header keys (the environment is checked when a run starts)."""
    for i, text in enumerate(fetch.headers):
        header_name(text, f"fetch.headers[{i}]")
    check_user_agent(fetch.user_agent, "fetch.user_agent")
    if fetch.proxy is not None:
        check_proxy(fetch.proxy, "fetch.proxy")
    if fetch.no_proxy is not None:
        parse_no_proxy(fetch.no_proxy)
    if fetch.ca_bundle is not None:
        check_ca_bundle(fetch.ca_bundle, "fetch.ca_bundle")


def header_name(text: str, name: str) -> str:
    """The lowercase name of header `text` ("Name: value"), given as `name`."""
    try:
        return parse_header(text)[0].lower()
    except HeaderError as exc:
        raise ConfigError(f"{name}: {exc}") from None


def check_user_agent(value: str, name: str) -> None:
    """A User-Agent, given as `name`, is one line."""
    if any(c in value for c in "\r\n\0"):
        raise ConfigError(f"{name}: cannot contain CR, LF or NUL")


def check_proxy(url: str, name: str) -> None:
    """A proxy URL, given as `name`, is one imgflow can use."""
    try:
        parse_proxy(url, name)
    except ProxySettingError as exc:
        raise ConfigError(str(exc)) from None


def check_ca_bundle(path: str | Path, name: str) -> None:
    """A CA bundle, given as `name`, is a file."""
    if not Path(path).expanduser().is_file():
        raise ConfigError(f"{name}: {path}: no such file")
