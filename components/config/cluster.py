"""The settings of a site's cluster: how to reach it (kubeconfig), the connected-registry Helm
chart installed on it (release, version, values, storage, Service), and the pull secrets put in its
application namespaces; with the chart's version rule for a pinned ClusterIP.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, SecretStr, field_validator

from components.config.fields import (
    ConfigBool,
    ConfigInt,
    ConfigModel,
    OptionalName,
    PROJECT,
    OptionalTrimmedName,
    ValueEcho,
    is_placeholder,
)

#: The values the program sets on the Helm chart itself; ``chartValues`` may not override them.
MANAGED_CHART_VALUES = frozenset(
    {"connectionString", "httpEnabled", "sync.chunkSizeInMb", "pvc.storageClassName",
     "pvc.storageRequest", "service.clusterIP", "tls.crt", "tls.key"}
)

DNS_LABEL_RE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
DNS_SUBDOMAIN_RE = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
HELM_RELEASE_RE = re.compile(r"[a-z0-9]([-a-z0-9]{0,51}[a-z0-9])?")
SEMVER_RE = re.compile(r"v?\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?")
QUANTITY_RE = re.compile(r"[0-9]+(?:\.[0-9]+)?(?:Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?")

#: The first connected-registry chart that takes ``service.clusterIP`` (docs/config-rules.md, "Values").
FIRST_CHART_WITH_CLUSTER_IP = "0.3.0"


def chart_release(version: Any) -> tuple[int, int, int, int] | None:
    """A chart version's place in semver order (:func:`_semver_order`); None when it is not a
    semantic version (that is its own problem)."""
    if not isinstance(version, str) or not SEMVER_RE.fullmatch(version):
        return None
    return _semver_order(version)


def _semver_order(version: str) -> tuple[int, int, int, int]:
    """(major, minor, patch, 1 for a release or 0 for a pre-release such as 0.3.0-rc.1): a release
    sorts after its pre-releases; build metadata (``+…``) does not count."""
    core, _, pre_release = version.removeprefix("v").partition("+")[0].partition("-")
    major, minor, patch = (int(part) for part in core.split("."))
    return (major, minor, patch, 0 if pre_release else 1)


#: :data:`FIRST_CHART_WITH_CLUSTER_IP`'s place in semver order, to compare :func:`chart_release` with.
CLUSTER_IP_RELEASE = _semver_order(FIRST_CHART_WITH_CLUSTER_IP)


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


def _namespace_names(value: Any) -> Any:
    """Check one namespace name or a tuple of them (the install's, the pull secrets')."""
    names = value if isinstance(value, tuple) else (value,)
    bad = [n for n in names if not DNS_LABEL_RE.fullmatch(n)]
    if bad:
        what = "not a Kubernetes namespace name (DNS label)"
        raise ValueEcho(f"{what}: {', '.join(map(repr, bad))}", what)
    return value


class ClusterSettings(ConfigModel):
    """The cluster and the Helm chart (a part of :class:`~components.config.site.SiteConfig`)."""

    kubeconfig: SecretStr | None = Field(None, description="Kubeconfig content (set it with --secret), or use kubeconfigPath.")
    kubeconfig_path: OptionalTrimmedName = Field(None, alias="kubeconfigPath", description="Path of a kubeconfig file on the machine running pulumi.")
    kube_context: OptionalTrimmedName = Field(None, alias="kubeContext", description="Kubeconfig context (unset: the current context).")
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

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: Any) -> Any:
        return _namespace_names(value)

    @field_validator("release_name")
    @classmethod
    def _release(cls, value: str) -> str:
        if not HELM_RELEASE_RE.fullmatch(value):
            raise ValueError("expected a Helm release name: lower-case letters, digits and '-', at most 53")
        return value

    @field_validator("service_name")
    @classmethod
    def _service_name(cls, value: str | None) -> str | None:
        if value is not None and not DNS_LABEL_RE.fullmatch(value):
            raise ValueError("expected a Kubernetes Service name (DNS label)")
        return value

    @field_validator("chart_version")
    @classmethod
    def _chart_version(cls, value: str) -> str:
        if not SEMVER_RE.fullmatch(value):
            raise ValueError("expected a semantic version such as 0.3.0")
        return value

    @field_validator("storage_request")
    @classmethod
    def _quantity(cls, value: str) -> str:
        if not QUANTITY_RE.fullmatch(value) or float(re.sub(r"[A-Za-z]+$", "", value)) <= 0:
            raise ValueError("expected a positive Kubernetes quantity such as 20Gi")
        return value

    @field_validator("storage_class_name")
    @classmethod
    def _storage_class(cls, value: str) -> str:
        if not DNS_SUBDOMAIN_RE.fullmatch(value):
            raise ValueError("expected a StorageClass name (DNS subdomain)")
        return value

    @field_validator("service_cluster_ip")
    @classmethod
    def _cluster_ip(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            address = None
        if address is None or "%" in value:
            raise ValueError("expected an IPv4 or IPv6 address from the cluster's service CIDR")
        return str(address)

    @field_validator("chart_values")
    @classmethod
    def _chart_values(cls, value: dict[str, Any]) -> dict[str, Any]:
        managed = sorted(p for p in _dotted_paths(value) if p in MANAGED_CHART_VALUES)
        if managed:
            raise ValueError(
                f"sets values the program manages ({', '.join(managed)}): use the dedicated config keys"
            )
        bad = sorted(k for k in _dotted_paths(value, leaves_only=False) if not re.fullmatch(r"[A-Za-z0-9_.-]+", k))
        if bad:
            what = "keys must be letters, digits, '_', '.' or '-'"
            raise ValueEcho(f"{what}: {', '.join(map(repr, bad))}", what)
        return value

    # --- derived values ---
    @property
    def scheme(self) -> Literal["http", "https"]:
        """The endpoint's scheme: http when the chart serves plain http."""
        return "http" if self.http_enabled else "https"

    @property
    def port(self) -> int:
        """The registry service port: 80 for http, 443 for https."""
        return 80 if self.http_enabled else 443


class PullSecretSettings(ConfigModel):
    """The pull secrets in the application namespaces (a part of :class:`~components.config.site.SiteConfig`)."""

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

    @field_validator("pull_secret_namespaces")
    @classmethod
    def _pull_secret_namespaces(cls, value: Any) -> Any:
        return _namespace_names(value)

    @field_validator("pull_secret_name")
    @classmethod
    def _secret_name(cls, value: str) -> str:
        if not DNS_SUBDOMAIN_RE.fullmatch(value):
            raise ValueError("expected a Kubernetes object name (DNS subdomain)")
        return value


def kubeconfig_problems(
    kubeconfig_path: str | None, kube_context: str | None, kubeconfig: str | None = None
) -> list[str]:
    """What stops the Kubernetes provider on the machine running pulumi: a ``kubeconfigPath``
    that is not a readable kubeconfig here, or a context (``kubeContext``, else the file's
    ``current-context``) that the kubeconfig does not have. One line per problem, naming its key.

    ``kubeconfig``: the content set with ``--secret`` instead of a path (never quoted).
    """
    path_key, context_key = f"{PROJECT}:kubeconfigPath", f"{PROJECT}:kubeContext"
    if kubeconfig_path is not None:
        where = kubeconfig_path
        path = Path(kubeconfig_path).expanduser()
        expanded = f" ({path})" if str(path) != kubeconfig_path else ""
        if not path.exists():
            return [f"{path_key}: {kubeconfig_path!r}{expanded} does not exist on this machine; expected the path of "
                    "a kubeconfig file here (or set kubeconfig, with --secret, to its content)"]
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        except IsADirectoryError:
            return [f"{path_key}: {kubeconfig_path!r}{expanded} is a directory; expected a kubeconfig file"]
        except (OSError, UnicodeDecodeError) as error:
            reason = getattr(error, "strerror", None) or "not UTF-8 text"
            return [f"{path_key}: {kubeconfig_path!r}{expanded} cannot be read: {reason}"]
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            return [f"{path_key}: {kubeconfig_path!r}{expanded} is not valid YAML{at}; expected a kubeconfig"]
        if not isinstance(doc, dict) or not doc.get("clusters") or not doc.get("contexts"):
            return [f"{path_key}: {kubeconfig_path!r}{expanded} is not a kubeconfig: expected `clusters` and `contexts`"]
    elif kubeconfig is not None and not is_placeholder(kubeconfig):
        where = "the kubeconfig set in edge-registry:kubeconfig"
        try:
            doc = yaml.safe_load(kubeconfig)
        except yaml.YAMLError:
            return []  # the config check reports it
        if not isinstance(doc, dict) or not isinstance(doc.get("contexts"), list):
            return []
    else:
        return []
    contexts = [str(c.get("name")) for c in doc.get("contexts") or [] if isinstance(c, dict) and c.get("name")]
    known = ", ".join(map(repr, contexts)) or "none"
    if kube_context is not None:
        if kube_context not in contexts:
            return [f"{context_key}: {kube_context!r} is not a context in {where}; expected one of {known}"]
        return []
    current = doc.get("current-context")
    if not current:
        return [f"{context_key}: not set, and {where} has no current-context; set it to one of {known}"]
    if current not in contexts:
        return [f"{path_key if kubeconfig_path else context_key}: the current-context of {where}, {current!r}, is "
                f"not one of its contexts; set {context_key} to one of {known}"]
    return []
