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
``TokenPassword`` (components/token_password.py, before the consumers) issues and switches
(:func:`next_step`); ``SlotRetirement`` (components/slot_retirement.py, after the consumers, so it
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


@dataclass(frozen=True)
class TokenStatus:
    """One token of the site as ARM reports it, with the TokenPassword resource that manages it."""

    resource_name: str
    token_name: str
    role: str
    slots: Sequence[SlotStatus] | None
    """None: the token does not exist (yet)."""


def stuck_rotation_warnings(
    tokens: Sequence[TokenStatus],
    last_sync: datetime | None,
    connection_state: str | None,
    at: datetime,
    rotate_before_days: float,
) -> list[str]:
    """One message per password within ``rotate_before_days`` of expiry whose rotation cannot finish.

    A rotation is stuck when a newer slot exists that the site has not synced: the site still
    relies on the older password. Past that password's expiry the site is locked out (client
    token: pulls fail; sync token: it cannot sync if the new connection string did not take),
    so the message says so loudly, with the date.
    """
    messages: list[str] = []
    synced_at = last_sync.strftime("%Y-%m-%dT%H:%M:%SZ") if last_sync else "never"
    state = connection_state or "unknown"
    for token in tokens:
        slots = list(token.slots or [])
        newest = newest_slot(slots)
        for old in awaiting_sync_slots(slots, last_sync):
            if newest is None or old.expiry is None:
                continue
            expiry = aware(old.expiry)
            if not inside_rotation_window(expiry, rotate_before_days, at):
                continue
            left = expiry - at
            when = expiry.strftime("%Y-%m-%dT%H:%M:%SZ")
            lead = "EXPIRED" if left <= timedelta(0) else f"LOCK-OUT AHEAD in {left.days} days"
            messages.append(
                f"{lead}: {token.resource_name} (token {token.token_name}, {old.name}) expires {when}; "
                f"its rotation to {newest.name} is stuck waiting for the site to sync "
                f"(last sync: {synced_at}, connection state: {state}). "
                + (
                    "Pulls with the client password fail on the site after that date unless it syncs first."
                    if token.role == CLIENT_ROLE
                    else "If the new connection string did not reach the site, it cannot sync after that date."
                )
                + " See docs/runbooks.md, 'Rotate credentials'."
            )
    return messages
