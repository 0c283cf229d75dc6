"""Fleet status: the verdicts as pure functions, then the whole command against the local ARM.

The command runs for real: it reads the fixture stack files (tests/fleet_fixtures/, copied next
to the repository's Pulumi.yaml into a temporary project), lists the registries over HTTPS from
tests/arm_server.py with the bearer token from EDGE_REGISTRY_ARM_TOKEN (the server rejects any
other), trusting the server's throwaway CA through REQUESTS_CA_BUNDLE.
"""

from __future__ import annotations

import io
import json
import os
import functools
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.fleet import cli as fleet
from components.azure.credentials import StaticBearerCredential
from components.fleet.listing import DEFAULT_RETRY_TOTAL, FleetListingClient
from components.fleet.model import (
    ObservedConnectedRegistry,
    RegistryListing,
    RegistryRef,
    SiteDeclaration,
    TokenPasswords,
)
from components.fleet.report import render_table
from components.fleet.verdicts import (
    PasswordExpiry,
    Verdict,
    fleet_report,
    password_expiries,
    site_status,
    stale_after,
    windows_since,
)
from components.azure.rotation import SlotStatus
from tests.arm_server import FAKE_BEARER, ArmServer, FakeCredential

#: A fixed test host key: every node that is not gone pins one (issue 20).
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGpjKkb3qKVnCuHkw04o7TNs3j5JNk/rgmaUd0Bh5ug2"

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fleet_fixtures"
SUB = "00000000-0000-0000-0000-000000000000"
REGISTRY_PATH = (
    f"/subscriptions/{SUB}/resourceGroups/rg-edge/providers/Microsoft.ContainerRegistry/registries/contosoedge"
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- verdicts: pure functions ------------------------------------------------------------------

HOURLY = "30 * * * *"
REF = RegistryRef("https://management.azure.com", SUB, "rg-edge", "contosoedge")


def declaration(stack: str = "ship01", cr: str = "ship01", schedule: str = HOURLY,
                window: timedelta = timedelta(hours=1), rotate_days: int = 30) -> SiteDeclaration:
    return SiteDeclaration(stack, REF, cr, schedule, window, timedelta(days=rotate_days))


def observed(name: str = "ship01", state: str = "Online", activation: str = "Active",
             last_sync: datetime | None = None, schedule: str | None = HOURLY,
             window: timedelta | None = timedelta(hours=1), tokens: tuple[str, ...] = ()) -> ObservedConnectedRegistry:
    return ObservedConnectedRegistry(name, state, activation, last_sync, last_sync, schedule, window, "0.9.0",
                                     (), tokens)


def test_windows_since_counts_only_windows_that_opened_after_the_sync_and_closed() -> None:
    last = utc(2026, 3, 1, 10, 45)
    hour = timedelta(hours=1)
    # Windows open at 11:30, 12:30, 13:30 and last an hour.
    assert windows_since(last, HOURLY, hour, utc(2026, 3, 1, 12, 29)) == 0   # 11:30 still open
    assert windows_since(last, HOURLY, hour, utc(2026, 3, 1, 12, 30)) == 1
    assert windows_since(last, HOURLY, hour, utc(2026, 3, 1, 14, 29)) == 2
    assert windows_since(last, HOURLY, hour, utc(2026, 3, 1, 14, 30)) == 3


def test_windows_since_follows_the_sites_own_cron_and_window() -> None:
    last = utc(2026, 3, 1, 4, 0)  # during the 03:00 window
    daily = "0 3 * * *"
    # 20 hours later: an hourly site would have missed 19 windows (04:30 to 22:30), a daily one none yet.
    now = last + timedelta(hours=20)
    assert windows_since(last, HOURLY, timedelta(hours=1), now) == 19
    assert windows_since(last, daily, timedelta(hours=2), now) == 0
    # The next daily window (03:00-05:00) counts once it has closed.
    assert windows_since(last, daily, timedelta(hours=2), utc(2026, 3, 2, 4, 59)) == 0
    assert windows_since(last, daily, timedelta(hours=2), utc(2026, 3, 2, 5, 0)) == 1
    # Weekdays only: Friday's sync, Monday morning: Saturday and Sunday had no window.
    weekdays = "0 2 * * 1-5"
    friday = utc(2026, 3, 6, 2, 30)
    assert windows_since(friday, weekdays, timedelta(hours=1), utc(2026, 3, 9, 2, 59)) == 0
    assert windows_since(friday, weekdays, timedelta(hours=1), utc(2026, 3, 9, 3, 0)) == 1


def test_stale_after_is_the_end_of_the_nth_window_after_the_last_sync() -> None:
    last = utc(2026, 3, 1, 10, 45)
    assert stale_after(last, HOURLY, timedelta(hours=1), 3) == timedelta(hours=3, minutes=45)  # 14:30
    assert stale_after(last, "0 3 * * *", timedelta(hours=2), 1) == timedelta(hours=18, minutes=15)


def test_a_healthy_recent_site_has_no_verdict() -> None:
    now = utc(2026, 3, 1, 12, 0)
    status = site_status(declaration(), observed(last_sync=now - timedelta(minutes=20)), {}, now)
    assert status.verdicts == () and not status.flagged
    assert status.windows_missed == 0 and status.age == timedelta(minutes=20)


@pytest.mark.parametrize(
    ("state", "activation", "expected"),
    [
        ("Online", "Active", ()),
        ("Syncing", "Active", ()),
        ("Offline", "Active", (Verdict.OFFLINE,)),
        ("Unhealthy", "Active", (Verdict.UNHEALTHY,)),
        (None, "Active", (Verdict.OFFLINE,)),
        ("Online", "Inactive", (Verdict.NOT_ACTIVATED,)),
        ("Offline", None, (Verdict.OFFLINE, Verdict.NOT_ACTIVATED)),
    ],
)
def test_connection_state_and_activation_verdicts(state: str | None, activation: str | None,
                                                  expected: tuple[Verdict, ...]) -> None:
    now = utc(2026, 3, 1, 12, 0)
    found = site_status(declaration(), observed(state=state, activation=activation,  # type: ignore[arg-type]
                                                last_sync=now - timedelta(minutes=5)), {}, now)
    assert found.verdicts == expected


def test_a_last_sync_in_the_future_reads_so_not_ago() -> None:
    """Clock skew between ARM and this machine: the table must not say "9m ago"."""
    now = utc(2026, 3, 1, 12, 0)
    ahead = site_status(declaration(), observed(last_sync=now + timedelta(minutes=9)), {}, now)
    assert ahead.verdicts == () and ahead.windows_missed == 0
    out = io.StringIO()
    render_table(fleet_report([declaration()], [RegistryListing(REF, (ahead.observed,))], now), out, color=False)
    row = next(line for line in out.getvalue().splitlines() if "ship01" in line)
    assert "9m in the future" in row and "ago" not in row


def test_stale_after_n_windows_and_n_is_a_parameter() -> None:
    now = utc(2026, 3, 1, 14, 30)
    site = observed(last_sync=utc(2026, 3, 1, 10, 45))  # 3 windows closed since
    assert site_status(declaration(), site, {}, now).verdicts == (Verdict.STALE,)
    assert site_status(declaration(), site, {}, now, stale_windows=4).verdicts == ()
    assert site_status(declaration(), site, {}, now - timedelta(minutes=1)).verdicts == ()
    never = site_status(declaration(), observed(last_sync=None), {}, now)
    assert never.verdicts == (Verdict.STALE,) and never.age is None and never.windows_missed is None


def test_the_schedule_ARM_reports_wins_over_the_stack_file() -> None:
    now = utc(2026, 3, 2, 0, 0)
    last = now - timedelta(hours=20)
    daily_in_arm = observed(last_sync=last, schedule="0 3 * * *", window=timedelta(hours=2))
    assert site_status(declaration(schedule=HOURLY), daily_in_arm, {}, now).verdicts == ()
    nothing_in_arm = observed(last_sync=last, schedule=None, window=None)
    assert site_status(declaration(schedule=HOURLY), nothing_in_arm, {}, now).verdicts == (Verdict.STALE,)
    # A schedule ARM reports that cron cannot parse falls back to the stack file's, never a crash.
    garbled = observed(last_sync=last, schedule="every day", window=timedelta(hours=2))
    assert site_status(declaration(schedule=HOURLY), garbled, {}, now).schedule == HOURLY


def slot(name: str, created: datetime | None, expiry: datetime | None) -> SlotStatus:
    return SlotStatus(name, created, expiry)


def one_token(*slots: SlotStatus, name: str = "ship01-client-token") -> tuple[tuple[str, ...], dict[str, TokenPasswords]]:
    """The site's token ids and the registry's tokens, for a site with this one token."""
    token_id = f"{REGISTRY_PATH}/tokens/{name}"
    return (token_id,), {token_id.lower(): TokenPasswords(name, slots)}


def test_the_expiry_that_counts_is_the_soonest_over_the_sync_and_client_tokens() -> None:
    now = utc(2026, 3, 1, 12, 0)
    created = now - timedelta(days=10)
    tokens = {
        f"{REGISTRY_PATH}/tokens/ship01-sync-token".lower(): TokenPasswords(
            "ship01-sync-token", (slot("password1", created, now + timedelta(days=80)),)),
        f"{REGISTRY_PATH}/tokens/ship01-client-token".lower(): TokenPasswords(
            "ship01-client-token", (slot("password2", created, now + timedelta(days=20)),
                                    slot("password1", None, None))),  # no expiry: never expires
        f"{REGISTRY_PATH}/tokens/other-token".lower(): TokenPasswords(
            "other-token", (slot("password1", created, now + timedelta(days=1)),)),
    }
    ids = (f"{REGISTRY_PATH}/tokens/ship01-sync-token", f"{REGISTRY_PATH}/TOKENS/Ship01-Client-Token")
    site = observed(last_sync=now, tokens=ids)
    password, retiring = password_expiries(site, tokens)
    assert password is not None and retiring == ()
    assert (password.expiry, password.token, password.slot) == (now + timedelta(days=20), "ship01-client-token",
                                                                 "password2")
    assert site_status(declaration(rotate_days=30), site, tokens, now).verdicts == (Verdict.PASSWORD_EXPIRING,)
    assert site_status(declaration(rotate_days=19), site, tokens, now).verdicts == ()
    assert site_status(declaration(), site, tokens, now + timedelta(days=21)).verdicts[-1] == Verdict.PASSWORD_EXPIRED
    assert password_expiries(observed(tokens=()), tokens) == (None, ())


# A rotation 3 days ago: the old slot (password1) is inside the 30-day window by construction.
NOW = utc(2026, 3, 1, 12, 0)
ROTATED = NOW - timedelta(days=3)
OLD = slot("password1", NOW - timedelta(days=87), NOW + timedelta(days=3))
NEW = slot("password2", ROTATED, NOW + timedelta(days=87))


def test_an_old_slot_the_site_has_synced_past_is_retiring_not_a_verdict() -> None:
    ids, tokens = one_token(OLD, NEW)
    status = site_status(declaration(), observed(last_sync=NOW - timedelta(minutes=5), tokens=ids), tokens, NOW)
    assert status.verdicts == () and not status.rotation_stuck
    assert status.password is not None and status.password.slot == "password2"  # the newest slot's expiry shows
    assert [(r.slot, r.expiry) for r in status.retiring_passwords] == [("password1", OLD.expiry)]


def test_an_old_slot_inside_the_window_while_the_site_has_not_synced_the_new_one_is_a_stuck_rotation() -> None:
    ids, tokens = one_token(OLD, NEW)
    # Last sync before the new slot was created: on-prem only the old password is known.
    status = site_status(declaration(), observed(last_sync=ROTATED - timedelta(minutes=5), tokens=ids), tokens, NOW)
    assert Verdict.PASSWORD_EXPIRING in status.verdicts and status.rotation_stuck
    assert status.password is not None and (status.password.slot, status.password.awaiting_sync) == ("password1", True)
    assert status.retiring_passwords == ()
    never = site_status(declaration(), observed(last_sync=None, tokens=ids), tokens, NOW)
    assert Verdict.PASSWORD_EXPIRING in never.verdicts and never.rotation_stuck


def test_an_old_slot_past_its_expiry_while_the_new_one_is_not_synced_is_expired() -> None:
    expired = slot("password1", NOW - timedelta(days=90), NOW - timedelta(hours=2))
    ids, tokens = one_token(expired, NEW)
    status = site_status(declaration(), observed(last_sync=ROTATED - timedelta(hours=1), tokens=ids), tokens, NOW)
    assert status.verdicts[-1] == Verdict.PASSWORD_EXPIRED and status.rotation_stuck
    # Once the site has synced the new one, the expired old slot only waits for its removal.
    synced = site_status(declaration(), observed(last_sync=NOW - timedelta(minutes=5), tokens=ids), tokens, NOW)
    assert synced.verdicts == () and [r.slot for r in synced.retiring_passwords] == ["password1"]


def test_the_newest_slot_inside_the_window_is_password_expiring() -> None:
    due = slot("password2", NOW - timedelta(days=80), NOW + timedelta(days=10))
    retired = slot("password1", NOW - timedelta(days=170), NOW - timedelta(days=80))
    for slots in ((due,), (retired, due)):
        ids, tokens = one_token(*slots)
        status = site_status(declaration(), observed(last_sync=NOW - timedelta(minutes=5), tokens=ids), tokens, NOW)
        assert status.verdicts == (Verdict.PASSWORD_EXPIRING,) and not status.rotation_stuck
        assert status.password is not None and status.password.slot == "password2"
    expired = site_status(declaration(), observed(last_sync=NOW, tokens=ids), tokens, NOW + timedelta(days=11))
    assert expired.verdicts[-1] == Verdict.PASSWORD_EXPIRED


def test_a_slot_without_a_creation_time_counts_since_it_cannot_be_shown_to_be_the_old_one() -> None:
    undated = slot("password1", None, NOW + timedelta(days=3))
    ids, tokens = one_token(undated, NEW)
    status = site_status(declaration(), observed(last_sync=NOW, tokens=ids), tokens, NOW)
    assert status.verdicts == (Verdict.PASSWORD_EXPIRING,)
    assert status.password == PasswordExpiry("ship01-client-token", "password1", NOW + timedelta(days=3))


def test_fleet_report_finds_orphans_undeployed_stacks_and_unreadable_registries() -> None:
    now = utc(2026, 3, 1, 12, 0)
    other = RegistryRef("https://management.azure.com", SUB, "rg-edge", "brokenedge")
    declared = [declaration("ship01", "ship01"), declaration("ship02", "SHIP02"), declaration("ship07", "ship07"),
                SiteDeclaration("ship08", other, "ship08", HOURLY, timedelta(hours=1), timedelta(days=30))]
    listings = [
        RegistryListing(REF, (observed("ship01", last_sync=now), observed("ship02", last_sync=now),
                              observed("oldship99", last_sync=None))),
        RegistryListing(other, error="HTTP 403 AuthorizationFailed: no"),
    ]
    report = fleet_report(declared, listings, now)
    assert [s.stack for s in report.sites] == ["ship01", "ship02"]
    assert [o.observed.name for o in report.orphans] == ["oldship99"]
    assert [d.stack for d in report.undeployed] == ["ship07"]
    assert [(u.registry.name, u.stacks) for u in report.unreadable] == [("brokenedge", ("ship08",))]
    assert report.flagged  # an unreadable registry: the sites behind it are not known to be fine
    healthy = fleet_report(declared[:3], listings[:1], now)
    assert not healthy.flagged  # an orphan and an undeployed stack are reported, not flagged


# --- the command against the local ARM ---------------------------------------------------------

def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def cr_document(name: str, state: str, activation: str, last_sync: datetime | None, *,
                schedule: str = HOURLY, window: str = "PT1H",
                status_details: list[dict[str, str]] | None = None) -> dict[str, Any]:
    sync: dict[str, Any] = {
        "tokenId": f"{REGISTRY_PATH}/tokens/{name}-sync-token", "schedule": schedule, "syncWindow": window,
        "messageTtl": "P2D", "gatewayEndpoint": "contosoedge.westeurope.data.azurecr.io",
    }
    properties: dict[str, Any] = {
        "provisioningState": "Succeeded", "mode": "ReadOnly", "version": "0.9.0",
        "connectionState": state, "activation": {"status": activation}, "parent": {"syncProperties": sync},
        "clientTokenIds": [f"{REGISTRY_PATH}/tokens/{name}-client-token"],
        "loginServer": {"host": f"{name}.local"},
        "statusDetails": status_details or [],
    }
    if last_sync is not None:
        sync["lastSyncTime"] = _iso(last_sync)
        properties["lastActivityTime"] = _iso(last_sync)
    return {"id": f"{REGISTRY_PATH}/connectedRegistries/{name}", "name": name,
            "type": "Microsoft.ContainerRegistry/registries/connectedRegistries", "properties": properties}


def token_document(name: str, *slots: tuple[datetime, datetime]) -> dict[str, Any]:
    """A token with one password slot per (creationTime, expiry), password1 first."""
    passwords = [{"name": f"password{i}", "creationTime": _iso(created), "expiry": _iso(expiry)}
                 for i, (created, expiry) in enumerate(slots, 1)]
    return {"id": f"{REGISTRY_PATH}/tokens/{name}", "name": name, "type": "Microsoft.ContainerRegistry/registries/tokens",
            "properties": {"status": "enabled", "scopeMapId": f"{REGISTRY_PATH}/scopeMaps/{name}",
                           "credentials": {"certificates": [], "passwords": passwords}}}


def fleet_arm_state(arm: ArmServer, now: datetime) -> None:
    """What ARM says about the fixture sites (tests/fleet_fixtures/README.md)."""
    ago = lambda **kw: now - timedelta(**kw)  # noqa: E731
    crs = [
        cr_document("ship01", "Online", "Active", ago(hours=20), schedule="0 3 * * *", window="PT2H"),
        cr_document("ship02", "Offline", "Active", ago(minutes=20)),
        cr_document("ship03", "Unhealthy", "Active", ago(minutes=20), status_details=[
            {"type": "connectedRegistry", "code": "500", "description": "Sync failed: parent unreachable",
             "timestamp": _iso(ago(minutes=3)), "correlationId": "c0ffee"}]),
        cr_document("ship04", "Offline", "Inactive", None),
        cr_document("ship05", "Online", "Active", ago(hours=6)),
        cr_document("ship06", "Syncing", "Active", ago(minutes=5)),
        cr_document("oldship99", "Offline", "Active", ago(days=40)),
    ]
    issued, far = ago(days=10), now + timedelta(days=80)
    tokens = []
    for cr in crs:
        name = cr["name"]
        sync = [(ago(days=91), now - timedelta(days=1)) if name == "ship03" else (issued, far)]
        client = [(ago(days=80), now + timedelta(days=10)) if name == "ship06" else (issued, far)]
        if name == "ship01":
            # Rotated 2 days ago and synced since: the old slot, inside the window by
            # construction, is retiring (no verdict); the newest slot's expiry counts.
            sync = [(ago(days=85), now + timedelta(days=5)), (ago(days=2), now + timedelta(days=75))]
        tokens += [token_document(f"{name}-sync-token", *sync), token_document(f"{name}-client-token", *client)]
    arm.state.listed_connected_registries["contosoedge"] = crs
    arm.state.listed_tokens["contosoedge"] = tokens
    arm.state.registry_errors["brokenedge"] = 403
    arm.state.page_size = 4  # 7 connected registries: two pages; 14 tokens: four


def make_project(tmp_path: Path, arm: ArmServer, stacks: list[str] | None = None) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "Pulumi.yaml", project / "Pulumi.yaml")
    for source in sorted(FIXTURES.glob("Pulumi.*.yaml")):
        if stacks is None or source.name[len("Pulumi."):-len(".yaml")] in stacks:
            (project / source.name).write_text(source.read_text().replace("__ARM_ENDPOINT__", arm.base_url))
    return project


@pytest.fixture
def arm(tmp_path: Path) -> Iterator[ArmServer]:
    with ArmServer(tmp_path) as server:
        yield server


@pytest.fixture
def arm_env(arm: ArmServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {"EDGE_REGISTRY_ARM_TOKEN": FAKE_BEARER, "REQUESTS_CA_BUNDLE": arm.ca_pem, "NO_PROXY": "127.0.0.1"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in ("ARM_SUBSCRIPTION_ID", "AZURE_SUBSCRIPTION_ID"):
        monkeypatch.delenv(key, raising=False)
    return env


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = fleet.main(["status", *args], stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_status_reports_every_verdict_orphans_undeployed_and_unreadable(tmp_path: Path, arm: ArmServer,
                                                                         arm_env: dict[str, str]) -> None:
    fleet_arm_state(arm, datetime.now(UTC))
    code, out, err = run("--project-dir", str(make_project(tmp_path, arm)), "--json")
    assert code == 1, err
    report = json.loads(out)
    verdicts = {s["stack"]: s["verdicts"] for s in report["sites"]}
    assert verdicts == {
        "ship01": [],
        "ship02": ["offline"],
        "ship03": ["unhealthy", "password-expired"],
        "ship04": ["offline", "not-activated", "stale"],
        "ship05": ["stale"],
        "ship06": ["password-expiring"],
    }
    sites = {s["stack"]: s for s in report["sites"]}
    # ship01 synced 20 h ago on a daily schedule: at most one window missed, by its own cron.
    assert sites["ship01"]["windowsSinceLastSync"] in (0, 1) and not sites["ship01"]["flagged"]
    assert sites["ship05"]["windowsSinceLastSync"] >= 4
    assert sites["ship05"]["secondsSinceLastSync"] == pytest.approx(6 * 3600, abs=120)
    assert sites["ship06"]["passwordToken"] == "ship06-client-token" and sites["ship06"]["passwordSlot"] == "password1"
    assert sites["ship01"]["passwordToken"] == "ship01-sync-token" and sites["ship01"]["passwordSlot"] == "password2"
    assert sites["ship01"]["secondsToPasswordExpiry"] == pytest.approx(75 * 86400, abs=120)
    (retiring,) = sites["ship01"]["retiringPasswords"]
    assert (retiring["token"], retiring["slot"]) == ("ship01-sync-token", "password1")
    assert not sites["ship01"]["rotationStuck"] and not sites["ship06"]["rotationStuck"]
    assert sites["ship06"]["secondsToPasswordExpiry"] == pytest.approx(10 * 86400, abs=120)
    assert sites["ship03"]["statusDetails"][0]["description"] == "Sync failed: parent unreachable"
    assert sites["ship02"]["connectedRegistry"] == "ship02" and sites["ship02"]["version"] == "0.9.0"
    assert sites["ship02"]["connectionState"] == "Offline" and sites["ship04"]["activation"] == "Inactive"
    assert [o["connectedRegistry"] for o in report["orphans"]] == ["oldship99"]
    assert [u["stack"] for u in report["undeployedStacks"]] == ["ship07"]
    (unreadable,) = report["unreadableRegistries"]
    assert unreadable["registry"] == "rg-edge/brokenedge" and unreadable["stacks"] == ["ship08"]
    assert unreadable["error"].startswith("HTTP 403 AuthorizationFailed")
    assert report["summary"]["flaggedSites"] == 5 and report["flagged"] is True


def test_one_paged_list_per_registry_never_a_call_per_site(tmp_path: Path, arm: ArmServer,
                                                           arm_env: dict[str, str]) -> None:
    fleet_arm_state(arm, datetime.now(UTC))
    code, _out, err = run("--project-dir", str(make_project(tmp_path, arm)), "--json")
    assert code == 1
    contoso = [r for r in arm.requests if "/registries/contosoedge/" in r.path]
    assert [r.path.rsplit("/", 1)[-1] for r in contoso] == ["connectedRegistries"] * 2 + ["tokens"] * 4
    assert all(r.method == "GET" and r.query["api-version"] == "2025-11-01" for r in contoso)
    # The second page was asked for through nextLink.
    assert [r.query.get("$skipToken") for r in contoso] == [None, "4", None, "4", "8", "12"]
    assert all(r.headers["Authorization"] == f"Bearer {FAKE_BEARER}" for r in arm.requests)
    # The broken registry was tried once (403 is not retried) and named in the report.
    assert [r.path.rsplit("/", 1)[-1] for r in arm.requests if "/brokenedge/" in r.path] == ["connectedRegistries"]
    # Progress on stderr, page by page.
    assert "listing registry 1/2 rg-edge/brokenedge" in err
    assert "listing registry 2/2 rg-edge/contosoedge: connected registries, page 2" in err
    assert "rg-edge/contosoedge: tokens, page 4" in err


def test_a_429_is_retried_after_its_retry_after(tmp_path: Path, arm: ArmServer, arm_env: dict[str, str]) -> None:
    fleet_arm_state(arm, datetime.now(UTC))
    arm.state.throttle_lists = 1
    arm.state.retry_after = "1"
    code, out, _err = run("--project-dir", str(make_project(tmp_path, arm, ["ship01", "ship02"])), "--json")
    assert code == 1  # ship02 is offline
    first, second = arm.requests[:2]
    assert first.path == second.path and first.path.endswith("/connectedRegistries")
    assert second.received - first.received >= 0.95  # waited for Retry-After
    assert {s["stack"] for s in json.loads(out)["sites"]} == {"ship01", "ship02"}


def test_throttling_is_bounded_and_ends_as_an_unreadable_registry(tmp_path: Path, arm: ArmServer,
                                                                   arm_env: dict[str, str]) -> None:
    fleet_arm_state(arm, datetime.now(UTC))
    arm.state.throttle_lists = 100
    arm.state.retry_after = "3600"
    started = time.monotonic()
    code, out, _err = run("--project-dir", str(make_project(tmp_path, arm, ["ship01"])), "--json",
                          "--max-retry-wait", "0.1")
    assert time.monotonic() - started < 20
    assert code == 1
    (unreadable,) = json.loads(out)["unreadableRegistries"]
    assert unreadable["error"].startswith("HTTP 429 TooManyRequests") and unreadable["stacks"] == ["ship01"]
    assert len(arm.requests) == 4  # DEFAULT_RETRY_TOTAL requests, then it gives up


def test_a_healthy_fleet_exits_zero_and_the_table_is_plain_off_a_tty(tmp_path: Path, arm: ArmServer,
                                                                     arm_env: dict[str, str]) -> None:
    fleet_arm_state(arm, datetime.now(UTC))
    code, out, _err = run("--project-dir", str(make_project(tmp_path, arm, ["ship01", "ship07"])))
    assert code == 0  # ship01 is fine; an undeployed stack and an orphan are listed, not flagged
    assert "\x1b[" not in out
    row = next(line for line in out.splitlines() if "ship01" in line and "rg-edge/contosoedge" in line)
    assert "Online" in row and "Active" in row and "ok" in row and "20h" in row
    assert "ship07: rg-edge/contosoedge/ship07" in out
    assert "rg-edge/contosoedge/oldship99" in out
    assert "1 site(s), 0 flagged" in out


def test_the_table_colors_flagged_sites_when_asked(tmp_path: Path, arm: ArmServer, arm_env: dict[str, str]) -> None:
    fleet_arm_state(arm, datetime.now(UTC))
    code, out, _err = run("--project-dir", str(make_project(tmp_path, arm, ["ship01", "ship02"])), "--color", "always")
    assert code == 1
    assert "\x1b[1;31moffline" in out and "\x1b[32mok" in out


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_tty_the_table_is_colored_and_progress_is_a_bar(tmp_path: Path, arm: ArmServer,
                                                              arm_env: dict[str, str]) -> None:
    fleet_arm_state(arm, datetime.now(UTC))
    out, err = FakeTerminal(), FakeTerminal()
    code = fleet.main(["status", "--project-dir", str(make_project(tmp_path, arm, ["ship02"]))], stdout=out, stderr=err)
    assert code == 1
    assert "\x1b[1;31moffline" in out.getvalue()
    progress = err.getvalue()
    # rich's bar (components/progress.py), redrawn in place, not a line per page
    assert "fleet: listing registries" in progress and "1/1" in progress and "\r\x1b[2K" in progress
    assert "fleet: listing registry 1/1" not in progress


def test_without_a_token_in_the_environment_DefaultAzureCredential_is_used() -> None:
    from azure.identity import DefaultAzureCredential

    from components.azure.credentials import credential_from_environment

    assert isinstance(credential_from_environment({}), DefaultAzureCredential)
    assert isinstance(credential_from_environment({"EDGE_REGISTRY_ARM_TOKEN": " "}), DefaultAzureCredential)
    token = credential_from_environment({"EDGE_REGISTRY_ARM_TOKEN": "abc\n"})
    assert token.get_token("scope").token == "abc"


def closed_port() -> int:
    """A loopback port nothing listens on: connecting to it is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize(
    ("failure", "line", "requests"),
    [
        (403, "HTTP 403 AuthorizationFailed: The client cannot read registry brokenedge.", 1),
        (404, "HTTP 404 Failed: The client cannot read registry brokenedge.", 1),  # not retried
        (500, "HTTP 500 Failed: The client cannot read registry brokenedge.", DEFAULT_RETRY_TOTAL),  # retried
        ("refused", "ServiceRequestError: ", 0),
    ],
)
def test_a_registry_that_fails_is_one_line_and_the_others_are_still_checked(
    tmp_path: Path, arm: ArmServer, arm_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
    failure: int | str, line: str, requests: int,
) -> None:
    fleet_arm_state(arm, datetime.now(UTC))
    # Retries as in production, without azure-core's exponential backoff (seconds per try).
    monkeypatch.setattr(fleet, "FleetListingClient", functools.partial(FleetListingClient, retry_backoff_factor=0.01))
    project = make_project(tmp_path, arm, ["ship01", "ship08"])
    if failure == "refused":
        ship08 = project / "Pulumi.ship08.yaml"
        ship08.write_text(ship08.read_text().replace(arm.base_url, f"https://127.0.0.1:{closed_port()}"))
    else:
        arm.state.registry_errors["brokenedge"] = int(failure)
    code, out, err = run("--project-dir", str(project), "--no-progress")
    assert code == 1 and "Traceback" not in err, err
    (unreadable,) = [row for row in out.splitlines() if "rg-edge/brokenedge (ship08): " in row]
    assert unreadable.split("rg-edge/brokenedge (ship08): ", 1)[1].startswith(line)
    if failure == "refused":
        assert "refused" in unreadable.lower()
    assert len([r for r in arm.requests if "/brokenedge/" in r.path]) == requests
    assert "1 site(s), 0 flagged" in out and "1 registry(ies) unreadable" in out  # ship01 was checked


def test_a_wrong_token_makes_the_registry_a_line_not_a_crash(tmp_path: Path, arm: ArmServer,
                                                             arm_env: dict[str, str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    fleet_arm_state(arm, datetime.now(UTC))
    monkeypatch.setenv("EDGE_REGISTRY_ARM_TOKEN", "expired-token")
    code, out, _err = run("--project-dir", str(make_project(tmp_path, arm, ["ship01"])))
    assert code == 1
    assert "Unreadable registries" in out and "HTTP 401" in out and "ship01" in out
    assert "expired-token" not in out


@pytest.mark.parametrize(
    ("where", "key", "bad", "expected"),
    [
        ("cr", "lastSyncTime", "yesterday",
         "connected registry ship01: parent.syncProperties.lastSyncTime is 'yesterday', not a date-time"),
        ("cr", "syncWindow", "an hour", "connected registry ship01: parent.syncProperties.syncWindow is 'an hour'"),
        ("token", "expiry", "soon", "token ship01-sync-token: credentials.passwords[password1].expiry is 'soon'"),
    ],
)
def test_a_value_of_the_wrong_type_makes_the_registry_a_line_not_a_traceback(
    tmp_path: Path, arm: ArmServer, arm_env: dict[str, str], where: str, key: str, bad: str, expected: str
) -> None:
    fleet_arm_state(arm, datetime.now(UTC))
    if where == "cr":
        ship01 = arm.state.listed_connected_registries["contosoedge"][0]
        ship01["properties"]["parent"]["syncProperties"][key] = bad
    else:
        arm.state.listed_tokens["contosoedge"][0]["properties"]["credentials"]["passwords"][0][key] = bad
    project = make_project(tmp_path, arm, ["ship01", "ship02"])
    result = subprocess.run(
        [sys.executable, "-m", "components", "fleet", "status", "--project-dir", str(project), "--no-progress"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, env={**os.environ, **arm_env},
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "Unreadable registries" in result.stdout
    line = next(line for line in result.stdout.splitlines() if "rg-edge/contosoedge (ship01, ship02)" in line)
    assert "unexpected answer from ARM: " + expected in line


def test_an_invalid_stack_file_is_reported_by_key_and_the_rest_is_still_checked(
    tmp_path: Path, arm: ArmServer, arm_env: dict[str, str]
) -> None:
    fleet_arm_state(arm, datetime.now(UTC))
    project = make_project(tmp_path, arm, ["ship01"])
    bad = (project / "Pulumi.ship01.yaml").read_text().replace('"0 3 * * *"', '"every day"')
    (project / "Pulumi.ship09.yaml").write_text(bad.replace("ship01", "ship09"))
    code, out, err = run("--project-dir", str(project), "--json")
    assert code == 1
    report = json.loads(out)
    assert [s["stack"] for s in report["sites"]] == ["ship01"]
    (invalid,) = report["invalidStacks"]
    assert invalid["stack"] == "ship09" and any(p.startswith("edge-registry:syncSchedule:") for p in invalid["problems"])
    assert "Pulumi.ship09.yaml: edge-registry:syncSchedule:" in err and "Traceback" not in err


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    code, _out, err = run("--project-dir", str(tmp_path))
    assert code == 2 and "no Pulumi.yaml" in err
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    code, _out, err = run("--project-dir", str(tmp_path))
    assert code == 2 and "no Pulumi.<site>.yaml" in err
    with pytest.raises(SystemExit) as exit_info:
        run("--stale-after", "0")
    assert exit_info.value.code == 2


def test_only_example_stacks_is_said_so_not_no_stack_files(tmp_path: Path) -> None:
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    for name in ("dev", "demo"):
        shutil.copy(FIXTURES / "Pulumi.ship01.yaml", tmp_path / f"Pulumi.{name}.yaml")
    (tmp_path / ".github").mkdir()
    (tmp_path / ".github" / "example-stacks.txt").write_text("dev\ndemo  # a second example\n")
    code, _out, err = run("--project-dir", str(tmp_path))
    assert code == 2 and "Traceback" not in err
    assert "only example stacks" in err and "Pulumi.demo.yaml, Pulumi.dev.yaml" in err
    assert ".github/example-stacks.txt" in err and "no Pulumi.<site>.yaml stack files" not in err


def test_the_command_line_end_to_end(tmp_path: Path, arm: ArmServer, arm_env: dict[str, str]) -> None:
    """`python -m components fleet status` in a subprocess: exit code, JSON on stdout, HTML file."""
    fleet_arm_state(arm, datetime.now(UTC))
    project = make_project(tmp_path, arm)
    page = tmp_path / "fleet.html"
    result = subprocess.run(
        [sys.executable, "-m", "components", "fleet", "status", "--project-dir", str(project), "--json",
         "--html", str(page)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, env={**os.environ, **arm_env},
    )
    assert result.returncode == 1, result.stderr
    assert json.loads(result.stdout)["summary"]["flaggedSites"] == 5
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>") and "ship05" in html
    # The page embeds exactly the document --json printed: the table and the chart read it.
    embedded = html.split('<script type="application/json" id="fleet-data">', 1)[1].split("</script>", 1)[0]
    assert json.loads(embedded) == json.loads(result.stdout)
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")  # nothing fetched
    assert "https://" not in html.replace(arm.base_url, "")


def test_the_listing_client_uses_the_clouds_scope_and_the_given_credential(arm: ArmServer) -> None:
    credential = FakeCredential()
    registry = RegistryRef(arm.base_url, SUB, "rg-edge", "contosoedge")
    fleet_arm_state(arm, datetime.now(UTC))
    with FleetListingClient(credential, connection_verify=arm.ca_pem) as client:
        listing = client.list_registry(registry)
        assert listing.error is None and len(listing.connected_registries) == 7 and len(listing.tokens) == 14
        assert credential.scopes[0] == (f"{arm.base_url}/.default",)
        # Sovereign clouds: the audience azure-mgmt-core maps, not "<endpoint>/.default".
        usgov = RegistryRef("https://management.usgovcloudapi.net", SUB, "rg", "r")
        assert client._client(usgov)._config.credential_scopes == ["https://management.core.usgovcloudapi.net/.default"]


def test_the_bearer_credential_hands_out_the_token_as_is() -> None:
    assert StaticBearerCredential("abc").get_token("https://management.azure.com/.default").token == "abc"


def test_the_program_s_arm_calls_take_the_same_bearer_token(
    arm: ArmServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # TokenPassword, the retirements and the sync-status read build ArmClient without a
    # credential: under `pulumi up` against a loopback ARM they must authenticate like fleet status.
    from components.azure.arm import ArmClient

    monkeypatch.setenv("EDGE_REGISTRY_ARM_TOKEN", FAKE_BEARER)
    arm.state.add_token("site-sync-token", "password1")
    with ArmClient(SUB, arm_endpoint=arm.base_url, connection_verify=arm.ca_pem, retry_total=0) as client:
        assert [p.name for p in client.password_slots("rg-edge", "contosoedge", "site-sync-token")] == ["password1"]
    assert arm.requests[-1].headers.get("Authorization") == f"Bearer {FAKE_BEARER}"


#: Broken stack files of every kind: (file name's stack, content, what its report entry says).
BROKEN_STACKS: list[tuple[str, str | bytes, str]] = [
    ("ship10", "config: {edge-registry:registryName: [\n", "not valid YAML: "),
    ("ship11", b"config:\n  edge-registry:registryName: \xff\n", "not UTF-8 text"),
    ("ship12", "- just\n- a list\n", "expected a mapping"),
    ("ship13", "config: [a, b]\n", "`config:` must be a mapping"),
    ("ship14", "SHIP01\n  edge-registry:nodes: 5\n", "edge-registry:nodes: 5 is invalid: expected a list"),
    ("ship15", "SHIP01\n  edge-registry:repositories: a\n", "edge-registry:repositories: 'a' is invalid: expected a list"),
    ("ship16", "SHIP01\n  edge-registry:chartValues: 3\n", "edge-registry:chartValues: 3 is invalid: expected an object"),
    ("ship17", 'SHIP01\n  edge-registry:syncWindow: "PT2H\\n"\n', "edge-registry:syncWindow: 'PT2H\\n' is invalid"),
    ("ship18", "SHIP01\n  edge-registry:passwordRotateBeforeDays: [30]\n",
     "edge-registry:passwordRotateBeforeDays: '[30]' is invalid: expected a whole number"),
    ("ship19", "SHIP01\n  edge-registry:nodes: [{host: \"node1\\n\", role: server}]\n", "edge-registry:nodes[0].host:"),
]


def test_every_broken_stack_file_is_its_own_entry_and_the_others_are_still_reported(
    tmp_path: Path, arm: ArmServer, arm_env: dict[str, str]
) -> None:
    fleet_arm_state(arm, datetime.now(UTC))
    project = make_project(tmp_path, arm, ["ship01", "ship02"])
    good = (project / "Pulumi.ship01.yaml").read_text()
    for stack, content, _says in BROKEN_STACKS:
        if isinstance(content, bytes):
            (project / f"Pulumi.{stack}.yaml").write_bytes(content)
        else:
            # SHIP01: ship01's stack file (the rest of it valid), one key overridden after it.
            text = content.replace("SHIP01\n", good.replace("ship01", stack) if "SHIP01" in content else "")
            (project / f"Pulumi.{stack}.yaml").write_text(text)
    code, out, err = run("--project-dir", str(project), "--json", "--no-progress")
    assert code == 1 and "Traceback" not in err, err
    report = json.loads(out)
    assert [s["stack"] for s in report["sites"]] == ["ship01", "ship02"]  # still checked
    entries = {i["stack"]: i["problems"] for i in report["invalidStacks"]}
    assert sorted(entries) == [stack for stack, _, _ in BROKEN_STACKS]
    for stack, _content, says in BROKEN_STACKS:
        assert any(p.startswith(says) or says in p for p in entries[stack]), (stack, entries[stack])
        assert all("\n" not in p for p in entries[stack])
    assert report["summary"]["invalidStacks"] == len(BROKEN_STACKS)
    # The table names each broken file too, one line per problem.
    code, table, _err = run("--project-dir", str(project), "--no-progress", "--color", "never")
    assert code == 1 and "Invalid stack files:" in table
    for stack, _content, _says in BROKEN_STACKS:
        assert f"Pulumi.{stack}.yaml: " in table


def test_a_stack_that_fails_in_an_unforeseen_way_is_still_only_that_stack(
    tmp_path: Path, arm: ArmServer, arm_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from components.fleet import stacks

    fleet_arm_state(arm, datetime.now(UTC))
    project = make_project(tmp_path, arm, ["ship01", "ship02"])
    real = stacks.read_declaration

    def flaky(project_dir: Path, stack: str, environ: Any) -> Any:
        if stack == "ship02":
            raise RuntimeError("disk on fire\nsecond line")
        return real(project_dir, stack, environ)

    monkeypatch.setattr(stacks, "read_declaration", flaky)
    code, out, err = run("--project-dir", str(project), "--json", "--no-progress")
    assert code == 1 and "Traceback" not in err
    report = json.loads(out)
    assert [s["stack"] for s in report["sites"]] == ["ship01"]
    assert report["invalidStacks"] == [{"stack": "ship02", "problems": ["could not be read: RuntimeError: disk on fire"]}]


def test_two_stacks_naming_one_node_s_file_are_both_reported_broken(
    tmp_path: Path, arm: ArmServer, arm_env: dict[str, str]
) -> None:
    fleet_arm_state(arm, datetime.now(UTC))
    project = make_project(tmp_path, arm, ["ship01", "ship02"])
    for stack in ("ship01", "ship02"):
        stack_file = project / f"Pulumi.{stack}.yaml"
        document = yaml.safe_load(stack_file.read_text())
        document["config"]["edge-registry:nodes"] = [{"host": "10.9.0.1", "role": "server", "hostKey": HOST_KEY}]
        document["config"]["edge-registry:sshAgent"] = True
        stack_file.write_text(yaml.safe_dump(document))
    code, out, _err = run("--project-dir", str(project), "--json")
    report = json.loads(out)
    assert code == 1 and report["sites"] == []
    for invalid in report["invalidStacks"]:
        assert invalid["problems"] == [
            next(p for p in invalid["problems"] if p.startswith("node 10.9.0.1 (port 22): /etc/rancher/k3s/registries.yaml "
                                                                  "is named by stacks ship01, ship02"))
        ]
