"""TLS trust against a real nginx with certificates from a CA made by the test."""

from __future__ import annotations

import dataclasses
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from support.cli_run import run_cli
from support.nginx import Nginx, Server, serving_images
from support.settings import quick_fetch
from support.tls import TestCA

from imgflow.demo.images import make_gif
from imgflow.engine import loop as engine_loop
from imgflow.engine import messages
from imgflow.engine.failures import FailureKind
from imgflow.engine.fetch import Fetcher
from imgflow.engine.outcome import Fetched, FetchFailure
from imgflow.engine.settings import FetchConfig

GIF = make_gif("ad")
SETTINGS = quick_fetch(timeout=5.0, connect_timeout=5.0, total_timeout=10.0, retries=3)
GOOD, EXPIRED, WRONG_HOST, PLAIN = range(4)


@dataclasses.dataclass(frozen=True)
class Site:
    web: Nginx
    ca: TestCA

    def handshake_failures(self, at_least: int = 0) -> int:
        """Failed handshakes in nginx's error log (waiting up to 3 s for `at_least`)."""
        deadline = time.monotonic() + 3
        while True:
            lines = self.web.log.read_text().splitlines()
            count = sum("SSL_do_handshake() failed" in line or "in SSL handshak" in line
                        for line in lines)  # fmt: skip
            if count >= at_least or time.monotonic() > deadline:
                return count
            time.sleep(0.05)

    def settled_failures(self) -> int:
        """Failed handshakes once the count has held for 0.3 s: nginx logs a handshake
        the client gave up on when the client's alert reaches it, which can be after the
        test that caused it has ended."""
        count = self.handshake_failures()
        while True:
            time.sleep(0.3)
            again = self.handshake_failures()
            if again == count:
                return count
            count = again


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("tls")
    ca = TestCA(folder / "ca")
    serve = serving_images(folder, {"a.gif": GIF})
    servers = [
        Server(serve, tls=ca.leaf("localhost", "127.0.0.1")),
        Server(serve, tls=ca.leaf("localhost", "127.0.0.1", expired=True)),
        Server(serve, tls=ca.leaf("other.example")),
        Server(
            "location /to-good/ { return 301 https://localhost:@PORT0@/img/a.gif; }\n"
            "    location /to-expired/ { return 302 https://localhost:@PORT1@/img/a.gif; }"
        ),
    ]
    with Nginx(folder / "nginx", servers) as web:
        yield Site(web, ca)


@pytest.fixture(params=["imgflow", "httpx"])
def settings(request: pytest.FixtureRequest) -> FetchConfig:
    return dataclasses.replace(SETTINGS, transport=request.param)


def fetch(
    settings: FetchConfig, url: str, env: Mapping[str, str] | None = None
) -> Fetched | FetchFailure:
    async def go() -> Fetched | FetchFailure:
        async with Fetcher(settings, max_connections=2, env=env or {}) as fetcher:
            return await fetcher.fetch(url)

    return engine_loop.run(go())


def url(site: Site, server: int, path: str = "/img/a.gif") -> str:
    return site.web.url(server, path, host="localhost")


def test_trusted_through_ssl_cert_file(site: Site, settings: FetchConfig) -> None:
    result = fetch(settings, url(site, GOOD), env={"SSL_CERT_FILE": str(site.ca.bundle)})
    assert isinstance(result, Fetched) and result.data == GIF


def test_trusted_through_ssl_cert_dir(site: Site, settings: FetchConfig, tmp_path: Path) -> None:
    subprocess.run(["openssl", "rehash", str(site.ca.folder)], check=True, capture_output=True)
    result = fetch(settings, url(site, GOOD), env={"SSL_CERT_DIR": str(site.ca.folder)})
    assert isinstance(result, Fetched) and result.data == GIF


def test_trusted_through_ca_bundle(site: Site, settings: FetchConfig) -> None:
    trusted = dataclasses.replace(settings, ca_bundle=str(site.ca.bundle))
    result = fetch(trusted, url(site, GOOD))
    assert isinstance(result, Fetched) and result.data == GIF


def test_trust_env_off_ignores_ssl_cert_file(site: Site, settings: FetchConfig) -> None:
    off = dataclasses.replace(settings, trust_env=False)
    result = fetch(off, url(site, GOOD), env={"SSL_CERT_FILE": str(site.ca.bundle)})
    assert isinstance(result, FetchFailure)
    assert result.message.startswith(messages.CERTIFICATE_REJECTED)
    assert result.kind is FailureKind.CERTIFICATE_REJECTED


def test_unknown_ca_is_refused_after_one_attempt(site: Site, settings: FetchConfig) -> None:
    before = site.settled_failures()
    target = url(site, GOOD)
    result = fetch(settings, target)
    assert isinstance(result, FetchFailure) and result.attempts == 1
    assert result.message == (
        f"Certificate rejected for localhost: unable to get local issuer certificate ({target})"
    )
    assert site.handshake_failures(before + 1) - before == 1  # nginx saw one failed handshake
    time.sleep(0.3)
    assert site.handshake_failures() - before == 1


def test_expired_certificate(site: Site, settings: FetchConfig) -> None:
    trusted = dataclasses.replace(settings, ca_bundle=str(site.ca.bundle))
    target = url(site, EXPIRED)
    result = fetch(trusted, target)
    assert isinstance(result, FetchFailure) and result.attempts == 1
    expected = f"Certificate rejected for localhost: certificate has expired ({target})"
    assert result.message == expected


def test_wrong_host_certificate(site: Site, settings: FetchConfig) -> None:
    trusted = dataclasses.replace(settings, ca_bundle=str(site.ca.bundle))
    result = fetch(trusted, url(site, WRONG_HOST))
    assert isinstance(result, FetchFailure) and result.attempts == 1
    assert result.message.startswith("Certificate rejected for localhost: Hostname mismatch")


def test_http_to_https_redirect(site: Site, settings: FetchConfig) -> None:
    trusted = dataclasses.replace(settings, ca_bundle=str(site.ca.bundle))
    result = fetch(trusted, url(site, PLAIN, "/to-good/a.gif"))
    assert isinstance(result, Fetched) and result.data == GIF


def test_certificate_failure_after_a_redirect_names_the_host_that_failed(
    site: Site, settings: FetchConfig
) -> None:
    trusted = dataclasses.replace(settings, ca_bundle=str(site.ca.bundle))
    start = site.web.url(PLAIN, "/to-expired/a.gif")  # http://127.0.0.1 -> https://localhost
    result = fetch(trusted, start)
    assert isinstance(result, FetchFailure) and result.attempts == 1
    expected = f"Certificate rejected for localhost: certificate has expired ({start})"
    assert result.message == expected


def test_system_trust_store(site: Site, settings: FetchConfig) -> None:
    system = dataclasses.replace(settings, trust_store="system")
    refused = fetch(system, url(site, GOOD))
    assert isinstance(refused, FetchFailure)
    assert refused.message.startswith(messages.CERTIFICATE_REJECTED)
    with_bundle = dataclasses.replace(system, ca_bundle=str(site.ca.bundle))
    assert isinstance(fetch(with_bundle, url(site, GOOD)), Fetched)


def test_insecure_accepts_any_certificate(site: Site, settings: FetchConfig) -> None:
    insecure = dataclasses.replace(settings, insecure=True)
    assert isinstance(fetch(insecure, url(site, EXPIRED)), Fetched)


# -- the command line, as a real process ---------------------------------------------------


def imgflow(
    args: list[str], cwd: Path, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, cwd=cwd, env=env, timeout=60)


def run_args(site: Site, server: int = GOOD) -> list[str]:
    base = site.web.url(server, "/img", host="localhost")
    return ["run", "--base-url", base, "--paths-file", "paths.txt", "--output", "json"]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "paths.txt").write_text("a.gif\n")
    return tmp_path


def stored(workdir: Path) -> list[Path]:
    return [p for p in (workdir / "imgflow-data" / "images").rglob("*") if p.is_file()]


def test_cli_ca_bundle_flag(site: Site, workdir: Path) -> None:
    done = imgflow([*run_args(site), "--ca-bundle", str(site.ca.bundle)], workdir)
    assert done.returncode == 0, done.stderr
    assert [p.read_bytes() for p in stored(workdir)] == [GIF]


def test_cli_ca_bundle_key(site: Site, workdir: Path) -> None:
    (workdir / "imgflow.yaml").write_text(f"fetch:\n  ca_bundle: {site.ca.bundle}\n")
    done = imgflow(run_args(site), workdir)
    assert done.returncode == 0, done.stderr


def test_cli_ssl_cert_file(site: Site, workdir: Path) -> None:
    done = imgflow(run_args(site), workdir, env={"SSL_CERT_FILE": str(site.ca.bundle)})
    assert done.returncode == 0, done.stderr


def test_cli_without_trust_fails_the_image(site: Site, workdir: Path) -> None:
    done = imgflow(run_args(site), workdir)
    assert done.returncode == 1
    assert "Certificate rejected for localhost: unable to get local issuer certificate" in (
        done.stdout
    )


def test_cli_insecure_warns(site: Site, workdir: Path) -> None:
    done = imgflow([*run_args(site, EXPIRED), "--insecure"], workdir)
    assert done.returncode == 0, done.stderr
    assert "warning:" in done.stderr and "not verified" in done.stderr


@pytest.mark.parametrize(
    ("args", "config", "named"),
    [
        (["--ca-bundle", "/missing/ca.pem"], None, "--ca-bundle: /missing/ca.pem: no such file"),
        ([], "fetch:\n  ca_bundle: /missing/ca.pem\n", "fetch.ca_bundle: /missing/ca.pem"),
        ([], "fetch:\n  ca_bundle: paths.txt\n", "fetch.ca_bundle: paths.txt: not a PEM"),
    ],
)
def test_cli_bad_trust_settings(
    site: Site, workdir: Path, args: list[str], config: str | None, named: str
) -> None:
    if config is not None:
        (workdir / "imgflow.yaml").write_text(config)
    done = imgflow([*run_args(site), *args], workdir)
    assert done.returncode == 2
    assert named in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (workdir / "imgflow-data").exists()
