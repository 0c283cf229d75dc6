"""The Azure side of one site: connected registry, sync and client scope maps and tokens,
their passwords and the connection string the on-prem install needs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Sequence

import pulumi
from pulumi_azure_native import containerregistry as acr_native

from components.azure import acr

from components.azure import rotation
from components.config.site import SiteConfig
from components.azure.deactivation import ConnectedRegistryDeactivation, PreInstallDeactivation
from components.azure.password_in_use import PasswordInUse
from components.azure.slot_retirement import SlotRetirement
from components.azure.sync_status import SiteCoordinates, SiteSyncStatus
from components.azure.token_password import TokenPassword


class RegistryNotSuitable(Exception):
    """The parent registry cannot host connected registries; the message says how to fix it."""


@dataclass(frozen=True)
class ParentRegistry:
    """What the program needs to know about the (referenced, not managed) parent registry."""

    id: str
    login_server: str
    location: str
    subscription_id: str


def look_up_parent_registry(site: SiteConfig) -> ParentRegistry:
    """Read the parent registry at evaluation time and check it is Premium with a data endpoint."""
    found = acr_native.get_registry(
        registry_name=site.registry_name, resource_group_name=site.registry_resource_group
    )
    sku = found.sku.name if found.sku else None
    problems = acr.registry_problems(sku, found.data_endpoint_enabled, site.registry_name)
    if problems:
        raise RegistryNotSuitable("\n".join(problems))
    # /subscriptions/<sub>/resourceGroups/...
    subscription_id = found.id.split("/")[2]
    return ParentRegistry(
        id=found.id, login_server=found.login_server, location=found.location, subscription_id=subscription_id
    )


def site_coordinates(site: SiteConfig, parent_registry: ParentRegistry) -> SiteCoordinates:
    """Where the sync status reader looks for this site."""
    return SiteCoordinates(
        subscription_id=parent_registry.subscription_id,
        resource_group=site.registry_resource_group,
        registry_name=site.registry_name,
        connected_registry_name=site.connected_registry_name,
        token_names=(site.sync_token_name, site.client_token_name),
        arm_endpoint=site.arm_endpoint,
    )


def warn_about_stuck_rotations(
    status: SiteSyncStatus,
    tokens: list[rotation.TokenStatus],
    rotate_before_days: float,
    at: datetime,
    cloud_only: bool = False,
) -> list[str]:
    """Warn (in preview and up) about every password near expiry whose rotation waits for a sync,
    is held by a cloud-only run, or cannot take effect on a site that does not sync."""
    if not status.known:
        messages = [
            f"could not read the connected registry's sync status from ARM ({status.error}); "
            "password rotations will not advance past the first step in this run"
        ]
    else:
        messages = rotation.stuck_rotation_warnings(
            tokens,
            status.last_sync_time,
            status.connection_state,
            at,
            rotate_before_days,
            activation_status=status.activation_status,
            cloud_only=cloud_only,
        )
    for message in messages:
        pulumi.log.warn(message)
    return messages


class AzureConnectedRegistry(pulumi.ComponentResource):
    """Connected registry + sync/client scope maps and tokens + passwords + connection string.

    ``sync_status`` is ARM's view of the site read at program time; it gates every rotation step
    (components/azure/rotation.py) and feeds the stuck-rotation warnings.
    """

    connected_registry: acr_native.ConnectedRegistry
    connected_registry_id: pulumi.Output[str]
    connected_registry_name: pulumi.Output[str]
    gateway_endpoint: pulumi.Output[str]
    sync_token_name: pulumi.Output[str]
    client_token_name: pulumi.Output[str]
    client_password: pulumi.Output[str]
    """The client password consumers use now (pull secrets, node auth); switches only when safe."""
    connection_string: pulumi.Output[str]
    sync_password_rotation: pulumi.Output[dict[str, Any]]
    client_password_rotation: pulumi.Output[dict[str, Any]]

    def __init__(
        self,
        name: str,
        site: SiteConfig,
        parent_registry: ParentRegistry,
        synced_repositories: Sequence[str],
        sync_status: SiteSyncStatus,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("edge-registry:index:AzureConnectedRegistry", name, {}, opts)
        self._base_name = name
        child = pulumi.ResourceOptions(parent=self)
        # Scope maps, tokens and the connected registry have fixed names: azure-native cannot
        # create one while the old one still exists, so a replacement must delete first
        # (docs/runbooks.md, "Replacements").
        same_name = pulumi.ResourceOptions(parent=self, delete_before_replace=True)
        common = {"registry_name": site.registry_name, "resource_group_name": site.registry_resource_group}

        def adopting(kind: str, resource_name: str) -> pulumi.ResourceOptions:
            """Adopting a site (importExisting): take the existing resource into the state instead
            of creating it (its inputs must match what exists: docs/runbooks.md, "Adopt a site")."""
            if not site.import_existing:
                return pulumi.ResourceOptions()
            return pulumi.ResourceOptions(import_=f"{parent_registry.id}/{kind}/{resource_name}")

        def scoped_token(
            kind: str, scope_map_name: str, description: str, actions: list[str], token_name: str
        ) -> acr_native.Token:
            """A scope map and the enabled token bound to it."""
            scope_map = acr_native.ScopeMap(
                f"{name}-{kind}-scope-map",
                scope_map_name=scope_map_name,
                description=description,
                actions=actions,
                opts=pulumi.ResourceOptions.merge(same_name, adopting("scopeMaps", scope_map_name)),
                **common,
            )
            return acr_native.Token(
                f"{name}-{kind}-token",
                token_name=token_name,
                scope_map_id=scope_map.id,
                status=acr_native.TokenStatus.ENABLED,
                # Never updated in place: a PUT of the token without `credentials` wipes its
                # passwords. Any changed input replaces the token (same name: delete first), and
                # its TokenPassword with it.
                # `credentials` is never passed: TokenPassword owns the passwords. But a refresh
                # (the workflows preview and deploy with --refresh) copies the passwords ARM
                # reports into the token's stored inputs (docs/azure.md, "Token passwords"), and
                # without ignore_changes the next diff would see them "removed" and replace the
                # token: for the sync token a delete ARM refuses while its connected registry
                # exists, or one that ends the site's sync for good.
                opts=pulumi.ResourceOptions.merge(
                    same_name,
                    pulumi.ResourceOptions.merge(
                        pulumi.ResourceOptions(replace_on_changes=["*"], ignore_changes=["credentials"]),
                        adopting("tokens", token_name),
                    ),
                ),
                **common,
            )

        sync_token = scoped_token(
            "sync",
            site.sync_scope_map_name,
            f"Sync scope map for connected registry {site.connected_registry_name}",
            acr.sync_actions(site.connected_registry_name, synced_repositories, site.mode),
            site.sync_token_name,
        )
        client_token = scoped_token(
            "client",
            site.client_scope_map_name,
            f"Read-only client access to connected registry {site.connected_registry_name}",
            acr.client_actions(site.effective_client_repositories),
            site.client_token_name,
        )
        self.connected_registry = acr_native.ConnectedRegistry(
            f"{name}-connected-registry",
            connected_registry_name=site.connected_registry_name,
            mode=site.mode,
            parent=acr_native.ParentPropertiesArgs(
                sync_properties=acr_native.SyncPropertiesArgs(
                    token_id=sync_token.id,
                    schedule=site.sync_schedule,
                    sync_window=site.sync_window,
                    message_ttl=site.message_ttl,
                ),
            ),
            client_token_ids=[client_token.id],
            logging=acr_native.LoggingPropertiesArgs(
                log_level=site.log_level,
                audit_log_status="Enabled" if site.audit_log else "Disabled",
            ),
            notifications_list=list(site.notifications) or None,
            # Always sent, switched off too: ARM's own default for a connected registry created
            # without it is not documented, so the stack says what the site's disk gets.
            garbage_collection=acr_native.GarbageCollectionPropertiesArgs(
                enabled=site.garbage_collection_enabled,
                schedule=site.garbage_collection_schedule,
            ),
            # mode and the sync token cannot change in place (docs/azure.md, "Connected registry
            # properties"); the name stays, so the old one must go first.
            opts=pulumi.ResourceOptions.merge(
                pulumi.ResourceOptions(
                    parent=self, replace_on_changes=["mode", "parent.syncProperties.tokenId"], delete_before_replace=True
                ),
                adopting("connectedRegistries", site.connected_registry_name),
            ),
            **common,
        )

        self._facts: dict[str, rotation.SlotFacts] = {}

        def token_password(kind: str, token_name: str, token: acr_native.Token) -> TokenPassword:
            adopted = site.adopt_sync_password if kind == rotation.SYNC_ROLE else site.adopt_client_password
            slots = sync_status.tokens.get(token_name)
            facts = rotation.slot_facts(slots, sync_status.last_sync_time, known=sync_status.known)
            self._facts[kind] = facts
            return TokenPassword(
                f"{name}-{kind}-token-password",
                subscription_id=parent_registry.subscription_id,
                resource_group=site.registry_resource_group,
                registry_name=site.registry_name,
                token_name=token_name,
                token_id=token.id,
                expiry_days=site.password_expiry_days,
                # Cloud-only: no rotation starts, as the edge cannot take the new password
                # (components/cloud_only.py); 0 still replaces a password that has expired.
                rotate_before_days=0 if site.cloud_only else site.password_rotate_before_days,
                arm_endpoint=site.arm_endpoint,
                role=kind,
                present_slots=sorted(facts.present) if facts.present is not None else None,
                synced_slots=sorted(facts.synced) if facts.synced is not None else None,
                adopt=adopted.get_secret_value() if adopted is not None else None,
                opts=child,
            )

        warn_about_stuck_rotations(
            sync_status,
            [
                rotation.TokenStatus(
                    f"{name}-{kind}-token-password", token_name, kind, sync_status.tokens.get(token_name)
                )
                for kind, token_name in ((rotation.SYNC_ROLE, site.sync_token_name),
                                         (rotation.CLIENT_ROLE, site.client_token_name))
            ],
            site.password_rotate_before_days,
            rotation.now(),
            cloud_only=site.cloud_only,
        )
        sync_password = token_password(rotation.SYNC_ROLE, site.sync_token_name, sync_token)
        client_password = token_password(rotation.CLIENT_ROLE, site.client_token_name, client_token)

        self.connected_registry_id = self.connected_registry.id
        self.connected_registry_name = self.connected_registry.name
        # From the program-time read when the connected registry exists: azure-native previews
        # the output-only properties of a ConnectedRegistry being updated (a schedule or window
        # change) as unknown, and the connection string built from its output would preview the
        # Helm release as changing too. The output only before the first `up` (then all is new).
        self.gateway_endpoint = (
            pulumi.Output.from_input(sync_status.gateway_endpoint)
            if sync_status.gateway_endpoint
            else self.connected_registry.parent.apply(
                lambda p: (p.sync_properties.gateway_endpoint if p and p.sync_properties else None) or ""
            )
        )
        self.sync_token_name = sync_token.name
        self.client_token_name = client_token.name
        # The one Output every client-password consumer takes: it moves to a new password only
        # after the site has synced it (TokenPassword role "client"). Read through a record of the
        # password in use, so the step that issues the next password (an update of the
        # TokenPassword, all its outputs unknown in a preview) previews no consumer change.
        client_facts = self._facts[rotation.CLIENT_ROLE]
        self.client_password_in_use = PasswordInUse(
            f"{name}-client-password-in-use",
            slot=client_password.slot,
            value=client_password.value,
            expiry=client_password.expiry,
            present_slots=sorted(client_facts.present) if client_facts.present is not None else None,
            synced_slots=sorted(client_facts.synced) if client_facts.synced is not None else None,
            opts=child,
        )
        self.client_password = pulumi.Output.secret(self.client_password_in_use.value)
        self._passwords = {rotation.SYNC_ROLE: sync_password, rotation.CLIENT_ROLE: client_password}
        self._token_names = {rotation.SYNC_ROLE: site.sync_token_name, rotation.CLIENT_ROLE: site.client_token_name}
        self._sync_status = sync_status
        self._rotate_before_days = site.password_rotate_before_days
        self.connection_string = pulumi.Output.secret(
            pulumi.Output.all(sync_token.name, sync_password.value, self.gateway_endpoint).apply(
                lambda args: acr.connection_string(site.connected_registry_name, args[0], args[1], args[2])
            )
        )
        self._registry_args: dict[str, Any] = {
            "subscription_id": parent_registry.subscription_id,
            "resource_group": site.registry_resource_group,
            "registry_name": site.registry_name,
            "arm_endpoint": site.arm_endpoint,
        }
        # The configured name, not the resource's ``name`` output: an output may be unknown in a
        # preview of a ConnectedRegistry update (a schedule change), which would preview the
        # deactivation as changing. Its dependency on the ConnectedRegistry keeps it deleted
        # (deactivated) before the connected registry on destroy. That dependency does not cover a
        # release created anew while the connected registry is still activated (a re-created
        # release keeps its installId, and one a refresh dropped has no record to replace):
        # deactivate_before_install does.
        self._deactivation_args = {**self._registry_args, "connected_registry_name": site.connected_registry_name}
        self.register_outputs(
            {
                "connectedRegistryId": self.connected_registry_id,
                "gatewayEndpoint": self.gateway_endpoint,
                "syncTokenName": self.sync_token_name,
                "clientTokenName": self.client_token_name,
            }
        )

    def retire_old_passwords_after(
        self,
        sync_consumers: Sequence[pulumi.Resource],
        client_consumers: Sequence[pulumi.Resource],
        held: bool = False,
    ) -> dict[str, SlotRetirement]:
        """Declare each token's ``SlotRetirement`` after the resources that use its password:
        the old slot goes only once they carry the new one (components/azure/slot_retirement.py).
        ``held`` (a cloud-only run, whose edge keeps its stored inputs) holds them too, so no
        switch the edge did not get is recorded and no slot is removed: they get it as an input
        their diff honours (not ``ignore_changes``, under which a retirement already due would
        still call ARM). Sets the ``*_password_rotation`` outputs."""
        retirements: dict[str, SlotRetirement] = {}
        for role, consumers in ((rotation.SYNC_ROLE, sync_consumers), (rotation.CLIENT_ROLE, client_consumers)):
            password, facts = self._passwords[role], self._facts[role]
            last_sync = self._sync_status.last_sync_time
            # Only while a second slot exists: a settled site's inputs must not move with each sync.
            pending = facts.present is not None and len(facts.present) > 1
            retirements[role] = SlotRetirement(
                f"{self._base_name}-{role}-slot-retirement",
                active_slot=password.slot,
                active_expiry=password.expiry,
                next_slot=password.nextSlot,
                role=role,
                token_name=self._token_names[role],
                last_sync_time=rotation.format_time(last_sync) if pending and last_sync else None,
                present_slots=sorted(facts.present) if facts.present is not None else None,
                held=held,
                opts=pulumi.ResourceOptions(parent=self, depends_on=list(consumers)),
                **self._registry_args,
            )
            self._warn_if_blocked(role, password, retirements[role])
        self.sync_password_rotation = rotation_summary(self._passwords[rotation.SYNC_ROLE], retirements[rotation.SYNC_ROLE])
        self.client_password_rotation = rotation_summary(
            self._passwords[rotation.CLIENT_ROLE], retirements[rotation.CLIENT_ROLE]
        )
        return retirements

    def _warn_if_blocked(self, role: str, password: TokenPassword, retirement: SlotRetirement) -> None:
        """Warn when a slot edge-registry did not issue keeps a due rotation from starting.

        Which slots are edge-registry's is TokenPassword's and SlotRetirement's state, which the
        program sees only as their previous outputs: known in a preview of an unchanged resource
        (a blocked rotation changes nothing), unknown while one changes, and then the callback
        does not run. Only slot names and times go in: no password value.
        """
        status = self._sync_status
        if not status.known:
            return
        token_name = self._token_names[role]
        token = rotation.TokenStatus(
            f"{self._base_name}-{role}-token-password", token_name, role, status.tokens.get(token_name)
        )
        site = rotation.SiteView(status.last_sync_time, status.connection_state, status.activation_status)

        def warn(parts: list[Any]) -> None:
            slot, expiry, next_slot, active_slot, retiring_slot = parts
            state = rotation.RotationState(role, slot or None, expiry or None, next_slot or None)
            for message in rotation.blocked_rotation_warnings(
                token, state, [s for s in (active_slot, retiring_slot) if s], site, rotation.now(),
                self._rotate_before_days, self._registry_args["registry_name"],
            ):
                pulumi.log.warn(message)

        pulumi.Output.all(
            password.slot, password.expiry, password.nextSlot, retirement.activeSlot, retirement.retiringSlot
        ).apply(warn)

    def deactivate_before_install(
        self, release_installed: bool | None, opts: pulumi.ResourceOptions | None = None
    ) -> PreInstallDeactivation:
        """Deactivate the connected registry before the Helm release is installed when the program
        read the release as not installed while ARM reports it activated (see
        components/cluster/release_read.py); the release must depend on what this returns."""
        activation = self._sync_status.activation_status if self._sync_status.known else None
        if release_installed is False and activation == "Active":
            pulumi.log.warn(
                f"the Helm release is not installed on the cluster but connected registry "
                f"{self._deactivation_args['connected_registry_name']} reports itself activated: this run "
                "deactivates it before installing the release (else the install fails with ALREADY_ACTIVATED)",
                resource=self,
            )
        return PreInstallDeactivation(
            f"{self._base_name}-pre-install-deactivation",
            release_installed=release_installed,
            activation_status=activation,
            opts=pulumi.ResourceOptions.merge(
                pulumi.ResourceOptions(parent=self, depends_on=[self.connected_registry]), opts
            ),
            **self._deactivation_args,
        )

    def deactivate_when_removed(self, install_id: pulumi.Input[str], opts: pulumi.ResourceOptions) -> ConnectedRegistryDeactivation:
        """Deactivate the connected registry whenever the on-prem install identified by
        ``install_id`` is removed or replaced (see components/azure/deactivation.py)."""
        return ConnectedRegistryDeactivation(
            f"{self._base_name}-deactivation",
            install_id=install_id,
            opts=pulumi.ResourceOptions.merge(
                pulumi.ResourceOptions(
                    parent=self, delete_before_replace=True, depends_on=[self.connected_registry]
                ),
                opts,
            ),
            **self._deactivation_args,
        )


def rotation_summary(password: TokenPassword, retirement: SlotRetirement) -> pulumi.Output[dict[str, Any]]:
    """A rotation's phase and slots (no values) for the stack outputs."""
    return pulumi.Output.all(
        retirement.phase, password.slot, password.expiry, password.nextSlot, retirement.retiringSlot
    ).apply(
        lambda parts: {
            "phase": parts[0],
            "slot": parts[1],
            "expiry": parts[2],
            "nextSlot": parts[3] or None,
            "retiringSlot": parts[4] or None,
        }
    )
