"""The offline renderer's fakes: deterministic stand-ins for what Azure, the cluster and the
nodes would answer (components/preview/render.py runs the real program against them).

* :class:`CloudFakes` / :class:`RenderMocks`: the Pulumi mocks (ids, the gateway endpoint,
  passwords, the Helm release, the chart's Service, remote commands' empty output).
* :class:`FakeNodeReader`: a node reader (components/nodes/read.py) that answers from
  ``--node-state`` files instead of SSH: each node as edge-registry never touched it.
* :func:`default_catalog`: a plausible repository catalog for ``ns/*`` patterns.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from components.nodes.payload import NodeRead
from components.nodes.read import NodeTarget, ReadResult
from components.preview.values import UNKNOWN

DEFAULT_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
DEFAULT_LOCATION = "westeurope"


class FakeNodeReader:
    """Reads nodes from a map instead of SSH: ``node_state[host]`` is that node's registries.yaml
    (bytes; None or missing: no file) and edge-registry never touched it, or a full
    :class:`NodeRead` / :class:`NodeReadFailure` for tests."""

    def __init__(self, node_state: Mapping[str, bytes | None | ReadResult] | None = None) -> None:
        self.node_state = dict(node_state or {})
        self.reads: list[list[str]] = []
        """The hosts asked for, per call (tests check nothing gone is read)."""
        self.targets: list[NodeTarget] = []
        """Every target asked for (user, path, command: as the real reader would connect)."""

    def read_nodes(
        self, targets: Sequence[NodeTarget], private_key: str | None, use_agent: bool = False
    ) -> dict[str, ReadResult]:
        """One answer per target, from the map."""
        self.reads.append([t.host for t in targets])
        self.targets += targets
        results: dict[str, ReadResult] = {}
        for target in targets:
            state = self.node_state.get(target.host)
            results[target.host] = (
                NodeRead(content=state, recorded=False) if state is None or isinstance(state, bytes) else state
            )
        return results


def _digest(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()


def default_catalog(repositories: Sequence[str]) -> Callable[[str], list[str]]:
    """A plausible catalog: every explicit repository plus two per ``ns/*`` pattern."""
    def catalog(_login_server: str) -> list[str]:
        names = []
        for entry in repositories:
            if entry.endswith("/*"):
                names += [f"{entry[:-2]}/app-a", f"{entry[:-2]}/app-b"]
            else:
                names.append(entry)
        return names
    return catalog


#: The fake password every fake token holds, and the fake TokenPassword state that matches it.
FAKE_SLOT = "password1"
FAKE_PASSWORD_CREATED = "2025-01-01T00:00:00Z"
FAKE_PASSWORD_EXPIRY = "2030-01-01T00:00:00Z"
FAKE_LAST_SYNC = "2025-06-01T00:00:00Z"


def converged_sync_status(where: Any) -> Any:
    """A site that synced after its passwords were issued, one password per token: nothing to do."""
    from components.azure.rotation import SlotStatus, parse_time
    from components.azure.sync_status import SiteSyncStatus

    slot = SlotStatus(FAKE_SLOT, parse_time(FAKE_PASSWORD_CREATED), parse_time(FAKE_PASSWORD_EXPIRY))
    return SiteSyncStatus(
        exists=True,
        last_sync_time=parse_time(FAKE_LAST_SYNC),
        connection_state="Online",
        activation_status="Active",
        tokens={name: [slot] for name in where.token_names},
        gateway_endpoint=fake_gateway_endpoint(where.registry_name, DEFAULT_LOCATION),
    )


def fake_gateway_endpoint(registry_name: str, location: str) -> str:
    """The gateway endpoint ARM reports for a connected registry of ``registry_name``."""
    return f"{registry_name.lower()}.{location}.data.azurecr.io"


@dataclass
class CloudFakes:
    """Deterministic values in place of what Azure, the cluster and the nodes return."""

    subscription_id: str = DEFAULT_SUBSCRIPTION
    location: str = DEFAULT_LOCATION
    registry_sku: str = "Premium"
    data_endpoint_enabled: bool = True
    cluster_ip: str | None = None
    node_state: Mapping[str, bytes | None] = field(default_factory=dict)
    """registries.yaml per node host (None or missing: no file), for :class:`FakeNodeReader`."""
    release_update: bool = False
    """Answer the Helm release as the engine does in a preview of a release update: its
    ``status`` unknown, its id known (docs/runbooks.md, reinstall)."""
    connected_registry_update: bool = False
    """Answer the ConnectedRegistry as azure-native does in a preview of its update (a schedule
    change): every output-only property unknown (DESIGN: the engine's preview semantics), the
    inputs as given."""
    release_new: bool = False
    """Answer the Helm release as the engine does in a preview of its first install: no id yet
    (nor status), so reads keyed on it are skipped."""
    service_missing: bool = False
    """The chart's Service is not there (the lookup finds nothing)."""
    password_epoch: str = ""
    """Varies the fake token passwords, as if Azure had issued new ones (a rotation)."""
    sync_status: Callable[[Any], Any] = converged_sync_status
    """ARM's view of the site at program time (components/azure/sync_status.py)."""
    dynamic_state: Callable[[str, dict[str, Any]], tuple[str, dict[str, Any]]] | None = None
    """State of a dynamic resource, given (name, inputs); tests plug in the real providers here."""
    release_installed: bool | None = True
    """What the program-time read of the Helm release finds (components/cluster/release_read.py):
    installed, not installed, or None (the cluster could not be read)."""

    def read_release(self, target: Any) -> Any:
        """The release reader the render passes the program: answers ``release_installed``."""
        from components.cluster.release_read import ReleaseRead

        installed = self.release_installed
        return ReleaseRead(installed=installed, error=None if installed is not None else "fake: unreadable")


class RenderMocks:
    """Pulumi mocks answering with :class:`CloudFakes`."""

    def __init__(self, fakes: CloudFakes) -> None:
        self.fakes = fakes

    def call(self, args: Any) -> tuple[dict[str, Any], list[Any]]:
        if args.token == "azure-native:containerregistry:getRegistry":
            name = args.args["registryName"]
            rg = args.args["resourceGroupName"]
            return {
                "id": f"/subscriptions/{self.fakes.subscription_id}/resourceGroups/{rg}"
                f"/providers/Microsoft.ContainerRegistry/registries/{name}",
                "name": name,
                "location": self.fakes.location,
                "loginServer": f"{name.lower()}.azurecr.io",
                "sku": {"name": self.fakes.registry_sku, "tier": self.fakes.registry_sku},
                "dataEndpointEnabled": self.fakes.data_endpoint_enabled,
            }, []
        return {}, []

    def new_resource(self, args: Any) -> tuple[str, dict[str, Any]]:
        inputs = dict(args.inputs)
        typ, name = args.typ, args.name
        if typ.startswith("azure-native:containerregistry:"):
            return self._azure(typ, name, inputs)
        if typ.startswith("pulumi-python:dynamic"):
            return self._dynamic(name, inputs)
        if typ == "kubernetes:helm.sh/v3:Release":
            status: Any = {"name": inputs.get("name", name), "namespace": inputs.get("namespace", "default"),
                           "status": "deployed", "version": inputs.get("version"), "revision": 1,
                           "chart": "connected-registry"}
            release_id = f"{status['namespace']}/{status['name']}"
            if self.fakes.release_update:
                status = UNKNOWN
            if self.fakes.release_new:
                return "", dict(inputs)
            return release_id, {**inputs, "status": status}
        if typ == "kubernetes:core/v1:Service" and self.fakes.service_missing:
            return args.resource_id or name, {}
        if typ == "kubernetes:core/v1:Service":
            ip = self.fakes.cluster_ip or "10.43.{}.{}".format(*(int(_digest(name)[i:i + 2], 16) for i in (0, 2)))
            spec = dict(inputs.get("spec") or {})
            spec.setdefault("clusterIP", ip)
            return args.resource_id or name, {**inputs, "spec": spec}
        if typ == "command:remote:Command":
            return f"{name}-id", {**inputs, "stdout": "", "stderr": ""}
        if typ.startswith("kubernetes:"):
            meta = inputs.get("metadata") or {}
            ident = "/".join(p for p in (meta.get("namespace"), meta.get("name")) if isinstance(p, str)) or name
            return ident, inputs
        return f"{name}-id", inputs

    def _azure(self, typ: str, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        registry_id = (
            f"/subscriptions/{self.fakes.subscription_id}/resourceGroups/{inputs['resourceGroupName']}"
            f"/providers/Microsoft.ContainerRegistry/registries/{inputs['registryName']}"
        )
        kind, key = {
            "azure-native:containerregistry:ScopeMap": ("scopeMaps", "scopeMapName"),
            "azure-native:containerregistry:Token": ("tokens", "tokenName"),
            "azure-native:containerregistry:ConnectedRegistry": ("connectedRegistries", "connectedRegistryName"),
        }.get(typ, (typ.rsplit(":", 1)[-1], "name"))
        resource_name = inputs.get(key, name)
        state = {**inputs, "name": resource_name}
        if kind == "connectedRegistries":
            parent = dict(inputs.get("parent") or {})
            sync = dict(parent.get("syncProperties") or {})
            sync["gatewayEndpoint"] = fake_gateway_endpoint(inputs["registryName"], self.fakes.location)
            parent["syncProperties"] = sync
            state.update(parent=parent, activation={"status": "Inactive"}, connectionState="Offline",
                         loginServer={"host": f"{resource_name.lower()}.local"})
            if self.fakes.connected_registry_update:
                # Output-only in the ARM spec (ConnectedRegistryProperties, SyncProperties).
                sync.update(gatewayEndpoint=UNKNOWN, lastSyncTime=UNKNOWN)
                # ``name`` stays: azure-native keeps it from the old state (tests/engine/README.md,
                # "Stand-in providers: azure-native").
                state.update(activation=UNKNOWN, connectionState=UNKNOWN, loginServer=UNKNOWN,
                             provisioningState=UNKNOWN, version=UNKNOWN, lastActivityTime=UNKNOWN,
                             statusDetails=UNKNOWN)
        return f"{registry_id}/{kind}/{resource_name}", state

    def _dynamic(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        inputs.pop("__provider", None)
        if self.fakes.dynamic_state is not None:
            return self.fakes.dynamic_state(name, inputs)
        state = dict(inputs)
        if "tokenId" in inputs or "token_id" in inputs:
            state.update(
                value=f"fake{_digest('password', name, *filter(None, [self.fakes.password_epoch]))[:40]}",
                slot=FAKE_SLOT,
                expiry=FAKE_PASSWORD_EXPIRY,
                username=inputs.get("tokenName", inputs.get("token_name", "")),
                nextSlot="",
                nextValue="",
                nextExpiry="",
                missing=[],
            )
        if "activeSlot" in inputs:  # SlotRetirement: nothing left to retire
            state.update(retiringSlot="", switchedAt=FAKE_LAST_SYNC, phase="settled")
        if "commonName" in inputs or "caCertificatePem" in inputs:
            # SiteCa / ServerCertificate: stand-in texts (issuing real keys would make every render
            # differ); the test suite issues real ones (tests/test_tls_handshake.py).
            kind = "ca" if "commonName" in inputs else "server"
            state.update(
                certificatePem=_stand_in("CERTIFICATE", kind, name),
                keyPem=_stand_in("PRIVATE KEY", kind, name),
                notAfter="2030-01-01T00:00:00Z",
            )
        return f"{name}-id", state


def _stand_in(label: str, *parts: str) -> str:
    # Not PEM on purpose: nothing may mistake a stand-in for key material.
    return f"render-fake-{label.lower().replace(' ', '-')}-{_digest(label, *parts)[:40]}\n"


