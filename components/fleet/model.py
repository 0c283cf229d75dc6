"""What the fleet status knows: sites as the stack files declare them, connected registries as
ARM reports them, and one listing per parent registry.

Plain frozen dataclasses with no I/O (a password slot is the rotation rules' own
``SlotStatus``), shared by the stack reader (``fleet_stacks``), the ARM
listing client (``fleet_listing``), the verdicts (``fleet_verdicts``) and the renderers
(``fleet_report``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from components.azure.rotation import SlotStatus


@dataclass(frozen=True, order=True)
class RegistryRef:
    """A parent registry, and where its ARM API is: what one paged listing covers."""

    arm_endpoint: str
    subscription_id: str
    resource_group: str
    name: str

    @property
    def label(self) -> str:
        """``<resource group>/<registry>``: how the reports name a registry."""
        return f"{self.resource_group}/{self.name}"


@dataclass(frozen=True)
class TlsFacts:
    """A site's https certificates as far as its stack file tells (the offline budget's source).

    The program issues the server certificate and the site CA and keeps their dates in the stack's
    state, which the fleet status does not read; what the config does say is the renewal rule: any
    ``up`` renews a certificate within ``certificateRenewBeforeDays`` of its expiry. Material the
    site brings (``tlsCertificate``, ``tlsCaCertificate``) has its own date when the stack file
    holds it in clear; set with ``--secret`` it is ciphertext here, and its date is unknown.
    """

    renew_before_days: int
    validity_days: int
    server_source: str  # "issued", "brought" (date below) or "brought-secret" (date unknown)
    ca_source: str
    server_not_after: datetime | None = None
    ca_not_after: datetime | None = None


@dataclass(frozen=True)
class SiteDeclaration:
    """One site as its stack file declares it (the keys the fleet status needs)."""

    stack: str
    registry: RegistryRef
    connected_registry: str
    sync_schedule: str
    sync_window: timedelta
    rotate_before: timedelta
    nodes: tuple[Any, ...] = field(default=(), compare=False, repr=False)
    """The site's nodes (components/config/nodes.py), to refuse two stacks naming one node's file."""
    message_ttl: timedelta = timedelta(days=2)
    """``messageTtl``: how long a message for the site waits to be synced (ARM's value wins when listed)."""
    password_expiry_days: int = 90
    """``passwordExpiryDays``: the lifetime of a password a rotation issues."""
    tls: TlsFacts | None = None
    """The https certificates as the stack file knows them; None for a plain-http site."""


@dataclass(frozen=True)
class StatusDetail:
    """One entry of a connected registry's ``statusDetails``."""

    type: str | None
    code: str | None
    description: str | None


@dataclass(frozen=True)
class ObservedConnectedRegistry:
    """A connected registry as ``GET …/registries/<r>/connectedRegistries`` reports it."""

    name: str
    connection_state: str | None
    activation: str | None
    last_activity: datetime | None
    last_sync: datetime | None
    schedule: str | None
    sync_window: timedelta | None
    version: str | None
    status_details: tuple[StatusDetail, ...] = ()
    token_ids: tuple[str, ...] = ()  # the sync token first, then the client tokens
    message_ttl: timedelta | None = None  # parent.syncProperties.messageTtl
    garbage_collection_enabled: bool | None = None  # garbageCollection.enabled
    garbage_collection_schedule: str | None = None  # garbageCollection.schedule


@dataclass(frozen=True)
class TokenPasswords:
    """A token's password slots as ARM lists them: name, creation time, expiry (never a value).

    The creation times matter as much as the expiries: after a rotation the old slot stays
    until the site has synced the new one (components/azure/rotation.py), so which slot is newest,
    and whether the site synced after it was created, decides which expiry counts.
    """

    name: str
    slots: tuple[SlotStatus, ...]


@dataclass(frozen=True)
class RegistryListing:
    """Everything one parent registry's lists gave, or why they could not be read."""

    registry: RegistryRef
    connected_registries: tuple[ObservedConnectedRegistry, ...] = ()
    # keyed by the token's ARM id, lower-cased (ARM ids compare case-insensitively)
    tokens: dict[str, TokenPasswords] = field(default_factory=dict)
    error: str | None = None
