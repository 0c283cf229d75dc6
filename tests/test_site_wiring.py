"""How the site wires its parts: deactivation on reinstall, rolling nodes, endpoint, pull secrets."""

from __future__ import annotations

import base64
import json
from typing import Any

import yaml

import pytest

from components.preview.fakes import CloudFakes
from components.preview.render import render_stack
from components.preview.result import RenderResult
from tests.fixture_stacks import STACK_DIR

RELEASE = "kubernetes:helm.sh/v3:Release"
DEACTIVATION = "pulumi-python:dynamic/edgeregistry:ConnectedRegistryDeactivation"
CONNECTED_REGISTRY = "azure-native:containerregistry:ConnectedRegistry"
COMMAND = "command:remote:Command"
SECRET = "kubernetes:core/v1:Secret"


@pytest.fixture(scope="module")
def dev() -> RenderResult:
    return render_stack(stack="dev", stack_dir=STACK_DIR)


def test_release_gets_the_connection_string_as_a_secret(dev: RenderResult) -> None:
    release = dev.one(RELEASE)
    inputs = release.plain_inputs()
    assert inputs["chart"] == "oci://mcr.microsoft.com/acr/connected-registry/chart"
    assert inputs["version"] == "0.3.0"
    assert (inputs["name"], inputs["namespace"]) == ("connected-registry", "connected-registry")
    assert inputs["values"]["connectionString"] == dev.outputs["connectionString"]
    assert "values.connectionString" in release.secret_paths
    assert release.options.get("deleteBeforeReplace") is True


def test_reinstall_or_removal_deactivates_first(dev: RenderResult) -> None:
    deactivation = dev.one(DEACTIVATION)
    assert dev.one(RELEASE).urn in deactivation.dependencies
    assert dev.one(CONNECTED_REGISTRY).urn in deactivation.dependencies
    assert deactivation.options.get("deleteBeforeReplace") is True
    inputs = deactivation.plain_inputs()
    assert inputs["connectedRegistryName"] == "devship01"
    assert "connected-registry" in inputs["installId"]


def _closure(result: RenderResult, urn: str) -> set[str]:
    seen: set[str] = set()
    stack = [urn]
    while stack:
        for dep in result.by_urn(stack.pop()).dependencies:
            if dep not in seen:
                seen.add(dep)
                stack.append(dep)
    return seen


def test_nodes_roll_one_at_a_time_in_config_order(dev: RenderResult) -> None:
    first = [r for r in dev.by_type(COMMAND) if "192.0.2.10" in r.name]
    second = [r for r in dev.by_type(COMMAND) if "192.0.2.11" in r.name]
    assert len(first) == len(second) >= 1
    release = dev.one(RELEASE).urn
    for command in first:
        assert release in _closure(dev, command.urn), command.name
    for command in second:
        # Every command on the second node waits for every command on the first.
        assert {c.urn for c in first} <= _closure(dev, command.urn), command.name
    for command in first:
        assert not {c.urn for c in second} & _closure(dev, command.urn)


def test_pinned_cluster_ip_is_the_endpoint(dev: RenderResult) -> None:
    assert dev.outputs["registryEndpoint"] == "10.43.200.200:80"


def test_looked_up_cluster_ip_on_an_http_site() -> None:
    # https needs the pinned IP (its certificate names it); an http site may look it up.
    result = render_stack(
        stack="dev",
        stack_dir=STACK_DIR,
        config_overrides={"serviceClusterIP": None, "httpEnabled": True},
        fakes=CloudFakes(cluster_ip="10.43.7.9"),
    )
    assert result.outputs["registryEndpoint"] == "10.43.7.9:80"
    service = result.one("kubernetes:core/v1:Service")
    # The chart names its Service after the connected registry (docs/runbooks.md, serviceName).
    assert service.options["read"] == "connected-registry/devship01"


def test_each_namespace_gets_a_dockerconfigjson_for_the_client_token(dev: RenderResult) -> None:
    secrets = dev.by_type(SECRET)
    assert sorted(s.plain_inputs()["metadata"]["namespace"] for s in secrets) == ["fleet-apps", "monitoring"]
    for secret in secrets:
        inputs = secret.plain_inputs()
        assert inputs["type"] == "kubernetes.io/dockerconfigjson"
        assert "data" in secret.secret_paths
        config = json.loads(base64.b64decode(inputs["data"][".dockerconfigjson"]))
        # Both image-name forms: the site endpoint and the parent's login server.
        assert list(config["auths"]) == ["10.43.200.200:80", "contosoedge.azurecr.io"]
        entry = config["auths"]["10.43.200.200:80"]
        assert config["auths"]["contosoedge.azurecr.io"] == entry
        assert entry["username"] == "devship01-client-token"
        assert entry["password"] == dev.outputs["clientPassword"]
        assert base64.b64decode(entry["auth"]).decode() == f"devship01-client-token:{dev.outputs['clientPassword']}"
    assert dev.outputs["pullSecretNames"] == {"fleet-apps": "edge-registry-pull", "monitoring": "edge-registry-pull"}


def test_every_credential_is_secret_everywhere(dev: RenderResult) -> None:
    from components.preview.values import mask

    credentials = [dev.outputs["clientPassword"], dev.outputs["connectionString"]]
    sync_password = dev.outputs["connectionString"].split("SyncTokenPassword=")[1].split(";")[0]
    credentials.append(sync_password)
    for resource in dev.resources:
        shown = json.dumps(mask(resource.inputs))
        for credential in credentials:
            assert credential not in shown, resource.name
            assert base64.b64encode(credential.encode()).decode()[:20] not in shown, resource.name


def test_kubeconfig_path_is_checked_on_the_machine_running_pulumi(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from components.config.loading import load_site_config
    from components.site import local_file_problems
    from tests.test_config import KUBECONFIG, with_

    def problems(path: str, context: str | None = None) -> list[str]:
        values = with_(kubeconfig=None, kubeconfigPath=path)
        if context:
            values["kubeContext"] = context
        return local_file_problems(load_site_config(values))

    good = tmp_path / "k.yaml"
    good.write_text(KUBECONFIG)
    assert problems(str(good)) == []
    assert problems(str(good), "default") == []
    assert problems(str(good), "other")[0].startswith("edge-registry:kubeContext:")
    assert problems(str(tmp_path / "missing.yaml"))[0].startswith("edge-registry:kubeconfigPath:")
    bad = tmp_path / "bad.yaml"
    bad.write_text("just: text\n")
    assert "not a kubeconfig" in problems(str(bad))[0]


def test_the_program_stops_with_a_clean_run_error_naming_keys() -> None:
    import contextvars

    import pulumi

    from components import site

    def run_with_bad_config() -> str:
        pulumi.runtime.set_all_config(
            {"edge-registry:connectedRegistryName": "ship-01", "edge-registry:repositories": '["UPPER"]'}, []
        )
        with pytest.raises(pulumi.RunError) as caught:
            site.run(catalog=lambda _s: [])
        return str(caught.value)

    message = contextvars.Context().run(run_with_bad_config)
    lines = message.splitlines()
    assert lines[0] == "invalid site configuration:"
    assert any(line.startswith("edge-registry:connectedRegistryName:") for line in lines)
    assert any(line.startswith("edge-registry:repositories:") for line in lines)
    assert any(line.startswith("edge-registry:registryName: required") for line in lines)


# --- previews that tell the truth -----------------------------------------------------------------


def _deactivation_inputs(result: RenderResult) -> dict[str, object]:
    return result.one(DEACTIVATION).plain_inputs()


def test_a_release_update_does_not_touch_the_deactivation(dev: RenderResult) -> None:
    """A password rotation and a chart-value change, previewed as the engine does (the release's
    status unknown): the deactivation's inputs stay exactly as they were, so no replacement."""
    before = _deactivation_inputs(dev)
    assert before["installId"] == "connected-registry/connected-registry/connected-registry/connected-registry"
    rotation = render_stack(stack="dev", stack_dir=STACK_DIR, preview=True, fakes=CloudFakes(release_update=True, password_epoch="rotated"))
    values_change = render_stack(
        stack="dev", stack_dir=STACK_DIR, preview=True, fakes=CloudFakes(release_update=True),
        config_overrides={"chunkSizeInMb": 4, "chartValues": {"logLevel": "debug"}},
    )
    for result in (rotation, values_change):
        assert _deactivation_inputs(result) == before
        assert result.one(RELEASE).plain_inputs()["values"] != dev.one(RELEASE).plain_inputs()["values"]
        assert result.outputs["releaseStatus"] == "(known after apply)"


def test_a_connected_registry_update_does_not_touch_the_deactivation(dev: RenderResult) -> None:
    """A sync schedule change previewed with the ConnectedRegistry's computed outputs unknown:
    the deactivation takes the configured name, so its inputs stay as they were."""
    result = render_stack(
        stack="dev", stack_dir=STACK_DIR, preview=True, fakes=CloudFakes(connected_registry_update=True),
        config_overrides={"syncSchedule": "15 * * * *"},
    )
    assert result.one(CONNECTED_REGISTRY).plain_inputs()["parent"]["syncProperties"]["schedule"] == "15 * * * *"
    assert result.outputs["gatewayEndpoint"] == "contosoedge.westeurope.data.azurecr.io"  # read, not the output
    assert _deactivation_inputs(result) == _deactivation_inputs(dev)
    assert _deactivation_inputs(result)["connectedRegistryName"] == "devship01"


def test_the_release_fake_of_an_update_hides_status_like_the_engine() -> None:
    # The proof above only means something if a status-derived id would have changed.
    result = render_stack(stack="dev", stack_dir=STACK_DIR, preview=True, fakes=CloudFakes(release_update=True))
    assert result.outputs["releaseName"] == result.outputs["releaseNamespace"] == "(known after apply)"


def test_same_name_azure_resources_are_deleted_before_they_are_replaced(dev: RenderResult) -> None:
    for type_ in (CONNECTED_REGISTRY, "azure-native:containerregistry:ScopeMap", "azure-native:containerregistry:Token"):
        for resource in dev.by_type(type_):
            assert resource.options.get("deleteBeforeReplace") is True, resource.name
    assert dev.one(CONNECTED_REGISTRY).options["replaceOnChanges"] == ["mode", "parent.syncProperties.tokenId"]


def test_service_name_is_config_and_a_missing_service_names_what_it_tried() -> None:
    named = render_stack(stack="dev", stack_dir=STACK_DIR, config_overrides={"serviceClusterIP": None, "serviceName": "cr-svc"})
    assert named.one("kubernetes:core/v1:Service").options["read"] == "connected-registry/cr-svc"
    with pytest.raises(Exception, match=r"edge-registry:serviceName: no Service connected-registry/devship01"):
        render_stack(stack="dev", stack_dir=STACK_DIR, config_overrides={"serviceClusterIP": None}, fakes=CloudFakes(service_missing=True))


def test_each_node_says_what_the_run_does(dev: RenderResult, tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert dev.node_summaries == {
        "dev-node-192.0.2.10": "node 192.0.2.10: /etc/rancher/k3s/registries.yaml (new file): "
        "mirrors[10.43.200.200:80] added, mirrors[contosoedge.azurecr.io] added, configs[10.43.200.200:80] added; "
        "k3s restarts",
        "dev-node-192.0.2.11": "node 192.0.2.11: /etc/rancher/k3s/registries.yaml (new file): "
        "mirrors[10.43.200.200:80] added, mirrors[contosoedge.azurecr.io] added, configs[10.43.200.200:80] added; "
        "k3s-agent restarts",
    }


def test_up_with_an_unreadable_node_stops_before_any_resource() -> None:
    from components.nodes.read import NodeReadFailure
    from components.preview.fakes import FakeNodeReader

    registered_before_the_read: list[list[str]] = []

    class WatchingReader(FakeNodeReader):
        def read_nodes(self, targets, private_key, use_agent=False):  # type: ignore[no-untyped-def]
            from pulumi.runtime.settings import SETTINGS

            registered_before_the_read.append([r.type for r in SETTINGS.monitor.records])
            return super().read_nodes(targets, private_key, use_agent)

    reader = WatchingReader({"192.0.2.11": NodeReadFailure("192.0.2.11", "cannot connect: timed out", True)})  # type: ignore[dict-item]
    with pytest.raises(Exception) as error:
        render_stack(stack="dev", stack_dir=STACK_DIR, node_reader=reader)
    assert "node 192.0.2.11: cannot read /etc/rancher/k3s/registries.yaml over SSH" in str(error.value)
    # The nodes are read before anything but the Site component itself is declared.
    (types,) = registered_before_the_read
    assert set(types) <= {"edge-registry:index:Site"}, types
    preview = render_stack(stack="dev", stack_dir=STACK_DIR, node_reader=reader, preview=True)
    assert any(w.startswith("node 192.0.2.11: cannot read") for w in preview.warnings)
    assert "stdin" not in preview.one(COMMAND, "192.0.2.11-apply").inputs


def test_previews_read_as_the_preview_account_when_configured_and_up_as_the_write() -> None:
    from components.nodes.read_account import READ_SCRIPT
    from components.preview.fakes import FakeNodeReader

    preview_reader, up_reader, default_reader = FakeNodeReader(), FakeNodeReader(), FakeNodeReader()
    account = {"previewNodeUser": "edge-registry-read"}
    render_stack(stack="dev", stack_dir=STACK_DIR, preview=True, node_reader=preview_reader, config_overrides=account)
    render_stack(stack="dev", stack_dir=STACK_DIR, preview=False, node_reader=up_reader, config_overrides=account)
    render_stack(stack="dev", stack_dir=STACK_DIR, preview=True, node_reader=default_reader)
    path = "/etc/rancher/k3s/registries.yaml"
    assert [(t.user, t.command) for t in preview_reader.targets] == [
        ("edge-registry-read", f"sudo -n {READ_SCRIPT} {path}")
    ] * 2
    # `up` and a preview without the key read as the node's user, with the write's sudo -n rule
    for reader in (up_reader, default_reader):
        assert [(t.user, t.command) for t in reader.targets] == [("ubuntu", None)] * 2


def _node_plan(result: RenderResult, host: str = "192.0.2.10") -> Any:
    from components.nodes import mirror as node_mirror

    apply = next(r for r in result.by_type("command:remote:Command") if r.name.endswith(f"{host}-apply"))
    assert "stdin" in apply.secret_paths
    return node_mirror.decode_apply_stdin(apply.plain_inputs()["stdin"])


@pytest.fixture(scope="module")
def dev_https() -> RenderResult:
    return render_stack(stack="dev", stack_dir=STACK_DIR, config_overrides={"httpEnabled": False})


def test_https_nodes_get_the_site_ca_the_login_server_mirror_and_the_client_token(dev_https: RenderResult) -> None:
    dev = dev_https
    plan = _node_plan(dev)
    ca = dev.one("pulumi-python:dynamic/edgeregistry:SiteCa")
    assert plan.ca is not None and plan.ca_file == "/etc/rancher/k3s/edge-registry-ca.crt"
    assert ca.urn in _closure(dev, next(r for r in dev.resources if r.name.endswith("192.0.2.10-apply")).urn)
    document = yaml.safe_load(plan.content)
    assert document["mirrors"] == {
        "10.43.200.200:443": {"endpoint": ["https://10.43.200.200:443"]},
        "contosoedge.azurecr.io": {"endpoint": ["https://10.43.200.200:443"]},
    }
    assert document["configs"]["10.43.200.200:443"] == {
        "auth": {"username": "devship01-client-token", "password": dev.outputs["clientPassword"]},
        "tls": {"ca_file": "/etc/rancher/k3s/edge-registry-ca.crt"},
    }
    # The pull secrets address the https endpoint, and the login server for the other image name.
    for secret in dev.by_type(SECRET):
        config = json.loads(base64.b64decode(secret.plain_inputs()["data"][".dockerconfigjson"]))
        assert list(config["auths"]) == ["10.43.200.200:443", "contosoedge.azurecr.io"]
    release = dev.one(RELEASE).plain_inputs()["values"]
    assert release["httpEnabled"] is False and set(release["tls"]) == {"crt", "key"}


def test_the_login_server_mirror_can_be_switched_off() -> None:
    result = render_stack(stack="dev", stack_dir=STACK_DIR, config_overrides={"httpEnabled": False, "mirrorLoginServer": False})
    assert list(yaml.safe_load(_node_plan(result).content)["mirrors"]) == ["10.43.200.200:443"]


def test_http_nodes_get_no_ca() -> None:
    plan = _node_plan(render_stack(stack="dev", stack_dir=STACK_DIR))
    assert plan.ca is None
    assert "tls" not in yaml.safe_load(plan.content)["configs"]["10.43.200.200:80"]


def test_a_connected_registry_update_previews_only_the_connected_registry(dev: RenderResult) -> None:
    """azure-native previews the output-only properties of an updated ConnectedRegistry (its
    gateway endpoint among them) as unknown: the release, pull secrets and nodes take nothing
    from them, so a schedule or window change previews no other change."""
    result = render_stack(
        stack="dev", stack_dir=STACK_DIR, preview=True, fakes=CloudFakes(connected_registry_update=True),
        config_overrides={"syncSchedule": "15 * * * *", "syncWindow": "PT2H"},
    )
    converged = render_stack(stack="dev", stack_dir=STACK_DIR, preview=True)
    assert result.outputs["gatewayEndpoint"] == dev.outputs["gatewayEndpoint"] == "contosoedge.westeurope.data.azurecr.io"
    changed = {r.name for r in result.resources if r.plain_inputs() != converged.by_urn(r.urn).plain_inputs()}
    assert changed == {"dev-azure-connected-registry"}
    # What the read spares: built from the ConnectedRegistry's output, the connection string (and
    # with it the release) would preview as changing.
    from dataclasses import replace

    from components.preview.fakes import converged_sync_status

    unread = render_stack(
        stack="dev", stack_dir=STACK_DIR, preview=True, config_overrides={"syncSchedule": "15 * * * *"},
        fakes=CloudFakes(connected_registry_update=True,
                         sync_status=lambda where: replace(converged_sync_status(where), gateway_endpoint=None)),
    )
    assert unread.one(RELEASE).plain_inputs()["values"] != converged.one(RELEASE).plain_inputs()["values"]
