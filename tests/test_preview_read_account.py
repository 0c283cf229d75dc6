"""The preview node account: its installed read script is the program's read, and its sudoers
rule allows that read on the node's registries.yaml and nothing else (checked by sudo's own
parsers, visudo and cvtsudoers)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from components.nodes import mirror as node_mirror

from components.nodes import read_account as preview_read_account
from components.nodes.read_account import DEFAULT_PATH, READ_SCRIPT, READER_USER

VISUDO = shutil.which("visudo") or ("/usr/sbin/visudo" if os.path.exists("/usr/sbin/visudo") else None)
CVTSUDOERS = shutil.which("cvtsudoers")
needs_sudo_tools = pytest.mark.skipif(
    not (VISUDO and CVTSUDOERS) and not os.environ.get("EDGE_REGISTRY_REQUIRE_SERVERS"),
    reason="sudo's visudo/cvtsudoers not installed (.ci/run installs the sudo package)",
)


def run_sh(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=30)


@pytest.fixture()
def installed(tmp_path: Path) -> Path:
    script = tmp_path / "read-registries"
    script.write_text(preview_read_account.install_script())
    script.chmod(0o755)
    return script


@pytest.mark.parametrize("content", [b"mirrors:\n  docker.io:\n    endpoint: [\"https://m.example\"]\n", None])
def test_installed_script_prints_what_the_program_reads(tmp_path: Path, installed: Path, content: bytes | None) -> None:
    target = tmp_path / "registries.yaml"
    if content is not None:
        target.write_bytes(content)
    # The program's own read command, without sudo (the test runs it as the current user).
    args = node_mirror.NodeMirrorArgs(host="h", role="server", unit="k3s", path=str(target),
                                      endpoint="10.0.0.1:80", ssh_private_key="k")
    program = node_mirror.read_command(args).split("exec sudo -n ", 1)[-1]
    expected = run_sh(["/bin/sh", "-c", program])
    got = run_sh([str(installed), str(target)])
    assert expected.returncode == 0, expected.stderr
    assert got.returncode == 0, got.stderr
    assert got.stdout == expected.stdout
    read = node_mirror.parse_read_output(got.stdout)
    assert read.content == content


def test_installed_script_takes_exactly_one_path(installed: Path, tmp_path: Path) -> None:
    assert run_sh([str(installed)]).returncode == 2
    assert run_sh([str(installed), str(tmp_path / "a.yaml"), "/etc/shadow"]).returncode == 2


def rules(sudoers: str, tmp_path: Path) -> list[dict[str, Any]]:
    """The sudoers text as sudo parses it: (user, host, runas, options, command) per rule."""
    file = tmp_path / "edge-registry-read"
    file.unlink(missing_ok=True)  # the last call left it 0440: only root could write over it
    file.write_text(sudoers)
    file.chmod(0o440)
    checked = run_sh([VISUDO, "-c", "-f", str(file)])
    assert checked.returncode == 0, checked.stdout + checked.stderr
    parsed = json.loads(run_sh([CVTSUDOERS, "-f", "json", str(file)]).stdout)
    found = []
    for spec in parsed.get("User_Specs", []):
        for cmnd in spec["Cmnd_Specs"]:
            for command in cmnd["Commands"]:
                found.append({
                    "users": [u.get("username") for u in spec["User_List"]],
                    "hosts": [h.get("hostname") for h in spec["Host_List"]],
                    "runas": [u.get("username") for u in cmnd.get("runasusers", [])],
                    "options": cmnd.get("Options", []),
                    "command": command.get("command"),
                })
    return found


def only_the_read(found: list[dict[str, Any]], paths: list[str]) -> bool:
    return sorted(r["command"] for r in found) == sorted(f"{READ_SCRIPT} {p}" for p in paths) and all(
        r["users"] == [READER_USER] and r["runas"] == ["root"] and r["options"] == [{"authenticate": False}]
        for r in found
    )


@needs_sudo_tools
def test_sudoers_rule_allows_the_read_and_nothing_else(tmp_path: Path) -> None:
    found = rules(preview_read_account.sudoers_lines(), tmp_path)
    assert only_the_read(found, [DEFAULT_PATH])
    rke2 = ["/etc/rancher/k3s/registries.yaml", "/etc/rancher/rke2/registries.yaml"]
    assert only_the_read(rules(preview_read_account.sudoers_lines(paths=rke2), tmp_path), rke2)
    # The command the account runs is exactly the rule's command.
    assert preview_read_account.read_command(DEFAULT_PATH) == f"sudo -n {found[0]['command']}"


@needs_sudo_tools
def test_the_check_catches_a_broader_rule(tmp_path: Path) -> None:
    for broader in (
        f"{READER_USER} ALL=(ALL) NOPASSWD: ALL\n",
        f"{READER_USER} ALL=(root) NOPASSWD: {READ_SCRIPT}\n",            # any arguments
        f"{READER_USER} ALL=(root) NOPASSWD: {READ_SCRIPT} *\n",
        f"{READER_USER} ALL=(root) NOPASSWD: /bin/sh\n",
        f"{READER_USER} ALL=(root) NOPASSWD:SETENV: {READ_SCRIPT} {DEFAULT_PATH}\n",
    ):
        assert not only_the_read(rules(broader, tmp_path), [DEFAULT_PATH]), broader


@pytest.mark.parametrize("path", ["/etc/rancher/k3s/*.yaml", "/etc/x.yaml /etc/shadow", "relative.yaml",
                                  "/etc/rancher/../shadow.yaml", "/etc/shadow", "/a,b.yaml"])
def test_sudoers_refuses_a_path_that_would_widen_the_rule(path: str) -> None:
    with pytest.raises(ValueError):
        preview_read_account.sudoers_lines(paths=[path])


def test_cli_prints_script_and_rule() -> None:
    import sys

    script = run_sh([sys.executable, "-m", "components.nodes.read_account", "script"])
    assert script.returncode == 0 and script.stdout == preview_read_account.install_script()
    sudoers = run_sh([sys.executable, "-m", "components.nodes.read_account", "sudoers", "--path", "/etc/rancher/rke2/registries.yaml"])
    assert sudoers.returncode == 0 and f"{READ_SCRIPT} /etc/rancher/rke2/registries.yaml" in sudoers.stdout
    bad = run_sh([sys.executable, "-m", "components.nodes.read_account", "sudoers", "--path", "/etc/*"])
    assert bad.returncode == 2
    assert bad.stderr == "python -m components read-account sudoers: not an absolute registries.yaml path: '/etc/*'\n"


@needs_sudo_tools
def test_sudoers_ready_rule_adds_the_readiness_check_and_nothing_else(tmp_path: Path) -> None:
    found = rules(preview_read_account.sudoers_lines(ready=True), tmp_path)
    assert sorted(r["command"] for r in found) == sorted(
        [f"{READ_SCRIPT} {DEFAULT_PATH}", f"{READ_SCRIPT} resolve {DEFAULT_PATH}"])
    assert all(r["users"] == [READER_USER] and r["runas"] == ["root"] and r["options"] == [{"authenticate": False}]
               for r in found)
    # The commands the account runs are exactly the rules' commands.
    assert preview_read_account.resolve_command(DEFAULT_PATH) == f"sudo -n {READ_SCRIPT} resolve {DEFAULT_PATH}"
    # Without --ready, the read alone (as before).
    assert only_the_read(rules(preview_read_account.sudoers_lines(), tmp_path), [DEFAULT_PATH])


def test_installed_script_resolve_verb_needs_a_plan(installed: Path, tmp_path: Path) -> None:
    target = tmp_path / "registries.yaml"
    target.write_bytes(b"mirrors: {}\n")
    no_plan = subprocess.run([str(installed), "resolve", str(target)], input="", capture_output=True, text=True, timeout=30)
    assert no_plan.returncode == 1 and "not an edge-registry resolve plan" in no_plan.stderr
    assert run_sh([str(installed), "resolve"]).returncode == 2
    assert run_sh([str(installed), "resolve", str(target), "x"]).returncode == 2
