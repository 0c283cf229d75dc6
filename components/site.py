"""The site: wires the Azure side, the on-prem install, the node mirrors and the pull secrets.

``run()`` is the whole program: ``__main__.py`` calls it under ``pulumi up``/``preview``, and the
offline renderer calls it under the SDK's mocks.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pulumi

from components.cloud_only import HELD_NOTE, edge_options
from components.azure.connected_registry import (
    AzureConnectedRegistry,
    RegistryNotSuitable,
    look_up_parent_registry,
    site_coordinates,
)
from components.azure.catalog import CatalogSource, azure_catalog, synced_repositories
from components.config.cluster import kubeconfig_problems
from components.config.fields import PROJECT, ConfigError
from components.config.loading import load_site_config
from components.config.site import SiteConfig
from components.nodes.mirror import NodeMirror, NodeMirrorArgs, node_target, unreadable_message
from components.nodes.read_account import read_command as preview_read_command
from components.nodes.read import NodeReader, NodeReadFailure, ReadResult, SshNodeReader, check_read
from components.cluster.onprem import OnPremInstall, OnPremInstallArgs
from components.cluster.release_read import KubeReleaseReader, ReleaseReader, ReleaseTarget
from components.cluster.pull_secrets import PullSecrets, PullSecretsArgs
from components.cluster.site_tls import SiteTls, SiteTlsArgs, check_brought_expiry, service_dns_names
from components.config.stack import StackConfig, hide_leaves, read_stack_config
from components.azure.sync_status import ArmSyncStatusReader, SyncStatusReader


def read_pulumi_config() -> dict[str, Any]:
    """Every ``edge-registry:*`` value the engine passed, keyed without the project prefix
    (through ``pulumi.Config``; :func:`components.config.stack.read_stack_config` adds secrecy)."""
    return dict(read_stack_config().values)


def other_config_keys() -> list[str]:
    """The names (never the values) of every config key outside this project's namespace, such as
    ``azure-native:location``, so misspelt provider keys are caught (components.config.keys.key_problems)."""
    from pulumi.runtime import config as runtime_config

    keys: set[str] = set()
    for source in (runtime_config.get_config_env(), runtime_config.CONFIG.get()):
        for key in source:
            namespace, _, name = key.partition(":")
            if namespace != PROJECT:
                # The engine may still pass the old `<namespace>:config:<name>` form.
                keys.add(f"{namespace}:{name.removeprefix('config:')}")
    return sorted(keys)


class NodesUnreadable(Exception):
    """``pulumi up`` with nodes that could not be read, or whose file cannot be merged into: one
    line per node, each with the way out."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def _node_args(
    site: SiteConfig,
    node: Any,
    endpoint: pulumi.Input[str],
    ssh_key: Any,
    *,
    ca_certificate: pulumi.Input[str] | None = None,
    login_server: str | None = None,
    username: pulumi.Input[str] | None = None,
    password: pulumi.Input[str] | None = None,
) -> NodeMirrorArgs:
    return NodeMirrorArgs(
        host=node.host,
        port=node.port,
        user=node.user,
        role=node.role,
        unit=node.service_unit,
        path=node.path,
        host_key=node.host_key,
        gone=node.gone,
        endpoint=endpoint,
        scheme=site.scheme,
        # https: the site CA beside registries.yaml; the client token's credentials in
        # configs[endpoint].auth, so pulls through either mirror authenticate.
        ca_certificate=ca_certificate,
        login_server=login_server,
        username=username,
        password=password,
        insecure_skip_verify=site.mirror_insecure_skip_verify,
        # With sshAgent no key: pulumi-command (and the reader) use the agent at $SSH_AUTH_SOCK.
        ssh_private_key=None if site.ssh_agent else (ssh_key if ssh_key is not None else pulumi.Output.secret("")),
        ssh_agent=site.ssh_agent,
        restart_timeout_seconds=site.node_restart_timeout_seconds,
        service_manager="auto",
    )


def read_site_nodes(site: SiteConfig, reader: NodeReader) -> dict[str, ReadResult]:
    """Read every node that is not gone, in parallel, before anything is declared.

    Under ``pulumi up`` a node that cannot be read, or whose file fails the k3s check in the part
    edge-registry does not own (:func:`components.nodes.read.check_read`), stops the run here, so
    nothing of the site is changed; under preview it is reported by its NodeMirror (a warning, no
    write planned). With ``previewNodeUser`` a preview reads as that account instead of the
    node's user.
    """
    targets = [node_target(_node_args(site, n, "", None)) for n in site.nodes if not n.gone]
    if not targets:
        return {}
    if pulumi.runtime.is_dry_run() and site.preview_node_user:
        # Previews read as the read-only account, whose one sudo rule runs the installed read
        # script on this path (components/nodes/read_account.py); `up` reads as the write does.
        targets = [
            dataclasses.replace(t, user=site.preview_node_user, command=preview_read_command(t.path)) for t in targets
        ]
    key = site.ssh_private_key.get_secret_value() if site.ssh_private_key and not site.ssh_agent else None
    reads = {host: check_read(host, result) for host, result in reader.read_nodes(targets, key, use_agent=site.ssh_agent).items()}
    if not pulumi.runtime.is_dry_run():
        paths = {t.host: t.path for t in targets}
        failures = [r for r in reads.values() if isinstance(r, NodeReadFailure)]
        missing = [NodeReadFailure(t.host, "not read", True) for t in targets if t.host not in reads]
        if failures or missing:
            raise NodesUnreadable([unreadable_message(f, paths[f.host], preview=False) for f in failures + missing])
    return reads


class Site(pulumi.ComponentResource):
    """Everything one site (one stack) needs, in dependency order.

    ``node_reader`` reads the nodes at program time (default: over SSH); the offline renderer
    passes its fakes.
    """

    def __init__(
        self,
        name: str,
        site: SiteConfig,
        catalog: CatalogSource,
        opts: pulumi.ResourceOptions | None = None,
        secrets: StackConfig | None = None,
        node_reader: NodeReader | None = None,
        sync_status_reader: SyncStatusReader | None = None,
        release_reader: ReleaseReader | None = None,
    ) -> None:
        super().__init__("edge-registry:index:Site", name, {}, opts)
        secrets = secrets or StackConfig(values={})
        if site.cloud_only:
            pulumi.log.warn(HELD_NOTE, resource=self)
        # Edge components: in a cloud-only run their resources keep their stored inputs.
        edge = edge_options(site.cloud_only, pulumi.ResourceOptions(parent=self))
        # First, before any resource: a node that cannot be read stops `up` with nothing changed.
        # A cloud-only run contacts no node.
        reads = {} if site.cloud_only else read_site_nodes(site, node_reader or SshNodeReader())
        try:
            parent_registry = look_up_parent_registry(site)
        except RegistryNotSuitable as error:
            raise ConfigError([f"{PROJECT}:registryName: {line}" for line in str(error).splitlines()]) from None
        repositories = synced_repositories(site, catalog, parent_registry.login_server)

        # Read once per run, in preview too: gates each rotation step and warns about stuck ones.
        reader = sync_status_reader or ArmSyncStatusReader()
        sync_status = reader(site_coordinates(site, parent_registry))
        self.azure = AzureConnectedRegistry(
            f"{name}-azure",
            site,
            parent_registry,
            repositories,
            sync_status,
            opts=pulumi.ResourceOptions(parent=self),
        )
        # A release gone from the cluster while the connected registry still reports itself
        # activated: deactivate before installing it again (else ALREADY_ACTIVATED).
        release_installed = read_release_installed(
            site, sync_status.activation_status, release_reader or KubeReleaseReader(), self
        )
        self.pre_install_deactivation = self.azure.deactivate_before_install(release_installed)
        # https (the default): the CA the nodes trust and the certificate the registry serves.
        self.tls = site_tls(name, site, self, {n.host: reads.get(n.host) for n in site.nodes if not n.gone})
        self.onprem = OnPremInstall(
            f"{name}-onprem",
            OnPremInstallArgs(
                kubeconfig=pulumi.Output.secret(site.kubeconfig.get_secret_value()) if site.kubeconfig else None,
                kubeconfig_path=site.kubeconfig_path,
                kube_context=site.kube_context,
                namespace=site.namespace,
                release_name=site.release_name,
                chart_version=site.chart_version,
                timeout_seconds=site.helm_timeout_seconds,
                http_enabled=site.http_enabled,
                chunk_size_in_mb=site.chunk_size_in_mb,
                storage_class_name=site.storage_class_name,
                storage_request=site.storage_request,
                service_cluster_ip=site.service_cluster_ip,
                service_name=site.effective_service_name,
                # Leaves set with `--secret --path chartValues.x` stay secrets in the values.
                extra_values=hide_leaves(
                    dict(site.chart_values), secrets.leaves_to_hide("chartValues", dict(site.chart_values))
                ),
                connection_string=self.azure.connection_string,
                tls_certificate=self.tls.certificate_pem if self.tls else None,
                tls_key=self.tls.key_pem if self.tls else None,
                install_after=[self.pre_install_deactivation],
                import_existing=site.import_existing,
            ),
            opts=edge,
        )
        # Removing or replacing the release deactivates the connected registry first, so the
        # next install never meets ALREADY_ACTIVATED. Keyed on what stays known while the release
        # updates (its id, and name/namespace from config): its status is unknown in any preview
        # of a release update, which would preview every password rotation or chart-value change
        # as "replace the deactivation".
        # A release read as not installed is created in this run (the pre-install deactivation
        # went first): its id, unknown until then, would preview the deactivation as replaced,
        # which `up` (same id) does not do. Its id is namespace/name: take it from config then.
        release_id = (
            f"{site.namespace}/{site.release_name}" if release_installed is False else self.onprem.release.id
        )
        self.deactivation = self.azure.deactivate_when_removed(
            install_id=pulumi.Output.all(release_id, site.namespace, site.release_name).apply(
                lambda parts: "/".join(str(p) for p in parts)
            ),
            opts=pulumi.ResourceOptions(depends_on=[self.onprem.release]),
        )
        self.pull_secrets = PullSecrets(
            f"{name}-pull-secrets",
            PullSecretsArgs(
                provider=self.onprem.provider,
                namespaces=list(site.pull_secret_namespaces),
                secret_name=site.pull_secret_name,
                create_namespaces=site.create_pull_secret_namespaces,
                patch_default_service_account=site.patch_default_service_account,
                endpoint=self.onprem.endpoint,
                login_server=parent_registry.login_server,
                username=self.azure.client_token_name,
                password=self.azure.client_password,
                # Reading the live ServiceAccounts needs the cluster.
                read_service_accounts=not site.cloud_only,
            ),
            opts=edge,
        )
        # Rolling: one node at a time, in config order, after the registry is serving.
        self.nodes: list[NodeMirror] = []
        previous: pulumi.Resource = self.onprem
        ssh_key = pulumi.Output.secret(site.ssh_private_key.get_secret_value()) if site.ssh_private_key else None
        for node in site.nodes:
            mirror = NodeMirror(
                f"{name}-node-{node.host}",
                _node_args(
                    site, node, self.onprem.endpoint, ssh_key,
                    # During a CA renewal, each node's CA file depends on what it holds now.
                    ca_certificate=self.tls.node_ca_certificate(reads.get(node.host)) if self.tls else None,
                    login_server=parent_registry.login_server if site.mirror_login_server else None,
                    username=self.azure.client_token_name,
                    password=self.azure.client_password,
                ),
                read=reads.get(node.host),
                held=site.cloud_only,
                opts=pulumi.ResourceOptions.merge(edge, pulumi.ResourceOptions(depends_on=[previous])),
            )
            self.nodes.append(mirror)
            previous = mirror

        # A rotation's old slot goes only after everything using that password carries the new
        # one: the Helm release (sync), the pull secrets and the nodes' registry auth (client).
        # Held like the edge in a cloud-only run, since the edge keeps the old passwords then.
        self.slot_retirements = self.azure.retire_old_passwords_after(
            sync_consumers=[self.onprem],
            client_consumers=[self.pull_secrets, *self.nodes],
            held=site.cloud_only,
        )

        self.register_outputs({})


def read_release_installed(
    site: SiteConfig, activation_status: str | None, reader: ReleaseReader, parent: pulumi.Resource
) -> bool | None:
    """Whether the Helm release is installed, read from the cluster only when it matters (ARM
    reports the connected registry activated) and the cluster may be contacted (not cloud-only).
    None when not read or unreadable: then nothing is deactivated."""
    if site.cloud_only or activation_status != "Active":
        return None
    read = reader(
        ReleaseTarget(
            namespace=site.namespace,
            release_name=site.release_name,
            kubeconfig=site.kubeconfig.get_secret_value() if site.kubeconfig else None,
            kubeconfig_path=str(site.kubeconfig_path) if site.kubeconfig_path else None,
            context=site.kube_context,
        )
    )
    if read.installed is None:
        pulumi.log.warn(
            f"could not read whether Helm release {site.namespace}/{site.release_name} is installed "
            f"({read.error}); if it is not, its install fails with ALREADY_ACTIVATED: deactivate the "
            "connected registry first (docs/runbooks.md, \"Reinstall a site's cluster\")",
            resource=parent,
        )
    return read.installed


def site_tls(
    name: str, site: SiteConfig, parent: pulumi.Resource, node_reads: dict[str, Any] | None = None
) -> SiteTls | None:
    """The site's https material (None for an http site), from what the config brings;
    ``node_reads``: what was read on each live node (a new CA waits until they all trust it)."""
    if site.http_enabled or site.service_cluster_ip is None:
        return None

    def secret(value: Any) -> pulumi.Output[str] | None:
        return pulumi.Output.secret(value.get_secret_value()) if value is not None else None

    check_brought_expiry(
        {"tlsCertificate": site.tls_certificate, "tlsCaCertificate": site.tls_ca_certificate},
        site.certificate_renew_before_days, parent,
    )
    return SiteTls(
        f"{name}-tls",
        SiteTlsArgs(
            site=name,
            cluster_ip=site.service_cluster_ip,
            dns_names=service_dns_names(site.effective_service_name, site.namespace),
            validity_days=site.certificate_validity_days,
            renew_before_days=site.certificate_renew_before_days,
            ca_certificate=secret(site.tls_ca_certificate),
            ca_key=secret(site.tls_ca_key),
            certificate=secret(site.tls_certificate),
            key=secret(site.tls_key),
            node_reads=dict(node_reads or {}),
        ),
        opts=pulumi.ResourceOptions(parent=parent),
    )


def site_outputs(site: Site) -> dict[str, Any]:
    """The stack outputs operators and other stacks read; credentials are secrets."""
    return {
        "connectedRegistryId": site.azure.connected_registry_id,
        "connectedRegistryName": site.azure.connected_registry_name,
        "gatewayEndpoint": site.azure.gateway_endpoint,
        "syncTokenName": site.azure.sync_token_name,
        "clientTokenName": site.azure.client_token_name,
        "clientPassword": pulumi.Output.secret(site.azure.client_password),
        "connectionString": pulumi.Output.secret(site.azure.connection_string),
        "syncPasswordRotation": site.azure.sync_password_rotation,
        "clientPasswordRotation": site.azure.client_password_rotation,
        "registryEndpoint": site.onprem.endpoint,
        "releaseName": site.onprem.release_name,
        "releaseNamespace": site.onprem.release_namespace,
        "releaseStatus": site.onprem.release_status,
        "pullSecretNames": site.pull_secrets.secret_names,
    }


def local_file_problems(site: SiteConfig) -> list[str]:
    """Files the config names on the machine running pulumi (the offline render, which runs
    anywhere, reports them as notes): the kubeconfig path must exist and be a kubeconfig, and
    have the context the provider will use (components/config/cluster.py)."""
    kubeconfig = site.kubeconfig.get_secret_value() if site.kubeconfig is not None else None
    return kubeconfig_problems(site.kubeconfig_path, site.kube_context, kubeconfig)


def build(
    values: dict[str, Any],
    catalog: CatalogSource = azure_catalog,
    check_local_files: bool = False,
    secrets: StackConfig | None = None,
    node_reader: NodeReader | None = None,
    sync_status_reader: SyncStatusReader | None = None,
    release_reader: ReleaseReader | None = None,
) -> Site:
    """Validate config values (as Pulumi passes them) and declare the site; raises ConfigError,
    or NodesUnreadable under ``pulumi up``.

    ``secrets`` says which values are secrets (:func:`components.config.stack.read_stack_config`).
    Key names outside this project's namespace are checked too (``azure-native:locaton``).
    ``node_reader`` reads the nodes (default: over SSH); ``sync_status_reader`` reads the
    connected registry's sync status (default: ARM); ``release_reader`` whether the Helm release
    is installed (default: the cluster's API); the offline render and tests pass fakes.
    """
    secret_keys = secrets.secret_keys if secrets is not None else frozenset()
    site_config = load_site_config(values, secret_keys, other_config_keys())
    if check_local_files and (problems := local_file_problems(site_config)):
        raise ConfigError(problems)
    return Site(
        pulumi.get_stack(),
        site_config,
        catalog,
        secrets=secrets,
        node_reader=node_reader,
        sync_status_reader=sync_status_reader,
        release_reader=release_reader,
    )


def run(catalog: CatalogSource = azure_catalog) -> Site:
    """The program: validate the stack's config, build the site and export its outputs.

    A config problem ends the run with every problem listed and no traceback.
    """
    try:
        # The working directory of a Pulumi program is the project directory.
        stack = read_stack_config(Path.cwd())
        site = build(stack.values, catalog, check_local_files=True, secrets=stack)
    except ConfigError as error:
        raise pulumi.RunError("invalid site configuration:\n" + "\n".join(error.problems)) from None
    except NodesUnreadable as error:
        raise pulumi.RunError("nodes could not be read or used; nothing was changed:\n" + str(error)) from None
    for key, value in site_outputs(site).items():
        pulumi.export(key, value)
    return site
