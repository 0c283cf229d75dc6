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
    ("POST", re.compile(_RG + r"/generateCredentials$"), "generate_credentials"),
    ("GET", re.compile(_RG + r"/connectedRegistries$"), "list_connected_registries"),
    ("GET", re.compile(_RG + r"/tokens$"), "list_tokens"),
    ("GET", re.compile(_RG + r"/tokens/(?P<token>[^/]+)$"), "get_token"),
    ("PATCH", re.compile(_RG + r"/tokens/(?P<token>[^/]+)$"), "patch_token"),
    ("POST", re.compile(_RG + r"/connectedRegistries/(?P<cr>[^/]+)/deactivate$"), "deactivate"),
    ("GET", re.compile(_RG + r"/connectedRegistries/(?P<cr>[^/]+)$"), "get_connected_registry"),
    ("GET", re.compile(_RG + r"(?:/connectedRegistries/[^/]+)?/operationStatuses/(?P<op>[^/]+)$"), "poll"),
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

    def now(self) -> str:
        return self.clock or _now_iso()


class ArmServer:
    """HTTPS server on 127.0.0.1 speaking the ARM subset above. Use as a context manager."""

    def __init__(self, tmp_dir: Path) -> None:
        self.state = ArmState()
        ca = trustme.CA()
        self.ca_pem = str(tmp_dir / "arm-test-ca.pem")
        ca.cert_pem.write_to_path(self.ca_pem)
        ssl_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(ssl_ctx)
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
        if op.polls_left > 0:
            op.polls_left -= 1
            return 202, {}, None
        return op.status, {}, op.body

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
        return {
            "id": f"{registry_id}/tokens/{token}",
            "name": token,
            "type": "Microsoft.ContainerRegistry/registries/tokens",
            "properties": {
                "creationDate": "2025-01-01T00:00:00Z",
                "provisioningState": "Succeeded",
                "scopeMapId": f"{registry_id}/scopeMaps/{token}",
                "status": "enabled",
                "credentials": {"certificates": [], "passwords": list(self.state.tokens[token].values())},
            },
        }


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _not_found(what: str) -> tuple[int, dict[str, str], Any]:
    return 404, {}, {"error": {"code": "ResourceNotFound", "message": f"The {what} was not found."}}


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
