"""Program-time read: is the site's Helm release installed on its cluster?

Why at program time: only one on-prem instance of a connected registry may be active
(docs/azure.md, "Activation"). When the release is gone while the connected registry still
reports itself activated (someone ran ``helm uninstall``, an atomic install failed and rolled
back, the cluster was rebuilt behind the same kubeconfig), the next install fails with
``ALREADY_ACTIVATED``. Pulumi's state cannot tell: a refresh drops the release and the next
``up`` simply creates it. So the program asks the cluster, the way it asks the nodes
(components/nodes/read.py), and the site deactivates first when both facts say so
(:class:`components.azure.deactivation.PreInstallDeactivation`).

Helm 3 keeps each release revision in a Secret of the release's namespace labelled
``owner=helm,name=<release>,status=<status>``; ``helm uninstall`` and an atomic rollback of a
first install delete them. The release counts as installed when a revision is ``deployed`` (or
being upgraded or rolled back). Reads only: listing Secrets of one namespace by label.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

#: Revision states of a release that still runs its pods.
LIVE_STATUSES = frozenset({"deployed", "pending-upgrade", "pending-rollback"})


@dataclass(frozen=True)
class ReleaseTarget:
    """Where to look: the cluster (kubeconfig content or path, context) and the release."""

    namespace: str
    release_name: str
    kubeconfig: str | None = None
    kubeconfig_path: str | None = None
    context: str | None = None


@dataclass(frozen=True)
class ReleaseRead:
    """``installed`` is None when the cluster could not be read (``error`` says why)."""

    installed: bool | None
    error: str | None = None


class ReleaseReader(Protocol):
    def __call__(self, target: ReleaseTarget) -> ReleaseRead: ...


def installed_from_labels(labels: list[dict[str, str]]) -> bool:
    """Whether any revision (its Secret's labels) is a live one."""
    return any(label.get("status") in LIVE_STATUSES for label in labels)


class KubeReleaseReader:
    """Reads the release's revisions with the Kubernetes API client, as ``helm status`` would."""

    def __init__(self, timeout_seconds: float = 15) -> None:
        self.timeout_seconds = timeout_seconds

    def __call__(self, target: ReleaseTarget) -> ReleaseRead:
        # Imported here: only a program run that needs the read loads the client.
        import yaml
        from kubernetes import client, config
        from kubernetes.client.exceptions import ApiException
        from kubernetes.config.config_exception import ConfigException

        try:
            if target.kubeconfig:
                api = config.new_client_from_config_dict(yaml.safe_load(target.kubeconfig), context=target.context)
            else:
                api = config.new_client_from_config(config_file=target.kubeconfig_path, context=target.context)
            with api:
                found = client.CoreV1Api(api).list_namespaced_secret(
                    target.namespace,
                    label_selector=f"owner=helm,name={target.release_name}",
                    _request_timeout=self.timeout_seconds,
                )
        except ApiException as error:
            if error.status == 404:
                return ReleaseRead(installed=False)  # no such namespace: nothing installed there
            return ReleaseRead(installed=None, error=f"the cluster answered {error.status} {error.reason}")
        except (ConfigException, OSError, ValueError, yaml.YAMLError) as error:
            return ReleaseRead(installed=None, error=f"{type(error).__name__}: {error}")
        except Exception as error:  # noqa: BLE001 - urllib3's errors: the cluster is unreachable
            return ReleaseRead(installed=None, error=f"{type(error).__name__}: {error}")
        return ReleaseRead(installed=installed_from_labels([dict((s.metadata.labels if s.metadata else None) or {}) for s in found.items]))
