"""The azure-native stand-in (tests/engine/standin/azure_native.py) against the ARM emulator
(tests/arm_server.py).

Fast part: the plugin as a real process, driven over gRPC with the SDK's ResourceProviderStub as
the engine would; every test asserts the REST calls the emulator recorded. Engine part: a tiny
project with a ScopeMap, a Token and a ConnectedRegistry through the real CLI under
``scripts/engine run`` (skipped unless the engine is built, like test_inline_smoke.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import status_pb2
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

from components.azure.arm import ArmClient
from tests.engine.site_harness import engine_bin
from tests.arm_server import FAKE_BEARER, ArmServer, ArmState, FakeCredential
from tests.engine.standin.plugin import UNKNOWN, to_dict, to_struct

ROOT = Path(__file__).resolve().parents[2]
SUB = "00000000-0000-0000-0000-000000000000"
RG, REGISTRY = "rg-edge", "contosoedge"
REGISTRY_ID = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.ContainerRegistry/registries/{REGISTRY}"
API = "2024-11-01-preview"
SCOPE_MAP = "azure-native:containerregistry:ScopeMap"
TOKEN = "azure-native:containerregistry:Token"
CONNECTED_REGISTRY = "azure-native:containerregistry:ConnectedRegistry"
Diff = provider_pb2.PropertyDiff


# --- the plugin over gRPC ------------------------------------------------------------------------


class Plugin:
    """The stand-in process and a stub, with the engine's side of each call."""

    def __init__(self, stub: provider_pb2_grpc.ResourceProviderStub) -> None:
        self.stub = stub

    @staticmethod
    def urn(typ: str, name: str) -> str:
        return f"urn:pulumi:test::proj::{typ}::{name}"

    def check(self, typ: str, news: dict[str, Any], olds: dict[str, Any] | None = None,
              name: str = "res") -> provider_pb2.CheckResponse:
        return self.stub.Check(provider_pb2.CheckRequest(
            urn=self.urn(typ, name), type=typ, news=to_struct(news), olds=to_struct(olds or {}), randomSeed=b"seed"))

    def inputs(self, typ: str, news: dict[str, Any]) -> dict[str, Any]:
        checked = self.check(typ, news)
        assert not checked.failures, checked.failures
        return to_dict(checked.inputs)

    def create(self, typ: str, inputs: dict[str, Any], preview: bool = False) -> tuple[str, dict[str, Any]]:
        done = self.stub.Create(provider_pb2.CreateRequest(
            urn=self.urn(typ, "res"), type=typ, properties=to_struct(inputs), preview=preview))
        return done.id, to_dict(done.properties)

    def diff(self, typ: str, state: dict[str, Any], olds: dict[str, Any], news: dict[str, Any]) -> Any:
        return self.stub.Diff(provider_pb2.DiffRequest(
            id="id", urn=self.urn(typ, "res"), type=typ, olds=to_struct(state), old_inputs=to_struct(olds),
            news=to_struct(news)))

    def update(self, typ: str, rid: str, state: dict[str, Any], olds: dict[str, Any], news: dict[str, Any],
               preview: bool = False) -> dict[str, Any]:
        done = self.stub.Update(provider_pb2.UpdateRequest(
            id=rid, urn=self.urn(typ, "res"), type=typ, olds=to_struct(state), old_inputs=to_struct(olds),
            news=to_struct(news), preview=preview))
        return to_dict(done.properties)

    def read(self, typ: str, rid: str, state: dict[str, Any] | None = None,
             inputs: dict[str, Any] | None = None) -> provider_pb2.ReadResponse:
        request = provider_pb2.ReadRequest(id=rid, urn=self.urn(typ, "res"), type=typ,
                                           properties=to_struct(state or {}))
        if inputs is not None:
            request.inputs.CopyFrom(to_struct(inputs))
        return self.stub.Read(request)

    def delete(self, typ: str, rid: str, state: dict[str, Any], olds: dict[str, Any]) -> None:
        self.stub.Delete(provider_pb2.DeleteRequest(
            id=rid, urn=self.urn(typ, "res"), type=typ, properties=to_struct(state), old_inputs=to_struct(olds)))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArmServer]:
    with ArmServer(tmp_path_factory.mktemp("arm")) as arm:
        yield arm


@pytest.fixture(scope="module")
def plugin(server: ArmServer) -> Iterator[Plugin]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "EDGE_REGISTRY_STANDIN_ARM": server.base_url,
        "EDGE_REGISTRY_ARM_TOKEN": FAKE_BEARER,
        "REQUESTS_CA_BUNDLE": server.ca_pem,
        # The stand-in's polling interval and retry backoff without Retry-After (upstream: 10 s,
        # 30 s, 20 s): short, so the long-running-operation tests take no time.
        "EDGE_REGISTRY_STANDIN_POLL_SECONDS": "0.01",
        "EDGE_REGISTRY_STANDIN_RETRY_DELAY_SECONDS": "0.01",
    }
    process = subprocess.Popen([sys.executable, "-u", "-m", "tests.engine.standin.azure_native"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = provider_pb2_grpc.ResourceProviderStub(channel)
            # As the engine configures a default provider from the stack's azure-native:* config.
            stub.Configure(provider_pb2.ConfigureRequest(
                variables={"azure-native:config:subscriptionId": SUB, "azure-native:config:location": "westeurope"},
                acceptSecrets=True, acceptResources=True, sends_old_inputs=True, sends_old_inputs_to_delete=True))
            yield Plugin(stub)
    finally:
        process.kill()
        process.wait()


@pytest.fixture
def arm(server: ArmServer) -> ArmServer:
    """The module's emulator with a fresh Azure for each test."""
    server.state = ArmState()
    server.state.add_registry(REGISTRY)
    return server


def calls(arm: ArmServer) -> list[tuple[str, str]]:
    """The recorded requests as (method, path relative to the registry), api-version checked."""
    out = []
    for request in arm.requests:
        path = request.path.removeprefix(REGISTRY_ID)
        if "/operationStatuses/" not in path:
            assert request.query.get("api-version") == (API if path else "2023-01-01-preview"), request
        out.append((request.method, path or "/"))
    return out


def scope_map_inputs(**overrides: Any) -> dict[str, Any]:
    return {"resourceGroupName": RG, "registryName": REGISTRY, "scopeMapName": "site1-sync-scope-map",
            "actions": ["repositories/hello-world/content/read", "repositories/hello-world/metadata/read"],
            "description": "sync", **overrides}


def token_inputs(**overrides: Any) -> dict[str, Any]:
    return {"resourceGroupName": RG, "registryName": REGISTRY, "tokenName": "site1-sync-token",
            "scopeMapId": f"{REGISTRY_ID}/scopeMaps/site1-sync-scope-map", "status": "enabled", **overrides}


def connected_registry_inputs(**sync: Any) -> dict[str, Any]:
    return {"resourceGroupName": RG, "registryName": REGISTRY, "connectedRegistryName": "site1", "mode": "ReadOnly",
            "parent": {"syncProperties": {"tokenId": f"{REGISTRY_ID}/tokens/site1-sync-token", "messageTtl": "P2D",
                                          "schedule": "30 * * * *", "syncWindow": "PT1H", **sync}},
            "clientTokenIds": [f"{REGISTRY_ID}/tokens/site1-client-token"],
            "logging": {"logLevel": "Information", "auditLogStatus": "Disabled"}}


def error_of(call: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


# --- create, read, update, delete ------------------------------------------------------------------


def test_scope_map_create_update_read_delete(plugin: Plugin, arm: ArmServer) -> None:
    inputs = plugin.inputs(SCOPE_MAP, scope_map_inputs())
    assert inputs["azureApiVersion"] == API  # v3 Check adds it

    rid, outputs = plugin.create(SCOPE_MAP, inputs)
    path = "/scopeMaps/site1-sync-scope-map"
    assert rid == REGISTRY_ID + path
    # Exists? (404), PUT, then the read after the write.
    assert calls(arm) == [("GET", path), ("PUT", path), ("GET", path)]
    assert arm.requests[1].body == {"properties": {"actions": inputs["actions"], "description": "sync"}}
    assert outputs["actions"] == inputs["actions"] and outputs["name"] == "site1-sync-scope-map"
    assert outputs["type"] == "Microsoft.ContainerRegistry/registries/scopeMaps"
    assert outputs["provisioningState"] == "Succeeded" and outputs["azureApiVersion"] == API
    assert "creationDate" in outputs and "resourceGroupName" not in outputs

    news = plugin.inputs(SCOPE_MAP, scope_map_inputs(description="sync v2"))
    diff = plugin.diff(SCOPE_MAP, outputs, inputs, news)
    assert diff.changes == provider_pb2.DiffResponse.DIFF_SOME and list(diff.replaces) == []
    assert dict(diff.detailedDiff)["description"].kind == Diff.UPDATE
    del arm.state.requests[:]
    updated = plugin.update(SCOPE_MAP, rid, outputs, inputs, news)
    assert calls(arm) == [("PUT", path), ("GET", path)]
    assert updated["description"] == "sync v2" and updated["creationDate"] == outputs["creationDate"]

    del arm.state.requests[:]
    read = plugin.read(SCOPE_MAP, rid, updated, news)
    assert calls(arm) == [("GET", path)]
    assert read.id == rid and to_dict(read.properties) == updated and to_dict(read.inputs) == news

    del arm.state.requests[:]
    plugin.delete(SCOPE_MAP, rid, updated, news)
    assert calls(arm) == [("DELETE", path)] and arm.state.scope_maps == {}
    # Gone: a refresh drops it.
    assert plugin.read(SCOPE_MAP, rid, updated, news).id == ""


def test_token_and_connected_registry_are_the_azure_the_program_calls(plugin: Plugin, arm: ArmServer) -> None:
    _, token = plugin.create(TOKEN, plugin.inputs(TOKEN, token_inputs()))
    assert arm.requests[1].body == {"properties": {"scopeMapId": token_inputs()["scopeMapId"], "status": "enabled"}}
    assert token["credentials"] == {"certificates": [], "passwords": []} and token["status"] == "enabled"
    cr_id, cr = plugin.create(CONNECTED_REGISTRY, plugin.inputs(CONNECTED_REGISTRY, connected_registry_inputs()))
    # Output-only properties as ARM fills them in.
    assert cr["activation"] == {"status": "Inactive"} and cr["connectionState"] == "Offline"
    assert cr["parent"]["syncProperties"]["gatewayEndpoint"] == "contosoedge.westeurope.data.azurecr.io"
    assert cr["parent"]["syncProperties"]["schedule"] == "30 * * * *" and cr["name"] == "site1"

    # The program's own ARM client (TokenPassword, the sync status) sees the same token and
    # connected registry: a password issued through generateCredentials, a sync recorded on-prem.
    with ArmClient(SUB, arm_endpoint=arm.base_url, credential=FakeCredential(), polling_interval=0,
                   connection_verify=arm.ca_pem) as client:
        issued = client.generate_password(RG, REGISTRY, f"{REGISTRY_ID}/tokens/site1-sync-token", "password1",
                                          datetime(2030, 1, 1))
        assert issued.slot == "password1"
        arm.state.last_sync["site1"] = "2025-06-01T00:00:00Z"
        status = client.connected_registry_status(RG, REGISTRY, "site1")
        assert status is not None and status.activation_status == "Inactive"
        assert status.last_sync_time is not None

    # A refresh reads the password slot (never the value) and copies it into the token's inputs:
    # the reason the program's tokens ignore changes of `credentials` (docs/azure.md).
    token_id = f"{REGISTRY_ID}/tokens/site1-sync-token"
    read = plugin.read(TOKEN, token_id, token, plugin.inputs(TOKEN, token_inputs()))
    passwords = to_dict(read.properties)["credentials"]["passwords"]
    assert [p["name"] for p in passwords] == ["password1"] and "value" not in passwords[0]
    assert to_dict(read.inputs)["credentials"]["passwords"][0]["name"] == "password1"
    read_cr = to_dict(plugin.read(CONNECTED_REGISTRY, cr_id, cr, connected_registry_inputs()).properties)
    assert read_cr["parent"]["syncProperties"]["lastSyncTime"] == "2025-06-01T00:00:00Z"

    # `.get` (no state, no inputs): inputs from the id and the body.
    got = plugin.read(CONNECTED_REGISTRY, cr_id)
    assert to_dict(got.inputs)["connectedRegistryName"] == "site1" and to_dict(got.inputs)["mode"] == "ReadOnly"

    # A token PUT without credentials leaves it without passwords, as ARM does.
    plugin.update(TOKEN, token_id, token, token_inputs(), plugin.inputs(TOKEN, token_inputs(status="disabled")))
    assert arm.state.tokens["site1-sync-token"] == {}

    plugin.delete(CONNECTED_REGISTRY, cr_id, cr, connected_registry_inputs())
    assert "site1" not in arm.state.connected_registries


def test_create_refuses_a_resource_that_exists(plugin: Plugin, arm: ArmServer) -> None:
    inputs = plugin.inputs(SCOPE_MAP, scope_map_inputs())
    plugin.create(SCOPE_MAP, inputs)
    del arm.state.requests[:]
    err = error_of(lambda: plugin.create(SCOPE_MAP, inputs))
    assert "cannot create already existing resource" in err.details()
    assert calls(arm) == [("GET", "/scopeMaps/site1-sync-scope-map")]


def test_long_running_put_and_delete(plugin: Plugin, arm: ArmServer) -> None:
    arm.state.put_mode = arm.state.delete_mode = "async"
    arm.state.polls_before_done = 2
    inputs = plugin.inputs(TOKEN, token_inputs())
    rid, outputs = plugin.create(TOKEN, inputs)
    path = "/tokens/site1-sync-token"
    # 201 + Azure-AsyncOperation: polled until Succeeded, then the resource read (poller's final
    # GET), then the read after the write.
    assert calls(arm)[:2] == [("GET", path), ("PUT", path)]
    polls = [p for m, p in calls(arm) if "/operationStatuses/" in p]
    assert len(polls) == 3 and all(p.startswith(path + "/operationStatuses/") for p in polls)
    assert calls(arm)[-2:] == [("GET", path), ("GET", path)]
    assert outputs["provisioningState"] == "Succeeded"

    del arm.state.requests[:]
    plugin.delete(TOKEN, rid, outputs, inputs)
    # 202 + Location: polled while 202.
    assert calls(arm)[0] == ("DELETE", path)
    assert [m for m, p in calls(arm)[1:] if "/operationStatuses/" in p] == ["GET"] * 3
    assert "site1-sync-token" not in arm.state.token_properties


def test_get_registry(plugin: Plugin, arm: ArmServer) -> None:
    answer = plugin.stub.Invoke(provider_pb2.InvokeRequest(
        tok="azure-native:containerregistry:getRegistry",
        args=to_struct({"resourceGroupName": RG, "registryName": REGISTRY})))
    result = to_dict(getattr(answer, "return"))
    assert calls(arm) == [("GET", "/")]
    assert result["id"] == REGISTRY_ID and result["loginServer"] == "contosoedge.azurecr.io"
    assert result["sku"]["name"] == "Premium" and result["dataEndpointEnabled"] is True
    assert result["location"] == "westeurope" and result["azureApiVersion"] == "2023-01-01-preview"
    err = error_of(lambda: plugin.stub.Invoke(provider_pb2.InvokeRequest(
        tok="azure-native:containerregistry:getRegistry",
        args=to_struct({"resourceGroupName": RG, "registryName": "nosuchregistry"}))))
    assert "request failed" in err.details() and "RESPONSE 404" in err.details()


# --- check and diff -----------------------------------------------------------------------------------


def test_check_validates_and_autonames(plugin: Plugin, arm: ArmServer) -> None:
    bad = plugin.check(SCOPE_MAP, {**scope_map_inputs(scopeMapName="no"), "actions": None, "registryName": "a-b"})
    reasons = {f.reason for f in bad.failures}
    assert "'scopeMapName' is too short (2): at least 5 characters required" in reasons
    assert "'registryName' does not match expression '^[a-zA-Z0-9]*$'" in reasons
    assert "missing required property 'actions'" in reasons
    missing = plugin.check(CONNECTED_REGISTRY, {**connected_registry_inputs(), "parent": {"syncProperties": {}}})
    assert {f.reason for f in missing.failures} >= {"missing required property 'parent.syncProperties.tokenId'",
                                                   "missing required property 'parent.syncProperties.messageTtl'"}
    # Unknowns (a preview) are not judged.
    assert not plugin.check(TOKEN, token_inputs(tokenName=UNKNOWN, scopeMapId=UNKNOWN)).failures
    # No name: the URN name and a random suffix, and create-before-delete.
    named = to_dict(plugin.check(TOKEN, {k: v for k, v in token_inputs().items() if k != "tokenName"},
                                 name="mytoken").inputs)
    assert named["tokenName"].startswith("mytoken") and len(named["tokenName"]) == len("mytoken") + 8
    assert named["__createBeforeDelete"] is True
    assert arm.requests == []


@pytest.mark.parametrize("key, value", [("resourceGroupName", "rg-other"), ("registryName", "otherregistry"),
                                        ("connectedRegistryName", "site2")])
def test_a_path_parameter_change_replaces_delete_first(plugin: Plugin, arm: ArmServer, key: str, value: str) -> None:
    olds = plugin.inputs(CONNECTED_REGISTRY, connected_registry_inputs())
    diff = plugin.diff(CONNECTED_REGISTRY, {}, olds, {**olds, key: value})
    assert list(diff.replaces) == [key] and diff.deleteBeforeReplace is True
    assert dict(diff.detailedDiff)[key].kind == Diff.UPDATE_REPLACE


def test_body_changes_update_in_place_as_upstream(plugin: Plugin, arm: ArmServer) -> None:
    olds = plugin.inputs(CONNECTED_REGISTRY, connected_registry_inputs())
    # mode and the sync token are no ForceNew in azure-native's metadata (the spec has no
    # x-ms-mutability on them): in place, unless the program asks for replacement itself.
    news = {**olds, "mode": "ReadWrite", "parent": connected_registry_inputs(tokenId=f"{REGISTRY_ID}/tokens/x",
                                                                           schedule="0 * * * *")["parent"]}
    diff = plugin.diff(CONNECTED_REGISTRY, {}, olds, news)
    assert diff.changes == provider_pb2.DiffResponse.DIFF_SOME and list(diff.replaces) == []
    assert diff.deleteBeforeReplace is False and sorted(diff.diffs) == ["mode", "parent"]
    assert {k: v.kind for k, v in diff.detailedDiff.items()} == {
        "mode": Diff.UPDATE, "parent.syncProperties.tokenId": Diff.UPDATE, "parent.syncProperties.schedule": Diff.UPDATE}
    arrays = plugin.diff(SCOPE_MAP, {}, scope_map_inputs(), scope_map_inputs(actions=["a", "b", "c"]))
    assert {k: v.kind for k, v in arrays.detailedDiff.items()} == {"actions[0]": Diff.UPDATE, "actions[1]": Diff.UPDATE,
                                                                   "actions[2]": Diff.ADD}
    same = plugin.diff(SCOPE_MAP, {}, scope_map_inputs(), scope_map_inputs())
    assert same.changes == provider_pb2.DiffResponse.DIFF_NONE
    # An auto-named resource is replaced create-before-delete.
    named = {**scope_map_inputs(), "__createBeforeDelete": True}
    auto = plugin.diff(SCOPE_MAP, {}, named, {**named, "registryName": "otherregistry"})
    assert list(auto.replaces) == ["registryName"] and auto.deleteBeforeReplace is False
    assert arm.requests == []


# --- previews ----------------------------------------------------------------------------------------


def test_previews_call_no_arm_and_leave_outputs_unknown(plugin: Plugin, arm: ArmServer) -> None:
    inputs = plugin.inputs(CONNECTED_REGISTRY, connected_registry_inputs(tokenId=UNKNOWN))
    rid, created = plugin.create(CONNECTED_REGISTRY, inputs, preview=True)
    assert rid == "" and created["name"] == UNKNOWN and created["activation"] == UNKNOWN
    sync = created["parent"]["syncProperties"]
    assert sync["tokenId"] == UNKNOWN and sync["schedule"] == "30 * * * *" and sync["gatewayEndpoint"] == UNKNOWN
    assert "resourceGroupName" not in created

    # Update preview: the new inputs, output-only properties unknown, name from the old state.
    old_inputs = plugin.inputs(CONNECTED_REGISTRY, connected_registry_inputs())
    state = {"name": "site1", "activation": {"status": "Active"}, "connectionState": "Online", "mode": "ReadOnly",
             "parent": {"syncProperties": {"gatewayEndpoint": "g", "lastSyncTime": "t", "schedule": "30 * * * *"}}}
    news = plugin.inputs(CONNECTED_REGISTRY, connected_registry_inputs(schedule="0 * * * *"))
    preview = plugin.update(CONNECTED_REGISTRY, "id", state, old_inputs, news, preview=True)
    assert preview["name"] == "site1" and preview["mode"] == "ReadOnly"
    assert preview["parent"]["syncProperties"]["schedule"] == "0 * * * *"
    for unknown in ("activation", "connectionState", "provisioningState", "loginServer", "systemData", "type"):
        assert preview[unknown] == UNKNOWN, unknown
    assert preview["parent"]["syncProperties"]["gatewayEndpoint"] == UNKNOWN
    assert preview["parent"]["syncProperties"]["lastSyncTime"] == UNKNOWN
    assert arm.requests == []


# --- faults -----------------------------------------------------------------------------------------------


def test_a_409_is_an_error_at_once(plugin: Plugin, arm: ArmServer) -> None:
    arm.state.inject("PUT", "scopeMaps", 409, message="Another operation is in progress.")
    err = error_of(lambda: plugin.create(SCOPE_MAP, plugin.inputs(SCOPE_MAP, scope_map_inputs())))
    assert "RESPONSE 409" in err.details() and "ERROR CODE: Conflict" in err.details()
    assert "Another operation is in progress." in err.details()
    assert [m for m, _ in calls(arm)] == ["GET", "PUT"]  # 409 is not retried


def test_a_429_is_retried_after_retry_after_then_surfaces(plugin: Plugin, arm: ArmServer) -> None:
    arm.state.inject("PUT", "tokens", 429, retry_after_ms="10")
    plugin.create(TOKEN, plugin.inputs(TOKEN, token_inputs()))
    assert [m for m, _ in calls(arm)] == ["GET", "PUT", "PUT", "GET"]

    arm.state.inject("GET", "tokens", 429, times=4, retry_after_ms="10")
    del arm.state.requests[:]
    err = error_of(lambda: plugin.read(TOKEN, f"{REGISTRY_ID}/tokens/site1-sync-token", {}, token_inputs()))
    assert "RESPONSE 429" in err.details() and "TooManyRequests" in err.details()
    assert [m for m, _ in calls(arm)] == ["GET"] * 4  # azcore: MaxRetries 3


def test_a_failing_delete_is_an_error_and_leaves_the_resource(plugin: Plugin, arm: ArmServer) -> None:
    rid, outputs = plugin.create(TOKEN, plugin.inputs(TOKEN, token_inputs()))
    arm.state.inject("DELETE", "tokens", 409, message="The token is in use by a connected registry.")
    err = error_of(lambda: plugin.delete(TOKEN, rid, outputs, token_inputs()))
    assert "RESPONSE 409" in err.details() and "in use" in err.details()
    assert "site1-sync-token" in arm.state.token_properties
    arm.state.inject("DELETE", "tokens", 500, times=4)
    assert "RESPONSE 500" in error_of(lambda: plugin.delete(TOKEN, rid, outputs, token_inputs())).details()
    plugin.delete(TOKEN, rid, outputs, token_inputs())
    assert "site1-sync-token" not in arm.state.token_properties


def test_a_failed_operation_after_the_put_is_a_partial_create(plugin: Plugin, arm: ArmServer) -> None:
    arm.state.put_mode, arm.state.operation_outcome = "async", "Failed"
    err = error_of(lambda: plugin.create(SCOPE_MAP, plugin.inputs(SCOPE_MAP, scope_map_inputs())))
    assert "ResourceOperationFailure" in err.details()
    # ErrorResourceInitFailed in the status details: the engine records the resource as it is.
    details = dict(err.trailing_metadata() or ())["grpc-status-details-bin"]
    status = status_pb2.Status.FromString(details)
    init = provider_pb2.ErrorResourceInitFailed()
    assert status.details[0].Unpack(init)
    assert init.id == f"{REGISTRY_ID}/scopeMaps/site1-sync-scope-map"
    assert to_dict(init.properties)["provisioningState"] == "Failed"


# --- the real engine ------------------------------------------------------------------------------------




PROGRAM = '''
import pulumi
from pulumi_azure_native import containerregistry as acr


def run():
    config = pulumi.Config()
    common = {"registry_name": "contosoedge", "resource_group_name": "rg-edge"}
    parent = acr.get_registry(**common)
    scope_map = acr.ScopeMap("sync-scope-map", scope_map_name="site1-sync-scope-map",
                             actions=["repositories/hello-world/content/read"], description="sync", **common)
    token = acr.Token("sync-token", token_name="site1-sync-token", scope_map_id=scope_map.id, status="enabled",
                      **common)
    registry = acr.ConnectedRegistry(
        "connected-registry", connected_registry_name="site1", mode="ReadOnly",
        parent=acr.ParentPropertiesArgs(sync_properties=acr.SyncPropertiesArgs(
            token_id=token.id, schedule=config.require("schedule"), sync_window="PT1H", message_ttl="P2D")),
        logging=acr.LoggingPropertiesArgs(log_level="Information", audit_log_status="Disabled"),
        opts=pulumi.ResourceOptions(delete_before_replace=True), **common)
    pulumi.export("loginServer", parent.login_server)
    pulumi.export("activation", registry.activation.apply(lambda a: a.status))
    pulumi.export("gateway", registry.parent.apply(lambda p: p.sync_properties.gateway_endpoint))
'''


@pytest.mark.skipif(not ((bin_dir := engine_bin()) and (bin_dir / "pulumi").is_file()),
                    reason="the engine is not built: scripts/engine build")
def test_up_preview_update_destroy_through_the_engine(tmp_path: Path) -> None:
    project, stacks, state = tmp_path / "project", tmp_path / "stacks", tmp_path / "state"
    for folder in (project, stacks, state):
        folder.mkdir()
    (project / "Pulumi.yaml").write_text("name: standin\nruntime: python\n")
    (project / "standin_program.py").write_text(textwrap.dedent(PROGRAM))
    stack_file = stacks / "Pulumi.site.yaml"
    stack_file.write_text(f"config:\n  azure-native:subscriptionId: {SUB}\n  azure-native:location: westeurope\n"
                          "  standin:schedule: 30 * * * *\n")
    with ArmServer(tmp_path) as arm:
        arm.state.add_registry(REGISTRY)
        arm.state.put_mode = arm.state.delete_mode = "async"
        env = {**os.environ, "PULUMI_CONFIG_PASSPHRASE": "standin", "EDGE_REGISTRY_STANDIN_ARM": arm.base_url,
               "EDGE_REGISTRY_ARM_TOKEN": FAKE_BEARER, "REQUESTS_CA_BUNDLE": arm.ca_pem,
               "EDGE_REGISTRY_STANDIN_POLL_SECONDS": "0.05"}

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [ROOT / "scripts" / "engine", "run", "--project-dir", str(project), "--stack-dir", str(stacks),
                 "--backend", f"file://{state}", "--program", "standin_program:run", *args],
                capture_output=True, text=True, env=env, timeout=300)

        up = run("--create", "site", "up", "--yes")
        assert up.returncode == 0, up.stdout + up.stderr
        assert "+ 4 created" in up.stdout
        outputs = " ".join(up.stdout.split())  # the CLI aligns the output names
        assert 'activation : "Inactive"' in outputs and 'loginServer: "contosoedge.azurecr.io"' in outputs
        assert 'gateway : "contosoedge.westeurope.data.azurecr.io"' in outputs
        assert sorted(arm.state.scope_maps) == ["site1-sync-scope-map"]
        assert arm.state.connected_registry_properties["site1"]["parent"]["syncProperties"]["tokenId"].endswith(
            "/tokens/site1-sync-token")

        same = run("site", "preview", "--expect-no-changes")
        assert same.returncode == 0, same.stdout + same.stderr
        assert "4 unchanged" in same.stdout

        stack_file.write_text(stack_file.read_text().replace("30 * * * *", "0 * * * *"))
        del arm.state.requests[:]
        changed = run("site", "up", "--yes")
        assert changed.returncode == 0, changed.stdout + changed.stderr
        assert "~ 1 updated" in changed.stdout and "3 unchanged" in changed.stdout
        puts = [r for r in arm.requests if r.method == "PUT"]
        assert [r.path.rsplit("/", 1)[-1] for r in puts] == ["site1"]
        assert puts[0].body["properties"]["parent"]["syncProperties"]["schedule"] == "0 * * * *"

        down = run("site", "destroy", "--yes")
        assert down.returncode == 0, down.stdout + down.stderr
        assert "- 4 deleted" in down.stdout
        assert arm.state.scope_maps == {} and arm.state.token_properties == {}
        assert arm.state.connected_registries == {}
        # Dependents first: the connected registry, then the token, then the scope map.
        deletes = [r.path.rsplit("/", 2)[-2] for r in arm.requests if r.method == "DELETE"]
        assert deletes == ["connectedRegistries", "tokens", "scopeMaps"]
