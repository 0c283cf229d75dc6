"""Pinned host keys (issue 20): the config requires ``hostKey`` on every node that is not gone,
``python -m components host-key`` scans and pins it (against the suite's real sshd,
tests/sshd.py), and the program's reader accepts no other key."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from components.config.fields import ConfigError
from components.config.loading import load_site_config
from components.config.stack_files import load_stack_site_config
from components.nodes import host_keys
from components.nodes.host_keys import HostKeyError, fingerprint, with_host_key
from components.nodes.read import NodeReadFailure, NodeTarget, SshNodeReader
from tests.fixture_stacks import ROOT, STACK_DIR
from tests.sshd import SshServer, running_server

#: Fixed test keys (ssh-keygen -t ed25519, generated once); the private halves were thrown away.
KEY_A = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGpjKkb3qKVnCuHkw04o7TNs3j5JNk/rgmaUd0Bh5ug2"
KEY_C = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA6A6BrEZsQkEtZxS/2Zv1/IHOQbu94Vrifk8Vp7n8s3"

BASE = {
    "registryName": "contosoedge", "registryResourceGroup": "rg", "connectedRegistryName": "devship01",
    "kubeconfigPath": "/etc/edge/kubeconfig", "serviceClusterIP": "10.43.200.200", "sshAgent": "true",
    "repositories": ["hello-world"],
}


def _problems(nodes: list[dict[str, object]]) -> list[str]:
    try:
        load_site_config({**BASE, "nodes": nodes})
    except ConfigError as error:
        return list(error.problems)
    return []


# --------------------------------------------------------------------------- the config rule


def test_a_node_without_host_key_is_refused_with_the_command_that_gets_it() -> None:
    (problem,) = _problems([{"host": "10.0.0.1", "role": "server", "hostKey": KEY_A},
                            {"host": "10.0.0.2", "role": "agent"}])
    assert problem.startswith("edge-registry:nodes[1].hostKey: required")
    assert "python -m components host-key <site> --node 10.0.0.2" in problem


def test_a_gone_node_needs_no_host_key_and_a_bad_gone_is_one_problem() -> None:
    assert _problems([{"host": "10.0.0.1", "role": "server", "gone": True}]) == []
    assert _problems([{"host": "10.0.0.1", "role": "server", "gone": "true"}]) == []
    (problem,) = _problems([{"host": "10.0.0.1", "role": "server", "gone": "yes"}])
    assert problem.startswith("edge-registry:nodes[0].gone:")


def test_the_fixture_stacks_pin_every_node() -> None:
    for path in (*STACK_DIR.glob("Pulumi.*.yaml"), *(ROOT / "tests" / "fleet_fixtures").glob("Pulumi.*.yaml")):
        config = (yaml.safe_load(path.read_text()) or {}).get("config") or {}
        for node in config.get("edge-registry:nodes") or ():
            assert node.get("gone") or fingerprint(node["hostKey"]).startswith("SHA256:"), (path, node)


# --------------------------------------------------------------------------- editing the stack file

STACK_TEXT = """\
# a site
config:
  edge-registry:registryName: contosoedge  # the parent
  edge-registry:nodes:
    - host: 10.0.0.1   # the server
      role: server
      user: ubuntu
    # the agent
    - role: agent
      host: "10.0.0.2"
      hostKey: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGYWdm7ptFCJ0sJYaY+nclh895DF084UCY8JeX9+wUDc
    - {host: 10.0.0.3, role: agent}
  edge-registry:nodeRestartTimeoutSeconds: 120
"""


def test_the_key_is_added_to_the_one_node_and_comments_stay() -> None:
    new = with_host_key(STACK_TEXT, "10.0.0.1", KEY_A)
    assert new == STACK_TEXT.replace(
        "    - host: 10.0.0.1   # the server\n", f"    - host: 10.0.0.1   # the server\n      hostKey: {KEY_A}\n"
    )


def test_a_pinned_key_is_replaced_in_place_and_a_flow_mapping_gets_one() -> None:
    replaced = with_host_key(STACK_TEXT, "10.0.0.2", KEY_A)
    assert replaced.count("\n") == STACK_TEXT.count("\n") and f"      hostKey: {KEY_A}\n" in replaced
    flow = with_host_key(STACK_TEXT, "10.0.0.3", KEY_C)
    assert f'    - {{host: 10.0.0.3, hostKey: "{KEY_C}", role: agent}}\n' in flow
    for text, host, key in ((replaced, "10.0.0.2", KEY_A), (flow, "10.0.0.3", KEY_C)):
        nodes = yaml.safe_load(text)["config"]["edge-registry:nodes"]
        assert [n for n in nodes if n["host"] == host][0]["hostKey"] == key


def test_an_unknown_node_is_refused() -> None:
    with pytest.raises(HostKeyError, match="no node with host 10.9.9.9"):
        with_host_key(STACK_TEXT, "10.9.9.9", KEY_A)


# --------------------------------------------------------------------------- against a real sshd


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    yield from running_server(tmp_path_factory)


@pytest.fixture
def stack_dir(server: SshServer, tmp_path: Path) -> Path:
    """The fixture dev stack with a first node on the test sshd, without hostKey."""
    text = (STACK_DIR / "Pulumi.dev.yaml").read_text()
    first = re.search(r"    - host: 192\.0\.2\.10\n(      .*\n)+?(?=    - )", text)
    assert first
    text = text.replace(first.group(0), f"    - host: 127.0.0.1  # the test sshd\n      port: {server.port}\n      role: server\n")
    (tmp_path / "Pulumi.dev.yaml").write_text(text)
    return tmp_path


def _ssh_keygen_fingerprint(server: SshServer) -> str:
    out = subprocess.run(["ssh-keygen", "-lf", str(server.root / "host_ed25519.pub")],
                         check=True, capture_output=True, text=True).stdout
    return out.split()[1]


def _run(stack_dir: Path, *args: str) -> int:
    return host_keys.main(["dev", "--node", "127.0.0.1", "--stack-dir", str(stack_dir), *args])


def test_the_scanned_fingerprint_is_ssh_keygens(server: SshServer) -> None:
    line = host_keys.scan_host_key("127.0.0.1", server.port, timeout=5)
    assert line == " ".join(server.host_public_key.split()[:2])
    assert fingerprint(line) == _ssh_keygen_fingerprint(server)


def test_yes_without_the_expected_fingerprint_is_refused(stack_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = (stack_dir / "Pulumi.dev.yaml").read_bytes()
    assert _run(stack_dir, "--yes") == 2
    assert "--expect-fingerprint" in capsys.readouterr().err
    assert (stack_dir / "Pulumi.dev.yaml").read_bytes() == before


def test_a_wrong_expected_fingerprint_is_refused_and_nothing_written(
    server: SshServer, stack_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (stack_dir / "Pulumi.dev.yaml").read_bytes()
    wrong = fingerprint(KEY_A)
    assert _run(stack_dir, "--yes", "--expect-fingerprint", wrong) == 1
    err = capsys.readouterr().err
    assert "127.0.0.1" in err and wrong in err and _ssh_keygen_fingerprint(server) in err
    assert (stack_dir / "Pulumi.dev.yaml").read_bytes() == before


def test_without_a_terminal_nothing_is_written(server: SshServer, stack_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = (stack_dir / "Pulumi.dev.yaml").read_bytes()
    assert _run(stack_dir) == 1
    captured = capsys.readouterr()
    assert _ssh_keygen_fingerprint(server) in captured.out and "--yes --expect-fingerprint" in captured.err
    assert (stack_dir / "Pulumi.dev.yaml").read_bytes() == before


def test_the_right_fingerprint_pins_the_key_and_the_stack_loads(server: SshServer, stack_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"nodes\[0\]\.hostKey: required"):
        load_stack_site_config(ROOT, "dev", stack_dir)
    before = (stack_dir / "Pulumi.dev.yaml").read_text()
    assert _run(stack_dir, "--yes", "--expect-fingerprint", _ssh_keygen_fingerprint(server)) == 0
    after = (stack_dir / "Pulumi.dev.yaml").read_text()
    key = " ".join(server.host_public_key.split()[:2])
    assert after == before.replace("    - host: 127.0.0.1  # the test sshd\n",
                                   f"    - host: 127.0.0.1  # the test sshd\n      hostKey: {key}\n")
    site, _config = load_stack_site_config(ROOT, "dev", stack_dir)
    assert site.nodes[0].host_key == key
    assert _run(stack_dir, "--yes", "--expect-fingerprint", _ssh_keygen_fingerprint(server)) == 0  # already pinned
    assert (stack_dir / "Pulumi.dev.yaml").read_text() == after


def test_a_terminal_confirmation_pins_and_a_no_does_not(
    server: SshServer, stack_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    before = (stack_dir / "Pulumi.dev.yaml").read_text()
    monkeypatch.setattr("builtins.input", lambda _prompt: "n")
    assert _run(stack_dir) == 1
    assert (stack_dir / "Pulumi.dev.yaml").read_text() == before
    monkeypatch.setattr("builtins.input", lambda _prompt: "y")
    assert _run(stack_dir) == 0
    assert server.host_public_key.split()[1] in (stack_dir / "Pulumi.dev.yaml").read_text()


def test_the_cli_lists_the_command() -> None:
    from components.__main__ import COMMANDS

    assert COMMANDS["host-key"][0] == "components.nodes.host_keys"
    assert shutil.which("ssh-keygen")


# --------------------------------------------------------------------------- the reader


def test_the_reader_names_expected_and_offered_fingerprints(server: SshServer) -> None:
    target = NodeTarget("127.0.0.1", server.port, server.user, "/etc/rancher/k3s/registries.yaml", KEY_A)
    result = SshNodeReader(connect_timeout=5).read_nodes([target], server.client_private_key)["127.0.0.1"]
    assert isinstance(result, NodeReadFailure) and not result.unreachable
    assert "does not match the pinned hostKey" in result.reason
    assert f"expected {fingerprint(KEY_A)}" in result.reason
    assert f"offered {_ssh_keygen_fingerprint(server)}" in result.reason


def test_the_reader_never_trusts_an_unpinned_node(server: SshServer) -> None:
    target = NodeTarget("127.0.0.1", server.port, server.user, "/etc/rancher/k3s/registries.yaml", None)
    result = SshNodeReader(connect_timeout=5).read_nodes([target], server.client_private_key)["127.0.0.1"]
    assert isinstance(result, NodeReadFailure) and not result.unreachable
    assert "no hostKey is pinned" in result.reason and _ssh_keygen_fingerprint(server) in result.reason


def test_a_pinned_key_of_another_type_is_a_mismatch_too(server: SshServer) -> None:
    """The node has no key of the pinned type and offers its ed25519 key: refused, both named."""
    ecdsa = ("ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBDYt1VSQ/c4l/Eqbn4UIs/gNf55N8ZRriSKHdsa"
             "gNLJowTf++t736GZzWF9gTb2Zy+/fmlpVOfXPWV4k8P0Z7XY=")
    target = NodeTarget("127.0.0.1", server.port, server.user, "/etc/rancher/k3s/registries.yaml", ecdsa)
    result = SshNodeReader(connect_timeout=5).read_nodes([target], server.client_private_key)["127.0.0.1"]
    assert isinstance(result, NodeReadFailure) and not result.unreachable
    assert f"expected {fingerprint(ecdsa)} (ecdsa-sha2-nistp256)" in result.reason
    assert f"offered {_ssh_keygen_fingerprint(server)} (ssh-ed25519)" in result.reason
