"""Plays the Pulumi engine and pulumi-command for NodeMirror, against a real node (tests/sshd.py).

A *run* evaluates NodeMirror under the SDK's mocks, as ``pulumi preview`` (dry run) or
``pulumi up``. The node is read for real, at program time, by the program's own reader
(components/nodes/read.py, paramiko). The engine's part is played here:

* **diff**: the ``-apply`` command's new inputs against the stored ones (inputs named in
  ``ignoreChanges`` keep their stored value; a changed ``triggers`` replaces). ``same`` is what
  ``pulumi preview`` shows as no change.
* **up**: on ``create``/``update``/``replace``, the ``create`` text runs over SSH with the
  ``stdin`` — exactly what pulumi-command does — and on success the inputs become the state.
* **destroy**: the stored ``delete`` text with the stored stdin.
"""

from __future__ import annotations

import contextlib
import dataclasses
import subprocess
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime.mocks import MockMonitor

from components.nodes import mirror as nm
from components.nodes import registries_yaml as ry
from components.nodes.read import NodeReader, SshNodeReader
from tests.sshd import NodePath, SshServer, as_root

ENDPOINT = "10.43.0.10:80"
SECRET_SIG = "4dabf18193072939515e22adb298388d"
#: The engine's wire value for an output that is not known yet (a preview of a resource to create).
UNKNOWN_WIRE = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
PENDING_TYPE = "test:index:Pending"
# Input names as the engine stores them (camelCase wire names) for the ignoreChanges mapping.
_WIRE = {"add_previous_output_in_env": "addPreviousOutputInEnv"}


#: Where the node tests keep their registries.yaml files. The node scripts refuse a file whose
#: directory, or any directory above it, another user could change (pytest's temp dirs are under
#: /tmp, world-writable): every test node lives in a directory of its own under this one, each
#: created root-owned 0755, as /etc/rancher/k3s is on a node.
NODE_BASE = Path("/var/lib/edge-registry-tests")


@contextlib.contextmanager
def node_dir(*subdirs: str) -> Iterator[Path]:
    """A new directory under :data:`NODE_BASE` (and ``subdirs`` in it), root 0755, removed with
    everything in it afterwards."""
    root = NODE_BASE / uuid.uuid4().hex[:12]
    made = [str(NODE_BASE), str(root), *(str(root / s) for s in subdirs)]
    subprocess.run([*as_root(), "install", "-d", "-m", "0755", "-o", "0", "-g", "0", *made], check=True)
    try:
        yield root
    finally:
        NodePath(root).remove_tree()
        subprocess.run([*as_root(), "rmdir", str(NODE_BASE)], capture_output=True)  # when it is empty


def unwrap(value: Any) -> Any:
    """Mock inputs with secrets unwrapped (they arrive as a signature map)."""
    if isinstance(value, dict):
        if SECRET_SIG in value:
            return unwrap(value.get("value"))
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


class RecordingMonitor(MockMonitor):
    """Keeps every RegisterResource request (options, parent, dependencies)."""

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.requests: dict[str, Any] = {}

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        self.requests[request.name] = request
        return super().RegisterResource(request)


class CommandMocks(pulumi.runtime.Mocks):
    """Records every resource's inputs (raw and unwrapped); commands answer with empty output."""

    def __init__(self) -> None:
        self.inputs: dict[str, dict[str, Any]] = {}
        self.raw: dict[str, dict[str, Any]] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        if args.typ == PENDING_TYPE:  # a value a preview cannot see, as the engine sends it
            return f"{args.name}-id", {"value": UNKNOWN_WIRE}
        self.raw[args.name] = dict(args.inputs)
        self.inputs[args.name] = unwrap(dict(args.inputs))
        return f"{args.name}-id", {**args.inputs, "stdout": "", "stderr": ""}

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None


class Pending(pulumi.CustomResource):
    """A resource whose ``value`` the engine reports as unknown (a first deploy's ClusterIP, CA
    or password, in a preview)."""

    value: pulumi.Output[Any]

    def __init__(self, name: str) -> None:
        super().__init__(PENDING_TYPE, name, {"value": None})


@dataclass
class Evaluation:
    """What one program run registered and said."""

    mocks: CommandMocks
    monitor: RecordingMonitor
    logs: list[tuple[str, str]] = field(default_factory=list)
    summaries: list[str] = field(default_factory=list)


def evaluate(
    nodes: list[nm.NodeMirrorArgs],
    reader: NodeReader,
    preview: bool = False,
    private_key: str | None = "key",
    unknown: Sequence[str] = (),
) -> Evaluation:
    """Run a program that reads ``nodes`` with ``reader`` and declares them (chained, rolling).

    ``unknown``: NodeMirrorArgs fields (``endpoint``, ``ca_certificate``, ``password``…) that are
    outputs of a resource the engine has not created yet: unknown in a preview.
    """
    mocks = CommandMocks()
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project="edge-registry", stack="test", preview=preview, monitor=monitor)
    result = Evaluation(mocks, monitor)
    original = (pulumi.log.info, pulumi.log.warn)
    def record(level: str) -> Any:
        def log(msg: str, resource: Any = None, *args: Any, **kwargs: Any) -> None:
            # Diagnostics must name the node's component, so the engine prints them under it.
            assert level != "info" or isinstance(resource, nm.NodeMirror), msg
            result.logs.append((level, msg))
        return log

    pulumi.log.info = record("info")  # type: ignore[assignment]
    pulumi.log.warn = record("warn")  # type: ignore[assignment]

    @pulumi.runtime.test
    def program() -> pulumi.Output[Any]:
        targets = [nm.node_target(a) for a in nodes if not a.gone]
        reads = reader.read_nodes(targets, private_key) if targets else {}
        previous: nm.NodeMirror | None = None
        summaries = []
        for i, args in enumerate(nodes):
            if unknown:
                args = dataclasses.replace(args, **{name: Pending(f"pending-{i}-{name}").value for name in unknown})
            opts = pulumi.ResourceOptions(depends_on=[previous]) if previous else None
            previous = nm.NodeMirror(f"node{i}", args, reads.get(args.host), opts)
            summaries.append(previous.summary)
        return pulumi.Output.all(*summaries).apply(result.summaries.extend)

    try:
        program()
    finally:
        pulumi.log.info, pulumi.log.warn = original  # type: ignore[assignment]
    return result


def diff(stored: dict[str, Any] | None, new: dict[str, Any], ignore_changes: list[str]) -> str:
    """The engine's verdict for one command: create, same, update or replace."""
    if stored is None:
        return "create"
    ignored = {_WIRE.get(k, k) for k in ignore_changes}
    changed = sorted(k for k in set(stored) | set(new) if k not in ignored and stored.get(k) != new.get(k))
    if not changed:
        return "same"
    return "replace" if "triggers" in changed else "update"


class Node:
    """One node (the SSH server), one registries.yaml path on it, and the stack's stored state."""

    def __init__(self, server: SshServer, path: Path, connect_timeout: float = 5) -> None:
        self.server = server
        # The scripts leave these root-owned 0600: NodePath reads them as root (sudo -n if need be).
        self.path = NodePath(path)
        self.side = NodePath(f"{path}.edge-registry")
        self.reader = SshNodeReader(connect_timeout=connect_timeout, command_timeout=30)
        self.stored: dict[str, Any] | None = None  # the -apply state after the last successful run
        self.last_apply: dict[str, Any] = {}
        self.last: Evaluation | None = None

    def args(self, endpoint: str = ENDPOINT, **overrides: Any) -> nm.NodeMirrorArgs:
        values: dict[str, Any] = dict(
            host="127.0.0.1", port=self.server.port, user=self.server.user, role="server", unit="k3s",
            path=str(self.path), host_key=self.server.host_public_key, endpoint=endpoint,
            ssh_private_key=pulumi.Output.secret(self.server.client_private_key),
            restart_timeout_seconds=2, service_manager="systemd",
        )
        values.update(overrides)
        return nm.NodeMirrorArgs(**values)

    def evaluate(self, preview: bool, endpoint: str = ENDPOINT, **overrides: Any) -> Evaluation:
        self.last = evaluate([self.args(endpoint, **overrides)], self.reader, preview, self.server.client_private_key)
        self.last_apply = self.last.mocks.inputs["node0-apply"]
        return self.last

    def preview(self, endpoint: str = ENDPOINT, **overrides: Any) -> str:
        """``pulumi preview``: the engine's verdict for the node's command."""
        evaluation = self.evaluate(True, endpoint, **overrides)
        request = evaluation.monitor.requests["node0-apply"]
        return diff(self.stored, self.last_apply, list(request.ignoreChanges))

    def plan(self, endpoint: str = ENDPOINT, **overrides: Any) -> dict[str, Any]:
        """``pulumi up`` up to the apply: the node is read; returns the -apply inputs."""
        self.evaluate(False, endpoint, **overrides)
        return self.last_apply

    def run_apply(self, apply: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        result = self.server.ssh(apply["create"], apply["stdin"])
        if result.returncode == 0:
            self.stored = apply
        return result

    def up(self, endpoint: str = ENDPOINT, **overrides: Any) -> subprocess.CompletedProcess[str]:
        """A whole ``pulumi up`` of this node: the command runs only when the engine sees a change."""
        apply = self.plan(endpoint, **overrides)
        if diff(self.stored, apply, []) == "same":
            return subprocess.CompletedProcess([], 0, "(no change: not run)", "")
        return self.run_apply(apply)

    def destroy(self) -> subprocess.CompletedProcess[str]:
        """``pulumi destroy``: the stored delete text with the stored stdin."""
        assert self.stored is not None, "nothing applied yet"
        return self.server.ssh(self.stored["delete"], self.stored["stdin"])

    def content(self) -> bytes | None:
        return self.path.read_bytes() if self.path.exists() else None

    def document(self) -> dict[str, Any]:
        return ry.parse(self.content())
