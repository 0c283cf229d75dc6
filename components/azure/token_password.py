"""``TokenPassword``: the passwords of one ACR token, issued, rotated and retired without cutting off the site.

Why a dynamic resource: pulumi-azure-native cannot generate token passwords, and calling ARM from an
``apply`` would issue a new password on every run. As a resource, a password is generated once and
kept (as a secret) in the state; ARM returns a value only from ``generateCredentials``.

A token has two password slots, ``password1`` and ``password2`` (docs/azure.md, "Token
passwords"). The resource keeps up to two of them and says which one consumers use (``value``);
the rules of each step are in components/azure/rotation.py and docs/runbooks.md ("Rotate credentials"):

* **create** picks a free slot (``password1`` preferred) and generates a password there valid for
  ``expiryDays``. Two occupied slots are an error naming the token: the resource never overwrites
  a password it did not issue, since something else may depend on it.
* **diff / update**: rotation is an *update*, one step per ``pulumi up``, gated on facts the program
  read from ARM (``presentSlots``, ``syncedSlots``):

  - role ``sync`` (the connection string): inside the rotation window a new password is issued in
    the free slot and becomes ``value`` at once.
  - role ``client`` (pull secrets, node auth): the new password waits in ``nextSlot`` /
    ``nextValue`` until the site has synced after its creation; then ``value`` switches to it.

  The old slot is left in place: ``SlotRetirement`` (components/azure/slot_retirement.py), which runs
  after the consumers, removes it when that is safe. A new rotation waits until it has.
  Changes of ``expiryDays``, ``rotateBeforeDays``, ``role`` and ``armEndpoint`` alone are no
  update: ``diff`` reports no change, the engine records the new inputs and keeps the outputs,
  and the next step (whose inputs they are) uses them. So a tuning change previews nothing, here
  or downstream. Until that step, ``read`` and ``delete`` reach ARM at the endpoint recorded by
  the last create or step. Another token (``subscriptionId``, ``resourceGroup``,
  ``registryName``, ``tokenName``, ``tokenId`` changed or unknown) replaces the resource.
* **a slot that disappeared** (anything PUT the token without ``credentials``): ``read`` (refresh)
  records it in ``missing``, and ``diff`` sees it from ``presentSlots``; the next update re-issues
  it through the same path as a rotation instead of keeping a stale value.
* **adopt** (a lost state, a hand-built site: docs/runbooks.md "Adopt a site"): given the
  password in use, ``create`` records it, with the slot the operator names (or the token's only
  one) and that slot's expiry from ARM, and issues nothing. Ignored by ``diff``.
* **delete** removes only this resource's slots (``slot``, ``nextSlot``) (PATCH the token with the remaining passwords); a
  token or slot that is already gone counts as deleted.
* **preview** issues nothing: the Python dynamic provider does not declare ``supportsPreview``, so
  the engine does not call ``create`` or ``update`` during preview (pulumi/pulumi
  sdk/go/common/resource/plugin/provider_plugin.go); diff only compares the state, the facts and
  the clock.

Rotation happens when ``pulumi up`` runs: schedule ``up`` more often than ``rotateBeforeDays``.
One ``TokenPassword`` per token: two resources on the same token would fight over its slots.

The provider is pickled with dill into the state *by reference* and unpickled in the provider
process, so this module path and the class names must keep working for existing stacks; it holds
no clients and imports the Azure SDK inside its methods.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeGuard

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    UpdateResult,
)
from pulumi.runtime.rpc import UNKNOWN

if TYPE_CHECKING:
    from components.azure.arm import ArmClient

from components.azure import rotation
from components.azure.arm_provider import (
    ARM_ENDPOINT,
    REGISTRY_NAME,
    RESOURCE_GROUP,
    SUBSCRIPTION_ID,
    ArmBackedProvider,
)

# Wire names of the inputs (camelCase like every other Pulumi resource state).
TOKEN_NAME = "tokenName"
TOKEN_ID = "tokenId"
EXPIRY_DAYS = "expiryDays"
ROTATE_BEFORE_DAYS = "rotateBeforeDays"
ROLE = "role"
# Facts read from ARM at program time (components/azure/sync_status.py); they gate rotation steps.
PRESENT_SLOTS = "presentSlots"
SYNCED_SLOTS = "syncedSlots"
# Adopting a password in use (a lost state, a hand-built site): read by create only.
ADOPT = "adopt"
ADOPT_KEYS = {rotation.SYNC_ROLE: "edge-registry:adoptSyncPassword", rotation.CLIENT_ROLE: "edge-registry:adoptClientPassword"}

# A change to any of these means another token: a new password is needed.
REPLACE_KEYS: tuple[str, ...] = (SUBSCRIPTION_ID, RESOURCE_GROUP, REGISTRY_NAME, TOKEN_NAME, TOKEN_ID)
# These only affect future steps / calls: recorded without an update (see diff).
UPDATE_KEYS: tuple[str, ...] = (EXPIRY_DAYS, ROTATE_BEFORE_DAYS, ARM_ENDPOINT, ROLE)
INPUT_KEYS: tuple[str, ...] = REPLACE_KEYS + UPDATE_KEYS
REQUIRED_KEYS: tuple[str, ...] = REPLACE_KEYS + (EXPIRY_DAYS, ROTATE_BEFORE_DAYS)
FACT_KEYS: tuple[str, ...] = (PRESENT_SLOTS, SYNCED_SLOTS)

# Outputs: the password consumers use ...
SLOT = "slot"
VALUE = "value"
EXPIRY = "expiry"
USERNAME = "username"
# ... the client password waiting for a sync ...
NEXT_SLOT = "nextSlot"
NEXT_VALUE = "nextValue"
NEXT_EXPIRY = "nextExpiry"
# ... and slots a refresh found gone.
MISSING = "missing"
OUTPUT_KEYS: tuple[str, ...] = (SLOT, VALUE, EXPIRY, USERNAME, NEXT_SLOT, NEXT_VALUE, NEXT_EXPIRY, MISSING)
SECRET_OUTPUTS: list[str] = [VALUE, NEXT_VALUE]
# "No next password" is "" rather than None: in a preview the SDK resolves a None output as
# *unknown* (pulumi/runtime/rpc.py resolve_properties), which would make a converged site's
# SlotRetirement, fed from nextSlot, show a change.
NO_NEXT_PASSWORD: dict[str, str] = {NEXT_SLOT: "", NEXT_VALUE: "", NEXT_EXPIRY: ""}


def now() -> datetime:
    """The current time, UTC. Module-level so tests can monkeypatch the clock."""
    return datetime.now(UTC)


def format_expiry(moment: datetime) -> str:
    """ISO 8601 UTC with a ``Z`` and whole seconds, e.g. ``2026-03-01T12:00:00Z``."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # ARM times are UTC; astimezone() would assume local time
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_expiry(text: str) -> datetime:
    """Inverse of :func:`format_expiry`; also accepts offsets and fractional seconds."""
    return rotation.parse_time(text)


def rotation_due(expiry: str, rotate_before_days: float, at: datetime) -> bool:
    """Whether a password expiring at ``expiry`` must be replaced at time ``at``."""
    return rotation.rotation_due(expiry, rotate_before_days, at)


class NoFreeSlotError(RuntimeError):
    """Both password slots of the token hold a password this resource did not issue."""


class AdoptError(RuntimeError):
    """The password to adopt does not match what the token holds."""


def rotation_state(olds: dict[str, Any], news: dict[str, Any]) -> rotation.RotationState:
    """The rules' view of a stored state (``news`` supplies the role of a state from before roles)."""
    role = news.get(ROLE) if _known_str(news.get(ROLE)) else olds.get(ROLE)
    return rotation.RotationState(
        role=role if role in rotation.ROLES else rotation.SYNC_ROLE,
        active_slot=olds.get(SLOT) or None,
        active_expiry=olds.get(EXPIRY) if _known_str(olds.get(EXPIRY)) else None,
        next_slot=olds.get(NEXT_SLOT) or None,
        missing=tuple(olds.get(MISSING) or ()),
    )


def slot_facts(news: dict[str, Any]) -> rotation.SlotFacts:
    """The program-time facts among the inputs; anything not a known list counts as unknown."""

    def known(value: Any) -> frozenset[str] | None:
        return frozenset(value) if isinstance(value, (list, tuple)) and UNKNOWN not in value else None

    return rotation.SlotFacts(present=known(news.get(PRESENT_SLOTS)), synced=known(news.get(SYNCED_SLOTS)))


def state_role_switches(olds: dict[str, Any], news: dict[str, Any]) -> bool:
    """Whether a newly issued password goes to the consumers at once (sync token, or no password yet)."""
    state = rotation_state(olds, news)
    return state.role == rotation.SYNC_ROLE or state.active_slot is None


def planned_step(olds: dict[str, Any], news: dict[str, Any], at: datetime) -> rotation.Step | None:
    """The step the next update takes (None: nothing to do)."""
    rotate_days = news.get(ROTATE_BEFORE_DAYS)
    if not _known_number(rotate_days):
        rotate_days = olds.get(ROTATE_BEFORE_DAYS)
    if not _known_number(rotate_days):
        return None
    return rotation.next_step(rotation_state(olds, news), slot_facts(news), at, float(rotate_days))


class TokenPasswordProvider(ArmBackedProvider):
    """Dynamic provider behind :class:`TokenPassword`.

    :param client_factory: see :class:`ArmBackedProvider`.
    """

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        """Reject missing inputs and a rotation window that is not shorter than the lifetime."""
        failures = [CheckFailure(k, f"{k} is required") for k in REQUIRED_KEYS if news.get(k) in (None, "")]
        expiry_days, rotate_days = news.get(EXPIRY_DAYS), news.get(ROTATE_BEFORE_DAYS)
        if _known_number(expiry_days) and float(expiry_days) <= 0:
            failures.append(CheckFailure(EXPIRY_DAYS, "expiryDays must be positive"))
        if _known_number(rotate_days) and float(rotate_days) < 0:
            failures.append(CheckFailure(ROTATE_BEFORE_DAYS, "rotateBeforeDays must not be negative"))
        if _known_number(expiry_days) and _known_number(rotate_days) and float(rotate_days) >= float(expiry_days):
            # Otherwise every run would find the fresh password inside its window and rotate it.
            failures.append(CheckFailure(ROTATE_BEFORE_DAYS, "rotateBeforeDays must be smaller than expiryDays"))
        role = news.get(ROLE)
        if _known_str(role) and role not in rotation.ROLES:
            failures.append(CheckFailure(ROLE, f"role must be one of {', '.join(rotation.ROLES)}"))
        token_id, token_name = news.get(TOKEN_ID), news.get(TOKEN_NAME)
        if (
            _known_str(token_id)
            and _known_str(token_name)
            and not token_id.lower().endswith(f"/tokens/{token_name}".lower())
        ):
            failures.append(CheckFailure(TOKEN_ID, f"tokenId does not end with /tokens/{token_name}"))
        return CheckResult(news, failures)

    def _issue(self, client: ArmClient, props: dict[str, Any]) -> tuple[str, str, str]:
        """Generate a password in a free slot: (slot, value, expiry)."""
        from components.azure.arm import ArmError

        rg, registry, token_name = props[RESOURCE_GROUP], props[REGISTRY_NAME], props[TOKEN_NAME]
        in_use = {p.name for p in client.password_slots(rg, registry, token_name)}
        slot = next((s for s in ("password1", "password2") if s not in in_use), None)
        if slot is None:
            raise NoFreeSlotError(
                f"token '{token_name}' in registry '{registry}' has passwords in both slots "
                "(password1, password2); this resource only uses a free slot so it never "
                "overwrites a password something else may rely on. Remove one, e.g. "
                f"`az acr token credential delete -r {registry} -n {token_name} --password2`, "
                "and check that no other TokenPassword manages this token."
            )
        requested = (now() + timedelta(days=float(props[EXPIRY_DAYS]))).replace(microsecond=0)
        try:
            generated = client.generate_password(rg, registry, props[TOKEN_ID], slot, requested)
        except ArmError:
            # ARM issued a password we could not read. The slot was free, so whatever is in
            # it now is ours: free it again, or the failed create would leak a slot and the
            # next rotation would find both taken.
            client.remove_password(rg, registry, token_name, slot)
            raise
        # ARM's own expiry when it reports one: that is what rotation must beat.
        return slot, generated.value, format_expiry(generated.expiry or requested)

    def _adopt(self, client: ArmClient, props: dict[str, Any]) -> tuple[str, str, str]:
        """The password in use, given by the operator: (slot, value, expiry read from ARM)."""
        from components.config.azure import adopted_password

        key = ADOPT_KEYS.get(str(props.get(ROLE)), "the adopted password")
        token_name = props[TOKEN_NAME]
        wanted, _, value = adopted_password(str(props[ADOPT]))
        slots = {p.name: p for p in client.password_slots(props[RESOURCE_GROUP], props[REGISTRY_NAME], token_name)}
        if wanted is None and len(slots) != 1:
            raise AdoptError(
                f"{key}: token '{token_name}' holds {len(slots)} passwords ({', '.join(sorted(slots)) or 'none'}): "
                "say which slot holds this one, as password1:VALUE or password2:VALUE"
            )
        slot = wanted or next(iter(slots))
        if slot not in slots:
            raise AdoptError(f"{key}: token '{token_name}' has no password in {slot} (it holds: {', '.join(sorted(slots)) or 'none'})")
        expiry = slots[slot].expiry
        return slot, value, format_expiry(expiry) if expiry else ""

    def create(self, props: dict[str, Any]) -> CreateResult:
        """Generate a password in a free slot of the token (or adopt the one given); consumers use it at once."""
        with self._client(props) as client:
            slot, value, expiry = self._adopt(client, props) if props.get(ADOPT) else self._issue(client, props)
        outs = {k: props.get(k) for k in INPUT_KEYS}
        outs.update({SLOT: slot, VALUE: value, EXPIRY: expiry, USERNAME: props[TOKEN_NAME]})
        outs.update(NO_NEXT_PASSWORD)
        outs[MISSING] = []
        return CreateResult(f"{props[TOKEN_ID]}/{slot}", outs)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        """Replace for another token; update for a rotation step that is safe now or new tuning."""
        replaces = [k for k in REPLACE_KEYS if _changed(olds.get(k), news.get(k))]
        if replaces:
            return DiffResult(changes=True, replaces=replaces)
        # Only a rotation step changes an output. New tuning (UPDATE_KEYS) is no update: the
        # engine then records the new inputs and keeps the outputs, and the next step uses them.
        # An update would preview every output as unknown, and with them the connection string,
        # the pull secrets and the nodes' auth (docs/architecture.md, "Previews").
        # A state written before roles and rotation phases lacks outputs consumers now read: one
        # update records them (the password stays).
        legacy = any(k not in olds for k in (ROLE, NEXT_SLOT, MISSING))
        return DiffResult(changes=legacy or planned_step(olds, news, now()) is not None, replaces=[])

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """Take the one rotation step that is safe now (if any) and record the inputs."""
        step = planned_step(olds, news, now())
        state = rotation_state(olds, news)
        # A state written before rotation phases existed has no next password or missing list.
        outs: dict[str, Any] = {**NO_NEXT_PASSWORD, MISSING: []}
        outs.update({k: olds[k] for k in OUTPUT_KEYS if olds.get(k) is not None})
        outs.update({k: news.get(k) for k in INPUT_KEYS})
        outs[USERNAME] = news.get(TOKEN_NAME)
        if step is rotation.Step.ISSUE:
            with self._client(news) as client:
                slot, value, expiry = self._issue(client, news)
            if state_role_switches(olds, news):
                # The connection string works against Azure at once (and a state with no password
                # yet has nothing to protect): switch now. SlotRetirement removes the old slot.
                outs.update({SLOT: slot, VALUE: value, EXPIRY: expiry})
            else:
                # Client: the site accepts it only after a sync; consumers keep the old one.
                outs.update({NEXT_SLOT: slot, NEXT_VALUE: value, NEXT_EXPIRY: expiry})
        elif step is rotation.Step.SWITCH:
            outs.update({SLOT: state.next_slot, VALUE: olds.get(NEXT_VALUE), EXPIRY: olds.get(NEXT_EXPIRY)})
            outs.update(NO_NEXT_PASSWORD)
        if step is not None:
            outs[MISSING] = []
        return UpdateResult(outs)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """On refresh, record the slots of this resource that are gone from the token in Azure.

        The next ``up`` re-issues them (see :func:`components.azure.rotation.next_step`); a stale value is
        never presented as working.
        """
        ours = [s for s in (props.get(SLOT), props.get(NEXT_SLOT)) if s]
        if not ours:
            return ReadResult(id_, props)
        from components.azure.arm import TokenNotFoundError

        with self._client(props) as client:
            try:
                slots = client.password_slots(props[RESOURCE_GROUP], props[REGISTRY_NAME], props[TOKEN_NAME])
                in_use = {p.name for p in slots}
            except TokenNotFoundError:
                in_use = set()
        outs = dict(props)
        outs[MISSING] = sorted(s for s in ours if s not in in_use)
        return ReadResult(id_, outs)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        """Remove this resource's slots only; any other password on the token stays."""
        ours = list(dict.fromkeys(s for s in (props.get(SLOT), props.get(NEXT_SLOT)) if s))
        if not ours:
            return  # create never finished: nothing was issued
        with self._client(props) as client:
            for slot in ours:
                client.remove_password(props[RESOURCE_GROUP], props[REGISTRY_NAME], props[TOKEN_NAME], slot)


class TokenPassword(Resource, module="edgeregistry", name="TokenPassword"):
    """A password of an ACR token, generated once, rotated before it expires, removed on delete.

    Inputs (state names in brackets):

    :param subscription_id: [subscriptionId] subscription of the registry.
    :param resource_group: [resourceGroup] resource group of the registry.
    :param registry_name: [registryName] the (parent) registry that holds the token.
    :param token_name: [tokenName] the token's name; also the ``username`` output.
    :param token_id: [tokenId] the token's ARM id (pass ``token.id`` so the password depends on it).
    :param expiry_days: [expiryDays] lifetime of each generated password, in days.
    :param rotate_before_days: [rotateBeforeDays] rotate when the password expires within this
        many days; must be smaller than ``expiry_days``.
    :param arm_endpoint: [armEndpoint] ARM base URL; ``https://management.azure.com`` if omitted.
    :param role: [role] ``sync`` (consumers switch to a new password at once) or ``client``
        (consumers switch after the site has synced it); see components/azure/rotation.py.
    :param present_slots: [presentSlots] slots the token holds, read from ARM at program time;
        None when unknown.
    :param synced_slots: [syncedSlots] slots created before the connected registry's last sync;
        None when unknown (no rotation step that needs a sync is then taken).
    :param adopt: [adopt] (secret) a password already in use, ``VALUE`` or ``password1:VALUE``:
        create records it (its expiry read from ARM) instead of issuing one; ignored afterwards.
    :param opts: resource options; ``additional_secret_outputs=["value", "nextValue"]`` is always added.

    ``value`` and ``nextValue`` are secret outputs. ``provider`` replaces the default provider (tests only).
    """

    slot: pulumi.Output[str]
    """Which slot holds this password: ``password1`` or ``password2``."""
    value: pulumi.Output[str]
    """The password (secret)."""
    expiry: pulumi.Output[str]
    """When the password expires, ISO 8601 UTC (``2026-03-01T12:00:00Z``)."""
    username: pulumi.Output[str]
    """The user name to log in with: the token name."""
    # Dynamic resources expose outputs under their state names, hence camelCase here.
    nextSlot: pulumi.Output[str | None]  # noqa: N815
    """Client token: the slot of a new password waiting for a sync."""

    def __init__(
        self,
        resource_name: str,
        *,
        subscription_id: pulumi.Input[str],
        resource_group: pulumi.Input[str],
        registry_name: pulumi.Input[str],
        token_name: pulumi.Input[str],
        token_id: pulumi.Input[str],
        expiry_days: pulumi.Input[float],
        rotate_before_days: pulumi.Input[float],
        arm_endpoint: pulumi.Input[str] | None = None,
        role: str = rotation.SYNC_ROLE,
        present_slots: list[str] | None = None,
        synced_slots: list[str] | None = None,
        adopt: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
        provider: TokenPasswordProvider | None = None,
    ) -> None:
        props: dict[str, Any] = {
            SUBSCRIPTION_ID: subscription_id,
            RESOURCE_GROUP: resource_group,
            REGISTRY_NAME: registry_name,
            TOKEN_NAME: token_name,
            TOKEN_ID: token_id,
            EXPIRY_DAYS: expiry_days,
            ROTATE_BEFORE_DAYS: rotate_before_days,
            ARM_ENDPOINT: arm_endpoint,
            ROLE: role,
            PRESENT_SLOTS: sorted(present_slots) if present_slots is not None else None,
            SYNCED_SLOTS: sorted(synced_slots) if synced_slots is not None else None,
            # A secret input, read by create only and never copied into the outputs.
            ADOPT: pulumi.Output.secret(adopt) if adopt is not None else None,
            # Declared (as None) so the SDK exposes them as output attributes.
            **{k: None for k in OUTPUT_KEYS},
        }
        # Merged, not replaced: the caller's options (parent, depends_on, ...) are kept.
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=SECRET_OUTPUTS))
        super().__init__(provider or TokenPasswordProvider(), resource_name, props, opts)


def _changed(old: Any, new: Any) -> bool:
    # An unknown new value (preview, upstream resource being replaced) may differ: assume it does.
    return new == UNKNOWN or old != new


def _known_str(value: Any) -> TypeGuard[str]:
    return isinstance(value, str) and value != UNKNOWN and value != ""


def _known_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
