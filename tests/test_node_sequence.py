"""Whole sequences of previews and ups against a real sshd (tests/sshd.py), the engine played by
tests/node_engine.py: nodes are read at program time by the program's own reader (paramiko).

"A converged site previews as no change; a real change shows what it does."
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from components.nodes import registries_yaml as ry
from components.nodes.read import NodeReadFailure, NodeTarget, SshNodeReader
from tests.node_engine import ENDPOINT, Node, node_dir
from tests.sshd import SshServer, running_server

FOREIGN = b"""# hand-written, comments come back on destroy
mirrors:
  docker.io:
    endpoint:
      - "https://mirror.example.com:5000"
configs:
  "mirror.example.com:5000":
    auth:
      username: puller
      password: foreign-secret
"""
OURS = {"mirrors": {ENDPOINT: {"endpoint": [f"http://{ENDPOINT}"]}}}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    yield from running_server(tmp_path_factory)


@pytest.fixture
def node(server: SshServer) -> Iterator[Node]:
    server.reset_service()
    # root's own directories (tests/node_engine.py node_dir): the scripts refuse one under /tmp
    with node_dir("k3s") as root:
        yield Node(server, root / "k3s" / "registries.yaml")


class SilentPort:
    """A TCP port on 127.0.0.1 that accepts connections and never says a word (a hung node)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        for conn in self.accepted:
            conn.close()
        self.sock.close()


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _plan_line(node: Node) -> str:
    """The node's plan line; it is also the diagnostic logged on the node's component."""
    assert node.last is not None
    line = node.last.summaries[0]
    assert ("info", line) in node.last.logs
    return line


# --------------------------------------------------------------------------- the sequences


def test_up_then_previews_show_no_change_then_a_foreign_edit_shows_and_is_kept_then_destroy(node: Node) -> None:
    node.path.write_bytes(FOREIGN)

    # 1. first up: our mirror added, k3s restarted once
    assert node.preview() == "create"
    assert _plan_line(node).endswith(f"mirrors[{ENDPOINT}] added; k3s restarts")
    assert node.up().returncode == 0
    assert node.server.restarts() == ["systemctl restart --no-block k3s"]
    assert ry.unmerge(node.document(), [("mirrors", ENDPOINT)]) == ry.parse(FOREIGN)

    # 2. and 3. two previews with nothing changed: no change, "unchanged"
    for _ in range(2):
        assert node.preview() == "same"
        assert _plan_line(node) == f"node 127.0.0.1: {node.path} unchanged; k3s not restarted"
    assert node.up().stdout == "(no change: not run)"

    # 4. a foreign edit: the next preview shows it, the up keeps it, then no change again
    edited = node.document()
    edited["mirrors"]["quay.io"] = {"endpoint": ["https://quay-mirror.example"]}
    node.path.write_bytes(ry.dump(edited))
    assert node.preview() == "update"
    assert "edited on the node since edge-registry wrote it: the edit is kept" in _plan_line(node)
    result = node.up()
    assert result.returncode == 0, result.stderr
    assert node.document() == edited  # kept byte for byte (our entry was still there)
    assert len(node.server.restarts()) == 1  # nothing to restart for
    assert node.preview() == "same"
    assert node.preview() == "same"

    # a foreign edit that removes our entry: shown as a change with a restart, merged back
    without = ry.unmerge(node.document(), [("mirrors", ENDPOINT)])
    node.path.write_bytes(ry.dump(without))
    assert node.preview() == "update"
    assert _plan_line(node).endswith(f"mirrors[{ENDPOINT}] added; k3s restarts")
    assert node.up().returncode == 0
    assert ry.unmerge(node.document(), [("mirrors", ENDPOINT)]) == without
    assert len(node.server.restarts()) == 2
    assert node.preview() == "same"

    # 5. destroy: the merged foreign change stays, our entry goes
    result = node.destroy()
    assert result.returncode == 0, result.stderr
    assert node.document() == without


def test_destroy_gives_back_the_original_bytes(node: Node) -> None:
    node.path.write_bytes(FOREIGN)
    assert node.up().returncode == 0
    assert node.up(endpoint="10.43.0.11:80").returncode == 0  # an endpoint change in between
    assert node.preview(endpoint="10.43.0.11:80") == "same"
    result = node.destroy()
    assert result.returncode == 0, result.stderr
    assert node.content() == FOREIGN  # comments and all
    assert not node.side.exists()


def test_a_run_cut_off_before_its_restart_is_finished_then_stays_quiet(node: Node) -> None:
    node.path.write_bytes(FOREIGN)
    apply = node.plan()
    node.server.kill_on_restart()
    assert node.run_apply(apply).returncode != 0  # killed: the file is new, the restart is owed
    node.server.reset_service()
    assert node.preview() == "create"  # the failed create left no state
    assert "restarts (finishing a restart" in _plan_line(node)
    assert node.up().returncode == 0
    assert node.server.restarts() == ["systemctl restart --no-block k3s"]
    for _ in range(2):
        assert node.preview() == "same"
        assert _plan_line(node).endswith("unchanged; k3s not restarted")


def test_a_restart_owed_from_an_earlier_update_shows_as_a_change_and_then_settles(node: Node) -> None:
    node.path.write_bytes(FOREIGN)
    assert node.up().returncode == 0
    apply = node.plan(endpoint="10.43.0.12:80")
    node.server.kill_on_restart()
    assert node.run_apply(apply).returncode != 0
    node.server.reset_service()
    assert node.preview(endpoint="10.43.0.12:80") == "update"
    assert node.up(endpoint="10.43.0.12:80").returncode == 0
    assert node.server.restarts() == ["systemctl restart --no-block k3s"]
    assert node.preview(endpoint="10.43.0.12:80") == "same"
    assert node.preview(endpoint="10.43.0.12:80") == "same"


def test_a_node_down_at_preview_and_at_up(node: Node) -> None:
    node.path.write_bytes(FOREIGN)
    assert node.up().returncode == 0
    stored = node.stored
    before = node.content()
    silent = SilentPort()
    try:
        node.reader.connect_timeout = 1
        # preview: succeeds, warns naming the node, plans no write (every input ignored)
        started = time.monotonic()
        verdict = node.preview(port=silent.port)
        assert time.monotonic() - started < 10
        assert verdict == "same"
        assert node.last is not None
        warnings = [m for level, m in node.last.logs if level == "warn"]
        assert any(m.startswith("node 127.0.0.1: cannot read") and "no write is planned" in m for m in warnings)
        assert any(f"no SSH answer from 127.0.0.1:{silent.port} within 1s" in m for m in warnings), warnings
        assert "stdin" not in node.last_apply
        # up: stops, naming the node and the way out; nothing was sent
        started = time.monotonic()
        with pytest.raises(Exception, match=r"node 127\.0\.0\.1: cannot read .*Nothing was changed.*gone: true"):
            node.up(port=silent.port)
        assert time.monotonic() - started < 10
    finally:
        silent.close()
    assert node.stored is stored and node.content() == before
    # connection refused (nothing listening) is the same story, and faster
    started = time.monotonic()
    with pytest.raises(Exception, match=r"node 127\.0\.0\.1: cannot read .*cannot connect .*connection refused"):
        node.up(port=_closed_port())
    assert time.monotonic() - started < 5
    # back up: no change
    assert node.preview() == "same"


def test_a_file_put_back_as_it_was_before_edge_registry_shows_as_a_change_and_is_merged_again(node: Node) -> None:
    node.path.write_bytes(FOREIGN)
    assert node.up().returncode == 0
    # Twice: each time the node is in the very state the first up started from.
    for restarts in (2, 3):
        node.path.write_bytes(FOREIGN)  # someone restores the original by hand
        assert node.preview() == "update"
        assert _plan_line(node).endswith(f"mirrors[{ENDPOINT}] added; k3s restarts")
        result = node.up()
        assert result.returncode == 0, result.stderr
        assert ry.unmerge(node.document(), [("mirrors", ENDPOINT)]) == ry.parse(FOREIGN)
        assert len(node.server.restarts()) == restarts
        assert node.preview() == "same"
        assert node.preview() == "same"


INVALID = b'mirrors:\n  docker.io:\n    endpoint: "https://mirror.example.com:5000"\n'
"""YAML, but not for k3s: ``endpoint`` must be a list (k3s would never start with it)."""
PROBLEM = 'mirrors["docker.io"].endpoint: must be a list of URLs, not a string'


@pytest.mark.parametrize("applied_before", [False, True])
def test_a_file_that_fails_the_k3s_check_is_a_warning_at_preview_and_stops_up(node: Node, applied_before: bool) -> None:
    if applied_before:
        assert node.up().returncode == 0  # a node edge-registry wrote, then someone broke the file
        node.path.write_bytes(node.content() + INVALID.replace(b"mirrors:\n", b""))  # type: ignore[operator]
    else:
        node.path.write_bytes(INVALID)
    before, stored, restarts = node.content(), node.stored, len(node.server.restarts())
    # preview: succeeds, warns naming the node, the file and the problem; plans no write
    assert node.preview() == ("same" if applied_before else "create")
    assert node.last is not None
    warnings = [m for level, m in node.last.logs if level == "warn"]
    assert any(m.startswith(f"node 127.0.0.1: {node.path}: {PROBLEM}") and "no write is planned" in m
               for m in warnings), warnings
    assert "stdin" not in node.last_apply and "create" not in node.last_apply
    # up: a clean stop naming the node, the file, the problem and the way out; nothing sent
    with pytest.raises(Exception, match=rf"node 127\.0\.0\.1: {re.escape(str(node.path))}: {re.escape(PROBLEM)}\. "
                       r"Nothing was changed.*Fix that entry in the file on the node.*gone: true"):
        node.up()
    assert node.content() == before and node.stored is stored
    assert len(node.server.restarts()) == restarts
    assert node.side.exists() is applied_before
    # fixed on the node: planned and written as usual
    node.path.write_bytes(FOREIGN)
    assert node.up().returncode == 0
    assert ry.unmerge(node.document(), [("mirrors", ENDPOINT)]) == ry.parse(FOREIGN)


def test_a_file_that_is_not_yaml_is_reported_without_quoting_it(node: Node) -> None:
    node.path.write_bytes(b'configs:\n  r.example:\n    auth:\n      password: "s3cret\n  x: [\n')
    node.preview()
    assert node.last is not None
    (warning,) = [m for level, m in node.last.logs if level == "warn"]
    assert "the file is not valid YAML" in warning and "at line" in warning
    assert "s3cret" not in warning


# --------------------------------------------------------------------------- the reader itself


def test_reader_checks_a_pinned_host_key(node: Node, server: SshServer) -> None:
    other = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ3t8lm0bq8zJ4mTgqg5zV0Lh8Jc5b4sQ2cQyH3s9p1N"
    target = NodeTarget("127.0.0.1", server.port, server.user, str(node.path), other)
    result = SshNodeReader(connect_timeout=5).read_nodes([target], server.client_private_key)["127.0.0.1"]
    assert isinstance(result, NodeReadFailure) and not result.unreachable
    assert "host key does not match" in result.reason
    pinned = NodeTarget("127.0.0.1", server.port, server.user, str(node.path), server.host_public_key)
    assert not isinstance(SshNodeReader().read_nodes([pinned], server.client_private_key)["127.0.0.1"], NodeReadFailure)


def test_reader_reads_nodes_in_parallel(node: Node, server: SshServer, tmp_path: Path) -> None:
    silent = [SilentPort() for _ in range(3)]
    try:
        targets = [NodeTarget("127.0.0.1", s.port, server.user, str(node.path), None) for s in silent]
        # three hung nodes with a 2 s bound each: in parallel that is ~2 s, not ~6 s
        started = time.monotonic()
        results = SshNodeReader(connect_timeout=2).read_nodes(targets, server.client_private_key)
        elapsed = time.monotonic() - started
    finally:
        for s in silent:
            s.close()
    assert all(isinstance(r, NodeReadFailure) and r.unreachable for r in results.values())
    assert elapsed < 5, elapsed


def test_reader_refuses_a_wrong_key(node: Node, server: SshServer, tmp_path: Path) -> None:
    import subprocess

    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True)
    target = NodeTarget("127.0.0.1", server.port, server.user, str(node.path), server.host_public_key)
    result = SshNodeReader().read_nodes([target], (tmp_path / "other").read_text())["127.0.0.1"]
    assert isinstance(result, NodeReadFailure) and "refused" in result.reason
