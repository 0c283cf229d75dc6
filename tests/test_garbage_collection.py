"""Storage that cleans itself: the connected registry's garbage collection, from the stack's config
(``garbageCollectionEnabled``, ``garbageCollectionSchedule``) to the ConnectedRegistry ARM gets,
the offline render, the ARM emulator's answer and the fleet status."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.config.loading import load_site_config
from components.preview.fakes import CloudFakes
from components.preview.output import format_tree
from components.preview.render import render_stack
from components.preview.result import RenderResult
from tests.arm_server import FAKE_BEARER, ArmServer
from tests.fixture_stacks import STACK_DIR
from tests.test_config import problems_for, valid, with_
from tests.test_fleet import arm_env, fleet_arm_state, make_project, run  # noqa: F401  (arm_env: a fixture)

ROOT = Path(__file__).resolve().parent.parent
CONNECTED_REGISTRY = "azure-native:containerregistry:ConnectedRegistry"
DEFAULT = {"enabled": True, "schedule": "0 5 * * *"}


@pytest.fixture(scope="module")
def dev() -> RenderResult:
    return render_stack(stack="dev", stack_dir=STACK_DIR)


def gc_inputs(result: RenderResult) -> Any:
    return result.one(CONNECTED_REGISTRY).plain_inputs()["garbageCollection"]


# --- config ----------------------------------------------------------------------------------------

def test_garbage_collection_is_on_by_default_at_five_each_morning() -> None:
    site = load_site_config(valid())
    assert (site.garbage_collection_enabled, site.garbage_collection_schedule) == (True, "0 5 * * *")
    off = load_site_config(with_(garbageCollectionEnabled="false", garbageCollectionSchedule="15 2 * * 0"))
    assert (off.garbage_collection_enabled, off.garbage_collection_schedule) == (False, "15 2 * * 0")


@pytest.mark.parametrize(("value", "says"), [
    ("61 * * * *", "the minute field '61' is out of range"),
    ("0 5 * * * *", "expected 5 cron fields"),
    ("nightly", "expected 5 cron fields"),
    ("0 5 * * *\n", "nothing around them"),
    ("0 25 * * *", "the hour field '25'"),
])
def test_a_bad_schedule_is_one_problem_naming_the_key(value: str, says: str) -> None:
    (problem,) = problems_for(with_(garbageCollectionSchedule=value))
    assert problem.startswith("edge-registry:garbageCollectionSchedule:"), problem
    assert says in problem, problem


def test_enabled_is_a_boolean_and_a_wrong_one_names_the_key() -> None:
    (problem,) = problems_for(with_(garbageCollectionEnabled="sometimes"))
    assert problem.startswith("edge-registry:garbageCollectionEnabled:"), problem


def test_the_project_file_declares_both_keys_with_their_defaults() -> None:
    declared = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    assert declared["garbageCollectionEnabled"]["default"] is True
    assert declared["garbageCollectionEnabled"]["type"] == "boolean"
    assert declared["garbageCollectionSchedule"] == {
        "type": "string", "default": "0 5 * * *",
        "description": declared["garbageCollectionSchedule"]["description"]}
    table = (ROOT / "docs" / "configuration.md").read_text()
    assert "| `garbageCollectionSchedule` | string | `0 5 * * *` |" in table


# --- what the program declares and the render shows ----------------------------------------------

def test_the_connected_registry_gets_the_settings_and_the_render_shows_them(dev: RenderResult) -> None:
    assert gc_inputs(dev) == DEFAULT
    text = format_tree(dev)
    block = text[text.index("dev-azure-connected-registry"):]
    assert 'garbageCollection:\n          enabled: true\n          schedule: "0 5 * * *"' in block
    # Switched off, it is still sent: the stack, not ARM's undocumented default, decides.
    off = render_stack(stack="dev", stack_dir=STACK_DIR, config_overrides={"garbageCollectionEnabled": False})
    assert gc_inputs(off) == {"enabled": False, "schedule": "0 5 * * *"}


def test_a_converged_site_gets_garbage_collection_as_one_update_then_no_change(dev: RenderResult) -> None:
    """A site deployed before the program set garbage collection holds a ConnectedRegistry whose
    stored inputs have no ``garbageCollection``: the first preview differs from it in that key
    alone, an in-place update (not a replacement: only ``mode`` and the sync token replace), and
    nothing else changes; the next run declares the same inputs again, so no change."""
    before = {k: v for k, v in dev.one(CONNECTED_REGISTRY).plain_inputs().items() if k != "garbageCollection"}
    first = render_stack(stack="dev", stack_dir=STACK_DIR, preview=True,
                         fakes=CloudFakes(connected_registry_update=True))
    now = first.one(CONNECTED_REGISTRY).plain_inputs()
    assert {k for k in now.keys() | before.keys() if now.get(k) != before.get(k)} == {"garbageCollection"}
    assert "garbageCollection" not in str(first.one(CONNECTED_REGISTRY).options.get("replaceOnChanges"))
    converged = render_stack(stack="dev", stack_dir=STACK_DIR, preview=True)
    stored = {r.urn: r.plain_inputs() for r in converged.resources}
    stored[converged.one(CONNECTED_REGISTRY).urn] = before  # what the older program left in the state
    assert {r.name for r in first.resources if r.plain_inputs() != stored[r.urn]} == {"dev-azure-connected-registry"}
    again = render_stack(stack="dev", stack_dir=STACK_DIR, preview=True)
    assert [(r.urn, r.plain_inputs()) for r in again.resources] == [(r.urn, r.plain_inputs()) for r in converged.resources]


def test_a_schedule_change_previews_only_the_connected_registry(dev: RenderResult) -> None:
    changed = render_stack(stack="dev", stack_dir=STACK_DIR, preview=True, fakes=CloudFakes(connected_registry_update=True),
                           config_overrides={"garbageCollectionSchedule": "30 1 * * 6"})
    converged = render_stack(stack="dev", stack_dir=STACK_DIR, preview=True)
    assert gc_inputs(changed) == {"enabled": True, "schedule": "30 1 * * 6"}
    assert {r.name for r in changed.resources if r.plain_inputs() != converged.by_urn(r.urn).plain_inputs()} == {
        "dev-azure-connected-registry"}
    # The gateway endpoint comes from the program-time read: the release's connection string is untouched.
    assert changed.outputs["gatewayEndpoint"] == dev.outputs["gatewayEndpoint"]


# --- ARM and the fleet status ----------------------------------------------------------------------

def test_the_arm_emulator_keeps_what_a_put_sends(tmp_path: Path) -> None:
    """The spec (GarbageCollectionProperties: enabled, schedule) as the emulator implements it: a
    PUT's garbageCollection is what a GET answers."""
    import requests

    with ArmServer(tmp_path) as arm:
        arm.state.add_registry("contosoedge")
        base = (f"{arm.base_url}/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/"
                "Microsoft.ContainerRegistry/registries/contosoedge/connectedRegistries/ship01")
        body = {"properties": {"mode": "ReadOnly", "garbageCollection": {"enabled": True, "schedule": "0 5 * * *"},
                               "parent": {"syncProperties": {"tokenId": "/x/tokens/ship01-sync-token",
                                                             "messageTtl": "P2D", "schedule": "30 * * * *",
                                                             "syncWindow": "PT1H"}}}}
        headers = {"Authorization": f"Bearer {FAKE_BEARER}"}
        put = requests.put(f"{base}?api-version=2024-11-01-preview", json=body, headers=headers, verify=arm.ca_pem, timeout=30)
        assert put.status_code in (200, 201), put.text
        got = requests.get(f"{base}?api-version=2024-11-01-preview", headers=headers, verify=arm.ca_pem, timeout=30)
        assert got.json()["properties"]["garbageCollection"] == DEFAULT


def with_gc(arm: ArmServer, name: str, gc: dict[str, Any] | None) -> None:
    for document in arm.state.listed_connected_registries["contosoedge"]:
        if document["name"] == name:
            if gc is None:
                document["properties"].pop("garbageCollection", None)
            else:
                document["properties"]["garbageCollection"] = gc


def test_fleet_status_shows_garbage_collection_as_arm_reports_it(
    tmp_path: Path, arm: ArmServer, arm_env: dict[str, str]  # noqa: F811
) -> None:
    fleet_arm_state(arm, datetime.now(UTC))
    with_gc(arm, "ship01", DEFAULT)
    with_gc(arm, "ship05", {"enabled": False, "schedule": "0 5 * * *"})
    project = make_project(tmp_path, arm, ["ship01", "ship05", "ship06"])
    _code, out, _err = run("--project-dir", str(project), "--json", "--no-progress")
    sites = {site["stack"]: site for site in json.loads(out)["sites"]}
    assert sites["ship01"]["garbageCollection"] == DEFAULT
    assert sites["ship05"]["garbageCollection"] == {"enabled": False, "schedule": "0 5 * * *"}
    assert sites["ship06"]["garbageCollection"] is None  # ARM says nothing: not claimed either way
    _code, table, _err = run("--project-dir", str(project), "--no-progress")
    rows = {stack: next(line for line in table.splitlines() if stack in line and "contosoedge" in line)
            for stack in ("ship01", "ship05")}
    assert "on, 0 5 * * *" in rows["ship01"] and " off " in rows["ship05"]


def test_an_enabled_flag_that_is_not_a_boolean_makes_the_registry_unreadable_not_a_guess(
    tmp_path: Path, arm: ArmServer, arm_env: dict[str, str]  # noqa: F811
) -> None:
    fleet_arm_state(arm, datetime.now(UTC))
    with_gc(arm, "ship01", {"enabled": "sometimes", "schedule": "0 5 * * *"})
    code, out, _err = run("--project-dir", str(make_project(tmp_path, arm, ["ship01"])), "--json", "--no-progress")
    document = json.loads(out)
    assert code == 1 and document["sites"] == []
    (unreadable,) = document["unreadableRegistries"]
    assert unreadable["error"] == ("unexpected answer from ARM: connected registry ship01: garbageCollection.enabled "
                                   "is 'sometimes', not true or false")
