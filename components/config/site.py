"""The site configuration model: every stack setting, validated before any resource exists.

A stack's config (Pulumi.yaml defaults merged with ``Pulumi.<site>.yaml``) is read into
:class:`SiteConfig`. All problems are collected and reported at once, one line each, naming
the config key, the bad value and what is expected (:class:`ConfigError`). Values of secret
keys are never echoed in a message.

The model is strict: booleans are only true/false, numbers only whole numbers, an optional name
is set or absent (never ""), a misspelt key gets a "did you mean", and one bad value never adds a
second, knock-on error. Every rule and its source is in docs/config-rules.md.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Annotated, Any, Literal, Mapping

import croniter
import isodate
import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from components.cluster import tls

PROJECT = "edge-registry"

#: Config keys whose values are secrets: never printed, always wrapped in ``Output.secret``.
SECRET_KEYS = frozenset({"kubeconfig", "sshPrivateKey", "tlsCaCertificate", "tlsCaKey", "tlsCertificate", "tlsKey"})
#: Keys that may be set with ``--secret``: the secret ones and ``chartValues``, whose secret
#: leaves (``--secret --path chartValues.x``) stay secrets in the Helm values. Every other key
#: ends up in resource names, ids, commands or plain outputs, so a secret there is refused.
SECRET_CAPABLE_KEYS = SECRET_KEYS | {"chartValues"}

#: Keys that no longer exist, with what replaced them (a clearer message than "unknown setting").
RETIRED_KEYS = {
    "mirrorCaFile": "no longer used: the program installs the site CA next to registries.yaml on every node "
    "(docs/nodes.md); to keep a CA of your own, set it as tlsCaCertificate (and tlsCaKey, or tlsCertificate "
    "and tlsKey) and remove mirrorCaFile",
}

#: The values the program sets on the Helm chart itself; ``chartValues`` may not override them.
MANAGED_CHART_VALUES = frozenset(
    {"connectionString", "httpEnabled", "sync.chunkSizeInMb", "pvc.storageClassName",
     "pvc.storageRequest", "service.clusterIP", "tls.crt", "tls.key"}
)

#: ACR limits (docs/azure.md, "Limits").
MAX_SCOPE_MAP_REPOSITORIES = 500
MAX_CLIENT_TOKENS = 50
# Token and scope map names derive from the connected registry name; the longest suffix is
# "-client-scope-map" (17 characters) and ARM allows 50.
MAX_CONNECTED_REGISTRY_NAME = 50 - len("-client-scope-map")

# OCI distribution spec: path components separated by "/", lower case.
_REPO_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
REPOSITORY_RE = re.compile(rf"^{_REPO_COMPONENT}(?:/{_REPO_COMPONENT})*$")
# A pattern is a namespace followed by "/*" (ACR's own wildcard form).
REPOSITORY_PATTERN_RE = re.compile(rf"^{_REPO_COMPONENT}(?:/{_REPO_COMPONENT})*/\*$")
# Notifications (docs/config-rules.md, "Notifications"): `artifact:action`, where
# artifact = name[:tag][@digest] and action = push | delete | *; `*` stands for a whole section.
NOTIFICATION_ACTIONS = ("push", "delete", "*")
NOTIFICATION_ARTIFACT_RE = re.compile(
    rf"^(?P<name>\*|{_REPO_COMPONENT}(?:/{_REPO_COMPONENT})*(?:/\*)?)"
    r"(?::(?P<tag>\*|[A-Za-z0-9_][A-Za-z0-9._-]{0,127}))?"
    r"(?:@(?P<digest>\*|[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-fA-F0-9]{32,}))?$"
)
# Lower case: the az CLI refuses upper case, older runtimes fail to activate (docs/azure.md).
CONNECTED_REGISTRY_NAME_RE = re.compile(r"^[a-z][a-z0-9]{4,49}$")
# A host made only of digits and dots is meant as an IPv4 address (no top-level domain is numeric).
IPV4_LIKE_RE = re.compile(r"^[0-9.]+$")
#: An endpoint URL: scheme, host, optional port, nothing after the host but an optional "/".
ARM_ENDPOINT_RE = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<host>[^/:?#@]+)(?::(?P<port>[0-9]+))?/?$")
CRON_FIELDS = (("minute", "0-59"), ("hour", "0-23"), ("day-of-month", "1-31"), ("month", "1-12"),
               ("day-of-week", "0-7"))
REGISTRY_NAME_RE = re.compile(r"^[a-zA-Z0-9]{5,50}$")
RESOURCE_GROUP_RE = re.compile(r"^[-\w._()]{0,89}[-\w_()]$")
DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DNS_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
HELM_RELEASE_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,51}[a-z0-9])?$")
SEMVER_RE = re.compile(r"^v?\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")
QUANTITY_RE = re.compile(r"^[0-9]+(?:\.[0-9]+)?(?:Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")
HOSTNAME_RE = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
UNIT_RE = re.compile(r"^(k3s|k3s-agent|k3s-[A-Za-z0-9_.-]+|rke2-server|rke2-agent)$")
ABS_PATH_RE = re.compile(r"^/[A-Za-z0-9._/-]+$")
HOST_KEY_RE = re.compile(
    r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp256|ecdsa-sha2-nistp384|ecdsa-sha2-nistp521) [A-Za-z0-9+/=]+( .*)?$"
)


def host_problem(host: str) -> str | None:
    """What is wrong with a host (an IP address or a DNS name), or None."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if IPV4_LIKE_RE.match(host):
            return "looks like an IPv4 address but is not one (four numbers 0-255)"
        if not HOSTNAME_RE.match(host):
            return "expected an IP address or a DNS host name"
    return None


class ConfigError(Exception):
    """Raised with every config problem at once; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def _key(name: str) -> str:
    return f"{PROJECT}:{name}"


# --- strict scalar types ------------------------------------------------------------------
# Pulumi hands every value to the program as a string. pydantic's lax mode would read "yes",
# "on" or "1" as true and true as 1; these accept exactly what pulumi.Config's getters accept.

def _strict_bool(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value in ("true", "True", "false", "False"):
        return value.lower() == "true"
    raise ValueError("expected true or false")


def _strict_int(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*-?[0-9]+\s*", value):
        return int(value)
    raise ValueError("expected a whole number")


def _set_or_absent(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        raise ValueError("is empty: remove the key to leave it unset")
    return value


ConfigBool = Annotated[bool, BeforeValidator(_strict_bool)]
ConfigInt = Annotated[int, BeforeValidator(_strict_int)]
#: An optional name or path: set to something, or not set at all.
OptionalName = Annotated[str | None, BeforeValidator(_set_or_absent)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class NodeConfig(_Model):
    """One k3s node whose containerd must pull through the connected registry."""

    host: str = Field(description="Address or DNS name that SSH reaches the node on.")
    port: ConfigInt = Field(22, ge=1, le=65535, description="SSH port.")
    user: str = Field("root", description="SSH user; non-root users need passwordless `sudo -n`.")
    role: Literal["server", "agent"] = Field(description="k3s role: server or agent.")
    unit: OptionalName = Field(None, description="Service unit override (k3s, k3s-agent, k3s-<name>, rke2-*).")
    path: str = Field(
        "/etc/rancher/k3s/registries.yaml",
        description="registries.yaml path (RKE2: /etc/rancher/rke2/registries.yaml).",
    )
    host_key: OptionalName = Field(None, alias="hostKey", description="Pinned SSH host public key.")
    gone: ConfigBool = Field(False, description="The node no longer exists: never contact it again.")

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        problem = host_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("user")
    @classmethod
    def _user(cls, value: str) -> str:
        if not re.match(r"^[a-z_][a-z0-9_.-]{0,31}$", value):
            raise ValueError("expected a POSIX user name")
        return value

    @field_validator("unit")
    @classmethod
    def _unit(cls, value: str | None) -> str | None:
        if value is not None and not UNIT_RE.match(value):
            raise ValueError("expected k3s, k3s-agent, k3s-<name>, rke2-server or rke2-agent")
        return value

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not ABS_PATH_RE.match(value) or "/../" in value or not value.endswith((".yaml", ".yml")):
            raise ValueError("expected an absolute path to a .yaml file")
        return value

    @field_validator("host_key")
    @classmethod
    def _host_key(cls, value: str | None) -> str | None:
        if value is not None and not HOST_KEY_RE.match(value.strip()):
            raise ValueError("expected an OpenSSH public key line such as 'ssh-ed25519 AAAA…'")
        return value.strip() if value else value

    @property
    def service_unit(self) -> str:
        """The unit to restart: the override, else the k3s default for the role."""
        return self.unit or ("k3s" if self.role == "server" else "k3s-agent")


def _duration(value: str, key_hint: str) -> timedelta:
    try:
        parsed = isodate.parse_duration(value)
    except (isodate.ISO8601Error, ValueError, TypeError):
        raise ValueError(f"expected an ISO 8601 duration such as {key_hint}") from None
    if not isinstance(parsed, timedelta):
        # Years and months have no fixed length; ARM wants days or hours.
        raise ValueError(f"expected an ISO 8601 duration in days/hours such as {key_hint}")
    return parsed


class SiteConfig(_Model):
    """All settings of one site (one stack)."""

    # --- Azure ---
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

    # --- operations ---
    cloud_only: ConfigBool = Field(
        False, alias="cloudOnly",
        description="Azure-side changes only, for a site whose cluster and nodes cannot be reached: edge resources "
        "are kept as they are (needs `serviceClusterIP`; [runbook](docs/runbooks.md#sites-that-cannot-be-reached)).",
    )

    # --- cluster and Helm chart ---
    kubeconfig: SecretStr | None = Field(None, description="Kubeconfig content (set it with --secret), or use kubeconfigPath.")
    kubeconfig_path: OptionalName = Field(None, alias="kubeconfigPath", description="Path of a kubeconfig file on the machine running pulumi.")
    kube_context: OptionalName = Field(None, alias="kubeContext", description="Kubeconfig context (unset: the current context).")
    namespace: str = Field("connected-registry", description="Namespace of the on-prem install (adopted if it exists).")
    release_name: str = Field("connected-registry", alias="releaseName", description="Helm release name.")
    chart_version: str = Field(
        "0.3.0", alias="chartVersion",
        description="Version of oci://mcr.microsoft.com/acr/connected-registry/chart; serviceClusterIP needs 0.3.0 or later.",
    )
    helm_timeout_seconds: ConfigInt = Field(
        600, alias="helmTimeoutSeconds", ge=30, le=7200, description="Helm wait timeout."
    )
    # The default of httpEnabled is this one value; the opt-in rule (docs/config-rules.md,
    # "Opt-ins") holds whatever it is: https is the default, http the opt-in.
    http_enabled: ConfigBool = Field(
        False, alias="httpEnabled",
        description="Serve plain http on port 80 instead of https on 443. http is an opt-in: see docs/config-rules.md.",
    )
    chunk_size_in_mb: ConfigInt = Field(
        1, alias="chunkSizeInMb", ge=1, le=1024, description="Sync chunk size; low on slow links."
    )
    storage_class_name: str = Field("local-path", alias="storageClassName", description="StorageClass of the registry's PVC (k3s: local-path).")
    storage_request: str = Field("20Gi", alias="storageRequest", description="Size of the registry's PVC.")
    service_cluster_ip: OptionalName = Field(
        None, alias="serviceClusterIP", description="Pinned ClusterIP of the registry service (keeps the nodes' registries.yaml stable). Required for https: the certificate names it."
    )
    service_name: OptionalName = Field(
        None, alias="serviceName",
        description="Name of the chart's Service, looked up when serviceClusterIP is not pinned "
        "(default: the connected registry name).",
    )
    chart_values: dict[str, Any] = Field(
        default_factory=dict, alias="chartValues", description="Extra chart values (passthrough)."
    )

    # --- https ---
    certificate_validity_days: int = Field(
        365, alias="certificateValidityDays", ge=1, le=3650,
        description="Lifetime of the registry's issued server certificate.",
    )
    certificate_renew_before_days: int = Field(
        30, alias="certificateRenewBeforeDays", ge=0,
        description="Renew the issued server certificate (and the site CA) this many days before it expires.",
    )
    tls_ca_certificate: SecretStr | None = Field(
        None, alias="tlsCaCertificate", description="Bring your own CA: its certificate, PEM (secret)."
    )
    tls_ca_key: SecretStr | None = Field(
        None, alias="tlsCaKey", description="The brought CA's key, PEM (secret): the program issues with it."
    )
    tls_certificate: SecretStr | None = Field(
        None, alias="tlsCertificate",
        description="Bring your own server certificate, PEM (secret); needs tlsKey and tlsCaCertificate.",
    )
    tls_key: SecretStr | None = Field(None, alias="tlsKey", description="Its key, PEM (secret).")

    # --- pull secrets ---
    pull_secret_name: str = Field(
        "edge-registry-pull", alias="pullSecretName", description="Name of each pull secret."
    )
    pull_secret_namespaces: tuple[str, ...] = Field(
        (), alias="pullSecretNamespaces", description="Application namespaces that get a pull secret."
    )
    create_pull_secret_namespaces: ConfigBool = Field(
        False, alias="createPullSecretNamespaces", description="Create (or adopt) those namespaces."
    )
    patch_default_service_account: ConfigBool = Field(
        False, alias="patchDefaultServiceAccount",
        description="Add the pull secret to each namespace's default ServiceAccount.",
    )

    # --- nodes ---
    nodes: tuple[NodeConfig, ...] = Field((), description="The k3s nodes to point at the mirror.")
    ssh_private_key: SecretStr | None = Field(None, alias="sshPrivateKey", description="SSH private key for the nodes (set it with --secret).")
    ssh_agent: ConfigBool = Field(
        False, alias="sshAgent",
        description="Authenticate to the nodes with the SSH agent of the machine running pulumi (`SSH_AUTH_SOCK`) "
        "instead of `sshPrivateKey`: the key is never in the stack's config or state (what CI uses, see "
        "[preview credentials](docs/runbooks.md#preview-credentials)).",
    )
    preview_node_user: OptionalName = Field(
        None, alias="previewNodeUser",
        description="Node account previews read as, with the installed read script (`edge-registry-read`, see "
        "[preview credentials](docs/runbooks.md#nodes-once-per-node)); unset: the node's `user`, like the write.",
    )
    node_restart_timeout_seconds: ConfigInt = Field(
        120, alias="nodeRestartTimeoutSeconds", ge=10, le=1800,
        description="How long to wait for k3s to be active after a restart.",
    )
    mirror_login_server: ConfigBool = Field(
        True, alias="mirrorLoginServer",
        description="Nodes also mirror the parent's login server (`<registry>.azurecr.io`) to the site registry.",
    )
    mirror_insecure_skip_verify: ConfigBool = Field(
        False, alias="mirrorInsecureSkipVerify", description="Skip TLS verification of the mirror."
    )

    # --- field checks ---
    @field_validator("connected_registry_name")
    @classmethod
    def _cr_name(cls, value: str) -> str:
        if "-" in value:
            raise ValueError("hyphens are not allowed (ARM rejects them): use letters and digits only")
        if not CONNECTED_REGISTRY_NAME_RE.match(value.lower()):
            raise ValueError("expected 5-50 letters and digits, starting with a letter")
        if value != value.lower():
            raise ValueError(
                f"must be lower case ({value.lower()!r}): the az CLI refuses upper case and connected "
                "registry runtimes before 0.7.0 fail to activate with it"
            )
        if len(value) > MAX_CONNECTED_REGISTRY_NAME:
            raise ValueError(
                f"at most {MAX_CONNECTED_REGISTRY_NAME} characters: the derived token and scope map "
                "names (<name>-client-scope-map) must fit ARM's 50-character limit"
            )
        return value

    @field_validator("registry_name")
    @classmethod
    def _registry_name(cls, value: str) -> str:
        if not REGISTRY_NAME_RE.match(value):
            raise ValueError("expected 5-50 letters and digits")
        return value

    @field_validator("registry_resource_group")
    @classmethod
    def _rg(cls, value: str) -> str:
        if not RESOURCE_GROUP_RE.match(value):
            raise ValueError("expected 1-90 letters, digits, '-', '_', '.', '(' or ')', not ending in '.'")
        return value

    @field_validator("repositories", "client_repositories")
    @classmethod
    def _repositories(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [r for r in value if not (REPOSITORY_RE.match(r) or REPOSITORY_PATTERN_RE.match(r))]
        if bad:
            raise ValueError(
                f"not a repository name or `namespace/*` pattern (lower case, OCI grammar): {', '.join(map(repr, bad))}"
            )
        dupes = sorted({r for r in value if value.count(r) > 1})
        if dupes:
            raise ValueError(f"listed more than once: {', '.join(dupes)}")
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

    @field_validator("sync_schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
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
                raise ValueError(f"the {name} field {fields[index]!r} is out of range or malformed: expected {allowed}, "
                                 "'*', a list, a range or a step")
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
            raise ValueError("; ".join(problems))
        dupes = sorted({n for n in value if value.count(n) > 1})
        if dupes:
            raise ValueError(f"listed more than once: {', '.join(dupes)}")
        return value

    @field_validator("arm_endpoint")
    @classmethod
    def _arm(cls, value: str) -> str:
        url = ARM_ENDPOINT_RE.match(value)
        if not url or url["scheme"] != "https":
            raise ValueError("expected an https URL such as https://management.azure.com (scheme and host only)")
        problem = host_problem(url["host"])
        if problem:
            raise ValueError(f"the host {url['host']!r} {problem.replace('expected', 'is not')}")
        if url["port"] is not None and not 1 <= int(url["port"]) <= 65535:
            raise ValueError(f"the port {url['port']} is out of range: expected 1-65535")
        return value.rstrip("/")

    @field_validator("kubeconfig")
    @classmethod
    def _kubeconfig(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or is_placeholder(value.get_secret_value()):
            return value
        try:
            doc = yaml.safe_load(value.get_secret_value())
        except yaml.YAMLError:
            raise ValueError("is not valid YAML (value not shown: it is a secret)") from None
        if not isinstance(doc, dict) or not doc.get("clusters") or not doc.get("contexts"):
            raise ValueError("is not a kubeconfig: expected `clusters` and `contexts` (value not shown)")
        return value

    @field_validator("namespace", "pull_secret_namespaces")
    @classmethod
    def _namespaces(cls, value: Any) -> Any:
        names = value if isinstance(value, tuple) else (value,)
        bad = [n for n in names if not DNS_LABEL_RE.match(n)]
        if bad:
            raise ValueError(f"not a Kubernetes namespace name (DNS label): {', '.join(map(repr, bad))}")
        return value

    @field_validator("release_name")
    @classmethod
    def _release(cls, value: str) -> str:
        if not HELM_RELEASE_RE.match(value):
            raise ValueError("expected a Helm release name: lower-case letters, digits and '-', at most 53")
        return value

    @field_validator("pull_secret_name")
    @classmethod
    def _secret_name(cls, value: str) -> str:
        if not DNS_SUBDOMAIN_RE.match(value):
            raise ValueError("expected a Kubernetes object name (DNS subdomain)")
        return value

    @field_validator("preview_node_user")
    @classmethod
    def _preview_node_user(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^[a-z_][a-z0-9_.-]{0,31}$", value):
            raise ValueError("expected a POSIX user name")
        return value

    @field_validator("service_name")
    @classmethod
    def _service_name(cls, value: str | None) -> str | None:
        if value is not None and not DNS_LABEL_RE.match(value):
            raise ValueError("expected a Kubernetes Service name (DNS label)")
        return value

    @field_validator("chart_version")
    @classmethod
    def _chart_version(cls, value: str) -> str:
        if not SEMVER_RE.match(value):
            raise ValueError("expected a semantic version such as 0.3.0")
        return value

    @field_validator("storage_request")
    @classmethod
    def _quantity(cls, value: str) -> str:
        if not QUANTITY_RE.match(value) or float(re.sub(r"[A-Za-z]+$", "", value)) <= 0:
            raise ValueError("expected a positive Kubernetes quantity such as 20Gi")
        return value

    @field_validator("storage_class_name")
    @classmethod
    def _storage_class(cls, value: str) -> str:
        if not DNS_SUBDOMAIN_RE.match(value):
            raise ValueError("expected a StorageClass name (DNS subdomain)")
        return value

    @field_validator("service_cluster_ip")
    @classmethod
    def _cluster_ip(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise ValueError("expected an IPv4 or IPv6 address from the cluster's service CIDR") from None

    @field_validator("chart_values")
    @classmethod
    def _chart_values(cls, value: dict[str, Any]) -> dict[str, Any]:
        managed = sorted(p for p in _dotted_paths(value) if p in MANAGED_CHART_VALUES)
        if managed:
            raise ValueError(
                f"sets values the program manages ({', '.join(managed)}): use the dedicated config keys"
            )
        bad = sorted(k for k in _dotted_paths(value, leaves_only=False) if not re.match(r"^[A-Za-z0-9_.-]+$", k))
        if bad:
            raise ValueError(f"keys must be letters, digits, '_' or '-': {', '.join(bad)}")
        return value

    @field_validator("ssh_private_key")
    @classmethod
    def _ssh_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or is_placeholder(value.get_secret_value()):
            return value
        text = value.get_secret_value().strip()
        if not re.match(r"^-----BEGIN ([A-Z]+ )?PRIVATE KEY-----", text) or "-----END" not in text:
            raise ValueError("is not a PEM/OpenSSH private key (value not shown: it is a secret)")
        if "ENCRYPTED" in text or "Proc-Type: 4,ENCRYPTED" in text:
            raise ValueError("is passphrase-protected; pulumi-command needs an unencrypted key (value not shown)")
        return value

    @field_validator("tls_ca_certificate", "tls_certificate")
    @classmethod
    def _pem_certificate(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or is_placeholder(value.get_secret_value()):
            return value
        try:
            tls.load_certificate(value.get_secret_value())
        except tls.TlsMaterialError as error:
            raise ValueError(str(error)) from None
        return value

    @field_validator("tls_ca_key", "tls_key")
    @classmethod
    def _pem_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or is_placeholder(value.get_secret_value()):
            return value
        try:
            tls.load_private_key(value.get_secret_value())
        except tls.TlsMaterialError as error:
            raise ValueError(str(error)) from None
        return value

    # --- cross-field checks ---
    @model_validator(mode="after")
    def _cross(self) -> SiteConfig:
        problems = cross_field_problems({name: getattr(self, name) for name in type(self).model_fields})
        if problems:
            raise ValueError(_CROSS_MARKER + "\n".join(f"{k}\t{m}" for k, m, _ in problems))
        return self

    # --- derived values ---
    @property
    def scheme(self) -> Literal["http", "https"]:
        """The endpoint's scheme: http when the chart serves plain http."""
        return "http" if self.http_enabled else "https"

    @property
    def port(self) -> int:
        """The registry service port: 80 for http, 443 for https."""
        return 80 if self.http_enabled else 443

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
    def effective_service_name(self) -> str:
        """The chart's Service: ``serviceName``, else the connected registry's name (the chart's
        docs and the manual procedure look it up by that name, docs/runbooks.md)."""
        return self.service_name or self.connected_registry_name

    @property
    def client_token_name(self) -> str:
        return f"{self.connected_registry_name}-client-token"

    @property
    def client_scope_map_name(self) -> str:
        return f"{self.connected_registry_name}-client-scope-map"


_CROSS_MARKER = "\x00cross\x00"


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def notification_problem(pattern: str) -> str | None:
    """What is wrong with one notification pattern (docs/config-rules.md, "Notifications"), or None."""
    artifact, sep, action = pattern.rpartition(":")
    if not sep or not artifact:
        return f"{pattern!r}: expected `artifact:action`, e.g. 'hello-world:1.0:push' or '*:*'"
    if action not in NOTIFICATION_ACTIONS:
        return f"{pattern!r}: the action {action!r} is not push, delete or *"
    if not NOTIFICATION_ARTIFACT_RE.match(artifact):
        return (f"{pattern!r}: the artifact {artifact!r} is not name[:tag][@digest] (name a lower-case repository, "
                "`path/*` or `*`; tag or digest may be `*`)")
    return None


def cross_field_problems(values: Mapping[str, Any]) -> list[tuple[str, str, tuple[str, ...]]]:
    """Rules that span several keys, as (key, message, keys involved). Works on validated values
    and, when other keys are invalid, on the raw ones too, so every problem is reported in one
    run; a rule involving a key that already has its own problem is left out (no knock-on)."""
    problems: list[tuple[str, str, tuple[str, ...]]] = []
    if values.get("mode") == "ReadWrite" and not _truthy(values.get("allow_read_write")):
        problems.append(("mode", "'ReadWrite' needs allowReadWrite: true for this site (explicit opt-in)",
                         ("mode", "allowReadWrite")))
    rotate, expiry = _int_or_none(values.get("password_rotate_before_days")), _int_or_none(values.get("password_expiry_days"))
    if rotate is not None and expiry is not None and rotate >= expiry:
        problems.append(("passwordRotateBeforeDays", f"{rotate} must be less than passwordExpiryDays ({expiry})",
                         ("passwordRotateBeforeDays", "passwordExpiryDays")))
    if _truthy(values.get("cloud_only")) and values.get("service_cluster_ip") is None:
        problems.append((
            "cloudOnly",
            "needs serviceClusterIP: the registry endpoint cannot be read from an unreachable cluster; "
            "set serviceClusterIP to the Service's current ClusterIP (the host of "
            "`pulumi stack output registryEndpoint`)",
            ("cloudOnly", "serviceClusterIP"),
        ))
    has_content, has_path = values.get("kubeconfig") is not None, values.get("kubeconfig_path") is not None
    kube_keys = ("kubeconfig", "kubeconfigPath")
    if has_content and has_path:
        problems.append(("kubeconfig", "set either kubeconfig (secret) or kubeconfigPath, not both", kube_keys))
    if not has_content and not has_path:
        problems.append(("kubeconfig", "required: set kubeconfig (secret) or kubeconfigPath", kube_keys))
    nodes = [n for n in values.get("nodes") or () if isinstance(n, (dict, NodeConfig))]

    def field(node: Any, name: str) -> Any:
        return getattr(node, name, None) if isinstance(node, NodeConfig) else node.get(name)

    hosts = [field(n, "host") for n in nodes]
    dupes = sorted({str(h) for h in hosts if h is not None and hosts.count(h) > 1})
    if dupes:
        problems.append(("nodes", f"duplicate host(s): {', '.join(dupes)}", ("nodes",)))
    agent = _truthy(values.get("ssh_agent"))
    if any(not _truthy(field(n, "gone")) for n in nodes) and values.get("ssh_private_key") is None and not agent:
        problems.append(
            ("sshPrivateKey", "required when nodes are configured: pulumi config set --secret sshPrivateKey < key"
             " (or sshAgent: true)", ("sshPrivateKey", "sshAgent"))
        )
    if agent and values.get("ssh_private_key") is not None:
        problems.append(("sshAgent", "set either sshAgent or sshPrivateKey, not both", ("sshAgent", "sshPrivateKey")))
    renew = _int_or_none(values.get("certificate_renew_before_days"))
    validity = _int_or_none(values.get("certificate_validity_days"))
    if renew is not None and validity is not None and renew >= validity:
        problems.append((
            "certificateRenewBeforeDays", f"{renew} must be less than certificateValidityDays ({validity})",
            ("certificateRenewBeforeDays", "certificateValidityDays"),
        ))
    chart = chart_release(values.get("chart_version"))
    if values.get("service_cluster_ip") is not None and chart is not None and chart < _CLUSTER_IP_RELEASE:
        problems.append((
            "chartVersion",
            f"{values.get('chart_version')} ignores service.clusterIP (the chart takes it from "
            f"{FIRST_CHART_WITH_CLUSTER_IP} on): the Service would get another ClusterIP than serviceClusterIP "
            f"and the nodes would point at the wrong address; set edge-registry:chartVersion to "
            f"{FIRST_CHART_WITH_CLUSTER_IP} or later",
            ("chartVersion", "serviceClusterIP"),
        ))
    problems += _https_problems(values)
    return problems


#: The first connected-registry chart that takes ``service.clusterIP`` (docs/config-rules.md, "Values").
FIRST_CHART_WITH_CLUSTER_IP = "0.3.0"


def chart_release(version: Any) -> tuple[int, int, int, int] | None:
    """A chart version's place in semver order (:func:`_semver_order`); None when it is not a
    semantic version (that is its own problem)."""
    if not isinstance(version, str) or not SEMVER_RE.match(version):
        return None
    return _semver_order(version)


def _semver_order(version: str) -> tuple[int, int, int, int]:
    """(major, minor, patch, 1 for a release or 0 for a pre-release such as 0.3.0-rc.1): a release
    sorts after its pre-releases; build metadata (``+…``) does not count."""
    core, _, pre_release = version.removeprefix("v").partition("+")[0].partition("-")
    major, minor, patch = (int(part) for part in core.split("."))
    return (major, minor, patch, 0 if pre_release else 1)


_CLUSTER_IP_RELEASE = _semver_order(FIRST_CHART_WITH_CLUSTER_IP)


def _secret_text(value: Any) -> str | None:
    """The text of a secret config value (raw or validated); None when unset or a render placeholder."""
    text = value.get_secret_value() if isinstance(value, SecretStr) else value
    return text if isinstance(text, str) and text and not is_placeholder(text) else None


#: The keys of brought TLS material: field name -> config key.
TLS_MATERIAL_KEYS = {"tls_ca_certificate": "tlsCaCertificate", "tls_ca_key": "tlsCaKey",
                     "tls_certificate": "tlsCertificate", "tls_key": "tlsKey"}


def _https_problems(values: Mapping[str, Any]) -> list[tuple[str, str, tuple[str, ...]]]:
    """https is the default: it needs the pinned ClusterIP; brought TLS material must fit together."""
    given = {alias for name, alias in TLS_MATERIAL_KEYS.items() if values.get(name) not in (None, "")}
    material = tuple(TLS_MATERIAL_KEYS.values())
    problems: list[tuple[str, str, tuple[str, ...]]] = []
    if _truthy(values.get("http_enabled")):
        for key in sorted(given):
            problems.append((key, "only applies to https (httpEnabled: false)", (key, "httpEnabled")))
        if _truthy(values.get("mirror_insecure_skip_verify")):
            problems.append(("mirrorInsecureSkipVerify", "only applies to an https endpoint (httpEnabled: false)",
                             ("mirrorInsecureSkipVerify", "httpEnabled")))
        return problems
    if values.get("service_cluster_ip") is None:
        problems.append((
            "serviceClusterIP",
            "required for https (the default): the registry's certificate names its ClusterIP. Pick a free "
            "IP in the cluster's service CIDR (e.g. 10.43.200.200), or opt in to plain http with "
            "httpEnabled: true in Pulumi.<site>.yaml",
            ("serviceClusterIP", "httpEnabled"),
        ))
    if ("tlsCertificate" in given) != ("tlsKey" in given):
        missing = "tlsKey" if "tlsCertificate" in given else "tlsCertificate"
        problems.append((missing, "required with " + ({"tlsCertificate", "tlsKey"} - {missing}).pop(), material))
    if given & {"tlsCertificate", "tlsKey"} and "tlsCaCertificate" not in given:
        problems.append(
            ("tlsCaCertificate", "required with tlsCertificate: the nodes trust the CA that issued it", material)
        )
    if "tlsCaKey" in given and "tlsCaCertificate" not in given:
        problems.append(("tlsCaCertificate", "required with tlsCaKey", material))
    if "tlsCaKey" in given and "tlsCertificate" in given:
        problems.append(
            ("tlsCaKey", "set either tlsCaKey (the program issues) or tlsCertificate and tlsKey, not both", material)
        )
    if problems:
        return problems
    # The material itself: checked only when every piece is real (the render has placeholders).
    at = datetime.now(UTC)
    ca, ca_key = _secret_text(values.get("tls_ca_certificate")), _secret_text(values.get("tls_ca_key"))
    certificate, server_key = _secret_text(values.get("tls_certificate")), _secret_text(values.get("tls_key"))
    names = {"ca": "tlsCaCertificate", "ca_key": "tlsCaKey", "certificate": "tlsCertificate", "key": "tlsKey"}
    found: list[tuple[str, str]] = []
    if ca is not None and ("tlsCaKey" not in given or ca_key is not None):
        renew = _int_or_none(values.get("certificate_renew_before_days")) if ca_key is not None else None
        found += tls.ca_problems(ca, ca_key, at, renew)
    if ca is not None and certificate is not None and server_key is not None:
        ip = values.get("service_cluster_ip")
        found += tls.server_certificate_problems(certificate, server_key, ca, str(ip) if ip else None, at)
    return [(names[which], message, (names[which], "serviceClusterIP")) for which, message in found]


_PLACEHOLDER_PREFIX = "[secure:"


def placeholder(key: str) -> str:
    """The stand-in the offline renderer uses for a secret it cannot decrypt."""
    return f"{_PLACEHOLDER_PREFIX}{key}]"


def is_placeholder(value: str) -> bool:
    return value.startswith(_PLACEHOLDER_PREFIX) and value.endswith("]")


def _dotted_paths(value: Mapping[str, Any], prefix: str = "", leaves_only: bool = True) -> list[str]:
    paths: list[str] = []
    for key, item in value.items():
        path = f"{prefix}{key}"
        if isinstance(item, Mapping):
            if not leaves_only:
                paths.append(str(key))
            paths.extend(_dotted_paths(item, f"{path}.", leaves_only))
        else:
            paths.append(path if leaves_only else str(key))
    return paths


_ALIASES = {name: (field.alias or name) for name, field in SiteConfig.model_fields.items()}
_NODE_ALIASES = {name: (field.alias or name) for name, field in NodeConfig.model_fields.items()}


def _describe(value: Any, key: str, secret_keys: frozenset[str] = frozenset()) -> str:
    if key in SECRET_KEYS or key in secret_keys:
        return "[secret]"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _format_errors(
    error: ValidationError, raw: Mapping[str, Any], secret_keys: frozenset[str] = frozenset()
) -> list[str]:
    problems: list[str] = []
    for item in error.errors():
        loc = list(item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        if message.startswith(_CROSS_MARKER):
            for line in message.removeprefix(_CROSS_MARKER).splitlines():
                key, text = line.split("\t", 1)
                problems.append(f"{_key(key)}: {text}")
            continue
        if not loc:
            problems.append(f"{PROJECT}: {message}")
            continue
        top = _ALIASES.get(str(loc[0]), str(loc[0]))
        path = top
        for part in loc[1:]:
            if isinstance(part, int):
                path += f"[{part}]"
            else:
                path += "." + _NODE_ALIASES.get(part, part)
        if item["type"] == "missing":
            problems.append(f"{_key(path)}: required but not set")
            continue
        if item["type"] == "extra_forbidden":
            known = _NODE_ALIASES.values() if len(loc) > 1 else _ALIASES.values()
            problems.append(f"{_key(path)}: unknown setting{did_you_mean(str(loc[-1]), known, '')}")
            continue
        value = item.get("input")
        expected = message
        if item["type"] == "literal_error":
            expected = message.replace("Input should be", "expected")
        problems.append(f"{_key(path)}: {_describe(value, top, secret_keys)} is invalid: {expected}")
    return problems


def parse_site_config(raw: Mapping[str, Any], secret_keys: frozenset[str] = frozenset()) -> SiteConfig:
    """Validate a stack's config (keys without the project prefix) or raise :class:`ConfigError`.

    Values of ``secret_keys`` (and :data:`SECRET_KEYS`) are never echoed in a message.
    """
    retired = [f"{_key(key)}: {message}" for key, message in RETIRED_KEYS.items() if raw.get(key) not in (None, "")]
    if retired:
        raise ConfigError(retired)
    try:
        return SiteConfig.model_validate(dict(raw))
    except ValidationError as error:
        problems = _format_errors(error, raw, secret_keys)
    # Field errors stop pydantic before the cross-field rules: run them on the raw values.
    by_name = {name: raw.get(alias, SiteConfig.model_fields[name].get_default(call_default_factory=True))
               for name, alias in _ALIASES.items()}
    reported = {p.split(":", 2)[1].split("[")[0].split(".")[0] for p in problems}
    for key, message, involved in cross_field_problems(by_name):
        if not reported.intersection(involved):
            problems.append(f"{_key(key)}: {message}")
    raise ConfigError(problems)


#: Keys whose values Pulumi hands over as JSON text (arrays and objects).
_JSON_FIELDS = frozenset(
    _ALIASES[name]
    for name, field in SiteConfig.model_fields.items()
    if str(field.annotation).startswith(("tuple", "dict"))
)


#: Secret keys are declared in Pulumi.yaml with the default "" (so `secret: true` is enforced):
#: for them, and only them, "" means unset. Other optional keys are not declared there, so an
#: empty value was written by someone and is refused.
_EMPTY_MEANS_UNSET = SECRET_KEYS

#: Every key of this project's namespace.
PROJECT_KEYS = frozenset(_ALIASES.values())


@lru_cache(maxsize=1)
def azure_native_keys() -> frozenset[str]:
    """The azure-native provider's config keys, read from the installed SDK (its config module
    lists exactly what the provider reads), so a new provider version needs no list kept by hand."""
    import inspect

    from pulumi_azure_native.config import vars as provider_vars

    return frozenset(re.findall(r"__config__\.get\w*\('(\w+)'", inspect.getsource(provider_vars)))


def did_you_mean(name: str, candidates: Iterable[str], namespace: str = PROJECT) -> str:
    """'; did you mean `ns:key`?' for the closest known key, or a pointer to the reference."""
    choices = sorted(set(candidates))
    prefix = f"{namespace}:" if namespace else ""
    same_but_case = [c for c in choices if c.lower() == name.lower()]
    close = same_but_case or difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    if close:
        return f"; did you mean `{prefix}{close[0]}`?"
    return "; see the configuration reference in README.md"


#: The namespaces whose keys are checked by name: this project's and the provider it configures.
CHECKED_NAMESPACES = (PROJECT, "azure-native")
#: How close (difflib ratio) another namespace must be to one of those to be read as its typo:
#: one letter missing, extra, wrong or swapped (``edge-registy``, ``azure-natvie``) is above 0.9;
#: real providers' namespaces (``azure``, ``azuread``, ``kubernetes``, ``command``, ``pulumi``) are
#: below 0.65.
NAMESPACE_TYPO_CUTOFF = 0.9


def namespace_typo(namespace: str) -> str | None:
    """The checked namespace that ``namespace`` is a misspelling of, or None (it is one of them, or
    another provider's: Pulumi passes those to their providers, which the program does not read)."""
    if namespace in CHECKED_NAMESPACES:
        return None
    same_but_case = [n for n in CHECKED_NAMESPACES if n.lower() == namespace.lower()]
    close = same_but_case or difflib.get_close_matches(namespace, CHECKED_NAMESPACES, n=1, cutoff=NAMESPACE_TYPO_CUTOFF)
    return close[0] if close else None


def key_problems(keys: Iterable[str]) -> list[str]:
    """Problems with config key *names* (values are not read, so secrets stay unread): unprefixed
    keys, misspelt namespaces of this project or azure-native, and unknown keys of those two
    namespaces, each with a "did you mean". ``keys`` are full keys as in a stack file
    (``namespace:name``)."""
    problems: list[str] = []
    for key in keys:
        namespace, sep, name = key.partition(":")
        if sep and (meant := namespace_typo(namespace)) is not None:
            # Nothing reads a misspelt namespace: the value would be dropped without a word.
            known = PROJECT_KEYS if meant == PROJECT else azure_native_keys()
            hint = f"; did you mean `{meant}:{name}`?" if name in known else did_you_mean(name, known, meant)
            if hint.startswith("; see"):
                hint = f"; did you mean the namespace `{meant}`?"
            problems.append(f"{key}: unknown namespace `{namespace}`, so no one reads this key{hint}")
        elif not sep:
            hint = (f"write `{PROJECT}:{key}`" if key in PROJECT_KEYS
                    else f"write it with its namespace{did_you_mean(key, PROJECT_KEYS)}")
            problems.append(f"{key}: a stack config key needs its namespace (Pulumi refuses `{key}`): {hint}")
        elif namespace == PROJECT and name in RETIRED_KEYS:
            problems.append(f"{key}: {RETIRED_KEYS[name]}")
        elif namespace == PROJECT and name not in PROJECT_KEYS:
            problems.append(f"{key}: unknown setting{did_you_mean(name, PROJECT_KEYS)}")
        elif namespace == "azure-native" and name not in azure_native_keys():
            problems.append(
                f"{key}: not a setting of the azure-native provider{did_you_mean(name, azure_native_keys(), namespace)}"
            )
    return problems


def decode_raw_config(
    values: Mapping[str, Any], secret_keys: frozenset[str] = frozenset()
) -> tuple[dict[str, Any], list[str]]:
    """Turn Pulumi's config strings (arrays and objects arrive as JSON) into Python values."""
    import json

    decoded: dict[str, Any] = {}
    problems: list[str] = []
    for key, value in values.items():
        if value == "" and key in _EMPTY_MEANS_UNSET:
            continue
        if key in _JSON_FIELDS and isinstance(value, str):
            try:
                decoded[key] = json.loads(value)
            except json.JSONDecodeError:
                kind = "an object" if key == "chartValues" else "a list"
                problems.append(f"{_key(key)}: {_describe(value, key, secret_keys)} is invalid: expected {kind}")
                continue
        else:
            decoded[key] = value
    return decoded, problems


def secret_key_problems(secret_keys: frozenset[str]) -> list[str]:
    """Keys set with ``--secret`` whose values the program cannot keep secret."""
    return [
        f"{_key(key)}: is set as a secret, but only {', '.join(sorted(SECRET_CAPABLE_KEYS))} stay secret "
        "(this value goes into resource names, commands or plain outputs): set it without --secret"
        for key in sorted(secret_keys - SECRET_CAPABLE_KEYS)
    ]


def load_site_config(
    values: Mapping[str, Any], secret_keys: frozenset[str] = frozenset(), other_keys: Iterable[str] = ()
) -> SiteConfig:
    """Validate config as Pulumi supplies it (strings, JSON for arrays/objects); all problems at once.

    ``values`` are this project's keys without the prefix. ``secret_keys``: the keys Pulumi marked
    secret; their values are never echoed, and a secret the program could not keep secret is a
    problem. ``other_keys``: the full keys of other namespaces (``azure-native:location``),
    checked by name only.
    """
    unknown = [key for key in values if key not in PROJECT_KEYS]
    problems = key_problems([f"{PROJECT}:{key}" for key in unknown] + list(other_keys))
    values = {key: value for key, value in values.items() if key not in unknown}
    decoded, decode_problems = decode_raw_config(values, secret_keys)
    problems += secret_key_problems(frozenset(secret_keys) - set(unknown)) + decode_problems
    try:
        site = parse_site_config(decoded, secret_keys)
    except ConfigError as error:
        raise ConfigError(problems + error.problems) from None
    if problems:
        raise ConfigError(problems)
    return site
