"""Forward proxies: a real tinyproxy relays the requests, and its own log proves it."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from support.cli_run import run_cli
from support.nginx import Nginx, Server, serving_images
from support.processes import free_port
from support.proxy import Tinyproxy
from support.settings import quick_fetch
from support.tls import TestCA

from imgflow.demo.images import make_gif
from imgflow.engine import loop as engine_loop
from imgflow.engine import messages
from imgflow.engine.failures import FailureKind
from imgflow.engine.fetch import Fetcher
from imgflow.engine.guard import make_address_check
from imgflow.engine.outcome import Fetched, FetchFailure
from imgflow.engine.settings import FetchConfig

GIF = make_gif("ad")
BIG = GIF + bytes(range(256)) * (3 * 1024 * 1024 // 256)  # read past the event loop
SETTINGS = quick_fetch(timeout=5.0, connect_timeout=5.0, total_timeout=10.0, retries=0)
PLAIN, TLS = 0, 1


@dataclasses.dataclass(frozen=True)
class World:
    web: Nginx
    ca: TestCA
    proxy: Tinyproxy
    locked: Tinyproxy  # asks for user / secret

    def http(self, path: str = "/img/a.gif") -> str:
        return self.web.url(PLAIN, path)

    def https(self, path: str = "/img/a.gif") -> str:
        return self.web.url(TLS, path, host="localhost")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("proxy")
    ca = TestCA(folder / "ca")
    serve = serving_images(folder, {"a.gif": GIF, "b.gif": GIF, "c.gif": GIF, "big.gif": BIG})
    servers = [Server(serve), Server(serve, tls=ca.leaf("localhost", "127.0.0.1"))]
    with (
        Nginx(folder / "nginx", servers) as web,
        Tinyproxy(folder / "open") as proxy,
        Tinyproxy(folder / "locked", auth=("user", "secret")) as locked,
    ):
        yield World(web, ca, proxy, locked)


@pytest.fixture(params=["imgflow", "httpx"])
def settings(request: pytest.FixtureRequest, world: World) -> FetchConfig:
    return dataclasses.replace(SETTINGS, transport=request.param, ca_bundle=str(world.ca.bundle))


def fetch(
    settings: FetchConfig, urls: list[str], env: Mapping[str, str] | None = None, **kwargs: object
) -> list[Fetched | FetchFailure]:
    async def go() -> list[Fetched | FetchFailure]:
        async with Fetcher(settings, max_connections=2, env=env or {}, **kwargs) as fetcher:  # type: ignore[arg-type]
            return [await fetcher.fetch(url) for url in urls]

    return engine_loop.run(go())


def relayed(proxy: Tinyproxy, before: int) -> list[str]:
    """The image requests relayed since `before` (a run's robots.txt request left out)."""
    return [line for line in proxy.requests()[before:] if "/robots.txt " not in line]


def dead_proxy() -> str:
    return f"http://127.0.0.1:{free_port()}"


def test_http_through_the_environment_proxy(world: World, settings: FetchConfig) -> None:
    before = len(world.proxy.requests())
    urls = [world.http("/img/a.gif"), world.http("/img/b.gif")]
    results = fetch(settings, urls, env={"HTTP_PROXY": world.proxy.url})
    assert all(isinstance(r, Fetched) and r.data == GIF for r in results)
    assert relayed(world.proxy, before) == [f"GET {url} HTTP/1.1" for url in urls]


def test_https_through_a_connect_tunnel(world: World, settings: FetchConfig) -> None:
    before = len(world.proxy.requests())
    (result,) = fetch(settings, [world.https()], env={"https_proxy": world.proxy.url})
    assert isinstance(result, Fetched) and result.data == GIF
    port = world.web.ports[TLS]
    assert relayed(world.proxy, before) == [f"CONNECT localhost:{port} HTTP/1.1"]


def test_all_proxy_is_the_fallback_and_lower_case_wins(world: World, settings: FetchConfig) -> None:
    before = len(world.proxy.requests())
    env = {"all_proxy": world.proxy.url, "HTTP_PROXY": dead_proxy(), "http_proxy": world.proxy.url}
    results = fetch(settings, [world.http(), world.https()], env=env)
    assert all(isinstance(r, Fetched) for r in results), results
    assert len(relayed(world.proxy, before)) == 2


@pytest.mark.parametrize("no_proxy", ["127.0.0.1", "127.0.0.0/8", "*", "localhost,127.0.0.1"])
def test_no_proxy_goes_direct(world: World, settings: FetchConfig, no_proxy: str) -> None:
    before = len(world.proxy.requests())
    env = {"HTTP_PROXY": world.proxy.url, "HTTPS_PROXY": world.proxy.url, "NO_PROXY": no_proxy}
    results = fetch(settings, [world.http(), world.https()], env=env)
    if no_proxy == "127.0.0.1" or no_proxy == "127.0.0.0/8":
        # https://localhost is not 127.0.0.1 by name: it goes through the proxy.
        assert len(relayed(world.proxy, before)) == 1
    else:
        assert relayed(world.proxy, before) == []
    assert all(isinstance(r, Fetched) for r in results), results


def test_no_proxy_domain_matches_subdomains(world: World, settings: FetchConfig) -> None:
    env = {"HTTPS_PROXY": dead_proxy(), "NO_PROXY": ".localhost"}
    (result,) = fetch(settings, [world.https()], env=env)
    assert isinstance(result, Fetched)


def test_setting_overrides_the_environment(world: World, settings: FetchConfig) -> None:
    before = len(world.proxy.requests())
    chosen = dataclasses.replace(settings, proxy=world.proxy.url)
    (result,) = fetch(chosen, [world.http()], env={"HTTP_PROXY": dead_proxy()})
    assert isinstance(result, Fetched)
    assert len(relayed(world.proxy, before)) == 1


def test_trust_env_off_ignores_the_environment(world: World, settings: FetchConfig) -> None:
    off = dataclasses.replace(settings, trust_env=False)
    (result,) = fetch(off, [world.http()], env={"HTTP_PROXY": dead_proxy()})
    assert isinstance(result, Fetched)


def test_dead_proxy_fails_clearly(world: World, settings: FetchConfig) -> None:
    dead = dead_proxy()
    env = {"HTTP_PROXY": dead, "HTTPS_PROXY": dead}
    results = fetch(settings, [world.http(), world.https()], env=env)
    for url, result in zip([world.http(), world.https()], results, strict=True):
        assert isinstance(result, FetchFailure)
        assert result.message.startswith(f"{messages.PROXY_UNREACHABLE}: {url} ({dead}: ")
        assert result.kind is FailureKind.PROXY_UNREACHABLE


def test_proxy_authentication(world: World, settings: FetchConfig) -> None:
    before = len(world.locked.requests())
    with_credentials = dataclasses.replace(settings, proxy=world.locked.url_with("user", "secret"))
    results = fetch(with_credentials, [world.http(), world.https()])
    assert all(isinstance(r, Fetched) for r in results), results
    assert len(relayed(world.locked, before)) == 2


def test_proxy_refusal_names_the_proxy(world: World, settings: FetchConfig) -> None:
    anonymous = dataclasses.replace(settings, proxy=world.locked.url)
    results = fetch(anonymous, [world.http(), world.https()])
    for url, result in zip([world.http(), world.https()], results, strict=True):
        assert isinstance(result, FetchFailure) and result.attempts == 1
        assert result.message == (
            f"{messages.PROXY_REFUSED}: {url} "
            f"({world.locked.url} answered 407 Proxy Authentication Required)"
        )
        assert result.kind is FailureKind.PROXY_REFUSED


def test_tunnel_refused_for_wrong_credentials(world: World, settings: FetchConfig) -> None:
    wrong = dataclasses.replace(settings, proxy=world.locked.url_with("user", "wrong"))
    (result,) = fetch(wrong, [world.https()])
    assert isinstance(result, FetchFailure) and result.attempts == 1
    # tinyproxy answers a wrong password with 401, not 407.
    assert result.message.startswith(
        f"{messages.PROXY_REFUSED}: {world.https()} ({world.locked.url} answered 401"
    )
    assert "wrong" not in result.message and result.kind is FailureKind.PROXY_REFUSED


def test_guard_checks_target_and_proxy(world: World, settings: FetchConfig) -> None:
    proxy_port = str(world.proxy.port)

    async def refuse_proxy(url: str) -> None:
        if proxy_port in url:
            raise PermissionError("a private address")

    chosen = dataclasses.replace(settings, proxy=world.proxy.url)
    before = len(world.proxy.requests())
    (result,) = fetch(chosen, [world.http()], guard=refuse_proxy)
    assert isinstance(result, FetchFailure)
    assert result.message == (
        f"{messages.REFUSED_TARGET}: {world.http()} (proxy {world.proxy.url}: a private address)"
    )

    async def refuse_target(url: str) -> None:
        if "/img/" in url:
            raise PermissionError("not this one")

    (result,) = fetch(chosen, [world.http()], guard=refuse_target)
    assert isinstance(result, FetchFailure) and "not this one" in result.message
    assert relayed(world.proxy, before) == []


def test_address_check_applies_to_the_proxy(world: World) -> None:
    chosen = dataclasses.replace(SETTINGS, proxy=world.proxy.url)
    (result,) = fetch(chosen, [world.http()], address_check=make_address_check(runtime_api=""))
    assert isinstance(result, FetchFailure)
    assert result.message.startswith(messages.REFUSED_TARGET) and "loopback" in result.message


# -- the command line, as a real process ---------------------------------------------------


def imgflow(
    args: list[str], cwd: Path, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, cwd=cwd, env=env, timeout=60)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "paths.txt").write_text("a.gif\nb.gif\n")
    return tmp_path


def run_args(world: World) -> list[str]:
    base = world.http("/img")
    return ["run", "--base-url", base, "--paths-file", "paths.txt", "--output", "json"]


def test_cli_proxy_flag(world: World, workdir: Path) -> None:
    before = len(world.proxy.requests())
    done = imgflow([*run_args(world), "--proxy", world.proxy.url], workdir)
    assert done.returncode == 0, done.stderr
    assert len(relayed(world.proxy, before)) == 2


def test_cli_proxy_key_and_environment(world: World, workdir: Path) -> None:
    before = len(world.proxy.requests())
    (workdir / "imgflow.yaml").write_text(f"fetch:\n  proxy: {world.proxy.url}\n")
    done = imgflow(run_args(world), workdir, env={"HTTP_PROXY": dead_proxy()})
    assert done.returncode == 0, done.stderr
    assert len(relayed(world.proxy, before)) == 2


def test_cli_no_proxy_flag(world: World, workdir: Path) -> None:
    done = imgflow([*run_args(world), "--no-proxy"], workdir, env={"HTTP_PROXY": dead_proxy()})
    assert done.returncode == 0, done.stderr


def test_cli_dead_proxy_fails_each_image(world: World, workdir: Path) -> None:
    dead = dead_proxy()
    (workdir / "imgflow.yaml").write_text("fetch:\n  retries: 0\n")
    done = imgflow(run_args(world), workdir, env={"http_proxy": dead})
    assert done.returncode == 1
    assert done.stdout.count(f"Proxy unreachable: {world.http('/img/')}") == 2, done.stdout


@pytest.mark.parametrize(
    ("args", "config", "env", "named"),
    [
        (["--proxy", "notaurl"], None, None, "--proxy: 'notaurl' is not a proxy URL"),
        (["--proxy", "socks5://127.0.0.1:1080"], None, None, "--proxy: unsupported proxy scheme"),
        ([], "fetch:\n  proxy: socks5://127.0.0.1:1080\n", None, "fetch.proxy: unsupported"),
        ([], None, {"HTTPS_PROXY": "ftp://127.0.0.1:21"}, "HTTPS_PROXY: unsupported"),
        (["--proxy", "http://127.0.0.1:1", "--no-proxy"], None, None, "do not go together"),
    ],
)
def test_cli_bad_proxy_settings(
    world: World,
    workdir: Path,
    args: list[str],
    config: str | None,
    env: dict[str, str] | None,
    named: str,
) -> None:
    if config is not None:
        (workdir / "imgflow.yaml").write_text(config)
    done = imgflow([*run_args(world), *args], workdir, env=env)
    assert done.returncode == 2
    assert named in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (workdir / "imgflow-data").exists()


def test_cli_large_images_through_the_proxy_and_over_tls_arrive_whole(
    world: World, workdir: Path
) -> None:
    """A large body through a real proxy is read past the event loop (plain TCP to the
    proxy); over TLS it stays on the loop. Either way the stored bytes are the body's."""
    (workdir / "paths.txt").write_text("big.gif\n")
    before = len(world.proxy.requests())
    runs = [
        [*run_args(world), "--proxy", world.proxy.url],
        ["run", "--base-url", world.https("/img"), "--paths-file", "paths.txt", "--output",
         "json", "--ca-bundle", str(world.ca.bundle)],
    ]  # fmt: skip
    for args in runs:
        done = imgflow(args, workdir)
        assert done.returncode == 0, done.stderr
        (record,) = json.loads(done.stdout)["results"]
        assert record["sha256"] == hashlib.sha256(BIG).hexdigest()
        assert record["bytes"] == len(BIG)
    assert relayed(world.proxy, before) == [f"GET {world.http('/img/big.gif')} HTTP/1.1"]
