"""A local HTTPS stand-in for the ARM container-registry endpoints the program calls directly.

It answers like the examples of the ARM spec (docs/azure.md, "Token passwords"; tests/fixtures/arm/README.md;
api-version aside): token GET and PATCH, ``registries/generateCredentials`` (200 with the result, or
202 + ``Location`` then the result from the polled operation), ``connectedRegistries/deactivate``
(200, or 202 + ``Location``; 404 when the connected registry does not exist), connected-registry
GET (the body of tests/fixtures/arm/ConnectedRegistryGet.json with the site's ``lastSyncTime``,
``connectionState`` and ``activation.status``), and the two paged lists the
fleet status reads, ``…/connectedRegistries`` and ``…/tokens`` (``nextLink`` after
``page_size`` items; 429 + ``Retry-After`` or an error status on demand). It serves HTTPS on 127.0.0.1 with a
throwaway CA from ``trustme`` because the SDK's bearer-token policy refuses plain HTTP.

Every request is recorded (method, path, query, JSON body, headers) so tests can assert the exact
wire contract, and the server keeps just enough state (token password slots, connected
registries) for create → rotate → delete sequences to behave like ARM.

The azure-native stand-in (tests/engine/standin/azure_native.py) manages scope maps, tokens and
connected registries here too: PUT/GET/DELETE of each (bodies shaped like the spec's examples,
``…/preview/2024-11-01-preview/examples/{ScopeMapGet,TokenCreate,ConnectedRegistryCreate}.json``
in Azure/azure-rest-api-specs, output-only properties filled in), and GET of the registry itself
(``getRegistry``, shaped like ``RegistryGet.json``). They share the state above: a token PUT sets
its password slots, a connected registry PUT creates its activation and sync status, a DELETE
removes them, so the program's own ARM calls and the stand-in see one Azure. PUT and DELETE
answer synchronously, or as long-running operations (``put_mode``/``delete_mode`` "async": 201 +
``Azure-AsyncOperation``, 202 + ``Location``, as the spec's ``x-ms-long-running-operation``
allows). Faults on demand for any route: :meth:`ArmState.inject` (a 409, a 429 with
``Retry-After``, a failing DELETE, ...), and ``operation_outcome`` to fail an async PUT.
"""

from __future__ import annotations

import json
import re
import secrets
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

import trustme
from azure.core.credentials import AccessToken

FAKE_BEARER = "fake-arm-access-token"
_CONNECTED_REGISTRY_GET = Path(__file__).parent / "fixtures" / "arm" / "ConnectedRegistryGet.json"

_RG = (
    r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)"
    r"/providers/Microsoft\.ContainerRegistry/registries/(?P<registry>[^/]+)"
)
_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("GET", re.compile(_RG + r"$"), "get_registry"),
    ("PUT", re.compile(_RG + r"/scopeMaps/(?P<name>[^/]+)$"), "put_scope_map"),
    ("GET", re.compile(_RG + r"/scopeMaps/(?P<name>[^/]+)$"), "get_scope_map"),
    ("DELETE", re.compile(_RG + r"/scopeMaps/(?P<name>[^/]+)$"), "delete_scope_map"),
    ("PUT", re.compile(_RG + r"/tokens/(?P<token>[^/]+)$"), "put_token"),
    ("DELETE", re.compile(_RG + r"/tokens/(?P<token>[^/]+)$"), "delete_token"),
    ("PUT", re.compile(_RG + r"/connectedRegistries/(?P<cr>[^/]+)$"), "put_connected_registry"),
    ("DELETE", re.compile(_RG + r"/connectedRegistries/(?P<cr>[^/]+)$"), "delete_connected_registry"),
    ("POST", re.compile(_RG + r"/generateCredentials$"), "generate_credentials"),
    ("GET", re.compile(_RG + r"/connectedRegistries$"), "list_connected_registries"),
    ("GET", re.compile(_RG + r"/tokens$"), "list_tokens"),
    ("GET", re.compile(_RG + r"/tokens/(?P<token>[^/]+)$"), "get_token"),
    ("PATCH", re.compile(_RG + r"/tokens/(?P<token>[^/]+)$"), "patch_token"),
    ("POST", re.compile(_RG + r"/connectedRegistries/(?P<cr>[^/]+)/deactivate$"), "deactivate"),
    ("GET", re.compile(_RG + r"/connectedRegistries/(?P<cr>[^/]+)$"), "get_connected_registry"),
    ("GET", re.compile(_RG + r"(?:/(?:connectedRegistries|scopeMaps|tokens)/[^/]+)?/operationStatuses/(?P<op>[^/]+)$"),
     "poll"),
]


class FakeCredential:
    """A ``TokenCredential`` that hands out a fixed bearer token and records the scopes asked for."""

    def __init__(self) -> None:
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **_kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken(FAKE_BEARER, int(time.time()) + 3600)


@dataclass
class RecordedRequest:
    """One request as the server saw it."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    headers: dict[str, str]
    received: float = field(default_factory=time.monotonic)


@dataclass
class _Operation:
    polls_left: int
    status: int
    body: Any
    # "location": 202 while running, then ``status`` and ``body`` (the ``Location`` protocol);
    # "async": 200 with ``{"status": "InProgress"}``, then ``body`` (``Azure-AsyncOperation``).
    style: Literal["location", "async"] = "location"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Fault:
    """An error ARM answers instead of the real answer, for ``times`` matching requests.

    ``collection`` is the path segment after ``registries/<r>/`` (``scopeMaps``, ``tokens``,
    ``connectedRegistries``, ``generateCredentials``, ...), ``registries`` for the registry itself,
    or ``*``; ``method`` an HTTP method or ``*``.
    """

    method: str
    collection: str
    status: int
    times: int = 1
    code: str = "Failed"
    message: str = "The request failed."
    headers: dict[str, str] = field(default_factory=dict)

    def matches(self, method: str, collection: str) -> bool:
        return self.times > 0 and self.method in ("*", method) and self.collection in ("*", collection)


# Codes and messages ARM answers with (the ErrorResponse shape of common-types v5).
_FAULT_TEXT = {
    400: ("BadRequest", "The request is not valid."),
    404: ("ResourceNotFound", "The resource was not found."),
    409: ("Conflict", "The request could not be completed due to a conflict with the current state of the resource."),
    429: ("TooManyRequests", "The request is being throttled."),
    500: ("InternalServerError", "An internal server error occurred."),
    503: ("ServiceUnavailable", "The service is unavailable."),
}


def _collection_of(path: str) -> str | None:
    """The collection a request path addresses (see :class:`Fault`), None outside a registry."""
    m = re.match(_RG + r"(?:/(?P<col>[^/]+))?", path)
    if m is None:
        return None
    return m.group("col") or "registries"


@dataclass
class ArmState:
    """What the fake ARM knows and how it chooses to answer."""

    # token name -> slot -> {"name", "expiry", "creationTime"}; ARM never returns values on GET.
    tokens: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)
    connected_registries: dict[str, str] = field(default_factory=dict)  # name -> activation status
    # name -> parent.syncProperties.lastSyncTime (None: never synced) and connectionState.
    last_sync: dict[str, str | None] = field(default_factory=dict)
    connection_state: dict[str, str] = field(default_factory=dict)
    # The time ARM stamps on new passwords (creationTime); None: the real clock.
    clock: str | None = None
    generate_mode: Literal["200", "202"] = "200"
    deactivate_mode: Literal["200", "202"] = "200"
    # 202 answers the operation-status URL gives before the final one (exercises real polling).
    polls_before_done: int = 1
    # Misbehave: answer generateCredentials with a value for the *other* slot only.
    generate_wrong_slot: bool = False
    issued_values: list[str] = field(default_factory=list)
    # The paged lists: registry name -> ARM documents, as GET …/connectedRegistries and …/tokens
    # return them in `value`; `page_size` items per page, then a `nextLink` with a $skipToken.
    listed_connected_registries: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    listed_tokens: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    page_size: int = 100
    # Throttling: answer this many list requests with 429 and this Retry-After first.
    throttle_lists: int = 0
    retry_after: str = "1"
    # registry name -> HTTP status every list request of that registry gets (e.g. 403).
    registry_errors: dict[str, int] = field(default_factory=dict)
    # --- what the azure-native stand-in manages (PUT/GET/DELETE), keyed by name like the above ---
    # scope map name -> its properties (actions, description, creationDate, provisioningState).
    scope_maps: dict[str, dict[str, Any]] = field(default_factory=dict)
    # token name -> scopeMapId, status, creationDate, provisioningState; its slots stay in `tokens`.
    token_properties: dict[str, dict[str, Any]] = field(default_factory=dict)
    # connected registry name -> its writable properties as last PUT (mode, parent, clientTokenIds,
    # logging, ...) and provisioningState; activation and sync status stay in the dicts above.
    connected_registry_properties: dict[str, dict[str, Any]] = field(default_factory=dict)
    # registry name -> what GET …/registries/<name> (getRegistry) answers; see add_registry.
    registries: dict[str, dict[str, Any]] = field(default_factory=dict)
    # How those PUTs and DELETEs answer: "sync" (200/201 with the resource; 200 or 204 when there
    # is nothing to delete) or "async" (201 + Azure-AsyncOperation; 202 + Location).
    put_mode: Literal["sync", "async"] = "sync"
    delete_mode: Literal["sync", "async"] = "sync"
    # How an async PUT ends: "Succeeded", or "Failed"/"Canceled" (the resource is left Failed).
    operation_outcome: str = "Succeeded"
    # Retry-After on those long-running operations' answers (None: none, the client's own interval).
    lro_retry_after: str | None = None
    faults: list[Fault] = field(default_factory=list)
    operations: dict[str, _Operation] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_token(self, name: str, *slots: str, expiry: str = "2030-01-01T00:00:00Z") -> None:
        """Create token ``name`` with passwords already in ``slots``."""
        self.tokens[name] = {s: {"name": s, "expiry": expiry, "creationTime": "2025-01-01T00:00:00Z"} for s in slots}

    def add_connected_registry(
        self, name: str, last_sync: str | None = None, connection_state: str = "Offline", activation: str = "Active"
    ) -> None:
        """Create connected registry ``name`` with the given sync status."""
        self.connected_registries[name] = activation
        self.last_sync[name] = last_sync
        self.connection_state[name] = connection_state

    def add_registry(
        self, name: str, sku: str = "Premium", data_endpoint_enabled: bool = True, location: str = "westeurope",
        login_server: str | None = None,
    ) -> None:
        """Make ``name`` a registry GET …/registries/<name> (getRegistry) finds; its ``loginServer`` is
        ``<name>.azurecr.io`` unless ``login_server`` names another (a test registry's host:port)."""
        self.registries[name] = {"sku": sku, "dataEndpointEnabled": data_endpoint_enabled, "location": location,
                                 "loginServer": login_server or f"{name.lower()}.azurecr.io"}

    def inject(
        self,
        method: str,
        collection: str,
        status: int,
        times: int = 1,
        code: str | None = None,
        message: str | None = None,
        retry_after: str | None = None,
        retry_after_ms: str | None = None,
    ) -> Fault:
        """Answer the next ``times`` ``method`` requests on ``collection`` (see :class:`Fault`) with
        ``status`` and ARM's error body. A 429 carries ``Retry-After`` (``retry_after``, default
        ``self.retry_after``) and, when given, ``retry-after-ms``, which azure-core clients prefer."""
        default_code, default_message = _FAULT_TEXT.get(status, ("Failed", "The request failed."))
        headers: dict[str, str] = {}
        if status == 429 or retry_after is not None:
            headers["Retry-After"] = retry_after if retry_after is not None else self.retry_after
        if retry_after_ms is not None:
            headers["retry-after-ms"] = retry_after_ms
        fault = Fault(method.upper(), collection, status, times, code or default_code, message or default_message,
                      headers)
        self.faults.append(fault)
        return fault

    def now(self) -> str:
        return self.clock or _now_iso()


class ArmServer:
    """HTTPS server on 127.0.0.1 speaking the ARM subset above. Use as a context manager.

    ``names``: what its certificate covers (default 127.0.0.1 only); with ``localhost`` too,
    ``https://localhost:PORT`` is another spelling of the same endpoint.
    """

    def __init__(self, tmp_dir: Path, names: tuple[str, ...] = ("127.0.0.1",)) -> None:
        self.state = ArmState()
        ca = trustme.CA()
        self.ca_pem = str(tmp_dir / "arm-test-ca.pem")
        ca.cert_pem.write_to_path(self.ca_pem)
        ssl_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(*names).configure_cert(ssl_ctx)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.socket = ssl_ctx.wrap_socket(self._httpd.socket, server_side=True)
        self._httpd.arm = self  # type: ignore[attr-defined]
        self.base_url = f"https://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> ArmServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    @property
    def requests(self) -> list[RecordedRequest]:
        """All requests so far, oldest first."""
        return list(self.state.requests)

    def requests_to(self, method: str, path_suffix: str) -> list[RecordedRequest]:
        """Recorded requests with ``method`` whose path ends with ``path_suffix``."""
        return [r for r in self.state.requests if r.method == method and r.path.endswith(path_suffix)]

    def _take_fault(self, method: str, path: str) -> tuple[int, dict[str, str], Any] | None:
        """The injected fault this request gets, if any (one use of it)."""
        collection = _collection_of(path)
        for fault in self.state.faults:
            if collection is not None and fault.matches(method, collection):
                fault.times -= 1
                return fault.status, dict(fault.headers), {"error": {"code": fault.code, "message": fault.message}}
        return None

    # --- route handlers: (status, headers, body) -------------------------------------------------

    def generate_credentials(self, m: re.Match[str], body: Any) -> tuple[int, dict[str, str], Any]:
        state = self.state
        token_name = str(body.get("tokenId", "")).rsplit("/", 1)[-1]
        if token_name not in state.tokens:
            return _not_found(f"token {token_name}")
        slot = body.get("name") or "password1"
        expiry = body.get("expiry") or "2099-01-01T00:00:00Z"
        value = f"pw-{slot}-{secrets.token_hex(12)}"
        state.issued_values.append(value)
        state.tokens[token_name][slot] = {"name": slot, "expiry": expiry, "creationTime": state.now()}
        shown_slot = slot
        if state.generate_wrong_slot:
            shown_slot = "password2" if slot == "password1" else "password1"
        result = {"username": token_name, "passwords": [{"name": shown_slot, "expiry": expiry, "value": value}]}
        if state.generate_mode == "200":
            return 200, {}, result
        return self._start_operation(m.group(0), result)

    def list_connected_registries(self, m: re.Match[str], _body: Any) -> tuple[int, dict[str, str], Any]:
        return self._paged_list(m, self.state.listed_connected_registries)

    def list_tokens(self, m: re.Match[str], _body: Any) -> tuple[int, dict[str, str], Any]:
        return self._paged_list(m, self.state.listed_tokens)

    def _paged_list(
        self, m: re.Match[str], documents: dict[str, list[dict[str, Any]]]
    ) -> tuple[int, dict[str, str], Any]:
        state = self.state
        if state.throttle_lists > 0:
            state.throttle_lists -= 1
            return 429, {"Retry-After": state.retry_after}, {
                "error": {"code": "TooManyRequests", "message": "The request is being throttled."}
            }
        registry = m.group("registry")
        if registry in state.registry_errors:
            status = state.registry_errors[registry]
            return status, {}, {"error": {"code": "AuthorizationFailed" if status == 403 else "Failed",
                                          "message": f"The client cannot read registry {registry}."}}
        # The request being answered was recorded last, under the same lock.
        skip = int(state.requests[-1].query.get("$skipToken", "0"))
        items = documents.get(registry, [])
        page: dict[str, Any] = {"value": items[skip:skip + state.page_size]}
        if skip + state.page_size < len(items):
            page["nextLink"] = (
                f"{self.base_url}{m.group(0)}?api-version=2025-11-01&$skipToken={skip + state.page_size}"
            )
        return 200, {}, page

    def get_token(self, m: re.Match[str], _body: Any) -> tuple[int, dict[str, str], Any]:
        token = m.group("token")
        if token not in self.state.tokens:
            return _not_found(f"token {token}")
        return 200, {}, self._token_json(m, token)

    def patch_token(self, m: re.Match[str], body: Any) -> tuple[int, dict[str, str], Any]:
        token = m.group("token")
        if token not in self.state.tokens:
            return _not_found(f"token {token}")
        wanted = body.get("properties", {}).get("credentials", {}).get("passwords")
        if wanted is not None:
            # Like ARM: the listed passwords stay as they are, unlisted ones are removed.
            names = {p["name"] for p in wanted}
            slots = self.state.tokens[token]
            self.state.tokens[token] = {k: v for k, v in slots.items() if k in names}
        return 200, {}, self._token_json(m, token)

    def deactivate(self, m: re.Match[str], _body: Any) -> tuple[int, dict[str, str], Any]:
        name = m.group("cr")
        if name not in self.state.connected_registries:
            return _not_found(f"connected registry {name}")
        self.state.connected_registries[name] = "Inactive"
        if self.state.deactivate_mode == "200":
            return 200, {}, None
        prefix = m.group(0).rsplit("/deactivate", 1)[0]
        return self._start_operation(prefix + "/deactivate", None)

    def get_connected_registry(self, m: re.Match[str], _body: Any) -> tuple[int, dict[str, str], Any]:
        name = m.group("cr")
        if name not in self.state.connected_registries:
            return _not_found(f"connected registry {name}")
        if name in self.state.connected_registry_properties:
            return 200, {}, self._connected_registry_json(m, name)
        # Added by add_connected_registry only: the spec example with the site's status.
        body = json.loads(_CONNECTED_REGISTRY_GET.read_text())["responses"]["200"]["body"]
        body["id"] = m.group(0)
        body["name"] = name
        props = body["properties"]
        props["activation"] = {"status": self.state.connected_registries[name]}
        props["connectionState"] = self.state.connection_state.get(name, "Offline")
        if self.state.last_sync.get(name):
            props["parent"]["syncProperties"]["lastSyncTime"] = self.state.last_sync[name]
        return 200, {}, body

    def poll(self, m: re.Match[str], _body: Any) -> tuple[int, dict[str, str], Any]:
        op = self.state.operations.get(m.group("op"))
        if op is None:
            return _not_found(f"operation {m.group('op')}")
        if op.style == "async":
            # Azure-AsyncOperation: the operation's own status document, 200 throughout.
            if op.polls_left > 0:
                op.polls_left -= 1
                return 200, dict(op.headers), {"name": m.group("op"), "status": "InProgress"}
            return 200, {}, op.body
        if op.polls_left > 0:
            op.polls_left -= 1
            return 202, dict(op.headers), None
        return op.status, {}, op.body

    # --- the azure-native stand-in's resources ----------------------------------------------------

    def get_registry(self, m: re.Match[str], _body: Any) -> tuple[int, dict[str, str], Any]:
        name = m.group("registry")
        found = self.state.registries.get(name)
        if found is None:
            return _not_found(f"registry {name}")
        # Shaped like the spec example RegistryGet.json.
        return 200, {}, {
            "id": m.group(0),
            "name": name,
            "type": "Microsoft.ContainerRegistry/registries",
            "location": found["location"],
            "tags": {},
            "sku": {"name": found["sku"], "tier": found["sku"]},
            "properties": {
                "loginServer": found.get("loginServer", f"{name.lower()}.azurecr.io"),
                "creationDate": "2025-01-01T00:00:00Z",
                "provisioningState": "Succeeded",
                "adminUserEnabled": False,
                "dataEndpointEnabled": found["dataEndpointEnabled"],
                "dataEndpointHostNames": (
                    [f"{name.lower()}.{found['location']}.data.azurecr.io"] if found["dataEndpointEnabled"] else []
                ),
                "publicNetworkAccess": "Enabled",
                "zoneRedundancy": "Disabled",
                "anonymousPullEnabled": False,
            },
        }

    def put_scope_map(self, m: re.Match[str], body: Any) -> tuple[int, dict[str, str], Any]:
        name, props = m.group("name"), body.get("properties") or {}
        if not isinstance(props.get("actions"), list):
            return _bad_request("The property 'properties.actions' is required.")
        existing = self.state.scope_maps.get(name)
        stored = {k: props[k] for k in ("actions", "description") if k in props}
        stored["creationDate"] = existing["creationDate"] if existing else self.state.now()
        self.state.scope_maps[name] = stored
        return self._put_answer(m, existing is None, stored, lambda: self._scope_map_json(m, name))

    def get_scope_map(self, m: re.Match[str], _body: Any) -> tuple[int, dict[str, str], Any]:
        name = m.group("name")
        if name not in self.state.scope_maps:
            return _not_found(f"scope map {name}")
        return 200, {}, self._scope_map_json(m, name)

    def delete_scope_map(self, m: re.Match[str], _body: Any) -> tuple[int, dict[str, str], Any]:
        return self._delete_answer(m, self.state.scope_maps.pop(m.group("name"), None) is not None)

    def put_token(self, m: re.Match[str], body: Any) -> tuple[int, dict[str, str], Any]:
        name, props = m.group("token"), body.get("properties") or {}
        existing = self.state.token_properties.get(name)
        stored = {
            "scopeMapId": props.get("scopeMapId"),
            "status": props.get("status") or "enabled",
            "creationDate": existing["creationDate"] if existing else self.state.now(),
        }
        self.state.token_properties[name] = stored
        # A PUT without `credentials` leaves the token without passwords (docs/azure.md, "Token
        # passwords"); listed passwords stay as they are, or are issued when the slot is empty.
        wanted = ((props.get("credentials") or {}).get("passwords")) or []
        slots = self.state.tokens.get(name, {})
        kept: dict[str, dict[str, str]] = {}
        for password in wanted:
            slot = password.get("name")
            if slot in slots:
                kept[slot] = slots[slot]
            elif slot:
                kept[slot] = {"name": slot, "creationTime": self.state.now(),
                              **({"expiry": password["expiry"]} if password.get("expiry") else {})}
        self.state.tokens[name] = kept
        return self._put_answer(m, existing is None and not slots, stored, lambda: self._token_json(m, name))

    def delete_token(self, m: re.Match[str], _body: Any) -> tuple[int, dict[str, str], Any]:
        name = m.group("token")
        existed = self.state.tokens.pop(name, None) is not None
        existed = self.state.token_properties.pop(name, None) is not None or existed
        return self._delete_answer(m, existed)

    def put_connected_registry(self, m: re.Match[str], body: Any) -> tuple[int, dict[str, str], Any]:
        name, props = m.group("cr"), body.get("properties") or {}
        sync = (props.get("parent") or {}).get("syncProperties") or {}
        if not props.get("mode") or not sync.get("tokenId") or not sync.get("messageTtl"):
            return _bad_request("The properties 'mode', 'parent.syncProperties.tokenId' and "
                                "'parent.syncProperties.messageTtl' are required.")
        stored = {k: json.loads(json.dumps(props[k])) for k in _CONNECTED_REGISTRY_WRITABLE if k in props}
        # Read-only values a client may echo back are ARM's to set, not the caller's.
        for key in ("lastSyncTime", "gatewayEndpoint"):
            stored["parent"]["syncProperties"].pop(key, None)
        # The spec's defaults (LoggingProperties: logLevel Information, auditLogStatus Disabled), as
        # the spec example ConnectedRegistryCreate.json answers a body without `logging`.
        stored["logging"] = {"logLevel": "Information", "auditLogStatus": "Disabled", **(stored.get("logging") or {})}
        created = name not in self.state.connected_registries
        if created:
            # A new connected registry: not activated, never synced (spec example ConnectedRegistryCreate.json).
            self.state.add_connected_registry(name, last_sync=None, connection_state="Offline", activation="Inactive")
        self.state.connected_registry_properties[name] = stored
        return self._put_answer(m, created, stored, lambda: self._connected_registry_json(m, name))

    def delete_connected_registry(self, m: re.Match[str], _body: Any) -> tuple[int, dict[str, str], Any]:
        name = m.group("cr")
        existed = self.state.connected_registries.pop(name, None) is not None
        self.state.connected_registry_properties.pop(name, None)
        self.state.last_sync.pop(name, None)
        self.state.connection_state.pop(name, None)
        return self._delete_answer(m, existed)

    # --- helpers ------------------------------------------------------------------------------

    def _start_operation(self, resource_path: str, result: Any) -> tuple[int, dict[str, str], Any]:
        op_id = f"op-{secrets.token_hex(6)}"
        self.state.operations[op_id] = _Operation(self.state.polls_before_done, 200, result)
        # Like the fixtures: registries/<r>/operationStatuses/... for generateCredentials,
        # connectedRegistries/<cr>/operationStatuses/... for deactivate.
        owner = resource_path.rsplit("/", 1)[0]
        location = f"{self.base_url}{owner}/operationStatuses/{op_id}?api-version=2025-11-01"
        return 202, {"Location": location}, None

    def _token_json(self, m: re.Match[str], token: str) -> dict[str, Any]:
        registry_id = m.group(0).split("/tokens/")[0]
        # A token added by add_token only has no stored properties: the defaults below.
        props = self.state.token_properties.get(token, {})
        return {
            "id": f"{registry_id}/tokens/{token}",
            "name": token,
            "type": "Microsoft.ContainerRegistry/registries/tokens",
            "properties": {
                "creationDate": props.get("creationDate", "2025-01-01T00:00:00Z"),
                "provisioningState": props.get("provisioningState", "Succeeded"),
                "scopeMapId": props.get("scopeMapId") or f"{registry_id}/scopeMaps/{token}",
                "status": props.get("status", "enabled"),
                "credentials": {"certificates": [], "passwords": list(self.state.tokens.get(token, {}).values())},
            },
        }

    def _scope_map_json(self, m: re.Match[str], name: str) -> dict[str, Any]:
        registry_id = _registry_id(m)
        props = self.state.scope_maps[name]
        # Shaped like the spec example ScopeMapGet.json.
        return {
            "id": f"{registry_id}/scopeMaps/{name}",
            "name": name,
            "type": "Microsoft.ContainerRegistry/registries/scopeMaps",
            "properties": {
                **({"description": props["description"]} if "description" in props else {}),
                "type": "UserDefined",
                "creationDate": props["creationDate"],
                "provisioningState": props.get("provisioningState", "Succeeded"),
                "actions": list(props["actions"]),
            },
        }

    def _connected_registry_json(self, m: re.Match[str], name: str) -> dict[str, Any]:
        registry_id = _registry_id(m)
        registry = m.group("registry")
        stored = json.loads(json.dumps(self.state.connected_registry_properties[name]))
        sync = stored["parent"]["syncProperties"]
        # Read-only: the data endpoint the site syncs with (the parent's dedicated data endpoint),
        # and the last sync when there was one.
        location = self.state.registries.get(registry, {}).get("location", "westeurope")
        sync["gatewayEndpoint"] = f"{registry.lower()}.{location}.data.azurecr.io"
        if self.state.last_sync.get(name):
            sync["lastSyncTime"] = self.state.last_sync[name]
        return {
            "id": f"{registry_id}/connectedRegistries/{name}",
            "name": name,
            "type": "Microsoft.ContainerRegistry/registries/connectedRegistries",
            "properties": {
                "provisioningState": stored.pop("provisioningState", "Succeeded"),
                **stored,
                "activation": {"status": self.state.connected_registries.get(name, "Inactive")},
                "connectionState": self.state.connection_state.get(name, "Offline"),
                "statusDetails": [],
            },
        }

    def _put_answer(
        self, m: re.Match[str], created: bool, stored: dict[str, Any], render: Any
    ) -> tuple[int, dict[str, str], Any]:
        """The answer to a PUT: 200 (update) or 201 (create) with the resource; in put_mode
        "async", 201 with Azure-AsyncOperation and the resource still provisioning."""
        state = self.state
        if state.put_mode == "sync":
            stored["provisioningState"] = "Succeeded"
            return (201 if created else 200), {}, render()
        op_id = f"op-{secrets.token_hex(6)}"
        outcome = state.operation_outcome
        stored["provisioningState"] = "Creating" if created else "Updating"
        answer = render()
        stored["provisioningState"] = outcome
        final: dict[str, Any] = {"name": op_id, "status": outcome}
        if outcome != "Succeeded":
            final["error"] = {"code": "ResourceOperationFailure", "message": f"The operation ended {outcome}."}
        headers = {"Retry-After": state.lro_retry_after} if state.lro_retry_after else {}
        state.operations[op_id] = _Operation(state.polls_before_done, 200, final, style="async", headers=headers)
        url = f"{self.base_url}{m.group(0)}/operationStatuses/{op_id}?api-version={_api_version(state)}"
        return 201, {"Azure-AsyncOperation": url, **headers}, answer

    def _delete_answer(self, m: re.Match[str], existed: bool) -> tuple[int, dict[str, str], Any]:
        """The answer to a DELETE (the resource is gone at once): 200, or 204 when there was nothing
        to delete (the spec's "does not exist"); in delete_mode "async", 202 with Location."""
        state = self.state
        if state.delete_mode == "sync" or not existed:
            return (200 if existed else 204), {}, None
        op_id = f"op-{secrets.token_hex(6)}"
        headers = {"Retry-After": state.lro_retry_after} if state.lro_retry_after else {}
        state.operations[op_id] = _Operation(state.polls_before_done, 200, None, headers=headers)
        url = f"{self.base_url}{_registry_id(m)}/operationStatuses/{op_id}?api-version={_api_version(state)}"
        return 202, {"Location": url, **headers}, None


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _not_found(what: str) -> tuple[int, dict[str, str], Any]:
    return 404, {}, {"error": {"code": "ResourceNotFound", "message": f"The {what} was not found."}}


def _bad_request(message: str) -> tuple[int, dict[str, str], Any]:
    return 400, {}, {"error": {"code": "InvalidRequestContent", "message": message}}


def _registry_id(m: re.Match[str]) -> str:
    return (
        f"/subscriptions/{m.group('sub')}/resourceGroups/{m.group('rg')}"
        f"/providers/Microsoft.ContainerRegistry/registries/{m.group('registry')}"
    )


def _api_version(state: ArmState) -> str:
    # The request being answered was recorded last, under the same lock.
    return state.requests[-1].query.get("api-version", "2025-11-01")


# What a connected registry PUT may set (ConnectedRegistryProperties minus its read-only ones).
_CONNECTED_REGISTRY_WRITABLE = ("mode", "parent", "clientTokenIds", "logging", "notificationsList", "garbageCollection")


class _Handler(BaseHTTPRequestHandler):
    server: ThreadingHTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Keep test output quiet."""

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._handle()

    def do_POST(self) -> None:  # noqa: N802
        self._handle()

    def do_PATCH(self) -> None:  # noqa: N802
        self._handle()

    def do_PUT(self) -> None:  # noqa: N802
        self._handle()

    def do_DELETE(self) -> None:  # noqa: N802
        self._handle()

    def _handle(self) -> None:
        arm: ArmServer = self.server.arm  # type: ignore[attr-defined]
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body: Any | None = json.loads(raw) if raw else None
        with arm.state.lock:
            arm.state.requests.append(
                RecordedRequest(self.command, url.path, dict(parse_qsl(url.query)), body, dict(self.headers))
            )
            status: int
            headers: dict[str, str] = {}
            payload: Any
            if self.headers.get("Authorization") != f"Bearer {FAKE_BEARER}":
                status, payload = 401, {"error": {"code": "Unauthorized", "message": "no token"}}
            elif (fault := arm._take_fault(self.command, url.path)) is not None:
                status, headers, payload = fault
            else:
                status, payload = 404, {"error": {"code": "NoRoute", "message": url.path}}
                for method, pattern, handler in _ROUTES:
                    match = pattern.fullmatch(url.path)
                    if method == self.command and match:
                        status, headers, payload = getattr(arm, handler)(match, body or {})
                        break
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        if data:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
