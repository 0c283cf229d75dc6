"""A real OpenSSH server on 127.0.0.1 for the node tests, with a fake service manager.

``SshServer`` starts ``sshd -D -f <own config>`` on a random high port with its own host
key and accepts one throwaway client key (both made with ``ssh-keygen``), loopback only.
The server puts ``fakebin/`` first on the session PATH (sshd ``SetEnv``), which holds:

* ``systemctl`` / ``journalctl`` / ``rc-service``: record every call in ``state/calls``;
  a restart starts a new "invocation" and fails when ``state/fail-starts`` (a counter) is
  above zero;
* ``sync``: when ``state/kill-on-sync`` holds a glob matching its argument, it kills its
  parent (the node script) with SIGKILL, to cut a write off at that point.

* ``sudo`` (only when the tests run as a non-root user): the real ``sudo -n``, with the session
  PATH kept so the fakes above stay first (sudo's ``secure_path`` would drop ``fakebin/``); each
  call is recorded in ``state/sudo-calls``.

As root, sshd runs as root and the node user is root, as on a node reached as root. As a non-root
user with passwordless ``sudo`` (a GitHub-hosted runner), sshd runs as that user and the node user
is that user: the node scripts then go through ``sudo -n``, which is the product's own path for a
non-root SSH user. :class:`NodePath` reads and changes the files the scripts leave root-owned
(mode 0600) directly as root and through ``sudo -n`` otherwise.

Needs ``/usr/sbin/sshd``, ``ssh-keygen``, and root or passwordless ``sudo``.
"""

from __future__ import annotations

import base64
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator

SSHD = "/usr/sbin/sshd"

FAKE_SYSTEMCTL = """#!/bin/sh
S={state}
echo "systemctl $*" >> "$S/calls"
case $1 in
  restart)
    [ ! -f "$S/kill-on-restart" ] || {{ rm -f "$S/kill-on-restart"; kill -9 "$PPID"; exit 0; }}
    n=$(cat "$S/invocation"); echo $((n + 1)) > "$S/invocation"
    fails=$(cat "$S/fail-starts")
    if [ "$fails" -gt 0 ]; then echo $((fails - 1)) > "$S/fail-starts"; echo failed > "$S/active"
    else echo active > "$S/active"; fi ;;
  is-active) state=$(cat "$S/active"); echo "$state"; [ "$state" = active ] ;;
  show) echo "InvocationID=inv$(cat "$S/invocation")" ;;
  *) echo "fake systemctl: unsupported $*" >&2; exit 1 ;;
esac
"""

FAKE_RC_SERVICE = """#!/bin/sh
S={state}
echo "rc-service $*" >> "$S/calls"
case $2 in
  restart)
    fails=$(cat "$S/fail-starts")
    if [ "$fails" -gt 0 ]; then echo $((fails - 1)) > "$S/fail-starts"; echo failed > "$S/active"; exit 1; fi
    echo active > "$S/active" ;;
  status) [ "$(cat "$S/active")" = active ] ;;
  *) echo "fake rc-service: unsupported $*" >&2; exit 1 ;;
esac
"""

FAKE_JOURNALCTL = """#!/bin/sh
S={state}
echo "journalctl $*" >> "$S/calls"
cat "$S/journal"
"""

FAKE_SYNC = """#!/bin/sh
S={state}
if [ -f "$S/kill-on-sync" ]; then
  pattern=$(cat "$S/kill-on-sync")
  case $1 in $pattern) rm -f "$S/kill-on-sync"; echo "killed at sync $1" >> "$S/calls"; kill -9 "$PPID"; exit 0 ;; esac
fi
exec /bin/sync "$@"
"""

FAKE_SUDO = """#!/bin/sh
S={state}
case "$1 $2 $3" in
  "-n /bin/sh -c") echo "sudo -n /bin/sh -c <script> $(shift 4; echo "$*")" ;;
  *) echo "sudo $*" ;;
esac >> "$S/sudo-calls"
[ "$1" = -n ] && shift
exec /usr/bin/sudo -n /usr/bin/env "PATH=$PATH" "$@"
"""

JOURNAL = """Jan 01 00:00:01 node k3s[4242]: time="2025-01-01T00:00:01Z" level=info msg="Starting k3s"
Jan 01 00:00:02 node k3s[4242]: time="2025-01-01T00:00:02Z" level=fatal msg="failed to load registries.yaml: yaml: unmarshal errors: FAKE-JOURNAL-MARKER"
"""


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def running_as_root() -> bool:
    """Whether the tests run as root (else: a user with passwordless sudo)."""
    return os.geteuid() == 0


class SshServer:
    """sshd on 127.0.0.1:<port> for the current user, torn down by :meth:`stop`.

    ``host``: another loopback address to listen on (127.0.0.2, ...), so that several nodes of
    one site, whose hosts must differ, each have a server of their own.
    """

    def __init__(self, root: Path, host: str = "127.0.0.1") -> None:
        self.root = root
        self.host = host
        self.user = pwd.getpwuid(os.geteuid()).pw_name
        self.state = root / "state"
        self.fakebin = root / "fakebin"
        self.port = 0
        self.host_public_key = ""
        self.client_key = root / "client_ed25519"
        self.client_private_key = ""
        self._process: subprocess.Popen[bytes] | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> SshServer:
        """Make keys, config and fakes, start sshd, wait until a login works."""
        for directory in (self.state, self.fakebin):
            directory.mkdir(parents=True, exist_ok=True)
        host_key = self.root / "host_ed25519"
        for key in (host_key, self.client_key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        self.host_public_key = (self.root / "host_ed25519.pub").read_text().strip()
        self.client_private_key = self.client_key.read_text()
        shutil.copy(self.root / "client_ed25519.pub", self.root / "authorized_keys")
        fakes = [("systemctl", FAKE_SYSTEMCTL), ("journalctl", FAKE_JOURNALCTL), ("rc-service", FAKE_RC_SERVICE),
                 ("sync", FAKE_SYNC)]
        if not running_as_root():
            fakes.append(("sudo", FAKE_SUDO))
        for name, text in fakes:
            script = self.fakebin / name
            script.write_text(text.format(state=self.state))
            script.chmod(0o755)
        (self.state / "journal").write_text(JOURNAL)
        self.reset_service()
        if not Path("/run/sshd").is_dir():  # privilege separation dir
            subprocess.run([*as_root(), "mkdir", "-p", "-m", "0755", "/run/sshd"], check=True)

        for _attempt in range(5):
            self.port = _free_port(self.host)
            config = self.root / "sshd_config"
            config.write_text(
                "\n".join([
                    f"Port {self.port}",
                    f"ListenAddress {self.host}",
                    f"HostKey {host_key}",
                    f"PidFile {self.root / 'sshd.pid'}",
                    f"AuthorizedKeysFile {self.root / 'authorized_keys'}",
                    "PermitRootLogin prohibit-password",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "UsePAM no",
                    "StrictModes no",
                    # fakebin first on PATH; SHLVL=1 makes bash skip ~/.bashrc (it is then not the
                    # top-level shell): fast logins, like a minimal node. One line: sshd keeps
                    # only the first SetEnv directive.
                    f"SetEnv PATH={self.fakebin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
                    " SHLVL=1",
                    "LogLevel ERROR",
                    "",
                ])
            )
            (self.root / "known_hosts").write_text(f"[{self.host}]:{self.port} {self.host_public_key}\n")
            self._process = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            if self._answers():
                return self
        raise RuntimeError(f"sshd did not start on {self.host}")

    def _answers(self) -> bool:
        """Whether the sshd just started answers a login within 10 s; stopped if it does not."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self._process is not None and self._process.poll() is None:
            if self.ssh("true", timeout=5).returncode == 0:
                return True
            time.sleep(0.1)
        self.stop()
        return False

    @property
    def running(self) -> bool:
        """Whether the sshd this object started is running."""
        return self._process is not None and self._process.poll() is None

    def resume(self) -> SshServer:
        """Start sshd again after :meth:`stop`, on the same port with the same keys and config
        (a node that was unreachable for a while)."""
        self._process = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(self.root / "sshd_config")], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if self._answers():
            return self
        raise RuntimeError(f"sshd did not start again on {self.host}:{self.port}")

    def stop(self) -> None:
        """Terminate the sshd this object started (only that process)."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    # ------------------------------------------------------------------ client

    def ssh(self, command: str, stdin: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run ``command`` as the remote command string (like pulumi-command does), ``stdin`` on stdin."""
        argv = [
            "ssh", "-F", "/dev/null", "-T",
            "-i", str(self.client_key), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
            "-o", f"UserKnownHostsFile={self.root / 'known_hosts'}", "-o", "StrictHostKeyChecking=yes",
            "-o", "LogLevel=ERROR", "-o", "KexAlgorithms=curve25519-sha256",  # as Go x/crypto/ssh; PQ kex is slow
            "-p", str(self.port), f"{self.user}@{self.host}", command,
        ]
        return subprocess.run(
            argv, input=stdin if stdin is not None else "", capture_output=True, text=True, timeout=timeout
        )

    def ssh_as_root(self, command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run ``command`` on the node as root: through ``sudo -n`` when the node user is not root."""
        if self.user == "root":
            return self.ssh(command, timeout=timeout)
        return self.ssh(f"sudo -n sh -c {_quote(command)}", timeout=timeout)

    def sudo_calls(self) -> list[str]:
        """The ``sudo`` calls the node user made (empty as root)."""
        calls = self.state / "sudo-calls"
        return calls.read_text().splitlines() if calls.exists() else []

    # ------------------------------------------------------------------ fake service manager

    def reset_service(self) -> None:
        """Unit active, no calls recorded, no failure or kill armed."""
        (self.state / "calls").write_text("")
        (self.state / "invocation").write_text("1\n")
        (self.state / "fail-starts").write_text("0\n")
        (self.state / "active").write_text("active\n")
        for control in ("kill-on-sync", "kill-on-restart", "sudo-calls"):
            (self.state / control).unlink(missing_ok=True)

    def calls(self) -> list[str]:
        """Every fake service-manager call so far, one line each."""
        return (self.state / "calls").read_text().splitlines()

    def restarts(self) -> list[str]:
        """The ``systemctl restart …`` calls so far."""
        return [c for c in self.calls() if c.startswith("systemctl restart") or c.endswith(" restart")]

    def fail_next_starts(self, count: int) -> None:
        """The next ``count`` restarts leave the unit failed."""
        (self.state / "fail-starts").write_text(f"{count}\n")

    def kill_on_sync(self, glob: str) -> None:
        """SIGKILL the node script when it flushes a file whose path matches ``glob``."""
        (self.state / "kill-on-sync").write_text(glob)

    def kill_on_restart(self) -> None:
        """SIGKILL the node script when it asks for the next restart."""
        (self.state / "kill-on-restart").write_text("")


def running_server(tmp_path_factory: Any) -> Iterator[SshServer]:
    """The body of a test module's sshd fixture: a started server, stopped afterwards; skipped
    when none can run here (a failure when EDGE_REGISTRY_REQUIRE_SERVERS is set, as in CI)."""
    import pytest

    reason = can_run()
    if reason:
        if os.environ.get("EDGE_REGISTRY_REQUIRE_SERVERS"):
            pytest.fail(f"{reason}; EDGE_REGISTRY_REQUIRE_SERVERS is set")
        pytest.skip(reason)
    ssh_server = SshServer(tmp_path_factory.mktemp("sshd")).start()
    yield ssh_server
    ssh_server.stop()


def can_run() -> str | None:
    """Why these tests cannot run here, or None."""
    for tool in (SSHD, shutil.which("ssh"), shutil.which("ssh-keygen")):
        if not tool or not os.access(tool, os.X_OK):
            return "needs openssh-server and openssh-client (apt-get install openssh-server openssh-client)"
    if not running_as_root():
        sudo = subprocess.run(["sudo", "-n", "true"], capture_output=True) if shutil.which("sudo") else None
        if sudo is None or sudo.returncode != 0:
            return "needs root, or passwordless sudo: the node scripts make their files root-owned"
    return None


def as_root() -> list[str]:
    """The prefix that runs a command as root: nothing as root, ``sudo -n`` otherwise."""
    return [] if running_as_root() else ["sudo", "-n"]


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


# ---------------------------------------------------------------------- root-owned files


def _file_op(op: str, path: str, argument: Any) -> Any:
    """One file operation, as JSON-able values (run in-process as root, or under sudo)."""
    target = Path(path)
    if op == "exists":
        return target.exists()
    if op == "read":
        return base64.b64encode(target.read_bytes()).decode()
    if op == "write":
        target.write_bytes(base64.b64decode(argument))
        return None
    if op == "stat":
        info = target.stat()
        return [info.st_mode, info.st_uid, info.st_gid, info.st_ino, info.st_mtime_ns]
    if op == "list":
        return sorted(p.name for p in target.iterdir())
    if op == "chmod":
        target.chmod(argument)
        return None
    if op == "unlink":
        target.unlink()
        return None
    if op == "rmtree":
        shutil.rmtree(target, ignore_errors=True)
        return None
    raise ValueError(f"unknown file operation {op}")


def _as_root_file_op(op: str, path: str, argument: Any = None) -> Any:
    if running_as_root():
        return _file_op(op, path, argument)
    done = subprocess.run(
        ["sudo", "-n", sys.executable, "-m", "tests.sshd", op, path],
        input=json.dumps(argument), capture_output=True, text=True, timeout=30,
        cwd=Path(__file__).resolve().parent.parent,
    )
    if done.returncode != 0:
        raise OSError(f"sudo {op} {path}: {done.stderr.strip()}")
    return json.loads(done.stdout)


class NodePath:
    """A path on the test node, with the pathlib calls the tests use, run as root."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __str__(self) -> str:
        return str(self.path)

    def __fspath__(self) -> str:
        return str(self.path)

    def __truediv__(self, other: str) -> NodePath:
        return NodePath(self.path / other)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NodePath) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def parent(self) -> NodePath:
        return NodePath(self.path.parent)

    def exists(self) -> bool:
        return bool(_as_root_file_op("exists", str(self.path)))

    def read_bytes(self) -> bytes:
        return base64.b64decode(_as_root_file_op("read", str(self.path)))

    def write_bytes(self, data: bytes) -> None:
        _as_root_file_op("write", str(self.path), base64.b64encode(data).decode())

    def stat(self) -> Any:
        mode, uid, gid, ino, mtime_ns = _as_root_file_op("stat", str(self.path))
        return SimpleNamespace(st_mode=mode, st_uid=uid, st_gid=gid, st_ino=ino, st_mtime_ns=mtime_ns)

    def iterdir(self) -> Iterator[NodePath]:
        return iter([self / name for name in _as_root_file_op("list", str(self.path))])

    def chmod(self, mode: int) -> None:
        _as_root_file_op("chmod", str(self.path), mode)

    def unlink(self) -> None:
        _as_root_file_op("unlink", str(self.path))

    def remove_tree(self) -> None:
        """Remove this directory and everything in it (the scripts' files included)."""
        _as_root_file_op("rmtree", str(self.path))


if __name__ == "__main__":
    # `sudo -n python -m tests.sshd OP PATH` (argument as JSON on stdin): see _as_root_file_op.
    print(json.dumps(_file_op(sys.argv[1], sys.argv[2], json.loads(sys.stdin.read() or "null"))))
