"""The Lambda zip: imgflow's handlers + engine + third-party wheels, built reproducibly.

One zip serves all three functions (``lambdas.plan.handler``, ``lambdas.download.handler``,
``lambdas.consolidate.handler``). It holds the ``lambdas`` package, the parts of imgflow a
handler may import (``imgflow/__init__.py``, ``errors.py``, ``engine/``, ``aws/__init__.py``,
``aws/client.py``, ``aws/runtime/``, the job body's parser in ``sources/``) and the
packages listed in imgflow.aws.zip_packages, unpacked from wheels built for the function's
runtime (``python3.12``) and architecture (manylinux x86_64 or aarch64): ``pip download
--only-binary=:all: --no-deps --platform ... --python-version 3.12``, kept in a cache folder
(``$IMGFLOW_WHEEL_CACHE``, else ``$XDG_CACHE_HOME/imgflow/wheels`` or
``~/.cache/imgflow/wheels``), so repeated builds fetch nothing and give the same bytes.
Never typer, rich, yaml, boto3 or botocore: the Lambda
runtime provides boto3.

Entries are sorted, dated 1980-01-01 with fixed permissions, and caches and wheel metadata
are left out, so the same sources give the same bytes and the same CodeSha256 (compared with
the deployed function's to skip an upload).
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import canonicalize_name, parse_wheel_filename

import imgflow
import lambdas
from imgflow.aws.zip_packages import PACKAGES
from imgflow.errors import DeployError

# Lambda's limits for a direct upload and for the unzipped function.
MAX_ZIPPED_BYTES = 50 * 1024 * 1024
MAX_UNZIPPED_BYTES = 250 * 1024 * 1024

IMGFLOW_FILES = (
    "imgflow/__init__.py",
    "imgflow/errors.py",
    "imgflow/aws/__init__.py",
    # The job body's parser (baseUrl + resourcePaths, or urls), for the plan step.
    "imgflow/sources/__init__.py",
    "imgflow/sources/base.py",
    "imgflow/sources/paths.py",
    "imgflow/sources/job_json.py",
)
IMGFLOW_GLOBS = ("imgflow/engine/**/*", "imgflow/aws/client.py", "imgflow/aws/runtime/**/*")
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)
_FILE_MODE = 0o100644 << 16
_RUNTIME = re.compile(r"^python3\.(\d+)$")
_MACHINES = {"x86_64": "x86_64", "arm64": "aarch64"}
# Lambda's python3.12+ runtimes run on Amazon Linux 2023 (glibc 2.34).
_GLIBC_MINORS = range(5, 35)


@dataclass(frozen=True)
class Target:
    """The Lambda runtime the zip is built for."""

    python: tuple[int, int] = (3, 12)
    arch: str = "x86_64"  # Lambda's names: x86_64 or arm64

    @classmethod
    def of(cls, runtime: str = "python3.12", arch: str = "x86_64") -> Target:
        """The target of a Lambda runtime name and architecture."""
        match = _RUNTIME.match(runtime)
        if match is None:
            raise DeployError(f"lambda.runtime: {runtime!r} is not a python3.N runtime")
        if arch not in _MACHINES:
            raise DeployError(f"lambda architecture: {arch!r} is not x86_64 or arm64")
        return cls((3, int(match.group(1))), arch)

    @property
    def machine(self) -> str:
        """The manylinux machine name."""
        return _MACHINES[self.arch]

    @property
    def abi(self) -> str:
        """CPython's ABI tag, such as cp312."""
        return f"cp{self.python[0]}{self.python[1]}"

    def platforms(self) -> list[str]:
        """The platform tags Lambda's Amazon Linux accepts, newest first."""
        names = [f"manylinux_2_{minor}_{self.machine}" for minor in reversed(_GLIBC_MINORS)]
        names.append(f"manylinux2014_{self.machine}")
        if self.machine == "x86_64":
            names += ["manylinux2010_x86_64", "manylinux1_x86_64"]
        return names

    def tags(self) -> frozenset[Tag]:
        """Every wheel tag that installs on this runtime."""
        platforms = self.platforms()
        cp = cpython_tags(self.python, abis=[self.abi, "abi3", "none"], platforms=platforms)
        return frozenset(cp) | frozenset(compatible_tags(self.python, self.abi, platforms))


@dataclass(frozen=True)
class LambdaZip:
    """A built deployment package."""

    data: bytes
    unzipped_bytes: int
    entries: tuple[str, ...]
    wheels: tuple[str, ...] = field(default=())

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


def wheel_cache() -> Path:
    """The folder fetched wheels are kept in."""
    explicit = os.environ.get("IMGFLOW_WHEEL_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "imgflow" / "wheels"


def _pin(requirement: str) -> tuple[str, str]:
    name, sep, version = requirement.partition("==")
    if not sep or not name or not version:
        raise DeployError(f"zip_packages: {requirement!r} must be pinned as name==version")
    return str(canonicalize_name(name.strip())), version.strip()


def _cached(folder: Path, name: str, version: str, target: Target) -> Path | None:
    supported = target.tags()
    for path in sorted(folder.glob("*.whl")):
        wheel_name, wheel_version, _, tags = parse_wheel_filename(path.name)
        if wheel_name == name and str(wheel_version) == version and tags & supported:
            return path
    return None


def fetch_wheels(
    target: Target, packages: Sequence[str] = PACKAGES, cache: Path | None = None
) -> list[Path]:
    """A wheel for `target` of each pinned package, fetched once into the cache."""
    folder = (cache or wheel_cache()) / f"{target.abi}-{target.machine}"
    pins = [_pin(p) for p in packages]
    missing = [f"{n}=={v}" for n, v in pins if _cached(folder, n, v, target) is None]
    if missing:
        folder.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
        command += ["--only-binary=:all:", "--implementation", "cp", "--dest", str(folder)]
        command += ["--python-version", f"{target.python[0]}.{target.python[1]}"]
        for platform in (f"manylinux2014_{target.machine}", f"manylinux_2_28_{target.machine}"):
            command += ["--platform", platform]
        done = subprocess.run([*command, *missing], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["pip failed"])[-1]
            raise DeployError(f"lambda zip: cannot fetch wheels for {target.abi}: {last}")
    wheels = []
    for name, version in pins:
        found = _cached(folder, name, version, target)
        if found is None:
            raise DeployError(f"lambda zip: no {target.abi} wheel of {name}=={version}")
        wheels.append(found)
    return wheels


def wheel_files(wheels: Iterable[Path]) -> dict[str, bytes]:
    """Archive name -> contents of the code in `wheels` (no metadata, scripts or caches)."""
    files: dict[str, bytes] = {}
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            for name in archive.namelist():
                top = name.split("/")[0]
                if name.endswith("/") or top.endswith((".dist-info", ".data")):
                    continue
                if _shippable(name):
                    files[name] = archive.read(name)
    return files


def build_zip(files: dict[str, Path | bytes], wheels: Sequence[str] = ()) -> LambdaZip:
    """A reproducible zip of `files` (archive name -> source file or contents), checked
    against Lambda's limits."""
    buffer = io.BytesIO()
    unzipped = 0
    names = tuple(sorted(files))
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in names:
            source = files[name]
            data = source if isinstance(source, bytes) else source.read_bytes()
            unzipped += len(data)
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.external_attr = _FILE_MODE
            info.create_system = 3
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data, compresslevel=9)
    package = LambdaZip(buffer.getvalue(), unzipped, names, tuple(wheels))
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


_built: dict[str, LambdaZip] = {}


def _digest(files: dict[str, Path | bytes]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        source = files[name]
        data = source if isinstance(source, bytes) else source.read_bytes()
        digest.update(f"{name}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def lambda_zip(runtime: str = "python3.12", arch: str = "x86_64") -> LambdaZip:
    """The deployment package shared by imgflow's three Lambda functions.

    Built once per process for the same inputs (compressing the wheels takes seconds).
    """
    wheels = fetch_wheels(Target.of(runtime, arch))
    files: dict[str, Path | bytes] = {}
    files.update(wheel_files(wheels))
    files.update(project_files())
    key = _digest(files)
    if key not in _built:
        _built[key] = build_zip(files, [w.name for w in wheels])
    return _built[key]
