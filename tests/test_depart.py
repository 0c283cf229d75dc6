"""`python -m components depart STACK --days N`: run as a user runs it, against the demo fleet and
against the suite's local ARM (tests/arm_server.py) with the fleet fixtures; plus the pure part."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from components.fleet.budget import Item
from components.fleet.depart import departure
from components.fleet.model import ObservedConnectedRegistry, RegistryRef, SiteDeclaration
from components.fleet.verdicts import site_status
from tests.fixture_stacks import example_stack
from tests.arm_server import FAKE_BEARER, ArmServer
from tests.test_fleet import fleet_arm_state, make_project

ROOT = Path(__file__).resolve().parent.parent
DAY = timedelta(days=1)


def depart(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    if "--demo" in args:
        example_stack()  # the demo is made from the example while it is one; skips otherwise
    return subprocess.run([sys.executable, "-m", "components", "depart", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env=env)


def test_a_site_with_budget_to_spare_exits_zero() -> None:
    result = depart("ship02", "--days", "40", "--demo")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("DEMO: ")
    assert "READY: ship02 can stay offline 40 day(s)" in result.stdout
    assert "offline budget 44d (messageTtl)" in result.stdout


def test_each_item_that_would_break_is_listed_with_its_renewal_and_whether_it_needs_the_site() -> None:
    result = depart("ship04", "--days", "10", "--demo")
    assert result.returncode == 1, result.stderr
    out = result.stdout
    assert "NOT READY: 2 item(s) break within 10 day(s)" in out
    sync, client = out.split("\n- ")[1:3]
    assert sync.startswith("sync password (ship04-sync-token password1): the site must be back online by")
    # The rotation is due (expires in 25 days, rotated 30 before): a plain up does it, with the site online.
    assert "    renew: pulumi up --stack ship04 --policy-pack policy\n" in sync
    assert "    needs the site online: yes: the rotation is due" in sync
    assert client.startswith("client password (ship04-client-token password1)")
    assert "--replace" in client and "ship04-azure-client-token-password" in client
    assert "needs the site online: yes" in client


def test_a_message_ttl_renewal_does_not_need_the_site_online() -> None:
    result = depart("dev", "--days", "5", "--demo")
    assert result.returncode == 1
    assert "- messageTtl (P2D):" in result.stdout
    # 5 days and the 25 minutes since the last sync, rounded up, and a day to spare.
    assert "renew: pulumi config set --stack dev edge-registry:messageTtl P7D && pulumi up --stack dev" in result.stdout
    assert "needs the site online: no:" in result.stdout
    assert depart("dev", "--days", "1", "--demo").returncode == 0


def test_the_json_form_names_the_breaking_items_and_their_renewals() -> None:
    result = depart("ship03", "--days", "30", "--demo", "--json")
    assert result.returncode == 1
    assert result.stderr.startswith("DEMO: ")  # stdout stays JSON
    answer = json.loads(result.stdout)
    assert (answer["stack"], answer["days"], answer["ready"]) == ("ship03", 30, False)
    assert answer["connectionState"] == "Offline"
    (item,) = answer["breaking"]
    assert item["item"] == "message-ttl" and item["subject"] == "P30D"
    # Offline for 6 days 2 hours already: the new TTL must cover those too.
    assert item["renewal"]["command"].startswith("pulumi config set --stack ship03 edge-registry:messageTtl P38D")
    assert item["renewal"]["needsSiteOnline"] is False
    assert answer["offlineBudget"]["days"] == 23


def test_a_departure_longer_than_any_renewal_says_what_to_change_first() -> None:
    result = depart("ship02", "--days", "95", "--demo", "--json")
    answer = json.loads(result.stdout)
    beyond = {i["item"]: i["renewal"]["beyond"] for i in answer["breaking"]}
    assert "no messageTtl covers 95 days" in beyond["message-ttl"]
    assert "passwordExpiryDays to at least 109" in beyond["sync-password"]  # 95 + passwordRotateBeforeDays 14


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("nosuchship", "--days", "3"), "no Pulumi.nosuchship.yaml in"),
        (("dev", "--days", "3"), "dev is an example stack, not a site; try it with --demo"),
        (("ship02", "--days", "0", "--demo"), "--days: '0' is not accepted: expected a whole number from 1 to 3650"),
        (("ship02", "--demo"), "--days N is required"),
        (("ship09", "--days", "3", "--demo"), "'ship09' is not a demo site; the demo sites are dev, ship02"),
    ],
)
def test_usage_errors_exit_two_and_say_what_is_wrong(args: tuple[str, ...], expected: str) -> None:
    result = depart(*args)
    assert result.returncode == 2
    assert expected in result.stderr and "Traceback" not in result.stderr


def test_help_documents_the_exit_codes() -> None:
    result = depart("--help")
    assert result.returncode == 0 and result.stdout.startswith("usage: python -m components depart")
    assert "exit codes: 0 ready for N days; 1 something breaks within N days; 2 usage error; 3" in result.stdout


# --- against the suite's ARM, with a real stack file ----------------------------------------------

@pytest.fixture
def arm(tmp_path: Path) -> Iterator[ArmServer]:
    with ArmServer(tmp_path) as server:
        fleet_arm_state(server, datetime.now(UTC))
        yield server


def arm_env(arm: ArmServer) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("ARM_SUBSCRIPTION_ID", "AZURE_SUBSCRIPTION_ID")}
    return {**env, "EDGE_REGISTRY_ARM_TOKEN": FAKE_BEARER, "REQUESTS_CA_BUNDLE": arm.ca_pem, "NO_PROXY": "127.0.0.1"}


def test_against_arm_a_client_password_expiring_inside_the_departure_fails_it(tmp_path: Path, arm: ArmServer) -> None:
    project = str(make_project(tmp_path, arm))
    # ship06's client password expires in 10 days (tests/fleet_fixtures/README.md).
    result = depart("ship06", "--days", "12", "--project-dir", project, env=arm_env(arm))
    assert result.returncode == 1, result.stderr
    assert "- client password (ship06-client-token password1)" in result.stdout
    # Only the two paged lists of its registry were read.
    assert {r.path.rsplit("/", 1)[-1] for r in arm.requests} == {"connectedRegistries", "tokens"}
    # ship01 synced 20 hours ago with the default messageTtl (P2D): one day is fine, two are not.
    assert depart("ship01", "--days", "1", "--project-dir", project, env=arm_env(arm)).returncode == 0
    two = depart("ship01", "--days", "2", "--project-dir", project, env=arm_env(arm))
    assert two.returncode == 1 and "- messageTtl (P2D)" in two.stdout


def test_against_arm_an_undeployed_or_unreadable_site_exits_three(tmp_path: Path, arm: ArmServer) -> None:
    project = str(make_project(tmp_path, arm))
    undeployed = depart("ship07", "--days", "3", "--project-dir", project, env=arm_env(arm))
    assert undeployed.returncode == 3
    assert "connected registry ship07 is not in rg-edge/contosoedge: the stack is not deployed yet" in undeployed.stderr
    unreadable = depart("ship08", "--days", "3", "--project-dir", project, env=arm_env(arm))
    assert unreadable.returncode == 3
    assert "registry rg-edge/brokenedge could not be read: HTTP 403 AuthorizationFailed" in unreadable.stderr


# --- the pure part --------------------------------------------------------------------------------

def test_departure_lists_exactly_the_items_whose_deadline_falls_inside_the_days() -> None:
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    ref = RegistryRef("https://management.azure.com", "sub", "rg", "contosoedge")
    declaration = SiteDeclaration("ship01", ref, "ship01", "30 * * * *", timedelta(hours=1), 30 * DAY,
                                  message_ttl=10 * DAY)
    seen = ObservedConnectedRegistry("ship01", "Online", "Active", now - DAY, now - DAY, "30 * * * *",
                                     timedelta(hours=1), "0.9.0")
    status = site_status(declaration, seen, {}, now)
    assert departure(declaration, status, 8, now).breaking == ()  # the TTL lapses in 9 days
    breaking = departure(declaration, status, 9, now).breaking
    assert len(breaking) == 1
    item, renew = breaking[0]
    assert item.item is Item.MESSAGE_TTL and not renew.needs_site_online
    assert departure(declaration, status, 9, now).ready is False


def test_without_any_azure_credentials_it_says_what_to_provide_and_exits_three(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    stack = (ROOT / "tests" / "fleet_fixtures" / "Pulumi.ship01.yaml").read_text()
    # A loopback ARM that is never reached: no credential gives a token first.
    (project / "Pulumi.ship01.yaml").write_text(stack.replace("__ARM_ENDPOINT__", "https://127.0.0.1:9"))
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
    result = depart("ship01", "--days", "3", "--project-dir", str(project), env=env)
    assert result.returncode == 3, result.stdout
    (line,) = result.stderr.splitlines()
    assert line.startswith("depart: ship01: no Azure credentials: looked for EDGE_REGISTRY_ARM_TOKEN")
    assert "az login" in line and "Traceback" not in result.stderr
