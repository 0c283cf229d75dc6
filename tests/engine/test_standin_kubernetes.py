"""The kubernetes stand-in plugin (tests/engine/standin/kubernetes.py).

Fast tests talk to the plugin process over gRPC as the engine would (Check, then Create/Update
with the checked inputs; Diff with the old state), each on a cluster file of its own: a test
configures the provider with a kubeconfig in its tmp_path and the plugin derives the state file
from it. One test runs a tiny project through the real CLI (``scripts/engine run``), skipped
unless the engine is built, like test_inline_smoke.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

from tests.engine.site_harness import engine_bin
from tests.engine.standin.kubernetes import FAULTS_ENV, RELEASE, STATE_ENV
from tests.engine.standin.plugin import UNKNOWN, is_secret, plain, secret, to_dict, to_struct

ROOT = Path(__file__).resolve().parents[2]
ENGINE = ROOT / "scripts" / "engine"
NS, SECRET, SA, SA_PATCH, SERVICE = (f"kubernetes:core/v1:{k}" for k in
                                     ("Namespace", "Secret", "ServiceAccount", "ServiceAccountPatch", "Service"))
DIFF = provider_pb2.PropertyDiff
CHART = "oci://mcr.microsoft.com/acr/connected-registry/chart"
CONNECTION = ("ConnectedRegistryName=siteone;SyncTokenName=siteone;SyncTokenPassword=pw;"
              "ParentGatewayEndpoint=reg.westeurope.data.azurecr.io;ParentEndpointProtocol=https")


def kubeconfig(path: Path, server: str = "https://10.0.0.1:6443", extra_context: str | None = None) -> Path:
    contexts = [{"name": "site", "context": {"cluster": "site", "user": "admin"}}]
    clusters = [{"name": "site", "cluster": {"server": server}}]
    if extra_context:
        contexts.append({"name": extra_context, "context": {"cluster": extra_context, "user": "admin"}})
        clusters.append({"name": extra_context, "cluster": {"server": "https://10.9.9.9:6443"}})
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "Config", "current-context": "site",
                                "contexts": contexts, "clusters": clusters,
                                "users": [{"name": "admin", "user": {"token": "t"}}]}))
    return path


def urn(token: str, name: str) -> str:
    return f"urn:pulumi:test::standin::{token}::{name}"


class Plugin:
    """The stand-in as the engine starts it: a process printing its port, then gRPC."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        environ = {k: v for k, v in os.environ.items() if k not in (STATE_ENV, FAULTS_ENV)}
        environ.update(env or {}, PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen([sys.executable, "-u", "-m", "tests.engine.standin.kubernetes", "127.0.0.1:0"],
                                     cwd=ROOT, env=environ, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        port = int(self.proc.stdout.readline())
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.stub = provider_pb2_grpc.ResourceProviderStub(self.channel)

    def close(self) -> None:
        self.channel.close()
        self.proc.kill()
        self.proc.wait()

    def configure(self, **args: Any) -> None:
        variables = {f"kubernetes:config:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in args.items()}
        self.stub.Configure(provider_pb2.ConfigureRequest(variables=variables, args=to_struct(args),
                                                          acceptSecrets=True, acceptResources=True))

    def check(self, token: str, name: str, news: dict[str, Any], olds: dict[str, Any] | None = None) -> dict[str, Any]:
        return to_dict(self.stub.Check(provider_pb2.CheckRequest(
            urn=urn(token, name), news=to_struct(news), olds=to_struct(olds or {}))).inputs)

    def create(self, token: str, name: str, props: dict[str, Any], preview: bool = False,
               ) -> tuple[str, dict[str, Any]]:
        inputs = self.check(token, name, props)
        resp = self.stub.Create(provider_pb2.CreateRequest(urn=urn(token, name), properties=to_struct(inputs),
                                                           preview=preview))
        return resp.id, to_dict(resp.properties)

    def diff(self, token: str, name: str, olds: dict[str, Any], news: dict[str, Any],
             ignore: list[str] | None = None) -> provider_pb2.DiffResponse:
        checked = self.check(token, name, news, olds.get("__inputs") if token != RELEASE else plain(olds["__inputs"]))
        return self.stub.Diff(provider_pb2.DiffRequest(urn=urn(token, name), olds=to_struct(olds),
                                                       news=to_struct(checked), ignoreChanges=ignore or []))

    def update(self, token: str, name: str, ident: str, olds: dict[str, Any], news: dict[str, Any],
               preview: bool = False) -> dict[str, Any]:
        checked = self.check(token, name, news, olds.get("__inputs") if token != RELEASE else plain(olds["__inputs"]))
        return to_dict(self.stub.Update(provider_pb2.UpdateRequest(
            id=ident, urn=urn(token, name), olds=to_struct(olds), news=to_struct(checked), preview=preview)).properties)

    def read(self, token: str, name: str, ident: str) -> provider_pb2.ReadResponse:
        return self.stub.Read(provider_pb2.ReadRequest(id=ident, urn=urn(token, name)))

    def delete(self, token: str, name: str, ident: str, olds: dict[str, Any]) -> None:
        self.stub.Delete(provider_pb2.DeleteRequest(id=ident, urn=urn(token, name), properties=to_struct(olds)))


@pytest.fixture(scope="module")
def plugin() -> Iterator[Plugin]:
    started = Plugin()
    yield started
    started.close()


class Cluster:
    """A test's cluster: the provider configured for a kubeconfig in tmp_path, and its state file."""

    def __init__(self, plugin: Plugin, tmp_path: Path, **config: Any) -> None:
        self.kubeconfig = kubeconfig(tmp_path / "kubeconfig")
        self.path = tmp_path / "kubeconfig.standin-k8s.json"
        plugin.configure(kubeconfig=str(self.kubeconfig), enableServerSideApply=True, **config)

    def state(self) -> dict[str, Any]:
        return json.loads(self.path.read_text()) if self.path.exists() else {"objects": {}, "releases": {}}

    def seed(self, **parts: Any) -> None:
        state = self.state()
        state.update(parts)
        self.path.write_text(json.dumps(state))


@pytest.fixture
def cluster(plugin: Plugin, tmp_path: Path) -> Cluster:
    return Cluster(plugin, tmp_path, upsertExistingObjects=True)


def namespace(plugin: Plugin, name: str) -> dict[str, Any]:
    return plugin.create(NS, f"ns-{name}", {"metadata": {"name": name}})[1]


def pull_secret(data: str = "e30=", namespace: str = "apps", type_: str = "kubernetes.io/dockerconfigjson",
                name: str = "pull") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace}, "type": type_,
            "data": {".dockerconfigjson": secret(data)}}


def release(**over: Any) -> dict[str, Any]:
    props = {"chart": CHART, "version": "0.3.0", "name": "connected-registry", "namespace": "connected-registry",
             "createNamespace": False, "atomic": True, "skipAwait": False, "timeout": 600,
             "values": {"connectionString": secret(CONNECTION), "httpEnabled": False,
                        "pvc": {"storageClassName": "local-path", "storageRequest": "20Gi"}}}
    props.update(over)
    return props


def error_of(call: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


# ---- CRUD through the state file


def test_namespace_create_read_update_delete(plugin: Plugin, cluster: Cluster) -> None:
    ident, out = plugin.create(NS, "ns", {"metadata": {"name": "apps"}})
    assert ident == "apps" and out["metadata"]["uid"] and out["status"] == {"phase": "Active"}
    objects = cluster.state()["objects"]
    assert objects["Namespace/apps"]["metadata"]["uid"] == out["metadata"]["uid"]
    # The service-account controller's `default` ServiceAccount, which ServiceAccount.get reads.
    assert "ServiceAccount/apps/default" in objects

    read = plugin.read(NS, "ns", "apps")
    assert read.id == "apps" and to_dict(read.properties)["metadata"]["name"] == "apps"

    updated = plugin.update(NS, "ns", "apps", out, {"metadata": {"name": "apps", "labels": {"team": "a"}}})
    assert updated["metadata"]["labels"]["team"] == "a"
    assert cluster.state()["objects"]["Namespace/apps"]["metadata"]["labels"]["team"] == "a"

    plugin.delete(NS, "ns", "apps", updated)
    assert cluster.state()["objects"] == {}  # the namespace and what was in it


def test_secret_crud_keeps_secrets_secret(plugin: Plugin, cluster: Cluster) -> None:
    namespace(plugin, "apps")
    ident, out = plugin.create(SECRET, "pull", pull_secret("e30="))
    assert ident == "apps/pull"
    assert is_secret(out["data"][".dockerconfigjson"]) and is_secret(out["__inputs"]["data"][".dockerconfigjson"])
    stored = cluster.state()["objects"]["Secret/apps/pull"]
    assert stored["type"] == "kubernetes.io/dockerconfigjson" and stored["data"] == {".dockerconfigjson": "e30="}

    new = plugin.update(SECRET, "pull", ident, out, pull_secret("eyJhIjoxfQ=="))
    assert plain(new["data"]) == {".dockerconfigjson": "eyJhIjoxfQ=="}
    assert cluster.state()["objects"]["Secret/apps/pull"]["data"][".dockerconfigjson"] == "eyJhIjoxfQ=="

    plugin.delete(SECRET, "pull", ident, new)
    assert "Secret/apps/pull" not in cluster.state()["objects"]
    plugin.delete(SECRET, "pull", ident, new)  # a 404 on delete is success (await.go Deletion)


def test_create_of_existing_object_needs_upsert(plugin: Plugin, tmp_path: Path) -> None:
    cluster = Cluster(plugin, tmp_path)  # no upsertExistingObjects
    cluster.seed(objects={"Namespace/apps": {"apiVersion": "v1", "kind": "Namespace",
                                             "metadata": {"name": "apps", "uid": "u1", "labels": {"keep": "me"}}}})
    err = error_of(lambda: namespace(plugin, "apps"))
    assert 'namespaces "apps" already exists' in str(err.details())
    plugin.configure(kubeconfig=str(cluster.kubeconfig), upsertExistingObjects=True)
    adopted = namespace(plugin, "apps")
    assert adopted["metadata"]["uid"] == "u1" and adopted["metadata"]["labels"]["keep"] == "me"


def test_secret_in_missing_namespace_fails(plugin: Plugin, cluster: Cluster) -> None:
    err = error_of(lambda: plugin.create(SECRET, "pull", pull_secret(namespace="nowhere")))
    assert 'namespaces "nowhere" not found' in str(err.details())


def test_service_account_get_and_patch(plugin: Plugin, cluster: Cluster) -> None:
    namespace(plugin, "apps")
    state = cluster.state()
    state["objects"]["ServiceAccount/apps/default"]["imagePullSecrets"] = [{"name": "other"}]
    cluster.seed(objects=state["objects"])

    read = plugin.read(SA, "sa-live", "apps/default")
    assert read.id == "apps/default"
    assert to_dict(read.properties)["imagePullSecrets"] == [{"name": "other"}]

    patch = {"metadata": {"name": "default", "namespace": "apps", "annotations": {"pulumi.com/patchForce": "true"}},
             "imagePullSecrets": [{"name": "other"}, {"name": "pull"}]}
    ident, out = plugin.create(SA_PATCH, "sa", patch)
    assert ident == "apps/default"
    assert cluster.state()["objects"]["ServiceAccount/apps/default"]["imagePullSecrets"] == [
        {"name": "other"}, {"name": "pull"}]

    changed = {**patch, "imagePullSecrets": [{"name": "pull"}]}
    diff = plugin.diff(SA_PATCH, "sa", out, changed)
    assert diff.changes == provider_pb2.DiffResponse.DIFF_SOME and list(diff.replaces) == []

    # A patch resource's delete relinquishes its fields; the ServiceAccount stays.
    plugin.delete(SA_PATCH, "sa", ident, out)
    assert "imagePullSecrets" not in cluster.state()["objects"]["ServiceAccount/apps/default"]


def test_read_of_missing_service_is_not_found(plugin: Plugin, cluster: Cluster) -> None:
    read = plugin.read(SERVICE, "svc", "connected-registry/siteone")
    # provider.go Read's deleteResponse: no id, no properties; the engine then fails a `.get` with
    # "resource 'connected-registry/siteone' does not exist" (pkg/resource/deploy/step.go ReadStep).
    assert read.id == "" and not read.HasField("properties")


# ---- diff rules


def test_secret_diff_rules(plugin: Plugin, cluster: Cluster, tmp_path: Path) -> None:
    namespace(plugin, "apps")
    _, out = plugin.create(SECRET, "pull", pull_secret("e30="))
    assert plugin.diff(SECRET, "pull", out, pull_secret("e30=")).changes == provider_pb2.DiffResponse.DIFF_NONE

    # Default provider (enableSecretMutable off, as in components/cluster/onprem.py): data replaces,
    # delete-before-replace since the name and namespace stay (diff.go forceNewProperties).
    data = plugin.diff(SECRET, "pull", out, pull_secret("eyJhIjoxfQ=="))
    assert list(data.replaces) == ['data[".dockerconfigjson"]'] and data.deleteBeforeReplace
    assert data.detailedDiff['data[".dockerconfigjson"]'].kind == DIFF.UPDATE_REPLACE

    name = plugin.diff(SECRET, "pull", out, pull_secret(name="pull2"))
    assert "metadata.name" in name.replaces and not name.deleteBeforeReplace
    moved = plugin.diff(SECRET, "pull", out, pull_secret(namespace="other"))
    assert "metadata.namespace" in moved.replaces and not moved.deleteBeforeReplace

    plugin.configure(kubeconfig=str(cluster.kubeconfig), upsertExistingObjects=True, enableSecretMutable=True)
    mutable = plugin.diff(SECRET, "pull", out, pull_secret("eyJhIjoxfQ=="))
    assert mutable.changes == provider_pb2.DiffResponse.DIFF_SOME and list(mutable.replaces) == []
    assert mutable.detailedDiff['data[".dockerconfigjson"]'].kind == DIFF.UPDATE
    typed = plugin.diff(SECRET, "pull", out, pull_secret(type_="Opaque"))
    assert list(typed.replaces) == ["type"]  # diff.go: Secret .type always replaces
    assert plugin.diff(SECRET, "pull", out, pull_secret("x"), ignore=["data"]).changes == \
        provider_pb2.DiffResponse.DIFF_NONE


def test_release_lifecycle_and_diff_rules(plugin: Plugin, cluster: Cluster) -> None:
    namespace(plugin, "connected-registry")
    ident, preview = plugin.create(RELEASE, "rel", release(), preview=True)
    assert ident == "" and preview["status"] == UNKNOWN and preview["resourceNames"] == UNKNOWN
    assert cluster.state()["releases"] == {}

    ident, out = plugin.create(RELEASE, "rel", release())
    assert ident == "connected-registry/connected-registry"
    assert out["status"]["status"] == "deployed" and out["status"]["revision"] == 1
    assert out["status"]["name"] == "connected-registry" and out["status"]["namespace"] == "connected-registry"
    assert is_secret(out["__inputs"]) and is_secret(out["values"]["connectionString"])
    assert "createNamespace" not in out and out["timeout"] == 600  # Check drops empty fields
    state = cluster.state()
    assert state["releases"][ident]["values"]["connectionString"] == CONNECTION
    # The chart's Service, named after the connected registry, https on 443, a ClusterIP in k3s' range.
    service = state["objects"]["Service/connected-registry/siteone"]
    assert service["spec"]["ports"][0]["port"] == 443 and service["spec"]["clusterIP"].startswith("10.43.")
    read = to_dict(plugin.read(SERVICE, "svc", "connected-registry/siteone").properties)
    assert read["spec"]["clusterIP"] == service["spec"]["clusterIP"]

    assert plugin.diff(RELEASE, "rel", out, release()).changes == provider_pb2.DiffResponse.DIFF_NONE
    for change in ({"version": "0.4.0"}, {"chart": "oci://example/other"}, {"timeout": 900},
                   {"values": {**release()["values"], "httpEnabled": True}}):
        diff = plugin.diff(RELEASE, "rel", out, release(**change))
        assert diff.changes == provider_pb2.DiffResponse.DIFF_SOME and list(diff.replaces) == [], change
        assert not diff.deleteBeforeReplace
    assert list(plugin.diff(RELEASE, "rel", out, release(name="other")).replaces) == ["name"]
    assert list(plugin.diff(RELEASE, "rel", out, release(namespace="other")).replaces) == ["namespace"]
    unknown = plugin.diff(RELEASE, "rel", out, release(values=UNKNOWN))
    assert unknown.changes == provider_pb2.DiffResponse.DIFF_SOME and "values" in unknown.diffs

    http = release(values={**release()["values"], "httpEnabled": True})
    previewed = plugin.update(RELEASE, "rel", ident, out, http, preview=True)
    assert previewed["status"] == UNKNOWN and previewed["name"] == "connected-registry"
    assert cluster.state()["releases"][ident]["revision"] == 1
    upgraded = plugin.update(RELEASE, "rel", ident, out, http)
    assert upgraded["status"]["revision"] == 2
    assert cluster.state()["objects"]["Service/connected-registry/siteone"]["spec"]["ports"][0]["port"] == 80

    # A pinned ClusterIP other than the Service's is immutable: the upgrade fails and rolls back (atomic).
    pinned = release(values={**http["values"], "service": {"clusterIP": "10.43.0.200"}})
    err = error_of(lambda: plugin.update(RELEASE, "rel", ident, upgraded, pinned))
    assert "field is immutable" in str(err.details()) and "rolled back due to atomic" in str(err.details())
    assert cluster.state()["releases"][ident]["status"] == "deployed"

    plugin.delete(RELEASE, "rel", ident, upgraded)
    state = cluster.state()
    assert state["releases"] == {} and "Service/connected-registry/siteone" not in state["objects"]


def test_release_pinned_cluster_ip_and_missing_namespace(plugin: Plugin, cluster: Cluster) -> None:
    err = error_of(lambda: plugin.create(RELEASE, "rel", release()))
    assert 'namespaces "connected-registry" not found' in str(err.details())
    namespace(plugin, "connected-registry")
    outside = release(values={**release()["values"], "service": {"clusterIP": "192.168.1.5"}})
    err = error_of(lambda: plugin.create(RELEASE, "rel", outside))
    assert "not in the valid range" in str(err.details()) and cluster.state()["releases"] == {}
    pinned = release(values={**release()["values"], "service": {"clusterIP": "10.43.0.50"}})
    plugin.create(RELEASE, "rel", pinned)
    assert cluster.state()["objects"]["Service/connected-registry/siteone"]["spec"]["clusterIP"] == "10.43.0.50"


# ---- provider config


def test_diff_config_follows_the_active_cluster(plugin: Plugin, tmp_path: Path) -> None:
    def diff_config(olds: dict[str, Any], news: dict[str, Any]) -> provider_pb2.DiffResponse:
        return plugin.stub.DiffConfig(provider_pb2.DiffRequest(
            urn="urn:pulumi:test::standin::pulumi:providers:kubernetes::k8s",
            olds=to_struct(olds), news=to_struct(news)))

    site = kubeconfig(tmp_path / "a", extra_context="lab")
    same = kubeconfig(tmp_path / "b", extra_context="lab")  # another path, the same cluster
    other = kubeconfig(tmp_path / "c", server="https://10.0.0.2:6443")
    base = {"kubeconfig": str(site), "enableServerSideApply": "true"}
    assert diff_config(base, dict(base)).changes == provider_pb2.DiffResponse.DIFF_NONE
    moved = diff_config(base, {**base, "kubeconfig": str(same)})
    assert list(moved.diffs) == ["kubeconfig"] and list(moved.replaces) == []
    assert list(diff_config(base, {**base, "kubeconfig": str(other)}).replaces) == ["kubeconfig"]
    contents = diff_config({**base, "kubeconfig": secret(site.read_text())},
                           {**base, "kubeconfig": secret(other.read_text())})
    assert list(contents.replaces) == ["kubeconfig"]
    assert list(diff_config(base, {**base, "context": "lab"}).replaces) == ["context"]
    assert list(diff_config(base, {**base, "kubeconfig": UNKNOWN}).replaces) == ["kubeconfig"]
    # Other settings update the provider in place.
    flag = diff_config(base, {**base, "enableSecretMutable": "true"})
    assert list(flag.diffs) == ["enableSecretMutable"] and list(flag.replaces) == []
    # An unchanged clusterIdentifier: no replacement whatever the kubeconfig says; a changed one replaces.
    ident = {**base, "clusterIdentifier": "site-1"}
    assert list(diff_config(ident, {**ident, "kubeconfig": str(other)}).replaces) == []
    assert list(diff_config(ident, {**ident, "clusterIdentifier": "site-2"}).replaces) == ["clusterIdentifier"]


# ---- faults, state file location, locking


def test_injected_faults(plugin: Plugin, cluster: Cluster) -> None:
    namespace(plugin, "connected-registry")
    cluster.seed(faults=[{"op": "create", "type": "Release", "error": "pods not ready", "times": 1}])
    err = error_of(lambda: plugin.create(RELEASE, "rel", release()))
    assert "uninstalled due to atomic being set: pods not ready" in str(err.details())
    state = cluster.state()
    assert state["releases"] == {} and "faults" in state and state["faults"] == []  # used up

    # Not atomic: the release stays, failed, and the engine gets ErrorResourceInitFailed to record it.
    cluster.seed(faults=[{"op": "create", "type": RELEASE, "name": "connected-registry", "error": "timed out"}])
    err = error_of(lambda: plugin.create(RELEASE, "rel", release(atomic=False)))
    assert "was created, but failed to initialize completely" in str(err.details())
    details = dict(err.trailing_metadata() or ())["grpc-status-details-bin"]
    from google.rpc import status_pb2

    status = status_pb2.Status.FromString(details)
    init = provider_pb2.ErrorResourceInitFailed()
    assert status.details[0].Unpack(init) and init.id == "connected-registry/connected-registry"
    assert to_dict(init.properties)["status"]["status"] == "failed"
    assert cluster.state()["releases"]["connected-registry/connected-registry"]["status"] == "failed"

    # A failing delete leaves the object; a slow one takes its time.
    _, ns = plugin.create(NS, "ns", {"metadata": {"name": "apps"}})
    cluster.seed(faults=[{"op": "delete", "type": "Namespace", "error": "finalizer stuck", "times": 1},
                         {"op": "delete", "type": "Namespace", "sleep": 0.5}])
    err = error_of(lambda: plugin.delete(NS, "ns", "apps", ns))
    assert "finalizer stuck" in str(err.details()) and "Namespace/apps" in cluster.state()["objects"]
    start = time.monotonic()
    plugin.delete(NS, "ns", "apps", ns)
    assert time.monotonic() - start >= 0.5 and "Namespace/apps" not in cluster.state()["objects"]


def test_env_state_path_and_env_faults(tmp_path: Path) -> None:
    state = tmp_path / "cluster.json"
    faults = [{"op": "update", "type": "Secret", "error": "admission webhook denied"},
              {"op": "create", "type": "Release", "error": "preview refused", "preview": True}]
    other = Plugin({STATE_ENV: str(state), FAULTS_ENV: json.dumps(faults)})
    try:
        other.configure(kubeconfig=str(kubeconfig(tmp_path / "kubeconfig")), upsertExistingObjects=True)
        _, ns = other.create(NS, "ns", {"metadata": {"name": "apps"}})
        assert "Namespace/apps" in json.loads(state.read_text())["objects"]
        assert not (tmp_path / "kubeconfig.standin-k8s.json").exists()
        ident, out = other.create(SECRET, "pull", pull_secret())
        err = error_of(lambda: other.update(SECRET, "pull", ident, out, pull_secret("eA==")))
        assert "admission webhook denied" in str(err.details())
        err = error_of(lambda: other.create(RELEASE, "rel", release(namespace="apps"), preview=True))
        assert "preview refused" in str(err.details())
    finally:
        other.close()


def test_kubeconfig_contents_state_path(plugin: Plugin, tmp_path: Path) -> None:
    from tests.engine.standin.kubernetes import default_state_path

    text = kubeconfig(tmp_path / "k", server="https://192.0.2.1:6443").read_text()
    derived = default_state_path(text, None)
    assert derived == default_state_path(text.replace('"t"', '"other-token"'), None)  # keyed on the server
    assert derived != default_state_path(kubeconfig(tmp_path / "k2", server="https://192.0.2.2:6443").read_text(), None)
    assert default_state_path(str(tmp_path / "k"), None) == tmp_path / "k.standin-k8s.json"


def test_concurrent_plugins_share_the_state(tmp_path: Path) -> None:
    state = tmp_path / "cluster.json"
    plugins = [Plugin({STATE_ENV: str(state)}) for _ in range(2)]
    try:
        for p in plugins:
            p.configure(kubeconfig=str(kubeconfig(tmp_path / "kubeconfig")), upsertExistingObjects=True)
        plugins[0].create(NS, "ns", {"metadata": {"name": "apps"}})
        errors: list[BaseException] = []

        def make(p: Plugin, prefix: str) -> None:
            try:
                for i in range(10):
                    p.create(SECRET, f"{prefix}{i}", pull_secret(name=f"{prefix}{i}"))
            except BaseException as err:  # noqa: BLE001 - reported below
                errors.append(err)

        threads = [threading.Thread(target=make, args=(p, f"s{n}-")) for n, p in enumerate(plugins)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        objects = json.loads(state.read_text())["objects"]
        assert sum(key.startswith("Secret/apps/") for key in objects) == 20
    finally:
        for p in plugins:
            p.close()


# ---- the real engine




PROGRAM = '''
import base64

import pulumi
import pulumi_kubernetes as k8s

CHART = "oci://mcr.microsoft.com/acr/connected-registry/chart"


def run():
    config = pulumi.Config()
    provider = k8s.Provider(
        "k8s", kubeconfig=config.require("kubeconfig"), enable_server_side_apply=True,
        upsert_existing_objects=True, enable_secret_mutable=config.get_bool("secretMutable"),
    )
    opts = pulumi.ResourceOptions(provider=provider)
    ns = k8s.core.v1.Namespace("ns", metadata={"name": "connected-registry"}, opts=opts)
    secret = k8s.core.v1.Secret(
        "pull",
        metadata={"name": "pull", "namespace": ns.metadata.name},
        type="kubernetes.io/dockerconfigjson",
        data={".dockerconfigjson": pulumi.Output.secret(
            base64.b64encode(config.require("dockerconfig").encode()).decode())},
        opts=opts,
    )
    release = k8s.helm.v3.Release(
        "release", chart=CHART, version="0.3.0", name="connected-registry", namespace="connected-registry",
        values={"connectionString": pulumi.Output.secret(config.require("connection")), "httpEnabled": False},
        atomic=True, timeout=600,
        opts=pulumi.ResourceOptions(provider=provider, depends_on=[ns], delete_before_replace=True),
    )
    service_id = "connected-registry/siteone"
    service = k8s.core.v1.Service.get("service", release.id.apply(lambda _: service_id),
                                      opts=pulumi.ResourceOptions(provider=provider, depends_on=[release]))
    pulumi.export("status", release.status.apply(lambda s: s.status))
    pulumi.export("clusterIP", service.spec.apply(lambda spec: spec.cluster_ip))
    pulumi.export("secret", secret.metadata.apply(lambda m: m.name))
'''

BIN = engine_bin()


@pytest.mark.skipif(BIN is None or not (BIN / "pulumi").is_file(), reason="the engine is not built: scripts/engine build")
def test_engine_up_preview_destroy(tmp_path: Path) -> None:
    project, stacks = tmp_path / "project", tmp_path / "stacks"
    project.mkdir()
    stacks.mkdir()
    (tmp_path / "state").mkdir()
    (project / "Pulumi.yaml").write_text("name: standink8s\nruntime: python\n")
    (project / "standin_k8s_program.py").write_text(textwrap.dedent(PROGRAM))
    config = stacks / "Pulumi.site.yaml"
    cluster_file = tmp_path / "cluster.json"

    def write_config(dockerconfig: str, mutable: bool | None = None) -> None:
        lines = ["config:", f"  standink8s:kubeconfig: {kubeconfig(tmp_path / 'kubeconfig')}",
                 f"  standink8s:dockerconfig: '{dockerconfig}'", f"  standink8s:connection: '{CONNECTION}'"]
        if mutable is not None:
            lines.append(f"  standink8s:secretMutable: {str(mutable).lower()}")
        salt = [line for line in (config.read_text().splitlines() if config.exists() else [])
                if line.startswith("encryptionsalt:")]
        config.write_text("\n".join(salt + lines) + "\n")

    env = {**os.environ, "PULUMI_CONFIG_PASSPHRASE": "standin", STATE_ENV: str(cluster_file)}
    env.pop(FAULTS_ENV, None)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [ENGINE, "run", "--project-dir", str(project), "--stack-dir", str(stacks),
             "--backend", f"file://{tmp_path / 'state'}", "--program", "standin_k8s_program:run", *args],
            capture_output=True, text=True, env=env, timeout=300,
        )

    write_config('{"auths":{}}')
    up = run("--create", "site", "up", "--yes")
    assert up.returncode == 0, up.stdout + up.stderr
    assert "+ 5 created" in up.stdout and 'status   : "deployed"' in up.stdout, up.stdout
    state = json.loads(cluster_file.read_text())
    cluster_ip = state["objects"]["Service/connected-registry/siteone"]["spec"]["clusterIP"]
    assert f'clusterIP: "{cluster_ip}"' in up.stdout
    assert {"Namespace/connected-registry", "Secret/connected-registry/pull"} <= set(state["objects"])
    assert list(state["releases"]) == ["connected-registry/connected-registry"]

    same = run("site", "preview", "--expect-no-changes")
    assert same.returncode == 0, same.stdout + same.stderr

    # New Secret data: upstream replaces a Secret (delete first: same name) unless the provider sets
    # enableSecretMutable, and then it is an in-place update.
    write_config('{"auths":{"x":{}}}')
    replace = run("site", "preview", "--diff")
    assert replace.returncode == 0, replace.stdout + replace.stderr
    assert "+-kubernetes:core/v1:Secret: (replace)" in replace.stdout, replace.stdout
    write_config('{"auths":{"x":{}}}', mutable=True)
    update = run("site", "preview", "--diff")
    assert update.returncode == 0, update.stdout + update.stderr
    assert "~ kubernetes:core/v1:Secret: (update)" in update.stdout, update.stdout
    assert "+-kubernetes:core/v1:Secret" not in update.stdout

    down = run("site", "destroy", "--yes")
    assert down.returncode == 0, down.stdout + down.stderr
    assert json.loads(cluster_file.read_text())["objects"] == {}
    assert json.loads(cluster_file.read_text())["releases"] == {}
