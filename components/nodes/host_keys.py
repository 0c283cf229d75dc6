"""Pin a node's SSH host key: ``python -m components host-key STACK --node HOST``.

Every node that is not ``gone`` pins its host key (``hostKey``, docs/config-rules.md): the read
at program time (components/nodes/read.py) and pulumi-command's write both refuse any other key.
This command gets the key to pin: it connects to the node (paramiko, key exchange only, no login),
takes its ed25519 host key (else ECDSA), prints the key's ``SHA256:`` fingerprint as
``ssh-keygen -lf`` prints it, and, once the operator has compared it with the node's console
(``ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`` there) and confirmed, writes the key line
into that node's ``hostKey`` in ``Pulumi.STACK.yaml``.

Confirmation is a ``y`` on a terminal, or ``--yes`` together with ``--expect-fingerprint``
equal to the fingerprint seen (``--yes`` alone is refused: it would trust whoever answered).

The stack file is edited as text, only inside that node's mapping (one ``hostKey:`` line added
or its value replaced), so comments, order and quoting elsewhere stay as they are; the result is
parsed again and must differ from the original in that one value only, else nothing is written.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from components.command_line import CommandParser, number, whole_number
from components.config.fields import PROJECT

PROG = "python -m components host-key"
REPO_ROOT = Path(__file__).resolve().parents[2]

#: Host key algorithms asked for, preferred first: ed25519, then ECDSA (never ssh-rsa, which
#: the config refuses to pin, docs/config-rules.md).
KEY_TYPES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521")

NODES_KEY = f"{PROJECT}:nodes"


class HostKeyError(Exception):
    """The command cannot go on; the message says why (exit status 1)."""


def fingerprint_of_blob(blob: bytes) -> str:
    """``SHA256:<base64 without padding>`` of a public key blob, as ``ssh-keygen -lf`` prints it."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii").rstrip("=")


def fingerprint(line: str) -> str:
    """The ``SHA256:`` fingerprint of an OpenSSH public key line (``ssh-ed25519 AAAA… [comment]``).

    :raises ValueError: not a key line."""
    parts = line.split()
    try:
        if len(parts) < 2:
            raise ValueError
        return fingerprint_of_blob(base64.b64decode(parts[1], validate=True))
    except (ValueError, binascii.Error):
        raise ValueError("not an OpenSSH public key line ('ssh-ed25519 AAAA…')") from None


def key_fingerprint(key: Any) -> str:
    """The ``SHA256:`` fingerprint of a paramiko key."""
    return fingerprint_of_blob(key.asbytes())


def key_line(key: Any) -> str:
    """The OpenSSH public key line of a paramiko key: ``<type> <base64>``."""
    return f"{key.get_name()} {key.get_base64()}"


def scan_host_key(host: str, port: int = 22, timeout: float = 10) -> str:
    """The node's host key line (ed25519 if it has one, else ECDSA), from an SSH key exchange
    without logging in. :raises HostKeyError: unreachable, not SSH, or no ed25519/ECDSA key."""
    import paramiko

    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as error:
        raise HostKeyError(f"cannot connect to {host}:{port}: {error.strerror or error}") from None
    transport = paramiko.Transport(sock)
    try:
        transport.banner_timeout = timeout
        transport.handshake_timeout = timeout
        options = transport.get_security_options()
        options.key_types = [t for t in KEY_TYPES if t in options.key_types]
        try:
            transport.start_client(timeout=timeout)
        except (paramiko.SSHException, EOFError, OSError) as error:
            raise HostKeyError(
                f"no SSH host key from {host}:{port} (the node offers no ed25519 or ECDSA host key, or does not "
                f"speak SSH): {error}"
            ) from None
        return key_line(transport.get_remote_server_key())
    finally:
        transport.close()
        sock.close()


# --------------------------------------------------------------------------- the stack file


def _node_entries(document: yaml.Node) -> list[yaml.MappingNode]:
    """The mapping nodes of the stack file's ``edge-registry:nodes`` list (composed, with marks)."""
    if not isinstance(document, yaml.MappingNode):
        return []
    for key, value in document.value:
        if isinstance(key, yaml.ScalarNode) and key.value == "config" and isinstance(value, yaml.MappingNode):
            for name, nodes in value.value:
                if isinstance(name, yaml.ScalarNode) and name.value == NODES_KEY:
                    if not isinstance(nodes, yaml.SequenceNode):
                        raise HostKeyError(
                            f"{NODES_KEY} is not a YAML list in the stack file: set the key with "
                            f"`pulumi config set --path '{NODES_KEY}[N].hostKey' 'LINE'` instead"
                        )
                    return [n for n in nodes.value if isinstance(n, yaml.MappingNode)]
    return []


def _scalar_text(line: str) -> str:
    """``line`` as a YAML scalar: plain when it reads back as itself, else double-quoted (JSON)."""
    try:
        if yaml.safe_load(f"k: {line}") == {"k": line}:
            return line
    except yaml.YAMLError:
        pass
    return json.dumps(line)


def find_node(text: str, host: str) -> dict[str, Any]:
    """The node of ``host`` in a stack file's text, as plain values. :raises HostKeyError: not
    exactly one node with that host."""
    nodes = (yaml.safe_load(text) or {}).get("config", {}).get(NODES_KEY)
    found = [n for n in nodes or () if isinstance(n, dict) and n.get("host") == host]
    if len(found) != 1:
        known = ", ".join(str(n.get("host")) for n in nodes or () if isinstance(n, dict)) or "none"
        raise HostKeyError(
            f"the stack file has {'no' if not found else len(found)} node with host {host} under {NODES_KEY} "
            f"(its nodes: {known}); add the node first"
        )
    return dict(found[0])


def with_host_key(text: str, host: str, line: str) -> str:
    """The stack file's ``text`` with ``line`` as the ``hostKey`` of the node whose host is
    ``host``: only that node's mapping changes (a ``hostKey:`` line added after ``host:``, or the
    value replaced). :raises HostKeyError: the node is not there once, or the edit would change
    anything else."""
    find_node(text, host)  # exactly one
    document = yaml.compose(text)
    entries = [
        m for m in _node_entries(document)
        if any(isinstance(k, yaml.ScalarNode) and k.value == "host" and isinstance(v, yaml.ScalarNode)
               and v.value == host for k, v in m.value)
    ]
    if len(entries) != 1:
        raise HostKeyError(f"cannot find the node with host {host} in the stack file's {NODES_KEY} list")
    mapping = entries[0]
    pairs = {k.value: (k, v) for k, v in mapping.value if isinstance(k, yaml.ScalarNode)}
    scalar = _scalar_text(line)
    if "hostKey" in pairs:
        _key, value = pairs["hostKey"]
        if not isinstance(value, yaml.ScalarNode):
            raise HostKeyError(f"the node {host}'s hostKey is not a text value; fix it by hand")
        start, end = value.start_mark.index, value.end_mark.index
        new = text[:start] + (json.dumps(line) if mapping.flow_style else scalar) + text[end:]
    else:
        host_key_node, host_value = pairs["host"]
        if mapping.flow_style:
            at = host_value.end_mark.index
            new = text[:at] + f", hostKey: {json.dumps(line)}" + text[at:]
        else:
            # A new line after the host entry, at the column of the node's keys.
            at = text.find("\n", host_value.end_mark.index)
            at = len(text) if at < 0 else at
            indent = " " * host_key_node.start_mark.column
            new = text[:at] + f"\n{indent}hostKey: {scalar}" + text[at:]
    _check_edit(text, new, host, line)
    return new


def _check_edit(old: str, new: str, host: str, line: str) -> None:
    """The edit changed the one value and nothing else, or :raises HostKeyError:."""
    try:
        before, after = yaml.safe_load(old), yaml.safe_load(new)
    except yaml.YAMLError as error:
        raise HostKeyError(f"editing the stack file would break its YAML ({error}); set hostKey by hand") from None
    expected = json.loads(json.dumps(before))
    for node in expected["config"][NODES_KEY]:
        if isinstance(node, dict) and node.get("host") == host:
            node["hostKey"] = line
    if json.loads(json.dumps(after)) != expected:
        raise HostKeyError("editing the stack file as text would change more than the node's hostKey; set it by hand")


# --------------------------------------------------------------------------- the command


def _parser() -> CommandParser:
    parser = CommandParser(
        prog=PROG,
        description="Scan a node's SSH host key, print its fingerprint to compare with the node's console, "
        "and pin it (the node's hostKey in Pulumi.STACK.yaml) once confirmed.",
    )
    parser.add_argument("stack", metavar="STACK", help="the stack name (edits Pulumi.STACK.yaml)")
    parser.add_argument("--node", required=True, metavar="HOST", help="the node's host, as in the stack file")
    parser.add_argument("--port", type=whole_number(minimum=1, maximum=65535), default=None, help="SSH port (default: the node's port, else 22)")
    parser.add_argument("--yes", action="store_true",
                        help="write without asking; only together with --expect-fingerprint")
    parser.add_argument("--expect-fingerprint", metavar="SHA256:...",
                        help="the fingerprint read on the node's console; anything else is refused")
    parser.add_argument("--stack-dir", type=Path, default=None, metavar="DIR",
                        help="the directory of Pulumi.STACK.yaml (default: the project directory)")
    parser.add_argument("--timeout", type=number(minimum=0.1), default=10, help=argparse.SUPPRESS)
    return parser


def _confirm(question: str) -> bool:
    try:
        return input(question).strip().lower() in ("y", "yes")
    except EOFError:
        return False


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.yes and not args.expect_fingerprint:
        print(f"{PROG}: --yes needs --expect-fingerprint SHA256:... (the fingerprint read on the node's console): "
              "without it whoever answers on the address would be trusted", file=sys.stderr)
        return 2
    stack_file = (args.stack_dir or REPO_ROOT) / f"Pulumi.{args.stack}.yaml"
    try:
        try:
            text = stack_file.read_text(encoding="utf-8")
        except OSError as error:
            raise HostKeyError(f"{stack_file}: cannot be read: {error.strerror or error}") from None
        try:
            node = find_node(text, args.node)
        except (yaml.YAMLError, AttributeError):
            raise HostKeyError(f"{stack_file.name}: not a stack file with a {NODES_KEY} list") from None
        if node.get("gone") is True:
            raise HostKeyError(f"node {args.node} is marked gone: it is never contacted again, so nothing to pin")
        port = args.port if args.port is not None else int(node.get("port", 22))
        line = scan_host_key(args.node, port, args.timeout)
        seen = fingerprint(line)
        print(f"node {args.node}:{port} offers {line.split()[0]} host key {seen}")
        pinned = node.get("hostKey")
        if isinstance(pinned, str) and pinned.split()[:2] == line.split()[:2]:
            print(f"already pinned in {stack_file.name}: nothing to change")
            return 0
        if isinstance(pinned, str):
            print(f"WARNING: {stack_file.name} pins another key for this node ({_safe_fingerprint(pinned)}). "
                  "Replace it only if the node was reinstalled or its keys rotated: a different key may be "
                  "another machine answering on the address.")
        if args.expect_fingerprint is not None and args.expect_fingerprint.strip() != seen:
            raise HostKeyError(
                f"node {args.node}: the host key fingerprint is {seen}, not the expected "
                f"{args.expect_fingerprint.strip()}; nothing written"
            )
        if not args.yes:
            if not (sys.stdin.isatty() and sys.stdout.isatty()):
                raise HostKeyError(
                    "not a terminal, so nothing was confirmed and nothing written: compare the fingerprint with the "
                    f"node's console, then rerun with --yes --expect-fingerprint {seen}"
                )
            print(f"Compare with the node's console: ssh-keygen -lf /etc/ssh/ssh_host_{_file_kind(line)}_key.pub")
            if not _confirm(f"Pin this key as {args.node}'s hostKey in {stack_file.name}? [y/N] "):
                print("nothing written")
                return 1
        new = with_host_key(text, args.node, line)
        _write(stack_file, new)
        print(f"pinned: {stack_file.name} {NODES_KEY} host {args.node} hostKey {line}")
        return 0
    except HostKeyError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 1


def _safe_fingerprint(line: str) -> str:
    try:
        return fingerprint(line)
    except ValueError:
        return "not a key line"


def _file_kind(line: str) -> str:
    return "ed25519" if line.startswith("ssh-ed25519 ") else "ecdsa"


def _write(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically, keeping its mode."""
    temporary = path.with_name(f".{path.name}.host-key.tmp")
    temporary.write_text(text, encoding="utf-8")
    try:
        os.chmod(temporary, path.stat().st_mode & 0o7777)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
