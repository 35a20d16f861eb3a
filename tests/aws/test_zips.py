"""The Lambda zip: contents, reproducibility, limits."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from imgflow.aws import zips
from imgflow.errors import DeployError


@pytest.fixture(scope="module")
def package() -> zips.LambdaZip:
    return zips.lambda_zip()


def test_same_sources_give_same_bytes(package: zips.LambdaZip) -> None:
    again = zips.lambda_zip()
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
