"""``TokenPassword``: one password of an ACR token, with a real create / diff / delete lifecycle.

Why a dynamic resource: pulumi-azure-native cannot generate token passwords, and calling ARM from an
``apply`` would issue a new password on every run. As a resource, a password is generated once,
kept (as a secret) in the state, rotated when it is about to expire, and removed on destroy.

Lifecycle (docs/azure.md, "Token passwords": a token has two password slots, ``password1`` and ``password2``):

* **create** picks a free slot (``password1`` preferred), generates a password there valid for
  ``expiryDays`` and outputs ``slot``, ``value`` (secret), ``expiry`` and ``username``. Two
  occupied slots are an error naming the token: the resource never overwrites a password it did
  not issue, since something else may depend on it.
* **diff** replaces the resource when it would point at another token (``subscriptionId``,
  ``resourceGroup``, ``registryName``, ``tokenName``, ``tokenId``) and when the password is due for
  rotation: ``now >= expiry - rotateBeforeDays``. ``expiryDays``, ``rotateBeforeDays`` and
  ``armEndpoint`` are updated in place (they take effect at the next rotation / call).
* **rotation without downtime**: Pulumi replaces create-before-delete by default, so the new
  password is generated in the *other* slot, dependents (connection string, pull secrets) are
  updated to it, and only then does delete remove the old slot. Do not set
  ``delete_before_replace`` on this resource: it would remove the working password first.
* **delete** removes only this resource's slot (PATCH the token with the remaining password); a
  token or slot that is already gone counts as deleted.
* **preview** issues nothing: the Python dynamic provider does not declare ``supportsPreview``, so
  the engine does not call ``create`` during preview (pulumi/pulumi
  sdk/go/common/resource/plugin/provider_plugin.go, ``Create``: "if req.Preview ... if
  !protocol.supportsPreview ... return CreateResponse{Properties: req.Properties}"); diff runs in
  preview but only reads the stored state and the clock.

Rotation happens when ``pulumi up`` runs: schedule ``up`` more often than ``rotateBeforeDays``.
One ``TokenPassword`` per token: two resources on the same token would fight over its slots.

The provider is pickled with dill into the state and unpickled in the provider process, so it holds
no clients and imports the Azure SDK inside its methods.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, TypeGuard

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

from components.arm_provider import (
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

# A change to any of these means another token: a new password is needed.
REPLACE_KEYS: tuple[str, ...] = (SUBSCRIPTION_ID, RESOURCE_GROUP, REGISTRY_NAME, TOKEN_NAME, TOKEN_ID)
# These only affect future rotations / calls: update in place.
UPDATE_KEYS: tuple[str, ...] = (EXPIRY_DAYS, ROTATE_BEFORE_DAYS, ARM_ENDPOINT)
INPUT_KEYS: tuple[str, ...] = REPLACE_KEYS + UPDATE_KEYS
REQUIRED_KEYS: tuple[str, ...] = REPLACE_KEYS + (EXPIRY_DAYS, ROTATE_BEFORE_DAYS)

# Outputs.
SLOT = "slot"
VALUE = "value"
EXPIRY = "expiry"
USERNAME = "username"
OUTPUT_KEYS: tuple[str, ...] = (SLOT, VALUE, EXPIRY, USERNAME)


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
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def rotation_due(expiry: str, rotate_before_days: float, at: datetime) -> bool:
    """Whether a password expiring at ``expiry`` must be replaced at time ``at``."""
    return at >= parse_expiry(expiry) - timedelta(days=float(rotate_before_days))


class NoFreeSlotError(RuntimeError):
    """Both password slots of the token hold a password this resource did not issue."""


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
        token_id, token_name = news.get(TOKEN_ID), news.get(TOKEN_NAME)
        if (
            _known_str(token_id)
            and _known_str(token_name)
            and not token_id.lower().endswith(f"/tokens/{token_name}".lower())
        ):
            failures.append(CheckFailure(TOKEN_ID, f"tokenId does not end with /tokens/{token_name}"))
        return CheckResult(news, failures)

    def create(self, props: dict[str, Any]) -> CreateResult:
        """Generate a password in a free slot of the token."""
        from .arm import ArmError

        rg, registry, token_name = props[RESOURCE_GROUP], props[REGISTRY_NAME], props[TOKEN_NAME]
        token_id = props[TOKEN_ID]
        with self._client(props) as client:
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
                generated = client.generate_password(rg, registry, token_id, slot, requested)
            except ArmError:
                # ARM issued a password we could not read. The slot was free, so whatever is in
                # it now is ours: free it again, or the failed create would leak a slot and the
                # next rotation would find both taken.
                client.remove_password(rg, registry, token_name, slot)
                raise
        outs = {k: props.get(k) for k in INPUT_KEYS}
        outs.update(
            {
                SLOT: slot,
                VALUE: generated.value,
                # ARM's own expiry when it reports one: that is what rotation must beat.
                EXPIRY: format_expiry(generated.expiry or requested),
                USERNAME: token_name,
            }
        )
        return CreateResult(f"{token_id}/{slot}", outs)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        """Replace for another token or a due rotation; update for the tuning inputs."""
        replaces = [k for k in REPLACE_KEYS if _changed(olds.get(k), news.get(k))]
        rotate_days = news.get(ROTATE_BEFORE_DAYS)
        expiry = olds.get(EXPIRY)
        if not _known_str(expiry):
            replaces.append(EXPIRY)  # no usable expiry in the state: issue a fresh password
        elif _known_number(rotate_days) and rotation_due(expiry, rotate_days, now()):
            replaces.append(EXPIRY)
        updates = [k for k in UPDATE_KEYS if _changed(olds.get(k), news.get(k))]
        return DiffResult(changes=bool(replaces or updates), replaces=replaces)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """Record new tuning inputs; the password, its slot and expiry stay as they are."""
        outs = {k: v for k, v in olds.items() if k in INPUT_KEYS + OUTPUT_KEYS}
        outs.update({k: news.get(k) for k in INPUT_KEYS})
        return UpdateResult(outs)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """On refresh, drop the resource from state if its slot (or token) is gone in Azure."""
        slot = props.get(SLOT)
        if not slot:
            return ReadResult(id_, props)
        from .arm import TokenNotFoundError

        with self._client(props) as client:
            try:
                slots = client.password_slots(props[RESOURCE_GROUP], props[REGISTRY_NAME], props[TOKEN_NAME])
                in_use = {p.name for p in slots}
            except TokenNotFoundError:
                in_use = set()
        if slot not in in_use:
            return ReadResult("", {})
        return ReadResult(id_, props)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        """Remove this resource's slot only; the other slot (e.g. the rotated-in password) stays."""
        slot = props.get(SLOT)
        if not slot:
            return  # create never finished: nothing was issued
        with self._client(props) as client:
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
    :param opts: resource options; ``additional_secret_outputs=["value"]`` is always added.

    ``value`` is a secret output. ``provider`` replaces the default provider (tests only).
    """

    slot: pulumi.Output[str]
    """Which slot holds this password: ``password1`` or ``password2``."""
    value: pulumi.Output[str]
    """The password (secret)."""
    expiry: pulumi.Output[str]
    """When the password expires, ISO 8601 UTC (``2026-03-01T12:00:00Z``)."""
    username: pulumi.Output[str]
    """The user name to log in with: the token name."""

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
            # Declared (as None) so the SDK exposes them as output attributes.
            **{k: None for k in OUTPUT_KEYS},
        }
        # Merged, not replaced: the caller's options (parent, depends_on, ...) are kept.
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=[VALUE]))
        super().__init__(provider or TokenPasswordProvider(), resource_name, props, opts)


def _changed(old: Any, new: Any) -> bool:
    # An unknown new value (preview, upstream resource being replaced) may differ: assume it does.
    return new == UNKNOWN or old != new


def _known_str(value: Any) -> TypeGuard[str]:
    return isinstance(value, str) and value != UNKNOWN and value != ""


def _known_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
