"""A real OpenSSH server on 127.0.0.1 for the node tests, with a fake service manager.

``SshServer`` starts ``sshd -D -f <own config>`` on a random high port with its own host
key and accepts one throwaway client key (both made with ``ssh-keygen``), loopback only.
The server puts ``fakebin/`` first on the session PATH (sshd ``SetEnv``), which holds:

* ``systemctl`` / ``journalctl`` / ``rc-service``: record every call in ``state/calls``;
  a restart starts a new "invocation" and fails when ``state/fail-starts`` (a counter) is
  above zero;
* ``sync``: when ``state/kill-on-sync`` holds a glob matching its argument, it kills its
  parent (the node script) with SIGKILL, to cut a write off at that point.

Needs root (the node scripts chown to root), ``/usr/sbin/sshd`` and ``ssh-keygen``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

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

JOURNAL = """Jan 01 00:00:01 node k3s[4242]: time="2025-01-01T00:00:01Z" level=info msg="Starting k3s"
Jan 01 00:00:02 node k3s[4242]: time="2025-01-01T00:00:02Z" level=fatal msg="failed to load registries.yaml: yaml: unmarshal errors: FAKE-JOURNAL-MARKER"
"""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SshServer:
    """sshd on 127.0.0.1:<port> for the current user (root), torn down by :meth:`stop`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.user = "root"
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
        fakes = (("systemctl", FAKE_SYSTEMCTL), ("journalctl", FAKE_JOURNALCTL), ("rc-service", FAKE_RC_SERVICE),
                 ("sync", FAKE_SYNC))
        for name, text in fakes:
            script = self.fakebin / name
            script.write_text(text.format(state=self.state))
            script.chmod(0o755)
        (self.state / "journal").write_text(JOURNAL)
        self.reset_service()
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation dir

        for _attempt in range(5):
            self.port = _free_port()
            config = self.root / "sshd_config"
            config.write_text(
                "\n".join([
                    f"Port {self.port}",
                    "ListenAddress 127.0.0.1",
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
            (self.root / "known_hosts").write_text(f"[127.0.0.1]:{self.port} {self.host_public_key}\n")
            self._process = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self._process.poll() is None:
                if self.ssh("true", timeout=5).returncode == 0:
                    return self
                time.sleep(0.1)
            self.stop()
        raise RuntimeError("sshd did not start on 127.0.0.1")

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
            "-p", str(self.port), f"{self.user}@127.0.0.1", command,
        ]
        return subprocess.run(
            argv, input=stdin if stdin is not None else "", capture_output=True, text=True, timeout=timeout
        )

    # ------------------------------------------------------------------ fake service manager

    def reset_service(self) -> None:
        """Unit active, no calls recorded, no failure or kill armed."""
        (self.state / "calls").write_text("")
        (self.state / "invocation").write_text("1\n")
        (self.state / "fail-starts").write_text("0\n")
        (self.state / "active").write_text("active\n")
        for control in ("kill-on-sync", "kill-on-restart"):
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


def can_run() -> str | None:
    """Why these tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root: the node scripts chown to root and sshd runs as root"
    for tool in (SSHD, shutil.which("ssh"), shutil.which("ssh-keygen")):
        if not tool or not os.access(tool, os.X_OK):
            return "needs openssh-server and openssh-client (apt-get install openssh-server openssh-client)"
    return None
