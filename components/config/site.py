"""The site configuration model: every stack setting, validated before any resource exists.

A stack's config (Pulumi.yaml defaults merged with ``Pulumi.<site>.yaml``) is read into
:class:`SiteConfig` (:func:`components.config.loading.load_site_config`). All problems are
collected and reported at once, one line each, naming the config key, the bad value and what is
expected (:class:`~components.config.fields.ConfigError`). Values of secret keys are never echoed
in a message.

The model is strict: booleans are only true/false, numbers only whole numbers, an optional name
is set or absent (never ""), a misspelt key gets a "did you mean", and one bad value never adds a
second, knock-on error. Every rule and its source is in docs/config-rules.md.

:class:`SiteConfig` is composed of one settings model per concern (``azure``, ``cluster``,
``https``, ``nodes`` in this package); this module adds the rules that span them
(:func:`cross_field_problems`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field, model_validator

from components.config.azure import AzureSettings
from components.config.cluster import (
    CLUSTER_IP_RELEASE,
    FIRST_CHART_WITH_CLUSTER_IP,
    ClusterSettings,
    PullSecretSettings,
    chart_release,
)
from components.config.fields import ConfigBool, ConfigModel, int_or_none, truthy
from components.config.https import HttpsSettings, https_problems
from components.config.images import ImageSettings
from components.config.nodes import NodeConfig, NodeSettings, host_key_problems


class OperationSettings(ConfigModel):
    """How the program runs for the site (a part of :class:`SiteConfig`)."""

    cloud_only: ConfigBool = Field(
        False, alias="cloudOnly",
        description="Azure-side changes only, for a site whose cluster and nodes cannot be reached: edge resources "
        "are kept as they are (needs `serviceClusterIP`; [runbook](docs/runbooks.md#sites-that-cannot-be-reached)).",
    )


# pydantic collects fields from the last base to the first, so the bases are listed in reverse:
# the keys (and so Pulumi.yaml, the configuration tables and the order of problems) run Azure,
# required images, operations, cluster and Helm chart, https, pull secrets, nodes.
class SiteConfig(
    NodeSettings, PullSecretSettings, HttpsSettings, ClusterSettings, OperationSettings, ImageSettings, AzureSettings
):
    """All settings of one site (one stack)."""

    # --- cross-field checks ---
    @model_validator(mode="after")
    def _cross(self) -> SiteConfig:
        problems = cross_field_problems({name: getattr(self, name) for name in type(self).model_fields})
        if problems:
            raise ValueError(CROSS_FIELD_MARKER + "\n".join(f"{k}\t{m}" for k, m, _ in problems))
        return self

    # --- derived values ---
    @property
    def effective_service_name(self) -> str:
        """The chart's Service: ``serviceName``, else the connected registry's name (the chart's
        docs and the manual procedure look it up by that name, docs/runbooks.md)."""
        return self.service_name or self.connected_registry_name


#: Starts the message of the model's cross-field error: after it, one ``key<TAB>message`` line per
#: problem, which :mod:`components.config.loading` reports as lines of their own.
CROSS_FIELD_MARKER = "\x00cross\x00"


def cross_field_problems(values: Mapping[str, Any]) -> list[tuple[str, str, tuple[str, ...]]]:
    """Rules that span several keys, as (key, message, keys involved). Works on validated values
    and, when other keys are invalid, on the raw ones too, so every problem is reported in one
    run; a rule involving a key that already has its own problem is left out (no knock-on)."""
    problems: list[tuple[str, str, tuple[str, ...]]] = []
    if values.get("mode") == "ReadWrite" and not truthy(values.get("allow_read_write")):
        problems.append(("mode", "'ReadWrite' needs allowReadWrite: true for this site (explicit opt-in)",
                         ("mode", "allowReadWrite")))
    rotate, expiry = int_or_none(values.get("password_rotate_before_days")), int_or_none(values.get("password_expiry_days"))
    if rotate is not None and expiry is not None and rotate >= expiry:
        problems.append(("passwordRotateBeforeDays", f"{rotate} must be less than passwordExpiryDays ({expiry})",
                         ("passwordRotateBeforeDays", "passwordExpiryDays")))
    if truthy(values.get("cloud_only")) and values.get("service_cluster_ip") is None:
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
    # Raw values may be of any type (`nodes: 5`): only a list's mappings are nodes here; the rest
    # is the key's own problem.
    given = values.get("nodes")
    nodes = [n for n in given if isinstance(n, (dict, NodeConfig))] if isinstance(given, (list, tuple)) else []

    def field(node: Any, name: str) -> Any:
        return getattr(node, name, None) if isinstance(node, NodeConfig) else node.get(name)

    hosts = [h for h in (field(n, "host") for n in nodes) if isinstance(h, str)]
    dupes = sorted({h for h in hosts if hosts.count(h) > 1})
    if dupes:
        problems.append(("nodes", f"duplicate host(s): {', '.join(dupes)}", ("nodes",)))
    problems += host_key_problems(given)
    agent = truthy(values.get("ssh_agent"))
    if any(not truthy(field(n, "gone")) for n in nodes) and values.get("ssh_private_key") is None and not agent:
        problems.append(
            ("sshPrivateKey", "required when nodes are configured: pulumi config set --secret sshPrivateKey < key"
             " (or sshAgent: true)", ("sshPrivateKey", "sshAgent"))
        )
    if agent and values.get("ssh_private_key") is not None:
        problems.append(("sshAgent", "set either sshAgent or sshPrivateKey, not both", ("sshAgent", "sshPrivateKey")))
    renew = int_or_none(values.get("certificate_renew_before_days"))
    validity = int_or_none(values.get("certificate_validity_days"))
    if renew is not None and validity is not None and renew >= validity:
        problems.append((
            "certificateRenewBeforeDays", f"{renew} must be less than certificateValidityDays ({validity})",
            ("certificateRenewBeforeDays", "certificateValidityDays"),
        ))
    chart = chart_release(values.get("chart_version"))
    if values.get("service_cluster_ip") is not None and chart is not None and chart < CLUSTER_IP_RELEASE:
        problems.append((
            "chartVersion",
            f"{values.get('chart_version')} ignores service.clusterIP (the chart takes it from "
            f"{FIRST_CHART_WITH_CLUSTER_IP} on): the Service would get another ClusterIP than serviceClusterIP "
            f"and the nodes would point at the wrong address; set edge-registry:chartVersion to "
            f"{FIRST_CHART_WITH_CLUSTER_IP} or later",
            ("chartVersion", "serviceClusterIP"),
        ))
    problems += https_problems(values)
    return problems
