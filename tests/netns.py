"""A throw-away network namespace with only a loopback interface, for servers on a "real" ClusterIP.

The site registry serves on its pinned ClusterIP (e.g. 10.43.200.200:443), and its certificate
names that IP. To test the real handshake without touching the machine's network, the test makes a
namespace (``ip netns add``), brings its ``lo`` up and adds the IP there: nothing inside can reach
anything outside, and nothing outside sees it. Commands run inside with ``ip netns exec``.

Needs iproute2 and root; a non-root user goes through ``sudo -n`` (passwordless sudo), which
resets the environment, so every command gets its environment through ``env``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

#: Set (to anything) in CI so a missing tool fails the run instead of skipping silently.
REQUIRE_ENV = "EDGE_REGISTRY_REQUIRE_SERVERS"


def privileged() -> list[str]:
    """The prefix that runs a command as root: nothing for root, ``sudo -n`` otherwise."""
    return [] if os.geteuid() == 0 else ["sudo", "-n"]


def why_not() -> str | None:
    """Why namespaces cannot be made here, or None."""
    if shutil.which("ip") is None and not os.access("/usr/sbin/ip", os.X_OK):
        return "needs iproute2 (apt-get install iproute2)"
    if os.geteuid() != 0:
        check = subprocess.run(["sudo", "-n", "true"], capture_output=True)
        if check.returncode != 0:
            return "needs root or passwordless sudo (sudo -n) to create a network namespace"
    return None


def require() -> None:
    """Skip (or fail under CI) unless a namespace can be made."""
    reason = why_not()
    if reason is not None:
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(f"{reason}; {REQUIRE_ENV} is set")
        pytest.skip(reason)


def _ip() -> str:
    return shutil.which("ip") or "/usr/sbin/ip"


@dataclass(frozen=True)
class Namespace:
    """A namespace holding ``address`` on its loopback interface."""

    name: str
    address: str

    def argv(self, command: Sequence[str], env: Mapping[str, str] | None = None) -> list[str]:
        """``command`` as run inside the namespace, as root, with exactly ``env`` (plus PATH)."""
        environment = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), **(env or {})}
        return [*privileged(), _ip(), "netns", "exec", self.name, "env", "-i",
                *(f"{k}={v}" for k, v in environment.items()), *command]

    def run(
        self, command: Sequence[str], env: Mapping[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run ``command`` inside; the caller checks the result."""
        return subprocess.run(self.argv(command, env), text=True, capture_output=True, timeout=timeout)

    def popen(self, command: Sequence[str], log: Path, env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start ``command`` inside, output to ``log``; stop it with :meth:`stop`."""
        with log.open("wb") as out:
            return subprocess.Popen(self.argv(command, env), stdout=out, stderr=subprocess.STDOUT)

    @staticmethod
    def stop(process: subprocess.Popen[bytes]) -> None:
        """Stop a process started by :meth:`popen` (through sudo when not root: sudo relays the signal)."""
        if process.poll() is None:
            if os.geteuid() == 0:
                process.terminate()
            else:
                subprocess.run([*privileged(), "kill", "-TERM", str(process.pid)], capture_output=True)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                subprocess.run([*privileged(), "kill", "-KILL", str(process.pid)], capture_output=True)
                process.wait(timeout=10)

    def give_back(self, path: Path) -> None:
        """Make files that root wrote under ``path`` the test user's again (so tmp cleanup works)."""
        if os.geteuid() != 0 and path.exists():
            subprocess.run([*privileged(), "chown", "-R", f"{os.getuid()}:{os.getgid()}", str(path)], capture_output=True)


@contextmanager
def loopback_namespace(address: str) -> Iterator[Namespace]:
    """A fresh namespace with ``lo`` up and ``address`` on it; removed afterwards."""
    name = f"edge-registry-test-{uuid.uuid4().hex[:8]}"
    run = [*privileged(), _ip()]
    subprocess.run([*run, "netns", "add", name], check=True, capture_output=True)
    try:
        subprocess.run([*run, "-n", name, "link", "set", "lo", "up"], check=True, capture_output=True)
        subprocess.run([*run, "-n", name, "addr", "add", f"{address}/32", "dev", "lo"], check=True, capture_output=True)
        yield Namespace(name, address)
    finally:
        subprocess.run([*run, "netns", "del", name], capture_output=True)
