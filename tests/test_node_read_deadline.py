"""The node read's overall deadline (components/nodes/read.py, ``SshNodeReader.deadline``).

The per-socket timeouts bound each wait; a node that trickles bytes never hits them. Two such
nodes: a TCP port on 127.0.0.1 that sends a byte of a banner line that never ends every 0.1 s
(with connect timeouts longer than the deadline), and the suite's real OpenSSH server
(tests/sshd.py) running a read command that prints a byte every 0.2 s, well inside the command
timeout. Each must be a read failure naming the node and the limit within the deadline and a
small margin.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from components.nodes.read import NodeReadFailure, NodeTarget, SshNodeReader, load_private_key
from tests.sshd import SshServer, running_server

MARGIN = 2.0


class TricklePort:
    """Accepts TCP on 127.0.0.1 and sends ``b"x"`` every ``interval`` seconds, never a newline."""

    def __init__(self, interval: float = 0.1) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.interval = interval
        self.stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn: socket.socket) -> None:
        with conn:
            while not self.stopped.is_set():
                try:
                    conn.sendall(b"x")
                except OSError:
                    return
                time.sleep(self.interval)

    def close(self) -> None:
        self.stopped.set()
        self.sock.close()


@pytest.fixture
def trickle() -> Iterator[TricklePort]:
    port = TricklePort()
    yield port
    port.close()


def _key(tmp_path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True)
    return (tmp_path / "k").read_text()


def test_a_node_that_trickles_its_banner_fails_at_the_deadline(trickle: TricklePort, tmp_path: Path) -> None:
    target = NodeTarget("127.0.0.1", trickle.port, "root", "/etc/rancher/k3s/registries.yaml")
    # the connect timeouts (10 s) are not what ends it: the deadline (2 s) is
    reader = SshNodeReader(connect_timeout=10, deadline=2)
    started = time.monotonic()
    result = reader.read_nodes([target], _key(tmp_path))["127.0.0.1"]
    elapsed = time.monotonic() - started
    assert isinstance(result, NodeReadFailure) and result.unreachable, result
    assert f"127.0.0.1:{trickle.port}" in result.reason and "within 2s" in result.reason
    assert 2 <= elapsed < 2 + MARGIN, elapsed


def test_the_deadline_is_per_node_and_nodes_still_run_in_parallel(tmp_path: Path) -> None:
    ports = [TricklePort() for _ in range(3)]
    try:
        # three trickling nodes with a 2 s deadline each, read in parallel: ~2 s, not ~6 s
        reader = SshNodeReader(connect_timeout=10, deadline=2)
        pkey = load_private_key(_key(tmp_path))
        targets = [NodeTarget("127.0.0.1", p.port, "root", "/x.yaml") for p in ports]
        started = time.monotonic()
        with ThreadPoolExecutor(3) as pool:  # what read_nodes does (it keys results by host)
            results = list(pool.map(lambda t: reader.read_one(t, pkey), targets))
        elapsed = time.monotonic() - started
        assert all(isinstance(r, NodeReadFailure) and "within 2s" in r.reason for r in results), results
        assert elapsed < 2 + MARGIN, elapsed
    finally:
        for port in ports:
            port.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    yield from running_server(tmp_path_factory)


def test_a_read_that_trickles_its_output_fails_at_the_deadline(server: SshServer) -> None:
    # each byte comes well inside the 1 s command timeout, so only the deadline can end it
    trickling = "while :; do printf x; sleep 0.2; done"
    target = NodeTarget(server.host, server.port, server.user, "/etc/rancher/k3s/registries.yaml",
                        server.host_public_key, command=trickling)
    reader = SshNodeReader(connect_timeout=5, command_timeout=1, deadline=3)
    started = time.monotonic()
    result = reader.read_nodes([target], server.client_private_key)[server.host]
    elapsed = time.monotonic() - started
    assert isinstance(result, NodeReadFailure) and result.unreachable, result
    assert f"{server.host}:{server.port}" in result.reason and "within 3s" in result.reason
    assert "limit per node" in result.reason
    assert 3 <= elapsed < 3 + MARGIN, elapsed


def test_a_quick_read_is_not_affected(server: SshServer) -> None:
    target = NodeTarget(server.host, server.port, server.user, "/x.yaml", server.host_public_key,
                        command="echo done; sleep 0.5; exit 3")
    result = SshNodeReader(connect_timeout=5, deadline=3).read_nodes([target], server.client_private_key)[server.host]
    # it finished (exit 3) inside the deadline: reported as what it is, not as the deadline
    assert isinstance(result, NodeReadFailure) and not result.unreachable
    assert "exit status 3" in result.reason


def test_the_default_deadline_is_a_minute() -> None:
    assert SshNodeReader().deadline == 60
