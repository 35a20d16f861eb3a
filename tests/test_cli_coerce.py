"""The command line converts its values as typer does, without pydantic where the answer is
certain (imgflow/cli/coerce.py): the same value, or typer's own error, for every parameter of
every command; a plain run imports only what it uses (no pydantic, no YAML parser without a
config file, no live bar off a terminal, no table without failures)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer._click import Context
from typer._coercion import build_runtime_param

from imgflow.cli.app import app
from imgflow.cli.coerce import install
from imgflow.demo.server import StaticServer

VALUES: tuple[Any, ...] = (
    "", "0", "1", "7", "01", "+1", " 1", "1 ", "1_0", "-1", "1.5", "100", "101", "168",
    "169", "65535", "65536", "0.5", "12.25", "100.0", "100.5", "1e2", ".5", "5.", "nan",
    "inf", "99999999999999999999", "abc", "json", "JSON", "text", "Text",
    "local", "aws", "parquet", "-", ".", "~/x", "x\x00y", "é", "\u0661",
    (), ("a",), ("a", "b"), ["a"], True, False, 3,
)  # fmt: skip


def _outcome(convert: Any, value: Any, param: Any, ctx: Context) -> tuple[Any, ...]:
    try:
        found = convert.coerce(value, param=param, ctx=ctx)
    except Exception as exc:  # (typer's message, whichever way it was reached)
        return ("error", type(exc).__name__, str(exc))
    return ("value", type(found), repr(found))  # (repr: nan is nan)


def _parameters() -> list[tuple[Any, Any]]:
    """One parameter of each kind (type and typer's settings) of every command."""
    group = typer.main.get_command(app)
    found = {}
    for command in (group, *group.commands.values()):  # type: ignore[attr-defined]
        for param in command.params:
            info = param.type_descriptor.parameter_info
            kind = (repr(param.type_descriptor.annotation), param.multiple, param.nargs)
            found.setdefault((*kind, repr(sorted(vars(info).items()))), (command, param))
    return list(found.values())


def test_every_parameter_converts_every_value_as_typer_does(tmp_path: Path) -> None:
    install()
    import typer.core

    plain_build = typer.core.build_runtime_param
    assert plain_build is not build_runtime_param
    (tmp_path / "file.txt").write_text("x")
    values = (*VALUES, str(tmp_path), str(tmp_path / "file.txt"), str(tmp_path / "none"))
    checked = 0
    for command, param in _parameters():
        descriptor = param.type_descriptor
        ctx = Context(command)
        plain, typers = plain_build(descriptor), build_runtime_param(descriptor)
        for value in values:
            expected = _outcome(typers, value, param, ctx)
            assert _outcome(plain, value, param, ctx) == expected, (param.name, value)
            checked += 1
    assert checked > 500


@pytest.fixture
def job(tmp_path: Path, flag_server: StaticServer) -> list[str]:
    paths = tmp_path / "paths.txt"
    paths.write_text("ad/ad.gif\nfr/fr.gif\n")
    return [
        "run", "--base-url", flag_server.base_url, "--paths-file", str(paths),
        "--data-dir", str(tmp_path / "data"), "--output", "json", "-c", "2",
        "--max-batches", "1", "--tolerate-failures", "0",
    ]  # fmt: skip


def test_a_plain_run_imports_only_what_it_uses(tmp_path: Path, job: list[str]) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("IMGFLOW_")}
    clean.update(HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / "xdg"))
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "imgflow.cli", *job],
        cwd=tmp_path, env=clean, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert '"stored": 2' in done.stdout
    imported = {
        line.rsplit("|", 1)[1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert "imgflow.engine.fetch" in imported  # (the run's own modules are listed)
    unused = ("pydantic", "yaml", "rich.progress", "rich.table")  # (no terminal, no failure)
    assert sorted(m for m in imported if m.startswith(unused)) == []


@pytest.mark.parametrize("argv", [["--help"], ["--no-such-option"], ["-c"], ["-c", "0"]])
def test_a_command_built_alone_says_what_the_whole_app_says(argv: list[str]) -> None:
    from typer.testing import CliRunner

    from imgflow.cli.app import of_command

    runner = CliRunner()
    names = [info.name or info.callback.__name__ for info in app.registered_commands]  # type: ignore[union-attr]
    assert len(names) == 10
    for name in names:
        only = of_command(["imgflow", name])
        assert only is not app and len(only.registered_commands) == 1, name
        alone = runner.invoke(only, [name, *argv], prog_name="imgflow")
        whole = runner.invoke(app, [name, *argv], prog_name="imgflow")
        assert (alone.output, alone.exit_code) == (whole.output, whole.exit_code), name
    assert of_command(["imgflow", "ru"]) is app
    assert of_command(["imgflow"]) is app
