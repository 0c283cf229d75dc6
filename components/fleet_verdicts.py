"""The fleet status verdicts: pure functions from declarations, ARM listings and a clock.

A site is

* **offline** / **unhealthy** when ARM's ``connectionState`` says so (``Online`` and
  ``Syncing`` are healthy);
* **not-activated** when ``activation.status`` is not ``Active`` (the on-prem install never
  started, or it was deactivated);
* **stale** when its last sync is older than N scheduled sync windows (default 3): N windows
  opened after the last sync and closed without one. The windows come from the site's own cron
  and window, as ARM reports them (the stack file's when ARM has none);
* **password-expiring** / **password-expired** when the nearest expiry of its sync and client
  token passwords is inside the site's rotation window (``passwordRotateBeforeDays``): the
  weekly ``pulumi up`` should already have rotated it (docs/runbooks.md, Rotate credentials).

Any of these flags the site. The fleet is flagged when a site is, when a registry could not be
read, or when a stack file is invalid; that drives the exit code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum

from croniter import croniter

from components.fleet_model import (
    ObservedConnectedRegistry,
    RegistryListing,
    RegistryRef,
    SiteDeclaration,
    TokenExpiries,
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
    nearest_expiry: datetime | None
    expiry_token: str | None
    rotate_before: timedelta
    verdicts: tuple[Verdict, ...]

    @property
    def flagged(self) -> bool:
        """Any verdict flags the site."""
        return bool(self.verdicts)


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

    @property
    def flagged(self) -> bool:
        """True when the run must alert: a flagged site, an unreadable registry or an invalid stack."""
        return any(s.flagged for s in self.sites) or bool(self.unreadable) or bool(self.invalid_stacks)


def nearest_expiry(
    observed: ObservedConnectedRegistry, tokens: dict[str, TokenExpiries]
) -> tuple[datetime, str] | None:
    """The soonest password expiry among the site's sync and client tokens, and that token's name."""
    found = [
        (expiry, token.name)
        for token_id in observed.token_ids
        if (token := tokens.get(token_id.lower())) is not None
        for expiry in token.expiries
    ]
    return min(found) if found else None


def site_status(
    declaration: SiteDeclaration,
    observed: ObservedConnectedRegistry,
    tokens: dict[str, TokenExpiries],
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

    expiry = nearest_expiry(observed, tokens)
    if expiry is not None:
        if expiry[0] <= now:
            verdicts.append(Verdict.PASSWORD_EXPIRED)
        elif expiry[0] - now <= declaration.rotate_before:
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
        nearest_expiry=expiry[0] if expiry else None,
        expiry_token=expiry[1] if expiry else None,
        rotate_before=declaration.rotate_before,
        verdicts=tuple(verdicts),
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

