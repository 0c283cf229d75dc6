"""Rotation that never cuts off a site, against the local ARM server (tests/arm_server.py).

Each test drives a site's two tokens run by run, the way ``pulumi up`` and ``pulumi preview``
call the providers: facts read from ARM at program time by the real reader
(components/azure/sync_status.py), then check → diff → update of each TokenPassword, then its consumers
(which a test can make fail), then each SlotRetirement (which depends on the consumers). Between runs the test moves the clock and
the connected registry's ``lastSyncTime``, following the stories of issue 9: never synced, synced
before the rotation, synced after it, offline across the whole expiry window.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from components.azure import rotation

from components.azure import token_password
from components.azure.arm import ArmClient
from components.azure.rotation import Phase, RotationState, SlotFacts, Step
from components.azure.slot_retirement import SlotRetirementProvider
from components.azure.sync_status import ArmSyncStatusReader, SiteCoordinates, SiteSyncStatus
from components.azure.token_password import TokenPasswordProvider
from tests.arm_server import ArmServer, FakeCredential

SUB = "00000000-0000-0000-0000-000000000000"
RG = "myResourceGroup"
REGISTRY = "myRegistry"
REGISTRY_PATH = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.ContainerRegistry/registries/{REGISTRY}"
CR = "myconnectedregistry"
TOKENS = {"sync": "myconnectedregistry-sync-token", "client": "myconnectedregistry-client-token"}
T0 = datetime(2026, 1, 10, 12, 0, 0, tzinfo=UTC)
EXPIRY_DAYS, ROTATE_BEFORE_DAYS = 30.0, 7.0
ROTATION = T0 + timedelta(days=24)  # inside the window (it opens at day 23)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class SiteRuns:
    """A site's two TokenPasswords, run by run, with facts read from the ARM server."""

    def __init__(self, arm: ArmServer, client_factory: Callable[[str, str | None], ArmClient], monkeypatch: Any):
        self.arm = arm
        self.provider = TokenPasswordProvider(client_factory)
        self.retirement = SlotRetirementProvider(client_factory)
        self.retirements: dict[str, dict[str, Any]] = {}
        self.consumers_fail = False
        self.cloud_only = False
        """A cloud-only run: TokenPassword gets rotateBeforeDays 0, as components/azure/connected_registry.py passes it."""
        self.reader = ArmSyncStatusReader(client_factory)
        self.states: dict[str, dict[str, Any]] = {}
        self.time = T0
        monkeypatch.setattr(token_password, "now", lambda: self.time)
        monkeypatch.setattr(rotation, "now", lambda: self.time)
        for token in TOKENS.values():
            arm.state.add_token(token)
        arm.state.add_connected_registry(CR, last_sync=None)
        self.at(T0)

    def at(self, moment: datetime) -> None:
        self.time = moment
        self.arm.state.clock = iso(moment)  # ARM stamps creationTime with the same clock

    def synced(self, moment: datetime) -> None:
        self.arm.state.last_sync[CR] = iso(moment)
        self.arm.state.connection_state[CR] = "Online"

    def status(self) -> SiteSyncStatus:
        return self.reader(SiteCoordinates(SUB, RG, REGISTRY, CR, tuple(TOKENS.values()), self.arm.base_url))

    def inputs(self, role: str, status: SiteSyncStatus) -> dict[str, Any]:
        token = TOKENS[role]
        facts = rotation.slot_facts(status.tokens.get(token), status.last_sync_time, known=status.known)
        return {
            "subscriptionId": SUB,
            "resourceGroup": RG,
            "registryName": REGISTRY,
            "tokenName": token,
            "tokenId": f"{REGISTRY_PATH}/tokens/{token}",
            "expiryDays": EXPIRY_DAYS,
            "rotateBeforeDays": 0.0 if self.cloud_only else ROTATE_BEFORE_DAYS,
            "armEndpoint": self.arm.base_url,
            "role": role,
            "presentSlots": sorted(facts.present) if facts.present is not None else None,
            "syncedSlots": sorted(facts.synced) if facts.synced is not None else None,
        }

    def retirement_inputs(self, role: str, status: SiteSyncStatus) -> dict[str, Any]:
        """As components/azure/connected_registry.py declares SlotRetirement."""
        facts = rotation.slot_facts(status.tokens.get(TOKENS[role]), status.last_sync_time, known=status.known)
        pending = facts.present is not None and len(facts.present) > 1
        password = self.states[role]
        return {
            "subscriptionId": SUB,
            "resourceGroup": RG,
            "registryName": REGISTRY,
            "tokenName": TOKENS[role],
            "armEndpoint": self.arm.base_url,
            "role": role,
            "activeSlot": password["slot"],
            "activeExpiry": password["expiry"],
            "nextSlot": password["nextSlot"],
            "lastSyncTime": rotation.format_time(status.last_sync_time) if pending and status.last_sync_time else None,
            "presentSlots": sorted(facts.present) if facts.present is not None else None,
        }

    def up(self) -> dict[str, bool]:
        """One ``pulumi up``: which resources changed."""
        status = self.status()
        changed = self.up_passwords(status)
        if self.consumers_fail:
            return changed  # the engine stops before the dependents of a failed update
        for role in TOKENS:
            news = self.retirement_inputs(role, status)
            assert self.retirement.check({}, news).failures == []
            key = f"{role}-retirement"
            if role not in self.retirements:
                self.retirements[role] = self.retirement.create(news).outs
                changed[key] = True
                continue
            diff = self.retirement.diff("id", self.retirements[role], news)
            changed[key] = bool(diff.changes)
            if diff.changes:
                self.retirements[role] = self.retirement.update("id", self.retirements[role], news).outs
        return changed

    def phase(self, role: str) -> str:
        return str(self.retirements[role]["phase"])

    def up_passwords(self, status: SiteSyncStatus) -> dict[str, bool]:
        changed = {}
        for role in TOKENS:
            news = self.inputs(role, status)
            assert self.provider.check(self.states.get(role, {}), news).failures == []
            if role not in self.states:
                outs = self.provider.create(news).outs
                assert outs is not None
                self.states[role] = outs
                changed[role] = True
                continue
            diff = self.provider.diff("id", self.states[role], news)
            assert not diff.replaces
            changed[role] = bool(diff.changes)
            if diff.changes:
                outs = self.provider.update("id", self.states[role], news).outs
                assert outs is not None
                self.states[role] = outs
        return changed

    def preview(self) -> dict[str, bool]:
        """One ``pulumi preview``: which resources would change (the providers only diff)."""
        status = self.status()
        changes = {r: bool(self.provider.diff("id", self.states[r], self.inputs(r, status)).changes) for r in TOKENS}
        for role in TOKENS:
            diff = self.retirement.diff("id", self.retirements[role], self.retirement_inputs(role, status))
            changes[f"{role}-retirement"] = bool(diff.changes)
        return changes

    def token_statuses(self, status: SiteSyncStatus) -> list[rotation.TokenStatus]:
        return [
            rotation.TokenStatus(f"site-azure-{role}-token-password", token, role, status.tokens.get(token))
            for role, token in TOKENS.items()
        ]

    def warnings(self, rotate_before_days: float = ROTATE_BEFORE_DAYS) -> list[str]:
        """What the program warns at program time, from ARM alone (components/azure/connected_registry.py)."""
        status = self.status()
        return rotation.stuck_rotation_warnings(
            self.token_statuses(status), status.last_sync_time, status.connection_state, self.time,
            rotate_before_days, activation_status=status.activation_status, cloud_only=self.cloud_only,
        )

    def blocked(self) -> list[str]:
        """What the program warns from the providers' previous outputs and ARM, as the apply in
        components/azure/connected_registry.py does: TokenPassword's slot/expiry/nextSlot, SlotRetirement's
        activeSlot/retiringSlot."""
        status = self.status()
        site = rotation.SiteView(status.last_sync_time, status.connection_state, status.activation_status)
        messages = []
        for token in self.token_statuses(status):
            password, retirement = self.states[token.role], self.retirements[token.role]
            state = RotationState(token.role, password["slot"] or None, password["expiry"] or None,
                                  password["nextSlot"] or None)
            kept = [s for s in (retirement["activeSlot"], retirement["retiringSlot"]) if s]
            messages += rotation.blocked_rotation_warnings(
                token, state, kept, site, self.time, ROTATE_BEFORE_DAYS, REGISTRY
            )
        return messages

    def slots(self, role: str) -> set[str]:
        """The slots the token holds in ARM."""
        return set(self.arm.state.tokens[TOKENS[role]])

    def consumer_value(self, role: str) -> str:
        """What consumers of this token get: the connection string's / pull secrets' password."""
        return str(self.states[role]["value"])


NOTHING = {"sync": False, "client": False, "sync-retirement": False, "client-retirement": False}


@pytest.fixture
def site(arm: ArmServer, client_factory: Callable[[str, str | None], ArmClient], monkeypatch: Any) -> SiteRuns:
    runs = SiteRuns(arm, client_factory, monkeypatch)
    assert all(runs.up().values())
    assert runs.phase("sync") == runs.phase("client") == Phase.SETTLED
    return runs


def start_rotation(site: SiteRuns) -> dict[str, str]:
    """Open the rotation window and run ``up`` once; returns the passwords in use before."""
    before = {role: site.consumer_value(role) for role in TOKENS}
    site.at(ROTATION)
    assert all(site.up().values())
    return before


# --- the stories -----------------------------------------------------------------------------------


@pytest.mark.parametrize("last_sync", [None, T0 + timedelta(hours=1)], ids=["never-synced", "synced-before-rotation"])
def test_a_site_that_has_not_synced_since_the_rotation_keeps_working(
    site: SiteRuns, last_sync: datetime | None
) -> None:
    if last_sync:
        site.synced(last_sync)
    before = start_rotation(site)

    # Sync token: the connection string switched at once; the old slot is kept.
    assert site.phase("sync") == Phase.SWITCHED_AWAITING_SYNC
    assert site.retirements["sync"]["retiringSlot"] == "password1"
    assert site.consumer_value("sync") != before["sync"]
    assert site.slots("sync") == {"password1", "password2"}
    # Client token: the new password exists, but pull secrets keep the one the site knows.
    assert site.phase("client") == Phase.ISSUED_AWAITING_SYNC
    assert site.consumer_value("client") == before["client"]
    assert site.states["client"]["nextSlot"] == "password2"
    assert site.slots("client") == {"password1", "password2"}

    # Later runs, still no sync: nothing moves, nothing is removed.
    for days in (1, 3, 5):
        site.at(ROTATION + timedelta(days=days))
        assert site.preview() == NOTHING
        assert site.up() == NOTHING
    assert site.slots("sync") == site.slots("client") == {"password1", "password2"}
    assert site.arm.requests_to("PATCH", "-token") == []

    # Preview warns about both stuck rotations by name, with the expiry and the last sync.
    warnings = site.warnings()
    assert len(warnings) == 2
    assert "site-azure-sync-token-password" in warnings[0] and TOKENS["sync"] in warnings[0]
    assert "site-azure-client-token-password" in warnings[1] and "Pulls with the client password fail" in warnings[1]
    assert all("LOCK-OUT AHEAD in 1 days" in w and iso(T0 + timedelta(days=30)) in w for w in warnings)
    assert all(f"last sync: {iso(last_sync) if last_sync else 'never'}" in w for w in warnings)


def test_a_site_that_synced_after_the_rotation_completes_it_one_safe_step_per_run(site: SiteRuns) -> None:
    before = start_rotation(site)
    new_sync = site.consumer_value("sync")
    new_client = site.states["client"]["nextValue"]
    site.synced(ROTATION + timedelta(hours=1))

    # Run 2: the sync token's old slot goes; the client consumers switch, its old slot stays.
    site.at(ROTATION + timedelta(hours=2))
    # (In this harness a preview diffs the retirement against the password's current state; the
    # engine would see the client password's outputs as unknown and list it as well.)
    assert site.preview() == {"sync": False, "client": True, "sync-retirement": True, "client-retirement": False}
    site.up()
    assert site.phase("sync") == Phase.SETTLED
    assert site.slots("sync") == {"password2"}
    assert site.consumer_value("sync") == new_sync
    assert site.phase("client") == Phase.RETIRING
    assert site.consumer_value("client") == new_client != before["client"]
    assert site.slots("client") == {"password1", "password2"}

    # Run 3: after the pull secrets were updated, the client's old slot goes.
    site.at(ROTATION + timedelta(hours=3))
    assert site.up() == {**NOTHING, "client-retirement": True}
    assert site.phase("client") == Phase.SETTLED
    assert site.slots("client") == {"password2"}
    (patch,) = site.arm.requests_to("PATCH", f"/tokens/{TOKENS['client']}")
    assert patch.body == {"properties": {"credentials": {"passwords": [{"name": "password2"}]}}}

    # Converged: previews stay empty while the site keeps syncing every hour.
    for hours in (4, 5, 6):
        site.synced(ROTATION + timedelta(hours=hours))
        site.at(ROTATION + timedelta(hours=hours, minutes=30))
        assert site.preview() == NOTHING
    assert site.warnings() == []

    # The next rotation uses the slot that was freed.
    site.at(ROTATION + timedelta(days=24))
    site.up()
    assert site.states["sync"]["slot"] == "password1"
    assert site.states["client"]["nextSlot"] == "password1"


def test_a_site_offline_across_the_whole_expiry_window_gets_loud_warnings_and_no_lock_out_by_us(
    site: SiteRuns,
) -> None:
    site.synced(T0 + timedelta(hours=1))
    before = start_rotation(site)

    site.at(T0 + timedelta(days=25))
    assert [w.split(":")[0] for w in site.warnings()] == ["LOCK-OUT AHEAD in 5 days"] * 2
    site.at(T0 + timedelta(days=29, hours=23))
    assert site.up() == NOTHING
    assert all(w.startswith("LOCK-OUT AHEAD in 0 days") for w in site.warnings())

    # Past the expiry: the old client password is useless, so its consumers may switch now.
    site.at(T0 + timedelta(days=31))
    assert [w.split(":")[0] for w in site.warnings()] == ["EXPIRED"] * 2
    assert site.up() == {**NOTHING, "client": True, "client-retirement": True}
    assert site.consumer_value("client") != before["client"]
    assert site.phase("client") == Phase.RETIRING
    # The sync token's old slot stays until the site syncs: it may still be the one it uses.
    site.at(T0 + timedelta(days=40))
    site.up()
    assert site.slots("sync") == {"password1", "password2"}
    assert site.phase("sync") == Phase.SWITCHED_AWAITING_SYNC
    assert site.slots("client") == {"password2"}

    # Back online: the sync rotation completes.
    site.synced(T0 + timedelta(days=41))
    site.at(T0 + timedelta(days=41, hours=1))
    site.up()
    assert site.slots("sync") == {"password2"}
    assert site.phase("sync") == Phase.SETTLED


def test_the_old_sync_slot_stays_until_a_sync_after_the_connection_string_really_switched(site: SiteRuns) -> None:
    """The Helm upgrade carrying the new connection string fails (or is left out of the run) while
    the site keeps syncing with the old one: the old slot must outlive every such sync."""
    site.synced(T0 + timedelta(hours=1))
    site.consumers_fail = True
    start_rotation(site)
    for hours in (1, 3, 5):
        site.synced(ROTATION + timedelta(hours=hours))  # with the old connection string
        site.at(ROTATION + timedelta(hours=hours, minutes=30))
        site.up()
        assert site.slots("sync") == {"password1", "password2"}

    site.consumers_fail = False
    site.at(ROTATION + timedelta(hours=6))
    site.up()  # the upgrade takes: the switch is recorded now
    assert site.retirements["sync"]["switchedAt"] == iso(ROTATION + timedelta(hours=6))
    assert site.slots("sync") == {"password1", "password2"}
    site.at(ROTATION + timedelta(hours=7))
    # The last sync (5h) is older than the switch (6h): the sync slot stays. (The client's old slot,
    # whose consumers switched after that sync, goes.)
    assert site.up() == {**NOTHING, "client-retirement": True}
    assert site.slots("sync") == {"password1", "password2"}

    site.synced(ROTATION + timedelta(hours=8))
    site.at(ROTATION + timedelta(hours=9))
    site.up()
    assert site.slots("sync") == {"password2"}


# --- stuck rotations warn before the expiry, by name -----------------------------------------------


def test_a_converged_site_that_syncs_gets_no_warning_even_when_a_rotation_is_due(site: SiteRuns) -> None:
    site.synced(T0 + timedelta(hours=1))
    assert site.warnings() == [] and site.blocked() == []
    site.synced(ROTATION - timedelta(hours=1))
    site.at(ROTATION)  # inside the window: the next `up` rotates, the site syncs it
    assert site.warnings() == [] and site.blocked() == []
    site.up()
    site.synced(ROTATION + timedelta(hours=1))
    site.at(ROTATION + timedelta(hours=2))
    site.up()
    site.at(ROTATION + timedelta(hours=3))
    site.up()
    assert site.phase("sync") == site.phase("client") == Phase.SETTLED
    site.synced(ROTATION + timedelta(hours=4))
    site.at(ROTATION + timedelta(hours=5))
    assert site.preview() == NOTHING
    assert site.warnings() == [] and site.blocked() == []


def test_a_cloud_only_run_inside_the_window_warns_that_it_holds_the_rotation(site: SiteRuns) -> None:
    site.synced(T0 + timedelta(hours=1))
    site.cloud_only = True
    site.at(T0 + timedelta(days=12))

    # Far from the expiry (a 20-day window here): named, dated, not yet a lock-out.
    far = site.warnings(rotate_before_days=20)
    assert len(far) == 2
    expiry = iso(T0 + timedelta(days=30))
    for role, message in zip(TOKENS, far, strict=True):
        assert message.startswith(f"rotation held by cloudOnly: site-azure-{role}-token-password ")
        assert f"(token {TOKENS[role]}, password1) expires {expiry}, in 18 days;" in message
        assert "the next run without cloudOnly does" in message and "LOCK-OUT" not in message

    # Close to it: loud. The run itself starts no rotation and touches nothing.
    site.at(T0 + timedelta(days=25))
    close = site.warnings()
    assert [m.split(":")[0] for m in close] == ["LOCK-OUT AHEAD in 5 days"] * 2
    assert all("rotation held by cloudOnly" in m and expiry in m and "activation: Active" in m for m in close)
    assert "Pulls with the client password fail" in close[1]
    before, issued = {role: site.consumer_value(role) for role in TOKENS}, len(site.arm.state.issued_values)
    site.up()  # records rotateBeforeDays 0 in place, issues nothing
    assert len(site.arm.state.issued_values) == issued
    assert site.slots("sync") == site.slots("client") == {"password1"}
    assert {role: site.consumer_value(role) for role in TOKENS} == before
    assert site.phase("sync") == site.phase("client") == Phase.SETTLED

    # The next normal run starts both rotations; the hold warnings go.
    site.cloud_only = False
    site.up()
    assert site.phase("sync") == Phase.SWITCHED_AWAITING_SYNC and site.phase("client") == Phase.ISSUED_AWAITING_SYNC
    assert not any("cloudOnly" in m for m in site.warnings())


@pytest.mark.parametrize(
    ("connection_state", "activation", "last_sync", "reason"),
    [
        ("Offline", "Active", T0 + timedelta(hours=1), "connection state Offline"),
        ("Unhealthy", "Active", T0 + timedelta(hours=1), "connection state Unhealthy"),
        ("Online", "Inactive", T0 + timedelta(hours=1), "activation status Inactive"),
        ("Online", "Active", None, "it never synced"),
        # Reports as Online, but its last sync is older than the days the password has left.
        ("Online", "Active", T0 + timedelta(days=10), "its last sync was 14 days ago, longer than the 6 days left"),
    ],
    ids=["offline", "unhealthy", "not-activated", "never-synced", "silent-too-long"],
)
def test_a_site_that_does_not_sync_gets_a_lock_out_warning_before_its_password_expires(
    site: SiteRuns, connection_state: str, activation: str, last_sync: datetime | None, reason: str
) -> None:
    site.arm.state.last_sync[CR] = iso(last_sync) if last_sync else None
    site.arm.state.connection_state[CR] = connection_state
    site.arm.state.connected_registries[CR] = activation
    site.at(T0 + timedelta(days=20))
    assert site.warnings() == []  # outside the window: nothing to say yet

    site.at(ROTATION)
    warnings = site.warnings()
    assert len(warnings) == 2
    for role, message in zip(TOKENS, warnings, strict=True):
        assert message.startswith(f"LOCK-OUT AHEAD in 6 days: site-azure-{role}-token-password (token {TOKENS[role]}, password1)")
        assert f"expires {iso(T0 + timedelta(days=30))}" in message
        assert f"the site is not syncing ({reason}): a rotation cannot take effect on the site until it syncs" in message
        assert f"connection state: {connection_state}, activation: {activation}" in message
        assert "Daily fleet check" in message
    assert "Pulls with the client password fail" in warnings[1]


def test_an_offline_site_never_passes_an_expiry_silently(site: SiteRuns) -> None:
    """Offline from before the window to after the expiry, with weekly runs: every run warns."""
    site.synced(T0 + timedelta(hours=1))
    site.arm.state.connection_state[CR] = "Offline"
    for day in (23, 25, 27, 29, 31, 33):
        site.at(T0 + timedelta(days=day, hours=1))
        warnings = site.warnings()
        assert {role for role in TOKENS if any(f"site-azure-{role}-token-password" in w for w in warnings)} == set(TOKENS)
        assert all(w.startswith(("LOCK-OUT AHEAD", "EXPIRED")) for w in warnings), warnings
        if day in (23, 29):
            site.up()  # the weekly Deploy: the rotation starts, it cannot finish
    assert all(w.startswith("EXPIRED") for w in site.warnings())


def test_a_slot_edge_registry_did_not_issue_blocks_the_rotation_and_is_named(site: SiteRuns) -> None:
    # Someone generated password2 by hand (az acr token credential generate --password2).
    site.at(T0 + timedelta(days=2))
    site.arm.state.tokens[TOKENS["client"]]["password2"] = {
        "name": "password2", "creationTime": iso(T0 + timedelta(days=2)), "expiry": "2027-01-01T00:00:00Z"}
    site.synced(ROTATION - timedelta(hours=1))
    site.at(ROTATION)
    assert site.warnings() == []  # ARM alone sees a token with two slots the site synced

    assert site.preview()["client"] is False  # the sync token rotates, the client token cannot
    (blocked,) = site.blocked()
    assert blocked.startswith("LOCK-OUT AHEAD in 6 days: rotation BLOCKED by password2: site-azure-client-token-password")
    assert f"(token {TOKENS['client']}, password1) expires {iso(T0 + timedelta(days=30))}" in blocked
    assert f"(created {iso(T0 + timedelta(days=2))})" in blocked
    assert f"`az acr token credential delete --name {TOKENS['client']} --registry myregistry --password2`" in blocked
    assert "activation: Active" in blocked
    site.up()
    assert site.slots("client") == {"password1", "password2"} and site.phase("client") == Phase.SETTLED
    assert len(site.blocked()) == 1

    # Once it is removed, the next run rotates.
    del site.arm.state.tokens[TOKENS["client"]]["password2"]
    site.at(ROTATION + timedelta(hours=1))
    site.up()
    assert site.phase("client") == Phase.ISSUED_AWAITING_SYNC and site.blocked() == []


def test_a_slot_the_consumers_may_still_use_is_never_called_foreign(site: SiteRuns) -> None:
    """The Helm upgrade never took: password1 is still the connection string's. When password2's
    own window opens, password1 blocks the next rotation, but it is edge-registry's: no advice to
    delete it, the lock-out warnings say what is wrong."""
    site.synced(T0 + timedelta(hours=1))
    site.consumers_fail = True
    start_rotation(site)
    site.at(ROTATION + timedelta(days=24))  # password2 inside its window now
    assert site.retirements["sync"]["activeSlot"] == "password1"
    assert site.blocked() == []
    assert any("site-azure-sync-token-password" in w and "password2" in w for w in site.warnings())


def test_the_program_names_a_blocked_and_a_held_rotation_in_its_preview(
    arm: ArmServer, client_factory: Callable[[str, str | None], ArmClient], monkeypatch: Any
) -> None:
    """The whole dev stack under the SDK's mocks, its sync status read from the ARM server and its
    dynamic resources run by their real providers (tests/test_rotation_site.py): the blocked
    warning comes from an apply on the providers' previous outputs, known in a preview."""
    from components.preview.fakes import CloudFakes
    from components.preview.render import render_stack
    from tests.fixture_stacks import STACK_DIR
    from tests.test_rotation_site import CLIENT_TOKEN, Fleet

    fleet = Fleet(arm, client_factory, monkeypatch)

    def run(preview: bool, **overrides: Any) -> list[str]:
        fleet.engine.preview = preview
        return render_stack(
            stack="dev", stack_dir=STACK_DIR, preview=preview,
            config_overrides={"armEndpoint": arm.base_url, "passwordExpiryDays": 30,
                              "passwordRotateBeforeDays": 7, **overrides},
            fakes=CloudFakes(sync_status=fleet.reader, dynamic_state=fleet.engine),
        ).warnings

    assert not [w for w in run(False) if "rotation" in w]
    fleet.synced(ROTATION - timedelta(hours=1))
    fleet.at(ROTATION)
    assert not [w for w in run(True) if "rotation" in w]  # due, and the site syncs: the next `up` rotates

    held = [w for w in run(True, cloudOnly=True) if "rotation held by cloudOnly" in w]
    assert sorted(w.split(" (token")[0] for w in held) == [
        "LOCK-OUT AHEAD in 6 days: rotation held by cloudOnly: dev-azure-client-token-password",
        "LOCK-OUT AHEAD in 6 days: rotation held by cloudOnly: dev-azure-sync-token-password",
    ]

    arm.state.tokens[CLIENT_TOKEN]["password2"] = {
        "name": "password2", "creationTime": iso(T0 + timedelta(days=2)), "expiry": "2027-01-01T00:00:00Z"}
    (blocked,) = [w for w in run(True) if "BLOCKED" in w]
    assert "rotation BLOCKED by password2: dev-azure-client-token-password" in blocked
    assert f"`az acr token credential delete --name {CLIENT_TOKEN} --registry contosoedge --password2`" in blocked
    assert fleet.password("client-token-password") not in blocked


# --- token safety: a slot that disappeared ----------------------------------------------------------


@pytest.mark.parametrize("via_refresh", [True, False], ids=["refresh", "next-up"])
def test_a_slot_wiped_by_a_put_without_credentials_is_reissued_through_the_safe_path(
    site: SiteRuns, via_refresh: bool
) -> None:
    site.synced(T0 + timedelta(hours=1))
    stale = {role: site.consumer_value(role) for role in TOKENS}
    for token in TOKENS.values():
        site.arm.state.tokens[token].clear()  # what a PUT of the token without `credentials` does

    if via_refresh:
        for role in TOKENS:
            refreshed = site.provider.read("id", site.states[role]).outs
            assert refreshed["missing"] == ["password1"]
            site.states[role] = refreshed
    site.at(T0 + timedelta(days=2))
    assert site.preview() == {**NOTHING, "sync": True, "client": True}
    site.up()

    # Sync: a new password at once (the old one no longer works against Azure).
    assert site.consumer_value("sync") != stale["sync"]
    assert site.phase("sync") == Phase.SETTLED
    assert site.slots("sync") == {"password1"}
    # Client: same path as a rotation: the site still accepts the old one until it syncs.
    assert site.consumer_value("client") == stale["client"]
    assert site.phase("client") == Phase.ISSUED_AWAITING_SYNC
    assert site.states["client"]["missing"] == []
    assert site.preview() == NOTHING

    site.synced(T0 + timedelta(days=2, hours=1))
    site.at(T0 + timedelta(days=2, hours=2))
    site.up()
    assert site.consumer_value("client") == site.arm.state.issued_values[-1]
    assert site.phase("client") == Phase.SETTLED
    assert site.slots("client") == {"password1"}


def test_a_state_from_before_rotation_phases_is_recorded_once_without_touching_the_password(
    site: SiteRuns,
) -> None:
    # What TokenPassword stored before roles and facts existed (inputs + slot/value/expiry/username).
    legacy_keys = (
        "subscriptionId", "resourceGroup", "registryName", "tokenName", "tokenId", "expiryDays",
        "rotateBeforeDays", "armEndpoint", "slot", "value", "expiry", "username",
    )
    site.synced(T0 + timedelta(hours=1))
    site.at(T0 + timedelta(days=1))
    status = site.status()
    requests_before = len(site.arm.requests)
    for role in TOKENS:
        legacy = {k: site.states[role][k] for k in legacy_keys}
        news = site.inputs(role, status)

        diff = site.provider.diff("id", legacy, news)
        updated = site.provider.update("id", legacy, news).outs

        assert diff.changes and not diff.replaces  # one in-place update records the role
        assert {k: updated[k] for k in ("slot", "value", "expiry")} == {k: legacy[k] for k in ("slot", "value", "expiry")}
        assert (updated["role"], updated["nextSlot"], updated["missing"]) == (role, "", [])
        assert not site.provider.diff("id", updated, news).changes
    # No ARM call: the migration only records the role.
    assert len(site.arm.requests) == requests_before


def test_unknown_facts_never_confirm_a_step(site: SiteRuns) -> None:
    start_rotation(site)
    site.synced(ROTATION + timedelta(hours=1))
    state = token_password.rotation_state(site.states["client"], {})
    unknown = SlotFacts(present=None, synced=None)

    assert rotation.next_step(state, unknown, ROTATION + timedelta(hours=2), ROTATE_BEFORE_DAYS) is None


# --- the reader ---------------------------------------------------------------------------------------


def test_the_reader_returns_the_connected_registry_status_and_slots(
    arm: ArmServer, client_factory: Callable[[str, str | None], ArmClient]
) -> None:
    arm.state.add_connected_registry(CR, last_sync="2026-01-02T03:04:05Z", connection_state="Online")
    arm.state.add_token(TOKENS["sync"], "password2")

    status = ArmSyncStatusReader(client_factory)(
        SiteCoordinates(SUB, RG, REGISTRY, CR, tuple(TOKENS.values()), arm.base_url)
    )

    assert status.known and status.exists
    assert status.last_sync_time == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert (status.connection_state, status.activation_status) == ("Online", "Active")
    assert [s.name for s in status.tokens[TOKENS["sync"]] or []] == ["password2"]
    assert status.tokens[TOKENS["client"]] is None  # no such token yet
    assert [r.path for r in arm.requests if r.method == "GET"][0] == f"{REGISTRY_PATH}/connectedRegistries/{CR}"


def test_the_reader_reports_a_site_not_deployed_yet_and_an_unreadable_arm(
    arm: ArmServer, client_factory: Callable[[str, str | None], ArmClient]
) -> None:
    where = SiteCoordinates(SUB, RG, REGISTRY, CR, tuple(TOKENS.values()), arm.base_url)
    fresh = ArmSyncStatusReader(client_factory)(where)
    assert (fresh.known, fresh.exists, fresh.last_sync_time) == (True, False, None)

    class Rejected(FakeCredential):
        def get_token(self, *scopes: str, **kwargs: Any) -> Any:
            return type(super().get_token(*scopes))("wrong", 0)

    def rejected(subscription_id: str, endpoint: str | None) -> ArmClient:
        return ArmClient(subscription_id, arm_endpoint=endpoint, credential=Rejected(),
                         connection_verify=arm.ca_pem, retry_total=0)

    failed = ArmSyncStatusReader(rejected)(where)
    assert not failed.known
    assert "401" in str(failed.error) or "Unauthorized" in str(failed.error)
    assert rotation.slot_facts(None, None, known=failed.known) == SlotFacts(None, None)


# --- the rules, one property each ----------------------------------------------------------------------


def _state(role: str, **kwargs: Any) -> RotationState:
    return RotationState(role=role, active_slot="password1", active_expiry=iso(T0 + timedelta(days=30)), **kwargs)


FACTS_BOTH = SlotFacts(frozenset({"password1", "password2"}), frozenset({"password1"}))
FACTS_BOTH_SYNCED = SlotFacts(frozenset({"password1", "password2"}), frozenset({"password1", "password2"}))


@pytest.mark.parametrize(
    ("state", "facts", "at", "step"),
    [
        (_state("sync"), SlotFacts(frozenset({"password1"}), frozenset()), T0, None),
        (_state("sync"), SlotFacts(frozenset({"password1"}), frozenset()), ROTATION, Step.ISSUE),
        (_state("sync"), FACTS_BOTH_SYNCED, ROTATION, None),
        (_state("client", next_slot="password2"), FACTS_BOTH, ROTATION, None),
        (_state("client", next_slot="password2"), FACTS_BOTH_SYNCED, ROTATION, Step.SWITCH),
        (_state("client", next_slot="password2"), FACTS_BOTH, T0 + timedelta(days=31), Step.SWITCH),
        (_state("client"), SlotFacts(frozenset(), frozenset()), T0, Step.ISSUE),
        (_state("client", missing=("password1",)), SlotFacts(None, None), T0, Step.ISSUE),
    ],
    ids=[
        "sync-before-window", "sync-in-window", "sync-old-slot-not-retired-yet",
        "client-issued-not-synced", "client-issued-synced", "client-old-expired",
        "client-slot-vanished", "client-refresh-found-it-missing",
    ],
)
def test_next_step(state: RotationState, facts: SlotFacts, at: datetime, step: Step | None) -> None:
    assert rotation.next_step(state, facts, at, ROTATE_BEFORE_DAYS) == step


@pytest.mark.parametrize(
    ("role", "switched_at", "last_sync", "ready"),
    [
        ("sync", "2026-01-10T12:00:00Z", None, False),
        ("sync", "2026-01-10T12:00:00Z", "2026-01-10T11:00:00Z", False),
        ("sync", "2026-01-10T12:00:00Z", "2026-01-10T12:00:01Z", True),
        ("client", "2026-01-10T12:00:00Z", None, True),
    ],
)
def test_retire_ready(role: str, switched_at: str, last_sync: str | None, ready: bool) -> None:
    assert rotation.retire_ready(role, switched_at, last_sync) is ready
