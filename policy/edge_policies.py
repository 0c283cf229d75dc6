"""Guardrails for edge-registry sites, as Pulumi resource policies (pulumi-policy).

Run them with ``pulumi preview --policy-pack policy`` (and ``pulumi up --policy-pack policy``).
This module only declares policies; ``policy/__main__.py`` builds the ``PolicyPack`` (which starts
the policy server), so tests import this module and call each policy's ``validate`` directly.

Which stacks may use ReadWrite or plain http
--------------------------------------------
Only sites that opted in, in their own ``Pulumi.<site>.yaml`` (or listed in this pack's fleet
config): the rule and how to opt in are documented in one place, docs/config-rules.md
("Opt-ins"). The stack is the one in the resource's URN (``urn:pulumi:<stack>::…``); the project
directory is the policy pack's parent directory, or ``EDGE_REGISTRY_PROJECT_DIR``.

The offline render runs these same validators on what it rendered (components/preview/policy_check.py),
so a stack that renders cleanly passes this pack.

Every policy is mandatory.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pulumi_policy import (
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

PROJECT = "edge-registry"

CONNECTED_REGISTRY = "azure-native:containerregistry:ConnectedRegistry"
SCOPE_MAP = "azure-native:containerregistry:ScopeMap"
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
REMOTE_COMMAND = "command:remote:Command"
K8S_SECRET = "kubernetes:core/v1:Secret"
#: Python dynamic resources are typed ``pulumi-python:dynamic:Resource``, or
#: ``pulumi-python:dynamic/<module>:<Name>`` when the class names itself (TokenPassword does).
DYNAMIC_PREFIX = "pulumi-python:dynamic"

DOCKERCONFIGJSON_TYPE = "kubernetes.io/dockerconfigjson"
DOCKERCONFIGJSON_KEY = ".dockerconfigjson"
DEFAULT_PULL_SECRET_NAME = "edge-registry-pull"
READ_ACTION_SUFFIXES = ("/content/read", "/metadata/read")

#: ACR limits (docs/azure.md, "Limits") that one stack can see.
MAX_SCOPE_MAP_REPOSITORIES = 500
MAX_CLIENT_TOKENS = 50
DEFAULT_MAX_PASSWORD_EXPIRY_DAYS = 90

_ACTION_RE = re.compile(r"^repositories/(?P<repo>.+)/(?:content|metadata)/[a-z]+$")


# --- what a stack says about itself ---------------------------------------------------------

def stack_of(urn: str) -> str:
    """The stack name in a resource URN, ``urn:pulumi:<stack>::<project>::<type>::<name>``."""
    head = urn.split("::", 1)[0]
    return head.split(":", 2)[2] if head.startswith("urn:pulumi:") and head.count(":") >= 2 else ""


#: Where the offline render keeps the stack it checks, when not in the project directory.
STACK_DIR: ContextVar[Path | None] = ContextVar("edge_registry_stack_dir", default=None)


def project_dir() -> Path:
    """Where the ``Pulumi.<stack>.yaml`` files are: the pack's parent, or EDGE_REGISTRY_PROJECT_DIR
    (or the directory the offline render checks, components/preview/policy_check.py)."""
    checked = STACK_DIR.get()
    if checked is not None:
        return checked
    override = os.environ.get("EDGE_REGISTRY_PROJECT_DIR")
    return Path(override) if override else Path(__file__).resolve().parent.parent


@lru_cache(maxsize=64)
def _read_stack_file(path: str, _mtime: float) -> Mapping[str, Any]:
    try:
        document = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}
    config = document.get("config") if isinstance(document, dict) else None
    if not isinstance(config, dict):
        return {}
    # Keys of the project's own namespace may be written with or without the prefix.
    return {(str(key) if ":" in str(key) else f"{PROJECT}:{key}"): value for key, value in config.items()}


def stack_file_config(stack: str) -> Mapping[str, Any]:
    """The config written in ``Pulumi.<stack>.yaml`` (project defaults not merged); {} if absent."""
    if not stack or "/" in stack or stack.startswith("."):
        return {}
    path = project_dir() / f"Pulumi.{stack}.yaml"
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return {}
    return _read_stack_file(str(path), mtime)


def site_opted_in(stack: str, key: str) -> bool:
    """Whether the stack file itself sets ``edge-registry:<key>`` to true (not a secure value)."""
    value = stack_file_config(stack).get(f"{PROJECT}:{key}")
    if isinstance(value, bool):
        return value
    return isinstance(value, str) and value.strip().lower() == "true"


def stack_listed(stack: str, patterns: Any) -> bool:
    """Whether the stack matches one of ``patterns`` (names or fnmatch patterns; ``org/proj/stack`` ok)."""
    if not stack or not isinstance(patterns, (list, tuple)):
        return False
    return any(
        isinstance(pattern, str) and fnmatch.fnmatchcase(stack, pattern.rsplit("/", 1)[-1])
        for pattern in patterns
    )


# --- reading resource inputs ----------------------------------------------------------------

def keys_of(props: Any) -> set[str]:
    """The keys of an input map, even when some of their values are unknown during preview."""
    return set(iter(props)) if isinstance(props, Mapping) else set()


def known(props: Any, key: str, default: Any = None) -> Any:
    """``props[key]``, or ``default`` when it is absent or not known yet (preview)."""
    if not isinstance(props, Mapping) or key not in keys_of(props):
        return default
    try:
        return props[key]
    except UnknownValueError:
        return default


def truthy(value: Any) -> bool:
    """A boolean input, which may arrive as a bool or as its string form."""
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def display_name(args: ResourceValidationArgs, name_key: str) -> str:
    """The resource's own name in Azure/Kubernetes when known, else its Pulumi name."""
    value = known(args.props, name_key)
    return value if isinstance(value, str) and value else args.name


Validator = Callable[[ResourceValidationArgs, ReportViolation], None]


def _applies(resource_type: str) -> Callable[[Validator], Validator]:
    """Run the wrapped validator only for resources of ``resource_type``."""
    def wrap(check: Validator) -> Validator:
        def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
            if args.resource_type == resource_type:
                check(args, report)
        validate.__doc__ = check.__doc__
        return validate
    return wrap


def opted_in(args: ResourceValidationArgs, stack: str, site_key: str, config_key: str) -> bool:
    """The stack opted in: ``site_key: true`` in its own Pulumi.<stack>.yaml, or it is listed
    in this policy's ``config_key``."""
    return site_opted_in(stack, site_key) or stack_listed(stack, args.get_config().get(config_key))


# --- (1) ReadWrite only where the site opted in ---------------------------------------------

@_applies(CONNECTED_REGISTRY)
def _read_write_allowed(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """A ReadWrite (or legacy ``Registry``) connected registry needs the site's explicit opt-in."""
    mode = args.props.get("mode")
    if not isinstance(mode, str) or mode.lower() not in ("readwrite", "registry"):
        return
    stack = stack_of(args.urn)
    if opted_in(args, stack, "allowReadWrite", "allowReadWriteStacks"):
        return
    report(
        f"connected registry '{display_name(args, 'connectedRegistryName')}' is {mode}, which can push into "
        f"the parent registry, but stack '{stack}' has not opted in: write `{PROJECT}:allowReadWrite: true` "
        f"in Pulumi.{stack}.yaml, or list the stack in this policy's `allowReadWriteStacks` config.",
        None,
    )


read_write_only_where_allowed = ResourceValidationPolicy(
    name="read-write-only-where-allowed",
    description="A ReadWrite connected registry only on stacks that explicitly allow it.",
    validate=_read_write_allowed,
    config_schema=PolicyConfigSchema(
        properties={"allowReadWriteStacks": {"type": "array", "items": {"type": "string"}, "default": []}},
    ),
)


# --- (2) client scope maps are read-only ----------------------------------------------------

@_applies(SCOPE_MAP)
def _client_scope_map_read_only(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """A scope map named for clients grants only content/read and metadata/read."""
    name = display_name(args, "scopeMapName")
    if "client" not in name.lower() and "client" not in args.name.lower():
        return
    actions = args.props.get("actions") or []
    writes = [a for a in actions if not (isinstance(a, str) and a.endswith(READ_ACTION_SUFFIXES))]
    if writes:
        shown = ", ".join(map(str, writes[:5])) + (f" and {len(writes) - 5} more" if len(writes) > 5 else "")
        report(
            f"client scope map '{name}' must be read-only (actions ending in /content/read or "
            f"/metadata/read), but grants: {shown}.",
            None,
        )


client_scope_maps_read_only = ResourceValidationPolicy(
    name="client-scope-maps-read-only",
    description="Client scope maps only grant content/read and metadata/read.",
    validate=_client_scope_map_read_only,
)


# --- (3) http only where the site opted in --------------------------------------------------

@_applies(HELM_RELEASE)
def _http_allowed(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """A Helm release with ``httpEnabled: true`` needs the site's explicit opt-in."""
    values = known(args.props, "values", {})
    if not truthy(known(values, "httpEnabled")):
        return
    stack = stack_of(args.urn)
    if opted_in(args, stack, "httpEnabled", "allowHttpStacks"):
        return
    report(
        f"Helm release '{display_name(args, 'name')}' serves plain http (httpEnabled: true), but stack "
        f"'{stack}' has not opted in: write `{PROJECT}:httpEnabled: true` in Pulumi.{stack}.yaml (the "
        "Pulumi.yaml default does not count), set it to false for https, or list the stack in this "
        "policy's `allowHttpStacks` config.",
        None,
    )


http_only_where_opted_in = ResourceValidationPolicy(
    name="http-only-where-opted-in",
    description="The connected registry serves plain http only on sites that opted in.",
    validate=_http_allowed,
    config_schema=PolicyConfigSchema(
        properties={"allowHttpStacks": {"type": "array", "items": {"type": "string"}, "default": []}},
    ),
)


# --- (4) token passwords expire in time -----------------------------------------------------

def _max_expiry_days(config: Mapping[str, Any]) -> float:
    value = config.get("maxPasswordExpiryDays", DEFAULT_MAX_PASSWORD_EXPIRY_DAYS)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else float(
        DEFAULT_MAX_PASSWORD_EXPIRY_DAYS
    )


def _password_expiry(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """Token passwords (dynamic resources with tokenId and expiryDays) expire within the maximum."""
    if not args.resource_type.startswith(DYNAMIC_PREFIX) or args.resource_type.endswith(":SlotRetirement"):
        return  # SlotRetirement names a token but issues no password (components/azure/slot_retirement.py)
    present = keys_of(args.props)
    if "tokenId" not in present and "tokenName" not in present:
        return
    maximum = _max_expiry_days(args.get_config())
    token = known(args.props, "tokenName") or args.name
    if "expiryDays" not in present:
        report(f"token password for '{token}' sets no expiryDays: it must expire within {maximum:g} days.", None)
        return
    days = args.props["expiryDays"]
    if not isinstance(days, (int, float)) or isinstance(days, bool) or not 0 < days <= maximum:
        report(
            f"token password for '{token}' expires after {days!r} days; the maximum is {maximum:g} "
            f"(set {PROJECT}:passwordExpiryDays, or this policy's maxPasswordExpiryDays).",
            None,
        )


token_passwords_expire = ResourceValidationPolicy(
    name="token-passwords-expire",
    description="Token passwords expire within the configured maximum number of days.",
    validate=_password_expiry,
    config_schema=PolicyConfigSchema(
        properties={
            "maxPasswordExpiryDays": {
                "type": "integer", "minimum": 1, "default": DEFAULT_MAX_PASSWORD_EXPIRY_DAYS,
            },
        },
    ),
)


# --- (5) remote node commands pin host keys (mandatory) --------------------------------------

@_applies(REMOTE_COMMAND)
def _host_key_pinned(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """Without ``connection.hostKey`` pulumi-command does not check the node's host key: whoever
    answers on the node's address gets the command's stdin (the client token's password)."""
    connection = known(args.props, "connection", {})
    if "hostKey" in keys_of(connection):
        try:
            host_key = connection["hostKey"]
        except UnknownValueError:
            return  # computed: it will be set
        if isinstance(host_key, str) and host_key.strip():
            return
    host = known(connection, "host") or "?"
    report(
        f"remote command '{args.name}' connects to {host} without a pinned host key, so SSH does not "
        "verify the node: set hostKey on the node (`python -m components host-key <site> --node HOST` scans it "
        "and shows its fingerprint to compare with the node's console).",
        None,
    )


remote_command_pins_host_key = ResourceValidationPolicy(
    name="remote-command-pins-host-key",
    description="Remote node commands pin the node's SSH host key.",
    validate=_host_key_pinned,
)


# --- (6) pull secrets are kubernetes.io/dockerconfigjson ------------------------------------

def _pull_secret_names(args: ResourceValidationArgs) -> set[str]:
    names = {DEFAULT_PULL_SECRET_NAME}
    configured = args.get_config().get("pullSecretNames")
    if isinstance(configured, (list, tuple)):
        names.update(n for n in configured if isinstance(n, str))
    site_name = stack_file_config(stack_of(args.urn)).get(f"{PROJECT}:pullSecretName")
    if isinstance(site_name, str):
        names.add(site_name)
    return names


@_applies(K8S_SECRET)
def _pull_secret_type(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """A Secret carrying registry credentials has the type the kubelet reads them from."""
    metadata = known(args.props, "metadata", {})
    name = known(metadata, "name")
    data_keys = keys_of(known(args.props, "data", {})) | keys_of(known(args.props, "stringData", {}))
    is_pull_secret = DOCKERCONFIGJSON_KEY in data_keys or (isinstance(name, str) and name in _pull_secret_names(args))
    if not is_pull_secret:
        return
    secret_type = args.props.get("type")
    where = f"{known(metadata, 'namespace') or '?'}/{name or args.name}"
    if secret_type != DOCKERCONFIGJSON_TYPE:
        report(
            f"pull secret {where} has type {secret_type!r}; the kubelet only reads registry credentials "
            f"from type {DOCKERCONFIGJSON_TYPE}.",
            None,
        )
    elif DOCKERCONFIGJSON_KEY not in data_keys:
        report(f"pull secret {where} is {DOCKERCONFIGJSON_TYPE} but has no {DOCKERCONFIGJSON_KEY} key.", None)


pull_secrets_dockerconfigjson = ResourceValidationPolicy(
    name="pull-secrets-dockerconfigjson",
    description="Pull secrets are of type kubernetes.io/dockerconfigjson.",
    validate=_pull_secret_type,
    config_schema=PolicyConfigSchema(
        properties={
            "pullSecretNames": {"type": "array", "items": {"type": "string"}, "default": [DEFAULT_PULL_SECRET_NAME]},
        },
    ),
)


# --- (7) fleet limits one stack can see -----------------------------------------------------

def repositories_in(actions: Iterable[Any]) -> set[str]:
    """Distinct repositories a scope map's actions grant (``repositories/<repo>/<kind>/<verb>``)."""
    repositories = set()
    for action in actions:
        match = _ACTION_RE.fullmatch(action) if isinstance(action, str) else None
        if match:
            repositories.add(match.group("repo"))
    return repositories


@_applies(SCOPE_MAP)
def _scope_map_limit(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """A scope map holds at most 500 repository permissions."""
    count = len(repositories_in(args.props.get("actions") or []))
    if count > MAX_SCOPE_MAP_REPOSITORIES:
        report(
            f"scope map '{display_name(args, 'scopeMapName')}' grants {count} repositories; ACR allows at most "
            f"{MAX_SCOPE_MAP_REPOSITORIES} repository permissions per scope map. Narrow {PROJECT}:repositories "
            "(or clientRepositories), or split the site's repositories across connected registries.",
            None,
        )


scope_map_repository_limit = ResourceValidationPolicy(
    name="scope-map-repository-limit",
    description=f"A scope map grants at most {MAX_SCOPE_MAP_REPOSITORIES} repositories (ACR limit).",
    validate=_scope_map_limit,
)


@_applies(CONNECTED_REGISTRY)
def _client_token_limit(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """A connected registry accepts at most 50 client tokens."""
    # len() of a list whose items are unknown during preview still counts them.
    count = len(args.props.get("clientTokenIds") or [])
    if count > MAX_CLIENT_TOKENS:
        report(
            f"connected registry '{display_name(args, 'connectedRegistryName')}' lists {count} client tokens; ACR "
            f"allows at most {MAX_CLIENT_TOKENS} per connected registry.",
            None,
        )


connected_registry_client_token_limit = ResourceValidationPolicy(
    name="connected-registry-client-token-limit",
    description=f"A connected registry has at most {MAX_CLIENT_TOKENS} client tokens (ACR limit).",
    validate=_client_token_limit,
)


#: Every policy of the pack, in the order the pack reports them.
POLICIES: list[ResourceValidationPolicy] = [
    read_write_only_where_allowed,
    client_scope_maps_read_only,
    http_only_where_opted_in,
    token_passwords_expire,
    remote_command_pins_host_key,
    pull_secrets_dockerconfigjson,
    scope_map_repository_limit,
    connected_registry_client_token_limit,
]
