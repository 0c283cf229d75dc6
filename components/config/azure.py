"""The Azure-side settings of a site: the parent registry, the connected registry, what it syncs
and when, its notifications, its tokens' password lifetime and the ARM endpoint; with ACR's limits
and the names derived from the connected registry's name.

The tokens' password settings are here, not in a module of their own: they are ACR token
passwords, declared among the Azure settings (the generated reference keeps this order).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Literal

import croniter
import isodate
from pydantic import Field, SecretStr, field_validator

from components.config.fields import (
    ConfigBool,
    ConfigInt,
    ConfigModel,
    ValueEcho,
    host_problem,
    outer_whitespace,
)

#: ACR limits (docs/azure.md, "Limits").
MAX_SCOPE_MAP_REPOSITORIES = 500
MAX_CLIENT_TOKENS = 50
# Token and scope map names derive from the connected registry name; the longest suffix is
# "-client-scope-map" (17 characters) and ARM allows 50.
MAX_CONNECTED_REGISTRY_NAME = 50 - len("-client-scope-map")

# OCI distribution spec: path components separated by "/", lower case.
_REPO_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
REPOSITORY_RE = re.compile(rf"{_REPO_COMPONENT}(?:/{_REPO_COMPONENT})*")
# A pattern is a namespace followed by "/*" (ACR's own wildcard form).
REPOSITORY_PATTERN_RE = re.compile(rf"{_REPO_COMPONENT}(?:/{_REPO_COMPONENT})*/\*")
# Notifications (docs/config-rules.md, "Notifications"): `artifact:action`, where
# artifact = name[:tag][@digest] and action = push | delete | *; `*` stands for a whole section.
NOTIFICATION_ACTIONS = ("push", "delete", "*")
NOTIFICATION_ARTIFACT_RE = re.compile(
    rf"(?P<name>\*|{_REPO_COMPONENT}(?:/{_REPO_COMPONENT})*(?:/\*)?)"
    r"(?::(?P<tag>\*|[A-Za-z0-9_][A-Za-z0-9._-]{0,127}))?"
    r"(?:@(?P<digest>\*|[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-fA-F0-9]{32,}))?"
)
# Lower case: the az CLI refuses upper case, older runtimes fail to activate (docs/azure.md).
CONNECTED_REGISTRY_NAME_RE = re.compile(r"[a-z][a-z0-9]{4,49}")
#: An endpoint URL: scheme, host, optional port, nothing after the host but an optional "/".
ARM_ENDPOINT_RE = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<host>[^/:?#@]+)(?::(?P<port>[0-9]+))?/?")
CRON_FIELDS = (("minute", "0-59"), ("hour", "0-23"), ("day-of-month", "1-31"), ("month", "1-12"),
               ("day-of-week", "0-7"))
REGISTRY_NAME_RE = re.compile(r"[a-zA-Z0-9]{5,50}")
RESOURCE_GROUP_RE = re.compile(r"[-\w._()]{0,89}[-\w_()]")


def _duration(value: str, key_hint: str) -> timedelta:
    if outer_whitespace(value):
        raise ValueError(f"has leading or trailing whitespace (a newline?): expected a duration such as {key_hint}")
    try:
        parsed = isodate.parse_duration(value)
    except (isodate.ISO8601Error, ValueError, TypeError):
        raise ValueError(f"expected an ISO 8601 duration such as {key_hint}") from None
    if not isinstance(parsed, timedelta):
        # Years and months have no fixed length; ARM wants days or hours.
        raise ValueError(f"expected an ISO 8601 duration in days/hours such as {key_hint}")
    return parsed


def _entries(count: int) -> str:
    """How many entries of a list are wrong, without quoting them: "an entry is", "3 entries are"."""
    return "an entry is" if count == 1 else f"{count} entries are"


def notification_problem(pattern: str) -> str | None:
    """What is wrong with one notification pattern (docs/config-rules.md, "Notifications"), or None."""
    artifact, sep, action = pattern.rpartition(":")
    if not sep or not artifact:
        return f"{pattern!r}: expected `artifact:action`, e.g. 'hello-world:1.0:push' or '*:*'"
    if action not in NOTIFICATION_ACTIONS:
        return f"{pattern!r}: the action {action!r} is not push, delete or *"
    if not NOTIFICATION_ARTIFACT_RE.fullmatch(artifact):
        return (f"{pattern!r}: the artifact {artifact!r} is not name[:tag][@digest] (name a lower-case repository, "
                "`path/*` or `*`; tag or digest may be `*`)")
    return None


class AzureSettings(ConfigModel):
    """The settings of the site's Azure side (a part of :class:`~components.config.site.SiteConfig`)."""

    registry_name: str = Field(alias="registryName", description="The parent (cloud) registry: Premium, with a dedicated data endpoint.")
    registry_resource_group: str = Field(alias="registryResourceGroup", description="Resource group of the parent registry.")
    connected_registry_name: str = Field(
        alias="connectedRegistryName", description="Connected registry name: lower-case letters and digits, 5-33, starting with a letter."
    )
    mode: Literal["ReadOnly", "ReadWrite"] = Field("ReadOnly", description="Connected registry mode: ReadOnly or ReadWrite (ReadWrite needs allowReadWrite).")
    allow_read_write: ConfigBool = Field(
        False, alias="allowReadWrite", description="Explicit opt-in needed for mode ReadWrite."
    )
    repositories: tuple[str, ...] = Field(
        alias="repositories", description="Repositories to sync: names, or `namespace/*` patterns expanded against the catalog."
    )
    client_repositories: tuple[str, ...] = Field(
        (), alias="clientRepositories",
        description="Repositories the client token may pull (default: the synced ones).",
    )
    sync_schedule: str = Field("30 * * * *", alias="syncSchedule", description="Sync schedule, 5-field cron.")
    sync_window: str = Field("PT1H", alias="syncWindow", description="Sync window, ISO 8601 duration from PT1H to P7D.")
    message_ttl: str = Field("P2D", alias="messageTtl", description="Message TTL, ISO 8601 duration from P1D to P90D.")
    log_level: Literal["Debug", "Information", "Warning", "Error", "None"] = Field(
        "Information", alias="logLevel", description="Connected registry log level: Debug, Information, Warning, Error or None."
    )
    audit_log: ConfigBool = Field(False, alias="auditLog", description="Enable audit logs.")
    notifications: tuple[str, ...] = Field(
        (), description="Notifications, `artifact:action` (artifact `name[:tag][@digest]`, action push, delete or *)."
    )
    garbage_collection_enabled: ConfigBool = Field(
        True, alias="garbageCollectionEnabled",
        description=(
            "Garbage collection on the connected registry: frees the site's disk of untagged manifests and "
            "the layers no manifest references; keeps every tagged image "
            "([what it removes and keeps](docs/operations.md#storage-garbage-collection))."
        ),
    )
    garbage_collection_schedule: str = Field(
        "0 5 * * *", alias="garbageCollectionSchedule",
        description="When the connected registry collects garbage, 5-field cron.",
    )
    password_expiry_days: ConfigInt = Field(
        90, alias="passwordExpiryDays", ge=1, le=3650, description="Token password lifetime."
    )
    password_rotate_before_days: ConfigInt = Field(
        30, alias="passwordRotateBeforeDays", ge=0,
        description=(
            "Start rotating a password this many days before it expires; previews warn about a "
            "rotation inside this window that waits for a sync."
        ),
    )
    arm_endpoint: str = Field(
        "https://management.azure.com", alias="armEndpoint",
        description=(
            "Azure Resource Manager endpoint (sovereign clouds differ); also where each run reads "
            "the connected registry's sync status."
        ),
    )
    adopt_sync_password: SecretStr | None = Field(
        None, alias="adoptSyncPassword",
        description=(
            "Adopting a site (lost state, built by hand): the sync token's password in use, `VALUE` or "
            "`password1:VALUE`; its password resource records it instead of issuing one. Read only when "
            "that resource is created ([runbook](docs/runbooks.md#adopt-a-site))."
        ),
    )
    adopt_client_password: SecretStr | None = Field(
        None, alias="adoptClientPassword",
        description="Adopting a site: the client token's password in use, as adoptSyncPassword.",
    )
    import_existing: ConfigBool = Field(
        False, alias="importExisting",
        description=(
            "Adopting a site: import the connected registry, scope maps, tokens and Helm release that "
            "already exist instead of creating them ([runbook](docs/runbooks.md#adopt-a-site))."
        ),
    )

    @field_validator("connected_registry_name")
    @classmethod
    def _cr_name(cls, value: str) -> str:
        if "-" in value:
            raise ValueError("hyphens are not allowed (ARM rejects them): use letters and digits only")
        if not CONNECTED_REGISTRY_NAME_RE.fullmatch(value.lower()):
            raise ValueError("expected 5-50 letters and digits, starting with a letter")
        if value != value.lower():
            why = ": the az CLI refuses upper case and connected registry runtimes before 0.7.0 fail to activate with it"
            raise ValueEcho(f"must be lower case ({value.lower()!r}){why}", f"must be lower case{why}")
        if len(value) > MAX_CONNECTED_REGISTRY_NAME:
            raise ValueError(
                f"at most {MAX_CONNECTED_REGISTRY_NAME} characters: the derived token and scope map "
                "names (<name>-client-scope-map) must fit ARM's 50-character limit"
            )
        return value

    @field_validator("registry_name")
    @classmethod
    def _registry_name(cls, value: str) -> str:
        if not REGISTRY_NAME_RE.fullmatch(value):
            raise ValueError("expected 5-50 letters and digits")
        return value

    @field_validator("registry_resource_group")
    @classmethod
    def _rg(cls, value: str) -> str:
        if not RESOURCE_GROUP_RE.fullmatch(value):
            raise ValueError("expected 1-90 letters, digits, '-', '_', '.', '(' or ')', not ending in '.'")
        return value

    @field_validator("repositories", "client_repositories")
    @classmethod
    def _repositories(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [r for r in value if not (REPOSITORY_RE.fullmatch(r) or REPOSITORY_PATTERN_RE.fullmatch(r))]
        if bad:
            what = "not a repository name or `namespace/*` pattern (lower case, OCI grammar)"
            raise ValueEcho(f"{what}: {', '.join(map(repr, bad))}", f"{_entries(len(bad))} {what}")
        dupes = sorted({r for r in value if value.count(r) > 1})
        if dupes:
            raise ValueEcho(f"listed more than once: {', '.join(dupes)}", "an entry is listed more than once")
        return value

    @field_validator("repositories")
    @classmethod
    def _repositories_not_empty(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("at least one repository to sync is required")
        if len(value) > MAX_SCOPE_MAP_REPOSITORIES:
            raise ValueError(
                f"{len(value)} entries; a scope map holds at most {MAX_SCOPE_MAP_REPOSITORIES} repositories"
            )
        return value

    @field_validator("sync_schedule", "garbage_collection_schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        if outer_whitespace(value) or any(c.isspace() and c != " " for c in value):
            raise ValueError("expected 5 cron fields separated by spaces, nothing around them (a newline?), "
                             "such as '30 * * * *'")
        fields = value.split()
        if len(fields) != 5:
            raise ValueError(
                f"expected 5 cron fields (minute hour day-of-month month day-of-week) such as '30 * * * *', "
                f"found {len(fields)}"
            )
        for index, (name, allowed) in enumerate(CRON_FIELDS):
            alone = ["*"] * 5
            alone[index] = fields[index]
            if not croniter.croniter.is_valid(" ".join(alone)):
                expected = f"is out of range or malformed: expected {allowed}, '*', a list, a range or a step"
                raise ValueEcho(f"the {name} field {fields[index]!r} {expected}", f"the {name} field {expected}")
        if not croniter.croniter.is_valid(value):
            raise ValueError("expected a 5-field cron expression such as '30 * * * *'")
        return value

    @field_validator("sync_window")
    @classmethod
    def _window(cls, value: str) -> str:
        parsed = _duration(value, "PT1H")
        if not timedelta(hours=1) <= parsed <= timedelta(days=7):
            raise ValueError("must be between PT1H and P7D")
        return value

    @field_validator("message_ttl")
    @classmethod
    def _ttl(cls, value: str) -> str:
        parsed = _duration(value, "P2D")
        if not timedelta(days=1) <= parsed <= timedelta(days=90):
            raise ValueError("must be between P1D and P90D")
        return value

    @field_validator("notifications")
    @classmethod
    def _notifications(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        problems = [problem for pattern in value if (problem := notification_problem(pattern))]
        if problems:
            raise ValueEcho("; ".join(problems), f"{_entries(len(problems))} not an `artifact:action` pattern "
                            "(artifact name[:tag][@digest], action push, delete or *)")
        dupes = sorted({n for n in value if value.count(n) > 1})
        if dupes:
            raise ValueEcho(f"listed more than once: {', '.join(dupes)}", "an entry is listed more than once")
        return value

    @field_validator("adopt_sync_password", "adopt_client_password")
    @classmethod
    def _adopted(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            slot, _, password = adopted_password(value.get_secret_value())
            if not password:
                raise ValueError("expected the password, or password1:PASSWORD or password2:PASSWORD")
        return value

    @field_validator("arm_endpoint")
    @classmethod
    def _arm(cls, value: str) -> str:
        url = ARM_ENDPOINT_RE.fullmatch(value)
        if not url or url["scheme"] != "https":
            raise ValueError("expected an https URL such as https://management.azure.com (scheme and host only)")
        problem = host_problem(url["host"])
        if problem:
            what = problem.replace("expected", "is not")
            raise ValueEcho(f"the host {url['host']!r} {what}", f"the host {what}")
        if url["port"] is not None and not (len(url["port"]) <= 5 and 1 <= int(url["port"]) <= 65535):
            raise ValueEcho(f"the port {url['port']} is out of range: expected 1-65535",
                            "the port is out of range: expected 1-65535")
        return value.rstrip("/")

    # --- derived values ---
    @property
    def effective_client_repositories(self) -> tuple[str, ...]:
        """What the client token may pull: the configured list, else the synced repositories."""
        return self.client_repositories or self.repositories

    @property
    def sync_token_name(self) -> str:
        """The sync token and scope map are named after the connected registry, as the az CLI does."""
        return f"{self.connected_registry_name}-sync-token"

    @property
    def sync_scope_map_name(self) -> str:
        return f"{self.connected_registry_name}-sync-scope-map"

    @property
    def client_token_name(self) -> str:
        return f"{self.connected_registry_name}-client-token"

    @property
    def client_scope_map_name(self) -> str:
        return f"{self.connected_registry_name}-client-scope-map"


def adopted_password(text: str) -> tuple[str | None, str, str]:
    """An adopt*Password value split as (slot or None, ":", password); a password of ACR never
    has a colon, so only a ``password1:``/``password2:`` prefix names a slot."""
    slot, sep, rest = text.partition(":")
    if sep and slot in ("password1", "password2"):
        return slot, sep, rest.strip()
    return None, "", text.strip()
