"""What the node scripts trust as root, and what they leave behind (issue 20, points 3 and 6),
against the real OpenSSH server (tests/sshd.py), as root and as a user with ``sudo -n``.

* The record beside the file (``<path>.edge-registry/``) is created root 0700 and refused, with
  the reason, when it or anything in it is a symlink, another user's, or group- or
  world-writable: by the read (so ``up`` stops before any write), the apply and the destroy.
* A file whose directory, or any directory above it, is not root's alone (such as anything
  under /tmp) is never written; a path that is not canonical is refused by the program and by
  the scripts.
* The payload is staged in the locked record, never in /tmp; a killed client or script leaves
  nothing readable by others, and the next run removes what a killed run left (also the
  ``/tmp/tmp.*`` stages of the versions before).
* The file keeps its owner and mode (without access for others: it holds the client password),
  a rollback and destroy put back the ones it had.
"""

from __future__ import annotations

import shlex
import signal
import stat
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from components.nodes import commands
from components.nodes import registries_yaml as ry
from tests import test_node_ssh as harness
from tests.node_engine import ENDPOINT, Node, node_dir
from tests.sshd import NodePath, SshServer
from tests.sshd import as_root as sshd_as_root
from tests.test_node_ssh import FOREIGN

#: The module-scoped sshd of tests/test_node_ssh.py, one for this module.
server = harness.server

OTHER_UID = 65534  # nobody
FIXTURES = Path(__file__).with_name("fixtures") / "node_scripts_before_lock"


@pytest.fixture
def node(server: SshServer) -> Iterator[Node]:
    server.reset_service()
    with node_dir("k3s") as root:
        yield Node(server, root / "k3s" / "registries.yaml")


def root_sh(node: Node, command: str) -> str:
    done = node.server.ssh_as_root(command)
    assert done.returncode == 0, done.stderr
    return done.stdout


def listing(path: NodePath) -> list[str]:
    return sorted(p.name for p in path.iterdir()) if path.exists() else []


def merged() -> bytes:
    return ry.dump(ry.merge(ry.parse(FOREIGN), ry.mirror_entries(ENDPOINT, "http", None, False), []))


# --------------------------------------------------------------------------- the record


def test_the_record_is_root_0700_with_its_lock_and_no_stage_left(node: Node) -> None:
    node.path.write_bytes(FOREIGN)
    result = node.up()
    assert result.returncode == 0, result.stderr
    info = node.side.stat()
    assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (0o700, 0, 0)
    lock = (node.side / "lock").stat()
    assert (stat.S_IMODE(lock.st_mode), lock.st_uid) == (0o600, 0)
    assert "stage" not in listing(node.side)
    assert [n for n in listing(node.path.parent) if ".edge-registry." in n] == []


def _damage(node: Node, how: str) -> None:
    side = shlex.quote(str(node.side))
    commands_by_kind = {
        # the record moved aside and a symlink to a copy someone controls put in its place
        "the record is a symlink": f"cp -a {side} {side}.elsewhere && rm -rf {side} && ln -s {side}.elsewhere {side}",
        "the record is another user's": f"chown {OTHER_UID} {side}",
        "the record is group-writable": f"chmod 0770 {side}",
        "an entry is another user's": f"chown {OTHER_UID} {side}/original",
        "an entry is world-writable": f"chmod 0666 {side}/restore",
        # destroy would read /etc/shadow-like bytes through it and write them as the file
        "an entry is a symlink": f"rm {side}/restore && ln -s /etc/hostname {side}/restore",
        "an entry is a fifo": f"mkfifo {side}/ca-record",
    }
    root_sh(node, commands_by_kind[how])


_WHY = {
    "the record is a symlink": "is a symlink",
    "the record is another user's": f"is owned by uid {OTHER_UID}, not root",
    "the record is group-writable": "is writable by its group or by others (mode 770)",
    "an entry is another user's": f"original is owned by uid {OTHER_UID}, not root",
    "an entry is world-writable": "restore is writable by its group or by others (mode 666)",
    "an entry is a symlink": "restore is a symlink",
    "an entry is a fifo": "ca-record is not a regular file or directory",
}


@pytest.mark.parametrize("how", list(_WHY))
def test_a_record_someone_else_could_have_changed_is_refused_by_read_apply_and_destroy(node: Node, how: str) -> None:
    node.path.write_bytes(FOREIGN)
    assert node.up().returncode == 0
    later = node.plan("10.43.0.77:80")  # an update planned before the damage
    before, restarts = node.content(), len(node.server.restarts())
    _damage(node, how)
    why = _WHY[how]
    # the read refuses: `pulumi up` stops before anything is written, saying why
    with pytest.raises(Exception, match="cannot read .*" + "edge-registry's record of .* is not used") as error:
        node.up("10.43.0.88:80")
    assert why in str(error.value)
    # an apply already planned refuses too, and so does destroy; nothing is changed
    for result in (node.run_apply(later), node.destroy()):
        assert result.returncode == 1
        assert why in result.stderr and "is not used. Nothing was changed" in result.stderr
        assert f"sudo rm -rf {node.side}" in result.stderr
    assert node.content() == before
    assert len(node.server.restarts()) == restarts
    # the way out the message gives: forget the node, and the next up starts a new record
    root_sh(node, f"rm -rf {shlex.quote(str(node.side))} {shlex.quote(str(node.side))}.elsewhere")
    assert node.up("10.43.0.88:80").returncode == 0
    assert (node.side / "original").read_bytes() == before


def test_a_ca_file_record_pointing_elsewhere_is_not_removed_by_destroy(node: Node) -> None:
    from tests.test_node_https import ENDPOINT as HTTPS_ENDPOINT
    from tests.test_node_https import https

    assert node.up(HTTPS_ENDPOINT, **https()).returncode == 0
    victim = node.path.parent.parent / "victim"
    victim.write_bytes(b"not edge-registry's\n")
    (node.side / "ca-file").write_bytes(f"{victim}\n".encode())
    before = node.content()
    result = node.destroy()
    assert result.returncode == 1 and f"the CA file must be beside {node.path}, not '{victim}'" in result.stderr
    assert victim.read_bytes() == b"not edge-registry's\n"
    assert node.content() == before and node.server.restarts() == ["systemctl restart --no-block k3s"]


# --------------------------------------------------------------------------- the directories above


@pytest.mark.parametrize("how", ["group-writable", "like /tmp", "another user's", "a directory further up"])
def test_a_file_in_a_directory_another_user_could_change_is_never_written(node: Node, how: str) -> None:
    node.path.write_bytes(FOREIGN)
    k3s, top = node.path.parent, node.path.parent.parent
    target, why = {
        "group-writable": (k3s, "is writable by its group or by others (mode 775)"),
        "like /tmp": (k3s, "is writable by its group or by others (mode 1777)"),
        "another user's": (k3s, f"is owned by uid {OTHER_UID}, not root"),
        "a directory further up": (top, "is writable by its group or by others (mode 777)"),
    }[how]
    change = {"group-writable": "chmod 0775", "like /tmp": "chmod 1777", "another user's": f"chown {OTHER_UID}",
              "a directory further up": "chmod 0777"}[how]
    root_sh(node, f"{change} {shlex.quote(str(target))}")
    result = node.up()
    assert result.returncode == 1
    assert f"the directory {target} {why}: edge-registry writes {node.path} there as root" in result.stderr
    assert "Nothing was changed" in result.stderr
    assert node.content() == FOREIGN and not node.side.exists()
    assert listing(k3s) == ["registries.yaml"] and node.server.restarts() == []
    # written once the directory is root's alone again; then destroy refuses the same way
    root_sh(node, f"chmod 0755 {shlex.quote(str(target))} && chown 0 {shlex.quote(str(target))}")
    assert node.up().returncode == 0
    root_sh(node, f"{change} {shlex.quote(str(target))}")
    result = node.destroy()
    assert result.returncode == 1 and f"the directory {target} {why}" in result.stderr
    assert node.content() == merged() and node.side.exists()


def test_a_pytest_temp_dir_is_refused(server: SshServer, tmp_path: Path) -> None:
    """The rule the node tests keep their files under /var/lib for (tests/node_engine.py node_dir)."""
    subprocess.run([*sshd_as_root(), "install", "-d", "-m", "0755", "-o", "0", "-g", "0", str(tmp_path / "k3s")], check=True)
    try:
        node = Node(server, tmp_path / "k3s" / "registries.yaml")
        result = node.up()
        assert result.returncode == 1
        assert "refuses a directory another user could change (such as anything under /tmp)" in result.stderr
        assert not node.path.exists() and not node.side.exists()
    finally:
        NodePath(tmp_path / "k3s").remove_tree()


BAD_PATHS = ["{root}//k3s/registries.yaml", "{root}/k3s/./registries.yaml", "{root}/k3s/../k3s/registries.yaml",
             "{root}/k3s/registries.yaml/"]


@pytest.mark.parametrize("bad", BAD_PATHS)
def test_a_path_that_is_not_canonical_is_refused_by_the_program_and_by_the_scripts(node: Node, bad: str) -> None:
    path = bad.format(root=node.path.parent.parent)
    with pytest.raises(ValueError, match=r"path '.*': not a canonical path"):
        node.args(path=path)
    # the scripts refuse it too (a command built without the program's check), creating nothing
    payload = node.plan()["stdin"]
    for command, stdin in (
        (commands.read_command(path, node.server.user), ""),
        (commands.apply_command(path, "k3s", "systemd", 2, node.server.user), payload),
        (commands.destroy_command(path, "k3s", "systemd", 2, node.server.user), ""),
    ):
        result = node.server.ssh(command, stdin)
        assert result.returncode == 1 and f"{path} is not a canonical path" in result.stderr, result.stderr
    assert listing(node.path.parent) == [] and node.server.restarts() == []


# --------------------------------------------------------------------------- temp files


def _password_files(node: Node, password: str) -> list[str]:
    """Files on the node that hold ``password``, but for the file itself and edge-registry's record
    (root 0700): the /tmp/tmp.* stages of the versions before, and the node's directory."""
    found = node.server.ssh_as_root(
        f"grep -rlF {shlex.quote(password)} /tmp/tmp.* {shlex.quote(str(node.path.parent))} 2>/dev/null || true"
    ).stdout.split()
    return sorted(p for p in found if p != str(node.path) and not p.startswith(f"{node.side}/"))


def test_a_client_killed_while_sending_leaves_nothing_and_changes_nothing(node: Node) -> None:
    password = f"pw-{uuid.uuid4().hex}"
    node.path.write_bytes(FOREIGN)
    apply = node.plan(username="u", password=password)
    argv = ["ssh", "-F", "/dev/null", "-T", "-i", str(node.server.client_key), "-o", "IdentitiesOnly=yes",
            "-o", "BatchMode=yes", "-o", f"UserKnownHostsFile={node.server.root / 'known_hosts'}",
            "-o", "LogLevel=ERROR", "-p", str(node.server.port), f"{node.server.user}@127.0.0.1", apply["create"]]
    client = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert client.stdin is not None
    half = apply["stdin"][: len(apply["stdin"]) // 2]
    client.stdin.write(half.encode())
    client.stdin.flush()
    deadline = time.monotonic() + 20
    while not (node.side / "stage" / "content.b64").exists():  # the script is receiving, locked
        assert time.monotonic() < deadline and client.poll() is None
        time.sleep(0.1)
    client.send_signal(signal.SIGKILL)
    client.wait()
    deadline = time.monotonic() + 20
    while node.side.exists():  # the script sees the end of its input and cleans up
        assert time.monotonic() < deadline, listing(node.side)
        time.sleep(0.1)
    assert node.content() == FOREIGN and listing(node.path.parent) == ["registries.yaml"]
    assert _password_files(node, password) == [] and node.server.restarts() == []
    assert node.up(username="u", password=password).returncode == 0  # nothing holds the lock


def test_a_script_killed_mid_write_leaves_the_password_only_root_can_read_and_the_next_run_removes_it(
    node: Node,
) -> None:
    password = f"pw-{uuid.uuid4().hex}"
    node.path.write_bytes(FOREIGN)
    apply = node.plan(username="u", password=password)
    node.server.kill_on_sync(f"{node.path.parent}/.registries.yaml.edge-registry.*")
    assert node.run_apply(apply).returncode != 0
    # what it left: its stage inside the record (root 0700) and the temp file beside the file (as
    # the file will be: root, no access for others), nothing in /tmp
    temp = [p for p in node.path.parent.iterdir() if p.name.startswith(".registries.yaml.edge-registry.")]
    assert _password_files(node, password) == [str(p) for p in temp] and len(temp) == 1
    assert "content" in listing(node.side / "stage")
    for leftover in [node.side, node.side / "stage", *temp]:
        info = leftover.stat()
        assert info.st_uid == 0 and stat.S_IMODE(info.st_mode) & 0o007 == 0, leftover
    node.server.reset_service()
    result = node.up(username="u", password=password)
    assert result.returncode == 0, result.stderr
    assert "stage" not in listing(node.side)
    assert [n for n in listing(node.path.parent) if ".edge-registry." in n] == []
    assert _password_files(node, password) == []


def test_the_next_run_removes_the_tmp_stages_of_the_versions_before(node: Node) -> None:
    """Before this version the payload was staged in ``mktemp -d``: a killed run left it in /tmp."""
    password = f"pw-{uuid.uuid4().hex}"
    make = ("d=$(mktemp -d) && printf %s {fill} > $d/content.b64 && : > $d/owned.b64 && {extra} echo $d")
    aged = "touch -d '2 hours ago' $d &&"
    theirs = root_sh(node, make.format(fill=shlex.quote(password), extra=aged)).strip()
    # A fresh one may belong to a run of the old version still going (on another path): kept.
    fresh = root_sh(node, make.format(fill="y", extra="")).strip()
    not_ours = root_sh(node, make.format(fill="x", extra=f"chown -R {OTHER_UID} $d && {aged}")).strip()
    unrelated = root_sh(node, "d=$(mktemp -d) && : > $d/content.b64 && touch -d '2 hours ago' $d && echo $d").strip()
    try:
        assert node.up().returncode == 0
        assert not NodePath(theirs).exists()
        assert NodePath(fresh).exists() and NodePath(not_ours).exists() and NodePath(unrelated).exists()
    finally:
        root_sh(node, f"rm -rf {theirs} {fresh} {not_ours} {unrelated}")


# --------------------------------------------------------------------------- owner and mode


@pytest.mark.parametrize(("owner", "mode", "written"), [(0, 0o644, 0o640), (OTHER_UID, 0o660, 0o660), (0, 0o600, 0o600)])
def test_the_file_keeps_its_owner_and_mode_and_destroy_puts_them_back(node: Node, owner: int, mode: int, written: int) -> None:
    node.path.write_bytes(FOREIGN)
    root_sh(node, f"chown {owner}:{owner} {node.path} && chmod {mode:o} {node.path}")
    assert node.up().returncode == 0
    info = node.path.stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (owner, owner, written)
    assert node.up("10.43.0.12:80").returncode == 0  # a second write keeps them too
    info = node.path.stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (owner, owner, written)
    assert node.destroy().returncode == 0
    info = node.path.stat()
    assert node.content() == FOREIGN
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (owner, owner, mode)


def test_a_failed_start_puts_back_the_previous_owner_and_mode(node: Node) -> None:
    node.path.write_bytes(FOREIGN)
    root_sh(node, f"chown {OTHER_UID}:0 {node.path} && chmod 0644 {node.path}")
    node.server.fail_next_starts(1)
    result = node.up()
    assert result.returncode == 1 and "k3s is active again" in result.stderr
    info = node.path.stat()
    assert node.content() == FOREIGN
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (OTHER_UID, 0, 0o644)


# --------------------------------------------------------------------------- the upgrade


def _before_this_version(node: Node, script: str, args: list[str], tmpdir: str) -> str:
    """The command an older edge-registry stored: its scripts (tests/fixtures/node_scripts_before_lock),
    staging in ``tmpdir`` (so that this suite's own runs never take its stage for a leftover)."""
    program = "\n".join([f"TMPDIR={tmpdir}; export TMPDIR", (FIXTURES / "common.sh").read_text(),
                         (FIXTURES / script).read_text()])
    command = " ".join(["/bin/sh", "-c", shlex.quote(program), f"edge-registry-{script[:-3]}", *args])
    return command if node.server.user == "root" else f"exec sudo -n {command}"


def test_a_node_converged_by_the_version_before_is_left_as_it_is(node: Node) -> None:
    node.path.write_bytes(FOREIGN)
    node.path.chmod(0o644)
    tmpdir = node.path.parent.parent / "tmp"
    root_sh(node, f"install -d -m 0700 {tmpdir}")
    args = [str(node.path), "k3s", "systemd", "2"]
    apply = node.plan()
    stored = {**apply, "create": _before_this_version(node, "apply.sh", args, str(tmpdir))}
    old = node.server.ssh(stored["create"], stored["stdin"])
    assert old.returncode == 0, old.stderr
    node.stored = stored  # what the engine keeps of the older version's apply
    assert node.content() == merged() and stat.S_IMODE(node.path.stat().st_mode) == 0o600
    file_before = node.path.stat()
    record_before = {p.name: p.stat().st_mtime_ns for p in node.side.iterdir()}
    node.server.reset_service()
    # this version's command differs (the scripts travel in it): the engine runs it once
    assert node.preview() == "update"
    result = node.up()
    assert result.returncode == 0, result.stderr
    assert "unchanged; k3s not restarted" in result.stdout
    after = node.path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (file_before.st_ino, file_before.st_mtime_ns)
    assert node.server.restarts() == []
    record_after = {p.name: p.stat().st_mtime_ns for p in node.side.iterdir()}
    assert {n: t for n, t in record_after.items() if n in record_before} == record_before
    assert set(record_after) - set(record_before) == {"lock"}
    assert node.preview() == "same"
    # destroy gives back the bytes; a record without the owner and mode puts the file back root 0600
    assert node.destroy().returncode == 0
    info = node.path.stat()
    assert node.content() == FOREIGN and (info.st_uid, stat.S_IMODE(info.st_mode)) == (0, 0o600)
