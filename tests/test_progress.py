"""Feedback on long work: the benchmark, ``fleet status`` and ``render --read-nodes`` say what they
are doing while a person waits, on stderr, so stdout (a table, JSON, a tree) stays as it was.

Each command runs as a person runs it, twice: with stderr not a terminal (a CI log: one plain
line per step) and on a pseudo-terminal (a rich progress bar, redrawn in place).
"""

from __future__ import annotations

import io
import json
import os
import pty
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from components.progress import Progress
from tests.fixture_stacks import ROOT
from tests.sshd import SshServer, running_server
from tests.test_fleet import arm, arm_env, fleet_arm_state, make_project  # noqa: F401 (fixtures)
from tests.test_render_read_nodes import _project

#: What rich draws on a terminal: the cursor hidden while the bar is live, the line redrawn in
#: place, the bar itself.
HIDE_CURSOR, REDRAW, BAR = "\x1b[?25l", "\r\x1b[2K", "━"


def components(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m components ARGS`` with stdout and stderr pipes (not terminals)."""
    return subprocess.run([sys.executable, "-m", "components", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=env)


def on_a_terminal(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """``python -m components ARGS`` with stderr on a pseudo-terminal (stdout to a file):
    (exit code, stdout, what the terminal received)."""
    master, slave = pty.openpty()
    with tempfile.TemporaryFile("w+") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "components", *args], cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out,
            stderr=slave, env={**(env or os.environ), "COLUMNS": "140", "TERM": "xterm"},
        )
        os.close(slave)
        received = bytearray()
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            received += chunk
        os.close(master)
        code = process.wait(timeout=300)
        out.seek(0)
        return code, out.read(), received.decode("utf-8", "replace")


# --- the helper -----------------------------------------------------------------------------------

def test_off_a_terminal_each_step_is_a_plain_line_with_the_command_name() -> None:
    err = io.StringIO()
    with Progress("reading nodes", total=2, out=err, prefix="render") as progress:
        progress.step("10.0.0.5 read")
        progress.note("waiting for 10.0.0.6")
        progress.step("10.0.0.6 could not be read")
    assert err.getvalue().splitlines() == [
        "render: reading nodes (2)...",
        "render: reading nodes 1/2: 10.0.0.5 read",
        "render: reading nodes: waiting for 10.0.0.6",
        "render: reading nodes 2/2: 10.0.0.6 could not be read",
    ]


def test_disabled_progress_says_nothing() -> None:
    err = io.StringIO()
    with Progress("reading nodes", total=1, out=err, enabled=False, terminal=True) as progress:
        progress.step("x")
    assert err.getvalue() == ""


# --- render --read-nodes ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    yield from running_server(tmp_path_factory)


def test_render_read_nodes_shows_each_node_as_it_is_read(server: SshServer, tmp_path: Path) -> None:
    project, _ = _project(tmp_path, server)
    args = ["render", "site", "--project-dir", str(project), "--read-nodes", "--ssh-key", str(tmp_path / "key")]
    shown, quiet = components(*args), components(*args, "--no-progress")
    assert shown.returncode == quiet.returncode == 0, shown.stderr
    assert shown.stderr.splitlines()[:2] == ["render: reading nodes (1)...", "render: reading nodes 1/1: 127.0.0.1 read"]
    assert "render: reading nodes" not in quiet.stderr
    assert shown.stdout == quiet.stdout and "render:" not in shown.stdout  # stdout untouched

    code, stdout, terminal = on_a_terminal(*args)
    assert code == 0, terminal
    assert HIDE_CURSOR in terminal and REDRAW in terminal and BAR in terminal
    assert "render: reading nodes" in terminal and "1/1" in terminal and "127.0.0.1 read" in terminal
    assert "render: reading nodes 1/1: " not in terminal  # a bar, not the plain lines
    assert stdout == quiet.stdout


# --- fleet status -----------------------------------------------------------------------------------

def _report(stdout: str) -> tuple[list[str], dict[str, object]]:
    """The JSON report (stdout is that and nothing else) as two runs can compare it: its
    sections and each site's verdicts (ages and the report's moment differ by the seconds
    between the runs)."""
    report = json.loads(stdout)
    return sorted(report), {site["stack"]: site["verdicts"] for site in report["sites"]}


def test_fleet_status_shows_the_stack_files_and_each_registry(tmp_path: Path, arm: object,  # noqa: F811
                                                              arm_env: dict[str, str]) -> None:  # noqa: F811
    fleet_arm_state(arm, datetime.now(UTC))  # type: ignore[arg-type]
    project = make_project(tmp_path, arm)  # type: ignore[arg-type]
    env = {**os.environ, **arm_env}
    args = ["fleet", "status", "--project-dir", str(project), "--json"]
    shown, quiet = components(*args, env=env), components(*args, "--no-progress", env=env)
    assert shown.returncode == quiet.returncode == 1  # the fixture fleet has flagged sites
    lines = shown.stderr.splitlines()
    assert lines[0] == "fleet: reading stack files..."
    assert "fleet: listing registry 1/2 rg-edge/brokenedge" in lines
    assert "fleet: listing registry 2/2 rg-edge/contosoedge: tokens, page 1" in lines
    assert not any(line.startswith("fleet:") for line in quiet.stderr.splitlines())
    assert _report(shown.stdout) == _report(quiet.stdout)  # stdout is the report, nothing else

    code, stdout, terminal = on_a_terminal(*args, env=env)
    assert code == 1
    assert HIDE_CURSOR in terminal and REDRAW in terminal and BAR in terminal
    assert "fleet: reading stack files" in terminal and "fleet: listing registries" in terminal and "2/2" in terminal
    assert "fleet: listing registry 1/2" not in terminal
    assert _report(stdout) == _report(quiet.stdout)


# --- the benchmark ----------------------------------------------------------------------------------

def test_the_benchmark_shows_each_round() -> None:
    done = components("benchmark", "--min-rounds", "1", "--max-rounds", "1", "--precision", "1")
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[0] == "benchmark: measuring rounds (1)..."
    (round_line,) = [line for line in done.stderr.splitlines() if line.startswith("benchmark: measuring rounds 1/1: ")]
    assert "round 1 (at least 1): time x floor dev " in round_line and ", large " in round_line
    assert done.stdout.startswith("1 rounds; import floor ") and "benchmark:" not in done.stdout
