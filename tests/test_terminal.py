"""Each screen in a real terminal (tmux) of 80x24 and of 200x50: nothing wraps, run ids and
done/total are whole, option names are never cut, the next command is printed."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from support.cli_run import FAST_ENV, cli_argv, cli_env
from support.faultserver import Delay, FaultServer, Ok
from support.tmux import Terminal, term_env

from imgflow.demo.images import make_gif

SIZES = [(80, 24), (200, 50)]
RUN_ID = re.compile(r"\b\d{8}-\d{6}-[0-9a-f]{6}\b")
COMMANDS = [
    "run", "status", "retry", "report", "check", "export", "serve", "demo", "deploy", "teardown",
]  # fmt: skip


def _terminal(tmp_path: Path, width: int, height: int) -> Terminal:
    env = cli_env({**FAST_ENV, "IMGFLOW_FETCH_RETRIES": "0", "IMGFLOW_FETCH_TIMEOUT": "5"})
    return Terminal(width, height, tmp_path, term_env(env))


def _no_wraps(term: Terminal) -> None:
    """No line wrapped but the one that names a file (a path is never cut)."""
    wrapped = [line for line in term.wrapped() if not line.startswith("failures: /")]
    assert wrapped == [], "\n".join(term.screen())


def _whole(lines: list[str], pattern: str) -> list[str]:
    """The lines `pattern` matches whole (not followed by an ellipsis)."""
    found = [line for line in lines if re.search(pattern + r"(?!…)", line)]
    assert found, "\n".join(lines)
    return found


def _slow_site(server: FaultServer, count: int, delay: float, missing: int = 0) -> list[str]:
    gif = make_gif("t", 4)
    paths = [f"img/{i}.gif" for i in range(count)]
    for path in paths:
        server.set("/" + path, Delay(delay, Ok(gif)))
    return paths + [f"gone/{i}.gif" for i in range(missing)]


def _run_argv(server: FaultServer, tmp_path: Path, paths: list[str], *flags: str) -> list[str]:
    (tmp_path / "paths.txt").write_text("\n".join(paths) + "\n")
    return cli_argv("run", "--base-url", server.base_url, "--paths-file", "paths.txt", *flags)


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_live_line_final_table_and_status_fit(tmp_path: Path, width: int, height: int) -> None:
    with FaultServer() as server, _terminal(tmp_path, width, height) as term:
        paths = _slow_site(server, 40, 0.08, missing=3)
        term.start(_run_argv(server, tmp_path, paths, "-c", "1"))
        live = term.wait_for("/43", timeout=30)
        assert term.exit_code(90) == 1
        _no_wraps(term)
        bar = _whole(live, r"\b\d+/43\b")
        assert all("failed" in line and "ETA" in line for line in bar), live
        run_id = RUN_ID.search("\n".join(term.screen()))
        assert run_id is not None
        lines = term.screen()
        _whole(lines, rf"^run {run_id[0]}$")
        _whole(lines, rf"imgflow retry {run_id[0]}$")
        _whole(lines, rf"imgflow report {run_id[0]}$")
        assert [line for line in lines if "gone/" in line], lines  # the failures are listed
        assert not [line for line in lines if "img/5.gif" in line], lines  # stored: a count
        _whole(lines, r"40 stored or skipped images not listed \(--all lists them\)")

    with _terminal(tmp_path, width, height) as term:
        term.start(cli_argv("status"))
        assert term.exit_code(30) == 0
        _no_wraps(term)
        _whole(term.screen(), run_id[0] + r" .* 43 .* 3 ")


def test_a_streamed_input_counts_with_separators_and_ends_without_its_reading_note(
    tmp_path: Path,
) -> None:
    """A piped URL list: while it is read the line shows ``done/<read so far>+`` (thousands
    separated) under a header that says so; the last frame has the total, no ``+``, and the
    header no longer says the input is still read."""
    with FaultServer() as server, _terminal(tmp_path, 80, 24) as term:
        urls = [server.url("/" + path) for path in _slow_site(server, 12, 0.1)]
        (tmp_path / "urls.txt").write_text("\n".join(urls * 100) + "\n")  # 1,200 lines
        (tmp_path / "last.txt").write_text(urls[0] + "\n")
        run = shlex.join(cli_argv("run", "--urls-file", "-", "-c", "2"))
        # (the input's last line comes once the test has seen the first 1,200 counted)
        wait = "until [ -e go ]; do sleep 0.05; done"
        term.start(["sh", "-c", f"(cat urls.txt; {wait}; cat last.txt) | {run}"])
        live = term.wait_for(r" \d+/1,200\+ ", timeout=30)
        assert any("(input still being read" in line for line in live), live
        (tmp_path / "go").touch()
        assert term.exit_code(60) == 0
        _no_wraps(term)
        lines = term.screen()
        assert not [line for line in lines if "still being read" in line or "+ " in line], lines
        _whole(lines, r" 12/12 .* 0 failed ETA")


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_the_interrupt_says_how_far_and_how_to_continue(
    tmp_path: Path, width: int, height: int
) -> None:
    with FaultServer() as server:
        paths = _slow_site(server, 60, 0.2)
        with _terminal(tmp_path, width, height) as term:
            term.start(_run_argv(server, tmp_path, paths, "-c", "1"))
            term.wait_for(r" [1-9]\d?/60 ", timeout=30)  # (under way, far from done)
            term.keys("C-c")
            assert term.exit_code(30) == 130
            _no_wraps(term)
            lines = term.screen()
            run_id = RUN_ID.search("\n".join(lines))
            assert run_id is not None
            _whole(lines, rf"run {run_id[0]} interrupted at \d+/60 images$")
            _whole(lines, rf"^continue with: imgflow retry {run_id[0]}$")

        with _terminal(tmp_path, width, height) as term:
            term.start(cli_argv("retry", run_id[0]))
            assert term.exit_code(90) == 0
            _whole(term.screen(), rf"retrying \d+ unfinished images of run {run_id[0]}")


@pytest.mark.parametrize(("width", "height"), SIZES)
@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_fits_and_names_every_option(
    tmp_path: Path, command: str | None, width: int, height: int
) -> None:
    import typer

    from imgflow.cli.app import app
    from imgflow.cli.help import plain_metavars

    group = typer.main.get_command(app)
    plain_metavars(group)
    chosen = group if command is None else group.commands[command]  # type: ignore[attr-defined]
    names = [name for p in chosen.params for name in getattr(p, "opts", []) if name.startswith("-")]
    with _terminal(tmp_path, width, height) as term:
        term.start(cli_argv(*([command] if command else []), "--help"))
        assert term.exit_code(30) == 0
        _no_wraps(term)
        text = "\n".join(term.screen())
        for name in names:
            assert re.search(re.escape(name) + r"\b", text), name
        assert not re.search(r"<(str|int|bool|float|path|list)", text), text
        assert "..." not in text.split("Commands:")[-1] or command is not None
