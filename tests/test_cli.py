"""``python -m components``: one entry point whose ``--help`` lists every operator command."""

from __future__ import annotations

import subprocess
import sys

import pytest

from components.__main__ import COMMANDS
from tests.fixture_stacks import ROOT

EXPECTED = {"render", "fleet", "config-reference", "host-key", "read-account", "ready", "benchmark", "depart"}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_help_lists_every_operator_command_on_one_line_each() -> None:
    result = run("-m", "components", "--help")

    assert result.returncode == 0, result.stderr
    listed = result.stdout.split("commands:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert {line.split()[0] for line in listed} == EXPECTED == set(COMMANDS)
    assert all(len(line.split(maxsplit=1)) == 2 for line in listed), listed


@pytest.mark.parametrize("command", sorted(EXPECTED))
def test_each_command_has_help_under_the_new_name(command: str) -> None:
    result = run("-m", "components", command, "--help")

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: python -m components {command}")


def test_an_unknown_command_names_itself_and_the_commands() -> None:
    result = run("-m", "components", "deploy")

    assert result.returncode == 2
    assert "unknown command 'deploy'" in result.stderr and "render, fleet" in result.stderr
    assert "Traceback" not in result.stderr


def test_no_command_prints_the_help_and_fails() -> None:
    result = run("-m", "components")

    assert result.returncode == 2 and "commands:" in result.stderr


def test_the_old_render_entry_point_still_renders_with_a_notice() -> None:
    new = run("-m", "components", "render", "dev", "--stack-dir", "tests/stacks")
    old = run("-m", "components.render", "dev", "--stack-dir", "tests/stacks")

    assert new.returncode == old.returncode == 0, old.stderr
    assert old.stdout == new.stdout
    assert old.stderr.startswith("notice: 'python -m components.render' is now 'python -m components render'\n")
    assert old.stderr.split("\n", 1)[1] == new.stderr


def test_the_old_fleet_entry_point_still_runs_with_a_notice() -> None:
    result = run("-m", "components.fleet", "status", "--help")

    assert result.returncode == 0
    assert result.stderr == "notice: 'python -m components.fleet' is now 'python -m components fleet'\n"
    assert result.stdout.startswith("usage: python -m components fleet status")


def test_a_command_loads_only_its_own_module() -> None:
    probe = (
        "import sys, runpy\n"
        "sys.argv = ['components', 'read-account', 'script']\n"
        "try:\n    runpy.run_module('components', run_name='__main__')\nexcept SystemExit:\n    pass\n"
        "loaded = [m for m in ('pulumi', 'components.preview.render', 'components.fleet.cli') if m in sys.modules]\n"
        "print('LOADED', loaded, file=sys.stderr)\n"
    )
    result = run("-c", probe)

    assert "LOADED []" in result.stderr, result.stderr
    assert result.stdout.startswith("#!")
