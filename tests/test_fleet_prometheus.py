"""`fleet status --format prometheus`: the gauges, read back with prometheus-client's own parser."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from components.fleet.drift import DriftRecord, DriftResult
from components.fleet.model import ObservedConnectedRegistry, RegistryListing, RegistryRef, SiteDeclaration
from components.fleet.prometheus import render_prometheus
from components.fleet.verdicts import fleet_report
from tests.arm_server import FAKE_BEARER, ArmServer
from tests.test_fleet import fleet_arm_state, make_project

ROOT = Path(__file__).resolve().parent.parent
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    """Every sample as (name, sorted labels) -> value, parsed by the Prometheus client library."""
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        assert family.type == "gauge", family.name
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: Samples, name: str, stack: str, **labels: str) -> float:
    matches = [v for (n, ls), v in found.items()
               if n == name and dict(ls).get("stack") == stack and all(dict(ls).get(k) == w for k, w in labels.items())]
    assert len(matches) == 1, (name, stack, labels, matches)
    return matches[0]


def has(found: Samples, name: str, stack: str) -> bool:
    return any(n == name and dict(ls).get("stack") == stack for n, ls in found)


def status(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "components", "fleet", "status", "--no-progress", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, env=env)


def test_the_demo_fleets_gauges_parse_and_carry_the_reports_values() -> None:
    result = status("--demo", "--format", "prometheus")
    assert result.returncode == 1  # same exit code as the table: the demo has flagged sites
    assert "DEMO: " in result.stderr and "DEMO" not in result.stdout  # stdout is only the exposition
    found = samples(result.stdout)
    assert value(found, "edge_registry_site_online", "dev") == 1 and value(found, "edge_registry_site_online", "ship03") == 0
    assert value(found, "edge_registry_site_online", "ship04") == 1  # Syncing counts as online
    assert value(found, "edge_registry_site_flagged", "ship02") == 0 and value(found, "edge_registry_site_flagged", "ship05") == 1
    assert value(found, "edge_registry_site_last_sync_age_seconds", "ship03") == pytest.approx(6 * 86400 + 7200, abs=120)
    assert not has(found, "edge_registry_site_last_sync_age_seconds", "ship05")  # never synced: no made-up age
    # Offline budget: fractional days, labelled with what limits it.
    assert value(found, "edge_registry_site_offline_budget_days", "ship02", limiting_item="message-ttl") == pytest.approx(
        45 - 30 / 1440, abs=0.01)
    assert value(found, "edge_registry_site_offline_budget_days", "ship04", limiting_item="sync-password") == 0
    # Days to each expiry: the real expiry of a password (the budget keeps the rotation lead on top).
    assert value(found, "edge_registry_site_expiry_days", "ship04", item="sync-password") == pytest.approx(25, abs=0.01)
    assert value(found, "edge_registry_site_expiry_days", "ship04", item="client-password",
                 subject="ship04-client-token password1") == pytest.approx(9, abs=0.01)
    assert value(found, "edge_registry_site_expiry_days", "ship03", item="message-ttl") == pytest.approx(
        30 - 6 - 2 / 24, abs=0.01)
    # Drift, from the demo's drift records: 1 drift, 0 none, a failed check no drift gauge.
    assert value(found, "edge_registry_site_drift", "ship02") == 1 and value(found, "edge_registry_site_drift", "dev") == 0
    assert not has(found, "edge_registry_site_drift", "ship03")
    assert value(found, "edge_registry_site_drift_check_failed", "ship03") == 1
    assert value(found, "edge_registry_site_drift_check_age_seconds", "ship04") == pytest.approx(29 * 3600, abs=120)
    assert not has(found, "edge_registry_site_drift_check_failed", "ship05")  # no record
    fleet = {n: v for (n, ls), v in found.items() if n.startswith("edge_registry_fleet_")}
    assert fleet["edge_registry_fleet_unreadable_registries"] == 0 and fleet["edge_registry_fleet_invalid_stacks"] == 0
    # The same numbers as the JSON form of the same command.
    document = json.loads(status("--demo", "--json").stdout)
    ship03 = next(s for s in document["sites"] if s["stack"] == "ship03")
    assert value(found, "edge_registry_site_offline_budget_days", "ship03") == pytest.approx(
        ship03["offlineBudget"]["seconds"] / 86400, abs=0.01)


def test_json_and_another_format_together_are_a_usage_error() -> None:
    result = status("--demo", "--json", "--format", "prometheus")
    assert result.returncode == 2 and "--json cannot be combined with --format prometheus" in result.stderr


def test_a_real_fleet_against_the_suites_arm(tmp_path: Path) -> None:
    with ArmServer(tmp_path) as arm:
        fleet_arm_state(arm, datetime.now(UTC))
        project = make_project(tmp_path, arm)
        env = {k: v for k, v in os.environ.items() if k not in ("ARM_SUBSCRIPTION_ID", "AZURE_SUBSCRIPTION_ID")}
        env.update({"EDGE_REGISTRY_ARM_TOKEN": FAKE_BEARER, "REQUESTS_CA_BUNDLE": arm.ca_pem, "NO_PROXY": "127.0.0.1"})
        result = status("--project-dir", str(project), "--format", "prometheus", env=env)
    assert result.returncode == 1, result.stderr
    found = samples(result.stdout)
    assert value(found, "edge_registry_site_expiry_days", "ship06", item="client-password") == pytest.approx(10, abs=0.01)
    assert value(found, "edge_registry_site_online", "ship02") == 0
    assert {n: v for (n, _), v in found.items() if n == "edge_registry_fleet_unreadable_registries"} == {
        "edge_registry_fleet_unreadable_registries": 1}  # brokenedge answers 403
    assert found[("edge_registry_fleet_undeployed_stacks", ())] == 1  # ship07
    assert found[("edge_registry_fleet_orphans", ())] == 1  # oldship99
    assert not any(n == "edge_registry_site_drift" for n, _ in found)  # no --drift: no drift gauge


def test_drift_gauges_follow_each_record_and_are_absent_without_one() -> None:
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    ref = RegistryRef("https://management.azure.com", "sub", "rg", "contosoedge")
    names = ("ship01", "ship02", "ship03", "ship04")
    declarations = [SiteDeclaration(n, ref, n, "30 * * * *", timedelta(hours=1), timedelta(days=30)) for n in names]
    seen = tuple(ObservedConnectedRegistry(n, "Online", "Active", now, now, "30 * * * *", timedelta(hours=1), "1")
                 for n in names)
    report = replace(fleet_report(declarations, [RegistryListing(ref, seen)], now), drift={
        "ship01": DriftRecord("ship01", DriftResult.DRIFT, now - timedelta(hours=3), {"update": 2}),
        "ship02": DriftRecord("ship02", DriftResult.NONE, now - timedelta(hours=1)),
        "ship03": DriftRecord("ship03", DriftResult.FAILED, now - timedelta(hours=2), error="boom"),
    })
    found = samples(render_prometheus(report))
    assert [value(found, "edge_registry_site_drift", s) for s in ("ship01", "ship02")] == [1, 0]
    assert not has(found, "edge_registry_site_drift", "ship03") and not has(found, "edge_registry_site_drift", "ship04")
    assert [value(found, "edge_registry_site_drift_check_failed", s) for s in ("ship01", "ship02", "ship03")] == [0, 0, 1]
    assert value(found, "edge_registry_site_drift_check_age_seconds", "ship01") == 3 * 3600
    assert found[("edge_registry_fleet_status_generated_timestamp_seconds", ())] == now.timestamp()
