"""The TLS context both transports verify servers with.

In order: `FetchConfig.insecure` verifies nothing; `trust_store: system` verifies with the
operating system's store (the truststore package), plus `ca_bundle` when given;
`ca_bundle` alone replaces the default bundle (as curl's --cacert does); otherwise, with
trust_env, ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``; otherwise certifi's bundle.
"""

from __future__ import annotations

import functools
import os
import ssl
from collections.abc import Mapping
from pathlib import Path

from imgflow.engine.settings import FetchConfig


class TlsSettingError(ValueError):
    """A TLS setting that is not usable; the text names the setting."""


def _bundle(path: str, where: str) -> str:
    file = Path(path).expanduser()
    if not file.is_file():
        raise TlsSettingError(f"{where}: {path}: no such file")
    return str(file)


def _locations(settings: FetchConfig, env: Mapping[str, str]) -> tuple[str | None, str | None, str]:
    """(cafile, capath, the setting they come from) the settings name; (None, None, "")
    means the default bundle."""
    if settings.ca_bundle:
        return _bundle(settings.ca_bundle, "fetch.ca_bundle"), None, "fetch.ca_bundle"
    if settings.trust_store == "system" or not settings.trust_env:
        return None, None, ""
    cafile = capath = None
    where = ""
    if env.get("SSL_CERT_FILE"):
        where = "SSL_CERT_FILE"
        cafile = _bundle(env["SSL_CERT_FILE"], where)
    if env.get("SSL_CERT_DIR"):
        capath = env["SSL_CERT_DIR"]
        if not Path(capath).is_dir():
            raise TlsSettingError(f"SSL_CERT_DIR: {capath}: no such folder")
        where = where or "SSL_CERT_DIR"
    return cafile, capath, where


def _load(context: ssl.SSLContext, cafile: str | None, capath: str | None, where: str) -> None:
    try:
        context.load_verify_locations(cafile=cafile, capath=capath)
    except ssl.SSLError as exc:
        raise TlsSettingError(
            f"{where}: {cafile or capath}: not a PEM certificate bundle ({exc.reason})"
        ) from None


@functools.lru_cache(maxsize=8)
def _check_bundle(cafile: str, mtime_ns: int, size: int, where: str) -> None:
    """Load `cafile` once per version of it (a run checks its settings more than once)."""
    _load(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), cafile, None, where)


def check(settings: FetchConfig, env: Mapping[str, str] | None = None) -> None:
    """Raise TlsSettingError (naming the setting) when the trust settings are not usable,
    without loading the default bundle."""
    env = os.environ if env is None else env
    if settings.insecure:
        return
    cafile, _, where = _locations(settings, env)
    if cafile is not None:  # a directory is read lazily by OpenSSL: nothing to load here
        info = os.stat(cafile)
        _check_bundle(cafile, info.st_mtime_ns, info.st_size, where)
    if settings.trust_store == "system":
        import truststore  # noqa: F401  (installed with imgflow; fails loudly if not)


def ssl_context(settings: FetchConfig, env: Mapping[str, str] | None = None) -> ssl.SSLContext:
    """A client context for `settings`; TlsSettingError names the key or variable at fault."""
    env = os.environ if env is None else env
    if settings.insecure:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    cafile, capath, where = _locations(settings, env)
    if settings.trust_store == "system":
        import truststore

        context = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    else:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if cafile is None and capath is None:
            import certifi

            cafile, where = certifi.where(), "certifi"
    if cafile is not None or capath is not None:
        _load(context, cafile, capath, where)
    return context


def certificate_problem(exc: BaseException) -> str | None:
    """The reason a certificate was rejected, when `exc` is a verification error."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return str(exc.verify_message or exc.reason or "verification failed")
    return None
