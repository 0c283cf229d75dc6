"""The policy pack (policy/): each policy's validator, called directly, on passing and failing resources.

Resources are built the way the policy server hands them over: inputs wrapped in pulumi-policy's
unknown-checking proxy (so preview unknowns behave as in ``pulumi preview``), a URN naming the
stack, and the policy's config. The stack files the policies read for a site's opt-in are written
to a temporary project directory.
"""

from __future__ import annotations

import runpy
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError, unknown_checking_proxy

from components.azure import acr
from policy import edge_policies as ep

ROOT = Path(__file__).resolve().parent.parent

OPTS = PolicyResourceOptions(
    protect=False,
    ignore_changes=[],
    delete_before_replace=None,
    aliases=[],
    custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
    additional_secret_outputs=[],
)
TOKEN_PASSWORD = "pulumi-python:dynamic/edgeregistry:TokenPassword"


def violations(
    policy: ResourceValidationPolicy,
    resource_type: str,
    props: Mapping[str, Any],
    *,
    name: str = "site-resource",
    stack: str = "ship01",
    config: Mapping[str, Any] | None = None,
) -> list[str]:
    """Run one policy on one resource as the policy server would; return the violation messages."""
    urn = f"urn:pulumi:{stack}::edge-registry::{resource_type}::{name}"
    args = ResourceValidationArgs(
        resource_type, unknown_checking_proxy(dict(props)), urn, name, OPTS, None, dict(config or {})
    )
    found: list[str] = []

    def report(message: str, _urn: str | None = None) -> None:
        found.append(message)

    assert policy.validate(args, report) is None  # synchronous validators
    return found


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A project directory for the policies to read stack files from; returns a stack-file writer."""
    monkeypatch.setenv("EDGE_REGISTRY_PROJECT_DIR", str(tmp_path))
    (tmp_path / "Pulumi.yaml").write_text(
        yaml.safe_dump({"name": "edge-registry", "config": {
            "allowReadWrite": {"type": "boolean", "default": True},
            "httpEnabled": {"type": "boolean", "default": True},
        }})
    )

    def write(stack: str, config: Mapping[str, Any]) -> None:
        (tmp_path / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump({"config": dict(config)}))

    return write


def connected_registry(mode: str = "ReadOnly", tokens: int = 1) -> dict[str, Any]:
    return {
        "connectedRegistryName": "ship01",
        "registryName": "contosoedge",
        "resourceGroupName": "rg-edge",
        "mode": mode,
        # Token ids are outputs of the tokens: unknown during a first preview.
        "clientTokenIds": [UNKNOWN_STRING_VALUE] * tokens,
    }


def scope_map(name: str, actions: list[str]) -> dict[str, Any]:
    return {"scopeMapName": name, "registryName": "contosoedge", "resourceGroupName": "rg-edge", "actions": actions}


def helm_release(http: Any) -> dict[str, Any]:
    return {
        "name": "connected-registry",
        "namespace": "connected-registry",
        "chart": "oci://mcr.microsoft.com/acr/connected-registry/chart",
        "values": {"connectionString": UNKNOWN_STRING_VALUE, "httpEnabled": http},
    }


def token_password(**overrides: Any) -> dict[str, Any]:
    props: dict[str, Any] = {
        "subscriptionId": "00000000-0000-0000-0000-000000000000",
        "resourceGroup": "rg-edge",
        "registryName": "contosoedge",
        "tokenName": "ship01-client-token",
        "tokenId": UNKNOWN_STRING_VALUE,
        "expiryDays": 90,
        "rotateBeforeDays": 30,
    }
    props.update(overrides)
    return {k: v for k, v in props.items() if v is not None}


def remote_command(connection: dict[str, Any]) -> dict[str, Any]:
    return {"connection": connection, "create": "sh -s", "stdin": UNKNOWN_STRING_VALUE}


def k8s_secret(name: str, secret_type: str | None, data_keys: tuple[str, ...] = (".dockerconfigjson",)) -> dict[str, Any]:
    props: dict[str, Any] = {
        "metadata": {"name": name, "namespace": "fleet-apps"},
        "data": {key: UNKNOWN_STRING_VALUE for key in data_keys},
    }
    if secret_type is not None:
        props["type"] = secret_type
    return props


# --- (1) ReadWrite only where the site opted in -----------------------------------------------

def test_read_only_connected_registry_needs_no_opt_in(project) -> None:
    project("ship01", {})
    assert violations(ep.read_write_only_where_allowed, ep.CONNECTED_REGISTRY, connected_registry("ReadOnly")) == []


def test_read_write_without_opt_in_is_refused_naming_the_key(project) -> None:
    project("ship01", {"edge-registry:mode": "ReadWrite"})
    found = violations(ep.read_write_only_where_allowed, ep.CONNECTED_REGISTRY, connected_registry("ReadWrite"))
    assert len(found) == 1
    assert "edge-registry:allowReadWrite: true" in found[0] and "Pulumi.ship01.yaml" in found[0]


def test_read_write_with_the_sites_own_opt_in_passes(project) -> None:
    project("ship01", {"edge-registry:mode": "ReadWrite", "edge-registry:allowReadWrite": True})
    assert violations(ep.read_write_only_where_allowed, ep.CONNECTED_REGISTRY, connected_registry("ReadWrite")) == []


def test_read_write_opt_in_of_another_stack_does_not_count(project) -> None:
    project("ship02", {"edge-registry:allowReadWrite": True})
    project("ship01", {"edge-registry:allowReadWrite": False})
    assert violations(ep.read_write_only_where_allowed, ep.CONNECTED_REGISTRY, connected_registry("ReadWrite"))


def test_a_project_default_is_not_an_opt_in(project) -> None:
    # Pulumi.yaml (written by the fixture) defaults allowReadWrite to true; the stack file is silent.
    project("ship01", {"edge-registry:registryName": "contosoedge"})
    assert violations(ep.read_write_only_where_allowed, ep.CONNECTED_REGISTRY, connected_registry("ReadWrite"))


def test_legacy_registry_mode_counts_as_read_write(project) -> None:
    project("ship01", {})
    assert violations(ep.read_write_only_where_allowed, ep.CONNECTED_REGISTRY, connected_registry("Registry"))


def test_read_write_allowed_by_the_policy_allowlist(project) -> None:
    project("ship01", {})
    props = connected_registry("ReadWrite")
    assert violations(ep.read_write_only_where_allowed, ep.CONNECTED_REGISTRY, props,
                      config={"allowReadWriteStacks": ["ship*"]}) == []
    assert violations(ep.read_write_only_where_allowed, ep.CONNECTED_REGISTRY, props,
                      config={"allowReadWriteStacks": ["plant*", "acme/edge-registry/ship02"]})


def test_an_unknown_mode_is_left_to_the_engine_as_a_preview_diagnostic(project) -> None:
    # The policy server turns UnknownValueError into an advisory "can't run during preview".
    project("ship01", {})
    with pytest.raises(UnknownValueError):
        violations(ep.read_write_only_where_allowed, ep.CONNECTED_REGISTRY,
                   connected_registry(UNKNOWN_STRING_VALUE))


# --- (2) client scope maps are read-only ------------------------------------------------------

def test_client_scope_map_from_the_program_is_read_only() -> None:
    actions = acr.client_actions(["hello-world", "fleet/*"])
    assert violations(ep.client_scope_maps_read_only, ep.SCOPE_MAP, scope_map("ship01-client-scope-map", actions)) == []


def test_client_scope_map_with_write_or_gateway_actions_is_refused() -> None:
    actions = acr.client_actions(["hello-world"]) + [
        "repositories/hello-world/content/write",
        "gateway/ship01/config/read",
    ]
    found = violations(ep.client_scope_maps_read_only, ep.SCOPE_MAP, scope_map("ship01-client-scope-map", actions))
    assert len(found) == 1
    assert "content/write" in found[0] and "gateway/ship01/config/read" in found[0]
    assert "repositories/hello-world/content/read" not in found[0]


def test_a_client_scope_map_is_recognised_by_its_pulumi_name_too() -> None:
    actions = ["repositories/app/content/delete"]
    assert violations(ep.client_scope_maps_read_only, ep.SCOPE_MAP, scope_map("ship01-pull", actions),
                      name="dev-azure-client-scope-map")


def test_the_sync_scope_map_may_write() -> None:
    actions = acr.sync_actions("ship01", ["hello-world"], "ReadWrite")
    assert any(a.endswith("/content/write") for a in actions)
    assert violations(ep.client_scope_maps_read_only, ep.SCOPE_MAP, scope_map("ship01-sync-scope-map", actions)) == []


# --- (3) http only where the site opted in ----------------------------------------------------

def test_https_release_needs_no_opt_in(project) -> None:
    project("ship01", {})
    assert violations(ep.http_only_where_opted_in, ep.HELM_RELEASE, helm_release(False)) == []


def test_http_release_without_opt_in_is_refused(project) -> None:
    project("ship01", {"edge-registry:registryName": "contosoedge"})
    found = violations(ep.http_only_where_opted_in, ep.HELM_RELEASE, helm_release(True))
    assert len(found) == 1 and "edge-registry:httpEnabled: true" in found[0]
    # A string "true" is still http.
    assert violations(ep.http_only_where_opted_in, ep.HELM_RELEASE, helm_release("true"))


def test_http_release_with_the_sites_own_opt_in_passes(project) -> None:
    project("ship01", {"edge-registry:httpEnabled": True})
    assert violations(ep.http_only_where_opted_in, ep.HELM_RELEASE, helm_release(True)) == []
    project("ship01", {"httpEnabled": "true"})  # project keys may be written without the prefix
    assert violations(ep.http_only_where_opted_in, ep.HELM_RELEASE, helm_release(True)) == []
    project("ship01", {"edge-registry:httpEnabled": "false"})
    assert violations(ep.http_only_where_opted_in, ep.HELM_RELEASE, helm_release(True))


def test_http_allowed_by_the_policy_allowlist(project) -> None:
    project("ship01", {})
    assert violations(ep.http_only_where_opted_in, ep.HELM_RELEASE, helm_release(True),
                      config={"allowHttpStacks": ["ship01"]}) == []
    assert violations(ep.http_only_where_opted_in, ep.HELM_RELEASE, helm_release(True),
                      config={"allowHttpStacks": ["ship010"]})


# --- (4) token passwords expire within the maximum ---------------------------------------------

def test_token_password_within_the_default_maximum_passes() -> None:
    assert violations(ep.token_passwords_expire, TOKEN_PASSWORD, token_password(expiryDays=90)) == []


def test_token_password_beyond_the_maximum_is_refused() -> None:
    found = violations(ep.token_passwords_expire, TOKEN_PASSWORD, token_password(expiryDays=365))
    assert len(found) == 1 and "365" in found[0] and "90" in found[0]


def test_token_password_maximum_comes_from_policy_config() -> None:
    config = {"maxPasswordExpiryDays": 30}
    assert violations(ep.token_passwords_expire, TOKEN_PASSWORD, token_password(expiryDays=90), config=config)
    assert violations(ep.token_passwords_expire, TOKEN_PASSWORD, token_password(expiryDays=30), config=config) == []


def test_token_password_without_or_with_a_non_positive_expiry_is_refused() -> None:
    assert violations(ep.token_passwords_expire, TOKEN_PASSWORD, token_password(expiryDays=None))
    assert violations(ep.token_passwords_expire, TOKEN_PASSWORD, token_password(expiryDays=0))


def test_token_password_is_found_under_the_generic_dynamic_type_too() -> None:
    assert violations(ep.token_passwords_expire, "pulumi-python:dynamic:Resource", token_password(expiryDays=400))


def test_other_dynamic_resources_are_not_token_passwords() -> None:
    deactivation = {"subscriptionId": "x", "resourceGroup": "rg", "registryName": "r",
                    "connectedRegistryName": "ship01", "installId": UNKNOWN_STRING_VALUE}
    assert violations(ep.token_passwords_expire,
                      "pulumi-python:dynamic/edgeregistry:ConnectedRegistryDeactivation", deactivation) == []


# --- (5) remote commands pin host keys (mandatory) ----------------------------------------------

def test_remote_command_with_a_pinned_host_key_passes() -> None:
    connection = {"host": "192.0.2.10", "user": "ubuntu", "privateKey": UNKNOWN_STRING_VALUE,
                  "hostKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDummy"}
    assert violations(ep.remote_command_pins_host_key, ep.REMOTE_COMMAND, remote_command(connection)) == []


def test_remote_command_without_a_host_key_is_a_mandatory_violation() -> None:
    # Issue 20: an unpinned node gets the client token's password from whoever answers.
    assert ep.remote_command_pins_host_key.enforcement_level in (None, EnforcementLevel.MANDATORY)
    for connection in ({"host": "192.0.2.10", "user": "ubuntu"}, {"host": "192.0.2.10", "hostKey": "  "}):
        found = violations(ep.remote_command_pins_host_key, ep.REMOTE_COMMAND, remote_command(connection))
        assert len(found) == 1 and "192.0.2.10" in found[0]


# --- (6) pull secrets are kubernetes.io/dockerconfigjson ---------------------------------------

def test_dockerconfigjson_pull_secret_passes(project) -> None:
    project("ship01", {})
    props = k8s_secret("edge-registry-pull", "kubernetes.io/dockerconfigjson")
    assert violations(ep.pull_secrets_dockerconfigjson, ep.K8S_SECRET, props) == []


def test_registry_credentials_in_an_opaque_secret_are_refused(project) -> None:
    project("ship01", {})
    found = violations(ep.pull_secrets_dockerconfigjson, ep.K8S_SECRET, k8s_secret("app-creds", "Opaque"))
    assert len(found) == 1 and "kubernetes.io/dockerconfigjson" in found[0]
    assert violations(ep.pull_secrets_dockerconfigjson, ep.K8S_SECRET, k8s_secret("app-creds", None))


def test_the_pull_secret_name_marks_a_pull_secret(project) -> None:
    project("ship01", {"edge-registry:pullSecretName": "site-pull"})
    assert violations(ep.pull_secrets_dockerconfigjson, ep.K8S_SECRET, k8s_secret("site-pull", "Opaque", ("auth",)))
    assert violations(ep.pull_secrets_dockerconfigjson, ep.K8S_SECRET,
                      k8s_secret("edge-registry-pull", "kubernetes.io/dockerconfigjson", ("config.json",)))
    # Any other Opaque secret is none of this policy's business.
    assert violations(ep.pull_secrets_dockerconfigjson, ep.K8S_SECRET, k8s_secret("db", "Opaque", ("password",))) == []


# --- (7) ACR limits one stack can see -----------------------------------------------------------

def test_scope_map_with_500_repositories_passes_and_501_is_refused() -> None:
    repositories = [f"fleet/app-{i:03d}" for i in range(501)]
    at_limit = acr.sync_actions("ship01", repositories[:500], "ReadWrite")  # 5 actions per repository
    assert len(at_limit) > 500
    assert violations(ep.scope_map_repository_limit, ep.SCOPE_MAP, scope_map("ship01-sync-scope-map", at_limit)) == []
    found = violations(ep.scope_map_repository_limit, ep.SCOPE_MAP,
                       scope_map("ship01-sync-scope-map", acr.sync_actions("ship01", repositories, "ReadOnly")))
    assert len(found) == 1 and "501" in found[0] and "500" in found[0]


def test_connected_registry_with_50_client_tokens_passes_and_51_is_refused() -> None:
    assert violations(ep.connected_registry_client_token_limit, ep.CONNECTED_REGISTRY,
                      connected_registry(tokens=50)) == []
    found = violations(ep.connected_registry_client_token_limit, ep.CONNECTED_REGISTRY, connected_registry(tokens=51))
    assert len(found) == 1 and "51" in found[0] and "50" in found[0]


def test_repository_count_reads_nested_repository_names() -> None:
    assert ep.repositories_in(["repositories/a/b/c/content/read", "repositories/a/b/c/metadata/read",
                               "gateway/x/config/read"]) == {"a/b/c"}


# --- the pack ------------------------------------------------------------------------------------

def test_policy_names_are_unique_and_every_policy_is_mandatory() -> None:
    names = [p.name for p in ep.POLICIES]
    assert len(names) == len(set(names)) == 8
    # None: the pack's level, which __main__ sets to mandatory.
    assert all(p.enforcement_level in (None, EnforcementLevel.MANDATORY) for p in ep.POLICIES)


def test_main_builds_one_mandatory_pack_with_every_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    import pulumi_policy

    built: dict[str, Any] = {}

    def fake_pack(**kwargs: Any) -> None:  # the real PolicyPack starts a gRPC server and blocks
        built.update(kwargs)

    monkeypatch.setattr(pulumi_policy, "PolicyPack", fake_pack)
    monkeypatch.syspath_prepend(str(ROOT / "policy"))
    monkeypatch.delitem(sys.modules, "edge_policies", raising=False)
    runpy.run_path(str(ROOT / "policy"), run_name="__main__")
    assert built["name"] == "edge-registry"
    assert built["enforcement_level"] is EnforcementLevel.MANDATORY
    assert [p.name for p in built["policies"]] == [p.name for p in ep.POLICIES]


def test_stack_name_comes_from_the_urn() -> None:
    assert ep.stack_of("urn:pulumi:ship01::edge-registry::kubernetes:core/v1:Secret::x") == "ship01"
    assert ep.stack_of("not-a-urn") == ""


def test_the_dev_site_as_rendered_passes_every_mandatory_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real program's resources (offline render of the fixture tests/stacks/Pulumi.dev.yaml) meet the pack, and the pack sees them."""
    pytest.importorskip("components.nodes.mirror", reason="node mirror component not merged yet")
    from components.preview.render import render_stack
    from components.preview.values import reveal

    from tests.fixture_stacks import STACK_DIR

    monkeypatch.setenv("EDGE_REGISTRY_PROJECT_DIR", str(STACK_DIR))
    result = render_stack(ROOT, "dev", stack_dir=STACK_DIR)
    checked: dict[str, int] = {}
    for resource in result.resources:
        inputs = reveal(resource.inputs)
        for policy in ep.POLICIES:
            found = violations(policy, resource.type, inputs, name=resource.name, stack="dev")
            if policy.enforcement_level is not EnforcementLevel.ADVISORY:
                assert found == [], (policy.name, resource.name, found)
        checked[resource.type] = checked.get(resource.type, 0) + 1
    for resource_type in (ep.CONNECTED_REGISTRY, ep.SCOPE_MAP, ep.HELM_RELEASE, ep.K8S_SECRET, ep.REMOTE_COMMAND):
        assert checked.get(resource_type), f"the dev render has no {resource_type}"
    passwords = [r for r in result.resources if r.type.startswith(ep.DYNAMIC_PREFIX) and "tokenId" in r.inputs]
    assert passwords, "no token password in the dev render"
    # The same rendered password, with a lifetime past the maximum, is caught.
    too_long = dict(reveal(passwords[0].inputs), expiryDays=365)
    assert violations(ep.token_passwords_expire, passwords[0].type, too_long, stack="dev")
    # A rendered node command without its host key is reported.
    command = reveal(result.by_type(ep.REMOTE_COMMAND)[0].inputs)
    unpinned = dict(command, connection={k: v for k, v in command["connection"].items() if k != "hostKey"})
    assert violations(ep.remote_command_pins_host_key, ep.REMOTE_COMMAND, unpinned, stack="dev")
