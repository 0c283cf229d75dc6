"""The offline budget: how long a site can stay without a link before something breaks, and what.

Pure functions from a site's declaration (its stack file), what ARM lists and a clock. Each item
has a **deadline**, the moment by which the site must be back online (and synced) for nothing to
break; the budget is the time to the earliest one, the **limiting item**.

* **sync password** (the sync token's password the site relies on; ARM: slot creation times and
  expiries). The site syncs with the password in its connection string, which only a Helm
  upgrade reaching its cluster replaces. Its rotation falls due ``passwordRotateBeforeDays``
  before the expiry and needs the site online, so the deadline keeps that lead time: expiry
  minus ``passwordRotateBeforeDays``.
* **client password** (each client token's password the site relies on): checked on the site
  against what it last synced; pulls with it fail at its expiry. Deadline: the expiry.
* **message TTL** (``parent.syncProperties.messageTtl`` as ARM reports it, else the stack's
  ``messageTtl``): "the period of time for which a message is available to sync before it is
  expired" (the ARM spec's ``SyncProperties.messageTtl``); the first message queued after the
  last sync expires at last sync + TTL. Deadline: that.
* **server certificate** and **site CA** (https sites). The program issues both and keeps their
  dates in the stack's state, which is not read here; any ``up`` renews each within
  ``certificateRenewBeforeDays`` of its expiry, so after the last ``up`` that reached the site it
  has at least that long. Deadline: last sync + ``certificateRenewBeforeDays`` (a lower bound:
  it assumes an ``up`` reached the site when it last synced; the runbook runs one before
  departure). Material the site brings (``tlsCertificate``, ``tlsCaCertificate``) in clear: its
  own expiry; set with ``--secret``: unknown, not counted.
* **last sync**: everything above counts from what the site knows, i.e. its last successful
  sync (a password created after it is not on the site; the older one counts). A site that
  never synced has a budget of zero.

:func:`renewal` says, for one item, what renews it before a departure of N days and whether that
renewal itself needs the site online (``python -m components depart``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from components.azure import rotation
from components.fleet.model import ObservedConnectedRegistry, SiteDeclaration, TokenPasswords

DAY = timedelta(days=1)
#: The longest ``messageTtl`` ARM accepts (P90D).
MAX_MESSAGE_TTL_DAYS = 90


class Item(str, Enum):
    """What can break while a site is offline."""

    SYNC_PASSWORD = "sync-password"
    CLIENT_PASSWORD = "client-password"
    MESSAGE_TTL = "message-ttl"
    SERVER_CERTIFICATE = "server-certificate"
    SITE_CA = "site-ca"
    LAST_SYNC = "last-sync"


#: How the report names each item.
LABELS = {
    Item.SYNC_PASSWORD: "sync password",
    Item.CLIENT_PASSWORD: "client password",
    Item.MESSAGE_TTL: "messageTtl",
    Item.SERVER_CERTIFICATE: "server certificate",
    Item.SITE_CA: "site CA",
    Item.LAST_SYNC: "never synced",
}


@dataclass(frozen=True)
class BudgetItem:
    """One thing that breaks while the site is offline, and when."""

    item: Item
    subject: str
    """Which one: ``ship01-sync-token password2``, ``P2D``, ``issued``, ..."""
    deadline: datetime | None
    """When the site must be back online for this not to break; None: not known (not counted)."""
    expires: datetime | None
    """The thing's own expiry where one is known (a password's expiry; for the sync password the
    deadline is earlier by the rotation lead time)."""
    basis: str
    """What the figure is based on, for people."""

    @property
    def label(self) -> str:
        return LABELS[self.item]


@dataclass(frozen=True)
class OfflineBudget:
    """A site's offline budget at ``now``: its items, earliest deadline first (unknown ones last)."""

    now: datetime
    last_sync: datetime | None
    items: tuple[BudgetItem, ...]

    @property
    def limiting(self) -> BudgetItem | None:
        """The item whose deadline comes first."""
        return next((i for i in self.items if i.deadline is not None), None)

    @property
    def left(self) -> timedelta | None:
        """Time to the limiting item's deadline (zero when it has passed); None: nothing counted."""
        limiting = self.limiting
        if limiting is None or limiting.deadline is None:
            return None
        return max(limiting.deadline - self.now, timedelta(0))

    @property
    def days(self) -> int | None:
        """Whole days the site can stay offline (rounded down)."""
        left = self.left
        return None if left is None else int(left // DAY)

    def breaking_within(self, span: timedelta) -> list[BudgetItem]:
        """The items whose deadline comes by ``now + span`` (a lapse at the moment of return counts),
        earliest first."""
        end = self.now + span
        return [i for i in self.items if i.deadline is not None and i.deadline <= end]


def relied_on_expiry(token: TokenPasswords, last_sync: datetime | None) -> tuple[str, datetime] | None:
    """The slot and expiry of the token's password the site relies on, the soonest if several.

    As the fleet verdicts count them: the newest slot; an older one while the site has not synced
    since the newest was created (the rotation waits for that sync); a slot without a creation
    time. An older slot the site has synced past is retiring and not relied on. Slots without an
    expiry never expire.
    """
    newest = rotation.newest_slot(token.slots)
    awaiting = {s.name for s in rotation.awaiting_sync_slots(token.slots, last_sync)}
    counted = [
        (rotation.aware(s.expiry), s.name)
        for s in token.slots
        if s.expiry is not None and (s.creation_time is None or s is newest or s.name in awaiting)
    ]
    if not counted:
        return None
    expiry, slot = min(counted)
    return slot, expiry


def _stamp(moment: datetime) -> str:
    return rotation.format_time(moment)


def site_budget(
    declaration: SiteDeclaration,
    observed: ObservedConnectedRegistry,
    tokens: dict[str, TokenPasswords],
    now: datetime,
) -> OfflineBudget:
    """The offline budget of one deployed site."""
    last_sync = rotation.aware(observed.last_sync) if observed.last_sync else None
    anchor = last_sync or now
    items: list[BudgetItem] = []
    if last_sync is None:
        items.append(BudgetItem(Item.LAST_SYNC, "no lastSyncTime", now, None,
                                "ARM reports no lastSyncTime: the site holds no images or credentials yet"))

    rotate_days = declaration.rotate_before.days
    for index, token_id in enumerate(observed.token_ids):
        token = tokens.get(token_id.lower())
        found = relied_on_expiry(token, last_sync) if token else None
        if token is None or found is None:
            continue
        slot, expiry = found
        subject = f"{token.name} {slot}"
        if index == 0:
            items.append(BudgetItem(
                Item.SYNC_PASSWORD, subject, expiry - declaration.rotate_before, expiry,
                f"ARM: expires {_stamp(expiry)}; its rotation falls due passwordRotateBeforeDays ({rotate_days}) "
                "earlier and needs the site online",
            ))
        else:
            items.append(BudgetItem(
                Item.CLIENT_PASSWORD, subject, expiry, expiry,
                f"ARM: expires {_stamp(expiry)}; pulls with it fail on the site after that",
            ))

    ttl = observed.message_ttl or declaration.message_ttl
    source = "ARM" if observed.message_ttl else "the stack's messageTtl"
    ttl_text = _iso_days(ttl)
    items.append(BudgetItem(
        Item.MESSAGE_TTL, ttl_text, anchor + ttl, anchor + ttl,
        f"{source} {ttl_text}: messages for the site queued after its last sync "
        f"({_stamp(last_sync) if last_sync else 'never'}) expire after it",
    ))

    if declaration.tls is not None:
        facts = declaration.tls
        for item, source_kind, not_after, key in (
            (Item.SERVER_CERTIFICATE, facts.server_source, facts.server_not_after, "tlsCertificate"),
            (Item.SITE_CA, facts.ca_source, facts.ca_not_after, "tlsCaCertificate"),
        ):
            if source_kind == "brought" and not_after is not None:
                moment = rotation.aware(not_after)
                items.append(BudgetItem(item, "brought", moment, moment,
                                        f"{key} in the stack file: expires {_stamp(moment)}"))
            elif source_kind == "brought-secret":
                items.append(BudgetItem(
                    item, "brought", None, None,
                    f"{key} is set with --secret: its date is not readable here (every preview warns "
                    f"within certificateRenewBeforeDays of it); not counted",
                ))
            else:
                bound = anchor + timedelta(days=facts.renew_before_days)
                items.append(BudgetItem(
                    item, "issued", bound, None,
                    f"issued by the program: any `up` renews it within certificateRenewBeforeDays "
                    f"({facts.renew_before_days}) of its expiry, so it has at least that long after the last "
                    "`up` that reached the site, counted from the last sync (its date is in the stack's state)",
                ))

    order = list(Item)
    items.sort(key=lambda i: (i.deadline is None, i.deadline or now, order.index(i.item), i.subject))
    return OfflineBudget(now, last_sync, tuple(items))


def _iso_days(span: timedelta) -> str:
    days, rest = divmod(int(span.total_seconds()), 86400)
    hours = rest // 3600
    return "P" + (f"{days}D" if days else "") + (f"T{hours}H" if hours else "") if (days or hours) else "PT0H"


# --- renewals (depart) -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Renewal:
    """What renews an item before a departure, and whether that needs the site online."""

    command: str
    needs_site_online: bool
    why: str
    covers: timedelta | None
    """The longest time offline the renewal gives (from the departure); None: no limit known."""
    beyond: str | None = None
    """When the departure is longer than ``covers``: what to change first."""


def up_command(stack: str) -> str:
    """The ``up`` of one stack, as the runbooks run it."""
    return f"pulumi up --stack {stack} --policy-pack policy"


def replace_command(stack: str, resource: str) -> str:
    """An ``up`` that replaces one resource of the stack, found by its name (``--show-urns``)."""
    return (f"{up_command(stack)} --replace \"$(pulumi stack --stack {stack} --show-urns "
            f"| grep -o 'urn:pulumi:[^ ]*::{resource}')\"")


def renewal(item: BudgetItem, declaration: SiteDeclaration, days: int, now: datetime,
            last_sync: datetime | None = None) -> Renewal:
    """How to renew ``item`` before a departure of ``days`` days at ``now`` (``last_sync``: the
    site's, from which ``messageTtl`` counts)."""
    stack = declaration.stack
    up = up_command(stack)
    if item.item is Item.LAST_SYNC:
        return Renewal(
            f"{up}  # then wait for the site to activate and sync (python -m components fleet status)",
            True, "the on-prem registry must activate and sync once before it can serve anything", None)
    if item.item is Item.SYNC_PASSWORD:
        covers = timedelta(days=declaration.password_expiry_days) - declaration.rotate_before
        due = item.expires is not None and item.expires - declaration.rotate_before <= now
        command = up if due else replace_command(stack, f"{stack}-azure-sync-token-password")
        return Renewal(
            command, True,
            ("the rotation is due: " if due else "a forced rotation: ")
            + "the Helm upgrade must reach the site's cluster with the new connection string, then the site syncs "
            "with it (python -m components fleet status shows the sync)",
            covers,
            f"no rotation covers {days} days: set passwordExpiryDays to at least "
            f"{days + declaration.rotate_before.days} (pulumi config set --stack {stack} "
            "edge-registry:passwordExpiryDays N), then rotate",
        )
    if item.item is Item.CLIENT_PASSWORD:
        token = item.subject.split(" ", 1)[0]
        covers = timedelta(days=declaration.password_expiry_days)
        beyond = (f"no rotation covers {days} days: set passwordExpiryDays to at least {days} "
                  f"(pulumi config set --stack {stack} edge-registry:passwordExpiryDays N), then rotate")
        if token == f"{declaration.connected_registry}-client-token":
            return Renewal(
                replace_command(stack, f"{stack}-azure-client-token-password"), True,
                "a forced rotation: the pull secrets and nodes switch at once and the site accepts the new "
                "password only after it has synced it, so the site must sync before departure",
                covers, beyond)
        return Renewal(
            f"az acr token credential generate --registry {declaration.registry.name} --name {token} "
            f"--password1 --expiration-in-days {max(days + 1, 1)}", True,
            "a client token the program does not manage: its consumers need the new password, and the site "
            "must sync it", None)
    if item.item is Item.MESSAGE_TTL:
        # Counted from the last sync, like the deadline: a site already offline needs more.
        needed = math.ceil(((now + timedelta(days=days)) - (last_sync or now)) / DAY) + 1
        wanted = min(needed, MAX_MESSAGE_TTL_DAYS)
        return Renewal(
            f"pulumi config set --stack {stack} edge-registry:messageTtl P{wanted}D && {up}", False,
            "an Azure-side change only, which a cloud-only run makes too; a site offline now gets the longer "
            "TTL at its next sync at the latest",
            timedelta(days=MAX_MESSAGE_TTL_DAYS) - (now - (last_sync or now)),
            f"no messageTtl covers {days} days (ARM allows up to P{MAX_MESSAGE_TTL_DAYS}D): plan a sync during "
            "the time away",
        )
    # Certificates.
    tls = declaration.tls
    ca = item.item is Item.SITE_CA
    key = "tlsCaCertificate" if ca else "tlsCertificate"
    if item.subject == "brought":
        return Renewal(
            f"pulumi config set --stack {stack} --secret edge-registry:{key} < renewed.pem"
            + ("" if ca else f" && pulumi config set --stack {stack} --secret edge-registry:tlsKey < renewed.key")
            + f" && {up}", True,
            "a certificate the site brings is yours to renew; the Helm release (and, for a CA, every node) "
            "takes the new one, so the cluster and nodes must be reachable", None)
    validity = tls.validity_days if tls is not None and not ca else 3650
    wanted = days + 1
    return Renewal(
        f"pulumi config set --stack {stack} edge-registry:certificateRenewBeforeDays {wanted} && {up}", True,
        "the next `up` renews any " + ("site CA" if ca else "server certificate")
        + " that expires within certificateRenewBeforeDays, and the Helm release"
        + (" and every node take" if ca else " takes") + " the new one, so the site must be reachable; set it "
        "back after departure if you like",
        timedelta(days=validity - 1),
        f"no certificate lifetime covers {days} days: raise certificateValidityDays (at most 3650) first",
    )
