"""Password rotation that never cuts off a site: the pure rules, gated on the site's last sync.

A connected registry checks credentials on-prem against what it last synced (docs/runbooks.md,
"Rotate credentials"). So a new password is only safe for a consumer once the site has synced
after the password was created, and an old password may only go once nothing relies on it:

* **sync token** (consumer: the Helm connection string, which the on-prem registry uses to reach
  Azure, where a new password works at once): the connection string switches to the new password
  as soon as it is issued; the old slot stays until the site has synced after the switch.
* **client token** (consumers: the pull secrets, checked on-prem): the new password waits until
  a sync later than its creation; then the consumers switch; the old slot goes at the next run,
  after the consumers have been updated.

Two resources per token carry this out, each taking at most one step per ``pulumi up``:
``TokenPassword`` (components/azure/token_password.py, before the consumers) issues and switches
(:func:`next_step`); ``SlotRetirement`` (components/azure/slot_retirement.py, after the consumers, so it
only runs once they carry the new password) removes the old slot (:func:`retire_ready`).
The inputs that gate a step are *facts* derived from ARM at program time (:class:`SlotFacts`:
which slots exist, which ones the site has synced since their creation). They change only when a
step becomes possible, never with every sync, so a converged site previews as no change.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum

#: The token whose consumers switch at once (the connection string) ...
SYNC_ROLE = "sync"
#: ... and the one whose consumers wait for a sync (pull secrets, node auth).
CLIENT_ROLE = "client"
ROLES: tuple[str, ...] = (SYNC_ROLE, CLIENT_ROLE)


class Phase(str, Enum):
    """Where a password's rotation stands; exported as a stack output."""

    SETTLED = "settled"
    """One password, in use by every consumer."""
    SWITCHED_AWAITING_SYNC = "switched-awaiting-sync"
    """Sync token: consumers use the new password; the old slot stays until the site syncs."""
    ISSUED_AWAITING_SYNC = "issued-awaiting-sync"
    """Client token: a new password exists; consumers keep the old one until the site syncs."""
    RETIRING = "retiring"
    """Client token: consumers switched after a sync; the old slot is removed at the next run."""


class Step(str, Enum):
    """What ``TokenPassword`` does in one ``pulumi up``."""

    ISSUE = "issue"
    """Generate a password in the free slot (rotation due, or a slot disappeared)."""
    SWITCH = "switch"
    """Client token: consumers move to the new password (the site has synced it)."""


@dataclass(frozen=True)
class RotationState:
    """The part of a ``TokenPassword``'s state the rules look at."""

    role: str
    active_slot: str | None
    """The slot consumers use."""
    active_expiry: str | None
    next_slot: str | None = None
    """Client token: the new password waiting for a sync."""
    missing: tuple[str, ...] = ()
    """Slots a refresh found gone from the token."""


@dataclass(frozen=True)
class SlotFacts:
    """What ARM said about a token at program time; ``None`` where it could not be read."""

    present: frozenset[str] | None
    """Slots the token holds."""
    synced: frozenset[str] | None
    """Slots created before the connected registry's last sync: the site knows them."""


@dataclass(frozen=True)
class SlotStatus:
    """One password slot as ARM's token GET reports it (never its value)."""

    name: str
    creation_time: datetime | None
    expiry: datetime | None


def now() -> datetime:
    """The current time, UTC, as the program-time warnings see it (tests monkeypatch it)."""
    return datetime.now(UTC)


def parse_time(text: str) -> datetime:
    """ISO 8601 (``Z`` or an offset, fractions allowed) as an aware UTC datetime."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def format_time(moment: datetime) -> str:
    """ISO 8601 UTC with a ``Z`` and whole seconds, e.g. ``2026-03-01T12:00:00Z``."""
    return aware(moment).astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def aware(moment: datetime) -> datetime:
    """ARM times are UTC; a naive one is read as UTC, never as local time."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def rotation_due(expiry: str, rotate_before_days: float, at: datetime) -> bool:
    """Whether a password expiring at ``expiry`` is inside its rotation window at ``at``."""
    return inside_rotation_window(parse_time(expiry), rotate_before_days, at)


def inside_rotation_window(expiry: datetime, rotate_before_days: float, at: datetime) -> bool:
    """:func:`rotation_due` for an expiry ARM handed over as a datetime (naive means UTC)."""
    return at >= aware(expiry) - timedelta(days=float(rotate_before_days))


def synced_slots(slots: Iterable[SlotStatus], last_sync: datetime | None) -> frozenset[str]:
    """Slots the site has synced since they were created (so it accepts them on-prem)."""
    if last_sync is None:
        return frozenset()
    return frozenset(
        s.name for s in slots if s.creation_time is not None and aware(s.creation_time) < aware(last_sync)
    )


def newest_slot(slots: Iterable[SlotStatus]) -> SlotStatus | None:
    """The slot created last: the password of the latest rotation. Slots without a creation
    time cannot be placed and are left out; the first of equally old slots wins."""
    dated = [s for s in slots if s.creation_time is not None]
    return max(dated, key=lambda s: aware(s.creation_time)) if dated else None  # type: ignore[arg-type]


def awaiting_sync_slots(slots: Sequence[SlotStatus], last_sync: datetime | None) -> list[SlotStatus]:
    """The older slots the site still relies on: a newer slot exists that the site has not
    synced since its creation, so on-prem only the older passwords are known.

    Empty when the site has synced the newest slot (an older slot left is merely retiring:
    ``SlotRetirement`` removes it) or when fewer than two slots have a creation time.
    """
    dated = [s for s in slots if s.creation_time is not None]
    newest = newest_slot(dated)
    if len(dated) < 2 or newest is None or newest.name in synced_slots(dated, last_sync):
        return []
    return [s for s in dated if s is not newest]


def slot_facts(slots: Sequence[SlotStatus] | None, last_sync: datetime | None, known: bool = True) -> SlotFacts:
    """The facts one token contributes; ``slots`` None means the token does not exist."""
    if not known:
        return SlotFacts(None, None)
    listed = list(slots or [])
    return SlotFacts(frozenset(s.name for s in listed), synced_slots(listed, last_sync))


def vanished_slots(state: RotationState, facts: SlotFacts) -> set[str]:
    """Slots the state relies on that are gone from the token (something PUT it without them)."""
    ours = {s for s in (state.active_slot, state.next_slot) if s}
    gone = ours & set(state.missing)
    if facts.present is not None:
        gone |= ours - facts.present
    return gone


def next_step(state: RotationState, facts: SlotFacts, at: datetime, rotate_before_days: float) -> Step | None:
    """The one ``TokenPassword`` step that is safe now, or None.

    Re-issuing a vanished slot takes the same path as a rotation, so a client password that
    disappeared is replaced by one the site must sync before the pull secrets use it. A rotation
    does not start while the old slot of the previous one is still there (``SlotRetirement``
    has not removed it): the site may still rely on it.
    """
    gone = vanished_slots(state, facts)
    synced = facts.synced or frozenset()
    active_gone = state.active_slot is None or state.active_slot in gone
    due = not state.active_expiry or rotation_due(state.active_expiry, rotate_before_days, at)
    previous_still_there = facts.present is not None and bool(facts.present - {state.active_slot, state.next_slot})
    if state.role == CLIENT_ROLE and state.next_slot:
        if state.next_slot in gone:
            return Step.ISSUE
        expired = bool(state.active_expiry) and at >= parse_time(str(state.active_expiry))
        # An expired password is useless anyway: switching cannot make things worse.
        return Step.SWITCH if state.next_slot in synced or expired else None
    if active_gone:
        return Step.ISSUE
    return Step.ISSUE if due and not previous_still_there else None


def retire_ready(role: str, switched_at: str | None, last_sync: str | None) -> bool:
    """Whether the old slot may go, given when the consumers were switched (``SlotRetirement``).

    Sync token: only once the site has synced after the switch (the new connection string
    reached it). Client token: the consumers switched only after a sync that knew the new
    password, in an earlier run, so any later run may remove the old slot.
    """
    if role == CLIENT_ROLE:
        return True
    if not switched_at or not last_sync:
        return False
    return parse_time(last_sync) > parse_time(switched_at)


def phase_of(role: str, next_slot: str | None, retiring_slot: str | None) -> Phase:
    """The phase of a rotation from the slots in play."""
    if next_slot:
        return Phase.ISSUED_AWAITING_SYNC
    if retiring_slot:
        return Phase.SWITCHED_AWAITING_SYNC if role == SYNC_ROLE else Phase.RETIRING
    return Phase.SETTLED


# --- warnings at program time (preview and up) ----------------------------------------------------

#: ``connectionState`` values of a site that reports to Azure (docs/azure.md, "Credentials reach
#: the site through sync"); Offline and Unhealthy sites do not sync.
REPORTING_STATES = frozenset({"online", "syncing"})
#: A password this close to its expiry may expire before the next scheduled ``up`` can rotate it
#: (the Deploy workflow's weekly run), so a held or blocked rotation is a lock-out ahead.
LOCK_OUT_NEAR = timedelta(days=7)
RUNBOOK = "See docs/runbooks.md, 'Rotate credentials'."


@dataclass(frozen=True)
class TokenStatus:
    """One token of the site as ARM reports it, with the TokenPassword resource that manages it."""

    resource_name: str
    token_name: str
    role: str
    slots: Sequence[SlotStatus] | None
    """None: the token does not exist (yet)."""


@dataclass(frozen=True)
class SiteView:
    """ARM's view of the connected registry, as the warnings judge and quote it."""

    last_sync: datetime | None
    connection_state: str | None
    activation_status: str | None = None

    def describe(self) -> str:
        """``last sync: …, connection state: …, activation: …`` for a message."""
        synced = format_time(self.last_sync) if self.last_sync else "never"
        return (
            f"last sync: {synced}, connection state: {self.connection_state or 'unknown'}, "
            f"activation: {self.activation_status or 'unknown'}"
        )

    def not_syncing(self, at: datetime, left: timedelta) -> str | None:
        """Why the site is unlikely to sync before a password that expires in ``left``, or None.

        A site that is not activated or does not report (Offline, Unhealthy) does not sync; one
        that reports but whose last sync is older than the time left is not counted on either.
        """
        if self.activation_status and self.activation_status.lower() != "active":
            return f"activation status {self.activation_status}"
        if (self.connection_state or "").lower() not in REPORTING_STATES:
            return f"connection state {self.connection_state or 'unknown'}"
        if self.last_sync is None:
            return "it never synced"
        silent = at - aware(self.last_sync)
        if left > timedelta(0) and silent > left:
            return f"its last sync was {_span(silent)} ago, longer than the {_span(left)} left"
        return None


def _lead(left: timedelta) -> str:
    return "EXPIRED" if left <= timedelta(0) else f"LOCK-OUT AHEAD in {left.days} days"


def _span(length: timedelta) -> str:
    return f"{length.days} days" if length >= timedelta(days=1) else f"{int(length.total_seconds() // 3600)} hours"


def stuck_rotation_warnings(
    tokens: Sequence[TokenStatus],
    last_sync: datetime | None,
    connection_state: str | None,
    at: datetime,
    rotate_before_days: float,
    activation_status: str | None = None,
    cloud_only: bool = False,
) -> list[str]:
    """One message per password within ``rotate_before_days`` of expiry whose rotation cannot finish
    or cannot start, from what ARM says at program time:

    * **stuck**: a newer slot exists that the site has not synced, so the site still relies on the
      older password. Past that password's expiry the site is locked out (client token: pulls
      fail; sync token: it cannot sync if the new connection string did not take).
    * **held**: a cloud-only run starts no rotation (components/cloud_only.py), while the
      newest password is inside the window: ``rotation held by cloudOnly``, loud when close.
    * **not syncing**: the newest password is inside the window and the site does not sync
      (:meth:`SiteView.not_syncing`): a rotation cannot take effect on the site until it syncs,
      so the lock-out is announced before the expiry, never discovered after it.

    A rotation blocked by a slot edge-registry did not issue needs the TokenPassword's state:
    :func:`blocked_rotation_warnings`.
    """
    site = SiteView(last_sync, connection_state, activation_status)
    messages: list[str] = []
    for token in tokens:
        slots = list(token.slots or [])
        newest = newest_slot(slots)
        if newest is None:
            continue
        for old in awaiting_sync_slots(slots, last_sync):
            if old.expiry is None or not inside_rotation_window(old.expiry, rotate_before_days, at):
                continue
            left = aware(old.expiry) - at
            messages.append(
                f"{_lead(left)}: {token.resource_name} (token {token.token_name}, {old.name}) expires "
                f"{format_time(old.expiry)}; its rotation to {newest.name} is stuck waiting for the site to sync "
                f"({site.describe()}). "
                + (
                    "Pulls with the client password fail on the site after that date unless it syncs first."
                    if token.role == CLIENT_ROLE
                    else "If the new connection string did not reach the site, it cannot sync after that date."
                )
                + f" {RUNBOOK}"
            )
        if newest.expiry is not None and inside_rotation_window(newest.expiry, rotate_before_days, at):
            message = _due_rotation_warning(token, newest, site, at, cloud_only)
            if message:
                messages.append(message)
    return messages


def _due_rotation_warning(
    token: TokenStatus, newest: SlotStatus, site: SiteView, at: datetime, cloud_only: bool
) -> str | None:
    """The held / not-syncing warning for a newest password inside its window (None: the next
    ``up`` rotates it and the site takes it)."""
    assert newest.expiry is not None
    left = aware(newest.expiry) - at
    reason = site.not_syncing(at, left)
    if not cloud_only and reason is None:
        return None
    loud = reason is not None or left <= LOCK_OUT_NEAR
    # A loud message leads with the time left; a quiet one says it after the date.
    due = (f"expires {format_time(newest.expiry)}" + ("" if loud else f", in {_span(left)}")) if left > timedelta(0) else (
        f"expired {format_time(newest.expiry)}")
    subject = f"{token.resource_name} (token {token.token_name}, {newest.name}) {due}"
    causes = []
    if cloud_only and left > timedelta(0):
        causes.append("this run starts no rotation, the next run without cloudOnly does")
    elif cloud_only:
        # rotateBeforeDays 0 still replaces an expired password, in Azure only (cloud_only.py).
        causes.append("this run replaces it in Azure; the edge gets the new password only with the next run "
                      "without cloudOnly")
    if reason is not None:
        causes.append(f"the site is not syncing ({reason}): a rotation cannot take effect on the site until it syncs")
    text = (f"{_lead(left)}: " if loud else "") + ("rotation held by cloudOnly: " if cloud_only else "")
    text += f"{subject}; " + "; and ".join(causes) + "."
    if loud:
        text += (
            " Pulls with the client password fail on the site after that date unless it syncs a new one first."
            if token.role == CLIENT_ROLE
            else " The site syncs with the password in its connection string: unless an `up` gives it a new one "
            "(a Helm upgrade, cluster reachable) before that date, it cannot sync after it."
        )
    text += f" ({site.describe()}). {RUNBOOK}"
    if reason is not None:
        text += " The daily fleet check flags such a site too (docs/runbooks.md, 'Daily fleet check')."
    return text


def blocked_rotation_warnings(
    token: TokenStatus,
    state: RotationState,
    kept: Iterable[str],
    site: SiteView,
    at: datetime,
    rotate_before_days: float,
    registry_name: str,
) -> list[str]:
    """``rotation BLOCKED by <slot>``: the password in use is inside its window, but no rotation
    starts because the token's other slot holds a password edge-registry did not issue
    (:func:`next_step` waits while a slot other than its own exists, so it never overwrites one).

    ``state`` is the TokenPassword's stored state (its ``slot``, ``expiry``, ``nextSlot``), known at
    program time only through its previous outputs; ``kept`` are the slots the rotation still
    accounts for although TokenPassword no longer names them (SlotRetirement's ``activeSlot`` and
    ``retiringSlot``: the consumers may still use them, so they are never "foreign"). Uses names,
    times and ARM's slot list only: no password value.
    """
    if token.slots is None:
        return []
    facts = slot_facts(token.slots, site.last_sync)
    if next_step(state, facts, at, rotate_before_days) is not None:
        return []
    if state.role == CLIENT_ROLE and state.next_slot:
        return []  # waiting for a sync: stuck_rotation_warnings names it
    if not state.active_slot or not state.active_expiry or not rotation_due(state.active_expiry, rotate_before_days, at):
        return []
    ours = {s for s in (state.active_slot, state.next_slot, *kept) if s}
    created = {s.name: s.creation_time for s in token.slots}
    expiry = parse_time(state.active_expiry)
    left = expiry - at
    loud = left <= LOCK_OUT_NEAR or site.not_syncing(at, left) is not None
    messages = []
    due = (f"expires {format_time(expiry)}" + ("" if loud else f", in {_span(left)}")) if left > timedelta(0) else (
        f"expired {format_time(expiry)}")
    for slot in sorted((facts.present or frozenset()) - ours):
        when = created.get(slot)
        messages.append(
            (f"{_lead(left)}: " if loud else "")
            + f"rotation BLOCKED by {slot}: {token.resource_name} (token {token.token_name}, {state.active_slot}) "
            f"{due}, and no rotation starts while the token's "
            f"other slot {slot} holds a password edge-registry did not issue"
            + (f" (created {format_time(when)})" if when else "")
            + ". If nothing uses it, remove it: "
            f"`az acr token credential delete --name {token.token_name} --registry {registry_name.lower()} --{slot}`;"
            f" the next `up` then rotates ({site.describe()}). {RUNBOOK}"
        )
    return messages
