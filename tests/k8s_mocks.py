"""Pulumi mocks for the Kubernetes side: run a program, record every resource request.

`MockResourceArgs` carries neither parent, dependencies nor options, so `RecordingMonitor`
overrides the monitor's RegisterResource/ReadResource and keeps the whole request. Inputs are
recorded with secrets still wrapped (`{SECRET_SIG: …, "value": …}`), which is how a test tells
a secret from a plain value.

Where the engine, not a provider, decides, the monitor does what the engine does
(pulumi/pulumi pkg/resource/deploy/step.go, ReadStep): a read whose id is unknown (a preview)
is skipped with empty outputs, and a read of an object that does not exist fails with
"resource '<id>' does not exist". In a preview, a Helm release the cluster does not hold yet is
a create: its id is unknown, as the engine reports it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockCallArgs, MockMonitor, MockResourceArgs, Mocks
from pulumi.runtime.proto import resource_pb2

#: Key of the map that wraps a secret value on the wire.
SECRET_SIG = rpc._special_sig_key  # "4dabf18193072939515e22adb298388d"
SECRET_VALUE = rpc._special_secret_sig
#: The wire value of an unknown (a preview's "known after apply").
UNKNOWN = rpc.UNKNOWN

RELEASE = "kubernetes:helm.sh/v3:Release"
NAMESPACE = "kubernetes:core/v1:Namespace"
SECRET = "kubernetes:core/v1:Secret"
SERVICE = "kubernetes:core/v1:Service"
SERVICE_ACCOUNT = "kubernetes:core/v1:ServiceAccount"
SERVICE_ACCOUNT_PATCH = "kubernetes:core/v1:ServiceAccountPatch"
PROVIDER = "pulumi:providers:kubernetes"


def is_secret(value: Any) -> bool:
    """Whether a recorded input value is wrapped as a secret."""
    return isinstance(value, Mapping) and value.get(SECRET_SIG) == SECRET_VALUE


def unwrap(value: Any) -> Any:
    """A recorded value with every secret wrapper removed (for content assertions)."""
    if is_secret(value):
        return unwrap(value["value"])
    if isinstance(value, Mapping):
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


def plaintext_paths(value: Any, needle: str, path: str = "") -> Iterator[str]:
    """Paths where `needle` occurs in a string that is NOT under a secret wrapper."""
    if is_secret(value):
        return
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield from plaintext_paths(v, needle, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from plaintext_paths(v, needle, f"{path}[{i}]")
    elif isinstance(value, str) and needle in value:
        yield path or "."


@dataclass
class Request:
    """One RegisterResource or ReadResource request as the engine would see it."""

    operation: str  # "register" | "read"
    type: str
    name: str
    urn: str
    parent: str
    provider: str
    dependencies: list[str]
    delete_before_replace: bool
    retain_on_delete: bool
    additional_secret_outputs: list[str]
    read_id: str | None
    inputs: dict[str, Any]  # secrets still wrapped

    @property
    def plain(self) -> dict[str, Any]:
        """Inputs with secret wrappers removed."""
        return unwrap(self.inputs)


@dataclass
class Cluster:
    """What the fake cluster already holds: Services (ClusterIPs) and ServiceAccounts."""

    #: `namespace/name` → spec.clusterIP of Services that exist after the release.
    services: dict[str, str] = field(default_factory=dict)
    #: `namespace/name` → imagePullSecrets names of ServiceAccounts that exist.
    service_accounts: dict[str, list[str]] = field(default_factory=dict)
    #: `namespace/name` of Helm releases installed already: a preview updates them (id known);
    #: any other release is created, and its id is unknown in a preview.
    releases: set[str] = field(default_factory=set)


class K8sMocks(Mocks):
    """Echo inputs as state, add what the API server or Helm would, and serve reads from `cluster`."""

    def __init__(self, cluster: Cluster | None = None, preview: bool = False) -> None:
        self.cluster = cluster or Cluster()
        self.preview = preview
        #: `(type, namespace/name)` of every object read from the fake cluster.
        self.lookups: list[tuple[str, str]] = []

    def call(self, args: MockCallArgs) -> tuple[dict, list[tuple[str, str]] | None]:
        return {}, None

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict]:
        if args.resource_id:  # a read: the object must exist in the fake cluster
            return self._read(args.typ, args.resource_id)
        state = dict(args.inputs)
        metadata: dict[str, Any] = state.get("metadata") or {}
        ident = "/".join(p for p in (metadata.get("namespace"), metadata.get("name")) if p) or args.name
        if args.typ == RELEASE:
            ident = f"{state['namespace']}/{state['name']}"
            if self.preview and ident not in self.cluster.releases:
                return "", state  # a create in a preview: no id, no status yet
            state["status"] = {
                "name": state["name"],
                "namespace": state["namespace"],
                "status": "deployed",
                "chart": "connected-registry",
                "version": state.get("version"),
                "revision": 1,
            }
        elif args.typ == NAMESPACE:
            # The API server gives a uid, also to the server-side dry run pulumi-kubernetes runs
            # for a create in a preview; the id stays unknown until the namespace exists.
            state["metadata"] = {**metadata, "uid": f"uid-{metadata.get('name')}"}
            if self.preview and not any(k.startswith(f"{metadata.get('name')}/") for k in self.cluster.service_accounts):
                return "", state
        return ident, state

    def _read(self, typ: str, resource_id: str) -> tuple[str, dict]:
        self.lookups.append((typ, resource_id))
        namespace, _, name = resource_id.partition("/")
        metadata = {"name": name, "namespace": namespace}
        if typ == SERVICE and resource_id in self.cluster.services:
            spec = {"type": "ClusterIP", "clusterIP": self.cluster.services[resource_id]}
            return resource_id, {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": spec}
        if typ == SERVICE_ACCOUNT and resource_id in self.cluster.service_accounts:
            refs = [{"name": n} for n in self.cluster.service_accounts[resource_id]]
            state: dict[str, Any] = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata}
            if refs:
                state["imagePullSecrets"] = refs
            return resource_id, state
        # The engine's own error when a provider's Read finds nothing (ReadStep.Apply).
        raise LookupError(f"resource '{resource_id}' does not exist")


class RecordingMonitor(MockMonitor):
    """MockMonitor that keeps every RegisterResource/ReadResource request."""

    def __init__(self, mocks: Mocks) -> None:
        super().__init__(mocks)
        self.requests: list[Request] = []

    def RegisterResource(self, request):  # noqa: N802 - gRPC method name
        if request.type != "pulumi:pulumi:Stack":
            self._record("register", request, read_id=None, props=request.object)
        return super().RegisterResource(request)

    def ReadResource(self, request):  # noqa: N802 - gRPC method name
        self._record("read", request, read_id=request.id, props=request.properties)
        if request.id == UNKNOWN:
            # The engine skips a read whose id is not known yet: no provider call, no outputs.
            return resource_pb2.ReadResourceResponse(urn=self.make_urn(request.parent, request.type, request.name))
        return super().ReadResource(request)

    def _record(self, operation: str, request: Any, read_id: str | None, props: Any) -> None:
        self.requests.append(
            Request(
                operation=operation,
                type=request.type,
                name=request.name,
                urn=self.make_urn(request.parent, request.type, request.name),
                parent=request.parent,
                provider=request.provider,
                dependencies=list(request.dependencies),
                delete_before_replace=bool(getattr(request, "deleteBeforeReplace", False)),
                retain_on_delete=bool(getattr(request, "retainOnDelete", False)),
                additional_secret_outputs=list(request.additionalSecretOutputs),
                read_id=read_id,
                inputs=rpc.deserialize_properties(props, keep_unknowns=True),
            )
        )

    def of_type(self, typ: str, operation: str = "register") -> list[Request]:
        """Requests for resources of one type."""
        return [r for r in self.requests if r.type == typ and r.operation == operation]

    def one(self, typ: str, operation: str = "register") -> Request:
        """The single request of one type (fails if there are none or several)."""
        found = self.of_type(typ, operation)
        assert len(found) == 1, f"expected one {operation} of {typ}, got {[r.name for r in found]}"
        return found[0]


@dataclass
class Resolved:
    """An Output's value and whether it is secret and known (a preview may not know it)."""

    value: Any
    secret: bool
    known: bool = True


@dataclass
class Run:
    """Result of running a program under mocks."""

    monitor: RecordingMonitor
    outputs: dict[str, Resolved]


def run_program(
    program: Callable[[], Mapping[str, Any]], cluster: Cluster | None = None, preview: bool = False
) -> Run:
    """Run `program` under fresh mocks (as `pulumi preview` with `preview`, else `pulumi up`);
    it returns named Outputs to resolve."""
    mocks = K8sMocks(cluster, preview=preview)
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, monitor=monitor, preview=preview)
    resolved: dict[str, Resolved] = {}

    @pulumi.runtime.test
    def body() -> Any:
        outputs = {k: pulumi.Output.from_input(v) for k, v in program().items()}

        async def collect() -> None:
            for key, output in outputs.items():
                resolved[key] = Resolved(await output.future(), await output.is_secret(), await output.is_known())

        return asyncio.ensure_future(collect())

    body()
    return Run(monitor, resolved)
