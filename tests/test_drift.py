"""Drift: a drift preview judged into a record (components/fleet/drift.py), the records read back,
and the fleet status showing each stack's last result and its date (``--drift DIR``) against the
suite's ARM server."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from components.fleet.drift import DriftRecord, DriftResult, read_records, record_from_preview
from tests.arm_server import ArmServer
from tests.test_fleet import arm_env, fleet_arm_state, make_project, run  # noqa: F401  (arm_env: a fixture)

ROOT = Path(__file__).resolve().parent.parent
AT = datetime(2026, 12, 3, 4, 41, tzinfo=UTC)
CR_URN = "urn:pulumi:ship01::edge-registry::edge-registry:index:AzureConnectedRegistry$azure-native:containerregistry:ConnectedRegistry::ship01-azure-connected-registry"
RELEASE_URN = "urn:pulumi:ship01::edge-registry::kubernetes:helm.sh/v3:Release::ship01-release"


def preview(*ops: tuple[str, str], diagnostics: list[dict[str, str]] | None = None) -> str:
    """A ``pulumi preview --json`` document with these (op, urn) steps."""
    steps = [{"op": op, "urn": urn} for op, urn in ops]
    return json.dumps({"steps": steps, "diagnostics": diagnostics or [], "changeSummary": {}})


def test_a_preview_that_plans_nothing_is_no_drift() -> None:
    record = record_from_preview("ship01", 0, preview(("same", CR_URN), ("read", RELEASE_URN)), AT)
    assert record.result is DriftResult.NONE and record.changes == {} and record.summary() == "none"


@pytest.mark.parametrize("exit_code", [7, 1], ids=["exit 7", "an older CLI's exit 1"])
def test_planned_changes_are_drift_counted_by_operation_with_their_resources(exit_code: int) -> None:
    record = record_from_preview("ship01", exit_code,
                                 preview(("update", CR_URN), ("same", "urn:x"), ("replace", RELEASE_URN)), AT)
    assert record.result is DriftResult.DRIFT
    assert record.changes == {"update": 1, "replace": 1}
    assert record.resources == (CR_URN, RELEASE_URN)  # sorted; the unchanged one left out
    assert record.summary() == "drift: 1 replace, 1 update"


def test_a_refresh_that_found_nothing_is_no_drift_and_the_engines_summary_counts_when_steps_do_not() -> None:
    """``preview --refresh --json`` shows each resource's refresh as a ``refresh`` step when it found
    nothing (one that found a change is rewritten to ``update``/``delete``)."""
    clean = record_from_preview("ship01", 0, preview(("refresh", CR_URN), ("same", CR_URN)), AT)
    assert clean.result is DriftResult.NONE
    summary_only = json.dumps({"steps": [{"op": "refresh", "urn": CR_URN}],
                               "changeSummary": {"same": 30, "update": 2, "refresh": 1}})
    counted = record_from_preview("ship01", 7, summary_only, AT)
    assert counted.result is DriftResult.DRIFT and counted.changes == {"update": 2}


def test_a_preview_that_failed_is_unknown_drift_with_its_error() -> None:
    # What it planned before the failure is not drift.
    failed = record_from_preview("ship01", 255, preview(("create", CR_URN), diagnostics=[
        {"severity": "warning", "message": "a warning"},
        {"severity": "error", "message": "node 192.0.2.10: connection refused\nmore"}]), AT)
    assert failed.result is DriftResult.FAILED and failed.error == "node 192.0.2.10: connection refused"
    no_json = record_from_preview("ship01", 1, "", AT, stderr="warning: x\nerror: no stack named 'ship01' found\n")
    assert no_json.result is DriftResult.FAILED and no_json.error == "error: no stack named 'ship01' found"
    assert record_from_preview("ship01", 3, "not json", AT).summary() == "failed: the preview printed no JSON (exit 3)"


def test_the_record_command_writes_a_record_the_reader_reads_back(tmp_path: Path) -> None:
    (tmp_path / "preview.json").write_text(preview(("update", CR_URN)))
    out = tmp_path / "drift" / "ship01.json"
    done = subprocess.run(
        [sys.executable, "-m", "components.fleet.drift", "record", "ship01", "--exit-code", "7",
         "--preview-json", str(tmp_path / "preview.json"), "--out", str(out), "--commit", "abc123",
         "--run-url", "https://github.com/org/fleet/actions/runs/42"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["ship01: drift: 1 update", f"  {CR_URN}"]
    records, problems = read_records(tmp_path / "drift")
    assert problems == []
    record = records["ship01"]
    assert (record.result, record.changes, record.commit) == (DriftResult.DRIFT, {"update": 1}, "abc123")
    assert record.run_url == "https://github.com/org/fleet/actions/runs/42"
    assert abs(datetime.now(UTC) - record.checked_at) < timedelta(minutes=5)


def test_the_reader_keeps_the_newest_record_per_stack_and_names_a_broken_file(tmp_path: Path) -> None:
    older = DriftRecord("ship01", DriftResult.DRIFT, AT - timedelta(days=1), {"update": 1})
    newer = DriftRecord("ship01", DriftResult.NONE, AT)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "ship01.json").write_text(json.dumps(newer.document()))
    (tmp_path / "ship01-old.json").write_text(json.dumps(older.document()))
    (tmp_path / "broken.json").write_text("{")
    (tmp_path / "wrong.json").write_text(json.dumps({**newer.document(), "result": "maybe"}))
    (tmp_path / "naive.json").write_text(json.dumps({**newer.document(), "checkedAt": "2026-12-03T04:41:00"}))
    records, problems = read_records(tmp_path)
    assert list(records) == ["ship01"] and records["ship01"].result is DriftResult.NONE
    assert len(problems) == 3
    assert any(p.startswith("broken.json: ") for p in problems)
    assert "wrong.json: result 'maybe' is not none, drift or failed" in problems
    assert "naive.json: checkedAt has no time zone" in problems
    missing, why = read_records(tmp_path / "absent")
    assert missing == {} and "no such directory" in why[0]


def test_fleet_status_shows_each_stacks_last_drift_result_and_its_date(
    tmp_path: Path, arm: ArmServer, arm_env: dict[str, str]  # noqa: F811
) -> None:
    now = datetime.now(UTC)
    fleet_arm_state(arm, now)
    drift = tmp_path / "drift"
    drift.mkdir()
    record = DriftRecord("ship01", DriftResult.DRIFT, now - timedelta(hours=5), {"update": 1}, (CR_URN,),
                         commit="abc123", run_url="https://github.com/org/fleet/actions/runs/42")
    (drift / "ship01.json").write_text(json.dumps(record.document()))
    (drift / "junk.json").write_text("[]")
    project = make_project(tmp_path, arm, ["ship01", "ship05"])

    code, out, err = run("--project-dir", str(project), "--json", "--no-progress", "--drift", str(drift))
    sites = {site["stack"]: site for site in json.loads(out)["sites"]}
    assert sites["ship01"]["drift"]["result"] == "drift"
    assert sites["ship01"]["drift"]["changes"] == {"update": 1}
    assert sites["ship01"]["drift"]["checkedAt"] == record.document()["checkedAt"]
    assert 5 * 3600 - 60 < sites["ship01"]["drift"]["secondsSinceCheck"] < 5 * 3600 + 600
    assert sites["ship05"]["drift"] is None
    assert "fleet: drift: junk.json: not a drift record of version 1" in err

    code, table, _ = run("--project-dir", str(project), "--no-progress", "--drift", str(drift))
    row = next(line for line in table.splitlines() if "ship01" in line and "contosoedge" in line)
    assert "drift: 1 update, 5h ago" in row
    other = next(line for line in table.splitlines() if "ship05" in line and "contosoedge" in line)
    assert "no record" in other
    # Not asked: no column value at all, and the JSON says null.
    _, plain, _ = run("--project-dir", str(project), "--json", "--no-progress")
    assert all(site["drift"] is None for site in json.loads(plain)["sites"])


def test_the_page_shows_garbage_collection_and_the_last_drift_check(tmp_path: Path) -> None:
    """The HTML page's cells, built by its script from the one report document, in Chromium."""
    from dataclasses import replace

    from components.fleet.model import ObservedConnectedRegistry, RegistryListing, RegistryRef, SiteDeclaration
    from components.fleet.report import render_html
    from components.fleet.verdicts import fleet_report
    from tests.test_fleet_page import Dom, load

    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    ref = RegistryRef("https://management.azure.com", "sub", "rg-edge", "contosoedge")

    def seen(name: str, **gc: object) -> ObservedConnectedRegistry:
        return replace(ObservedConnectedRegistry(name, "Online", "Active", now, now, "30 * * * *", timedelta(hours=1),
                                                 "0.9.0"), **gc)  # type: ignore[arg-type]

    report = fleet_report(
        [SiteDeclaration(s, ref, s, "30 * * * *", timedelta(hours=1), timedelta(days=30)) for s in ("ship01", "ship02")],
        [RegistryListing(ref, (
            seen("ship01", garbage_collection_enabled=True, garbage_collection_schedule="0 5 * * *"),
            seen("ship02", garbage_collection_enabled=False, garbage_collection_schedule="0 5 * * *")))],
        now)
    report = replace(report, drift={"ship01": DriftRecord("ship01", DriftResult.DRIFT, now - timedelta(hours=5),
                                                          {"update": 1, "replace": 2}, (CR_URN,))})
    page = tmp_path / "fleet.html"
    page.write_text(render_html(report))
    html, console = load(page, tmp_path)
    assert console == []
    dom = Dom(html)
    cells = {cls: ["".join(e[2]) for e in dom.find("td", class_=cls)] for cls in ("gc", "drift")}
    assert cells["gc"] == ["on, 0 5 * * *", "off"]
    assert cells["drift"] == ["drift: 2 replace, 1 update, 5h ago", "-"]
