"""NodeMirror: point one k3s node's containerd at the connected registry over SSH.

Per node, two ``pulumi_command.remote.Command`` children:

* ``<name>-read`` prints the node's registries.yaml and edge-registry's record beside it
  (``<path>.edge-registry/``). It is replaced on every ``pulumi up`` (``triggers``), so the
  merge always starts from what is on the node now. Its stdout is a secret and not logged.
* ``<name>-apply`` gets the merged file on stdin (a secret) and installs it
  (``node_scripts/apply.sh``): checksum check against the read → pristine original kept
  once → backup → atomic rename → restart only on change → wait → roll back on failure.
  Its ``delete`` (``node_scripts/destroy.sh``) runs from stored state and puts back the
  bytes the node had before.

The merge happens here with PyYAML (:mod:`components.registries_yaml`); the node needs only
POSIX sh, coreutils, ``sudo -n`` (or root) and systemd or OpenRC. No data or credential is
ever part of a command string (pulumi-command prints it on failure) or of ``environment``
(default sshd rejects SetEnv): everything goes on stdin.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shlex
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

import pulumi
from pulumi_command import remote

from components import registries_yaml as ry

__all__ = [
    "RUN_ID_ENV",
    "ApplyPlan",
    "NodeMirror",
    "NodeMirrorArgs",
    "NodeMirrorError",
    "NodeRead",
    "apply_command",
    "apply_stdin",
    "decode_apply_stdin",
    "destroy_command",
    "mock_outputs",
    "node_stdin",
    "parse_read_output",
    "plan_apply",
    "read_command",
    "render_read_output",
    "run_id",
]

#: Environment variable that fixes the read trigger (the offline renderer sets it, so its
#: output is deterministic). Unset: a fresh value per program run, so every ``pulumi up``
#: re-reads every node.
RUN_ID_ENV = "EDGE_REGISTRY_RUN_ID"

_SCRIPTS = Path(__file__).with_name("node_scripts")
_READ_MARKER = "# edge-registry read:"
_APPLY_MARKER = "# edge-registry apply:"
_SECRET_SIG = "4dabf18193072939515e22adb298388d"
_UNIT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9@._:-]{0,254}$")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
# Every input of remote.Command: a gone node's commands keep their stored state, untouched.
_ALL_COMMAND_INPUTS = [
    "add_previous_output_in_env", "connection", "create", "delete", "environment",
    "logging", "stdin", "triggers", "update",
]


class NodeMirrorError(Exception):
    """A node's file or the node's answer cannot be used; the message names host and path."""


@dataclass(frozen=True, kw_only=True)
class NodeMirrorArgs:
    """One node, resolved from the site's config."""

    host: str
    """Address SSH reaches the node on."""
    port: int = 22
    """SSH port."""
    user: str = "root"
    """SSH user; any other user than root runs the scripts through ``sudo -n``."""
    role: Literal["server", "agent"]
    """k3s role (informational: servers and agents are handled alike)."""
    unit: str
    """Resolved service unit to restart: k3s, k3s-agent, k3s-<name>, rke2-server, rke2-agent."""
    path: str = "/etc/rancher/k3s/registries.yaml"
    """registries.yaml path (RKE2: /etc/rancher/rke2/registries.yaml)."""
    host_key: str | None = None
    """Pinned SSH host public key; without it the host key is not checked (warned)."""
    gone: bool = False
    """The node no longer exists: keep its resources declared, never contact it."""
    endpoint: pulumi.Input[str]
    """The connected registry as ``host:port`` (mirror key and endpoint)."""
    scheme: Literal["http", "https"] = "http"
    """``https`` when the on-prem install uses TLS."""
    ca_file: str | None = None
    """CA file path on the node, for an https endpoint."""
    insecure_skip_verify: bool = False
    """Skip TLS verification of the endpoint."""
    ssh_private_key: pulumi.Input[str] | None = None
    """SSH private key (a secret Output); may be None only for a gone node or with ``ssh_agent``."""
    ssh_agent: bool = False
    """Authenticate with the SSH agent at ``$SSH_AUTH_SOCK`` of the machine running pulumi
    (pulumi-command's default when no key is given): no key in the resource's inputs or state."""
    restart_timeout_seconds: int = 120
    """How long to wait for the unit to be active after a restart."""
    service_manager: Literal["systemd", "openrc", "auto"] = "auto"
    """How to restart the unit; ``auto`` picks systemctl, else rc-service."""

    def __post_init__(self) -> None:
        problems = []
        if not self.host or any(c.isspace() for c in self.host):
            problems.append(f"host {self.host!r} is empty or has spaces")
        if not 1 <= self.port <= 65535:
            problems.append(f"port {self.port} is not 1-65535")
        if self.role not in ("server", "agent"):
            problems.append(f"role {self.role!r} is not server or agent")
        if not _UNIT_RE.match(self.unit):
            problems.append(f"unit {self.unit!r} is not a service unit name")
        if not self.path.startswith("/") or any(c in self.path for c in "\n\0"):
            problems.append(f"path {self.path!r} is not an absolute path")
        if self.scheme not in ("http", "https"):
            problems.append(f"scheme {self.scheme!r} is not http or https")
        if self.service_manager not in ("systemd", "openrc", "auto"):
            problems.append(f"service_manager {self.service_manager!r} is not systemd, openrc or auto")
        if not 1 <= self.restart_timeout_seconds <= 86400:
            problems.append(f"restart_timeout_seconds {self.restart_timeout_seconds} is not 1-86400")
        if not self.gone and not self.ssh_agent and self.ssh_private_key is None:
            problems.append("ssh_private_key is required for a node that is not gone (or ssh_agent)")
        if self.ssh_agent and self.ssh_private_key is not None:
            problems.append("ssh_private_key and ssh_agent exclude each other")
        if problems:
            raise ValueError(f"node {self.host}: " + "; ".join(problems))


# --------------------------------------------------------------------------- command text


@cache
def _script(name: str) -> str:
    return (_SCRIPTS / name).read_text(encoding="utf-8")


def _node_command(script: str, argv0: str, args: Sequence[str], user: str) -> str:
    """``/bin/sh -c SCRIPT ARGV0 ARGS…``, through ``sudo -n`` unless the user is root."""
    program = _script("common.sh") + "\n" + _script(script)
    command = " ".join(["/bin/sh", "-c", shlex.quote(program), argv0, *map(shlex.quote, args)])
    if user == "root":
        return command
    hint = (
        f"edge-registry: user {user} cannot run 'sudo -n' on this node: "
        "give it passwordless sudo, or connect as root"
    )
    return f"sudo -n true >/dev/null 2>&1 || {{ echo {shlex.quote(hint)} >&2; exit 1; }}; exec sudo -n {command}"


def _script_args(args: NodeMirrorArgs) -> list[str]:
    return [args.path, args.unit, args.service_manager, str(args.restart_timeout_seconds)]


def read_command(args: NodeMirrorArgs) -> str:
    """The ``create`` text of the ``-read`` command (node_scripts/read.sh)."""
    return _node_command("read.sh", "edge-registry-read", [args.path], args.user)


def apply_command(args: NodeMirrorArgs) -> str:
    """The ``create``/``update`` text of the ``-apply`` command (node_scripts/apply.sh); data on stdin."""
    return _node_command("apply.sh", "edge-registry-apply", _script_args(args), args.user)


def destroy_command(args: NodeMirrorArgs) -> str:
    """The ``delete`` text of the ``-apply`` command (node_scripts/destroy.sh)."""
    return _node_command("destroy.sh", "edge-registry-destroy", _script_args(args), args.user)


# --------------------------------------------------------------------------- read output


@dataclass(frozen=True)
class NodeRead:
    """What ``read.sh`` reported about one node."""

    content: bytes | None
    """The current registries.yaml, None when there is no file."""
    recorded: bool
    """edge-registry has a record (sidecar with the pristine original) on this node."""
    original: bytes | None = None
    """Pristine bytes before edge-registry's first write (None: there was no file). Only if recorded."""
    written: str | None = None
    """sha256 of what edge-registry last wrote."""
    owned: tuple[ry.OwnedKey, ...] = ()
    """The keys edge-registry owned after its last write."""
    restart_pending: bool = False
    """An earlier run replaced the file but was cut off before the restart finished."""


def _sha(data: bytes | None) -> str:
    return "absent" if data is None else hashlib.sha256(data).hexdigest()


def _b64_lines(data: bytes) -> list[str]:
    # Same wrapping as coreutils/busybox base64 (76 columns), so the render matches the node.
    return base64.encodebytes(data).decode("ascii").splitlines()


def _owned_text(keys: Sequence[ry.OwnedKey]) -> bytes:
    return "".join(f"{section} {key}\n" for section, key in keys).encode("utf-8")


def render_read_output(
    content: bytes | None,
    *,
    original: bytes | None = None,
    recorded: bool = False,
    written: str | None = None,
    owned: Sequence[ry.OwnedKey] | None = None,
    restart_pending: bool = False,
) -> str:
    """The stdout ``read.sh`` prints (as pulumi-command stores it: last newline trimmed).

    With the defaults: a node whose registries.yaml is ``content`` (None: no file) and that
    edge-registry never touched. ``recorded``/``original``/``written``/``owned`` describe
    the record beside the file (``owned`` None: no owned-keys file).
    """
    lines = ["edge-registry-read 1", f"file {_sha(content)}", f"written {written or 'none'}"]
    lines.append(f"original {_sha(original)}" if recorded else "original none")
    lines.append(f"restart-pending {'yes' if restart_pending else 'no'}")
    sections = [("content", content), ("original", original if recorded else None),
                ("owned", None if owned is None else _owned_text(owned))]
    for name, data in sections:
        if data is not None:
            lines += [f"begin {name}", *_b64_lines(data), f"end {name}"]
    return "\n".join(lines)


def parse_read_output(stdout: str) -> NodeRead:
    """Parse what ``read.sh`` printed; raise NodeMirrorError on anything unexpected."""
    lines = stdout.splitlines()
    if not lines or lines[0] != "edge-registry-read 1":
        first = lines[0][:80] if lines else "(nothing)"
        raise NodeMirrorError(f"unexpected output from the read command, first line: {first!r}")
    fields: dict[str, str] = {}
    sections: dict[str, bytes] = {}
    current: str | None = None
    body: list[str] = []
    for line in lines[1:]:
        word, _, value = line.partition(" ")
        if current is not None:
            if word == "end":
                sections[current] = base64.b64decode("".join(body), validate=True)
                current, body = None, []
            else:
                body.append(line)
        elif word == "begin":
            current = value
        else:
            fields[word] = value
    if current is not None:
        raise NodeMirrorError(f"read output ends inside section {current!r}")
    for name in ("file", "written", "original", "restart-pending"):
        if name not in fields:
            raise NodeMirrorError(f"read output has no {name!r} line")
    content = sections.get("content")
    if _sha(content) != fields["file"]:
        raise NodeMirrorError("read output is inconsistent (file checksum); run pulumi up again")
    recorded = fields["original"] != "none"
    original = sections.get("original") if recorded else None
    if recorded and _sha(original) != fields["original"]:
        raise NodeMirrorError("read output is inconsistent (original checksum)")
    owned: list[ry.OwnedKey] = []
    for line in sections.get("owned", b"").decode("utf-8").splitlines():
        section, _, key = line.partition(" ")
        if section in ry.SECTIONS and key:
            owned.append((section, key))
    written = fields["written"] if _SHA_RE.match(fields["written"]) else None
    return NodeRead(
        content=content, recorded=recorded, original=original, written=written,
        owned=tuple(owned), restart_pending=fields["restart-pending"] == "yes",
    )


# --------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class ApplyPlan:
    """What the apply command gets: the file to install and what destroy will put back."""

    expected: str
    """sha256 of the file the merge started from ("absent": no file); the write refuses otherwise."""
    content: bytes
    """The registries.yaml to install."""
    restore: bytes | None
    """What destroy puts back (None: remove the file)."""
    owned: tuple[ry.OwnedKey, ...]
    """Keys this program owns after the write."""
    restart_pending: bool = False
    """Carried from the read so the payload differs and the apply runs to finish a restart."""
    document: dict[str, Any] = field(default_factory=dict, compare=False)
    """The merged, validated document."""

    @property
    def changed(self) -> bool:
        """The node's file will be replaced (and the unit restarted)."""
        return _sha(self.content) != self.expected


def _canonical(document: Any) -> str:
    # Type-strict comparison (1 != true), order-insensitive.
    return json.dumps(document, sort_keys=True, default=repr)


def _restore_target(original: bytes | None, merged: dict[str, Any], keys: Sequence[ry.OwnedKey]) -> bytes | None:
    """The file destroy puts back: the pristine bytes when the foreign entries are still what
    they were (so comments and formatting come back too), else the merged file without our
    entries. None: no file."""
    target = ry.unmerge(merged, keys)
    before = ry.parse(original)
    for section, key in keys:  # an entry we took over at our own key comes back
        entries = before.get(section)
        if isinstance(entries, dict) and key in entries:
            target.setdefault(section, {})[key] = entries[key]
    if _canonical(ry.normalize(target)) == _canonical(ry.normalize(before)):
        return original
    return ry.dump(target)


def plan_apply(read: NodeRead, ours: Mapping[str, Any]) -> ApplyPlan:
    """Merge ``ours`` into the node's file as read; validate; decide what destroy restores.

    When the merged document equals the current one, the current bytes are kept (comments
    included), so nothing is written and nothing restarts.
    """
    current = ry.parse(read.content)
    merged = ry.merge(current, ours, read.owned)
    ry.validate(merged)
    if read.content is not None and _canonical(merged) == _canonical(current):
        content = read.content
    else:
        content = ry.dump(merged)
    keys = tuple(ry.owned_keys(ours))
    original = read.original if read.recorded else read.content
    return ApplyPlan(
        expected=_sha(read.content), content=content, restore=_restore_target(original, merged, keys),
        owned=keys, restart_pending=read.restart_pending, document=merged,
    )


def apply_stdin(plan: ApplyPlan) -> str:
    """The payload ``apply.sh`` reads on stdin: checksums, then base64 sections."""
    lines = [
        "edge-registry-apply 1",
        f"expected {plan.expected}",
        f"desired {_sha(plan.content)}",
        f"restore {_sha(plan.restore)}",
        f"pending {'yes' if plan.restart_pending else 'no'}",
        "begin content", *_b64_lines(plan.content), "end content",
    ]
    if plan.restore is not None:
        lines += ["begin restore", *_b64_lines(plan.restore), "end restore"]
    lines += ["begin owned", *_b64_lines(_owned_text(plan.owned)), "end owned"]
    return "\n".join(lines) + "\n"


def decode_apply_stdin(stdin: str) -> ApplyPlan:
    """The plan inside an apply payload (for the offline render: show the file in clear)."""
    fields: dict[str, str] = {}
    sections: dict[str, list[str]] = {}
    current: str | None = None
    for line in stdin.splitlines()[1:]:
        word, _, value = line.partition(" ")
        if current is not None:
            if word == "end":
                current = None
            else:
                sections[current].append(line)
        elif word == "begin":
            current = value
            sections[current] = []
        else:
            fields[word] = value

    def section(name: str) -> bytes | None:
        return base64.b64decode("".join(sections[name])) if name in sections else None

    owned = tuple(
        (s, k) for s, _, k in (line.partition(" ") for line in (section("owned") or b"").decode().splitlines())
    )
    return ApplyPlan(
        expected=fields.get("expected", ""), content=section("content") or b"", restore=section("restore"),
        owned=owned, restart_pending=fields.get("pending") == "yes",
    )


def node_stdin(args: NodeMirrorArgs, read_stdout: str, endpoint: str) -> str:
    """The apply command's stdin for ``args`` given the read command's stdout."""
    try:
        ours = ry.mirror_entries(endpoint, args.scheme, args.ca_file, args.insecure_skip_verify)
        return apply_stdin(plan_apply(parse_read_output(read_stdout), ours))
    except ry.RegistriesYamlError as exc:
        raise NodeMirrorError(
            f"node {args.host}: {args.path}: {exc}. Nothing was sent to the node: fix or remove that "
            "entry in the node's file (k3s would not start with it), then run 'pulumi up' again."
        ) from exc
    except (NodeMirrorError, ValueError) as exc:
        raise NodeMirrorError(f"node {args.host}: {args.path}: {exc}") from exc


# --------------------------------------------------------------------------- component


@cache
def _fresh_run_id() -> str:
    return uuid.uuid4().hex


def run_id() -> str:
    """The read trigger of this program run: ``$EDGE_REGISTRY_RUN_ID``, else fresh per run."""
    return os.environ.get(RUN_ID_ENV) or _fresh_run_id()


class NodeMirror(pulumi.ComponentResource):
    """registries.yaml of one k3s node, pointed at the connected registry.

    Chain nodes with ``opts=ResourceOptions(depends_on=[previous])`` for a rolling update:
    the read of a node waits for the previous node's apply.
    """

    read: remote.Command
    """Prints the node's file and record (secret stdout)."""
    apply: remote.Command
    """Installs the merged file; its delete restores the original."""
    result: pulumi.Output[str]
    """What the apply command reported (no secrets)."""

    def __init__(self, name: str, args: NodeMirrorArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("edge-registry:index:NodeMirror", name, {}, opts)
        connection = remote.ConnectionArgs(
            host=args.host, port=args.port, user=args.user,
            private_key=args.ssh_private_key, host_key=args.host_key,
        )
        # Children do not inherit the component's depends_on: the read carries it (rolling order).
        depends_on = opts.depends_on if opts is not None else None
        if args.gone:
            # No create text (nothing runs for a new one), every input ignored (nothing runs for an
            # existing one), retained on delete (destroy does not dial a node that is not there).
            gone = pulumi.ResourceOptions(
                parent=self, retain_on_delete=True, ignore_changes=_ALL_COMMAND_INPUTS, depends_on=depends_on
            )
            self.read = remote.Command(f"{name}-read", connection=connection, opts=gone)
            self.apply = remote.Command(f"{name}-apply", connection=connection, opts=gone)
            self.result = pulumi.Output.from_input(f"{args.host}: gone, not contacted")
            self.register_outputs({"result": self.result})
            return

        if not args.host_key:
            pulumi.log.warn(
                f"node {args.host}: no pinned host key (hostKey): the SSH host key is not checked", resource=self
            )
        self.read = remote.Command(
            f"{name}-read",
            connection=connection,
            create=read_command(args),
            triggers=[run_id()],
            logging=remote.Logging.NONE,
            add_previous_output_in_env=False,
            opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["stdout"], depends_on=depends_on),
        )
        stdin: pulumi.Output[str] = pulumi.Output.all(self.read.stdout, args.endpoint).apply(
            lambda values: pulumi.Output.secret(node_stdin(args, values[0], values[1]))
        )
        self.apply = remote.Command(
            f"{name}-apply",
            connection=connection,
            create=apply_command(args),
            delete=destroy_command(args),
            stdin=stdin,  # secret: the merged file may hold registry credentials
            # A new path is a new file: restore the old one first, then write the new one.
            triggers=[args.path],
            add_previous_output_in_env=False,
            opts=pulumi.ResourceOptions(
                parent=self, additional_secret_outputs=["stdin"], delete_before_replace=True
            ),
        )
        self.result = self.apply.stdout
        self.register_outputs({"result": self.result})


# --------------------------------------------------------------------------- offline render


def _unsecret(value: Any) -> Any:
    if isinstance(value, dict) and _SECRET_SIG in value:
        return value.get("value")
    return value


def mock_outputs(
    type_token: str, name: str, inputs: Mapping[str, Any], node_state: Mapping[str, bytes | None]
) -> dict[str, Any] | None:
    """Fake output state of one of NodeMirror's commands, for Pulumi mocks.

    ``inputs`` are the mock's inputs (wire names; secrets may be wrapped). The read command
    of node ``inputs["connection"]["host"]`` answers as if ``node_state[host]`` were that
    node's registries.yaml (None or missing: no file) and edge-registry had never touched
    it; the apply command answers with empty output. Anything else: None.
    """
    if type_token != "command:remote:Command":
        return None
    create = _unsecret(inputs.get("create"))
    if not isinstance(create, str):
        return None
    if _READ_MARKER in create:
        connection = _unsecret(inputs.get("connection")) or {}
        host = _unsecret(connection.get("host")) if isinstance(connection, dict) else None
        stdout = render_read_output(node_state.get(host) if isinstance(host, str) else None)
    elif _APPLY_MARKER in create:
        stdout = ""
    else:
        return None
    return {**inputs, "stdout": stdout, "stderr": ""}
