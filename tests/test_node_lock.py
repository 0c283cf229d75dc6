"""One run at a time per node file (issue 20, point 4), against the real OpenSSH server
(tests/sshd.py), as root and as a user with ``sudo -n``.

Every apply and destroy holds ``<path>.edge-registry/lock`` (``flock``, exclusive) from before it
reads the file to its last write, restart and rollback included; the read holds it shared, so it
never sees a file and a record from two different runs. A run that cannot have it within its
bound fails with a clear error and changes nothing.

**A lost write**, precisely: two applies that both succeed from the same file (the same
``expected`` checksum). The second one's rename throws away the first one's file although the
first reported success, and the record (``written.sha256``, ``owned``, ``applied``) may name
either. With the lock, the check "the file is still what the plan read" and the write are one
step: of applies planned from one read exactly one succeeds, every other one fails with the
refusal to write over a file that changed since it was read (or the lock's bounded wait), and
the successes of any set of runs form one chain from the first file to the last.
"""

from __future__ import annotations

import hashlib
import shlex
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from components.nodes import commands
from components.nodes import mirror as nm
from components.nodes.payload import NodeRead, apply_stdin, decode_apply_stdin, parse_read_output
from components.nodes.plan import plan_node
from tests import test_node_ssh as harness
from tests.node_engine import Node, node_dir
from tests.sshd import SshServer
from tests.test_node_ssh import FOREIGN

#: The module-scoped sshd of tests/test_node_ssh.py, one for this module.
server = harness.server

REFUSED = "changed since edge-registry read it"
LOCK_WAIT = "another edge-registry run holds the lock on"


@pytest.fixture
def node(server: SshServer) -> Iterator[Node]:
    server.reset_service()
    with node_dir("k3s") as root:
        yield Node(server, root / "k3s" / "registries.yaml")


def ssh(server: SshServer, command: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """``server.ssh``, dialled again when the connection itself failed (exit 255, the command not
    run): sshd drops some of 40 simultaneous unauthenticated connections (its MaxStartups), which
    pulumi-command retries the same way (dialErrorLimit)."""
    for attempt in range(20):
        done = server.ssh(command, stdin, timeout=120)
        if done.returncode != 255:
            return done
        time.sleep(0.05 * (attempt + 1))
    return done


def read_now(node: Node) -> NodeRead:
    done = ssh(node.server, commands.read_command(str(node.path), node.server.user))
    assert done.returncode == 0, done.stderr
    return parse_read_output(done.stdout.removesuffix("\n"))


def plan_for(node: Node, read: NodeRead, endpoint: str) -> dict[str, Any]:
    """What NodeMirror sends for ``endpoint`` after reading ``read``: the command and its stdin
    (the program's read command and the node's ``-apply`` text are the ones ``node.args()`` gives,
    built here without Pulumi outputs so that threads can call it)."""
    plan = plan_node(read, host="127.0.0.1", path=str(node.path), endpoint=endpoint, scheme="http")
    command = commands.apply_command(str(node.path), "k3s", "systemd", 2, node.server.user)
    return {"create": command, "stdin": apply_stdin(plan), "plan": plan}


def test_the_commands_here_are_the_ones_the_program_declares(node: Node) -> None:
    assert commands.apply_command(str(node.path), "k3s", "systemd", 2, node.server.user) == nm.apply_command(node.args())
    assert commands.read_command(str(node.path), node.server.user) == nm.read_command(node.args())


def record(node: Node) -> dict[str, bytes]:
    """The record's files (the directories a run keeps in it while it runs must be gone)."""
    names = [p.name for p in node.side.iterdir()]
    assert "stage" not in names and "ca-record" not in names, names
    return {name: (node.side / name).read_bytes() for name in names}


def assert_record_matches_the_file(node: Node, winner: Any) -> None:
    content = node.content()
    side = record(node)
    assert content == winner.content
    assert side["written.sha256"].decode().strip() == hashlib.sha256(content or b"").hexdigest()
    assert side["owned"] == "".join(f"{s} {k}\n" for s, k in winner.owned).encode()
    applied = f"{winner.expected} {'yes' if winner.restart_pending else 'no'} {winner.generation}\n"
    assert side["applied"].decode() == applied
    assert "restart-pending" not in side
    assert [p.name for p in node.path.parent.iterdir() if ".edge-registry." in p.name] == []


def test_forty_concurrent_applies_lose_no_write_and_every_record_matches_the_file(node: Node) -> None:
    node.path.write_bytes(FOREIGN)
    assert node.up().returncode == 0  # a node edge-registry already wrote (the lock file exists)
    before = node.content()
    node.server.reset_service()
    read = read_now(node)
    writers = [plan_for(node, read, f"10.43.1.{i}:80") for i in range(1, 41)]
    assert len({w["plan"].desired for w in writers}) == 40  # forty different files
    seen: list[NodeRead] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            seen.append(read_now(node))

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=44) as pool:
        readers = [pool.submit(reader) for _ in range(4)]
        results = list(pool.map(lambda w: ssh(node.server, w["create"], w["stdin"]), writers))
        stop.set()
        for r in readers:
            r.result()
    elapsed = time.monotonic() - started
    assert elapsed < 60, elapsed

    winners = [w["plan"] for w, r in zip(writers, results, strict=True) if r.returncode == 0]
    others = [r for r in results if r.returncode != 0]
    # no lost write: of forty applies planned from one read, one succeeds ...
    assert len(winners) == 1, [r.stdout for r in results if r.returncode == 0]
    # ... and every other one fails clearly, writing nothing
    assert all(r.returncode == 1 and (REFUSED in r.stderr or LOCK_WAIT in r.stderr) for r in others), [
        r.stderr for r in others if REFUSED not in r.stderr and LOCK_WAIT not in r.stderr
    ]
    (winner,) = winners
    assert winner.expected == hashlib.sha256(before or b"").hexdigest()
    assert_record_matches_the_file(node, winner)
    assert (node.side / "backup").read_bytes() == before
    assert (node.side / "original").read_bytes() == FOREIGN
    assert len(node.server.restarts()) == 1
    # every read during the storm saw a file and a record from the same moment
    assert len(seen) >= 4
    for each in seen:
        assert each.written == hashlib.sha256(each.content or b"").hexdigest()
        assert not each.restart_pending
        assert each.content in (before, winner.content)


def test_concurrent_read_modify_write_cycles_form_one_chain(node: Node) -> None:
    """Twelve runs, each reading, planning and applying until it succeeds (what 'Run pulumi up
    again' does): every run gets its write in, and each success started from the file the one
    before it wrote."""
    node.path.write_bytes(FOREIGN)
    successes: list[Any] = []
    lock = threading.Lock()

    def cycle(i: int) -> int:
        for attempt in range(1, 60):
            writer = plan_for(node, read_now(node), f"10.43.2.{i}:80")
            done = ssh(node.server, writer["create"], writer["stdin"])
            if done.returncode == 0:
                with lock:
                    successes.append(writer["plan"])
                return attempt
            assert REFUSED in done.stderr or LOCK_WAIT in done.stderr, done.stderr
        raise AssertionError(f"run {i} never got its write in")

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=12) as pool:
        list(pool.map(cycle, range(1, 13)))
    assert time.monotonic() - started < 60
    assert len(successes) == 12
    # one chain: no two successes started from the same file (a fork is a lost write), and
    # following each one's file to the success that started from it visits them all
    by_start = {s.expected: s for s in successes}
    assert len(by_start) == 12
    chain, at = [], hashlib.sha256(FOREIGN).hexdigest()
    while at in by_start:
        chain.append(by_start[at])
        at = chain[-1].desired
    assert len(chain) == 12
    assert_record_matches_the_file(node, chain[-1])
    assert len(node.server.restarts()) == 12


def _hold_lock(node: Node, seconds: float, then: str = "") -> threading.Thread:
    """Another run holding the node's lock for ``seconds`` (then running ``then`` while it holds it)."""
    lock = shlex.quote(f"{node.side}/lock")
    held = shlex.quote(f"{node.side}/held-by-test")
    script = f"exec 9>>{lock}; flock -x 9; : > {held}; sleep {seconds}; rm -f {held}; {then}"
    thread = threading.Thread(target=node.server.ssh_as_root, args=(f"sh -c {shlex.quote(script)}",), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not (node.side / "held-by-test").exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return thread


def test_a_run_that_cannot_get_the_lock_in_time_fails_clearly_and_changes_nothing(node: Node) -> None:
    node.path.write_bytes(FOREIGN)
    assert node.up().returncode == 0
    before, restarts = node.content(), len(node.server.restarts())
    later = node.plan("10.43.0.99:80")
    path, user = str(node.path), node.server.user
    holder = _hold_lock(node, 6)
    for command, stdin in (
        (commands.apply_command(path, "k3s", "systemd", 2, user, lock_wait_seconds=1), later["stdin"]),
        (commands.destroy_command(path, "k3s", "systemd", 2, user, lock_wait_seconds=1), ""),
    ):
        started = time.monotonic()
        done = ssh(node.server, command, stdin)
        assert 1 <= time.monotonic() - started < 3
        assert done.returncode == 1
        assert f"{LOCK_WAIT} {node.path} ({node.side}/lock) for more than 1s" in done.stderr
        assert "Nothing was changed by this run" in done.stderr
    assert node.content() == before and len(node.server.restarts()) == restarts
    # the read waits for it (shared), and an apply with the default bound gets it when it is free
    assert read_now(node).content == before
    assert not (node.side / "held-by-test").exists()  # read once the other run was done
    done = node.run_apply(later)
    assert done.returncode == 0, done.stderr
    holder.join()
    assert "10.43.0.99:80" in node.document()["mirrors"]


def test_a_run_waiting_while_a_destroy_removes_the_record_takes_the_lock_of_the_new_one(node: Node) -> None:
    """destroy ends with ``rm -rf <path>.edge-registry``, lock file included, while other runs may
    wait on that file: the one that gets it next sees it is no longer the record's lock, and
    takes the lock of a new record."""
    node.path.write_bytes(FOREIGN)
    assert node.up().returncode == 0
    apply = node.plan("10.43.0.51:80")
    holder = _hold_lock(node, 1.5, then=f"rm -rf {shlex.quote(str(node.side))}")  # as destroy does, locked
    done = node.run_apply(apply)
    holder.join()
    assert done.returncode == 0, done.stderr
    # a record of its own, consistent with the file: the file it found became the original
    assert (node.side / "lock").exists() and "10.43.0.51:80" in node.document()["mirrors"]
    assert (node.side / "written.sha256").read_bytes().decode().strip() == hashlib.sha256(node.content() or b"").hexdigest()
    assert decode_apply_stdin(apply["stdin"]).content == node.content()
