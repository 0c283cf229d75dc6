"""The site configuration model: every stack setting, validated before any resource exists.

A stack's config (Pulumi.yaml defaults merged with ``Pulumi.<site>.yaml``) is read into
:class:`SiteConfig`. All problems are collected and reported at once, one line each, naming
the config key, the bad value and what is expected (:class:`ConfigError`). Values of secret
keys are never echoed in a message.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import timedelta
from typing import Any, Literal, Mapping

import croniter
import isodate
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

PROJECT = "edge-registry"

#: Config keys whose values are secrets: never printed, always wrapped in ``Output.secret``.
SECRET_KEYS = frozenset({"kubeconfig", "sshPrivateKey"})
#: Keys that may be set with ``--secret``: the secret ones and ``chartValues``, whose secret
#: leaves (``--secret --path chartValues.x``) stay secrets in the Helm values. Every other key
#: ends up in resource names, ids, commands or plain outputs, so a secret there is refused.
SECRET_CAPABLE_KEYS = SECRET_KEYS | {"chartValues"}

#: The values the program sets on the Helm chart itself; ``chartValues`` may not override them.
MANAGED_CHART_VALUES = frozenset(
    {"connectionString", "httpEnabled", "sync.chunkSizeInMb", "pvc.storageClassName",
     "pvc.storageRequest", "service.clusterIP"}
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
_TAG_OR_WILDCARD = r"(?:\*|[A-Za-z0-9_][A-Za-z0-9._-]{0,127})"
_DIGEST_OR_WILDCARD = r"(?:\*|[a-z0-9]+:[a-f0-9]{32,})"
NOTIFICATION_RE = re.compile(
    rf"^{_REPO_COMPONENT}(?:/{_REPO_COMPONENT})*(?:/\*)?:{_TAG_OR_WILDCARD}:{_DIGEST_OR_WILDCARD}$"
)
CONNECTED_REGISTRY_NAME_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9]{4,49}$")
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


class ConfigError(Exception):
    """Raised with every config problem at once; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def _key(name: str) -> str:
    return f"{PROJECT}:{name}"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class NodeConfig(_Model):
    """One k3s node whose containerd must pull through the connected registry."""

    host: str = Field(description="Address or DNS name that SSH reaches the node on.")
    port: int = Field(22, ge=1, le=65535, description="SSH port.")
    user: str = Field("root", description="SSH user; non-root users need passwordless `sudo -n`.")
    role: Literal["server", "agent"] = Field(description="k3s role: server or agent.")
    unit: str | None = Field(None, description="Service unit override (k3s, k3s-agent, k3s-<name>, rke2-*).")
    path: str = Field(
        "/etc/rancher/k3s/registries.yaml",
        description="registries.yaml path (RKE2: /etc/rancher/rke2/registries.yaml).",
    )
    host_key: str | None = Field(None, alias="hostKey", description="Pinned SSH host public key.")
    gone: bool = Field(False, description="The node no longer exists: never contact it again.")

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            if not HOSTNAME_RE.match(value):
                raise ValueError("expected an IP address or a DNS host name") from None
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
    registry_name: str = Field(alias="registryName", description="The parent (cloud) registry, Premium.")
    registry_resource_group: str = Field(alias="registryResourceGroup", description="Its resource group.")
    connected_registry_name: str = Field(
        alias="connectedRegistryName", description="Connected registry name: letters and digits, 5-33, starting with a letter."
    )
    mode: Literal["ReadOnly", "ReadWrite"] = Field("ReadOnly", description="Connected registry mode.")
    allow_read_write: bool = Field(
        False, alias="allowReadWrite", description="Explicit opt-in needed for mode ReadWrite."
    )
    repositories: tuple[str, ...] = Field(
        alias="repositories", description="Repositories to sync: names or `namespace/*` patterns."
    )
    client_repositories: tuple[str, ...] = Field(
        (), alias="clientRepositories",
        description="Repositories the client token may pull (default: the synced ones).",
    )
    sync_schedule: str = Field("30 * * * *", alias="syncSchedule", description="Sync cron schedule.")
    sync_window: str = Field("PT1H", alias="syncWindow", description="Sync window, 1 h to 7 d.")
    message_ttl: str = Field("P2D", alias="messageTtl", description="Message TTL, P1D to P90D.")
    log_level: Literal["Debug", "Information", "Warning", "Error", "None"] = Field(
        "Information", alias="logLevel", description="Connected registry log level."
    )
    audit_log: bool = Field(False, alias="auditLog", description="Enable audit logs.")
    notifications: tuple[str, ...] = Field(
        (), description="Notifications, `repo:tag:digest` with `*` wildcards."
    )
    password_expiry_days: int = Field(
        90, alias="passwordExpiryDays", ge=1, le=3650, description="Token password lifetime."
    )
    password_rotate_before_days: int = Field(
        30, alias="passwordRotateBeforeDays", ge=0,
        description="Rotate a password this many days before it expires.",
    )
    arm_endpoint: str = Field(
        "https://management.azure.com", alias="armEndpoint",
        description="Azure Resource Manager endpoint (sovereign clouds differ).",
    )

    # --- operations ---
    cloud_only: bool = Field(
        False, alias="cloudOnly",
        description="Apply Azure-side changes only: cluster and nodes are unreachable; edge resources are "
        "kept as they are and completed by the next run without it (docs/runbooks.md).",
    )

    # --- cluster and Helm chart ---
    kubeconfig: SecretStr | None = Field(None, description="Kubeconfig content (secret).")
    kubeconfig_path: str | None = Field(None, alias="kubeconfigPath", description="Kubeconfig file path.")
    kube_context: str | None = Field(None, alias="kubeContext", description="Kubeconfig context.")
    namespace: str = Field("connected-registry", description="Namespace of the on-prem install.")
    release_name: str = Field("connected-registry", alias="releaseName", description="Helm release name.")
    chart_version: str = Field("0.2.0", alias="chartVersion", description="Connected-registry chart version.")
    helm_timeout_seconds: int = Field(
        600, alias="helmTimeoutSeconds", ge=30, le=7200, description="Helm wait timeout."
    )
    http_enabled: bool = Field(True, alias="httpEnabled", description="Serve plain http on port 80.")
    chunk_size_in_mb: int = Field(
        1, alias="chunkSizeInMb", ge=1, le=1024, description="Sync chunk size; low on slow links."
    )
    storage_class_name: str = Field("local-path", alias="storageClassName", description="PVC storage class.")
    storage_request: str = Field("20Gi", alias="storageRequest", description="PVC size.")
    service_cluster_ip: str | None = Field(
        None, alias="serviceClusterIP", description="Pinned ClusterIP of the registry service."
    )
    chart_values: dict[str, Any] = Field(
        default_factory=dict, alias="chartValues", description="Extra chart values (passthrough)."
    )

    # --- pull secrets ---
    pull_secret_name: str = Field(
        "edge-registry-pull", alias="pullSecretName", description="Name of each pull secret."
    )
    pull_secret_namespaces: tuple[str, ...] = Field(
        (), alias="pullSecretNamespaces", description="Application namespaces that get a pull secret."
    )
    create_pull_secret_namespaces: bool = Field(
        False, alias="createPullSecretNamespaces", description="Create (or adopt) those namespaces."
    )
    patch_default_service_account: bool = Field(
        False, alias="patchDefaultServiceAccount",
        description="Add the pull secret to each namespace's default ServiceAccount.",
    )

    # --- nodes ---
    nodes: tuple[NodeConfig, ...] = Field((), description="The k3s nodes to point at the mirror.")
    ssh_private_key: SecretStr | None = Field(None, alias="sshPrivateKey", description="SSH key (secret).")
    ssh_agent: bool = Field(
        False, alias="sshAgent",
        description="Use the SSH agent of the machine running pulumi (`SSH_AUTH_SOCK`) instead of "
        "sshPrivateKey: the key stays out of the stack's config and state.",
    )
    node_restart_timeout_seconds: int = Field(
        120, alias="nodeRestartTimeoutSeconds", ge=10, le=1800,
        description="How long to wait for k3s to be active after a restart.",
    )
    mirror_ca_file: str | None = Field(
        None, alias="mirrorCaFile", description="CA file on the nodes for an https endpoint."
    )
    mirror_insecure_skip_verify: bool = Field(
        False, alias="mirrorInsecureSkipVerify", description="Skip TLS verification of the mirror."
    )

    # --- field checks ---
    @field_validator("connected_registry_name")
    @classmethod
    def _cr_name(cls, value: str) -> str:
        if "-" in value:
            raise ValueError("hyphens are not allowed (ARM rejects them): use letters and digits only")
        if not CONNECTED_REGISTRY_NAME_RE.match(value):
            raise ValueError("expected 5-50 letters and digits, starting with a letter")
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
        if len(value.split()) != 5 or not croniter.croniter.is_valid(value):
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
        bad = [n for n in value if not NOTIFICATION_RE.match(n)]
        if bad:
            raise ValueError(
                f"expected `repository:tag:digest` with `*` wildcards (e.g. 'hello-world:*:*'): {', '.join(map(repr, bad))}"
            )
        return value

    @field_validator("arm_endpoint")
    @classmethod
    def _arm(cls, value: str) -> str:
        if not re.match(r"^https://[A-Za-z0-9.-]+(:\d+)?/?$", value):
            raise ValueError("expected an https URL such as https://management.azure.com")
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

    @field_validator("chart_version")
    @classmethod
    def _chart_version(cls, value: str) -> str:
        if not SEMVER_RE.match(value):
            raise ValueError("expected a semantic version such as 0.2.0")
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

    @field_validator("mirror_ca_file")
    @classmethod
    def _ca_file(cls, value: str | None) -> str | None:
        if value is not None and not ABS_PATH_RE.match(value):
            raise ValueError("expected an absolute path on the nodes")
        return value

    # --- cross-field checks ---
    @model_validator(mode="after")
    def _cross(self) -> SiteConfig:
        problems = cross_field_problems({name: getattr(self, name) for name in type(self).model_fields})
        if problems:
            raise ValueError(_CROSS_MARKER + "\n".join(f"{k}\t{m}" for k, m in problems))
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


def cross_field_problems(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Rules that span several keys, as (key, message). Works on validated values and, when
    other keys are invalid, on the raw ones too, so every problem is reported in one run."""
    problems: list[tuple[str, str]] = []
    if values.get("mode") == "ReadWrite" and not _truthy(values.get("allow_read_write")):
        problems.append(("mode", "'ReadWrite' needs allowReadWrite: true for this site (explicit opt-in)"))
    rotate, expiry = _int_or_none(values.get("password_rotate_before_days")), _int_or_none(values.get("password_expiry_days"))
    if rotate is not None and expiry is not None and rotate >= expiry:
        problems.append(("passwordRotateBeforeDays", f"{rotate} must be less than passwordExpiryDays ({expiry})"))
    if _truthy(values.get("cloud_only")) and values.get("service_cluster_ip") is None:
        problems.append((
            "cloudOnly",
            "needs serviceClusterIP: the registry endpoint cannot be read from an unreachable cluster; "
            "set serviceClusterIP to the Service's current ClusterIP (the host of "
            "`pulumi stack output registryEndpoint`)",
        ))
    has_content, has_path = values.get("kubeconfig") is not None, values.get("kubeconfig_path") is not None
    if has_content and has_path:
        problems.append(("kubeconfig", "set either kubeconfig (secret) or kubeconfigPath, not both"))
    if not has_content and not has_path:
        problems.append(("kubeconfig", "required: set kubeconfig (secret) or kubeconfigPath"))
    nodes = [n for n in values.get("nodes") or () if isinstance(n, (dict, NodeConfig))]

    def field(node: Any, name: str) -> Any:
        return getattr(node, name, None) if isinstance(node, NodeConfig) else node.get(name)

    hosts = [field(n, "host") for n in nodes]
    dupes = sorted({str(h) for h in hosts if h is not None and hosts.count(h) > 1})
    if dupes:
        problems.append(("nodes", f"duplicate host(s): {', '.join(dupes)}"))
    agent = _truthy(values.get("ssh_agent"))
    if any(not _truthy(field(n, "gone")) for n in nodes) and values.get("ssh_private_key") is None and not agent:
        problems.append(
            ("sshPrivateKey", "required when nodes are configured: pulumi config set --secret sshPrivateKey < key"
             " (or sshAgent: true)")
        )
    if agent and values.get("ssh_private_key") is not None:
        problems.append(("sshAgent", "set either sshAgent or sshPrivateKey, not both"))
    http = values.get("http_enabled", True)
    if (values.get("mirror_ca_file") or _truthy(values.get("mirror_insecure_skip_verify"))) and (
        http is True or _truthy(http)
    ):
        problems.append((
            "mirrorCaFile" if values.get("mirror_ca_file") else "mirrorInsecureSkipVerify",
            "only applies to an https endpoint (httpEnabled: false)",
        ))
    return problems
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
            problems.append(f"{_key(path)}: unknown setting (check the spelling against the README)")
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
    try:
        return SiteConfig.model_validate(dict(raw))
    except ValidationError as error:
        problems = _format_errors(error, raw, secret_keys)
    # Field errors stop pydantic before the cross-field rules: run them on the raw values.
    by_name = {name: raw.get(alias, SiteConfig.model_fields[name].get_default(call_default_factory=True))
               for name, alias in _ALIASES.items()}
    reported = {p.split(":", 2)[1].split("[")[0].split(".")[0] for p in problems}
    for key, message in cross_field_problems(by_name):
        if key not in reported:
            problems.append(f"{_key(key)}: {message}")
    raise ConfigError(problems)


#: Keys whose values Pulumi hands over as JSON text (arrays and objects).
_JSON_FIELDS = frozenset(
    _ALIASES[name]
    for name, field in SiteConfig.model_fields.items()
    if str(field.annotation).startswith(("tuple", "dict"))
)


_OPTIONAL_FIELDS = frozenset(
    _ALIASES[name] for name, field in SiteConfig.model_fields.items() if field.default is None
)


def decode_raw_config(
    values: Mapping[str, Any], secret_keys: frozenset[str] = frozenset()
) -> tuple[dict[str, Any], list[str]]:
    """Turn Pulumi's config strings (arrays and objects arrive as JSON) into Python values."""
    import json

    decoded: dict[str, Any] = {}
    problems: list[str] = []
    for key, value in values.items():
        if value == "" and key in _OPTIONAL_FIELDS:
            # Pulumi.yaml declares optional strings with "" as the default: "" means unset.
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


def load_site_config(values: Mapping[str, Any], secret_keys: frozenset[str] = frozenset()) -> SiteConfig:
    """Validate config as Pulumi supplies it (strings, JSON for arrays/objects); all problems at once.

    ``secret_keys``: the keys Pulumi marked secret; their values are never echoed, and a secret
    the program could not keep secret is a problem.
    """
    decoded, problems = decode_raw_config(values, secret_keys)
    problems = secret_key_problems(secret_keys) + problems
    try:
        site = parse_site_config(decoded, secret_keys)
    except ConfigError as error:
        raise ConfigError(problems + error.problems) from None
    if problems:
        raise ConfigError(problems)
    return site
