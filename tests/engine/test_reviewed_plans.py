"""Under the real engine (tests/engine/site_harness.py's two-node site): the connected registry's
garbage collection as the README's table says, and plans applied as reviewed.

In order, on one site:

* a site whose state predates garbage collection (its ConnectedRegistry stored without
  ``garbageCollection``, and ARM without it) previews exactly one update of the ConnectedRegistry,
  ``up --plan`` applies it, ARM then holds ``{enabled: true, schedule: "0 5 * * *"}``, and the
  next preview is empty;
* a ``garbageCollectionSchedule`` change is the same one update, then nothing;
* a plan saved by ``preview --save-plan`` is refused by ``up --plan`` once the stack file changed
  after it (the engine's own refusal), and scripts/plan_check.py refuses it too, naming the stack
  file; with the stack file back as reviewed but the state moved on by another ``up``, the check
  names the state; nothing of the refused plan reached ARM;
* as the workflows run them, ``preview --refresh --save-plan`` then ``up --refresh --plan`` applies.

Skipped like test_site_tier.py: without the built engine, without the node servers, under the
fast suite's xdist (``scripts/engine test`` runs it whole on one worker, beside the site tier).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.engine.site_harness import site_tier_marks, CONNECTED_REGISTRY, ROOT, STACK, EngineSite, steps, urn


pytestmark = site_tier_marks()

AZURE = ("edge-registry:index:Site", "edge-registry:index:AzureConnectedRegistry")
CR_URN = urn("azure-native:containerregistry:ConnectedRegistry", "dev-azure-connected-registry", AZURE)
DEFAULT = {"enabled": True, "schedule": "0 5 * * *"}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineSite]:
    engine_site = EngineSite(tmp_path_factory.mktemp("plans")).start()
    try:
        first = engine_site.run("up", "--yes")
        assert first.returncode == 0, first.output[-4000:]
        yield engine_site
    finally:
        engine_site.stop()


def arm_gc(site: EngineSite) -> object:
    return site.arm.state.connected_registry_properties[CONNECTED_REGISTRY].get("garbageCollection")


def preview_and_apply(site: EngineSite, label: str) -> set[tuple[str, str]]:
    plan = site.root / "plans" / f"{label}.json"
    preview = site.run("preview", "--json", "--save-plan", str(plan))
    assert preview.returncode == 0, preview.output[-4000:]
    planned = steps(preview.json())
    applied = site.run("up", "--yes", "--plan", str(plan))
    assert applied.returncode == 0, applied.output[-4000:]
    return planned


def next_preview(site: EngineSite) -> set[tuple[str, str]]:
    then = site.run("preview", "--json")
    assert then.returncode == 0, then.output[-4000:]
    return steps(then.json())


def test_a_site_deployed_before_garbage_collection_gets_it_as_one_update_then_no_change(site: EngineSite) -> None:
    assert arm_gc(site) == DEFAULT  # a fresh site gets it from its first up
    # The state and ARM as a program without garbage collection left them.
    state = site.export()
    (connected,) = [r for r in state["deployment"]["resources"] if r["urn"] == CR_URN]
    for part in ("inputs", "outputs"):
        connected[part].pop("garbageCollection", None)
    site.import_state(state)
    site.arm.state.connected_registry_properties[CONNECTED_REGISTRY].pop("garbageCollection")

    assert preview_and_apply(site, "gc-added") == {("update", CR_URN)}
    assert arm_gc(site) == DEFAULT
    assert next_preview(site) == set()


def test_a_garbage_collection_schedule_change_updates_only_the_connected_registry(site: EngineSite) -> None:
    site.set(garbageCollectionSchedule="30 1 * * 6")
    assert preview_and_apply(site, "gc-schedule") == {("update", CR_URN)}
    assert arm_gc(site) == {"enabled": True, "schedule": "30 1 * * 6"}
    assert next_preview(site) == set()


def plan_check(site: EngineSite, checkout: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "plan_check.py"), *args], cwd=checkout,
                          env=site.env, capture_output=True, text=True, timeout=300)


def test_a_plan_is_applied_only_as_reviewed(site: EngineSite, tmp_path: Path) -> None:
    # The checkout a workflow would have: the project file and the stack file, in git.
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    shutil.copy(site.project / "Pulumi.yaml", checkout)
    shutil.copy(site.stack_file, checkout)
    for args in (("init", "-q"), ("config", "user.email", "ci@example.invalid"), ("config", "user.name", "ci"),
                 ("add", "-A"), ("commit", "-qm", "reviewed")):
        subprocess.run(["git", *args], cwd=checkout, check=True, capture_output=True)

    site.set(garbageCollectionEnabled=False)
    shutil.copy(site.stack_file, checkout)
    plan = review(site, checkout, "reviewed")

    # The stack file changes after review: the engine refuses the plan, and so does the check.
    reviewed_stack = site.stack_file.read_text()
    site.set(garbageCollectionSchedule="45 3 * * *")
    shutil.copy(site.stack_file, checkout)
    refused = site.run("up", "--yes", "--plan", str(plan))
    assert refused.returncode != 0, refused.output[-4000:]
    assert "plan" in refused.output.lower(), refused.output[-4000:]
    assert arm_gc(site) == {"enabled": True, "schedule": "30 1 * * 6"}  # nothing of it applied
    checked = plan_check(site, checkout, "check", STACK, "--dir", "reviewed-plan")
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert f"the stack file Pulumi.{STACK}.yaml changed after review" in checked.stdout

    # Reviewed again as it was: as reviewed, until another up moves the state on.
    site.set(garbageCollectionSchedule="30 1 * * 6")
    assert site.stack_file.read_text() == reviewed_stack
    shutil.copy(site.stack_file, checkout)
    review(site, checkout, "again")
    passed = plan_check(site, checkout, "check", STACK, "--dir", "reviewed-plan")
    assert passed.returncode == 0, passed.stdout
    other = site.run("up", "--yes")
    assert other.returncode == 0, other.output[-4000:]
    moved = plan_check(site, checkout, "check", STACK, "--dir", "reviewed-plan")
    assert moved.returncode == 1, moved.stdout
    errors = [line for line in moved.stdout.splitlines() if line.startswith("::error")]
    assert len(errors) == 1 and "the stack's state changed after review" in errors[0], moved.stdout


def review(site: EngineSite, checkout: Path, label: str) -> Path:
    """``preview --save-plan`` and the preview workflow's record step."""
    plan = site.root / "plans" / f"{label}.json"
    preview = site.run("preview", "--json", "--save-plan", str(plan))
    assert preview.returncode == 0, preview.output[-4000:]
    assert steps(preview.json()) == {("update", CR_URN)}
    shutil.rmtree(checkout / "reviewed-plan", ignore_errors=True)
    recorded = plan_check(site, checkout, "record", STACK, "--plan", str(plan), "--reviewed-commit", "a" * 40,
                          "--previewed-commit", "b" * 40, "--out", "reviewed-plan")
    assert recorded.returncode == 0, recorded.stdout + recorded.stderr
    manifest = json.loads((checkout / "reviewed-plan" / "manifest.json").read_text())
    assert manifest["state"]["lastUpdate"]["kind"] == "update" and manifest["state"]["lastUpdate"]["endTime"]
    return plan


def test_the_deploy_applies_a_refreshed_preview_plan_with_refresh(site: EngineSite) -> None:
    """As the workflows run them: preview.yml's ``preview --refresh --save-plan``, then deploy.yml's
    ``up --refresh --plan`` (pulumi/actions with ``refresh: true`` and ``plan``)."""
    site.set(garbageCollectionEnabled=True)
    plan = site.root / "plans" / "refreshed.json"
    preview = site.run("preview", "--refresh", "--json", "--save-plan", str(plan))
    assert preview.returncode == 0, preview.output[-4000:]
    # A refresh that finds nothing shows as a `refresh` step of each resource (one that finds a
    # change is rewritten to `update` or `delete`: backend/display/json.go); the drift record
    # (components/fleet/drift.py) counts them as no change too.
    assert {s for s in steps(preview.json()) if s[0] != "refresh"} == {("update", CR_URN)}
    from components.fleet.drift import DriftResult, record_from_preview

    judged = record_from_preview("dev", 0, preview.stdout, datetime.now(UTC))
    assert judged.result is DriftResult.DRIFT and judged.changes == {"update": 1}
    applied = site.run("up", "--yes", "--refresh", "--plan", str(plan))
    assert applied.returncode == 0, applied.output[-4000:]
    assert arm_gc(site) == {"enabled": True, "schedule": "30 1 * * 6"}
    assert next_preview(site) == set()
