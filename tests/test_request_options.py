"""Request options: --header / fetch.headers, --user-agent, their IMGFLOW_* variables and
the network keys' checks; headers as a real server receives them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from support.cli_run import run_cli
from support.faultserver import FaultServer, Ok

from imgflow import config
from imgflow.demo.images import make_gif
from imgflow.engine import loop as engine_loop
from imgflow.engine.fetch import Fetcher
from imgflow.engine.outcome import Fetched
from imgflow.engine.proxy import ProxySettingError, parse_proxy, router
from imgflow.engine.settings import FetchConfig
from imgflow.errors import ConfigError

GIF = make_gif("ad")


@pytest.mark.parametrize("transport", ["imgflow", "httpx"])
def test_extra_headers_reach_the_server(fault_server: FaultServer, transport: str) -> None:
    fault_server.set("/a.gif", Ok(GIF))
    settings = FetchConfig(
        transport=transport,  # type: ignore[arg-type]
        user_agent="probe/2",
        headers=("X-Token: abc", "Accept: image/webp", "Accept-Language: en, fr"),
    )

    async def go() -> Fetched | object:
        async with Fetcher(settings, max_connections=1, env={}) as fetcher:
            return await fetcher.fetch(fault_server.url("/a.gif"))

    assert isinstance(engine_loop.run(go()), Fetched)
    headers = fault_server.requests[0].headers
    assert headers["x-token"] == "abc" and headers["user-agent"] == "probe/2"
    assert headers["accept"] == "image/webp"  # replaces imgflow's own
    assert headers["accept-language"] == "en, fr"


def test_headers_from_file_mapping_list_and_variable() -> None:
    cfg = config.from_mapping({"fetch": {"headers": {"X-A": "1", "X-B": "2, 3"}}}, env={})
    assert cfg.fetch.headers == ("X-A: 1", "X-B: 2, 3")
    cfg = config.from_mapping({"fetch": {"headers": ["X-A: 1"]}}, env={})
    assert cfg.fetch.headers == ("X-A: 1",)
    env = {"IMGFLOW_FETCH_HEADERS": '["X-A: 1", "X-B: 2, 3"]'}
    assert config.from_mapping({}, env=env).fetch.headers == ("X-A: 1", "X-B: 2, 3")
    env = {"IMGFLOW_FETCH_HEADERS": "X-A: 1\nX-B: 2, 3\n"}
    assert config.from_mapping({}, env=env).fetch.headers == ("X-A: 1", "X-B: 2, 3")
    env = {"IMGFLOW_FETCH_USER_AGENT": "probe/3", "IMGFLOW_FETCH_PROXY": "http://p:3128"}
    fetch = config.from_mapping({}, env=env).fetch
    assert (fetch.user_agent, fetch.proxy) == ("probe/3", "http://p:3128")


@pytest.mark.parametrize(
    ("fetch", "named"),
    [
        ({"headers": ["NoColon"]}, "fetch.headers[0]: 'NoColon': expected 'Name: value'"),
        ({"headers": ["X-A: 1", "Bad Name: x"]}, "fetch.headers[1]:"),
        ({"headers": ["Host: elsewhere"]}, "imgflow sets Host itself"),
        ({"user_agent": "a\r\nX-Evil: 1"}, "fetch.user_agent: cannot contain CR, LF"),
        ({"proxy": "socks5://h:1080"}, "fetch.proxy: unsupported proxy scheme 'socks5'"),
        ({"proxy": "http://h:notaport"}, "fetch.proxy: bad port"),
        ({"ca_bundle": "/no/such/ca.pem"}, "fetch.ca_bundle: /no/such/ca.pem: no such file"),
        ({"trust_store": "windows"}, "fetch.trust_store: expected 'certifi' or 'system'"),
    ],
)
def test_bad_network_keys_name_the_key(fetch: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config.from_mapping({"fetch": fetch}, env={})
    assert named in str(caught.value)


def test_proxy_urls() -> None:
    proxy = parse_proxy("http://us%40er:p%3Ass@proxy.example:3128/", "x")
    assert (proxy.host, proxy.port, proxy.shown) == (
        "proxy.example",
        3128,
        "http://proxy.example:3128",
    )
    assert proxy.authorization == b"Basic dXNAZXI6cDpzcw=="  # us@er:p:ss
    assert parse_proxy("proxy.example:8080", "x").port == 8080
    assert parse_proxy("http://[::1]:3128", "x").shown == "http://[::1]:3128"
    for bad in ("notaurl", "", "https://proxy:443", "http://:3128", "http://p:1/path"):
        with pytest.raises(ProxySettingError):
            parse_proxy(bad, "x")
    with pytest.raises(ProxySettingError) as caught:
        parse_proxy("socks5://user:hunter2@h:1", "ALL_PROXY")
    assert "hunter2" not in str(caught.value) and str(caught.value).startswith("ALL_PROXY:")


def test_no_proxy_rules() -> None:
    rules = "example.com, .internal, *.corp, 10.0.0.0/8, 192.168.1.5, [::1], cache:8080"
    routes = router(FetchConfig(proxy="http://p:3128", no_proxy=rules), {})
    direct = [
        "http://example.com/", "http://img.example.com/", "https://a.internal/", "http://x.corp/",
        "http://10.1.2.3/", "http://192.168.1.5:81/", "http://[::1]:8000/", "http://cache:8080/",
    ]  # fmt: skip
    proxied = ["http://notexample.com/", "http://192.168.1.6/", "http://cache:80/"]
    assert [routes.proxy_for_url(u) for u in direct] == [None] * len(direct)
    assert all(routes.proxy_for_url(u) is not None for u in proxied)
    assert router(FetchConfig(), {"no_proxy": "*", "HTTP_PROXY": "http://p:1"}).active is False
    env = {"HTTP_PROXY": "http://p:1", "REQUEST_METHOD": "GET"}  # CGI: HTTP_PROXY is a header
    assert router(FetchConfig(), env).http is None


def imgflow(
    args: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, cwd=cwd, env=env, timeout=60)


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        (["--header", "NoColon"], None, "--header: 'NoColon': expected 'Name: value'"),
        (["--header", "X-A: 1\r\nX-Evil: 2"], None, "--header: 'X-A: 1\\r\\nX-Evil: 2': a header"),
        (["--header", "X-A: 1\nX-Evil: 2"], None, "cannot contain CR, LF or NUL"),
        (["--user-agent", "a\nb"], None, "--user-agent: cannot contain CR, LF or NUL"),
        ([], {"IMGFLOW_FETCH_HEADERS": "NoColon"}, "fetch.headers[0]: 'NoColon'"),
    ],
)
def test_cli_bad_request_options(
    fault_server: FaultServer, tmp_path: Path, args: list[str], env: dict[str, str] | None,
    named: str,
) -> None:  # fmt: skip
    (tmp_path / "paths.txt").write_text("a.gif\n")
    run = ["run", "--base-url", fault_server.url("/"), "--paths-file", "paths.txt"]
    done = imgflow([*run, *args], tmp_path, env)
    assert done.returncode == 2
    assert named in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "imgflow-data").exists() and not fault_server.requests


def test_cli_header_and_user_agent_reach_the_server(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    fault_server.set("/a.gif", Ok(GIF))
    (tmp_path / "paths.txt").write_text("a.gif\n")
    (tmp_path / "imgflow.yaml").write_text("fetch:\n  headers: ['X-A: from-file', 'X-B: b']\n")
    run = ["run", "--base-url", fault_server.url("/"), "--paths-file", "paths.txt"]
    done = imgflow([*run, "-H", "X-A: from-flag", "-H", "X-C: c", "-A", "probe/9"], tmp_path)
    assert done.returncode == 0, done.stderr
    headers = fault_server.requests[0].headers
    assert (headers["x-a"], headers["x-b"], headers["x-c"]) == ("from-flag", "b", "c")
    assert headers["user-agent"] == "probe/9"


def test_aws_backend_refuses_local_network_flags(tmp_path: Path) -> None:
    (tmp_path / "paths.txt").write_text("a.gif\n")
    run = ["run", "--base-url", "http://example.com/", "--paths-file", "paths.txt"]
    done = imgflow([*run, "--backend", "aws", "--proxy", "http://p:3128"], tmp_path)
    assert done.returncode == 2 and "go with the local backend" in done.stderr
