"""The on-prem install and the pull secrets under Pulumi mocks: what would be sent to the engine."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import pulumi
import pytest

from components.cluster.onprem import CHART, OnPremInstall, OnPremInstallArgs, format_endpoint, merge_values
from components.cluster.pull_secrets import PullSecrets, PullSecretsArgs
from tests.k8s_mocks import (
    NAMESPACE,
    PROVIDER,
    RELEASE,
    SECRET,
    SERVICE,
    SERVICE_ACCOUNT,
    SERVICE_ACCOUNT_PATCH,
    UNKNOWN,
    Cluster,
    Resolved,
    Run,
    is_secret,
    plaintext_paths,
    run_program,
)

CONNECTION_STRING = (
    "ConnectedRegistryName=site1;SyncTokenName=site1-sync;SyncTokenPassword=sync-pw-0123456789;"
    "ParentGatewayEndpoint=parent.westeurope.data.azurecr.io;ParentEndpointProtocol=https"
)
KUBECONFIG = (
    "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: [{name: a, user: {token: kube-tok-42}}]\n"
)
CLIENT_TOKEN = "site1-client"
CLIENT_PASSWORD = "client-pw-9876543210"
RELEASE_NAME = "edge-cr"
#: The chart's Service: named after the connected registry (the site's serviceName default).
SERVICE_NAME = "site1"
NS = "connected-registry"
LOOKED_UP_IP = "10.43.7.7"

BASE = OnPremInstallArgs(
    kubeconfig=KUBECONFIG,
    namespace=NS,
    release_name=RELEASE_NAME,
    chart_version="0.2.0",
    timeout_seconds=900,
    http_enabled=True,
    chunk_size_in_mb=1,
    storage_class_name="local-path",
    storage_request="20Gi",
    connection_string=CONNECTION_STRING,
    service_name=SERVICE_NAME,
)
CLUSTER = Cluster(
    services={f"{NS}/{SERVICE_NAME}": LOOKED_UP_IP},
    service_accounts={"shop/default": ["vendor-pull"], "erp/default": []},
)


def secret_at(inputs: Mapping[str, Any], *path: str) -> bool:
    """Whether the value at `path` is protected: it, or a map holding it, is a secret."""
    node: Any = inputs
    for key in path:
        if is_secret(node):
            return True
        node = node[key]
    return is_secret(node)


def leaks(run: Run, needle: str) -> list[str]:
    """Where `needle` is sent to the engine in plain text, over every request."""
    return [f"{r.name}{p}" for r in run.monitor.requests for p in plaintext_paths(r.inputs, needle)]


def install(args: OnPremInstallArgs = BASE, cluster: Cluster = CLUSTER, preview: bool = False, **pull: Any) -> Run:
    """Run an OnPremInstall (and PullSecrets when `pull` has namespaces) under mocks, as
    `pulumi up` or, with `preview`, as `pulumi preview`."""

    def program() -> dict[str, Any]:
        onprem = OnPremInstall("site1", args)
        outputs: dict[str, Any] = {
            "endpoint": onprem.endpoint,
            "release_name": onprem.release_name,
            "release_namespace": onprem.release_namespace,
            "release_status": onprem.release_status,
        }
        if pull:
            secrets = PullSecrets(
                "site1-pull",
                PullSecretsArgs(
                    provider=onprem.provider,
                    endpoint=onprem.endpoint,
                    username=CLIENT_TOKEN,
                    password=pulumi.Output.secret(CLIENT_PASSWORD),
                    **{"secret_name": "edge-registry-pull", **pull},
                ),
            )
            outputs.update({f"secret:{ns}": name for ns, name in secrets.secret_names.items()})
        return outputs

    return run_program(program, cluster, preview=preview)


# --- pure helpers -----------------------------------------------------------------------------


def test_endpoint_brackets_ipv6_and_normalises_it() -> None:
    assert format_endpoint("10.43.0.10", 80) == "10.43.0.10:80"
    assert format_endpoint("FD00:0:0::10", 443) == "[fd00::10]:443"


def test_value_merge_is_deep_and_override_wins() -> None:
    merged = merge_values({"sync": {"a": 1, "b": 2}, "keep": True}, {"sync": {"b": 3}, "new": 4})
    assert merged == {"sync": {"a": 1, "b": 3}, "keep": True, "new": 4}


def test_args_need_exactly_one_kubeconfig_source() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        replace(BASE, kubeconfig=None)
    with pytest.raises(ValueError, match="exactly one"):
        replace(BASE, kubeconfig_path="/etc/rancher/k3s/k3s.yaml")


def test_args_refuse_a_cluster_ip_that_is_not_an_address() -> None:
    with pytest.raises(ValueError):
        replace(BASE, service_cluster_ip="10.43.0.300")


# --- provider and namespace -------------------------------------------------------------------


def test_provider_adopts_existing_objects_by_server_side_apply() -> None:
    provider = install().monitor.one(PROVIDER).plain
    assert provider["enableServerSideApply"] == "true"
    assert provider["upsertExistingObjects"] == "true"


def test_kubeconfig_content_is_a_secret() -> None:
    run = install()
    assert secret_at(run.monitor.one(PROVIDER).inputs, "kubeconfig")
    assert leaks(run, "kube-tok-42") == []


def test_kubeconfig_path_and_context_reach_the_provider() -> None:
    run = install(replace(BASE, kubeconfig=None, kubeconfig_path="/etc/rancher/k3s/k3s.yaml", kube_context="edge"))
    provider = run.monitor.one(PROVIDER).plain
    assert (provider["kubeconfig"], provider["context"]) == ("/etc/rancher/k3s/k3s.yaml", "edge")


def test_every_kubernetes_object_goes_through_the_site_provider() -> None:
    # A resource without it would use the ambient KUBECONFIG: possibly another cluster.
    run = install(namespaces=["shop"], create_namespaces=True, patch_default_service_account=True)
    provider_urn = run.monitor.one(PROVIDER).urn
    kube = [r for r in run.monitor.requests if r.type.startswith("kubernetes:")]
    assert len(kube) >= 6
    assert [r.name for r in kube if not r.provider.startswith(f"{provider_urn}::")] == []


def test_namespace_is_declared_with_its_name_and_kept_on_delete() -> None:
    namespace = install().monitor.one(NAMESPACE)
    assert namespace.plain["metadata"] == {"name": NS}
    assert namespace.retain_on_delete


# --- the release ------------------------------------------------------------------------------


def test_release_installs_the_chart_at_the_configured_version() -> None:
    release = install(replace(BASE, chart_version="0.3.1")).monitor.one(RELEASE).plain
    assert (release["chart"], release["version"]) == (CHART, "0.3.1")
    assert CHART == "oci://mcr.microsoft.com/acr/connected-registry/chart"


def test_release_name_and_namespace_are_explicit() -> None:
    release = install().monitor.one(RELEASE).plain
    assert (release["name"], release["namespace"], release["createNamespace"]) == (RELEASE_NAME, NS, False)


def test_release_is_atomic_and_waits_with_the_timeout() -> None:
    release = install().monitor.one(RELEASE).plain
    assert release["atomic"] is True
    assert release["skipAwait"] is False
    assert release["timeout"] == 900


def test_release_is_deleted_before_it_is_replaced() -> None:
    assert install().monitor.one(RELEASE).delete_before_replace


def test_release_waits_for_the_namespace() -> None:
    run = install()
    assert run.monitor.one(NAMESPACE).urn in run.monitor.one(RELEASE).dependencies


def test_release_values_are_the_configured_settings() -> None:
    values = install().monitor.one(RELEASE).plain["values"]
    assert values == {
        "connectionString": CONNECTION_STRING,
        "httpEnabled": True,
        "sync": {"chunkSizeInMb": 1},
        "pvc": {"storageClassName": "local-path", "storageRequest": "20Gi"},
    }


def test_pinned_cluster_ip_is_a_chart_value() -> None:
    values = install(replace(BASE, service_cluster_ip="10.43.0.10")).monitor.one(RELEASE).plain["values"]
    assert values["service"] == {"clusterIP": "10.43.0.10"}


def test_extra_values_pass_through_and_the_programs_values_win() -> None:
    extra = {"sync": {"chunkSizeInMb": 64, "retries": 3}, "httpEnabled": False, "logLevel": "Debug"}
    values = install(replace(BASE, extra_values=extra)).monitor.one(RELEASE).plain["values"]
    assert values["sync"] == {"chunkSizeInMb": 1, "retries": 3}
    assert values["httpEnabled"] is True
    assert values["logLevel"] == "Debug"


def test_connection_string_is_secret_all_the_way_into_the_values() -> None:
    # Passed in as a plain string here: the component itself must make it secret.
    run = install()
    release = run.monitor.one(RELEASE)
    assert secret_at(release.inputs, "values", "connectionString")
    assert "values" in release.additional_secret_outputs
    assert leaks(run, "sync-pw-0123456789") == []


def test_release_outputs_report_helms_view() -> None:
    outputs = install().outputs
    assert outputs["release_name"].value == RELEASE_NAME
    assert outputs["release_namespace"].value == NS
    assert outputs["release_status"].value == "deployed"


# --- the endpoint -----------------------------------------------------------------------------


def test_pinned_cluster_ip_is_the_endpoint_without_any_lookup() -> None:
    run = install(replace(BASE, service_cluster_ip="10.43.0.10"))
    assert run.outputs["endpoint"].value == "10.43.0.10:80"
    assert run.monitor.of_type(SERVICE, "read") == []


HTTPS = replace(
    BASE, service_cluster_ip="10.43.0.10", http_enabled=False,
    tls_certificate="-----BEGIN CERTIFICATE-----\nserver-cert\n-----END CERTIFICATE-----\n",
    tls_key="-----BEGIN PRIVATE KEY-----\nserver-key-1234\n-----END PRIVATE KEY-----\n",
)


def test_https_endpoint_is_on_port_443() -> None:
    assert install(HTTPS).outputs["endpoint"].value == "10.43.0.10:443"
    assert HTTPS.scheme == "https" and BASE.scheme == "http"


def test_https_needs_a_certificate_and_key() -> None:
    with pytest.raises(ValueError, match="tls_certificate and tls_key"):
        replace(BASE, http_enabled=False)


def test_https_values_carry_tls_crt_and_key_base64_and_secret() -> None:
    run = install(HTTPS)
    release = run.monitor.one(RELEASE)
    values = release.plain["values"]
    assert values["httpEnabled"] is False
    assert base64.b64decode(values["tls"]["crt"]).decode() == HTTPS.tls_certificate
    assert base64.b64decode(values["tls"]["key"]).decode() == HTTPS.tls_key
    assert secret_at(release.inputs, "values", "tls", "crt") and secret_at(release.inputs, "values", "tls", "key")
    assert leaks(run, "server-key-1234") == []


def test_http_values_carry_no_tls() -> None:
    assert "tls" not in install(replace(BASE, service_cluster_ip="10.43.0.10")).monitor.one(RELEASE).plain["values"]


def test_pinned_ipv6_endpoint_is_bracketed() -> None:
    assert install(replace(BASE, service_cluster_ip="fd00:0::10")).outputs["endpoint"].value == "[fd00::10]:80"


def test_looked_up_endpoint_is_the_chart_services_cluster_ip() -> None:
    run = install()
    read = run.monitor.one(SERVICE, "read")
    assert read.read_id == f"{NS}/{SERVICE_NAME}"
    assert run.monitor.one(RELEASE).urn in read.dependencies
    assert run.outputs["endpoint"] == Resolved(f"{LOOKED_UP_IP}:80", secret=False)


def test_the_service_is_looked_up_by_its_configured_name_never_the_release_name() -> None:
    cluster = Cluster(services={f"{NS}/{RELEASE_NAME}": "10.43.1.1", f"{NS}/cr-svc": "10.43.9.9"})
    run = install(replace(BASE, service_name="cr-svc"), cluster)
    assert run.monitor.mocks.lookups == [(SERVICE, f"{NS}/cr-svc")]
    assert run.outputs["endpoint"].value == "10.43.9.9:80"


def test_args_need_a_service_name() -> None:
    with pytest.raises(ValueError, match="service_name is required"):
        replace(BASE, service_name="")


def test_preview_of_a_new_release_skips_the_service_read() -> None:
    """The release does not exist yet, so neither does its Service: the read's id is unknown,
    the engine skips it, and the endpoint is unknown instead of the preview failing."""
    run = install(cluster=Cluster(), preview=True)
    read = run.monitor.one(SERVICE, "read")
    assert read.read_id == UNKNOWN
    assert run.monitor.mocks.lookups == []
    assert run.outputs["endpoint"].known is False


def test_preview_of_an_installed_release_reads_the_service() -> None:
    cluster = replace(CLUSTER, releases={f"{NS}/{RELEASE_NAME}"})
    run = install(cluster=cluster, preview=True)
    assert run.monitor.one(SERVICE, "read").read_id == f"{NS}/{SERVICE_NAME}"
    assert run.monitor.mocks.lookups == [(SERVICE, f"{NS}/{SERVICE_NAME}")]
    assert run.outputs["endpoint"] == Resolved(f"{LOOKED_UP_IP}:80", secret=False, known=True)


def test_a_missing_service_stops_the_run_naming_what_was_tried() -> None:
    # The engine's own words (docs/runbooks.md, "The registry's endpoint"): the id is namespace/name.
    with pytest.raises(Exception, match=f"resource '{NS}/{SERVICE_NAME}' does not exist"):
        install(cluster=Cluster(services={f"{NS}/{RELEASE_NAME}": LOOKED_UP_IP}))
    with pytest.raises(Exception, match=f"resource '{NS}/{SERVICE_NAME}' does not exist"):
        install(cluster=Cluster(services={f"{NS}/{RELEASE_NAME}": LOOKED_UP_IP}, releases={f"{NS}/{RELEASE_NAME}"}),
                preview=True)


def test_headless_service_is_an_error_naming_it_and_the_keys() -> None:
    with pytest.raises(Exception, match=f"{NS}/{SERVICE_NAME} has no ClusterIP; pin edge-registry:serviceClusterIP"):
        install(cluster=Cluster(services={f"{NS}/{SERVICE_NAME}": "None"}))


# --- pull secrets -----------------------------------------------------------------------------


def test_one_dockerconfigjson_secret_per_namespace() -> None:
    secrets = install(namespaces=["shop", "erp"]).monitor.of_type(SECRET)
    assert sorted((s.plain["metadata"]["namespace"], s.plain["metadata"]["name"]) for s in secrets) == [
        ("erp", "edge-registry-pull"),
        ("shop", "edge-registry-pull"),
    ]
    assert {s.plain["type"] for s in secrets} == {"kubernetes.io/dockerconfigjson"}


def test_pull_secret_holds_exactly_the_docker_config_for_the_endpoint() -> None:
    secret = install(namespaces=["shop"]).monitor.one(SECRET).plain
    assert list(secret["data"]) == [".dockerconfigjson"]
    document = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))
    assert document == {
        "auths": {
            f"{LOOKED_UP_IP}:80": {
                "username": CLIENT_TOKEN,
                "password": CLIENT_PASSWORD,
                "auth": base64.b64encode(f"{CLIENT_TOKEN}:{CLIENT_PASSWORD}".encode()).decode(),
            }
        }
    }


def test_pull_secret_key_follows_a_pinned_ipv6_endpoint() -> None:
    secret = install(replace(BASE, service_cluster_ip="fd00::10"), namespaces=["shop"]).monitor.one(SECRET).plain
    assert list(json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))["auths"]) == ["[fd00::10]:80"]


def test_every_credential_stays_secret() -> None:
    run = install(namespaces=["shop", "erp"], create_namespaces=True, patch_default_service_account=True)
    for secret in run.monitor.of_type(SECRET):
        assert secret_at(secret.inputs, "data", ".dockerconfigjson")
    auth = base64.b64encode(f"{CLIENT_TOKEN}:{CLIENT_PASSWORD}".encode()).decode()
    for needle in (CLIENT_PASSWORD, auth, "sync-pw-0123456789", "kube-tok-42"):
        assert leaks(run, needle) == [], needle
    assert not any(o.secret for o in run.outputs.values() if isinstance(o.value, str) and "pull" in o.value)


def test_secret_names_are_reported_per_namespace() -> None:
    outputs = install(namespaces=["shop", "erp"]).outputs
    assert outputs["secret:shop"].value == "edge-registry-pull"
    assert outputs["secret:erp"].value == "edge-registry-pull"


def test_application_namespaces_are_created_only_when_configured() -> None:
    names = {n.plain["metadata"]["name"] for n in install(namespaces=["shop"]).monitor.of_type(NAMESPACE)}
    assert names == {NS}
    run = install(namespaces=["shop", "erp"], create_namespaces=True)
    created = {n.plain["metadata"]["name"]: n for n in run.monitor.of_type(NAMESPACE)}
    assert set(created) == {NS, "shop", "erp"}
    assert created["shop"].retain_on_delete and created["erp"].retain_on_delete
    shop_secret = next(s for s in run.monitor.of_type(SECRET) if s.plain["metadata"]["namespace"] == "shop")
    assert created["shop"].urn in shop_secret.dependencies


def test_default_service_account_is_left_alone_unless_configured() -> None:
    run = install(namespaces=["shop"])
    assert run.monitor.of_type(SERVICE_ACCOUNT_PATCH) == []
    assert run.monitor.of_type(SERVICE_ACCOUNT, "read") == []


def test_default_service_account_keeps_the_pull_secrets_it_had() -> None:
    run = install(namespaces=["shop", "erp"], patch_default_service_account=True)
    patches = {p.plain["metadata"]["namespace"]: p.plain for p in run.monitor.of_type(SERVICE_ACCOUNT_PATCH)}
    assert patches["shop"]["imagePullSecrets"] == [{"name": "vendor-pull"}, {"name": "edge-registry-pull"}]
    assert patches["erp"]["imagePullSecrets"] == [{"name": "edge-registry-pull"}]
    assert {p["metadata"]["name"] for p in patches.values()} == {"default"}


def test_default_service_account_patch_is_forced_retained_and_after_the_secret() -> None:
    run = install(namespaces=["shop"], patch_default_service_account=True)
    patch = run.monitor.one(SERVICE_ACCOUNT_PATCH)
    assert patch.plain["metadata"]["annotations"] == {"pulumi.com/patchForce": "true"}
    assert patch.retain_on_delete
    assert run.monitor.one(SECRET).urn in patch.dependencies
    assert run.monitor.one(SERVICE_ACCOUNT, "read").read_id == "shop/default"


def test_a_preview_that_creates_a_namespace_reads_no_service_account_there() -> None:
    # pulumi-kubernetes previews the create as a server-side dry run, which answers with a uid:
    # the read is keyed on the namespace's id, unknown until it exists, so the engine skips it
    # instead of failing on "resource 'fresh/default' does not exist".
    run = install(namespaces=["shop", "fresh"], create_namespaces=True, patch_default_service_account=True,
                  preview=True)
    reads = {r.read_id for r in run.monitor.of_type(SERVICE_ACCOUNT, "read")}
    assert "fresh/default" not in reads
    assert "shop/default" in reads  # an existing namespace: its live ServiceAccount is merged
    patches = {p.plain["metadata"]["namespace"]: p.plain for p in run.monitor.of_type(SERVICE_ACCOUNT_PATCH)}
    assert patches["shop"]["imagePullSecrets"] == [{"name": "vendor-pull"}, {"name": "edge-registry-pull"}]


def test_pull_secrets_update_in_place_on_a_new_password() -> None:
    # pulumi-kubernetes replaces a Secret whose data changes (deleting the named object first)
    # unless the provider allows mutable Secrets: a rotation would leave each namespace without
    # its pull secret for a moment.
    assert install().monitor.one(PROVIDER).plain["enableSecretMutable"] == "true"  # provider inputs travel as strings
