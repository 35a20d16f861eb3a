"""Which proxy, if any, carries a request: curl's and httpx's rules.

The environment (``http_proxy``, ``https_proxy``, ``all_proxy``, ``no_proxy`` and their
upper-case forms, lower-case first) is honoured unless `FetchConfig.trust_env` is false;
`FetchConfig.proxy` overrides the proxy variables and `FetchConfig.no_proxy` the no_proxy
one. Proxies are ``http://[user:password@]host[:port]`` (``host:port`` alone means http;
the port defaults to 80). A ``no_proxy`` list holds host names (matching the name and its
subdomains; a leading ``.`` or ``*.`` is allowed), IP addresses, CIDR ranges, any of them
with ``:port``, or ``*`` for every host.
"""

from __future__ import annotations

import base64
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from imgflow.engine.settings import FetchConfig

PROXY_SCHEMES = ("http",)


class ProxySettingError(ValueError):
    """A proxy setting that is not usable; the text names the setting."""


@dataclass(frozen=True, slots=True)
class Proxy:
    """One forward proxy."""

    host: str
    port: int
    authorization: bytes | None = None  # the Proxy-Authorization value, when credentials

    @property
    def shown(self) -> str:
        """The proxy's URL without credentials, for messages."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def parse_proxy(text: str, where: str) -> Proxy:
    """A Proxy from its URL; ProxySettingError names `where` when the URL is not usable."""
    value = text.strip()
    if not value:
        raise ProxySettingError(f"{where}: empty proxy URL")
    if "://" not in value:
        if not _has_port(value):
            raise ProxySettingError(
                f"{where}: {text!r} is not a proxy URL (expected http://host:port)"
            )
        value = "http://" + value
    parts = urlsplit(value)
    scheme = parts.scheme.lower()
    if scheme not in PROXY_SCHEMES:
        raise ProxySettingError(
            f"{where}: unsupported proxy scheme {scheme!r} in {_redact(text)!r} "
            "(use http://host:port)"
        )
    try:
        port = parts.port or 80
    except ValueError:
        raise ProxySettingError(f"{where}: bad port in {_redact(text)!r}") from None
    host = parts.hostname
    if not host or any(c.isspace() for c in host):
        raise ProxySettingError(f"{where}: {_redact(text)!r} has no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ProxySettingError(f"{where}: a proxy URL has no path: {_redact(text)!r}")
    authorization = None
    if parts.username is not None:
        user = unquote(parts.username)
        password = unquote(parts.password or "")
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        authorization = f"Basic {token}".encode("ascii")
    return Proxy(host, port, authorization)


def _has_port(value: str) -> bool:
    host, sep, port = value.rpartition(":")
    return bool(sep and host and port.isdigit())


def _redact(text: str) -> str:
    """The URL with any password replaced by ***."""
    parts = urlsplit(text if "://" in text else "http://" + text)
    if parts.password is None:
        return text
    return text.replace(":" + parts.password + "@", ":***@", 1)


@dataclass(frozen=True, slots=True)
class _Bypass:
    """One entry of a no_proxy list."""

    name: str | None = None
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    port: int | None = None

    def matches(self, host: str, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.network is not None:
            try:
                return ipaddress.ip_address(host) in self.network
            except ValueError:
                return False
        assert self.name is not None
        return host == self.name or host.endswith("." + self.name)


def parse_no_proxy(text: str) -> tuple[bool, tuple[_Bypass, ...]]:
    """(every host bypasses, the entries) of a no_proxy list."""
    entries: list[_Bypass] = []
    for raw in text.replace(" ", ",").split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True, ()
        entries.append(_bypass(entry))
    return False, tuple(entries)


def _bypass(entry: str) -> _Bypass:
    port: int | None = None
    host = entry
    if entry.startswith("["):
        inside, _, rest = entry[1:].partition("]")
        host = inside
        if rest.startswith(":") and rest[1:].isdigit():
            port = int(rest[1:])
    elif entry.count(":") == 1:
        name, _, tail = entry.partition(":")
        if tail.isdigit():
            host, port = name, int(tail)
    try:
        return _Bypass(network=ipaddress.ip_network(host, strict=False), port=port)
    except ValueError:
        pass
    if host.startswith("*."):
        host = host[2:]
    return _Bypass(name=host.lstrip("."), port=port)


@dataclass(frozen=True, slots=True)
class ProxyRouter:
    """The proxy for each URL scheme, and the hosts that go direct."""

    http: Proxy | None = None
    https: Proxy | None = None
    bypass_all: bool = False
    bypass: tuple[_Bypass, ...] = ()

    @property
    def active(self) -> bool:
        """Whether any request may go through a proxy."""
        return (self.http is not None or self.https is not None) and not self.bypass_all

    def proxy_for(self, scheme: str, host: str, port: int) -> Proxy | None:
        """The proxy for a request to scheme://host:port, or None to go direct."""
        proxy = self.https if scheme == "https" else self.http
        if proxy is None or self.bypass_all:
            return None
        name = host.strip("[]").lower().rstrip(".")
        if any(entry.matches(name, port) for entry in self.bypass):
            return None
        return proxy

    def proxy_for_url(self, url: str) -> Proxy | None:
        """The proxy for `url`, or None to go direct."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError:
            return None
        return self.proxy_for(scheme, parts.hostname or "", port)


def _variable(env: Mapping[str, str], name: str) -> tuple[str, str] | None:
    """(variable name, value) for `name`, lower-case first; empty values do not count."""
    for variable in (name.lower(), name.upper()):
        if variable == "HTTP_PROXY" and "REQUEST_METHOD" in env:
            continue  # a CGI environment: HTTP_PROXY may come from a request header
        value = env.get(variable, "").strip()
        if value:
            return variable, value
    return None


def router(settings: FetchConfig, env: Mapping[str, str] | None = None) -> ProxyRouter:
    """The routing `settings` ask for, reading the environment when trust_env is on.

    ProxySettingError names the key or variable at fault.
    """
    env = os.environ if env is None else env
    http = https = None
    if settings.proxy:
        http = https = parse_proxy(settings.proxy, "fetch.proxy")
    elif settings.trust_env:
        fallback = _variable(env, "all_proxy")
        for scheme in ("http", "https"):
            found = _variable(env, f"{scheme}_proxy") or fallback
            if found is not None:
                proxy = parse_proxy(found[1], found[0])
                if scheme == "http":
                    http = proxy
                else:
                    https = proxy
    no_proxy = settings.no_proxy
    if no_proxy is None and settings.trust_env:
        found = _variable(env, "no_proxy")
        no_proxy = found[1] if found is not None else None
    bypass_all, entries = parse_no_proxy(no_proxy or "")
    return ProxyRouter(http, https, bypass_all, entries)
