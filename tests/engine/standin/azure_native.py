"""Stand-in for the azure-native provider plugin (3.29.0, what pulumi_azure_native asks for), for
exactly what this program uses: ``containerregistry:ScopeMap``, ``:Token``, ``:ConnectedRegistry``
and the invoke ``containerregistry:getRegistry`` (tests/engine/README.md, "Stand-in providers:
azure-native").

It is a real plugin process speaking the engine's ResourceProvider protocol (plugin.py) and makes
the REST calls the real provider makes, against the ARM endpoint in ``EDGE_REGISTRY_STANDIN_ARM``
(``scripts/engine fake-azure`` runs one: tests/arm_server.py) with the bearer token in
``EDGE_REGISTRY_ARM_TOKEN``, trusting ``REQUESTS_CA_BUNDLE``.

Every rule below cites where upstream says so. "provider.go" is
pulumi/pulumi-azure-native ``provider/pkg/provider/provider.go`` (v3: no ``__inputs`` in the
state, ``azureApiVersion`` in inputs and outputs), "diff.go" its ``provider/pkg/provider/diff.go``,
"crud.go" ``provider/pkg/provider/crud/crud.go``, "client_azcore.go"
``provider/pkg/azure/client_azcore.go``, "azure.go" ``provider/pkg/azure/azure.go``,
"convert/" ``provider/pkg/convert/``, "gen/" ``provider/pkg/gen/``; "the spec" is
Azure/azure-rest-api-specs ``specification/containerregistry/resource-manager/
Microsoft.ContainerRegistry/preview/2024-11-01-preview/containerregistry.json``; "azcore" is
Azure/azure-sdk-for-go ``sdk/azcore`` (``runtime/poller.go``, ``internal/pollers/*``,
``runtime/policy_retry.go``), the HTTP client the real provider uses. No upstream code is copied.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, NoReturn
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import grpc
import requests
from google.protobuf import any_pb2, empty_pb2
from google.rpc import status_pb2
from pulumi.runtime.proto import provider_pb2

from tests.engine.standin.plugin import (
    UNKNOWN,
    Failure,
    Provider,
    is_secret,
    name_of,
    plain,
    secret,
    serve,
    to_dict,
    to_struct,
    type_of,
)

VERSION = "3.29.0"

#: The api-version v3 uses for these types: "Uses Azure REST API version 2024-11-01-preview" in
#: the installed SDK's scope_map.py, token.py and connected_registry.py; getRegistry (and
#: Registry) "2023-01-01-preview" in get_registry.py.
API_VERSION = "2024-11-01-preview"
REGISTRY_API_VERSION = "2023-01-01-preview"

ENDPOINT_ENV = "EDGE_REGISTRY_STANDIN_ARM"
TOKEN_ENV = "EDGE_REGISTRY_ARM_TOKEN"
#: Seconds between polls of a long-running operation when ARM sends no Retry-After. Upstream:
#: 10 for PUT, 30 for DELETE (client_azcore.go NewAzCoreClient: updatePollingIntervalSeconds,
#: deletePollingIntervalSeconds, which upstream's own tests lower too). A stand-in-only knob.
POLL_ENV = "EDGE_REGISTRY_STANDIN_POLL_SECONDS"
#: Base retry delay when a 408/429/5xx carries no Retry-After (client_azcore.go: RetryDelay 20 s,
#: MaxRetryDelay 120 s). A stand-in-only knob for tests.
RETRY_DELAY_ENV = "EDGE_REGISTRY_STANDIN_RETRY_DELAY_SECONDS"


# --- the types' shapes, from the installed SDK (inputs/outputs) and the spec (read-only) ------------


@dataclass(frozen=True)
class Shape:
    """A property's shape: scalar, object (``props``) or array (``items``); ``ro``: read-only."""

    props: dict[str, Shape] | None = None
    items: Shape | None = None
    ro: bool = False


S = Shape()
RO = Shape(ro=True)


def obj(ro: bool = False, **props: Shape) -> Shape:
    return Shape(props=props, ro=ro)


def arr(item: Shape, ro: bool = False) -> Shape:
    return Shape(items=item, ro=ro)


SYSTEM_DATA = obj(ro=True, createdAt=S, createdBy=S, createdByType=S, lastModifiedAt=S, lastModifiedBy=S,
                  lastModifiedByType=S)


def writable(shape: Shape) -> Shape | None:
    """The input shape of an output shape: read-only properties dropped, and objects left with
    none (gen/properties.go genProperties: "Skip read-only properties for input types", "degenerate
    types")."""
    if shape.ro:
        return None
    if shape.props is not None:
        kept = {k: w for k, v in shape.props.items() if (w := writable(v)) is not None}
        return Shape(props=kept) if kept else None
    if shape.items is not None:
        item = writable(shape.items)
        return Shape(items=item) if item is not None else None
    return shape


@dataclass(frozen=True)
class Kind:
    """One resource type: its ARM collection, name parameter and output properties (SDK shape:
    the body's ``properties`` flattened, convert/responseBodyToSdkOutputs.go)."""

    token: str
    collection: str
    name_param: str
    name_pattern: str
    outputs: dict[str, Shape]
    required: tuple[str, ...]

    @property
    def body(self) -> dict[str, Shape]:
        """The writable body properties (the SDK's inputs besides the path parameters)."""
        return {k: w for k, v in self.outputs.items() if (w := writable(v)) is not None}

    def path(self, subscription: str, inputs: dict[str, Any]) -> str:
        # crud.go PrepareAzureRESTIdAndQuery: path parameters query-escaped, "+" as "%20".
        def esc(value: Any) -> str:
            if not isinstance(value, str):
                raise Failure(f"expected string value for path parameter, got {type(value).__name__}")
            return quote(value, safe="")

        return (
            f"/subscriptions/{esc(subscription)}/resourceGroups/{esc(inputs['resourceGroupName'])}"
            f"/providers/Microsoft.ContainerRegistry/registries/{esc(inputs['registryName'])}"
            f"/{self.collection}/{esc(inputs[self.name_param])}"
        )

    @property
    def path_params(self) -> tuple[str, ...]:
        return ("resourceGroupName", "registryName", self.name_param)


# Output properties per type: the installed SDK's output properties (scope_map.py, token.py,
# connected_registry.py `get`), read-only ones as the spec marks them (`readOnly: true`, and
# ProxyResource id/name/type/systemData). `id` is the resource id, not a property.
SCOPE_MAP = Kind(
    token="azure-native:containerregistry:ScopeMap",
    collection="scopeMaps",
    name_param="scopeMapName",
    # the spec, parameters.ScopeMapNameParameter
    name_pattern=r"^[a-zA-Z0-9-_]*$",
    outputs={
        "actions": arr(S), "creationDate": RO, "description": S, "name": RO, "provisioningState": RO,
        "systemData": SYSTEM_DATA, "type": RO,
    },
    # the spec, ScopeMapProperties.required
    required=("actions",),
)
TOKEN = Kind(
    token="azure-native:containerregistry:Token",
    collection="tokens",
    name_param="tokenName",
    # the spec, parameters.TokenNameParameter
    name_pattern=r"^[a-zA-Z0-9-]*$",
    outputs={
        "creationDate": RO,
        "credentials": obj(
            certificates=arr(obj(encodedPemCertificate=S, expiry=S, name=S, thumbprint=S)),
            passwords=arr(obj(creationTime=S, expiry=S, name=S, value=RO)),
        ),
        "name": RO, "provisioningState": RO, "scopeMapId": S, "status": S, "systemData": SYSTEM_DATA, "type": RO,
    },
    required=(),
)
CONNECTED_REGISTRY = Kind(
    token="azure-native:containerregistry:ConnectedRegistry",
    collection="connectedRegistries",
    name_param="connectedRegistryName",
    # the spec, parameters.ConnectedRegistryNameParameter
    name_pattern=r"^[a-zA-Z0-9]*$",
    outputs={
        "activation": obj(ro=True, status=RO),
        "clientTokenIds": arr(S),
        "connectionState": RO,
        "garbageCollection": obj(enabled=S, schedule=S),
        "lastActivityTime": RO,
        "logging": obj(auditLogStatus=S, logLevel=S),
        # LoginServerProperties: host and tls read-only, so no input (a degenerate input type).
        "loginServer": obj(host=RO, tls=obj(ro=True, certificate=obj(ro=True, location=RO, type=RO), status=RO)),
        "mode": S,
        "name": RO,
        "notificationsList": arr(S),
        "parent": obj(
            id=S,
            syncProperties=obj(gatewayEndpoint=RO, lastSyncTime=RO, messageTtl=S, schedule=S, syncWindow=S, tokenId=S),
        ),
        "provisioningState": RO,
        "statusDetails": arr(obj(code=RO, correlationId=RO, description=RO, timestamp=RO, type=RO), ro=True),
        "systemData": SYSTEM_DATA,
        "type": RO,
        "version": RO,
    },
    # the spec: ConnectedRegistryProperties.required, ParentProperties.required, SyncProperties.required
    required=("mode", "parent", "parent.syncProperties", "parent.syncProperties.tokenId",
              "parent.syncProperties.messageTtl"),
)
KINDS = {k.token: k for k in (SCOPE_MAP, TOKEN, CONNECTED_REGISTRY)}

#: getRegistry's result properties (the installed SDK's get_registry.py GetRegistryResult).
REGISTRY_RESULT = (
    "adminUserEnabled", "anonymousPullEnabled", "creationDate", "dataEndpointEnabled", "dataEndpointHostNames",
    "encryption", "id", "identity", "location", "loginServer", "name", "networkRuleBypassOptions", "networkRuleSet",
    "policies", "privateEndpointConnections", "provisioningState", "publicNetworkAccess", "sku", "status",
    "systemData", "tags", "type", "zoneRedundancy",
)

#: Top-level keys of an ARM resource body (ProxyResource); everything else is under `properties`
#: (x-ms-client-flatten in the spec, flattened into SDK properties by convert/).
TOP_LEVEL = ("id", "name", "type", "systemData", "location", "tags", "sku", "identity")

# The path parameters' constraints: the spec's parameters (RegistryNameParameter and the names
# above: minLength 5, maxLength 50) and common-types v5 ResourceGroupNameParameter.
PATH_RULES = {
    "registryName": (r"^[a-zA-Z0-9]*$", 5, 50),
    "resourceGroupName": (r"^[-\w\._\(\)]+$", 1, 90),
}

#: Set by Check on a randomly auto-named resource (provider.go createBeforeDeleteFlag).
CREATE_BEFORE_DELETE = "__createBeforeDelete"


# --- wire values -------------------------------------------------------------------------------


def drop_nulls(value: Any) -> Any:
    """SkipNulls, as every upstream UnmarshalProperties call here does."""
    if is_secret(value):
        inner = drop_nulls(value.get("value"))
        return None if inner is None else secret(inner)
    if isinstance(value, dict):
        return {k: d for k, v in value.items() if (d := drop_nulls(v)) is not None}
    if isinstance(value, list):
        return [drop_nulls(v) for v in value]
    return value


def secret_keys(values: dict[str, Any]) -> set[str]:
    return {k for k, v in values.items() if is_secret(v)}


def rewrap(outputs: dict[str, Any], keys: set[str]) -> dict[str, Any]:
    """Keep the secret wrappers of the inputs on the same-named outputs (plugin.py)."""
    return {k: secret(v) if k in keys and not is_secret(v) else v for k, v in outputs.items()}


def shaped(shape: Shape | None, value: Any) -> Any:
    """``value`` reduced to what ``shape`` knows (convert/responseBodyToSdkOutputs.go: only known
    properties of typed objects; untyped values as they are)."""
    if shape is None:
        return value
    if shape.props is not None and isinstance(value, dict):
        return {k: shaped(shape.props[k], v) for k, v in value.items() if k in shape.props and v is not None}
    if shape.items is not None and isinstance(value, list):
        return [shaped(shape.items, v) for v in value]
    return value


def outputs_of(kind: Kind, response: dict[str, Any]) -> dict[str, Any]:
    """A resource body in SDK shape: ``properties.*`` flattened beside the top-level ones (a top-level
    name wins: ScopeMap's `type`), only the type's output properties, plus ``azureApiVersion``
    (provider.go checkpointObject: "emit the actual APIVersion as an output property")."""
    flat = {**(response.get("properties") or {}), **{k: v for k, v in response.items() if k in TOP_LEVEL}}
    outputs = {k: shaped(kind.outputs[k], v) for k, v in flat.items() if k in kind.outputs and v is not None}
    outputs["azureApiVersion"] = API_VERSION
    return outputs


def preview_value(shape: Shape | None, value: Any) -> Any:
    """convert/previewOutputs.go previewOutputValue: an input value of the property's shape is kept
    (recursing into objects and arrays), anything else is unknown."""
    if shape is None or value == UNKNOWN:
        return UNKNOWN
    if shape.props is not None:
        if not isinstance(value, dict):
            return UNKNOWN
        return preview_outputs(shape.props, value)
    if shape.items is not None:
        return [preview_value(shape.items, v) for v in value] if isinstance(value, list) else UNKNOWN
    return value if not isinstance(value, (dict, list)) else UNKNOWN


def preview_outputs(props: dict[str, Shape], inputs: dict[str, Any]) -> dict[str, Any]:
    """convert/previewOutputs.go PreviewOutputs: every output property, from the inputs where they
    have it, else unknown (so output-only properties are unknown)."""
    return {k: preview_value(shape, inputs[k]) if k in inputs else UNKNOWN for k, shape in props.items()}


def project(props: dict[str, Shape], outputs: dict[str, Any]) -> dict[str, Any]:
    """Outputs in input shape, read-only properties left out (convert/sdkOutputsToSdkInputs.go)."""
    return {k: shaped(props[k], v) for k, v in outputs.items() if k in props}


def request_body(kind: Kind, inputs: dict[str, Any]) -> dict[str, Any]:
    """The PUT body: the body inputs under `properties` (convert/sdkInputsToRequestBody.go with the
    spec's x-ms-client-flatten of `properties`)."""
    return {"properties": project(kind.body, {k: v for k, v in inputs.items() if k in kind.body})}


# --- diff (diff.go) -------------------------------------------------------------------------------

Kinds = provider_pb2.PropertyDiff


def _diff_object(old: dict[str, Any], new: dict[str, Any], base: str, rbase: str, replace: set[str],
                 out: dict[str, int]) -> None:
    # diff.go calculateObjectDiff: updates recurse; adds and deletes of a replace key replace.
    for k in sorted(set(old) | set(new)):
        key, rkey = base + k, rbase + k
        if k not in new:
            out[key] = Kinds.DELETE_REPLACE if rkey in replace else Kinds.DELETE
        elif k not in old:
            out[key] = Kinds.ADD_REPLACE if rkey in replace else Kinds.ADD
        elif old[k] != new[k]:
            _diff_value(old[k], new[k], key, rkey, replace, out)


def _diff_value(old: Any, new: Any, key: str, rkey: str, replace: set[str], out: dict[str, int]) -> None:
    # diff.go calculateValueDiff: objects by property ("If the parent property causes a replacement,
    # all child properties cause a replacement"), arrays by index, anything else one update.
    if isinstance(old, dict) and isinstance(new, dict):
        sub: dict[str, int] = {}
        _diff_object(old, new, key + ".", rkey + ".", replace, sub)
        for k, v in sub.items():
            out[k] = Kinds.UPDATE_REPLACE if v == Kinds.UPDATE and rkey in replace else v
    elif isinstance(old, list) and isinstance(new, list):
        for i in range(min(len(old), len(new))):
            if old[i] != new[i]:
                _diff_value(old[i], new[i], f"{key}[{i}]", rkey + "[]", replace, out)
        for i in range(len(old), len(new)):
            out[f"{key}[{i}]"] = Kinds.ADD
        for i in range(len(new), len(old)):
            out[f"{key}[{i}]"] = Kinds.DELETE
    else:
        out[key] = Kinds.UPDATE_REPLACE if rkey in replace else Kinds.UPDATE


def replace_keys(kind: Kind) -> set[str]:
    """diff.go calculateDetailedDiff: "All the parameters that are part of the resource path cause a
    replacement", and so does every body property marked ForceNew. None is for these three types:
    ForceNew comes from `x-ms-mutability` without "update" (gen/properties.go forceNew,
    propChangeForcesRecreate), which no property of ScopeMapProperties, TokenProperties or
    ConnectedRegistryProperties (nor ParentProperties, SyncProperties) carries in the spec, and from
    gen/replacement.go forceNewMap, which has no ContainerRegistry entry. So a change of `mode` or of
    `parent.syncProperties.tokenId` is an in-place PUT upstream; the program asks for replacement
    itself (replace_on_changes in components/azure/connected_registry.py)."""
    return set(kind.path_params)


def detailed_diff(kind: Kind, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, int]:
    # provider.go Diff: old inputs against new inputs, keys starting with "__" ignored.
    out: dict[str, int] = {}
    _diff_object({k: v for k, v in olds.items() if not k.startswith("__")},
                 {k: v for k, v in news.items() if not k.startswith("__")}, "", "", replace_keys(kind), out)
    return out


def apply_diff(values: dict[str, Any], old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """diff.go applyDiff/applyValueDiff: the change between two output projections applied to the
    stored inputs, property by property and element by element (Read)."""
    result = {k: v for k, v in values.items() if not (k in old and k not in new)}
    for k, v in new.items():
        if k not in old:
            result[k] = v
        elif old[k] != v:
            result[k] = _apply_value(values[k], old[k], v) if k in values else v
    return result


def _apply_value(base: Any, old: Any, new: Any) -> Any:
    if isinstance(base, dict) and isinstance(old, dict) and isinstance(new, dict):
        return apply_diff(base, old, new)
    if isinstance(base, list) and isinstance(old, list) and isinstance(new, list):
        return [_apply_value(base[i], old[i], v) if i < len(base) and i < len(old) else v for i, v in enumerate(new)]
    return new


# --- ARM over HTTPS, as azcore does it for the real provider ---------------------------------------


class ArmResponseError(Exception):
    """An ARM answer that is an error, worded like azcore's ResponseError."""

    def __init__(self, method: str, url: str, response: requests.Response) -> None:
        self.status = response.status_code
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text
        error = body.get("error", body) if isinstance(body, dict) else {}
        self.code = response.headers.get("x-ms-error-code") or (error.get("code") if isinstance(error, dict) else None)
        rule = "-" * 80
        shown = json.dumps(body, indent=2) if isinstance(body, (dict, list)) else (body or "Response contained no body")
        super().__init__(
            f"{method} {url}\n{rule}\nRESPONSE {self.status}: {self.status} {response.reason}\n"
            f"ERROR CODE: {self.code or 'UNAVAILABLE'}\n{rule}\n{shown}\n{rule}"
        )

    @property
    def not_found(self) -> bool:
        # azure.go IsNotFound: a 404 "with a valid Azure 'not found' error code" only.
        return self.status == 404 and self.code in ("NotFound", "ResourceNotFound", "ResourceGroupNotFound")


class OperationFailed(Exception):
    """A long-running operation that ended Failed or Canceled."""


def _retry_after(response: requests.Response) -> float | None:
    """azcore shared.RetryAfter: retry-after-ms, x-ms-retry-after-ms, then Retry-After (seconds or an
    HTTP date)."""
    for header, scale in (("retry-after-ms", 1000.0), ("x-ms-retry-after-ms", 1000.0), ("Retry-After", 1.0)):
        value = response.headers.get(header)
        if not value:
            continue
        try:
            return float(value) / scale
        except ValueError:
            try:
                return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
            except (TypeError, ValueError):
                continue
    return None


class Arm:
    """The ARM calls of the real provider's azcore client (client_azcore.go): bearer token, JSON,
    azcore's retry policy, its long-running-operation pollers."""

    #: azcore policy_retry.go: the status codes retried, and MaxRetries 3 (client_azcore.go keeps it).
    RETRIED = (408, 429, 500, 502, 503, 504)
    MAX_RETRIES = 3

    def __init__(self, endpoint: str, token: str) -> None:
        if urlsplit(endpoint).scheme != "https":
            # azcore's BearerTokenPolicy refuses to send a token over anything but TLS.
            raise Failure(f"{ENDPOINT_ENV} must be an https URL (a bearer token is sent to it), not {endpoint!r}")
        self.endpoint = endpoint.rstrip("/")
        self.session = requests.Session()  # verifies with REQUESTS_CA_BUNDLE when it is set
        self.session.headers.update({
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
            "User-Agent": f"pulumi-azure-native/{VERSION} (edge-registry stand-in)",
        })
        poll = os.environ.get(POLL_ENV)
        self.put_poll = float(poll) if poll else 10.0
        self.delete_poll = float(poll) if poll else 30.0
        self.retry_delay = float(os.environ.get(RETRY_DELAY_ENV) or 20.0)

    def url(self, path: str, api_version: str) -> str:
        return f"{self.endpoint}{path}?{urlencode({'api-version': api_version})}"

    def send(self, method: str, url: str, body: Any = None) -> requests.Response:
        headers = {"Content-Type": "application/json; charset=utf-8"} if method in ("PUT", "PATCH", "POST") else {}
        data = json.dumps(body) if body is not None else None
        for attempt in range(self.MAX_RETRIES + 1):
            last = attempt == self.MAX_RETRIES
            try:
                response = self.session.request(method, url, data=data, headers=headers, timeout=(10, 120))
            except requests.RequestException as err:
                if last:
                    raise Failure(f"{method} {url}: {err}") from None
                time.sleep(self._backoff(attempt))
                continue
            if response.status_code not in self.RETRIED or last:
                return response
            # azcore: a Retry-After (and its -ms forms) when there is one, else exponential backoff
            # from RetryDelay, capped at MaxRetryDelay 120 s (client_azcore.go).
            wait = _retry_after(response)
            time.sleep(wait if wait is not None and wait > 0 else self._backoff(attempt))
        raise AssertionError("unreachable")

    def _backoff(self, attempt: int) -> float:
        return min(((1 << (attempt + 1)) - 1) * self.retry_delay, 120.0)

    def get(self, path: str, api_version: str) -> dict[str, Any]:
        url = self.url(path, api_version)
        response = self.send("GET", url)
        if response.status_code != 200:  # client_azcore.go Get
            raise ArmResponseError("GET", url, response)
        return response.json() if response.content else {}

    def can_create(self, path: str, api_version: str) -> None:
        """client_azcore.go CanCreate: GET first; an existing resource is refused ("we want to try our
        best to avoid updating instead of creating here", provider.go defaultCreate)."""
        url = self.url(path, api_version)
        response = self.send("GET", url)
        if response.status_code in (404, 204):
            return
        if response.status_code == 200:
            try:
                existing = response.json()
            except ValueError:
                existing = None
            if existing:
                raise Failure(f"cannot create already existing resource '{path}'")
            return
        raise Failure(f"cannot check existence of resource '{path}': status code {response.status_code}, "
                      f"{response.text}")

    def put(self, path: str, body: dict[str, Any], api_version: str) -> dict[str, Any]:
        """client_azcore.go putOrPatch: 200/201/202 or an error; then, for an
        x-ms-long-running-operation (every PUT here, the spec), azcore's poller until done.

        :raises ArmResponseError: the PUT itself was refused (nothing created).
        :raises OperationFailed: accepted, then failed (the resource may exist: a partial error).
        """
        url = self.url(path, api_version)
        response = self.send("PUT", url, body)
        if response.status_code not in (200, 201, 202):
            raise ArmResponseError("PUT", url, response)
        try:
            return self._poll(response, url, "PUT")
        except ArmResponseError as err:
            raise OperationFailed(str(err)) from None

    def delete(self, path: str, api_version: str) -> None:
        """client_azcore.go Delete with its DeleteAsyncStyle (the spec: every DELETE here is an
        x-ms-long-running-operation): azcore NewPoller refuses anything but 200/201/202/204 with
        the response's error; a 404 ResourceNotFound while polling a 202 counts as deleted."""
        url = self.url(path, api_version)
        response = self.send("DELETE", url)
        if response.status_code not in (200, 201, 202, 204):
            raise ArmResponseError("DELETE", url, response)
        try:
            self._poll(response, url, "DELETE")
        except ArmResponseError as err:
            if response.status_code == 202 and err.status == 404 and err.code == "ResourceNotFound":
                return
            raise

    def _wait(self, response: requests.Response, method: str) -> None:
        # azcore PollUntilDone: the poll response's Retry-After when > 0, else the frequency.
        wait = _retry_after(response)
        time.sleep(wait if wait is not None and wait > 0 else (self.delete_poll if method == "DELETE" else self.put_poll))

    def _poll(self, first: requests.Response, url: str, method: str) -> dict[str, Any]:
        """azcore runtime.NewPoller's choice of poller, then PollUntilDone: Azure-AsyncOperation
        (async), else Location (loc), else the body's provisioningState (body, PUT only); a 202
        without either on DELETE is an error ("response is missing polling URL")."""
        body = first.json() if first.content else {}
        async_url = first.headers.get("Azure-AsyncOperation")
        location = first.headers.get("Location")
        if async_url:
            last = first
            while True:
                self._wait(last, method)
                last = self.send("GET", async_url)
                if last.status_code not in (200, 201, 202):
                    raise ArmResponseError("GET", async_url, last)
                status = str((last.json() if last.content else {}).get("status", "")).lower()
                if status == "succeeded":
                    break
                if status in ("failed", "canceled", "cancelled"):
                    raise ArmResponseError("GET", async_url, last)
            # async poller Result: for PUT/PATCH a final GET of the resource.
            return self.get_url(url) if method in ("PUT", "PATCH") else {}
        if location:
            location = self._absolute(location, url)
            last = first
            while True:
                self._wait(last, method)
                last = self.send("GET", location)
                if last.status_code == 202:
                    continue
                if last.status_code in (200, 201, 204):
                    result = last.json() if last.content else {}
                    if str(result.get("properties", {}).get("provisioningState", "")).lower() in ("failed", "canceled"):
                        raise ArmResponseError("GET", location, last)
                    return result
                raise ArmResponseError("GET", location, last)
        if method == "DELETE" and first.status_code == 202:
            raise Failure(f"DELETE {url}: response is missing polling URL")
        if method != "PUT" or first.status_code not in (200, 201):
            return body
        # body poller: a 201 without provisioningState is in progress, a 200 without it done.
        state = str(body.get("properties", {}).get("provisioningState", "")).lower()
        if not state:
            state = "inprogress" if first.status_code == 201 else "succeeded"
        last = first
        while state not in ("succeeded", "failed", "canceled", "cancelled"):
            self._wait(last, method)
            last = self.send("GET", url)
            if last.status_code == 204:
                return {}
            if last.status_code not in (200, 201):
                raise ArmResponseError("GET", url, last)
            body = last.json() if last.content else {}
            state = str(body.get("properties", {}).get("provisioningState", "")).lower() or (
                "succeeded" if last.status_code == 200 else "inprogress")
        if state != "succeeded":
            raise ArmResponseError("GET", url, last)
        return body

    def get_url(self, url: str) -> dict[str, Any]:
        response = self.send("GET", url)
        if response.status_code != 200:
            raise ArmResponseError("GET", url, response)
        return response.json() if response.content else {}

    def _absolute(self, location: str, url: str) -> str:
        """client_azcore.go normalizeLocationHeader: a relative Location made absolute, and the
        api-version added when it has none."""
        parts = urlsplit(location)
        if not parts.scheme:
            parts = urlsplit(self.endpoint + location)
        query = dict(parse_qsl(parts.query))
        if "api-version" not in query:
            query["api-version"] = dict(parse_qsl(urlsplit(url).query)).get("api-version", "")
        return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


# --- the provider -----------------------------------------------------------------------------------


class AzureNative(Provider):
    name = "azure-native"
    version = VERSION

    def __init__(self) -> None:
        super().__init__()
        self._arm: Arm | None = None

    # --- configuration ---

    def Configure(self, request: Any, context: Any) -> provider_pb2.ConfigureResponse:  # noqa: N802
        # provider.go Configure: v3 needs an engine that sends old inputs (to Diff and Delete).
        if not (request.sends_old_inputs and request.sends_old_inputs_to_delete):
            raise Failure("Azure Native provider requires Pulumi CLI v3.74.0 or later")
        super().Configure(request, context)
        return provider_pb2.ConfigureResponse(acceptSecrets=True, supportsPreview=True, acceptResources=True)

    def DiffConfig(self, request: Any, context: Any) -> provider_pb2.DiffResponse:  # noqa: N802
        # provider.go DiffConfig: "Changes: 0", DIFF_UNKNOWN, so the engine compares the config itself.
        return provider_pb2.DiffResponse(changes=provider_pb2.DiffResponse.DIFF_UNKNOWN)

    def _setting(self, key: str, env: str) -> str:
        # provider.go getConfig: the provider's config ("azure-native:config:KEY" in Configure's
        # variables), else the environment variable.
        value = self.config.get(f"azure-native:config:{key}") or self.config.get(key) or os.environ.get(env)
        return str(value or "")

    def _subscription(self) -> str:
        subscription = self._setting("subscriptionId", "ARM_SUBSCRIPTION_ID")
        if not subscription:
            raise Failure("no subscription: set azure-native:subscriptionId (or ARM_SUBSCRIPTION_ID)")
        return subscription

    def _client(self) -> Arm:
        if self._arm is None:
            endpoint, token = os.environ.get(ENDPOINT_ENV), os.environ.get(TOKEN_ENV)
            if not endpoint or not token:
                raise Failure(
                    f"the azure-native stand-in calls the ARM endpoint in {ENDPOINT_ENV} with the bearer token in "
                    f"{TOKEN_ENV} (scripts/engine fake-azure prints both); set: "
                    f"{', '.join(n for n, v in ((ENDPOINT_ENV, endpoint), (TOKEN_ENV, token)) if v) or 'neither'}"
                )
            self._arm = Arm(endpoint, token)
        return self._arm

    def _kind(self, request: Any) -> Kind:
        typ = type_of(request)
        if typ not in KINDS:
            # provider.go lookupResourceFromURN
            raise Failure(f"Resource type {typ} not found (the stand-in has {', '.join(sorted(KINDS))})")
        return KINDS[typ]

    # --- check ---

    def Check(self, request: Any, context: Any) -> provider_pb2.CheckResponse:  # noqa: N802
        kind = self._kind(request)
        news = drop_nulls(to_dict(request.news))
        olds = drop_nulls(to_dict(request.olds))
        self._autoname(kind, request, olds, news)
        # provider.go applyDefaults: v3 sets azureApiVersion to the API version in the inputs.
        news.setdefault("azureApiVersion", API_VERSION)
        failures = [provider_pb2.CheckFailure(reason=r) for r in self._validate(kind, plain(news))]
        return provider_pb2.CheckResponse(inputs=to_struct(news), failures=failures)

    def _autoname(self, kind: Kind, request: Any, olds: dict[str, Any], news: dict[str, Any]) -> None:
        """provider.go getDefaultName: an unset name parameter keeps the old one, else the engine's
        proposed name, else the URN name plus 8 random characters from the random seed
        (resource.NewUniqueName); a random name marks the resource create-before-delete."""
        key = kind.name_param
        if key in news:
            return
        if key in olds:
            news[key] = olds[key]
            if isinstance(olds.get(CREATE_BEFORE_DELETE), bool):
                news[CREATE_BEFORE_DELETE] = olds[CREATE_BEFORE_DELETE]
            return
        options = request.autonaming if request.HasField("autonaming") else None
        modes = provider_pb2.CheckRequest.AutonamingOptions
        if options is not None and options.mode == modes.DISABLE:
            return
        if options is not None and options.mode in (modes.ENFORCE, modes.PROPOSE):
            news[key] = options.proposed_name
        else:
            seed = request.randomSeed or request.urn.encode()
            news[key] = name_of(request.urn) + hashlib.sha256(seed).hexdigest()[:8]
        news[CREATE_BEFORE_DELETE] = True

    def _validate(self, kind: Kind, inputs: dict[str, Any]) -> list[str]:
        """provider.go Check/validateProperty: required properties, and the path parameters'
        pattern and length (messages as upstream's); unknown values are skipped."""
        reasons = []
        for name in kind.path_params:
            value = inputs.get(name)
            if value is None:
                reasons.append(f"missing required property '{name}'")
                continue
            if value == UNKNOWN or not isinstance(value, str):
                continue
            pattern, low, high = PATH_RULES.get(name, (kind.name_pattern, 5, 50))
            if len(value) < low:
                reasons.append(f"'{name}' is too short ({len(value)}): at least {low} characters required")
            if len(value) > high:
                reasons.append(f"'{name}' is too long ({len(value)}): at most {high} characters allowed")
            if not re.match(pattern, value):
                reasons.append(f"'{name}' does not match expression '{pattern}'")
        for path in kind.required:
            parent, _, leaf = path.rpartition(".")
            container: Any = inputs
            for part in parent.split(".") if parent else []:
                container = container.get(part) if isinstance(container, dict) else None
            if isinstance(container, dict) and leaf not in container:
                reasons.append(f"missing required property '{path}'")
        return reasons

    # --- diff ---

    def Diff(self, request: Any, context: Any) -> provider_pb2.DiffResponse:  # noqa: N802
        kind = self._kind(request)
        old_state = drop_nulls(to_dict(request.olds))
        # provider.go parseCheckpointObject: the old inputs the engine sends (v3), else the state's
        # `__inputs` (v2 state).
        if request.HasField("old_inputs"):
            old_inputs = drop_nulls(to_dict(request.old_inputs))
        else:
            old_inputs = plain(old_state.get("__inputs") or {})
        # provider.go Diff: "v2-to-v3 migration: apiVersion might be available in the old state".
        if "azureApiVersion" not in old_inputs and "azureApiVersion" in old_state:
            old_inputs["azureApiVersion"] = old_state["azureApiVersion"]
        news = drop_nulls(to_dict(request.news))
        olds_plain, news_plain = plain(old_inputs), plain(news)
        detailed = detailed_diff(kind, olds_plain, news_plain)
        if not detailed:
            return provider_pb2.DiffResponse(changes=provider_pb2.DiffResponse.DIFF_NONE)
        # diff.go calculateChangesAndReplacements: an added path parameter whose value the state
        # already has is no replacement; every other *_REPLACE is.
        changes: list[str] = []
        replaces: list[str] = []
        for key, value in sorted(detailed.items()):
            if value == Kinds.ADD_REPLACE:
                if key not in olds_plain and key in news_plain and plain(old_state.get(key)) == news_plain[key]:
                    detailed[key] = Kinds.ADD
                else:
                    replaces.append(key)
            elif value in (Kinds.DELETE_REPLACE, Kinds.UPDATE_REPLACE):
                replaces.append(key)
            top = key.split(".")[0]
            if top not in changes:
                changes.append(top)
        # provider.go Diff: delete before replace (same ARM id), unless randomly auto-named.
        delete_first = bool(replaces)
        if isinstance(old_inputs.get(CREATE_BEFORE_DELETE), bool):
            delete_first = not old_inputs[CREATE_BEFORE_DELETE]
        return provider_pb2.DiffResponse(
            changes=provider_pb2.DiffResponse.DIFF_SOME if changes else provider_pb2.DiffResponse.DIFF_NONE,
            replaces=replaces,
            stables=[],
            deleteBeforeReplace=delete_first,
            diffs=changes,
            detailedDiff={k: provider_pb2.PropertyDiff(kind=v, inputDiff=True)  # type: ignore[arg-type]
                          for k, v in detailed.items()},
            hasDetailedDiff=True,
        )

    # --- create, read, update, delete ---

    def Create(self, request: Any, context: Any) -> provider_pb2.CreateResponse:  # noqa: N802
        kind = self._kind(request)
        inputs = drop_nulls(to_dict(request.properties))
        hidden = secret_keys(inputs)
        if request.preview:
            # provider.go Create: "the preview of outputs using the current inputs and marking all
            # other response properties as computed".
            outputs = preview_outputs({**kind.outputs, "azureApiVersion": S}, plain(inputs))
            return provider_pb2.CreateResponse(properties=to_struct(rewrap(outputs, hidden)))
        values = plain(inputs)
        path = kind.path(self._subscription(), values)
        arm = self._client()
        arm.can_create(path, API_VERSION)
        try:
            response = arm.put(path, request_body(kind, values), API_VERSION)
        except ArmResponseError as err:
            raise Failure(str(err)) from None
        except OperationFailed as err:
            self._partial(context, kind, path, request.properties, err)
        found_id = response.get("id")
        resource_id = found_id if isinstance(found_id, str) and found_id else path
        response = self._read_after_write(kind, resource_id, request.urn, "Create") or response
        return provider_pb2.CreateResponse(id=resource_id, properties=to_struct(rewrap(outputs_of(kind, response), hidden)))

    def Update(self, request: Any, context: Any) -> provider_pb2.UpdateResponse:  # noqa: N802
        kind = self._kind(request)
        news = drop_nulls(to_dict(request.news))
        hidden = secret_keys(news)
        if request.preview:
            # provider.go Update: "inputs + a limited list of outputs that are universally
            # immutable": name and location from the old state; the rest of the outputs unknown.
            old_state = drop_nulls(to_dict(request.olds))
            outputs = preview_outputs({**kind.outputs, "azureApiVersion": S}, plain(news))
            for stable in ("name", "location"):
                if stable in old_state:
                    outputs[stable] = old_state[stable]
            return provider_pb2.UpdateResponse(properties=to_struct(rewrap(outputs, hidden)))
        values = plain(news)
        path = kind.path(self._subscription(), values)
        try:
            response = self._client().put(path, request_body(kind, values), API_VERSION)
        except ArmResponseError as err:
            raise Failure(str(err)) from None
        except OperationFailed as err:
            self._partial(context, kind, path, request.news, err)
        response = self._read_after_write(kind, request.id or path, request.urn, "Update") or response
        return provider_pb2.UpdateResponse(properties=to_struct(rewrap(outputs_of(kind, response), hidden)))

    def Read(self, request: Any, context: Any) -> provider_pb2.ReadResponse:  # noqa: N802
        kind = self._kind(request)
        old_state = plain(drop_nulls(to_dict(request.properties)))
        previous = drop_nulls(to_dict(request.inputs)) if request.HasField("inputs") else None
        try:
            response = self._client().get(request.id, API_VERSION)
        except ArmResponseError as err:
            if err.not_found:
                return provider_pb2.ReadResponse(id="")  # provider.go Read: "404 means that the resource was deleted"
            raise Failure(str(err)) from None
        outputs = outputs_of(kind, response)
        if not previous and not old_state:
            # provider.go Read: no old state (an import, `.get`): inputs from the id and the body.
            inputs = {**self._path_values(kind, request.id), **project(kind.body, outputs)}
        else:
            # provider.go Read: the change between the old and the new outputs, projected to inputs
            # (read-only properties left out), applied to the stored inputs.
            inputs = apply_diff(previous or {}, project(kind.body, old_state), project(kind.body, outputs))
        hidden = secret_keys(previous or {})
        return provider_pb2.ReadResponse(id=request.id, properties=to_struct(rewrap(outputs, hidden)),
                                         inputs=to_struct(inputs))

    def Delete(self, request: Any, context: Any) -> Any:  # noqa: N802
        self._kind(request)
        try:
            self._client().delete(request.id, API_VERSION)
        except ArmResponseError as err:
            raise Failure(str(err)) from None
        return empty_pb2.Empty()

    # --- invoke ---

    def Invoke(self, request: Any, context: Any) -> provider_pb2.InvokeResponse:  # noqa: N802
        if request.tok != "azure-native:containerregistry:getRegistry":
            raise Failure(f"Invoke type {request.tok} not found (the stand-in has "
                          "azure-native:containerregistry:getRegistry)")
        args = plain(drop_nulls(to_dict(request.args)))
        missing = [k for k in ("resourceGroupName", "registryName") if not isinstance(args.get(k), str)]
        if missing:
            raise Failure(f"missing required argument(s) {', '.join(missing)}")
        path = (f"/subscriptions/{quote(self._subscription(), safe='')}/resourceGroups/"
                f"{quote(args['resourceGroupName'], safe='')}/providers/Microsoft.ContainerRegistry/registries/"
                f"{quote(args['registryName'], safe='')}")
        try:
            response = self._client().get(path, REGISTRY_API_VERSION)
        except ArmResponseError as err:
            raise Failure(f"request failed {path}: {err}") from None  # provider.go Invoke
        flat = {**(response.get("properties") or {}), **{k: v for k, v in response.items() if k != "properties"}}
        result = {k: v for k, v in flat.items() if k in REGISTRY_RESULT and v is not None}
        # provider.go invokeResponseToOutputs: "resource getters have an azureApiVersion output".
        result["azureApiVersion"] = REGISTRY_API_VERSION
        return provider_pb2.InvokeResponse(**{"return": to_struct(result)})

    # --- helpers ---

    def _path_values(self, kind: Kind, resource_id: str) -> dict[str, str]:
        parts = resource_id.strip("/").split("/")
        try:
            return {"resourceGroupName": parts[3], "registryName": parts[7], kind.name_param: parts[9]}
        except IndexError:
            raise Failure(f"cannot parse resource id '{resource_id}'") from None

    def _read_after_write(self, kind: Kind, resource_id: str, urn: str, operation: str) -> dict[str, Any] | None:
        """provider.go readAfterWrite: GET the resource after a PUT so the state matches what a refresh
        reads; a failing read is a warning, never an error."""
        try:
            return self._client().get(resource_id, API_VERSION)
        except (ArmResponseError, Failure):
            self._warn(urn, f"Failed to read resource after {operation}. Please report this issue.")
            return None

    def _partial(self, context: grpc.ServicerContext, kind: Kind, path: str, inputs: Any, err: Exception) -> NoReturn:
        """crud.go HandleErrorWithCheckpoint/partialError: the resource was accepted but its operation
        failed; report what a GET reads now with ErrorResourceInitFailed so the engine keeps it."""
        reason = str(err)
        try:
            state = outputs_of(kind, self._client().get(path, API_VERSION))
        except (ArmResponseError, Failure) as read:
            state = {}
            reason = f"resource created but read failed {read}: {reason}"
        detail = provider_pb2.ErrorResourceInitFailed(id=path, properties=to_struct(state), reasons=[reason],
                                                      inputs=inputs)
        packed = any_pb2.Any()
        packed.Pack(detail)
        status = status_pb2.Status(code=grpc.StatusCode.UNKNOWN.value[0], message=reason, details=[packed])
        context.set_trailing_metadata((("grpc-status-details-bin", status.SerializeToString()),))
        raise Failure(reason)

    def _warn(self, urn: str, message: str) -> None:
        """A warning in the engine's output (the engine's address is the plugin's argument)."""
        if len(sys.argv) < 2:
            return
        try:
            from pulumi.runtime.proto import engine_pb2, engine_pb2_grpc

            with grpc.insecure_channel(sys.argv[1]) as channel:
                engine_pb2_grpc.EngineStub(channel).Log(
                    engine_pb2.LogRequest(severity=engine_pb2.WARNING, message=message, urn=urn), timeout=10
                )
        except Exception:  # noqa: BLE001 - a warning that cannot be shown is not worth failing for
            pass


if __name__ == "__main__":
    serve(AzureNative())
