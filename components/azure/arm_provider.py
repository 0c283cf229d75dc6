"""What the ARM-backed dynamic providers share: the wire names of the registry's coordinates
and how a provider gets its ARM client (injectable for tests)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pulumi.dynamic import ResourceProvider

if TYPE_CHECKING:
    from components.azure.arm import ArmClient

# Wire names of the inputs (camelCase like every other Pulumi resource state).
SUBSCRIPTION_ID = "subscriptionId"
RESOURCE_GROUP = "resourceGroup"
REGISTRY_NAME = "registryName"
ARM_ENDPOINT = "armEndpoint"

ArmClientFactory = Callable[[str, str | None], "ArmClient"]
"""Builds an ``ArmClient`` from (subscription id, ARM endpoint or None); tests inject their own."""


class ArmBackedProvider(ResourceProvider):
    """A dynamic provider that talks to ARM.

    :param client_factory: builds the ARM client; defaults to ``ArmClient`` with
        ``DefaultAzureCredential``. Tests pass one with a fake credential and a test CA.
    """

    def __init__(self, client_factory: ArmClientFactory | None = None) -> None:
        super().__init__()
        self._client_factory = client_factory

    def _client(self, props: dict[str, Any]) -> ArmClient:
        subscription_id, endpoint = str(props[SUBSCRIPTION_ID]), props.get(ARM_ENDPOINT) or None
        if self._client_factory is not None:
            return self._client_factory(subscription_id, endpoint)
        # Imported here, not at module level: the program declares resources without loading
        # the Azure management SDK; only the provider process needs it.
        from components.azure.arm import ArmClient

        return ArmClient(subscription_id, arm_endpoint=endpoint)
