"""A thin ARM client for the container-registry operations pulumi-azure-native lacks.

pulumi-azure-native has no ``generateCredentials`` (pulumi/pulumi-azure-native#3099) and no
connected-registry ``deactivate``; both exist in ``azure-mgmt-containerregistry``. This module
wraps exactly the calls the dynamic resources and the rotation gate need (docs/azure.md;
rotation: docs/runbooks.md, "Rotate credentials"):

* read a token's password slots (``tokens.get``) to find a free one,
* generate a password in one slot (``registries.begin_generate_credentials``),
* remove one slot (PATCH the token with the remaining passwords, ``tokens.begin_update``),
* deactivate a connected registry (``connected_registries.begin_deactivate``),
* read a connected registry's sync status (``connected_registries.get``): when it last synced,
  its connection state and activation, which gate each step of a password rotation.

ARM answers the two POSTs either with 200 and the result, or with 202 and a ``Location`` to
poll; the SDK's ``LROPoller`` handles both, so callers always get the final result.

Everything that differs between a real deployment and a test is a constructor argument: the ARM
endpoint (sovereign clouds, a local test server), the credential, the polling interval and any
azure-core transport option such as ``connection_verify``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # The Azure SDK is imported by the calls that use it: importing this module (for its errors,
    # constants and scopes, as the program and the fleet status do) loads none of it.
    from azure.core.credentials import TokenCredential

DEFAULT_ARM_ENDPOINT = "https://management.azure.com"

# Pinned rather than left to the SDK default so that an SDK upgrade cannot silently change the
# wire contract the tests check. azure-mgmt-containerregistry 15.0.0 is generated from this
# single api-version and it includes connectedRegistries (and deactivate) and tokens.
API_VERSION = "2025-11-01"

# A token has exactly two password slots; password1 is preferred when both are free.
PASSWORD_SLOTS: tuple[str, ...] = ("password1", "password2")

# Entra ID scopes for the ARM endpoints of the national clouds, as azure-mgmt-core maps them:
# the US Government audience is not the endpoint host, so "<endpoint>/.default" would be wrong.
_KNOWN_CLOUD_SCOPES: dict[str, str] = {
    "https://management.azure.com": "https://management.azure.com/.default",
    "https://management.chinacloudapi.cn": "https://management.chinacloudapi.cn/.default",
    "https://management.usgovcloudapi.net": "https://management.core.usgovcloudapi.net/.default",
}


class ArmError(RuntimeError):
    """An ARM call did not give what the program needs; the message says what and where.

    Messages never contain password values.
    """


class TokenNotFoundError(ArmError):
    """The token does not exist (it must be created before a password can be generated)."""


@dataclass(frozen=True)
class PasswordSlot:
    """A password slot in use on a token, as ``tokens.get`` reports it (ARM never returns values)."""

    name: str
    expiry: datetime | None
    creation_time: datetime | None


@dataclass(frozen=True)
class ConnectedRegistryStatus:
    """What ARM reports about a connected registry's link to its parent (all read-only)."""

    last_sync_time: datetime | None
    """``parent.syncProperties.lastSyncTime``: None when it has never synced."""
    connection_state: str | None
    """``connectionState``: Online, Offline, Syncing or Unhealthy."""
    activation_status: str | None
    """``activation.status``: Active or Inactive."""
    gateway_endpoint: str | None = None
    """``parent.syncProperties.gatewayEndpoint``: the host the on-prem registry syncs with."""


@dataclass(frozen=True)
class GeneratedPassword:
    """A freshly generated token password. ``value`` is kept out of ``repr`` so it cannot leak
    through logs or exception messages that format this object."""

    slot: str
    value: str = field(repr=False)
    expiry: datetime | None
    username: str | None


def credential_scope_for(arm_endpoint: str) -> str:
    """The Entra ID scope to request a token for ``arm_endpoint``.

    Known national clouds use azure-mgmt-core's mapping; any other endpoint (Azure Stack Hub, a
    test server) uses ``<endpoint>/.default``.
    """
    base = arm_endpoint.rstrip("/")
    return _KNOWN_CLOUD_SCOPES.get(base.lower(), f"{base}/.default")


class ArmClient:
    """The container-registry ARM operations that have no pulumi-azure-native equivalent.

    :param subscription_id: subscription of the parent registry.
    :param arm_endpoint: ARM base URL; override for sovereign clouds and tests.
    :param credential: any azure-core ``TokenCredential``; when omitted, a bearer token from
        ``EDGE_REGISTRY_ARM_TOKEN`` if set, else ``DefaultAzureCredential`` (components/azure/credentials.py).
    :param polling_interval: seconds between LRO polls when ARM sends no ``Retry-After``
        (the SDK default when omitted; tests pass 0).
    :param api_version: ARM api-version; see :data:`API_VERSION`.
    :param credential_scopes: Entra ID scopes; derived from ``arm_endpoint`` when omitted.
    :param client_kwargs: passed to the SDK client and its transport, e.g. ``connection_verify``
        (a CA bundle path) or ``retry_total``.
    """

    def __init__(
        self,
        subscription_id: str,
        *,
        arm_endpoint: str | None = None,
        credential: TokenCredential | None = None,
        polling_interval: float | None = None,
        api_version: str = API_VERSION,
        credential_scopes: list[str] | None = None,
        **client_kwargs: Any,
    ) -> None:
        from azure.mgmt.containerregistry import ContainerRegistryManagementClient

        endpoint = (arm_endpoint or DEFAULT_ARM_ENDPOINT).rstrip("/")
        if credential is None:
            import os

            from components.azure.credentials import credential_from_environment

            credential = credential_from_environment(os.environ)
        if polling_interval is not None:
            client_kwargs["polling_interval"] = polling_interval
        self.arm_endpoint = endpoint
        self._client = ContainerRegistryManagementClient(
            credential,
            subscription_id,
            base_url=endpoint,
            api_version=api_version,
            credential_scopes=credential_scopes or [credential_scope_for(endpoint)],
            **client_kwargs,
        )

    def close(self) -> None:
        """Close the underlying HTTP session."""
        self._client.close()

    def __enter__(self) -> ArmClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def password_slots(self, resource_group: str, registry_name: str, token_name: str) -> list[PasswordSlot]:
        """The token's password slots that hold a password (GET the token).

        :raises TokenNotFoundError: the token does not exist.
        """
        from azure.core.exceptions import ResourceNotFoundError

        try:
            token = self._client.tokens.get(resource_group, registry_name, token_name)
        except ResourceNotFoundError:
            raise TokenNotFoundError(
                f"token '{token_name}' not found in registry '{registry_name}' (resource group '{resource_group}')"
            ) from None
        credentials = token.properties.credentials if token.properties else None
        return [
            PasswordSlot(name=_slot_name(p.name), expiry=p.expiry, creation_time=p.creation_time)
            for p in (credentials.passwords or [] if credentials else [])
            if p.name
        ]

    def generate_password(
        self, resource_group: str, registry_name: str, token_id: str, slot: str, expiry: datetime
    ) -> GeneratedPassword:
        """Generate a new password for ``token_id`` in ``slot``, valid until ``expiry``.

        Whatever was in the slot is overwritten, so callers pick a free slot first. Works for both
        200 (result in the body) and 202 (result from polling ``Location``).

        :raises ArmError: ARM's result holds no value for ``slot``.
        """
        from azure.mgmt.containerregistry.models import GenerateCredentialsParameters

        _check_slot(slot)
        poller = self._client.registries.begin_generate_credentials(
            resource_group,
            registry_name,
            GenerateCredentialsParameters(token_id=token_id, name=slot, expiry=expiry),
        )
        result = poller.result()
        passwords = list(result.passwords or []) if result is not None else []
        for password in passwords:
            if _slot_name(password.name) == slot and password.value:
                return GeneratedPassword(
                    slot=slot,
                    value=password.value,
                    expiry=password.expiry,
                    username=result.username,
                )
        # Name only the slots, never the values ARM may have sent for them.
        returned = ", ".join(sorted(_slot_name(p.name) for p in passwords)) or "none"
        raise ArmError(
            f"generateCredentials for token '{token_id}' returned no value for slot '{slot}' "
            f"(slots in the response: {returned})"
        )

    def remove_password(self, resource_group: str, registry_name: str, token_name: str, slot: str) -> bool:
        """Remove one password slot and keep the other untouched.

        ARM has no "delete password" call: the token is PATCHed with the passwords that remain,
        named only (the az CLI does the same), so ARM keeps them as they are.

        :returns: ``True`` if a PATCH was sent; ``False`` if the token or the slot was already gone.
        """
        from azure.core.exceptions import ResourceNotFoundError
        from azure.mgmt.containerregistry.models import (
            TokenCredentialsProperties,
            TokenUpdateParameters,
            TokenUpdateProperties,
        )
        from azure.mgmt.containerregistry.models import (
            TokenPassword as TokenPasswordModel,
        )

        _check_slot(slot)
        try:
            in_use = self.password_slots(resource_group, registry_name, token_name)
        except TokenNotFoundError:
            return False
        if slot not in {p.name for p in in_use}:
            return False
        remaining = [TokenPasswordModel(name=p.name) for p in in_use if p.name != slot]
        update = TokenUpdateParameters(
            properties=TokenUpdateProperties(credentials=TokenCredentialsProperties(passwords=remaining))
        )
        try:
            self._client.tokens.begin_update(resource_group, registry_name, token_name, update).result()
        except ResourceNotFoundError:
            # Deleted between the GET and the PATCH: the password is gone with it.
            return False
        return True

    def connected_registry_status(
        self, resource_group: str, registry_name: str, connected_registry_name: str
    ) -> ConnectedRegistryStatus | None:
        """The connected registry's sync status; ``None`` if it does not exist (yet)."""
        from azure.core.exceptions import ResourceNotFoundError

        try:
            found = self._client.connected_registries.get(resource_group, registry_name, connected_registry_name)
        except ResourceNotFoundError:
            return None
        props = found.properties
        sync = props.parent.sync_properties if props and props.parent else None
        activation = props.activation if props else None
        return ConnectedRegistryStatus(
            last_sync_time=sync.last_sync_time if sync else None,
            connection_state=_slot_name(props.connection_state) if props and props.connection_state else None,
            activation_status=_slot_name(activation.status) if activation and activation.status else None,
            gateway_endpoint=(sync.gateway_endpoint or None) if sync else None,
        )

    def login_server(self, resource_group: str, registry_name: str) -> str:
        """The registry's login server (``<name>.azurecr.io``, another suffix in sovereign clouds).

        :raises ArmError: the registry does not exist or ARM names no login server.
        """
        from azure.core.exceptions import ResourceNotFoundError

        try:
            found = self._client.registries.get(resource_group, registry_name)
        except ResourceNotFoundError:
            raise ArmError(f"registry '{registry_name}' not found (resource group '{resource_group}')") from None
        if not found.login_server:
            raise ArmError(f"ARM names no login server for registry '{registry_name}'")
        return str(found.login_server)

    def deactivate_connected_registry(
        self, resource_group: str, registry_name: str, connected_registry_name: str
    ) -> bool:
        """Deactivate a connected registry so that a new on-prem install can activate it.

        :returns: ``True`` if ARM deactivated it; ``False`` if it does not exist (nothing to do).
        """
        from azure.core.exceptions import ResourceNotFoundError

        try:
            self._client.connected_registries.begin_deactivate(
                resource_group, registry_name, connected_registry_name
            ).result()
        except ResourceNotFoundError:
            return False
        return True


def _slot_name(name: object) -> str:
    # The SDK may hand back an enum (TokenPasswordName, ConnectionState); str() of a (str, Enum)
    # is "Cls.MEMBER", so take its value.
    return str(name.value) if isinstance(name, Enum) else str(name)


def _check_slot(slot: str) -> None:
    if slot not in PASSWORD_SLOTS:
        raise ValueError(f"password slot must be one of {', '.join(PASSWORD_SLOTS)}, not '{slot}'")
