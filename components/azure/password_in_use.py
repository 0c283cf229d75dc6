"""``PasswordInUse``: the client password the site's consumers use, as a record of its own.

Why: a client rotation issues the new password a step before the consumers may take it
(components/azure/rotation.py: ISSUE, then SWITCH after a sync). Both steps are updates of the
``TokenPassword``, and the engine previews an update of a dynamic resource with every output
unknown (it does not call a provider without preview support; docs/architecture.md,
"Previews"). Read straight from the ``TokenPassword``, the password would preview as unknown in
the ISSUE run too, and with it every pull secret and every node's auth, though ``up`` changes
none of them.

This record copies ``slot``, ``value`` and ``expiry`` from the ``TokenPassword`` and is what the
consumers read. Its ``diff``:

* with its inputs known (``up``, and any preview where the password does not update): a change
  exactly when the password in use changed;
* with them unknown (a preview of a ``TokenPassword`` step): a change only when that step can
  switch the password in use, judged from the program-time facts beside the inputs (the slots
  ARM shows and which the site has synced) and its own state: another slot the site has synced,
  its own password expired or gone, or no password yet. An ISSUE step gives no such slot (the new
  one is not synced yet), so it previews nothing downstream; a SWITCH does, and previews the
  consumers changing, as they will.

``create`` and ``update`` record their inputs; ``delete`` calls nothing. Pickled by reference
into the state like the other dynamic providers: keep this module path.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider, UpdateResult
from pulumi.output import Unknown
from pulumi.runtime.rpc import UNKNOWN

from components.azure import rotation

SLOT = "slot"
VALUE = "value"
EXPIRY = "expiry"
PRESENT_SLOTS = "presentSlots"
SYNCED_SLOTS = "syncedSlots"
RECORDED: tuple[str, ...] = (SLOT, VALUE, EXPIRY)


def now() -> datetime:
    """The current time (UTC); tests move it through components.azure.rotation.now."""
    return rotation.now()


def is_unknown(value: Any) -> bool:
    """An unknown as the dynamic-provider host hands it over: the SDK's ``Unknown`` object
    (``rpc.deserialize_properties(..., keep_unknowns=True)``), or the wire's sentinel string."""
    return isinstance(value, Unknown) or (isinstance(value, str) and value == UNKNOWN)


def _known_list(value: Any) -> frozenset[str] | None:
    if not isinstance(value, list) or any(is_unknown(v) for v in value):
        return None
    return frozenset(value)


def may_switch(olds: dict[str, Any], news: dict[str, Any], at: datetime) -> bool:
    """Whether a password step this run can change the password in use (see the module doc)."""
    slot, expiry = olds.get(SLOT) or None, olds.get(EXPIRY) or None
    present, synced = _known_list(news.get(PRESENT_SLOTS)), _known_list(news.get(SYNCED_SLOTS))
    if slot is None or present is None or synced is None:
        return True  # nothing recorded, or ARM unread: it may
    if slot not in present:
        return True
    if isinstance(expiry, str) and at >= rotation.parse_time(expiry):
        return bool(present - {slot})
    return bool((present & synced) - {slot})


class PasswordInUseProvider(ResourceProvider):
    """Dynamic provider behind :class:`PasswordInUse`."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(f"in-use-{props.get(SLOT) or 'none'}", {k: props.get(k) for k in RECORDED})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        if any(is_unknown(news.get(k)) for k in RECORDED):
            return DiffResult(changes=may_switch(olds, news, now().astimezone(UTC)), replaces=[])
        return DiffResult(changes=any(olds.get(k) != news.get(k) for k in RECORDED), replaces=[])

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult({k: news.get(k) for k in RECORDED})


class PasswordInUse(Resource, module="edgeregistry", name="PasswordInUse"):
    """The client password the consumers use (``value``, secret), recorded from a ``TokenPassword``.

    :param slot: / :param value: / :param expiry: the ``TokenPassword``'s outputs of those names.
    :param present_slots: the slots ARM showed on the token at program time (None: unknown).
    :param synced_slots: the slots the site has synced (None: unknown).
    """

    slot: pulumi.Output[str]
    value: pulumi.Output[str]
    expiry: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        *,
        slot: pulumi.Input[str],
        value: pulumi.Input[str],
        expiry: pulumi.Input[str],
        present_slots: list[str] | None,
        synced_slots: list[str] | None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props: dict[str, Any] = {
            SLOT: slot,
            VALUE: pulumi.Output.secret(value),
            EXPIRY: expiry,
            PRESENT_SLOTS: sorted(present_slots) if present_slots is not None else None,
            SYNCED_SLOTS: sorted(synced_slots) if synced_slots is not None else None,
        }
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=[VALUE]))
        super().__init__(PasswordInUseProvider(), resource_name, props, opts)
