"""Read every node's registries.yaml and edge-registry's record of it, while the program runs.

Under ``pulumi preview`` and ``pulumi up`` alike, before any node resource is declared, the
site reads all its (not gone) nodes in parallel over SSH with paramiko: the same host, port,
user and key as the write, only the pinned ``hostKey`` accepted as the host key, ``sudo -n`` for a
user other than root, and ``scripts/read.sh`` as the script. Connect and command time are
bounded, and so is the whole read of one node (:attr:`SshNodeReader.deadline`, 60 s): a
dead node costs seconds, a node that trickles bytes a minute at most. What was read is plain data the apply payload is
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
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar

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
    "run_command",
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

_T = TypeVar("_T")
#: What runs on one node once it is connected and logged in (the read, or another read-only
#: session such as the readiness check's, components/ready/): returns its result or a failure.
NodeSession = Callable[["paramiko.SSHClient", NodeTarget], "_T | NodeReadFailure"]


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
    if "PRIVATE KEY" not in text and text.strip().startswith(("ssh-", "ecdsa-", "sk-")):
        raise ValueError("that is a public key (a .pub line): give the private key")
    if "ENCRYPTED" in text or _openssh_encrypted(text):
        raise ValueError("the private key is protected by a passphrase: use an unencrypted key, or the SSH agent "
                         "(sshAgent: true) holding it")
    raise ValueError("not an SSH private key: expected an unencrypted ed25519, ecdsa or rsa key "
                     "(OpenSSH or PEM format)")


def _openssh_encrypted(text: str) -> bool:
    """Whether an OpenSSH-format private key names a cipher (it has a passphrase)."""
    body = "".join(line.strip() for line in text.splitlines() if line.strip() and "-----" not in line)
    try:
        blob = base64.b64decode(body)
    except (binascii.Error, ValueError):
        return False
    # openssh-key-v1\0, then the cipher name as a length-prefixed string: "none" when unencrypted
    return blob.startswith(b"openssh-key-v1\0") and blob[19:23] != b"none"


def _host_key(line: str) -> paramiko.PKey:
    """The key of an OpenSSH public key line (``ssh-ed25519 AAAA… [comment]``)."""
    import paramiko

    parts = line.split()
    try:
        return paramiko.PKey.from_type_string(parts[0], base64.b64decode(parts[1]))
    except (IndexError, binascii.Error, paramiko.SSHException, ValueError) as exc:
        raise ValueError(f"hostKey is not a usable public key: {exc}") from None


class HostKeyRefused(Exception):
    """A host key that is not the pinned one (raised inside paramiko by the reader's policy)."""

    def __init__(self, offered: paramiko.PKey) -> None:
        super().__init__("the SSH host key is not the pinned hostKey")
        self.offered = offered


def _refuse_host_key() -> paramiko.MissingHostKeyPolicy:
    """A policy that refuses every key paramiko does not know (the pinned key is the only known
    one), raising :class:`HostKeyRefused` with the offered key."""
    import paramiko

    class RefuseHostKey(paramiko.MissingHostKeyPolicy):
        def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
            raise HostKeyRefused(key)

    return RefuseHostKey()


def _described(key: paramiko.PKey | None) -> str:
    """``SHA256:… (ssh-ed25519)``: a key as ``ssh-keygen -lf`` names it."""
    if key is None:
        return "unknown"
    from components.nodes.host_keys import key_fingerprint

    return f"{key_fingerprint(key)} ({key.get_name()})"


def _mismatch(expected: paramiko.PKey | None, offered: paramiko.PKey | None) -> str:
    return (
        f"the SSH host key does not match the pinned hostKey: expected {_described(expected)}, offered "
        f"{_described(offered)}. Someone else may be answering on the node's address; if the node was "
        "reinstalled or its keys rotated, compare the offered fingerprint with the node's console and pin "
        "the new key (python -m components host-key <site> --node HOST)"
    )


def _unpinned(host: str, offered: paramiko.PKey | None) -> str:
    return (
        f"no hostKey is pinned for this node, so its SSH host key (offered: {_described(offered)}) is not "
        f"trusted; pin it with python -m components host-key <site> --node {host}"
    )


class SshNodeReader:
    """Reads nodes over SSH (paramiko), in parallel, with bounded timeouts.

    :param connect_timeout: seconds for TCP connect, SSH banner and authentication each.
    :param command_timeout: seconds the read script may take (it reads a few small files).
    :param deadline: seconds one node may take in all, connect, login and read together: the
        timeouts above bound each wait on the socket, and a node that trickles bytes (a banner
        line that never ends, output a byte at a time) would never hit them. When it passes, the
        node's connection is closed and the node is a read failure naming the limit.
    :param max_workers: nodes read at the same time.
    :param key_source: what the private key was given as, for messages: the config key
        ``sshPrivateKey``, or ``--ssh-key FILE`` on the render's command line.
    :param on_read: called (from a worker thread) with each node's host and result as it is
        read: progress for a person waiting on many nodes.
    """

    def __init__(
        self, connect_timeout: float = 10, command_timeout: float = 30, max_workers: int = 16, deadline: float = 60,
        key_source: str = "sshPrivateKey", on_read: Callable[[str, object], None] | None = None,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.deadline = deadline
        self.max_workers = max_workers
        self.key_source = key_source
        self.on_read = on_read

    def read_nodes(
        self, targets: Sequence[NodeTarget], private_key: str | None, use_agent: bool = False
    ) -> dict[str, ReadResult]:
        """Read every target in parallel; a failure is a :class:`NodeReadFailure`, never an exception."""
        return self.run_nodes(targets, private_key, self._run_read, use_agent)

    def run_nodes(
        self,
        targets: Sequence[NodeTarget],
        private_key: str | None,
        session: NodeSession[_T],
        use_agent: bool = False,
    ) -> dict[str, _T | NodeReadFailure]:
        """Connect to every target in parallel as the read does (pinned host key, timeouts, the
        deadline) and run ``session`` on each; a failure is a :class:`NodeReadFailure`."""
        if not targets:
            return {}
        key: paramiko.PKey | None = None
        if use_agent:
            if not os.environ.get("SSH_AUTH_SOCK"):
                reason = "sshAgent is set but SSH_AUTH_SOCK is not: start an agent and add the node key"
                return {t.host: NodeReadFailure(t.host, reason, False) for t in targets}
        elif not private_key:
            return {t.host: NodeReadFailure(t.host, f"no SSH private key ({self.key_source})", False) for t in targets}
        else:
            try:
                key = load_private_key(private_key)
            except ValueError as exc:
                return {t.host: NodeReadFailure(t.host, f"{self.key_source}: {exc}", False) for t in targets}
        importlib.import_module("paramiko")  # once, here, before the worker threads use it

        def run(target: NodeTarget) -> _T | NodeReadFailure:
            result = self.run_one(target, key, session)
            if self.on_read is not None:
                self.on_read(target.host, result)
            return result

        with ThreadPoolExecutor(max_workers=min(self.max_workers, len(targets))) as pool:
            results = list(pool.map(run, targets))
        return {t.host: r for t, r in zip(targets, results, strict=True)}

    def read_one(self, target: NodeTarget, key: paramiko.PKey | None) -> ReadResult:
        """Read one node (``key`` None: with the SSH agent), within :attr:`deadline` seconds in all."""
        return self.run_one(target, key, self._run_read)

    def run_one(self, target: NodeTarget, key: paramiko.PKey | None, session: NodeSession[_T]) -> _T | NodeReadFailure:
        """Run ``session`` on one node within :attr:`deadline` seconds in all."""
        expired = threading.Event()
        sockets: list[socket.socket] = []
        lock = threading.Lock()

        def expire() -> None:
            # Closing the socket wakes every wait of paramiko on it (banner, login, the command).
            with lock:
                expired.set()
                for sock in sockets:
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    sock.close()

        def connect(address: tuple[str, int]) -> socket.socket:
            sock = socket.create_connection(address, timeout=min(self.connect_timeout, self.deadline))
            with lock:
                sockets.append(sock)
                if expired.is_set():
                    sock.close()
                    raise TimeoutError("the node's deadline passed")
            return sock

        timer = threading.Timer(self.deadline, expire)
        timer.daemon = True
        timer.start()
        try:
            result = self._connected(target, key, connect, session)
        finally:
            timer.cancel()
        if expired.is_set() and isinstance(result, NodeReadFailure):
            return NodeReadFailure(
                target.host,
                f"{target.host}:{target.port} did not finish the read within {self.deadline:g}s, the limit per node "
                "for connecting, logging in and reading together (a node that answers very slowly, or trickles "
                "bytes): the connection was closed",
                True,
            )
        return result

    def _connected(
        self,
        target: NodeTarget,
        key: paramiko.PKey | None,
        connect: Callable[[tuple[str, int]], socket.socket],
        session: NodeSession[_T],
    ) -> _T | NodeReadFailure:
        import paramiko

        client = paramiko.SSHClient()
        try:
            # Only the pinned key is accepted, never an unknown one (no AutoAddPolicy: issue 20).
            # A key of the pinned type that differs is a BadHostKeyException; a key of another
            # type (the node has no key of the pinned type), or any key of a node without hostKey
            # (the config requires it), reaches the policy, which refuses it and keeps it for the
            # message.
            refuse = _refuse_host_key()
            pinned: paramiko.PKey | None = None
            if target.host_key:
                name = target.host if target.port == 22 else f"[{target.host}]:{target.port}"
                pinned = _host_key(target.host_key)
                client.get_host_keys().add(name, pinned.get_name(), pinned)
            client.set_missing_host_key_policy(refuse)
            try:
                sock = connect((target.host, target.port))
            except (TimeoutError, socket.timeout) as exc:
                return NodeReadFailure(target.host, f"cannot connect to {target.host}:{target.port}: {exc}", True)
            except ConnectionRefusedError:
                return NodeReadFailure(target.host, f"cannot connect to {target.host}:{target.port}: connection refused", True)
            except OSError as exc:  # no route, DNS
                return NodeReadFailure(target.host, f"cannot connect to {target.host}:{target.port}: {exc}", True)
            try:
                client.connect(
                    target.host, port=target.port, username=target.user, pkey=key, sock=sock,
                    timeout=self.connect_timeout, banner_timeout=self.connect_timeout,
                    auth_timeout=self.connect_timeout, channel_timeout=self.connect_timeout,
                    allow_agent=key is None, look_for_keys=False,
                )
            except paramiko.BadHostKeyException as exc:
                return NodeReadFailure(target.host, _mismatch(pinned or exc.expected_key, exc.key), False)
            except HostKeyRefused as exc:
                if pinned is None:
                    return NodeReadFailure(target.host, _unpinned(target.host, exc.offered), False)
                return NodeReadFailure(target.host, _mismatch(pinned, exc.offered), False)
            except paramiko.AuthenticationException:
                how = "the SSH agent's keys" if key is None else self.key_source
                return NodeReadFailure(target.host, f"SSH login as {target.user} with {how} was refused", False)
            except paramiko.SSHException as exc:
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
            return session(client, target)
        except ValueError as exc:
            return NodeReadFailure(target.host, str(exc), False)
        finally:
            client.close()

    def _run_read(self, client: paramiko.SSHClient, target: NodeTarget) -> ReadResult:
        done = run_command(client, target, target.command or read_command(target.path, target.user),
                           self.command_timeout, what="the read")
        if isinstance(done, NodeReadFailure):
            return done
        status, out, err = done
        if status != 0:
            last = err.strip().splitlines()[-1] if err.strip() else f"exit status {status}"
            return NodeReadFailure(target.host, f"reading {target.path} failed: {last}", False)
        try:
            return parse_read_output(out.removesuffix("\n"))
        except NodeMirrorError as exc:
            return NodeReadFailure(target.host, f"{target.path}: {exc}", False)


def run_command(
    client: paramiko.SSHClient, target: NodeTarget, command: str, timeout: float, stdin: str | None = None,
    what: str = "the command",
) -> tuple[int, str, str] | NodeReadFailure:
    """Run ``command`` on a connected node, ``stdin`` (text, maybe secret: it never appears in the
    command) on its standard input: (exit status, stdout, stderr), or a failure naming ``what``."""
    import paramiko

    try:
        channel_in, stdout, stderr = client.exec_command(command, timeout=timeout)
        if stdin is not None:
            channel_in.write(stdin)
        channel_in.close()
        channel_in.channel.shutdown_write()
        out = stdout.read().decode("utf-8", "replace")
        err = stderr.read().decode("utf-8", "replace")
        # (a transport closed by the deadline sets the status event too: this does not hang)
        status = stdout.channel.recv_exit_status()
    except (socket.timeout, TimeoutError):
        return NodeReadFailure(target.host, f"{what} did not finish within {timeout:g}s", True)
    except (paramiko.SSHException, OSError, EOFError) as exc:
        return NodeReadFailure(target.host, f"the SSH session failed: {exc}", True)
    return status, out, err
