"""The Azure side of a site, evaluated by the real program under the SDK's mocks."""

from __future__ import annotations

import pytest

from components.config.fields import ConfigError
from components.preview.fakes import CloudFakes
from components.preview.render import render_stack
from components.preview.result import RenderResult
from components.preview.values import reveal
from tests.fixture_stacks import STACK_DIR

SCOPE_MAP = "azure-native:containerregistry:ScopeMap"
TOKEN = "azure-native:containerregistry:Token"
CONNECTED_REGISTRY = "azure-native:containerregistry:ConnectedRegistry"
PASSWORD = "pulumi-python:dynamic/edgeregistry:TokenPassword"
CATALOG = ["fleet/api", "fleet/web", "hello-world", "other/x"]


@pytest.fixture(scope="module")
def dev() -> RenderResult:
    return render_stack(stack="dev", stack_dir=STACK_DIR, catalog=lambda _server: CATALOG)


def test_sync_scope_map_has_exactly_the_cli_actions(dev: RenderResult) -> None:
    inputs = dev.one(SCOPE_MAP, "-sync-scope-map").plain_inputs()
    assert inputs["scopeMapName"] == "devship01-sync-scope-map"
    assert inputs["registryName"] == "contosoedge"
    assert inputs["resourceGroupName"] == "rg-edge-registry"
    expected = []
    for repo in ["fleet/api", "fleet/web", "hello-world"]:
        expected += [f"repositories/{repo}/content/read", f"repositories/{repo}/metadata/read"]
    expected += [f"gateway/devship01/{a}" for a in ("config/read", "config/write", "message/read", "message/write")]
    assert inputs["actions"] == expected


def test_client_scope_map_is_read_only_and_keeps_wildcards(dev: RenderResult) -> None:
    actions = dev.one(SCOPE_MAP, "-client-scope-map").plain_inputs()["actions"]
    assert "repositories/fleet/*/content/read" in actions
    assert all(a.endswith(("content/read", "metadata/read")) for a in actions)


def test_tokens_are_enabled_and_bound_to_their_scope_maps(dev: RenderResult) -> None:
    for kind in ("sync", "client"):
        token = dev.one(TOKEN, f"-{kind}-token")
        scope_map = dev.one(SCOPE_MAP, f"-{kind}-scope-map")
        inputs = token.plain_inputs()
        assert inputs["status"] == "enabled"
        assert inputs["tokenName"] == f"devship01-{kind}-token"
        assert inputs["scopeMapId"].endswith(f"/scopeMaps/devship01-{kind}-scope-map")
        assert scope_map.urn in token.dependencies


def test_connected_registry_inputs(dev: RenderResult) -> None:
    registry = dev.one(CONNECTED_REGISTRY)
    inputs = registry.plain_inputs()
    assert inputs["connectedRegistryName"] == "devship01"
    assert inputs["mode"] == "ReadOnly"
    sync = inputs["parent"]["syncProperties"]
    assert sync["tokenId"].endswith("/tokens/devship01-sync-token")
    assert (sync["schedule"], sync["syncWindow"], sync["messageTtl"]) == ("30 * * * *", "PT1H", "P2D")
    assert len(inputs["clientTokenIds"]) == 1
    assert inputs["clientTokenIds"][0].endswith("/tokens/devship01-client-token")
    assert inputs["logging"] == {"logLevel": "Information", "auditLogStatus": "Disabled"}
    assert inputs["notificationsList"] == ["hello-world:*:*"]
    assert set(registry.options["replaceOnChanges"]) == {"mode", "parent.syncProperties.tokenId"}
    for token in ("-sync-token", "-client-token"):
        assert dev.one(TOKEN, token).urn in registry.dependencies


def test_children_are_parented_to_the_azure_component(dev: RenderResult) -> None:
    component = dev.one("edge-registry:index:AzureConnectedRegistry")
    site = dev.one("edge-registry:index:Site")
    assert component.parent == site.urn
    for type_ in (SCOPE_MAP, TOKEN, CONNECTED_REGISTRY):
        for resource in dev.by_type(type_):
            assert resource.parent == component.urn, resource.name


def test_passwords_are_secret_outputs_bound_to_their_tokens(dev: RenderResult) -> None:
    passwords = dev.by_type(PASSWORD)
    assert len(passwords) == 2
    for password in passwords:
        assert "value" in password.options.get("additionalSecretOutputs", [])
        kind = "sync" if "-sync-" in password.name else "client"
        assert dev.one(TOKEN, f"-{kind}-token").urn in password.dependencies


def test_connection_string_is_exact_and_secret(dev: RenderResult) -> None:
    assert "connectionString" in dev.secret_outputs
    value = dev.outputs["connectionString"]
    prefix = "ConnectedRegistryName=devship01;SyncTokenName=devship01-sync-token;SyncTokenPassword="
    assert value.startswith(prefix)
    assert value.endswith(";ParentGatewayEndpoint=contosoedge.westeurope.data.azurecr.io;ParentEndpointProtocol=https")
    assert len(value) > len(prefix) + 80


def test_outputs_and_their_secrecy(dev: RenderResult) -> None:
    assert dev.outputs["connectedRegistryName"] == "devship01"
    assert dev.outputs["connectedRegistryId"].endswith("/connectedRegistries/devship01")
    assert dev.outputs["gatewayEndpoint"] == "contosoedge.westeurope.data.azurecr.io"
    assert dev.outputs["syncTokenName"] == "devship01-sync-token"
    assert dev.outputs["clientTokenName"] == "devship01-client-token"
    assert {"clientPassword", "connectionString"} <= dev.secret_outputs
    password = dev.outputs["clientPassword"]
    plain = [v for k, v in dev.outputs.items() if k not in dev.secret_outputs]
    assert password and not any(password in str(v) for v in plain)


def test_no_password_appears_in_a_non_secret_input(dev: RenderResult) -> None:
    from components.preview.values import mask

    password = dev.outputs["clientPassword"]
    for resource in dev.resources:
        assert password not in str(mask(resource.inputs)), resource.name


def test_registry_not_premium_fails_with_the_fix() -> None:
    with pytest.raises(ConfigError) as caught:
        render_stack(stack="dev", stack_dir=STACK_DIR, catalog=lambda _s: CATALOG, fakes=CloudFakes(registry_sku="Standard"))
    (problem,) = caught.value.problems
    assert problem.startswith("edge-registry:registryName:") and "--sku Premium" in problem


def test_registry_without_data_endpoint_fails_with_the_fix() -> None:
    with pytest.raises(ConfigError) as caught:
        render_stack(stack="dev", stack_dir=STACK_DIR, catalog=lambda _s: CATALOG, fakes=CloudFakes(data_endpoint_enabled=False))
    assert "--data-endpoint-enabled true" in caught.value.problems[0]


def test_pattern_matching_nothing_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        render_stack(stack="dev", stack_dir=STACK_DIR, catalog=lambda _s: ["hello-world"])
    assert caught.value.problems[0].startswith("edge-registry:repositories:")
    assert "fleet/*" in caught.value.problems[0]


def test_expansion_past_the_scope_map_limit_fails_at_preview() -> None:
    big = [f"fleet/app{i:03d}" for i in range(600)]
    with pytest.raises(ConfigError, match="at most 500"):
        render_stack(stack="dev", stack_dir=STACK_DIR, catalog=lambda _s: big)


def test_read_write_mode_adds_write_actions() -> None:
    result = render_stack(
        stack="dev", stack_dir=STACK_DIR, catalog=lambda _s: CATALOG, config_overrides={"mode": "ReadWrite", "allowReadWrite": True}
    )
    actions = result.one(SCOPE_MAP, "-sync-scope-map").plain_inputs()["actions"]
    assert "repositories/hello-world/content/write" in actions
    assert "repositories/hello-world/content/delete" in actions
    assert result.one(CONNECTED_REGISTRY).plain_inputs()["mode"] == "ReadWrite"


# --- tokens and refresh --------------------------------------------------------------------------


def refreshed(state: dict[str, dict], urn: str, passwords: list[dict[str, str]]) -> dict[str, dict]:
    """What azure-native's refresh leaves in the state: the passwords ARM reports, as inputs."""
    after = {key: dict(value) for key, value in state.items()}
    after[urn]["credentials"] = {"passwords": passwords, "certificates": []}
    return after


def test_tokens_ignore_the_credentials_a_refresh_copies_into_their_inputs(dev: RenderResult) -> None:
    for kind in ("sync", "client"):
        options = dev.one(TOKEN, f"-{kind}-token").options
        assert options["ignoreChanges"] == ["credentials"]
        assert options["replaceOnChanges"] == ["*"] and options["deleteBeforeReplace"] is True


def test_a_refresh_after_a_password_was_issued_leaves_the_tokens_unchanged(dev: RenderResult) -> None:
    from tests.test_cloud_only import changes, stored

    state = stored(dev)
    issued = [{"name": "password1", "creationTime": "2025-01-01T00:00:00Z", "expiry": "2030-01-01T00:00:00Z"}]
    tokens = [dev.one(TOKEN, f"-{kind}-token") for kind in ("sync", "client")]
    for token in tokens:
        assert "credentials" not in token.plain_inputs()  # the program never passes them
        state = refreshed(state, token.urn, issued)

    assert changes(render_stack(stack="dev", stack_dir=STACK_DIR, catalog=lambda _server: CATALOG), state) == {}
    # Without the option the engine would diff the program's inputs as they are: `credentials`
    # removed, which replaceOnChanges ["*"] makes a replacement of each token.
    for token in tokens:
        new, old = reveal(token.inputs), state[token.urn]
        assert sorted(k for k in set(new) | set(old) if new.get(k) != old.get(k)) == ["credentials"]
