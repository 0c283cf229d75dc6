"""``SlotRetirement``: remove a token's old password slot once nothing relies on it.

It is the last step of a rotation (components/azure/rotation.py, docs/runbooks.md "Rotate
credentials"). The site declares it **after the consumers** of the token's password (the Helm
release for the sync token; the pull secrets, and any node auth, for the client token), so the
engine runs it only once they carry the new password: if their update fails, or they are left out
of a run (``--exclude``), this resource is not updated and the old slot stays.

* **create** records the password the consumers use (``activeSlot`` + ``activeExpiry``, which
  identify one issuance) and calls nothing.
* **diff / update**: a new ``activeSlot``/``activeExpiry`` is a *switch*: the other slot becomes
  ``retiringSlot`` and ``switchedAt`` is set to now (the consumers were just updated). A later run
  removes ``retiringSlot`` when :func:`components.azure.rotation.retire_ready` says so: for the sync
  token when ``lastSyncTime`` (read by the program; only passed while the token holds two
  slots, so a converged site's inputs do not change with every sync) is later than
  ``switchedAt``; for the client token at the next run. A retiring slot already gone from
  ``presentSlots`` is just forgotten. ``phase`` is the rotation's phase.
* **held** (a cloud-only run, whose edge keeps its old passwords): diff reports no change, so
  nothing is recorded and ARM is not called; the next run that reaches the edge takes the step.
  A new ``role`` or ``armEndpoint`` alone is no update either (the engine records the inputs).
* **delete** calls nothing: the passwords belong to ``TokenPassword`` and to the token.

Pickled by reference into the state like the other dynamic providers: keep this module path.
"""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, DiffResult, Resource, UpdateResult
from pulumi.runtime.rpc import UNKNOWN

from components.azure import rotation
from components.azure.arm_provider import (
    ARM_ENDPOINT,
    REGISTRY_NAME,
    RESOURCE_GROUP,
    SUBSCRIPTION_ID,
    ArmBackedProvider,
)

TOKEN_NAME = "tokenName"
ROLE = "role"
ACTIVE_SLOT = "activeSlot"
ACTIVE_EXPIRY = "activeExpiry"
NEXT_SLOT = "nextSlot"
LAST_SYNC_TIME = "lastSyncTime"
PRESENT_SLOTS = "presentSlots"
HELD = "held"

REPLACE_KEYS: tuple[str, ...] = (SUBSCRIPTION_ID, RESOURCE_GROUP, REGISTRY_NAME, TOKEN_NAME)
SWITCH_KEYS: tuple[str, ...] = (ACTIVE_SLOT, ACTIVE_EXPIRY)
# A new client password waiting for a sync changes the phase: an update.
UPDATE_KEYS: tuple[str, ...] = (NEXT_SLOT,)
# Recorded without an update (diff reports no change; the engine keeps the outputs): an update
# would preview the phase as unknown for a change that cannot alter it.
TUNING_KEYS: tuple[str, ...] = (ROLE, ARM_ENDPOINT, HELD)
INPUT_KEYS: tuple[str, ...] = (
    REPLACE_KEYS + SWITCH_KEYS + UPDATE_KEYS + (ROLE, ARM_ENDPOINT, LAST_SYNC_TIME, PRESENT_SLOTS)
)

RETIRING_SLOT = "retiringSlot"
SWITCHED_AT = "switchedAt"
PHASE = "phase"
OUTPUT_KEYS: tuple[str, ...] = (RETIRING_SLOT, SWITCHED_AT, PHASE)

PASSWORD_SLOTS: tuple[str, ...] = ("password1", "password2")


def now() -> Any:
    """The current time (UTC); tests move it through components.azure.rotation.now."""
    return rotation.now()


def _switched(olds: dict[str, Any], news: dict[str, Any]) -> bool:
    return any(news.get(k) == UNKNOWN or olds.get(k) != news.get(k) for k in SWITCH_KEYS)


def _ready(olds: dict[str, Any], news: dict[str, Any]) -> bool:
    retiring = olds.get(RETIRING_SLOT)
    if not retiring:
        return False
    present = news.get(PRESENT_SLOTS)
    if isinstance(present, list) and UNKNOWN not in present and retiring not in present:
        return True  # already gone (removed by hand): only the record is left to clear
    last_sync = news.get(LAST_SYNC_TIME)
    known_sync = last_sync if isinstance(last_sync, str) and last_sync != UNKNOWN else None
    return rotation.retire_ready(str(news.get(ROLE)), olds.get(SWITCHED_AT), known_sync)


class SlotRetirementProvider(ArmBackedProvider):
    """Dynamic provider behind :class:`SlotRetirement`.

    :param client_factory: see :class:`ArmBackedProvider`.
    """

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        """The token's coordinates and the role are required."""
        failures = [CheckFailure(k, f"{k} is required") for k in REPLACE_KEYS + (ROLE,) if news.get(k) in (None, "")]
        role = news.get(ROLE)
        if isinstance(role, str) and role != UNKNOWN and role not in rotation.ROLES:
            failures.append(CheckFailure(ROLE, f"role must be one of {', '.join(rotation.ROLES)}"))
        return CheckResult(news, failures)

    def create(self, props: dict[str, Any]) -> CreateResult:
        """Record the password the consumers use; nothing to retire yet."""
        outs = {k: props.get(k) for k in INPUT_KEYS}
        outs.update({RETIRING_SLOT: "", SWITCHED_AT: rotation.format_time(now())})
        outs[PHASE] = rotation.phase_of(str(props.get(ROLE)), props.get(NEXT_SLOT) or None, None).value
        return CreateResult(f"{props[TOKEN_NAME]}-retirement", outs)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        """Replace for another token; update for a switch, a new waiting password or a retirement
        that is safe now; nothing while ``held``."""
        replaces = [k for k in REPLACE_KEYS if news.get(k) == UNKNOWN or olds.get(k) != news.get(k)]
        if replaces:
            return DiffResult(changes=True, replaces=replaces)
        if news.get(HELD) is True:
            # A cloud-only run: the edge keeps its old passwords, so no switch is recorded and no
            # slot removed. The outputs stay; the next run that reaches the edge compares them
            # with its inputs and takes the step then.
            return DiffResult(changes=False, replaces=[])
        waiting = any(news.get(k) == UNKNOWN or olds.get(k) != news.get(k) for k in UPDATE_KEYS)
        return DiffResult(changes=waiting or _switched(olds, news) or _ready(olds, news), replaces=[])

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """Record a switch, or remove the old slot when that is safe."""
        outs = {k: news.get(k) for k in INPUT_KEYS}
        retiring, switched_at = olds.get(RETIRING_SLOT), olds.get(SWITCHED_AT)
        in_use = {news.get(ACTIVE_SLOT), news.get(NEXT_SLOT)}
        if news.get(HELD) is True:
            pass  # diff reports no change while held; a plan made before that changed calls nothing
        elif _switched(olds, news):
            # The consumers (this resource's dependencies) now carry the new password.
            other = next((s for s in PASSWORD_SLOTS if s not in in_use), None)
            retiring = other if other in (olds.get(ACTIVE_SLOT), retiring) else ""
            switched_at = rotation.format_time(now())
        elif _ready(olds, news):
            if retiring and retiring not in in_use:
                with self._client(news) as client:
                    client.remove_password(news[RESOURCE_GROUP], news[REGISTRY_NAME], news[TOKEN_NAME], retiring)
            retiring = ""
        outs.update({RETIRING_SLOT: retiring, SWITCHED_AT: switched_at})
        outs[PHASE] = rotation.phase_of(str(news.get(ROLE)), news.get(NEXT_SLOT) or None, retiring or None).value
        return UpdateResult(outs)


class SlotRetirement(Resource, module="edgeregistry", name="SlotRetirement"):
    """Removes a token's old password slot once its consumers use the new one and it is safe.

    Inputs (state names in brackets): [subscriptionId], [resourceGroup], [registryName],
    [tokenName], [armEndpoint] locate the token; [role] is ``sync`` or ``client``;
    [activeSlot] / [activeExpiry] / [nextSlot] are the TokenPassword's ``slot`` / ``expiry`` /
    ``nextSlot``; [lastSyncTime] is the connected registry's last sync (ISO 8601) or None;
    [presentSlots] the slots ARM showed on the token at program time (None: unknown);
    [held] true in a cloud-only run: no step is taken and ARM is not called.
    Declare it with ``depends_on`` the consumers of the password.
    """

    activeSlot: pulumi.Output[str]  # noqa: N815 (dynamic outputs use their state names)
    """The slot the consumers use, as recorded at their last switch."""
    retiringSlot: pulumi.Output[str]  # noqa: N815
    """The old slot still kept; "" when none (never None: see token_password.NO_NEXT_PASSWORD)."""
    switchedAt: pulumi.Output[str]  # noqa: N815
    """When the consumers were last switched to a new password."""
    phase: pulumi.Output[str]
    """Where the rotation stands: see :class:`components.azure.rotation.Phase`."""

    def __init__(
        self,
        resource_name: str,
        *,
        subscription_id: pulumi.Input[str],
        resource_group: pulumi.Input[str],
        registry_name: pulumi.Input[str],
        token_name: pulumi.Input[str],
        role: str,
        active_slot: pulumi.Input[str],
        active_expiry: pulumi.Input[str],
        next_slot: pulumi.Input[str | None],
        last_sync_time: str | None,
        present_slots: list[str] | None,
        arm_endpoint: pulumi.Input[str] | None = None,
        held: bool = False,
        opts: pulumi.ResourceOptions | None = None,
        provider: SlotRetirementProvider | None = None,
    ) -> None:
        props: dict[str, Any] = {
            SUBSCRIPTION_ID: subscription_id,
            RESOURCE_GROUP: resource_group,
            REGISTRY_NAME: registry_name,
            TOKEN_NAME: token_name,
            ROLE: role,
            ACTIVE_SLOT: active_slot,
            ACTIVE_EXPIRY: active_expiry,
            NEXT_SLOT: next_slot,
            LAST_SYNC_TIME: last_sync_time,
            PRESENT_SLOTS: sorted(present_slots) if present_slots is not None else None,
            ARM_ENDPOINT: arm_endpoint,
            HELD: held,
            **{k: None for k in OUTPUT_KEYS},
        }
        super().__init__(provider or SlotRetirementProvider(), resource_name, props, opts)
