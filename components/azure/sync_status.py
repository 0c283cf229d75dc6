"""Where the program learns, at program time, whether the site has synced: ARM's view of the
connected registry and of its tokens' password slots.

The reader is a callable so that the offline render and the mocked tests inject deterministic
fakes, and the ARM contract tests point it at tests/arm_server.py. Only reads happen here (they
run in preview too); password values never appear: ARM's token GET does not return them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from components.azure.arm_provider import ArmClientFactory
from components.azure.rotation import SlotStatus


@dataclass(frozen=True)
class SiteCoordinates:
    """Where the site's connected registry and tokens live."""

    subscription_id: str
    resource_group: str
    registry_name: str
    connected_registry_name: str
    token_names: tuple[str, ...]
    arm_endpoint: str | None = None


@dataclass(frozen=True)
class SiteSyncStatus:
    """ARM's view of the site at program time."""

    exists: bool
    """Whether the connected registry exists (False before the first ``up``)."""
    last_sync_time: datetime | None = None
    connection_state: str | None = None
    activation_status: str | None = None
    tokens: Mapping[str, Sequence[SlotStatus] | None] = field(default_factory=dict)
    """Password slots per token name; None for a token that does not exist."""
    gateway_endpoint: str | None = None
    """Where the on-prem registry syncs (``parent.syncProperties.gatewayEndpoint``); None when
    the connected registry does not exist yet or ARM did not report it."""
    error: str | None = None
    """Why ARM could not be read (then nothing is known and no rotation step is confirmed)."""

    @property
    def known(self) -> bool:
        return self.error is None


#: Reads the site's status; the program calls it once per run.
SyncStatusReader = Callable[[SiteCoordinates], SiteSyncStatus]


class ArmSyncStatusReader:
    """Reads the site's status from ARM with :class:`components.azure.arm.ArmClient`.

    :param client_factory: see :class:`components.azure.arm_provider.ArmBackedProvider` (tests pass one
        with a fake credential and the test server's CA).
    """

    def __init__(self, client_factory: ArmClientFactory | None = None) -> None:
        self._client_factory = client_factory

    def __call__(self, where: SiteCoordinates) -> SiteSyncStatus:
        from azure.core.exceptions import AzureError

        from components.azure.arm import ArmClient, ArmError, TokenNotFoundError

        try:
            client = (
                self._client_factory(where.subscription_id, where.arm_endpoint)
                if self._client_factory
                else ArmClient(where.subscription_id, arm_endpoint=where.arm_endpoint)
            )
            with client:
                status = client.connected_registry_status(
                    where.resource_group, where.registry_name, where.connected_registry_name
                )
                tokens: dict[str, list[SlotStatus] | None] = {}
                for name in where.token_names:
                    try:
                        slots = client.password_slots(where.resource_group, where.registry_name, name)
                    except TokenNotFoundError:
                        tokens[name] = None
                        continue
                    tokens[name] = [SlotStatus(s.name, s.creation_time, s.expiry) for s in slots]
        except (AzureError, ArmError, OSError) as error:
            # The message names the cause (auth, network); ARM errors carry no password values.
            return SiteSyncStatus(exists=False, error=f"{type(error).__name__}: {error}")
        if status is None:
            return SiteSyncStatus(exists=False, tokens=tokens)
        return SiteSyncStatus(
            exists=True,
            last_sync_time=status.last_sync_time,
            connection_state=status.connection_state,
            activation_status=status.activation_status,
            tokens=tokens,
            gateway_endpoint=status.gateway_endpoint,
        )
