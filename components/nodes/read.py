"""Read every node's registries.yaml and edge-registry's record of it, while the program runs.

Under ``pulumi preview`` and ``pulumi up`` alike, before any node resource is declared, the
site reads all its (not gone) nodes in parallel over SSH with paramiko: the same host, port,
user and key as the write, the host key checked when ``hostKey`` is pinned, ``sudo -n`` for a
user other than root, and ``scripts/read.sh`` as the script. Connect and command time are
bounded, so a dead node costs seconds. What was read is plain data the apply payload is
computed from (components/nodes/plan.py), so previews can diff it (docs/nodes.md).

:func:`check_read` then looks at what was read: a file whose part edge-registry does not own
is not a valid k3s registries.yaml is a :class:`NodeFileInvalid`, reported like a node that
could not be read (a preview warns and plans no write for it, ``up`` stops), and never
written over.

The reader is injectable: the site takes any :class:`NodeReader`; the offline renderer passes
its fakes (components/preview/fakes.py) unless asked to read the real nodes.
"""

from __future__ import annotations

import base64
import binascii
import importlib
import io
import logging
import os
import socket
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from components.nodes.commands import read_command
from components.nodes.payload import NodeMirrorError, NodeRead, parse_read_output
from components.nodes.plan import foreign_problem

__all__ = [
    "NodeFileInvalid",
    "NodeReadFailure",
    "NodeReader",
    "NodeTarget",
    "ReadResult",
    "SshNodeReader",
    "check_read",
    "load_private_key",
]

if TYPE_CHECKING:
    # paramiko (with invoke, PyNaCl and cryptography) is imported where a node is really read
    # over SSH: the offline render's fake reader reads none, so the render never loads it.
    import paramiko


@dataclass(frozen=True)
class NodeTarget:
    """Where and how to read one node: what the write uses too."""

    host: str
    port: int
    user: str
    path: str
    host_key: str | None = None
    command: str | None = None
    """The read command, when not scripts/read.sh run as ``user`` (with ``sudo -n`` unless
    root): a preview reading as the read-only account runs its installed script instead."""


@dataclass(frozen=True)
class NodeReadFailure:
    """A node that could not be read; ``reason`` names what failed (no secrets)."""

    host: str
    reason: str
    unreachable: bool
    """True when the node did not answer (down, no route, timeout): the way out is ``gone``
    or a retry. False when it answered but the answer is unusable (host key, sudo, output)."""


@dataclass(frozen=True)
class NodeFileInvalid(NodeReadFailure):
    """A node that was read, but whose file cannot be merged into: ``reason`` says what is wrong
    with the part edge-registry does not own (keys and types, no values). Never ``unreachable``:
    the way out is fixing the file on the node (or ``gone``)."""


ReadResult = NodeRead | NodeReadFailure
"""What reading one node gave."""


def check_read(host: str, result: ReadResult) -> ReadResult:
    """``result``, or a :class:`NodeFileInvalid` when it is a read of a file the merge cannot keep."""
    if not isinstance(result, NodeRead):
        return result
    problem = foreign_problem(result)
    return result if problem is None else NodeFileInvalid(host, problem, False)


class NodeReader(Protocol):
    """Reads nodes; returns one result per target, keyed by host."""

    def read_nodes(
        self, targets: Sequence[NodeTarget], private_key: str | None, use_agent: bool = False
    ) -> Mapping[str, ReadResult]:
        """Read every target (in parallel for a real reader); ``use_agent``: authenticate with the
        SSH agent at ``$SSH_AUTH_SOCK`` instead of ``private_key`` (config ``sshAgent``)."""
        ...


# paramiko logs a dead node's banner timeout with a traceback; the failure is reported as a
# NodeReadFailure instead, so keep its log out of the program's output.
_PARAMIKO_LOG = logging.getLogger("paramiko")
_PARAMIKO_LOG.addHandler(logging.NullHandler())
_PARAMIKO_LOG.propagate = False


def load_private_key(text: str) -> paramiko.PKey:
    """An OpenSSH/PEM private key (ed25519, ecdsa or rsa, unencrypted) from its text."""
    import paramiko

    key_classes: tuple[type[paramiko.PKey], ...] = (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey)
    for key_class in key_classes:
        try:
            return key_class.from_private_key(io.StringIO(text))
        except (paramiko.SSHException, ValueError):
            continue
    raise ValueError("the SSH private key is not an unencrypted ed25519, ecdsa or rsa key")


def _host_key(line: str) -> paramiko.PKey:
    """The key of an OpenSSH public key line (``ssh-ed25519 AAAA… [comment]``)."""
    import paramiko

    parts = line.split()
    try:
        return paramiko.PKey.from_type_string(parts[0], base64.b64decode(parts[1]))
    except (IndexError, binascii.Error, paramiko.SSHException, ValueError) as exc:
        raise ValueError(f"hostKey is not a usable public key: {exc}") from None


class SshNodeReader:
    """Reads nodes over SSH (paramiko), in parallel, with bounded timeouts.

    :param connect_timeout: seconds for TCP connect, SSH banner and authentication each.
    :param command_timeout: seconds the read script may take (it reads a few small files).
    :param max_workers: nodes read at the same time.
    """

    def __init__(self, connect_timeout: float = 10, command_timeout: float = 30, max_workers: int = 16) -> None:
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.max_workers = max_workers

    def read_nodes(
        self, targets: Sequence[NodeTarget], private_key: str | None, use_agent: bool = False
    ) -> dict[str, ReadResult]:
        """Read every target in parallel; a failure is a :class:`NodeReadFailure`, never an exception."""
        if not targets:
            return {}
        key: paramiko.PKey | None = None
        if use_agent:
            if not os.environ.get("SSH_AUTH_SOCK"):
                reason = "sshAgent is set but SSH_AUTH_SOCK is not: start an agent and add the node key"
                return {t.host: NodeReadFailure(t.host, reason, False) for t in targets}
        elif not private_key:
            return {t.host: NodeReadFailure(t.host, "no SSH private key (sshPrivateKey)", False) for t in targets}
        else:
            try:
                key = load_private_key(private_key)
            except ValueError as exc:
                return {t.host: NodeReadFailure(t.host, str(exc), False) for t in targets}
        importlib.import_module("paramiko")  # once, here, before the worker threads use it
        with ThreadPoolExecutor(max_workers=min(self.max_workers, len(targets))) as pool:
            results = list(pool.map(lambda t: self.read_one(t, key), targets))
        return {t.host: r for t, r in zip(targets, results, strict=True)}

    def read_one(self, target: NodeTarget, key: paramiko.PKey | None) -> ReadResult:
        """Read one node (``key`` None: with the SSH agent)."""
        import paramiko

        client = paramiko.SSHClient()
        try:
            if target.host_key:
                name = target.host if target.port == 22 else f"[{target.host}]:{target.port}"
                pinned = _host_key(target.host_key)
                client.get_host_keys().add(name, pinned.get_name(), pinned)
                client.set_missing_host_key_policy(paramiko.RejectPolicy())
            else:
                # Not pinned: not checked, like the write (the site warns about it).
                client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
            try:
                client.connect(
                    target.host, port=target.port, username=target.user, pkey=key,
                    timeout=self.connect_timeout, banner_timeout=self.connect_timeout,
                    auth_timeout=self.connect_timeout, channel_timeout=self.connect_timeout,
                    allow_agent=key is None, look_for_keys=False,
                )
            except paramiko.BadHostKeyException:
                return NodeReadFailure(target.host, "the SSH host key does not match the pinned hostKey", False)
            except paramiko.AuthenticationException:
                how = "the SSH agent's keys" if key is None else "sshPrivateKey"
                return NodeReadFailure(target.host, f"SSH login as {target.user} with {how} was refused", False)
            except paramiko.SSHException as exc:
                if "not found in known_hosts" in str(exc):
                    return NodeReadFailure(target.host, "the SSH host key does not match the pinned hostKey", False)
                # A port that accepts but never speaks SSH (a hung node): paramiko's banner wait
                # ends in "Error reading SSH protocol banner" / "No existing session".
                return NodeReadFailure(
                    target.host,
                    f"no SSH answer from {target.host}:{target.port} within {self.connect_timeout:g}s ({exc})",
                    True,
                )
            except paramiko.ssh_exception.NoValidConnectionsError:
                return NodeReadFailure(target.host, f"cannot connect to {target.host}:{target.port}: connection refused", True)
            except (OSError, EOFError) as exc:  # no route, DNS, timeout
                return NodeReadFailure(target.host, f"cannot connect to {target.host}:{target.port}: {exc}", True)
            return self._run_read(client, target)
        except ValueError as exc:
            return NodeReadFailure(target.host, str(exc), False)
        finally:
            client.close()

    def _run_read(self, client: paramiko.SSHClient, target: NodeTarget) -> ReadResult:
        import paramiko

        try:
            stdin, stdout, stderr = client.exec_command(
                target.command or read_command(target.path, target.user), timeout=self.command_timeout
            )
            stdin.close()
            out = stdout.read().decode("utf-8", "replace")
            err = stderr.read().decode("utf-8", "replace")
            status = stdout.channel.recv_exit_status()
        except (socket.timeout, TimeoutError):
            return NodeReadFailure(target.host, f"the read did not finish within {self.command_timeout:g}s", True)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            return NodeReadFailure(target.host, f"the SSH session failed: {exc}", True)
        if status != 0:
            last = err.strip().splitlines()[-1] if err.strip() else f"exit status {status}"
            return NodeReadFailure(target.host, f"reading {target.path} failed: {last}", False)
        try:
            return parse_read_output(out.removesuffix("\n"))
        except NodeMirrorError as exc:
            return NodeReadFailure(target.host, f"{target.path}: {exc}", False)
