"""The Lambda zip: imgflow's handlers + engine + httpx, built byte-for-byte reproducibly.

One zip serves all three functions (``lambdas.plan.handler``, ``lambdas.download.handler``,
``lambdas.consolidate.handler``). It holds the ``lambdas`` package, the parts of imgflow a
handler may import (``imgflow/__init__.py``, ``errors.py``, ``engine/``, ``aws/__init__.py``,
``aws/client.py``, ``aws/runtime/``) and httpx with the pure-Python packages it needs,
copied from the installed site-packages. Never typer, rich, yaml, boto3 or botocore: the
Lambda runtime provides boto3.

Entries are sorted, dated 1980-01-01 with fixed permissions, and caches are left out, so the
same sources give the same bytes and the same CodeSha256 (compared with the deployed
function's to skip an upload).
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import io
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import imgflow
import lambdas
from imgflow.errors import DeployError

# Lambda's limits for a direct upload and for the unzipped function.
MAX_ZIPPED_BYTES = 50 * 1024 * 1024
MAX_UNZIPPED_BYTES = 250 * 1024 * 1024

ROOT_DISTRIBUTION = "httpx"
NEVER_SHIPPED = frozenset({"typer", "rich", "pyyaml", "boto3", "botocore", "s3transfer", "click"})
IMGFLOW_FILES = ("imgflow/__init__.py", "imgflow/errors.py", "imgflow/aws/__init__.py")
IMGFLOW_GLOBS = ("imgflow/engine/**/*", "imgflow/aws/client.py", "imgflow/aws/runtime/**/*")
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)
_FILE_MODE = 0o100644 << 16
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class LambdaZip:
    """A built deployment package."""

    data: bytes
    unzipped_bytes: int
    entries: tuple[str, ...]

    @property
    def code_sha256(self) -> str:
        """Lambda's CodeSha256 of this zip (base64 of the SHA-256 digest)."""
        return base64.b64encode(hashlib.sha256(self.data).digest()).decode("ascii")


def _shippable(relative: str) -> bool:
    parts = relative.split("/")
    return "__pycache__" not in parts and not relative.endswith((".pyc", ".pyo"))


def _tree(base: Path, patterns: Iterable[str]) -> Iterator[tuple[str, Path]]:
    for pattern in patterns:
        for path in base.glob(pattern):
            relative = path.relative_to(base).as_posix()
            if path.is_file() and _shippable(relative):
                yield relative, path


def project_files() -> dict[str, Path]:
    """Archive name -> source file for imgflow's own code in the zip."""
    imgflow_base = Path(imgflow.__file__).resolve().parent.parent
    lambdas_base = Path(lambdas.__file__).resolve().parent.parent
    files = dict(_tree(imgflow_base, (*IMGFLOW_FILES, *IMGFLOW_GLOBS)))
    files.update(_tree(lambdas_base, ("lambdas/**/*",)))
    return files


def _requirement_name(requirement: str) -> str | None:
    if "extra ==" in requirement.replace("extra==", "extra =="):
        return None
    match = _NAME.match(requirement)
    return match.group(0) if match else None


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def distributions(root: str = ROOT_DISTRIBUTION) -> list[importlib.metadata.Distribution]:
    """`root` and every installed distribution it requires (extras left out)."""
    seen: dict[str, importlib.metadata.Distribution] = {}
    todo = [root]
    while todo:
        name = _normal(todo.pop())
        if name in seen or name in NEVER_SHIPPED:
            continue
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue  # a requirement for another Python version or platform
        seen[name] = dist
        for requirement in dist.requires or ():
            required = _requirement_name(requirement)
            if required:
                todo.append(required)
    return [seen[name] for name in sorted(seen)]


def dependency_files(dists: Iterable[importlib.metadata.Distribution]) -> dict[str, Path]:
    """Archive name -> installed file for the code of `dists` (no metadata, no scripts)."""
    files: dict[str, Path] = {}
    for dist in dists:
        for entry in dist.files or ():
            relative = entry.as_posix()
            top = relative.split("/")[0]
            if relative.startswith("..") or top.endswith((".dist-info", ".egg-info")):
                continue
            if _shippable(relative):
                files[relative] = Path(str(dist.locate_file(entry))).resolve()
    return files


def build_zip(files: dict[str, Path]) -> LambdaZip:
    """A reproducible zip of `files` (archive name -> source), checked against Lambda's limits."""
    buffer = io.BytesIO()
    unzipped = 0
    names = tuple(sorted(files))
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in names:
            data = files[name].read_bytes()
            unzipped += len(data)
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.external_attr = _FILE_MODE
            info.create_system = 3
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data, compresslevel=9)
    package = LambdaZip(buffer.getvalue(), unzipped, names)
    check_limits(package)
    return package


def check_limits(package: LambdaZip) -> None:
    """Raise DeployError when `package` is over Lambda's direct-upload or unzipped limit."""
    mb = 1024 * 1024
    if len(package.data) > MAX_ZIPPED_BYTES:
        raise DeployError(
            f"lambda zip: {len(package.data) / mb:.1f} MB zipped is over Lambda's 50 MB "
            "direct-upload limit; remove large files from lambdas/"
        )
    if package.unzipped_bytes > MAX_UNZIPPED_BYTES:
        raise DeployError(
            f"lambda zip: {package.unzipped_bytes / mb:.1f} MB unzipped is over Lambda's "
            "250 MB limit; remove large files from lambdas/"
        )


def lambda_zip() -> LambdaZip:
    """The deployment package shared by imgflow's three Lambda functions."""
    files = dependency_files(distributions())
    files.update(project_files())
    return build_zip(files)
