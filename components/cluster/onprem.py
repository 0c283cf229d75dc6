"""The on-prem half of a site: the connected-registry Helm release on the site's k3s cluster.

Replaces the manual procedure's `kubectl create namespace … | kubectl apply`, `helm upgrade
--install --wait --set …` and `kubectl get service … -o jsonpath={.spec.clusterIP}`.
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

#: Microsoft's connected-registry chart (public on MCR, so no repository credentials).
CHART = "oci://mcr.microsoft.com/acr/connected-registry/chart"
#: Ports the chart serves on: plain http, or https with its TLS settings.
HTTP_PORT = 80
HTTPS_PORT = 443


def format_endpoint(host: str, port: int) -> str:
    """`host:port`, with an IPv6 address in brackets (`[fd00::10]:80`) as image references need."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return f"{host}:{port}"
    return f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"


def merge_values(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge two Helm value trees; `override` wins on every leaf it sets.

    Nested mappings merge key by key (like Helm's own `-f a.yaml -f b.yaml`), so a passthrough
    `sync.foo` survives next to the program's `sync.chunkSizeInMb`.
    """
    # New containers, same leaves: a leaf may be a secret Output, which must not be deep-copied.
    merged: dict[str, Any] = {k: _copy_tree(v) for k, v in base.items()}
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_values(merged[key], value)
        else:
            merged[key] = value
    return merged


def _copy_tree(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy_tree(v) for v in value]
    return value


@dataclass(kw_only=True)
class OnPremInstallArgs:
    """Arguments of :class:`OnPremInstall`; the site's config model has validated them."""

    #: Kubeconfig content (secret). Exactly one of this and `kubeconfig_path`.
    kubeconfig: pulumi.Input[str] | None = None
    #: Path of a kubeconfig file on the machine running Pulumi.
    kubeconfig_path: str | None = None
    #: Kubeconfig context; the file's current context when unset.
    kube_context: str | None = None
    #: Namespace of the install; created, or adopted when it exists.
    namespace: str = "connected-registry"
    #: Helm release name.
    release_name: str
    #: Chart version; the config model's default and its floor for a pinned ClusterIP apply.
    chart_version: str
    #: How long Helm waits for the release's resources to become ready.
    timeout_seconds: int
    #: Serve plain http on port 80 (otherwise https on 443).
    http_enabled: bool
    #: `sync.chunkSizeInMb`: low on slow or unstable links.
    chunk_size_in_mb: int
    #: `pvc.storageClassName` (`local-path` on k3s).
    storage_class_name: str
    #: `pvc.storageRequest`, e.g. `20Gi`.
    storage_request: str
    #: Pinned `service.clusterIP`; keeps the nodes' registries.yaml stable across reinstalls.
    service_cluster_ip: str | None = None
    #: Other chart values, passed through; the program's own values win.
    extra_values: dict[str, Any] = field(default_factory=dict)
    #: Connection string from the Azure side (secret).
    connection_string: pulumi.Input[str]
    #: Name of the chart's Service, looked up when no ClusterIP is pinned. The site passes
    #: ``serviceName``, whose default is the connected registry's name: the chart names its
    #: Service after it, not after the release (docs/runbooks.md, "The registry's endpoint").
    service_name: str
    #: https: the server certificate, PEM (the chart's `tls.crt`, base64). Required for https.
    tls_certificate: pulumi.Input[str] | None = None
    #: https: its private key, PEM (the chart's `tls.key`, base64; secret). Required for https.
    tls_key: pulumi.Input[str] | None = None
    #: Resources the release waits for (the site's pre-install deactivation).
    install_after: Sequence[pulumi.Resource] = ()
    #: Adopting a site: import the release that exists (id ``namespace/name``) instead of installing it.
    import_existing: bool = False

    def __post_init__(self) -> None:
        if (self.kubeconfig is None) == (self.kubeconfig_path is None):
            raise ValueError("OnPremInstallArgs: set exactly one of kubeconfig and kubeconfig_path")
        if self.service_cluster_ip is not None:
            # Normalised so the endpoint, the chart value and registries.yaml spell it the same.
            self.service_cluster_ip = str(ipaddress.ip_address(self.service_cluster_ip))
        if not self.service_name:
            raise ValueError("OnPremInstallArgs: service_name is required (edge-registry:serviceName)")
        if self.timeout_seconds <= 0:
            raise ValueError("OnPremInstallArgs: timeout_seconds must be positive")
        if not self.http_enabled and (self.tls_certificate is None or self.tls_key is None):
            raise ValueError("OnPremInstallArgs: https needs tls_certificate and tls_key")

    @property
    def scheme(self) -> str:
        """`http` or `https`, as the chart serves."""
        return "http" if self.http_enabled else "https"

    @property
    def port(self) -> int:
        """The port the chart's Service listens on."""
        return HTTP_PORT if self.http_enabled else HTTPS_PORT

    def chart_values(self, connection_string: pulumi.Input[str]) -> dict[str, Any]:
        """The release's values: `extra_values` overlaid with the values this program manages."""
        managed: dict[str, Any] = {
            "connectionString": connection_string,
            "httpEnabled": self.http_enabled,
            "sync": {"chunkSizeInMb": self.chunk_size_in_mb},
            "pvc": {"storageClassName": self.storage_class_name, "storageRequest": self.storage_request},
        }
        if self.service_cluster_ip is not None:
            managed["service"] = {"clusterIP": self.service_cluster_ip}
        if not self.http_enabled and self.tls_certificate is not None and self.tls_key is not None:
            # The chart's https install (0.1.0-0.3.0 docs): base64 of the PEM texts. Both secret:
            # the key is, and a certificate the site brought was set with --secret.
            managed["tls"] = {"crt": _base64_secret(self.tls_certificate), "key": _base64_secret(self.tls_key)}
        return merge_values(self.extra_values, managed)


def _base64_secret(pem: pulumi.Input[str]) -> pulumi.Output[str]:
    return pulumi.Output.secret(pulumi.Output.from_input(pem).apply(
        lambda text: base64.b64encode(text.encode("utf-8")).decode("ascii")
    ))


class OnPremInstall(pulumi.ComponentResource):
    """Namespace + connected-registry Helm release on one cluster, and the endpoint it serves on."""

    #: Provider bound to the site's cluster; other site components use it too.
    provider: k8s.Provider
    #: The Helm release; the site chains deactivation of the connected registry to it.
    release: k8s.helm.v3.Release
    #: `host:port` the registry serves on (the Service's ClusterIP and port).
    endpoint: pulumi.Output[str]
    #: `http` or `https`.
    scheme: str
    #: Release name and namespace as Helm reports them.
    release_name: pulumi.Output[str]
    release_namespace: pulumi.Output[str]
    #: Helm's status of the release (`deployed` after a good install).
    release_status: pulumi.Output[str]

    def __init__(self, name: str, args: OnPremInstallArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("edge-registry:index:OnPremInstall", name, {}, opts)
        self.scheme = args.scheme

        kubeconfig: pulumi.Input[str] = (
            pulumi.Output.secret(args.kubeconfig) if args.kubeconfig is not None else str(args.kubeconfig_path)
        )
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=kubeconfig,
            context=args.kube_context,
            enable_server_side_apply=True,
            # The provider now creates with a plain create that fails on an existing object
            # (pulumi/pulumi-kubernetes#4278); the manual procedure's `kubectl apply` adopts it.
            # Upsert restores that for the namespaces below and the pull secrets.
            upsert_existing_objects=True,
            # A Secret's new data (the pull secrets' client password after a rotation) is an
            # update in place. Without it pulumi-kubernetes replaces the Secret, deleting the
            # named object first, and pods scheduled meanwhile fail to pull (tests/engine/README.md,
            # "Stand-in providers: kubernetes").
            enable_secret_mutable=True,
            opts=pulumi.ResourceOptions(parent=self),
        )
        k8s_opts = pulumi.ResourceOptions(parent=self, provider=self.provider)

        # Idempotent like `kubectl apply`: with upsert_existing_objects the provider creates by
        # server-side apply, which creates a missing namespace and adopts an existing one (taking
        # ownership only of the fields declared here). Retained on delete: an adopted namespace
        # may hold things this program never created, and deleting a namespace deletes them all.
        self.namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={"name": args.namespace},
            opts=pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(retain_on_delete=True)),
        )

        #: Chart values that hold a secret (the SDK marks the whole `values` secret; the offline
        #: render masks only these).
        self.secret_value_paths: tuple[str, ...] = ("connectionString",)
        self.release = k8s.helm.v3.Release(
            f"{name}-release",
            chart=CHART,
            version=args.chart_version,
            # Explicit name and namespace make the chart's Service name predictable.
            name=args.release_name,
            namespace=args.namespace,
            create_namespace=False,
            values=args.chart_values(pulumi.Output.secret(args.connection_string)),
            atomic=True,
            skip_await=False,
            timeout=args.timeout_seconds,
            opts=pulumi.ResourceOptions.merge(
                k8s_opts,
                pulumi.ResourceOptions(
                    depends_on=[self.namespace, *args.install_after],
                    # Only one on-prem instance may be active (ALREADY_ACTIVATED): the old release
                    # goes, and the site deactivates it, before a replacement is installed.
                    delete_before_replace=True,
                    # The connection string is in `values`; keep the whole output secret too.
                    additional_secret_outputs=["values"],
                    import_=f"{args.namespace}/{args.release_name}" if args.import_existing else None,
                ),
            ),
        )
        status = self.release.status
        self.release_name = status.apply(lambda s: _field(s, "name"))
        self.release_namespace = status.apply(lambda s: _field(s, "namespace"))
        self.release_status = status.apply(lambda s: _field(s, "status"))

        port = args.port
        if args.service_cluster_ip is not None:
            # Known before anything is deployed, so previews show the real endpoint.
            self.endpoint = pulumi.Output.from_input(format_endpoint(args.service_cluster_ip, port))
        else:
            # The Service the chart made (its name is config: serviceName). Its id comes from the
            # release's: in a preview of a new release that id is unknown, so the engine skips
            # the read (the endpoint is unknown until the chart is installed) instead of failing
            # on a Service that does not exist yet; otherwise the read runs after Helm has
            # finished. A Service that is not there stops the run with the engine's "resource
            # '<namespace>/<name>' does not exist" (docs/runbooks.md, "The registry's endpoint").
            service_id = f"{args.namespace}/{args.service_name}"
            service = k8s.core.v1.Service.get(
                f"{name}-service",
                self.release.id.apply(lambda _: service_id),
                opts=pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(depends_on=[self.release])),
            )
            self.endpoint = service.spec.apply(lambda spec: format_endpoint(_cluster_ip(service_id, spec), port))

        self.register_outputs(
            {
                "endpoint": self.endpoint,
                "scheme": self.scheme,
                "release_name": self.release_name,
                "release_namespace": self.release_namespace,
                "release_status": self.release_status,
            }
        )


def _field(value: Any, name: str) -> Any:
    """`name` of an SDK output object, or of the plain mapping a read may hand back instead."""
    if isinstance(value, Mapping):
        return value.get(name)
    return getattr(value, name, None)


def _cluster_ip(service_id: str, spec: Any) -> str:
    """The Service's ClusterIP; an error naming namespace/name and the keys when it has none.

    Under the real engine a Service that does not exist never gets here: the read fails first
    with the engine's "resource '<namespace>/<name>' does not exist" (docs/runbooks.md, "The
    registry's endpoint"); an empty read (the offline render's fakes) does.
    """
    if spec is None:
        # RunError: the language host reports it as its message alone, without a traceback.
        raise pulumi.RunError(
            f"edge-registry:serviceName: no Service {service_id} (namespace/name) after the chart was "
            "installed: set edge-registry:serviceName to the chart's Service, or pin edge-registry:serviceClusterIP"
        )
    cluster_ip = _field(spec, "cluster_ip")
    if not cluster_ip or cluster_ip == "None":
        raise pulumi.RunError(
            f"edge-registry:serviceName: Service {service_id} has no ClusterIP; pin edge-registry:serviceClusterIP "
            "or set edge-registry:serviceName to the chart's Service"
        )
    return str(cluster_ip)
