"""The fleet status verdicts: pure functions from declarations, ARM listings and a clock.

A site is

* **offline** / **unhealthy** when ARM's ``connectionState`` says so (``Online`` and
  ``Syncing`` are healthy);
* **not-activated** when ``activation.status`` is not ``Active`` (the on-prem install never
  started, or it was deactivated);
* **stale** when its last sync is older than N scheduled sync windows (default 3): N windows
  opened after the last sync and closed without one. The windows come from the site's own cron
  and window, as ARM reports them (the stack file's when ARM has none);
* **password-expiring** / **password-expired** when a sync or client token password the site
  may rely on is inside the site's rotation window (``passwordRotateBeforeDays``), or past:
  the newest slot of a token (the weekly ``pulumi up`` should already have rotated it), or an
  older slot while the site has not synced since the newest was created (the rotation is stuck
  waiting for that sync). An older slot the site has synced past is only retiring: a rotation
  keeps it a while by design (components/azure/rotation.py), inside the window by construction, so
  it is shown but never flags (docs/runbooks.md, Rotate credentials).

Any of these flags the site. The fleet is flagged when a site is, when a registry could not be
read, or when a stack file is invalid; that drives the exit code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum

from croniter import croniter

from components.azure import rotation
from components.fleet.budget import OfflineBudget, site_budget
from components.fleet.drift import DriftRecord
from components.fleet.model import (
    ObservedConnectedRegistry,
    RegistryListing,
    RegistryRef,
    SiteDeclaration,
    TokenPasswords,
)

#: Default N: a site is stale after this many scheduled windows without a sync.
DEFAULT_STALE_WINDOWS = 3

#: Counting stops here: a site this far behind is stale whatever the exact number.
MAX_COUNTED_WINDOWS = 10_000

HEALTHY_STATES = frozenset({"online", "syncing"})


class Verdict(str, Enum):
    """Why a site is flagged (a site with none is OK)."""

    OFFLINE = "offline"
    UNHEALTHY = "unhealthy"
    NOT_ACTIVATED = "not-activated"
    STALE = "stale"
    PASSWORD_EXPIRING = "password-expiring"
    PASSWORD_EXPIRED = "password-expired"


def windows_since(last_sync: datetime, schedule: str, window: timedelta, now: datetime) -> int:
    """How many sync windows opened after ``last_sync`` and closed by ``now`` (capped at
    :data:`MAX_COUNTED_WINDOWS`). A window still open at ``now`` does not count yet."""
    starts = croniter(schedule, last_sync)
    count = 0
    while count < MAX_COUNTED_WINDOWS:
        start: datetime = starts.get_next(datetime)
        if start + window > now:
            break
        count += 1
    return count


def stale_after(last_sync: datetime, schedule: str, window: timedelta, windows: int) -> timedelta:
    """The age of the last sync at which the site turns stale: the end of the ``windows``-th
    window that opens after it."""
    starts = croniter(schedule, last_sync)
    start = last_sync
    for _ in range(max(windows, 1)):
        start = starts.get_next(datetime)
    return start + window - last_sync


@dataclass(frozen=True)
class PasswordExpiry:
    """One password slot's expiry, as the report shows it."""

    token: str
    slot: str
    expiry: datetime
    awaiting_sync: bool = False
    """An older slot the site still relies on: the newer password waits for the site to sync."""


@dataclass(frozen=True)
class SiteStatus:
    """One deployed site: what ARM says about it and the verdicts drawn from that."""

    stack: str
    registry: RegistryRef
    connected_registry: str
    observed: ObservedConnectedRegistry
    schedule: str | None
    sync_window: timedelta | None
    age: timedelta | None  # since the last sync; None when it never synced
    windows_missed: int | None
    stale_after: timedelta | None
    password: PasswordExpiry | None  # the expiry that counts (see password_expiries)
    retiring_passwords: tuple[PasswordExpiry, ...]
    rotate_before: timedelta
    verdicts: tuple[Verdict, ...]
    budget: OfflineBudget | None = None
    """How long the site can stay offline, and what breaks first (components/fleet/budget.py)."""

    @property
    def flagged(self) -> bool:
        """Any verdict flags the site."""
        return bool(self.verdicts)

    @property
    def rotation_stuck(self) -> bool:
        """The password verdict comes from an old slot whose rotation waits for a sync."""
        password_verdict = Verdict.PASSWORD_EXPIRING in self.verdicts or Verdict.PASSWORD_EXPIRED in self.verdicts
        return password_verdict and self.password is not None and self.password.awaiting_sync


@dataclass(frozen=True)
class UnreadableRegistry:
    """A registry whose lists failed: its sites are unknown, not healthy."""

    registry: RegistryRef
    error: str
    stacks: tuple[str, ...]


@dataclass(frozen=True)
class InvalidStack:
    """A stack file the fleet status could not read, with one line per problem (naming the key)."""

    stack: str
    problems: tuple[str, ...]


@dataclass(frozen=True)
class Orphan:
    """A connected registry in Azure that no stack file declares."""

    registry: RegistryRef
    observed: ObservedConnectedRegistry


@dataclass(frozen=True)
class FleetReport:
    """The whole answer to "which sites are not getting their images?"."""

    generated_at: datetime
    stale_windows: int
    sites: tuple[SiteStatus, ...]
    orphans: tuple[Orphan, ...] = ()
    undeployed: tuple[SiteDeclaration, ...] = ()
    unreadable: tuple[UnreadableRegistry, ...] = ()
    invalid_stacks: tuple[InvalidStack, ...] = field(default=())
    demo: str | None = None
    """Set for the demo fleet (``--demo``, components/fleet/demo.py): the banner every view shows."""
    drift: dict[str, DriftRecord] | None = None
    """Each stack's last drift check (``--drift DIR``, components/fleet/drift.py); None: not asked."""

    @property
    def flagged(self) -> bool:
        """True when the run must alert: a flagged site, an unreadable registry or an invalid stack."""
        return any(s.flagged for s in self.sites) or bool(self.unreadable) or bool(self.invalid_stacks)


def password_expiries(
    observed: ObservedConnectedRegistry, tokens: dict[str, TokenPasswords]
) -> tuple[PasswordExpiry | None, tuple[PasswordExpiry, ...]]:
    """The password expiry that counts among the site's sync and client tokens, and the old
    slots that are only retiring.

    Per token, a slot counts while the site may rely on it: the newest slot (by creation time);
    an older one while the site has not synced since the newest was created (the rules'
    :func:`~components.azure.rotation.awaiting_sync_slots`: the rotation waits for that sync); a slot
    without a creation time (it cannot be shown to be the old one). An older slot the site has
    synced past is retiring: ``SlotRetirement`` removes it at a later run. The expiry that
    counts is the soonest of the slots that count; slots without an expiry never expire.
    """
    counted: list[PasswordExpiry] = []
    retiring: list[PasswordExpiry] = []
    for token_id in observed.token_ids:
        token = tokens.get(token_id.lower())
        if token is None:
            continue
        newest = rotation.newest_slot(token.slots)
        awaiting = {s.name for s in rotation.awaiting_sync_slots(token.slots, observed.last_sync)}
        for slot in token.slots:
            if slot.expiry is None:
                continue
            entry = PasswordExpiry(token.name, slot.name, rotation.aware(slot.expiry), slot.name in awaiting)
            older = slot.creation_time is not None and slot is not newest
            (retiring if older and not entry.awaiting_sync else counted).append(entry)

    def soonest(entry: PasswordExpiry) -> tuple[datetime, str, str]:
        return entry.expiry, entry.token, entry.slot

    return (min(counted, key=soonest) if counted else None), tuple(sorted(retiring, key=soonest))


def site_status(
    declaration: SiteDeclaration,
    observed: ObservedConnectedRegistry,
    tokens: dict[str, TokenPasswords],
    now: datetime,
    stale_windows: int = DEFAULT_STALE_WINDOWS,
) -> SiteStatus:
    """Judge one deployed site."""
    verdicts: list[Verdict] = []
    state = (observed.connection_state or "").lower()
    if state == "unhealthy":
        verdicts.append(Verdict.UNHEALTHY)
    elif state not in HEALTHY_STATES:
        verdicts.append(Verdict.OFFLINE)
    if (observed.activation or "").lower() != "active":
        verdicts.append(Verdict.NOT_ACTIVATED)

    # What the connected registry was told (ARM) wins over a stack file change not yet deployed.
    schedule = observed.schedule if observed.schedule and croniter.is_valid(observed.schedule) else declaration.sync_schedule
    window = observed.sync_window or declaration.sync_window
    age = missed = threshold = None
    if observed.last_sync is None:
        verdicts.append(Verdict.STALE)
    else:
        age = now - observed.last_sync
        missed = windows_since(observed.last_sync, schedule, window, now)
        threshold = stale_after(observed.last_sync, schedule, window, stale_windows)
        if missed >= stale_windows:
            verdicts.append(Verdict.STALE)

    password, retiring = password_expiries(observed, tokens)
    if password is not None:
        if password.expiry <= now:
            verdicts.append(Verdict.PASSWORD_EXPIRED)
        elif rotation.inside_rotation_window(password.expiry, declaration.rotate_before / timedelta(days=1), now):
            verdicts.append(Verdict.PASSWORD_EXPIRING)
    return SiteStatus(
        stack=declaration.stack,
        registry=declaration.registry,
        connected_registry=observed.name,
        observed=observed,
        schedule=schedule,
        sync_window=window,
        age=age,
        windows_missed=missed,
        stale_after=threshold,
        password=password,
        retiring_passwords=retiring,
        rotate_before=declaration.rotate_before,
        verdicts=tuple(verdicts),
        budget=site_budget(declaration, observed, tokens, now),
    )


def fleet_report(
    declarations: list[SiteDeclaration],
    listings: list[RegistryListing],
    now: datetime,
    stale_windows: int = DEFAULT_STALE_WINDOWS,
    invalid_stacks: tuple[InvalidStack, ...] = (),
) -> FleetReport:
    """Match every declared site to its registry's listing; what is left over on either side is
    an undeployed stack or an orphan."""
    by_registry = {listing.registry: listing for listing in listings}
    sites: list[SiteStatus] = []
    undeployed: list[SiteDeclaration] = []
    unreadable: list[UnreadableRegistry] = []
    orphans: list[Orphan] = []
    declared_in: dict[RegistryRef, list[SiteDeclaration]] = {}
    for declaration in declarations:
        declared_in.setdefault(declaration.registry, []).append(declaration)
    for registry, declared in sorted(declared_in.items()):
        listing = by_registry.get(registry)
        if listing is None or listing.error is not None:
            error = listing.error if listing and listing.error else "not listed"
            unreadable.append(UnreadableRegistry(registry, error, tuple(sorted(d.stack for d in declared))))
            continue
        # Connected registry names are case-insensitive in ARM.
        observed = {cr.name.lower(): cr for cr in listing.connected_registries}
        wanted = set()
        for declaration in sorted(declared, key=lambda d: d.stack):
            key = declaration.connected_registry.lower()
            wanted.add(key)
            if key in observed:
                sites.append(site_status(declaration, observed[key], listing.tokens, now, stale_windows))
            else:
                undeployed.append(declaration)
        orphans += [Orphan(registry, cr) for name, cr in sorted(observed.items()) if name not in wanted]
    return FleetReport(
        generated_at=now,
        stale_windows=stale_windows,
        sites=tuple(sites),
        orphans=tuple(orphans),
        undeployed=tuple(undeployed),
        unreadable=tuple(unreadable),
        invalid_stacks=invalid_stacks,
    )

