"""``python -m components render STACK --read-nodes`` reads the stack's real nodes as ``pulumi
preview`` does (tests/sshd.py plays the node), and ``pulumi up`` stops on a node it cannot read."""

from __future__ import annotations

import hashlib
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from components.config.fields import ConfigError
from components.nodes.read import SshNodeReader
from components.preview.render import render_stack
from tests.fixture_stacks import stack_file
from tests.sshd import SshServer, running_server

ROOT = Path(__file__).resolve().parent.parent
FOREIGN = b"configs:\n  mirror.example:5000:\n    auth:\n      username: u\n      password: node-secret\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    yield from running_server(tmp_path_factory)


def _dead_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _project(tmp_path: Path, server: SshServer, dead_port: int | None = None) -> tuple[Path, Path]:
    """A project dir with stack `site` whose node is the sshd; returns (project, node file)."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "Pulumi.yaml", project / "Pulumi.yaml")
    stack = yaml.safe_load(stack_file().read_text())
    node_file = tmp_path / "k3s" / "registries.yaml"
    node_file.parent.mkdir()
    nodes = [{"host": "127.0.0.1", "port": server.port, "user": server.user, "role": "server",
              "hostKey": server.host_public_key, "path": str(node_file)}]
    if dead_port is not None:
        # a dead node still pins a key (the config requires one); any valid key line does
        nodes.append({"host": "127.0.0.2", "port": dead_port, "role": "agent", "path": str(node_file),
                      "hostKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGYWdm7ptFCJ0sJYaY+nclh895DF084UCY8JeX9+wUDc"})
    stack["config"]["edge-registry:nodes"] = nodes
    (project / "Pulumi.site.yaml").write_text(yaml.safe_dump(stack))
    (tmp_path / "key").write_text(server.client_private_key)
    return project, node_file


def render(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "components", "render", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_read_nodes_plans_from_what_is_on_the_node(server: SshServer, tmp_path: Path) -> None:
    project, node_file = _project(tmp_path, server)
    node_file.write_bytes(FOREIGN)
    args = ["site", "--project-dir", str(project), "--read-nodes", "--ssh-key", str(tmp_path / "key")]
    done = render(*args)
    assert done.returncode == 0, done.stderr
    section = done.stdout.split("\nsite-node-127.0.0.1:\n")[1].split("outputs:")[0]
    assert f"plan: node 127.0.0.1: {node_file}: mirrors[10.43.200.200:80] added, mirrors[contosoedge.azurecr.io] added, configs[10.43.200.200:80] added; k3s restarts" in section
    assert f"expected current file: {hashlib.sha256(FOREIGN).hexdigest()}" in section
    assert "username: u" in section and "node-secret" not in done.stdout
    assert render(*args).stdout == done.stdout  # same node, same bytes
    assert node_file.read_bytes() == FOREIGN  # a render never writes


def test_read_nodes_needs_a_key_it_can_use(server: SshServer, tmp_path: Path) -> None:
    project, _ = _project(tmp_path, server)
    done = render("site", "--project-dir", str(project), "--read-nodes")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "--read-nodes: edge-registry:sshPrivateKey is encrypted or not set in Pulumi.site.yaml; pass --ssh-key FILE"
    ]


def test_a_dead_node_warns_in_the_render_and_stops_up(server: SshServer, tmp_path: Path) -> None:
    project, node_file = _project(tmp_path, server, dead_port=_dead_port())
    done = render("site", "--project-dir", str(project), "--read-nodes", "--ssh-key", str(tmp_path / "key"))
    assert done.returncode == 1, done.stderr  # rendered, but a node could not be read: `pulumi up` would stop
    assert "node 127.0.0.2: cannot read" in done.stderr and "no write is planned" in done.stderr
    assert done.stderr.splitlines()[-1].startswith("--read-nodes: 1 of 2 node(s) could not be read or used (127.0.0.2;")
    assert "Traceback" not in done.stderr
    dead = done.stdout.split("\nsite-node-127.0.0.2:\n")[1]
    assert "desired registries.yaml" not in dead.split("\n\n")[0]
    # `pulumi up` (not a dry run): stops before any resource, naming the node and the way out
    started = time.monotonic()
    with pytest.raises(ConfigError) as error:
        render_stack(
            project, "site", preview=False, node_reader=SshNodeReader(connect_timeout=2),
            config_overrides={"sshPrivateKey": server.client_private_key},
        )
    assert time.monotonic() - started < 10
    (line,) = error.value.problems
    assert line.startswith("node 127.0.0.2: cannot read") and "gone: true" in line
    assert node_file.exists() is False


def test_a_file_that_fails_the_k3s_check_warns_in_the_render_and_stops_up(server: SshServer, tmp_path: Path) -> None:
    project, node_file = _project(tmp_path, server)
    broken = b'mirrors:\n  docker.io:\n    endpoint: "https://mirror.example.com:5000"\n'
    node_file.write_bytes(broken)
    problem = 'mirrors["docker.io"].endpoint: must be a list of URLs, not a string'
    done = render("site", "--project-dir", str(project), "--read-nodes", "--ssh-key", str(tmp_path / "key"))
    assert done.returncode == 1, done.stderr  # rendered, but `pulumi up` would stop on the node's file
    assert f"node 127.0.0.1: {node_file}: {problem}; " in done.stderr and "no write is planned" in done.stderr
    assert "Traceback" not in done.stderr
    section = done.stdout.split("\nsite-node-127.0.0.1:\n")[1]
    assert "desired registries.yaml" not in section.split("\n\n")[0]
    # `pulumi up`: stops before any resource is declared, naming the node, the file, the problem, the way out
    with pytest.raises(ConfigError) as error:
        render_stack(
            project, "site", preview=False, node_reader=SshNodeReader(connect_timeout=5),
            config_overrides={"sshPrivateKey": server.client_private_key},
        )
    (line,) = error.value.problems
    assert line.startswith(f"node 127.0.0.1: {node_file}: {problem}. Nothing was changed")
    assert "Fix that entry in the file on the node" in line and "gone: true" in line
    assert node_file.read_bytes() == broken
