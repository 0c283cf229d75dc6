"""Cloud-only runs (`cloudOnly: true`): Azure changes for a site whose cluster and nodes cannot be
reached. Azure resources change, every edge resource stays declared with its stored inputs, and
the next normal run completes the edge side.

The engine's part is emulated as Pulumi does it: for each resource, the inputs named in
``ignoreChanges`` are taken from the stored state (or dropped when the state has none) before the
diff; a resource whose resulting inputs equal the stored ones is left alone (no provider call
that changes anything).
"""

from __future__ import annotations

from typing import Any

import pytest

from components.config.fields import ConfigError
from components.preview.fakes import CloudFakes
from components.preview.render import render_stack
from components.preview.result import RenderedResource, RenderResult
from components.preview.values import reveal
from tests.fixture_stacks import STACK_DIR

EDGE_PREFIXES = ("kubernetes:", "command:")
AZURE_PREFIXES = ("azure-native:", "pulumi-python:dynamic")
RETIREMENT = "pulumi-python:dynamic/edgeregistry:SlotRetirement"
PRE_INSTALL = "pulumi-python:dynamic/edgeregistry:PreInstallDeactivation"
TOKEN_PASSWORD = "pulumi-python:dynamic/edgeregistry:TokenPassword"
RELEASE = "kubernetes:helm.sh/v3:Release"
SECRET = "kubernetes:core/v1:Secret"
PROVIDER = "pulumi:providers:kubernetes"

#: The Azure change a ship at sea needs: one more repository to sync and pull, and the Azure side
#: issuing new credentials (a new client token password), which the edge consumes.
AZURE_CHANGE = {"repositories": ["hello-world", "fleet/*", "tools/scanner"],
                "clientRepositories": ["hello-world", "fleet/app-a", "tools/scanner"]}
NEW_CREDENTIALS = CloudFakes(password_epoch="issued-while-at-sea")


def is_edge(resource: RenderedResource) -> bool:
    return resource.custom and resource.type.startswith(EDGE_PREFIXES)


def stored(result: RenderResult) -> dict[str, dict[str, Any]]:
    """What the state holds after a run: each managed (not read) custom resource's inputs."""
    return {r.urn: reveal(r.inputs) for r in result.resources if r.custom and "read" not in r.options}


def effective_inputs(resource: RenderedResource, state: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The inputs the engine diffs: ignored ones come from the stored state (dropped if absent)."""
    inputs = reveal(resource.inputs)
    old = state.get(resource.urn)
    if old is None:
        return inputs
    for key in resource.options.get("ignoreChanges", []):
        if key in old:
            inputs[key] = old[key]
        else:
            inputs.pop(key, None)
    return inputs


def changes(result: RenderResult, state: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """urn -> the input keys that differ from the state (new resources list every key)."""
    changed: dict[str, list[str]] = {}
    for resource in result.resources:
        if not resource.custom or "read" in resource.options or resource.type.startswith("pulumi:providers:"):
            continue
        new, old = effective_inputs(resource, state), state.get(resource.urn, {})
        keys = sorted(k for k in set(new) | set(old) if new.get(k) != old.get(k))
        if keys:
            changed[resource.urn] = keys
    return changed


def type_of(result: RenderResult, urn: str) -> str:
    return result.by_urn(urn).type


@pytest.fixture(scope="module")
def runs() -> tuple[RenderResult, RenderResult, RenderResult]:
    """Converged site; a cloud-only run with the Azure change; the next normal run."""
    converged = render_stack(stack="dev", stack_dir=STACK_DIR)
    at_sea = render_stack(stack="dev", stack_dir=STACK_DIR, config_overrides={**AZURE_CHANGE, "cloudOnly": True}, fakes=NEW_CREDENTIALS)
    back = render_stack(stack="dev", stack_dir=STACK_DIR, config_overrides=AZURE_CHANGE, fakes=NEW_CREDENTIALS)
    return converged, at_sea, back


def test_a_converged_site_has_no_change(runs: tuple[RenderResult, ...]) -> None:
    converged = runs[0]
    assert changes(render_stack(stack="dev", stack_dir=STACK_DIR), stored(converged)) == {}


def test_cloud_only_changes_only_azure(runs: tuple[RenderResult, ...]) -> None:
    converged, at_sea, _ = runs
    changed = changes(at_sea, stored(converged))
    assert changed, "the Azure change must show"
    assert all(type_of(at_sea, urn).startswith(AZURE_PREFIXES) for urn in changed), changed
    scope_maps = [urn for urn in changed if type_of(at_sea, urn) == "azure-native:containerregistry:ScopeMap"]
    assert len(scope_maps) == 2  # sync and client scope maps get tools/scanner


def test_without_cloud_only_the_same_change_would_touch_the_edge(runs: tuple[RenderResult, ...]) -> None:
    # What makes a cloud-only run necessary: the new credentials and endpoint flow into the edge.
    converged, _, back = runs
    changed = changes(back, stored(converged))
    edge = {type_of(back, urn) for urn in changed if type_of(back, urn).startswith(EDGE_PREFIXES)}
    assert {RELEASE, SECRET} <= edge


def test_every_edge_resource_stays_declared_and_held(runs: tuple[RenderResult, ...]) -> None:
    converged, at_sea, _ = runs
    before = {r.urn for r in converged.resources if is_edge(r) and "read" not in r.options}
    after = {r.urn: r for r in at_sea.resources if is_edge(r)}
    assert before <= set(after), f"forgotten: {before - set(after)}"
    for urn in before:
        resource = after[urn]
        listed = resource.options.get("ignoreChanges", [])
        ignored = set(listed)
        assert set(resource.inputs) <= ignored, f"{resource.name}: inputs not held: {set(resource.inputs) - ignored}"
        assert len(listed) == len(ignored), f"{resource.name}: a name listed twice: {listed}"


def test_cloud_only_reads_nothing_from_the_cluster(runs: tuple[RenderResult, ...]) -> None:
    converged, at_sea, _ = runs
    assert [r for r in converged.resources if "read" in r.options], "the dev site reads ServiceAccounts normally"
    assert [r.name for r in at_sea.resources if "read" in r.options] == []


def test_cloud_only_leaves_the_cluster_provider_as_it_is(runs: tuple[RenderResult, ...]) -> None:
    converged, at_sea, _ = runs
    assert reveal(at_sea.one(PROVIDER).inputs) == reveal(converged.one(PROVIDER).inputs)


def test_cloud_only_starts_no_password_rotation(runs: tuple[RenderResult, ...]) -> None:
    converged, at_sea, back = runs
    for result, expected in ((converged, 30.0), (at_sea, 0.0), (back, 30.0)):
        for password in result.by_type(TOKEN_PASSWORD):
            assert reveal(password.inputs)["rotateBeforeDays"] == expected


def test_cloud_only_keeps_outputs_the_edge_reports(runs: tuple[RenderResult, ...]) -> None:
    converged, at_sea, _ = runs
    for key in ("registryEndpoint", "releaseName", "releaseNamespace", "pullSecretNames"):
        assert at_sea.outputs[key] == converged.outputs[key], key


def test_next_normal_run_completes_the_edge_side(runs: tuple[RenderResult, ...]) -> None:
    converged, at_sea, back = runs
    # State after the cloud-only run: the held edge keeps its old inputs, Azure has the new ones.
    state = stored(converged)
    state.update({urn: effective_inputs(at_sea.by_urn(urn), state) for urn in stored(at_sea)})
    changed = changes(back, state)
    assert changed
    # Rotation is allowed again and the retirements are no longer held: new inputs only, which
    # their diff reports as no change (no update, no new password: test_rotation_site.py).
    passwords = {urn: keys for urn, keys in changed.items() if type_of(back, urn) == TOKEN_PASSWORD}
    assert set(map(tuple, passwords.values())) == {("rotateBeforeDays",)}
    retirements = {urn: keys for urn, keys in changed.items() if type_of(back, urn) == RETIREMENT}
    assert set(map(tuple, retirements.values())) == {("held",)}
    # The release is read again (not in a cloud-only run): a fact its diff acts on only when the
    # release is missing while the connected registry is activated (test_rotation_site.py).
    pre_install = {urn: keys for urn, keys in changed.items() if type_of(back, urn) == PRE_INSTALL}
    assert list(pre_install.values()) == [["releaseInstalled"]]
    rest = {urn: keys for urn, keys in changed.items() if urn not in passwords | retirements.keys() | pre_install.keys()}
    assert all(type_of(back, urn).startswith(EDGE_PREFIXES) for urn in rest), rest
    release = next(urn for urn in changed if type_of(back, urn) == RELEASE)
    assert "values" in changed[release]  # the new connection string reaches the chart
    secrets = [urn for urn in changed if type_of(back, urn) == SECRET]
    assert len(secrets) == 2 and all(changed[urn] == ["data"] for urn in secrets)  # new client password
    assert not any(r.options.get("ignoreChanges") for r in back.resources if is_edge(r) and "gone" not in r.name)
    # And after that run the site is converged again.
    state.update({urn: effective_inputs(back.by_urn(urn), state) for urn in stored(back)})
    assert changes(render_stack(stack="dev", stack_dir=STACK_DIR, config_overrides=AZURE_CHANGE, fakes=NEW_CREDENTIALS), state) == {}


def test_cloud_only_needs_a_pinned_endpoint() -> None:
    with pytest.raises(ConfigError) as caught:
        render_stack(stack="dev", stack_dir=STACK_DIR, config_overrides={"cloudOnly": True, "serviceClusterIP": None})
    assert any(p.startswith("edge-registry:cloudOnly: needs serviceClusterIP") for p in caught.value.problems)


def test_cloud_only_is_announced(runs: tuple[RenderResult, ...]) -> None:
    assert any("cloudOnly" in w for w in runs[1].warnings)
    assert not any("cloudOnly" in w for w in runs[0].warnings)
