"""The offline budget: the pure computation (components/fleet/budget.py), what the stack file
contributes (components/fleet/stacks.py), and the budget column of `fleet status` as a user runs it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from components import tls
from components.azure.rotation import SlotStatus
from components.fleet.budget import Item, renewal, site_budget
from components.fleet.model import (
    ObservedConnectedRegistry,
    RegistryRef,
    SiteDeclaration,
    TlsFacts,
    TokenPasswords,
)
from components.fleet.stacks import read_declaration

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
REF = RegistryRef("https://management.azure.com", "sub", "rg-edge", "contosoedge")
REGISTRY_ID = "/subscriptions/sub/resourceGroups/rg-edge/providers/Microsoft.ContainerRegistry/registries/contosoedge"
SYNC_ID, CLIENT_ID = f"{REGISTRY_ID}/tokens/ship01-sync-token", f"{REGISTRY_ID}/tokens/ship01-client-token"
ISSUED = TlsFacts(renew_before_days=30, validity_days=365, server_source="issued", ca_source="issued")


def declared(ttl: timedelta = 60 * DAY, rotate: int = 30, tls_facts: TlsFacts | None = None,
             expiry_days: int = 90) -> SiteDeclaration:
    return SiteDeclaration("ship01", REF, "ship01", "30 * * * *", timedelta(hours=1), timedelta(days=rotate),
                           message_ttl=ttl, password_expiry_days=expiry_days, tls=tls_facts)


def observed(last_sync: datetime | None = NOW - timedelta(minutes=20), ttl: timedelta | None = None,
             state: str = "Online") -> ObservedConnectedRegistry:
    return ObservedConnectedRegistry("ship01", state, "Active", last_sync, last_sync, "30 * * * *",
                                     timedelta(hours=1), "0.9.0", (), (SYNC_ID, CLIENT_ID), ttl)


def tokens(sync: tuple[SlotStatus, ...], client: tuple[SlotStatus, ...]) -> dict[str, TokenPasswords]:
    return {SYNC_ID.lower(): TokenPasswords("ship01-sync-token", sync),
            CLIENT_ID.lower(): TokenPasswords("ship01-client-token", client)}


def slot(name: str, created_ago: timedelta | None, expires_in: timedelta | None) -> SlotStatus:
    return SlotStatus(name, NOW - created_ago if created_ago is not None else None,
                      NOW + expires_in if expires_in is not None else None)


FRESH = tokens((slot("password1", 10 * DAY, 80 * DAY),), (slot("password1", 10 * DAY, 80 * DAY),))


def test_the_sync_password_keeps_the_rotation_lead_time_and_the_client_password_counts_to_its_expiry() -> None:
    found = site_budget(declared(), observed(), tokens((slot("password1", 40 * DAY, 50 * DAY),),
                                                        (slot("password1", 60 * DAY, 30 * DAY),)), NOW)
    deadlines = {i.item: i.deadline for i in found.items}
    assert deadlines[Item.SYNC_PASSWORD] == NOW + 20 * DAY  # expires in 50, rotation due 30 before
    assert deadlines[Item.CLIENT_PASSWORD] == NOW + 30 * DAY
    assert found.limiting is not None and found.limiting.item is Item.SYNC_PASSWORD
    assert found.limiting.subject == "ship01-sync-token password1"
    assert found.days == 20
    # A longer rotation lead moves the sync password's deadline, nothing else.
    assert site_budget(declared(rotate=45), observed(), tokens((slot("password1", 40 * DAY, 50 * DAY),),
                                                               (slot("password1", 60 * DAY, 30 * DAY),)), NOW).days == 5


def test_a_client_rotation_waiting_for_a_sync_counts_the_old_password_until_the_site_synced_the_new() -> None:
    client = (slot("password1", 80 * DAY, 10 * DAY), slot("password2", timedelta(hours=1), 90 * DAY))
    stuck = site_budget(declared(), observed(last_sync=NOW - timedelta(hours=2)), tokens(FRESH[SYNC_ID.lower()].slots,
                                                                                          client), NOW)
    assert stuck.limiting is not None and stuck.limiting.item is Item.CLIENT_PASSWORD
    assert (stuck.limiting.subject, stuck.days) == ("ship01-client-token password1", 10)
    # Synced after the new one was created: the old slot is only retiring; the new one counts.
    synced = site_budget(declared(), observed(last_sync=NOW - timedelta(minutes=5)),
                         tokens(FRESH[SYNC_ID.lower()].slots, client), NOW)
    client_item = next(i for i in synced.items if i.item is Item.CLIENT_PASSWORD)
    assert client_item.subject == "ship01-client-token password2" and client_item.deadline == NOW + 90 * DAY


def test_message_ttl_counts_from_the_last_sync_and_ARMs_value_wins() -> None:
    site = observed(last_sync=NOW - 6 * DAY)
    found = site_budget(declared(ttl=30 * DAY), site, FRESH, NOW)
    assert (found.limiting.item, found.days) == (Item.MESSAGE_TTL, 24)  # type: ignore[union-attr]
    from_arm = site_budget(declared(ttl=30 * DAY), observed(last_sync=NOW - 6 * DAY, ttl=10 * DAY), FRESH, NOW)
    ttl = next(i for i in from_arm.items if i.item is Item.MESSAGE_TTL)
    assert ttl.subject == "P10D" and ttl.deadline == NOW + 4 * DAY and "ARM P10D" in ttl.basis


def test_a_site_that_never_synced_has_no_budget() -> None:
    found = site_budget(declared(), observed(last_sync=None), FRESH, NOW)
    assert found.limiting is not None and found.limiting.item is Item.LAST_SYNC
    assert found.days == 0 and found.left == timedelta(0)


def test_a_passed_deadline_is_a_budget_of_zero_not_a_negative_one() -> None:
    found = site_budget(declared(), observed(), tokens((slot("password1", 80 * DAY, 10 * DAY),),
                                                       FRESH[CLIENT_ID.lower()].slots), NOW)
    sync = next(i for i in found.items if i.item is Item.SYNC_PASSWORD)
    assert sync.deadline == NOW - 20 * DAY and sync.expires == NOW + 10 * DAY
    assert found.days == 0 and found.breaking_within(DAY) == [sync]


def test_issued_certificates_count_the_renewal_lead_from_the_last_sync_and_plain_http_has_none() -> None:
    https = site_budget(declared(tls_facts=ISSUED), observed(last_sync=NOW - 2 * DAY), FRESH, NOW)
    certificates = {i.item: i for i in https.items if i.item in (Item.SERVER_CERTIFICATE, Item.SITE_CA)}
    assert set(certificates) == {Item.SERVER_CERTIFICATE, Item.SITE_CA}
    assert all(i.deadline == NOW + 28 * DAY and i.expires is None for i in certificates.values())
    assert "certificateRenewBeforeDays (30)" in certificates[Item.SERVER_CERTIFICATE].basis
    assert (https.limiting.item, https.days) == (Item.SERVER_CERTIFICATE, 28)  # type: ignore[union-attr]
    http = site_budget(declared(tls_facts=None), observed(last_sync=NOW - 2 * DAY), FRESH, NOW)
    assert not {i.item for i in http.items} & {Item.SERVER_CERTIFICATE, Item.SITE_CA}


def test_a_brought_certificate_counts_its_own_date_and_a_secret_one_is_listed_but_not_counted() -> None:
    brought = TlsFacts(30, 365, server_source="brought-secret", ca_source="brought", ca_not_after=NOW + 5 * DAY)
    found = site_budget(declared(tls_facts=brought), observed(), FRESH, NOW)
    assert found.limiting is not None and (found.limiting.item, found.days) == (Item.SITE_CA, 5)
    server = next(i for i in found.items if i.item is Item.SERVER_CERTIFICATE)
    assert server.deadline is None and "--secret" in server.basis
    assert found.items[-1] is server  # unknown ones come last and never limit


def test_renewals_say_what_to_run_and_whether_the_site_must_be_online() -> None:
    declaration = declared(ttl=2 * DAY, tls_facts=ISSUED)
    found = site_budget(declaration, observed(last_sync=NOW - 3 * DAY), tokens(
        (slot("password1", 70 * DAY, 20 * DAY),), (slot("password1", 10 * DAY, 80 * DAY),)), NOW)
    items = {i.item: i for i in found.items}
    # The sync rotation is already due: a plain up does it; it needs the site (Helm upgrade, sync).
    due = renewal(items[Item.SYNC_PASSWORD], declaration, 10, NOW, found.last_sync)
    assert due.command == "pulumi up --stack ship01 --policy-pack policy" and due.needs_site_online
    # Not due: a forced rotation of the right resource.
    client = renewal(items[Item.CLIENT_PASSWORD], declaration, 10, NOW, found.last_sync)
    assert "--replace" in client.command and "::ship01-azure-client-token-password" in client.command
    assert client.needs_site_online and client.covers == 90 * DAY
    # messageTtl: Azure side only; it must cover the days already offline too (3 + 10 + 1).
    ttl = renewal(items[Item.MESSAGE_TTL], declaration, 10, NOW, found.last_sync)
    assert ttl.command.startswith("pulumi config set --stack ship01 edge-registry:messageTtl P14D && ")
    assert not ttl.needs_site_online
    # Issued certificate: a renewal lead as long as the departure, then an up that reaches the site.
    certificate = renewal(items[Item.SERVER_CERTIFICATE], declaration, 45, NOW, found.last_sync)
    assert "edge-registry:certificateRenewBeforeDays 46" in certificate.command and certificate.needs_site_online
    # Beyond what any rotation gives (90 days, less the 30-day lead): what to change first.
    long = renewal(items[Item.SYNC_PASSWORD], declaration, 75, NOW, found.last_sync)
    assert long.covers == 60 * DAY and "passwordExpiryDays to at least 105" in (long.beyond or "")


def write_project(tmp_path: Path, config: dict[str, object]) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "Pulumi.yaml", project / "Pulumi.yaml")
    base = yaml.safe_load((ROOT / "tests" / "fleet_fixtures" / "Pulumi.ship01.yaml").read_text())["config"]
    base["edge-registry:armEndpoint"] = "https://management.azure.com"
    (project / "Pulumi.ship01.yaml").write_text(yaml.safe_dump({"config": {**base, **config}}))
    return project


def test_the_stack_file_gives_message_ttl_password_lifetime_and_certificate_facts(tmp_path: Path) -> None:
    ca = tls.issue_ca("ship01 test CA", 200, datetime.now(UTC))
    project = write_project(tmp_path, {"edge-registry:messageTtl": "P12D", "edge-registry:passwordExpiryDays": 60,
                                       "edge-registry:certificateRenewBeforeDays": 40,
                                       "edge-registry:tlsCaCertificate": ca.certificate_pem,
                                       "edge-registry:tlsCaKey": ca.key_pem})
    declaration = read_declaration(project, "ship01", {})
    assert declaration.message_ttl == 12 * DAY and declaration.password_expiry_days == 60
    assert declaration.tls is not None
    assert (declaration.tls.renew_before_days, declaration.tls.server_source, declaration.tls.ca_source) == (
        40, "issued", "brought")
    assert declaration.tls.ca_not_after == ca.not_after.replace(microsecond=0)


def test_a_plain_http_site_has_no_certificate_facts(tmp_path: Path) -> None:
    project = write_project(tmp_path, {"edge-registry:httpEnabled": True})
    assert read_declaration(project, "ship01", {}).tls is None


def test_fleet_status_shows_each_sites_budget_and_its_limiting_item() -> None:
    """As a user runs it: the demo fleet, JSON and table."""
    command = [sys.executable, "-m", "components", "fleet", "status", "--demo", "--no-progress"]
    as_json = subprocess.run([*command, "--json"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert as_json.returncode == 1, as_json.stderr  # the demo fleet has flagged sites
    budgets = {s["stack"]: s["offlineBudget"] for s in json.loads(as_json.stdout)["sites"]}
    assert {stack: (b["days"], b["limitingItem"]) for stack, b in budgets.items()} == {
        "dev": (1, "message-ttl"),         # the example's P2D, synced 25 minutes ago
        "ship02": (44, "message-ttl"),     # P45D
        "ship03": (23, "message-ttl"),     # P30D, offline for 6 days 2 hours
        "ship04": (0, "sync-password"),    # expires in 25 days, rotation due 30 days before
        "ship05": (0, "last-sync"),        # never synced
    }
    ship04 = {i["item"]: i for i in budgets["ship04"]["items"]}
    assert ship04["client-password"]["subject"] == "ship04-client-token password1"  # the rotation waits for a sync
    assert ship04["client-password"]["secondsToDeadline"] == pytest.approx(9 * 86400, abs=120)
    table = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert "offline budget" in table.stdout
    row = next(line for line in table.stdout.splitlines() if "│ ship03 " in line)
    assert "23d (messageTtl)" in row
