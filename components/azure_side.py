"""The Azure side of one site: connected registry, sync and client scope maps and tokens,
their passwords and the connection string the on-prem install needs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import pulumi
from pulumi_azure_native import containerregistry as acr_native

from components import acr
from components.config import SiteConfig
from components.deactivation import ConnectedRegistryDeactivation
from components.token_password import TokenPassword


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


class AzureConnectedRegistry(pulumi.ComponentResource):
    """Connected registry + sync/client scope maps and tokens + passwords + connection string."""

    connected_registry: acr_native.ConnectedRegistry
    connected_registry_id: pulumi.Output[str]
    connected_registry_name: pulumi.Output[str]
    gateway_endpoint: pulumi.Output[str]
    sync_token_name: pulumi.Output[str]
    client_token_name: pulumi.Output[str]
    client_password: pulumi.Output[str]
    connection_string: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        site: SiteConfig,
        parent_registry: ParentRegistry,
        synced_repositories: Sequence[str],
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

        def scoped_token(
            kind: str, scope_map_name: str, description: str, actions: list[str], token_name: str
        ) -> acr_native.Token:
            """A scope map and the enabled token bound to it."""
            scope_map = acr_native.ScopeMap(
                f"{name}-{kind}-scope-map",
                scope_map_name=scope_map_name,
                description=description,
                actions=actions,
                opts=same_name,
                **common,
            )
            return acr_native.Token(
                f"{name}-{kind}-token",
                token_name=token_name,
                scope_map_id=scope_map.id,
                status=acr_native.TokenStatus.ENABLED,
                opts=same_name,
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
            # mode and the sync token cannot change in place (docs/azure.md, "Connected registry
            # properties"); the name stays, so the old one must go first.
            opts=pulumi.ResourceOptions(
                parent=self, replace_on_changes=["mode", "parent.syncProperties.tokenId"], delete_before_replace=True
            ),
            **common,
        )

        def token_password(kind: str, token_name: str, token: acr_native.Token) -> TokenPassword:
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
                opts=child,
            )

        sync_password = token_password("sync", site.sync_token_name, sync_token)
        client_password = token_password("client", site.client_token_name, client_token)

        self.connected_registry_id = self.connected_registry.id
        self.connected_registry_name = self.connected_registry.name
        self.gateway_endpoint = self.connected_registry.parent.apply(
            lambda p: (p.sync_properties.gateway_endpoint if p and p.sync_properties else None) or ""
        )
        self.sync_token_name = sync_token.name
        self.client_token_name = client_token.name
        self.client_password = pulumi.Output.secret(client_password.value)
        self.connection_string = pulumi.Output.secret(
            pulumi.Output.all(sync_token.name, sync_password.value, self.gateway_endpoint).apply(
                lambda args: acr.connection_string(site.connected_registry_name, args[0], args[1], args[2])
            )
        )
        self._deactivation_args = {
            "subscription_id": parent_registry.subscription_id,
            "resource_group": site.registry_resource_group,
            "registry_name": site.registry_name,
            "connected_registry_name": self.connected_registry.name,
            "arm_endpoint": site.arm_endpoint,
        }
        self.register_outputs(
            {
                "connectedRegistryId": self.connected_registry_id,
                "gatewayEndpoint": self.gateway_endpoint,
                "syncTokenName": self.sync_token_name,
                "clientTokenName": self.client_token_name,
            }
        )

    def deactivate_when_removed(self, install_id: pulumi.Input[str], opts: pulumi.ResourceOptions) -> ConnectedRegistryDeactivation:
        """Deactivate the connected registry whenever the on-prem install identified by
        ``install_id`` is removed or replaced (see components/deactivation.py)."""
        return ConnectedRegistryDeactivation(
            f"{self._base_name}-deactivation",
            install_id=install_id,
            opts=pulumi.ResourceOptions.merge(
                pulumi.ResourceOptions(parent=self, delete_before_replace=True), opts
            ),
            **self._deactivation_args,
        )
