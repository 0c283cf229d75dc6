"""Pull secrets: the credentials workloads use to pull from the site's connected registry.

The manual procedure's `kubectl create secret docker-registry`, one Secret per application
namespace, optionally referenced from the namespace's `default` ServiceAccount so that pods
need no `imagePullSecrets` of their own.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

#: Secret type the kubelet reads registry credentials from.
DOCKERCONFIGJSON_TYPE = "kubernetes.io/dockerconfigjson"
#: The key a `kubernetes.io/dockerconfigjson` Secret must carry.
DOCKERCONFIGJSON_KEY = ".dockerconfigjson"
#: The ServiceAccount pods use when they name none.
DEFAULT_SERVICE_ACCOUNT = "default"


def dockerconfigjson(endpoint: str, username: str, password: str, login_server: str | None = None) -> str:
    """The `.dockerconfigjson` document for the site registry, as `kubectl create secret docker-registry` writes it.

    `endpoint` is `host:port` with no scheme: containerd and the kubelet match the `auths` key
    against the registry part of the image reference (`10.43.0.10:443/app:1`), port included, so a
    scheme or path in the key would never match. `login_server` (`<registry>.azurecr.io`) adds the
    same credentials under the parent's name, for images referenced by it: the nodes mirror that
    name to the site registry, and the client token is valid in the cloud too when containerd
    falls back to it (docs/nodes.md, "HTTPS and one image name"). `auth` is
    base64("user:password"), which registries split at the first colon — hence no colon in the
    user name.
    """
    registries = [endpoint] if login_server is None else [endpoint, login_server]
    for registry in registries:
        if not registry or "://" in registry or "/" in registry or any(c.isspace() for c in registry):
            raise ValueError(f"registry must be host:port (or a DNS name) without scheme or path, got {registry!r}")
    if not username or ":" in username:
        raise ValueError("registry user name must be non-empty and contain no ':'")
    if not password:
        raise ValueError("registry password must be non-empty")
    auth = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    entry = {"username": username, "password": password, "auth": auth}
    document = {"auths": {registry: dict(entry) for registry in registries}}
    return json.dumps(document, separators=(",", ":"))


def merged_pull_secret_refs(existing: Sequence[Any] | None, secret_name: str) -> list[dict[str, str]]:
    """`existing` imagePullSecrets references with `secret_name` appended once, order kept.

    `existing` items are `{"name": ...}` mappings or the SDK's output objects with a `name`.
    """
    names: list[str] = []
    for ref in existing or ():
        name = ref.get("name") if isinstance(ref, Mapping) else getattr(ref, "name", None)
        if name and name not in names:
            names.append(name)
    if secret_name not in names:
        names.append(secret_name)
    return [{"name": name} for name in names]


@dataclass(kw_only=True)
class PullSecretsArgs:
    """Arguments of :class:`PullSecrets`."""

    #: The site's Kubernetes provider: :class:`components.cluster.onprem.OnPremInstall`'s, whose
    #: `upsert_existing_objects` lets an existing namespace or Secret be adopted.
    provider: k8s.Provider
    #: Application namespaces that get a pull secret.
    namespaces: list[str]
    #: Name of the Secret in every namespace.
    secret_name: str
    #: The registry endpoint, `host:port` (the on-prem install's `endpoint`).
    endpoint: pulumi.Input[str]
    #: The parent registry's login server (`<registry>.azurecr.io`): the other image-name form.
    login_server: pulumi.Input[str] | None = None
    #: Client token name.
    username: pulumi.Input[str]
    #: Client token password (secret).
    password: pulumi.Input[str]
    #: Create the namespaces that do not exist yet (existing ones are adopted).
    create_namespaces: bool = False
    #: Add the secret to each namespace's `default` ServiceAccount `imagePullSecrets`.
    patch_default_service_account: bool = False
    #: Read each `default` ServiceAccount to keep its other pull secrets. False only when the
    #: cluster cannot be reached and the patches are held (components/cloud_only.py): the patch
    #: then declares just this secret, an input the held resource ignores.
    read_service_accounts: bool = True


class PullSecrets(pulumi.ComponentResource):
    """One `kubernetes.io/dockerconfigjson` Secret per application namespace."""

    #: Secret name per namespace.
    secret_names: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, args: PullSecretsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("edge-registry:index:PullSecrets", name, {}, opts)
        k8s_opts = pulumi.ResourceOptions(parent=self, provider=args.provider)

        # Secret end to end: the document holds the password, and Output.secret keeps it out of
        # state and logs in plain text whatever the caller passed in.
        document: pulumi.Output[str] = pulumi.Output.secret(
            pulumi.Output.all(args.endpoint, args.username, args.password, args.login_server).apply(
                lambda parts: dockerconfigjson(parts[0], parts[1], parts[2], parts[3])
            )
        )
        encoded = document.apply(lambda text: base64.b64encode(text.encode()).decode("ascii"))

        self.secret_names = {}
        for namespace in dict.fromkeys(args.namespaces):
            depends_on: list[pulumi.Resource] = []
            created: k8s.core.v1.Namespace | None = None
            if args.create_namespaces:
                # Adopted, not duplicated: the provider's upsert_existing_objects makes the create
                # a server-side apply onto an existing namespace. Retained on delete: the namespace
                # holds the applications, which this program does not own.
                created = k8s.core.v1.Namespace(
                    f"{name}-ns-{namespace}",
                    metadata={"name": namespace},
                    opts=pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(retain_on_delete=True)),
                )
                depends_on.append(created)

            # `data` (base64) rather than `stringData`: what the API server stores, so there is no
            # write-only field for diffs to trip over. The SDK also marks `data` a secret output.
            secret = k8s.core.v1.Secret(
                f"{name}-{namespace}",
                metadata={"name": args.secret_name, "namespace": namespace},
                type=DOCKERCONFIGJSON_TYPE,
                data={DOCKERCONFIGJSON_KEY: encoded},
                opts=pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(depends_on=depends_on)),
            )
            self.secret_names[namespace] = secret.metadata.apply(
                lambda meta: meta.get("name") if isinstance(meta, Mapping) else meta.name
            )

            if args.patch_default_service_account:
                self._reference_from_default_service_account(
                    name, namespace, args.secret_name, secret, created, k8s_opts, args.read_service_accounts
                )

        self.register_outputs({"secret_names": self.secret_names})

    def _reference_from_default_service_account(
        self,
        name: str,
        namespace: str,
        secret_name: str,
        secret: k8s.core.v1.Secret,
        created: k8s.core.v1.Namespace | None,
        k8s_opts: pulumi.ResourceOptions,
        read_live: bool = True,
    ) -> None:
        """Add `secret_name` to the `default` ServiceAccount's imagePullSecrets, keeping the others.

        `imagePullSecrets` is an *atomic* list for server-side apply (`x-kubernetes-list-type:
        atomic` in the Kubernetes schema; strategic merge patch replaces it too): a patch carrying
        only our entry would either conflict with the manager that set the list or, forced,
        replace it. So the live list is read first and the patch applies the union — existing
        names in their order, ours appended once. The patch is forced because the list as a whole
        may belong to another field manager (kubectl, an operator); nothing is lost because the
        applied value contains every entry that was there.
        """
        refs: pulumi.Input[list[k8s.core.v1.LocalObjectReferencePatchArgs]]
        if not read_live:
            refs = [k8s.core.v1.LocalObjectReferencePatchArgs(name=ref["name"])
                    for ref in merged_pull_secret_refs([], secret_name)]
        else:
            refs = self._live_refs(name, namespace, secret_name, created, k8s_opts)
        k8s.core.v1.ServiceAccountPatch(
            f"{name}-{namespace}-default-sa",
            metadata=k8s.meta.v1.ObjectMetaPatchArgs(
                name=DEFAULT_SERVICE_ACCOUNT,
                namespace=namespace,
                annotations={"pulumi.com/patchForce": "true"},
            ),
            image_pull_secrets=refs,
            # Retained on delete: this patch owns the whole atomic list, so relinquishing it would
            # drop the other entries too. A removed site leaves one reference to a deleted Secret,
            # which the kubelet skips with a warning.
            opts=pulumi.ResourceOptions.merge(
                k8s_opts, pulumi.ResourceOptions(depends_on=[secret], retain_on_delete=True)
            ),
        )

    @staticmethod
    def _live_refs(
        name: str,
        namespace: str,
        secret_name: str,
        created: k8s.core.v1.Namespace | None,
        k8s_opts: pulumi.ResourceOptions,
    ) -> pulumi.Output[list[k8s.core.v1.LocalObjectReferencePatchArgs]]:
        """The live `default` ServiceAccount's imagePullSecrets with `secret_name` added."""
        sa_id: pulumi.Input[str] = f"{namespace}/{DEFAULT_SERVICE_ACCOUNT}"
        if created is not None:
            # Keyed on the namespace's id, which is unknown in a preview that creates it, so that
            # preview does not read a ServiceAccount that is not there yet (the engine skips a read
            # whose id is unknown). Not its uid: pulumi-kubernetes previews a create as a
            # server-side dry run, whose answer carries a uid (tests/engine/README.md,
            # "Stand-in providers: kubernetes").
            sa_id = pulumi.Output.all(created.id, created.metadata.name).apply(
                lambda parts: f"{parts[1]}/{DEFAULT_SERVICE_ACCOUNT}"
            )
        live = k8s.core.v1.ServiceAccount.get(f"{name}-{namespace}-default-sa-live", sa_id, opts=k8s_opts)
        refs = live.image_pull_secrets.apply(
            lambda existing: [
                k8s.core.v1.LocalObjectReferencePatchArgs(name=ref["name"])
                for ref in merged_pull_secret_refs(existing, secret_name)
            ]
        )
        return refs
