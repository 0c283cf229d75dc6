"""NodeMirror: point one k3s node's containerd at the connected registry over SSH.

One ``pulumi_command.remote.Command`` per node, ``<name>-apply``. Its ``stdin`` (a secret) is
the payload computed while the program runs from what the site read on the node
(components/nodes/read.py) and the endpoint (components/nodes/plan.py,
components/nodes/payload.py). ``scripts/apply.sh`` installs it, holding the file's lock
(``scripts/guard.sh``: the record beside the file and the directories above it checked first):
checksum check → pristine original kept once → backup → atomic rename → restart only on change
→ wait → roll back on failure. Its ``delete`` (``scripts/destroy.sh``) runs from stored state,
under the same lock, and puts back the bytes, owner and mode the node had before. A converged node gives the same payload again, so a preview of an
unchanged site shows no change; the component logs per node what the write does (unchanged, or
which keys change and that k3s restarts) as a diagnostic on itself, also in a preview that
cannot see the endpoint, the CA or the credentials yet (planned with placeholders, and saying
so). A node that could not be read, or whose file fails the k3s check in the part edge-registry
does not own, gets no write: a preview warns, ``up`` stops.

No data or credential is ever part of a command string (pulumi-command prints it on failure)
or of ``environment`` (default sshd rejects SetEnv): everything goes on stdin.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pulumi
from pulumi_command import remote

from components.nodes import paths
from components.nodes.commands import apply_command as _apply_command
from components.nodes.commands import destroy_command as _destroy_command
from components.nodes.commands import read_command as _read_command
from components.nodes.payload import NodeMirrorError, NodeRead, apply_stdin

# The protocol's former home: tests/test_preview_read_account.py and tests/test_site_wiring.py import these from here.
from components.nodes.payload import decode_apply_stdin, parse_read_output  # noqa: F401
from components.nodes.plan import describe_plan, describe_with_placeholders, plan_node
from components.nodes.read import NodeFileInvalid, NodeReadFailure, NodeTarget, ReadResult, check_read

__all__ = [
    "DIAL_ERROR_LIMIT",
    "PER_DIAL_TIMEOUT",
    "NodeMirror",
    "NodeMirrorArgs",
    "NodeMirrorError",
    "apply_command",
    "command_timeout_seconds",
    "custom_timeouts",
    "destroy_command",
    "node_target",
    "read_command",
    "unreadable_message",
]

#: pulumi-command dials a dead node this many times, ``PER_DIAL_TIMEOUT`` seconds each (its
#: defaults, 10 × 15 s, make a dead node cost minutes). Also used by destroy (stored state).
DIAL_ERROR_LIMIT = 3
PER_DIAL_TIMEOUT = 5


def command_timeout_seconds(restart_timeout_seconds: int) -> int:
    """How long the engine lets one node's ``-apply`` (create, update or delete) run: its
    ``customTimeouts``. The script bounds itself by ``restart_timeout_seconds`` (W): it waits for
    the file's lock at most 2W + 60 s, then restarts the unit (OpenRC's restart: at most W) and
    waits at most W for it, and when it does not come back restores the previous file and does
    both again: 6W + 60 s at worst. Add the dials (``DIAL_ERROR_LIMIT`` × ``PER_DIAL_TIMEOUT``)
    and a minute of margin, so the script's own rollback always ends first and reports why."""
    return 6 * restart_timeout_seconds + 60 + DIAL_ERROR_LIMIT * PER_DIAL_TIMEOUT + 60


def custom_timeouts(restart_timeout_seconds: int) -> pulumi.CustomTimeouts:
    """The ``customTimeouts`` of a node's ``-apply`` (:func:`command_timeout_seconds`)."""
    limit = f"{command_timeout_seconds(restart_timeout_seconds)}s"
    return pulumi.CustomTimeouts(create=limit, update=limit, delete=limit)


_UNIT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9@._:-]{0,254}$")
# Every input of remote.Command: a node not contacted keeps its stored state, untouched.
_ALL_COMMAND_INPUTS = [
    "add_previous_output_in_env", "connection", "create", "delete", "environment",
    "logging", "stdin", "triggers", "update",
]


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
    """registries.yaml path (RKE2: /etc/rancher/rke2/registries.yaml); canonical
    (:func:`components.nodes.paths.path_problem`)."""
    host_key: str | None = None
    """Pinned SSH host public key; without it the host key is not checked (warned)."""
    gone: bool = False
    """The node no longer exists: keep its resources declared, never contact it."""
    endpoint: pulumi.Input[str]
    """The connected registry as ``host:port`` (mirror key and endpoint)."""
    scheme: Literal["http", "https"] = "http"
    """``https`` when the on-prem install uses TLS."""
    ca_certificate: pulumi.Input[str] | None = None
    """https: the site CA (PEM), installed beside registries.yaml
    (:func:`components.nodes.plan.ca_file_path`, root, 0644) and named in
    ``configs[endpoint].tls.ca_file``."""
    login_server: str | None = None
    """The parent's login server (``<registry>.azurecr.io``), mirrored to the endpoint too."""
    username: pulumi.Input[str] | None = None
    """Client token name: ``configs[endpoint].auth`` (the file is root-only, 0600)."""
    password: pulumi.Input[str] | None = None
    """Client token password (secret): ``configs[endpoint].auth``; travels on stdin only."""
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
        if not _UNIT_RE.fullmatch(self.unit):
            problems.append(f"unit {self.unit!r} is not a service unit name")
        if (path_problem := paths.path_problem(self.path)) is not None:
            problems.append(f"path {self.path!r}: {path_problem}")
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



def read_command(args: NodeMirrorArgs) -> str:
    """The command the node reader runs (scripts/read.sh)."""
    return _read_command(args.path, args.user)


def apply_command(args: NodeMirrorArgs) -> str:
    """The ``create``/``update`` text of the ``-apply`` command (scripts/apply.sh); data on stdin."""
    return _apply_command(args.path, args.unit, args.service_manager, args.restart_timeout_seconds, args.user)


def destroy_command(args: NodeMirrorArgs) -> str:
    """The ``delete`` text of the ``-apply`` command (scripts/destroy.sh)."""
    return _destroy_command(args.path, args.unit, args.service_manager, args.restart_timeout_seconds, args.user)


def node_target(args: NodeMirrorArgs) -> NodeTarget:
    """Where the reader reads this node: the very host, port, user, path and host key of the write."""
    return NodeTarget(host=args.host, port=args.port, user=args.user, path=args.path, host_key=args.host_key)


#: The NodeMirrorArgs inputs that may be outputs of other resources (unknown in a first
#: deploy's preview), in the order the plan takes them.
_INPUTS = ("endpoint", "ca_certificate", "username", "password")


def _plan_inputs(args: NodeMirrorArgs, values: Sequence[Any]) -> dict[str, Any]:
    """components.nodes.plan.plan_node's keywords for ``args``, with ``values`` for :data:`_INPUTS`."""
    return dict(
        host=args.host, path=args.path, scheme=args.scheme, login_server=args.login_server,
        insecure_skip_verify=args.insecure_skip_verify, **dict(zip(_INPUTS, values, strict=True)),
    )


def unreadable_message(failure: NodeReadFailure, path: str, preview: bool) -> str:
    """What the operator reads about a node that could not be read, or whose file cannot be
    merged into, with the way out."""
    if isinstance(failure, NodeFileInvalid):
        if preview:
            return (
                f"node {failure.host}: {path}: {failure.reason}; edge-registry does not write over a file that fails "
                "the k3s check: no write is planned for it in this preview. 'pulumi up' stops until the file is "
                "fixed on the node or the node is marked gone: true."
            )
        return (
            f"node {failure.host}: {path}: {failure.reason}. Nothing was changed: edge-registry does not write over "
            "a file that fails the k3s check. Fix that entry in the file on the node (or set gone: true on the "
            "node in edge-registry:nodes if it no longer exists), then run 'pulumi up' again."
        )
    if preview:
        return (
            f"node {failure.host}: cannot read {path} over SSH ({failure.reason}); no write is planned for "
            "it in this preview. 'pulumi up' stops unless it is reachable again or marked gone: true."
        )
    way_out = (
        "If the node no longer exists, set gone: true on it in edge-registry:nodes; otherwise make it "
        "reachable and run 'pulumi up' again."
        if failure.unreachable else "Fix that, or set gone: true on it if it no longer exists, and run 'pulumi up' again."
    )
    return f"node {failure.host}: cannot read {path} over SSH: {failure.reason}. Nothing was changed. {way_out}"


class NodeMirror(pulumi.ComponentResource):
    """registries.yaml of one k3s node, pointed at the connected registry.

    ``read`` is what the site's node reader returned for this node (ignored for a gone node).
    ``held``: a cloud-only run (components/cloud_only.py): the node is not read and its command
    keeps its stored inputs.
    Chain nodes with ``opts=ResourceOptions(depends_on=[previous])`` for a rolling update: the
    apply of a node waits for the previous node's apply.
    """

    apply: remote.Command
    """Installs the merged file; its delete restores the original."""
    result: pulumi.Output[str]
    """What the apply command reported (no secrets)."""
    summary: pulumi.Output[str]
    """What this run does to the node, in one line without secrets (also logged on the component)."""

    def __init__(
        self,
        name: str,
        args: NodeMirrorArgs,
        read: ReadResult | None = None,
        opts: pulumi.ResourceOptions | None = None,
        held: bool = False,
    ) -> None:
        super().__init__("edge-registry:index:NodeMirror", name, {}, opts)
        connection = remote.ConnectionArgs(
            host=args.host, port=args.port, user=args.user,
            private_key=args.ssh_private_key, host_key=args.host_key,
            dial_error_limit=DIAL_ERROR_LIMIT, per_dial_timeout=PER_DIAL_TIMEOUT,
        )
        # Children do not inherit the component's depends_on: the apply carries it (rolling order).
        depends_on = opts.depends_on if opts is not None else None
        if not (args.gone or held) and isinstance(read, NodeRead):
            read = check_read(args.host, read)  # a file the merge cannot keep is never written over
        if args.gone or held or not isinstance(read, NodeRead):
            if args.gone:
                self.summary = pulumi.Output.from_input(f"node {args.host}: gone, not contacted")
            elif held:
                self.summary = pulumi.Output.from_input(f"node {args.host}: cloudOnly, not contacted")
            else:
                failure = read if isinstance(read, NodeReadFailure) else NodeReadFailure(args.host, "not read", True)
                if not pulumi.runtime.is_dry_run():
                    raise NodeMirrorError(unreadable_message(failure, args.path, preview=False))
                message = unreadable_message(failure, args.path, preview=True)
                pulumi.log.warn(message, resource=self)
                self.summary = pulumi.Output.from_input(message)
            # No create text (nothing runs for a new one), every input ignored (nothing runs for an
            # existing one). A gone node is also retained on delete (destroy does not dial it).
            untouched = pulumi.ResourceOptions(
                parent=self, retain_on_delete=args.gone or None, ignore_changes=_ALL_COMMAND_INPUTS,
                depends_on=depends_on, custom_timeouts=custom_timeouts(args.restart_timeout_seconds),
            )
            self.apply = remote.Command(f"{name}-apply", connection=connection, opts=untouched)
            self.result = pulumi.Output.from_input(f"{args.host}: not contacted")
            self.register_outputs({"result": self.result})
            return

        if not args.host_key:
            pulumi.log.warn(
                f"node {args.host}: no pinned host key (hostKey): the SSH host key is not checked", resource=self
            )

        node_read: NodeRead = read
        inputs = [getattr(args, name) for name in _INPUTS]

        def payload(values: list[Any]) -> tuple[str, str]:
            plan = plan_node(node_read, **_plan_inputs(args, values))
            return apply_stdin(plan), describe_plan(node_read, plan, args.host, args.path, args.unit)

        planned: pulumi.Output[tuple[str, str]] = pulumi.Output.all(*inputs).apply(payload)
        stdin: pulumi.Output[str] = pulumi.Output.secret(planned.apply(lambda p: p[0]))

        async def summary() -> str:
            # A preview does not run apply() on unknown values (a first deploy: the endpoint, the
            # CA or the password), so the line would never be logged: plan with placeholders then.
            values = [pulumi.Output.from_input(value) for value in inputs]
            known = [await value.is_known() for value in values]
            if all(known):
                return str((await planned.future() or ("", ""))[1])
            resolved = [await value.future() if is_known else None for value, is_known in zip(values, known, strict=True)]
            not_known = [name for name, is_known in zip(_INPUTS, known, strict=True) if not is_known]
            return describe_with_placeholders(node_read, args.unit, not_known, **_plan_inputs(args, resolved))

        self.summary = pulumi.Output.from_input(summary())
        self.summary.apply(lambda text: pulumi.log.info(text, resource=self))
        self.apply = remote.Command(
            f"{name}-apply",
            connection=connection,
            create=apply_command(args),
            delete=destroy_command(args),
            stdin=stdin,  # secret: the file may hold credentials
            # A new path is a new file: restore the old one first, then write the new one.
            triggers=[args.path],
            add_previous_output_in_env=False,
            opts=pulumi.ResourceOptions(
                parent=self, additional_secret_outputs=["stdin"], delete_before_replace=True, depends_on=depends_on,
                # The engine stops waiting after this: longer than the script's own worst case
                # (lock wait, restart, rollback), which therefore always rolls back first.
                custom_timeouts=custom_timeouts(args.restart_timeout_seconds),
            ),
        )
        self.result = self.apply.stdout
        # Not the summary: a preview computes it from placeholder text where `up` has the real
        # line, and the engine checks a component's registered outputs against a saved plan
        # (`up --plan` would fail with "properties changed: summary").
        self.register_outputs({"result": self.result})
