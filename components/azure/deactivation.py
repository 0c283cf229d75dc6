"""``ConnectedRegistryDeactivation``: deactivate the connected registry whenever its on-prem install goes.

The problem (docs/azure.md, "Activation"): only one on-prem instance of a connected registry may be active. The
first start of the Helm chart activates it; a second install (reinstall, new cluster, the release
being replaced) fails with ``ALREADY_ACTIVATED`` until someone calls
``POST …/connectedRegistries/<cr>/deactivate``. The manual procedure does that by hand; here it is a
resource's delete.

The design:

* **create** does nothing but record its inputs. **delete** calls ARM deactivate (200, or 202 +
  ``Location`` polled to the end; a connected registry that no longer exists, 404, counts as done).
* The site passes ``installId`` from the Helm release (its namespace/name/id), so this resource
  **depends on the release**. Pulumi deletes dependents before what they depend on, so on
  ``destroy`` the registry is deactivated before the release is uninstalled.
* **diff** replaces on any change of ``subscriptionId``, ``resourceGroup``, ``registryName``,
  ``connectedRegistryName`` or ``installId``, **and when one of them is unknown**. When the release
  is replaced with ``delete_before_replace`` (it must be: a release name cannot exist twice), the
  engine asks this resource's diff with the release's outputs unknown, to find which dependents it
  must delete first. Answering "replace" for an unknown ``installId`` puts the deactivation before
  the old release is removed and the new one installed, so the next install never meets
  ``ALREADY_ACTIVATED``. (``armEndpoint`` is only how ARM is reached: it updates in place, since
  deactivating a healthy install because a URL was spelt differently would be an outage.)
* The resource is always ``delete_before_replace`` (the class adds the option; diff says so too):
  replacing it must deactivate *before* the new install's record is created, never after it, or the
  late deactivate would knock out the new install.

Nothing is called during preview: the engine does not call ``create`` or ``delete`` in preview, and
diff only compares values.

What this resource does **not** cover: a release that is *created* while the connected registry is
still activated. The ``installId`` of a re-created release is the same (namespace/name), and a
release dropped from the state by a refresh has no old record to replace, so nothing here is
deleted. :class:`PreInstallDeactivation` (below) covers that: the program reads whether the
release is installed (components/cluster/release_read.py) and ARM's activation, and the release
waits for it.
"""

from __future__ import annotations

import uuid
from typing import Any

import pulumi
from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, DiffResult, Resource, UpdateResult
from pulumi.runtime.rpc import UNKNOWN

from components.azure.arm_provider import (
    ARM_ENDPOINT,
    REGISTRY_NAME,
    RESOURCE_GROUP,
    SUBSCRIPTION_ID,
    ArmBackedProvider,
)

CONNECTED_REGISTRY_NAME = "connectedRegistryName"
INSTALL_ID = "installId"

# Any change here means "another install or another connected registry": deactivate the old one.
REPLACE_KEYS: tuple[str, ...] = (SUBSCRIPTION_ID, RESOURCE_GROUP, REGISTRY_NAME, CONNECTED_REGISTRY_NAME, INSTALL_ID)
INPUT_KEYS: tuple[str, ...] = REPLACE_KEYS + (ARM_ENDPOINT,)


class ConnectedRegistryDeactivationProvider(ArmBackedProvider):
    """Dynamic provider behind :class:`ConnectedRegistryDeactivation`.

    :param client_factory: see :class:`ArmBackedProvider`.
    """

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        """Every input but ``armEndpoint`` is required (unknowns pass: they are checked at update)."""
        failures = [CheckFailure(k, f"{k} is required") for k in REPLACE_KEYS if news.get(k) in (None, "")]
        return CheckResult(news, failures)

    def create(self, props: dict[str, Any]) -> CreateResult:
        """Record the inputs; activation itself is done by the on-prem install, not by ARM."""
        return CreateResult(uuid.uuid4().hex, {k: props.get(k) for k in INPUT_KEYS})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        """Replace (deactivating first) on a changed or unknown identity; update for the endpoint."""
        replaces = [k for k in REPLACE_KEYS if news.get(k) == UNKNOWN or olds.get(k) != news.get(k)]
        endpoint_changed = olds.get(ARM_ENDPOINT) != news.get(ARM_ENDPOINT)
        return DiffResult(
            changes=bool(replaces) or endpoint_changed,
            replaces=replaces,
            delete_before_replace=True,
        )

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """Only ``armEndpoint`` gets here (diff replaces for everything else): record it."""
        return UpdateResult({k: news.get(k) for k in INPUT_KEYS})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        """Deactivate the connected registry; already gone (404) is fine."""
        with self._client(props) as client:
            client.deactivate_connected_registry(
                props[RESOURCE_GROUP], props[REGISTRY_NAME], props[CONNECTED_REGISTRY_NAME]
            )


class ConnectedRegistryDeactivation(Resource, module="edgeregistry", name="ConnectedRegistryDeactivation"):
    """Deactivates a connected registry when the on-prem install it records is removed or replaced.

    Inputs (state names in brackets):

    :param subscription_id: [subscriptionId] subscription of the parent registry.
    :param resource_group: [resourceGroup] resource group of the parent registry.
    :param registry_name: [registryName] the parent registry.
    :param connected_registry_name: [connectedRegistryName] pass the ConnectedRegistry's ``name``
        output so this resource also depends on it (and is deleted before it).
    :param install_id: [installId] identifies the on-prem install; pass an output of the Helm
        release (e.g. ``Output.concat(ns, "/", name, "/", release.id)``) so this resource depends on it.
    :param arm_endpoint: [armEndpoint] ARM base URL; ``https://management.azure.com`` if omitted.
    :param opts: resource options; ``delete_before_replace=True`` is always added.
    """

    def __init__(
        self,
        resource_name: str,
        *,
        subscription_id: pulumi.Input[str],
        resource_group: pulumi.Input[str],
        registry_name: pulumi.Input[str],
        connected_registry_name: pulumi.Input[str],
        install_id: pulumi.Input[str],
        arm_endpoint: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
        provider: ConnectedRegistryDeactivationProvider | None = None,
    ) -> None:
        props: dict[str, Any] = {
            SUBSCRIPTION_ID: subscription_id,
            RESOURCE_GROUP: resource_group,
            REGISTRY_NAME: registry_name,
            CONNECTED_REGISTRY_NAME: connected_registry_name,
            INSTALL_ID: install_id,
            ARM_ENDPOINT: arm_endpoint,
        }
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(delete_before_replace=True))
        super().__init__(provider or ConnectedRegistryDeactivationProvider(), resource_name, props, opts)


# --- before an install: the release is gone but the connected registry is still activated ------

RELEASE_INSTALLED = "releaseInstalled"
ACTIVATION_STATUS = "activationStatus"
DEACTIVATED_AT = "deactivatedAt"
PRE_INSTALL_KEYS: tuple[str, ...] = (
    SUBSCRIPTION_ID, RESOURCE_GROUP, REGISTRY_NAME, CONNECTED_REGISTRY_NAME, ARM_ENDPOINT,
    RELEASE_INSTALLED, ACTIVATION_STATUS,
)


def deactivation_needed(props: dict[str, Any]) -> bool:
    """The program read the release as not installed and the connected registry as activated."""
    return props.get(RELEASE_INSTALLED) is False and props.get(ACTIVATION_STATUS) == "Active"


class PreInstallDeactivationProvider(ArmBackedProvider):
    """Dynamic provider behind :class:`PreInstallDeactivation`.

    The decision is the program's (its inputs are two program-time reads); ``diff`` reports a
    change only when it says to deactivate, so a converged site, whatever its facts, previews
    nothing here, and a run that will deactivate previews this resource updating.
    """

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(uuid.uuid4().hex, self._run(props, ""))

    def diff(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return DiffResult(changes=deactivation_needed(news), replaces=[])

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(self._run(news, str(olds.get(DEACTIVATED_AT) or "")))

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        """Nothing to undo: ConnectedRegistryDeactivation deactivates when the release goes."""

    def _run(self, props: dict[str, Any], deactivated_at: str) -> dict[str, Any]:
        if deactivation_needed(props):
            from datetime import UTC, datetime

            with self._client(props) as client:
                client.deactivate_connected_registry(
                    props[RESOURCE_GROUP], props[REGISTRY_NAME], props[CONNECTED_REGISTRY_NAME]
                )
            deactivated_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {**{k: props.get(k) for k in PRE_INSTALL_KEYS}, DEACTIVATED_AT: deactivated_at}


class PreInstallDeactivation(Resource, module="edgeregistry", name="PreInstallDeactivation"):
    """Deactivates the connected registry before the Helm release is installed, when the program
    read the release as not installed while ARM reports the connected registry activated
    (components/cluster/release_read.py). Declare the release with ``depends_on`` this resource.

    :param release_installed: [releaseInstalled] the program-time read: True, False, or None
        (not read: unknown, so nothing is done).
    :param activation_status: [activationStatus] ARM's ``activation.status`` read at program time.
    """

    deactivatedAt: pulumi.Output[str]  # noqa: N815 (dynamic outputs use their state names)
    """When this resource last deactivated the connected registry ("" when never)."""

    def __init__(
        self,
        resource_name: str,
        *,
        subscription_id: pulumi.Input[str],
        resource_group: pulumi.Input[str],
        registry_name: pulumi.Input[str],
        connected_registry_name: str,
        release_installed: bool | None,
        activation_status: str | None,
        arm_endpoint: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
        provider: PreInstallDeactivationProvider | None = None,
    ) -> None:
        props: dict[str, Any] = {
            SUBSCRIPTION_ID: subscription_id,
            RESOURCE_GROUP: resource_group,
            REGISTRY_NAME: registry_name,
            CONNECTED_REGISTRY_NAME: connected_registry_name,
            ARM_ENDPOINT: arm_endpoint,
            RELEASE_INSTALLED: release_installed,
            ACTIVATION_STATUS: activation_status,
            DEACTIVATED_AT: None,
        }
        super().__init__(provider or PreInstallDeactivationProvider(), resource_name, props, opts)
