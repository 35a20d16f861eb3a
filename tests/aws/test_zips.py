"""The Lambda zip: contents, reproducibility, limits, wheels for the Lambda runtime, and the
handlers imported from the unzipped zip alone under python3.12."""

from __future__ import annotations

import importlib.metadata
import io
import shutil
import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace

import lambda_invoke
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename
from runtime_python import isolation_missing, runtime_python

from imgflow.aws import zip_packages, zips
from imgflow.errors import DeployError

needs_isolation = pytest.mark.skipif(
    isolation_missing() is not None, reason=str(isolation_missing())
)


@pytest.fixture(scope="module")
def package() -> zips.LambdaZip:
    return zips.lambda_zip()


def test_same_sources_give_same_bytes(
    package: zips.LambdaZip, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(zips, "_built", {})  # build again, not from the process's memo
    again = zips.lambda_zip()
    assert again is not package
    assert again.data == package.data
    assert again.code_sha256 == package.code_sha256


def test_contents_are_handlers_engine_and_httpx(package: zips.LambdaZip) -> None:
    tops = {name.split("/")[0] for name in package.entries}
    assert {"lambdas", "imgflow", "httpx", "httpcore", "h11", "anyio", "idna", "certifi"} <= tops
    assert "imgflow/aws/client.py" in package.entries
    assert "imgflow/errors.py" in package.entries
    assert any(name.startswith("imgflow/engine/") for name in package.entries)
    for forbidden in ("typer", "rich", "yaml", "boto3", "botocore", "click"):
        assert forbidden not in tops
    assert not any(
        name.startswith(("imgflow/cli", "imgflow/config", "imgflow/local"))
        for name in package.entries
    )
    assert not any(name.startswith("imgflow/aws/deploy") for name in package.entries)


def test_entries_are_sorted_dated_and_cache_free(package: zips.LambdaZip) -> None:
    with zipfile.ZipFile(io.BytesIO(package.data)) as archive:
        infos = archive.infolist()
    names = [info.filename for info in infos]
    assert names == sorted(names)
    assert all(info.date_time == (1980, 1, 1, 0, 0, 0) for info in infos)
    assert all(info.external_attr >> 16 == 0o100644 for info in infos)
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    assert not any(".dist-info" in n for n in names)


def test_any_lambdas_content_is_shipped_but_no_bytecode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped = {
        "lambdas/__init__.py": b"",
        "lambdas/plan.py": b"def handler(event, context):\n    return event\n",
        "lambdas/notes/limits.json": b'{"any": "file"}\n',
    }
    caches = ["lambdas/__pycache__/plan.cpython-311.pyc", "lambdas/plan.pyc", "lambdas/x.pyo"]
    for name, data in {**shipped, **dict.fromkeys(caches, b"\0")}.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    monkeypatch.setattr(zips, "lambdas", SimpleNamespace(__file__=str(tmp_path / "lambdas/x.py")))
    package = zips.build_zip(zips.project_files())
    with zipfile.ZipFile(io.BytesIO(package.data)) as archive:
        ours = {n: archive.read(n) for n in archive.namelist() if n.startswith("lambdas/")}
    assert ours == shipped


def test_changed_source_changes_code_sha(tmp_path: Path) -> None:
    source = tmp_path / "a.py"
    source.write_text("x = 1\n")
    before = zips.build_zip({"lambdas/a.py": source}).code_sha256
    source.write_text("x = 2\n")
    assert zips.build_zip({"lambdas/a.py": source}).code_sha256 != before


def test_oversized_zip_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    source.write_bytes(bytes(range(256)) * 64)
    monkeypatch.setattr(zips, "MAX_UNZIPPED_BYTES", 1000)
    with pytest.raises(DeployError, match="250 MB"):
        zips.build_zip({"lambdas/big.bin": source})
    monkeypatch.setattr(zips, "MAX_ZIPPED_BYTES", 10)
    with pytest.raises(DeployError, match="50 MB"):
        zips.build_zip({"lambdas/a.py": source})


def test_every_package_is_pinned_and_the_list_is_the_only_source() -> None:
    names = [zips._pin(p)[0] for p in zip_packages.PACKAGES]
    assert len(names) == len(set(names))
    with pytest.raises(DeployError, match="pinned"):
        zips._pin("httpx>=0.27")


def test_installed_dependencies_of_httpx_are_all_listed() -> None:
    """A new dependency of an upgraded httpx must be added to zip_packages (one line)."""
    listed = {zips._pin(p)[0] for p in zip_packages.PACKAGES}
    todo, seen = ["httpx"], set()
    while todo:
        name = str(canonicalize_name(todo.pop()))
        if name in seen:
            continue
        seen.add(name)
        for requirement in importlib.metadata.requires(name) or ():
            req = Requirement(requirement)
            env = {"python_version": "3.12", "python_full_version": "3.12.0", "extra": ""}
            if req.marker is None or req.marker.evaluate(env):
                todo.append(req.name)
    assert seen <= listed, sorted(seen - listed)


@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_wheels_are_built_for_the_lambda_runtime(arch: str) -> None:
    target = zips.Target.of("python3.12", arch)
    machine = {"x86_64": "x86_64", "arm64": "aarch64"}[arch]
    wheels = zips.fetch_wheels(target)
    assert len(wheels) == len(zip_packages.PACKAGES)
    compiled = 0
    for wheel in wheels:
        _, _, _, tags = parse_wheel_filename(wheel.name)
        assert tags & target.tags(), wheel.name
        for tag in tags:
            if tag.platform != "any":
                compiled += 1
                assert tag.interpreter == "cp312" and tag.abi in ("cp312", "abi3"), wheel.name
                assert tag.platform.startswith("manylinux") and tag.platform.endswith(machine)
    assert compiled  # httptools, brotli, backports.zstd are compiled
    assert zips.fetch_wheels(target) == wheels  # from the cache, same files


def test_compiled_modules_in_the_zip_are_for_python_3_12(package: zips.LambdaZip) -> None:
    shared = [n for n in package.entries if n.endswith(".so")]
    assert shared
    assert all(".cpython-312-x86_64-linux-gnu.so" in n or n.endswith(".abi3.so") for n in shared)
    assert not any("cpython-311" in n for n in package.entries)


def test_a_bad_runtime_or_architecture_is_one_clear_error() -> None:
    with pytest.raises(DeployError, match=r"lambda\.runtime"):
        zips.Target.of("nodejs20.x")
    with pytest.raises(DeployError, match="x86_64 or arm64"):
        zips.Target.of("python3.12", "sparc")


def _unzip(package: zips.LambdaZip, folder: Path) -> Path:
    with zipfile.ZipFile(io.BytesIO(package.data)) as archive:
        archive.extractall(folder)
    return folder


PROBE = """
import os, sys, tempfile

def handler(event, context):
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        open(os.path.join(here, "written"), "w").close()
        code_writable = True
    except OSError:
        code_writable = False
    with tempfile.NamedTemporaryFile(dir=os.environ["TMPDIR"]) as f:
        f.write(b"x")
    import boto3, httpx, brotli, backports.zstd, httptools, truststore
    return {"codeWritable": code_writable, "version": list(sys.version_info[:2]),
            "path": sys.path[:2], "yaml": _has("yaml"), "imgflowCli": _has("typer")}

def _has(name):
    try:
        __import__(name)
    except ImportError:
        return False
    return True
"""


@needs_isolation
def test_handlers_import_from_the_zip_alone_under_lambdas_conditions(
    package: zips.LambdaZip, tmp_path: Path
) -> None:
    root = _unzip(package, tmp_path / "task")
    (root / "lambdas" / "probe.py").write_text(PROBE)
    python = str(runtime_python())
    answer = lambda_invoke._run_isolated(python, root, "lambdas.probe.handler", {}, b"{}")
    assert answer == {
        "ok": {
            "codeWritable": False,
            "version": [3, 12],
            "path": [str(root), str(lambda_invoke.runtime_libraries())],
            "yaml": False,
            "imgflowCli": False,
        }
    }
    for name in ("plan", "download", "consolidate"):
        # Imports succeed; the empty event is refused by the handler itself.
        answer = lambda_invoke._run_isolated(python, root, f"lambdas.{name}.handler", {}, b"{}")
        assert answer["error"]["errorType"] in ("KeyError", "ConfigError"), answer


@needs_isolation
def test_a_module_missing_from_the_zip_fails(package: zips.LambdaZip, tmp_path: Path) -> None:
    root = _unzip(package, tmp_path / "task")
    shutil.rmtree(root / "httpx")
    python = str(runtime_python())
    answer = lambda_invoke._run_isolated(python, root, "lambdas.download.handler", {}, b"{}")
    assert answer["error"]["errorType"] == "ModuleNotFoundError"
    assert "httpx" in answer["error"]["errorMessage"]


@needs_isolation
def test_a_zip_for_the_tests_interpreter_loads_its_compiled_packages(tmp_path: Path) -> None:
    """lambda.runtime set to the Python that runs the tests: the zip carries that Python's
    compiled wheels, and the handlers load them from the unzipped zip alone."""
    version = sys.version_info[:2]
    package = zips.lambda_zip("python{}.{}".format(*version))
    tag = "cpython-{}{}-x86_64-linux-gnu.so".format(*version)
    shared = [n for n in package.entries if n.endswith(".so")]
    assert shared and all(tag in n or n.endswith(".abi3.so") for n in shared), shared
    root = _unzip(package, tmp_path / "task")
    (root / "lambdas" / "probe.py").write_text(PROBE + HANDLERS_PROBE)
    answer = lambda_invoke._run_isolated(sys.executable, root, "lambdas.probe.loads", {}, b"{}")
    assert answer == {"ok": {"version": list(version), "handlers": 3}}, answer


# One invocation (each costs an interpreter start): the compiled packages and the handlers.
HANDLERS_PROBE = """
def loads(event, context):
    import sys, httptools.parser.parser, brotli, backports.zstd
    import lambdas.plan, lambdas.download, lambdas.consolidate
    handlers = [lambdas.plan.handler, lambdas.download.handler, lambdas.consolidate.handler]
    return {"version": list(sys.version_info[:2]), "handlers": len(handlers)}
"""
