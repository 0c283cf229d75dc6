"""The fleet status's ARM reads: per parent registry, one paged list of its connected registries
and one paged list of its tokens (password slots: creation times and expiries) — never one call per site.

It uses the program's ARM rules (``components.azure.arm``): the stack's ``armEndpoint`` as base URL,
the Entra ID scope of that cloud (sovereign clouds differ), the pinned api-version.

* **Credentials** (components/azure/credentials.py): a bearer token from ``EDGE_REGISTRY_ARM_TOKEN`` when it is set (air-gapped
  operator machines, tests), else azure-identity's ``DefaultAzureCredential``. With an
  :class:`~components.fleet.endpoints.EndpointPolicy` (the command passes one for the bearer
  token) a registry at an endpoint it refuses is a line of the report, never asked, and every
  request is checked again before the token is attached (:class:`GuardedAuthenticationPolicy`).
* **Paging**: the SDK's ``ItemPaged`` follows ``nextLink``; pages are counted for the progress.
* **Throttling**: azure-core's retry policy retries 429 (and 5xx) honouring ``Retry-After``;
  :class:`BoundedRetryPolicy` caps each wait so a huge ``Retry-After`` cannot hang a daily job.
* **Failures**: a registry that cannot be read comes back as a :class:`RegistryListing` with
  ``error`` set, never as an exception, so it is one line of the report. That includes an
  answer the fleet status cannot use: the SDK leaves a value it cannot deserialize (a
  ``lastSyncTime`` that is not a date) as the raw string, so every time and duration is
  type-checked here (:class:`UnexpectedArmData`) before the verdicts compute with it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING, Any

# azure-core's retry policy is the base class below; the SDK client (azure-mgmt-containerregistry,
# its models) and azure-identity are imported where they are used.
from azure.core.exceptions import ClientAuthenticationError
from azure.core.pipeline.policies import BearerTokenCredentialPolicy, RetryPolicy

from components.azure.arm import API_VERSION, credential_scope_for
from components.fleet.endpoints import EndpointPolicy
from components.fleet.model import (
    ObservedConnectedRegistry,
    RegistryListing,
    RegistryRef,
    StatusDetail,
    TokenPasswords,
)
from components.azure.rotation import SlotStatus, aware

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.mgmt.containerregistry import ContainerRegistryManagementClient

#: Longest single wait for a ``Retry-After``, and azure-core's ``retry_total`` (a throttled
#: request is sent at most this many times).
DEFAULT_MAX_RETRY_WAIT = 60.0
DEFAULT_RETRY_TOTAL = 4

#: Called as (registry, what is being listed, page number) while a list is read.
PageCallback = Callable[[RegistryRef, str, int], None]


class UnexpectedArmData(ValueError):
    """ARM answered, but a value is not of the type its API spec gives (e.g. a time that is not
    a date-time): the registry is reported as unreadable rather than judged on bad data."""


class BoundedRetryPolicy(RetryPolicy):
    """azure-core's retry policy with every ``Retry-After`` wait capped at ``max_wait`` seconds."""

    def __init__(self, max_wait: float = DEFAULT_MAX_RETRY_WAIT, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_wait = max_wait

    def get_retry_after(self, response: Any) -> float | None:
        wait = super().get_retry_after(response)
        return None if wait is None else min(wait, self.max_wait)


class EndpointRefused(ClientAuthenticationError):
    """The token is not sent to this URL (:class:`~components.fleet.endpoints.EndpointPolicy`).
    An authentication error, so azure-core's retry policy does not retry it."""


class GuardedAuthenticationPolicy(BearerTokenCredentialPolicy):
    """azure-core's bearer-token policy that first checks each request's URL (the base URL, a
    ``nextLink``, a redirect's target) against an :class:`EndpointPolicy`. It takes the place of
    the SDK's ARM policy, whose only addition is answering a claims challenge (continuous access
    evaluation), which a static token cannot do anyway."""

    def __init__(self, credential: TokenCredential, *scopes: str, endpoint_policy: EndpointPolicy, **kwargs: Any) -> None:
        super().__init__(credential, *scopes, **kwargs)
        self._endpoint_policy = endpoint_policy

    def on_request(self, request: Any) -> None:
        refusal = self._endpoint_policy.refusal(request.http_request.url)
        if refusal is not None:
            raise EndpointRefused(refusal)
        super().on_request(request)


class FleetListingClient:
    """Lists connected registries and tokens per parent registry. Use as a context manager.

    :param credential: any azure-core ``TokenCredential``.
    :param endpoint_policy: where ``credential``'s token may go; None: anywhere (a credential
        that asks Entra ID for each endpoint's own audience).
    :param max_retry_wait: cap on one ``Retry-After`` wait, seconds.
    :param retry_total: azure-core's ``retry_total``: tries per request on 429 and 5xx.
    :param client_kwargs: passed to the SDK client and its transport (e.g. ``connection_verify``).
    """

    def __init__(
        self,
        credential: TokenCredential,
        *,
        max_retry_wait: float = DEFAULT_MAX_RETRY_WAIT,
        retry_total: int = DEFAULT_RETRY_TOTAL,
        endpoint_policy: EndpointPolicy | None = None,
        **client_kwargs: Any,
    ) -> None:
        self._credential = credential
        self._endpoint_policy = endpoint_policy
        self._max_retry_wait = max_retry_wait
        self._retry_total = retry_total
        self._client_kwargs = client_kwargs
        self._clients: dict[tuple[str, str], ContainerRegistryManagementClient] = {}

    def __enter__(self) -> FleetListingClient:
        return self

    def __exit__(self, *exc: object) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()

    def _client(self, registry: RegistryRef) -> ContainerRegistryManagementClient:
        from azure.mgmt.containerregistry import ContainerRegistryManagementClient

        key = (registry.arm_endpoint, registry.subscription_id)
        if key not in self._clients:
            scope = credential_scope_for(registry.arm_endpoint)
            guard: dict[str, Any] = {}
            if self._endpoint_policy is not None:
                guard["authentication_policy"] = GuardedAuthenticationPolicy(
                    self._credential, scope, endpoint_policy=self._endpoint_policy
                )
            self._clients[key] = ContainerRegistryManagementClient(
                self._credential,
                registry.subscription_id,
                base_url=registry.arm_endpoint,
                api_version=API_VERSION,
                credential_scopes=[scope],
                retry_policy=BoundedRetryPolicy(
                    self._max_retry_wait, retry_total=self._retry_total, **self._client_kwargs
                ),
                **guard,
                **self._client_kwargs,
            )
        return self._clients[key]

    def list_registry(self, registry: RegistryRef, on_page: PageCallback | None = None) -> RegistryListing:
        """Both lists of one registry; on any ARM or network failure, a listing with ``error``."""
        from azure.core.exceptions import AzureError

        notify = on_page or (lambda *_: None)
        if self._endpoint_policy is not None and (refusal := self._endpoint_policy.refusal(registry.arm_endpoint)):
            return RegistryListing(registry, error=f"not asked: {refusal}")
        try:
            client = self._client(registry)
            connected: list[ObservedConnectedRegistry] = []
            pages = client.connected_registries.list(registry.resource_group, registry.name).by_page()
            for number, page in enumerate(pages, 1):
                notify(registry, "connected registries", number)
                connected += [observed_connected_registry(item) for item in page]
            tokens: dict[str, TokenPasswords] = {}
            for number, page in enumerate(client.tokens.list(registry.resource_group, registry.name).by_page(), 1):
                notify(registry, "tokens", number)
                for token in page:
                    if token.id:
                        tokens[token.id.lower()] = token_passwords(token)
        except AzureError as error:
            return RegistryListing(registry, error=describe_error(error))
        except (ValueError, TypeError) as error:
            # azure-core's DeserializationError is a ValueError, not an AzureError.
            detail = str(error) if isinstance(error, UnexpectedArmData) else describe_error(error)
            return RegistryListing(registry, error=f"unexpected answer from ARM: {detail}")
        return RegistryListing(registry, tuple(connected), tokens)


def observed_connected_registry(item: Any) -> ObservedConnectedRegistry:
    """The SDK's ``ConnectedRegistry`` as the fleet status sees it.

    :raises UnexpectedArmData: a time or duration that is not one.
    """
    props = item.properties
    parent = props.parent if props else None
    sync = parent.sync_properties if parent else None
    token_ids = ([sync.token_id] if sync and sync.token_id else []) + list(props.client_token_ids or [] if props else [])
    gc = getattr(props, "garbage_collection", None) if props else None
    where = f"connected registry {item.name}"
    return ObservedConnectedRegistry(
        name=str(item.name),
        connection_state=_text(props.connection_state) if props else None,
        activation=_text(props.activation.status) if props and props.activation else None,
        last_activity=_moment(props.last_activity_time, where, "lastActivityTime") if props else None,
        last_sync=_moment(sync.last_sync_time, where, "parent.syncProperties.lastSyncTime") if sync else None,
        schedule=sync.schedule if sync else None,
        sync_window=_span(sync.sync_window, where, "parent.syncProperties.syncWindow") if sync else None,
        version=props.version if props else None,
        status_details=tuple(
            StatusDetail(type=d.type, code=d.code, description=d.description)
            for d in (props.status_details or [] if props else [])
        ),
        token_ids=tuple(token_ids),
        message_ttl=_span(sync.message_ttl, where, "parent.syncProperties.messageTtl") if sync else None,
        # The wire value: the SDK's model reads any non-empty string as True.
        garbage_collection_enabled=_flag(_wire(gc, "enabled"), where, "garbageCollection.enabled") if gc else None,
        garbage_collection_schedule=_text(_wire(gc, "schedule")) if gc else None,
    )


def token_passwords(token: Any) -> TokenPasswords:
    """A token's password slots with their creation times and expiries (ARM never returns
    password values on reads).

    :raises UnexpectedArmData: a creation time or expiry that is not a date-time.
    """
    credentials = token.properties.credentials if token.properties else None
    passwords = credentials.passwords or [] if credentials else []
    where = f"token {token.name}"
    slots = []
    for password in passwords:
        name = str(_text(password.name))
        key = f"credentials.passwords[{name}]"
        slots.append(SlotStatus(name, _moment(password.creation_time, where, f"{key}.creationTime"),
                                _moment(password.expiry, where, f"{key}.expiry")))
    return TokenPasswords(name=str(token.name), slots=tuple(slots))


def describe_error(error: Exception) -> str:
    """One line for the report: status and ARM's error code when there is one, then the message."""
    from azure.core.exceptions import HttpResponseError

    text = str(getattr(error, "message", None) or error) or type(error).__name__
    message = text.strip().splitlines()[0]
    if isinstance(error, HttpResponseError) and error.status_code:
        arm_error = error.error  # ARM's {"error": {"code", "message"}}, when the body had one
        code = arm_error.code if arm_error is not None and arm_error.code else error.reason
        if arm_error is not None and arm_error.message:
            message = str(arm_error.message).strip().splitlines()[0]
        return f"HTTP {error.status_code} {code}: {message}"
    return f"{type(error).__name__}: {message}"


def _moment(value: Any, where: str, key: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise UnexpectedArmData(f"{where}: {key} is {value!r}, not a date-time")
    return aware(value)


def _span(value: Any, where: str, key: str) -> timedelta | None:
    # isodate gives a Duration, not a timedelta, for years and months: no sync window has those.
    if value is None:
        return None
    if not isinstance(value, timedelta):
        raise UnexpectedArmData(f"{where}: {key} is {str(value)!r}, not a duration in days, hours or minutes")
    return value


def _wire(model: Any, key: str) -> Any:
    """A property as ARM sent it: the SDK's models are mappings of the wire JSON."""
    return model.get(key) if isinstance(model, Mapping) else getattr(model, key, None)


def _flag(value: Any, where: str, key: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise UnexpectedArmData(f"{where}: {key} is {value!r}, not true or false")


def _text(value: Any) -> str | None:
    # The SDK may hand back an enum member; str() of a (str, Enum) is "Cls.MEMBER".
    if value is None:
        return None
    return str(value.value) if isinstance(value, Enum) else str(value)
