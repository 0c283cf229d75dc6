"""Stand-in for the pulumi-kubernetes provider plugin: exactly what edge-registry uses, on a cluster
that is a local JSON file.

The program (components/cluster/onprem.py, components/cluster/pull_secrets.py, components/site.py)
uses: explicit providers (``pulumi:providers:kubernetes`` with ``kubeconfig``/``context``),
``core/v1`` Namespace and Secret, ``ServiceAccount.get`` and ``ServiceAccountPatch``,
``helm.sh/v3:Release`` and ``Service.get`` of the chart's Service. Anything else is refused.

Upstream behaviour is cited as ``provider.go Diff`` and the like: files under
``provider/pkg/provider/`` of github.com/pulumi/pulumi-kubernetes at commit 94977969d (main after
v4.32.0; the stored snapshot has no v4.34.2 tag, the version the installed SDK asks for). What is
not emulated: chart rendering (the release "creates" the one Service the connected-registry chart
makes, see :func:`chart_service`), await logic, field-manager conflicts, client-side apply
details, yaml render mode.

**The cluster** is a JSON file, path from ``EDGE_REGISTRY_STANDIN_K8S_STATE``, else derived from
the provider's kubeconfig (a path: ``<path>.standin-k8s.json``; contents: a file in the temporary
directory named after the active cluster's server). Every access holds an ``flock`` on
``<file>.lock``; writes are atomic renames. Shape (tests may pre-seed any part)::

    {"objects": {"Namespace/apps": {...}, "Secret/apps/pull": {...}, "Service/ns/name": {...}},
     "releases": {"ns/name": {"name", "namespace", "chart", "version", "appVersion", "values",
                  "revision", "status", "resources": ["Service/ns/name"]}},
     "serviceCIDR": "10.43.0.0/16",            # k3s' default; the chart's clusterIP must be in it
     "chart": {"serviceName": "...", "name": "...", "appVersion": "...", "version": "..."},  # overrides
     "faults": [...], "resourceVersion": 7}

**Faults** (:func:`take_fault`): entries of ``faults`` in the file, or a JSON list in
``EDGE_REGISTRY_STANDIN_K8S_FAULTS``: ``{"op": "create"|"update"|"delete"|"read", "type": token or
kind ("Release", "Secret"), "name": object or release name, "error": message, "sleep": seconds,
"times": n (file entries only: used up then removed), "preview": false}``. All keys but ``op`` are
optional; a fault without ``error`` only delays. Faults hit real operations, not previews, unless
``"preview": true``.
"""

from __future__ import annotations

import base64
import copy
import fcntl
import hashlib
import ipaddress
import json
import os
import re
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import any_pb2, empty_pb2
from google.rpc import status_pb2
from pulumi.runtime.proto import provider_pb2

from tests.engine.standin.plugin import (
    UNKNOWN,
    Failure,
    Provider,
    has_unknown,
    is_secret,
    name_of,
    plain,
    secret,
    serve,
    to_dict,
    to_struct,
    type_of,
)

STATE_ENV = "EDGE_REGISTRY_STANDIN_K8S_STATE"
FAULTS_ENV = "EDGE_REGISTRY_STANDIN_K8S_FAULTS"
RELEASE = "kubernetes:helm.sh/v3:Release"
PROVIDER = "pulumi:providers:kubernetes"
SERVICE_CIDR = "10.43.0.0/16"  # k3s' --service-cidr default
# provider.go: the checkpoint keys stored beside the live object.
INPUTS_KEY, API_VERSION_KEY, FIELD_MANAGER_KEY = "__inputs", "__initialApiVersion", "__fieldManager"
PropertyDiff = provider_pb2.PropertyDiff


def sdk_version() -> str:
    """The plugin version the installed SDK asks for (its pulumi-plugin.json)."""
    try:
        import pulumi_kubernetes

        meta = Path(pulumi_kubernetes.__file__).parent / "pulumi-plugin.json"
        return str(json.loads(meta.read_text())["version"])
    except (ImportError, OSError, KeyError, ValueError):
        return "4.34.2"


# --------------------------------------------------------------------------------------------
# Kinds


@dataclass(frozen=True)
class Kind:
    api_version: str
    kind: str
    plural: str
    namespaced: bool
    patch: bool = False
    #: diff.go forceNew for this kind (beyond .metadata.name/.metadata.namespace, which every kind has).
    force_new: tuple[str, ...] = ()


KINDS: dict[str, Kind] = {
    "kubernetes:core/v1:Namespace": Kind("v1", "Namespace", "namespaces", namespaced=False),
    # diff.go `core` table: Secret ".type"; forceNewProperties adds ".stringData" and ".data" unless
    # enableSecretMutable is on and the Secret is not immutable (see Kubernetes.force_new).
    "kubernetes:core/v1:Secret": Kind("v1", "Secret", "secrets", namespaced=True, force_new=(".type",)),
    "kubernetes:core/v1:ServiceAccount": Kind("v1", "ServiceAccount", "serviceaccounts", namespaced=True),
    # provider.go Diff: "Patch resources can be updated in place for all other properties".
    "kubernetes:core/v1:ServiceAccountPatch": Kind("v1", "ServiceAccount", "serviceaccounts", namespaced=True,
                                                   patch=True),
    # diff.go `core` table: Service ".spec.clusterIP".
    "kubernetes:core/v1:Service": Kind("v1", "Service", "services", namespaced=True, force_new=(".spec.clusterIP",)),
}


def kind_of(token: str) -> Kind:
    try:
        return KINDS[token]
    except KeyError:
        raise Failure(f"the kubernetes stand-in does not implement {token!r} "
                      "(tests/engine/standin/kubernetes.py implements what the program uses)") from None


def object_key(kind: str, namespace: str | None, name: str) -> str:
    return f"{kind}/{namespace}/{name}" if namespace else f"{kind}/{name}"


def fq_name(namespace: str | None, name: str) -> str:
    """util.go fqName: ``namespace/name``, or the bare name of a cluster-scoped object."""
    return f"{namespace}/{name}" if namespace else name


def parse_fq_name(ident: str) -> tuple[str, str]:
    """util.go parseFqName."""
    parts = ident.split("/")
    return ("", parts[0]) if len(parts) == 1 else (parts[0], parts[1])


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def truthy(value: Any) -> bool:
    """A provider flag as the engine sends it: the SDK JSON-encodes booleans of provider inputs."""
    return value is True or (isinstance(value, str) and value.lower() == "true")


# --------------------------------------------------------------------------------------------
# The cluster: a JSON file under an flock


class Cluster:
    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def open(self) -> Iterator[dict[str, Any]]:
        """The state, exclusively; written back (atomically) if the block changed it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(f"{self.path}.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                text = self.path.read_text() if self.path.exists() else ""
                state = json.loads(text) if text.strip() else {}
                before = json.dumps(state, sort_keys=True)
                state.setdefault("objects", {})
                state.setdefault("releases", {})
                yield state
                if json.dumps(state, sort_keys=True) != before:
                    fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
                    with os.fdopen(fd, "w") as out:
                        json.dump(state, out, indent=2, sort_keys=True)
                        out.write("\n")
                    os.replace(tmp, self.path)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def next_resource_version(state: dict[str, Any]) -> str:
    state["resourceVersion"] = int(state.get("resourceVersion", 0)) + 1
    return str(state["resourceVersion"])


def new_metadata(state: dict[str, Any], metadata: dict[str, Any]) -> dict[str, Any]:
    """What the API server fills in on create."""
    return {**metadata, "uid": str(uuid.uuid4()), "resourceVersion": next_resource_version(state),
            "creationTimestamp": now()}


def take_fault(state: dict[str, Any], op: str, token: str, name: str, preview: bool) -> dict[str, Any] | None:
    """The first fault that matches; a file entry with ``times`` is used up."""
    try:
        env_faults = json.loads(os.environ.get(FAULTS_ENV) or "[]")
    except ValueError as err:
        raise Failure(f"{FAULTS_ENV}: not JSON: {err}") from None
    short = token.rsplit(":", 1)[-1]
    for source, faults in (("env", env_faults), ("file", state.get("faults") or [])):
        for fault in list(faults):
            if fault.get("op") != op or (preview and not fault.get("preview", False)):
                continue
            if fault.get("type") not in (None, token, short) or fault.get("name") not in (None, name):
                continue
            if source == "file" and "times" in fault:
                fault["times"] = int(fault["times"]) - 1
                if fault["times"] <= 0:
                    faults.remove(fault)
            return dict(fault)
    return None


# --------------------------------------------------------------------------------------------
# Value helpers


def deep_merge(base: Any, patch: Any) -> Any:
    """A server-side apply of ``patch`` onto ``base``: maps merge, everything else (lists too) is replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            out[key] = deep_merge(base.get(key), value) if key in base else copy.deepcopy(value)
        return out
    return copy.deepcopy(patch)


def drop_missing(live: dict[str, Any], old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Fields a manager applied before and no longer applies go (server-side apply ownership)."""
    out = dict(live)
    for key, value in old.items():
        if key not in new:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(new[key], dict) and isinstance(out.get(key), dict):
            out[key] = drop_missing(out[key], value, new[key])
    return out


def remove_paths(live: dict[str, Any], shape: dict[str, Any], keep: tuple[str, ...]) -> dict[str, Any]:
    out = dict(live)
    for key, value in shape.items():
        if key in keep:
            continue
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = remove_paths(out[key], value, ())
        else:
            out.pop(key, None)
    return out


def prune(source: Any, target: Any) -> Any:
    """util.go pruneMap/pruneSlice: the live value cut to the shape of the inputs."""
    if isinstance(source, dict) and isinstance(target, dict):
        return {k: prune(v, target[k]) for k, v in source.items() if k in target}
    if isinstance(source, list) and isinstance(target, list):
        if not source or not target:
            return []
        if type(source[0]) is not type(target[0]):
            return copy.deepcopy(source)
        return [prune(s, t) for s, t in zip(source, target, strict=False)]
    return source


def annotate_secrets(outputs: Any, inputs: Any) -> Any:
    """provider.go annotateSecrets: what was secret in the inputs is secret in the outputs."""
    if is_secret(inputs):
        inner = annotate_secrets(outputs.get("value") if is_secret(outputs) else outputs, inputs.get("value"))
        return secret(inner)
    if isinstance(outputs, dict) and isinstance(inputs, dict):
        return {k: annotate_secrets(v, inputs[k]) if k in inputs else v for k, v in outputs.items()}
    return outputs


def path_string(path: list[Any]) -> str:
    """provider.go addPatchValueToDiff's property path: ``data[".dockerconfigjson"]``, ``spec.ports[0]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif any(c in part for c in '."[]'):
            out += '["' + part.replace('"', '\\"') + '"]'
        else:
            out = f"{out}.{part}" if out else part
    return out


def force_new_hit(path: list[Any], value: Any, fields: tuple[str, ...]) -> bool:
    """openapi.PatchPropertiesChanged on the patch slice at ``path``: a force-new field is at or under
    the changed path (present in the patch value), or the changed path is under a force-new field."""
    keys = [p for p in path if isinstance(p, str)]
    for field in fields:
        want = field.lstrip(".").split(".")
        if keys[: len(want)] == want:
            return True
        if want[: len(keys)] == keys:
            rest: Any = value
            for part in want[len(keys):]:
                if not isinstance(rest, dict) or part not in rest:
                    break
                rest = rest[part]
            else:
                return True
    return False


MISSING = object()


def detailed_diff(old: Any, new: Any, path: list[Any], fields: tuple[str, ...], out: dict[str, Any]) -> None:
    """The JSON merge patch from ``old`` (pruned live, or old state) to ``new`` (inputs) as a detailed
    diff (provider.go convertPatchToDiff): keys only in ``old`` are deletes, nested maps recurse, arrays
    compare element by element, an unknown input is an update (or an add)."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            detailed_diff(old.get(key, MISSING), new.get(key, MISSING), [*path, key], fields, out)
        return
    if isinstance(old, list) and isinstance(new, list) and new != UNKNOWN:
        for i in range(max(len(old), len(new))):
            detailed_diff(old[i] if i < len(old) else MISSING, new[i] if i < len(new) else MISSING,
                          [*path, i], fields, out)
        return
    if new is MISSING and old is MISSING:
        return
    if new is MISSING:
        kind, input_diff = PropertyDiff.DELETE, True
    elif old is MISSING:
        kind, input_diff = PropertyDiff.ADD, False
    elif old == new and new != UNKNOWN:
        return
    else:
        kind, input_diff = PropertyDiff.UPDATE, False
    if force_new_hit(path, None if new is MISSING else new, fields):
        kind = {PropertyDiff.ADD: PropertyDiff.ADD_REPLACE, PropertyDiff.DELETE: PropertyDiff.DELETE_REPLACE,
                PropertyDiff.UPDATE: PropertyDiff.UPDATE_REPLACE}[kind]
    out[path_string(path)] = PropertyDiff(kind=kind, inputDiff=input_diff)


def ignored(path: str, ignore_changes: list[str]) -> bool:
    return any(path == ig or path.startswith(ig + ".") or path.startswith(ig + "[") for ig in ignore_changes)


REPLACE_KINDS = (PropertyDiff.ADD_REPLACE, PropertyDiff.DELETE_REPLACE, PropertyDiff.UPDATE_REPLACE)


# --------------------------------------------------------------------------------------------
# Kubeconfig (DiffConfig's "active cluster", and the default state file)


def load_kubeconfig(value: Any) -> dict[str, Any] | None:
    """util.go parseKubeconfigString: a path to a file, else the contents (YAML or JSON)."""
    if value in (None, "") or value == UNKNOWN:
        return None
    if isinstance(value, dict):
        return value
    text = str(value)
    if text == "~" or text.startswith("~/"):
        text = os.path.expanduser(text)
    if "\n" not in text and os.path.isfile(text):
        text = Path(text).read_text()
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise Failure(f"failed to parse kubeconfig: {err}") from None
    return config if isinstance(config, dict) else None


def active_cluster(config: dict[str, Any] | None, context: Any, cluster: Any) -> dict[str, Any] | None:
    """util.go getActiveClusterFromConfig: the cluster entry of the current (or overridden) context."""
    if not config or not config.get("clusters"):
        return None
    contexts = {c.get("name"): c.get("context") or {} for c in config.get("contexts") or []}
    clusters = {c.get("name"): c.get("cluster") or {} for c in config.get("clusters") or []}
    current = context if context not in (None, "") else config.get("current-context")
    if current not in contexts:
        return None
    name = cluster if cluster not in (None, "") else contexts[current].get("cluster")
    return clusters.get(name)


def default_state_path(kubeconfig: Any, context: Any) -> Path:
    if kubeconfig in (None, "") or kubeconfig == UNKNOWN:
        kubeconfig = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or os.path.expanduser("~/.kube/config")
    text = str(kubeconfig)
    if "\n" not in text and ": " not in text and not text.lstrip().startswith("{"):
        return Path(os.path.expanduser(text)).resolve().with_name(Path(text).name + ".standin-k8s.json")
    server = (active_cluster(load_kubeconfig(text), context, None) or {}).get("server", text)
    digest = hashlib.sha256(str(server).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"edge-registry-standin-k8s-{digest}.json"


# --------------------------------------------------------------------------------------------
# The chart


def chart_service(state: dict[str, Any], release: dict[str, Any]) -> tuple[str, str | None, int]:
    """The Service the connected-registry chart creates: (name, pinned clusterIP, port).

    docs/azure.md ("The Helm chart") and components/cluster/onprem.py: the chart names its Service
    after the connected registry (the ``ConnectedRegistryName`` of ``connectionString``), not the
    release; ``service.clusterIP`` pins its ClusterIP (chart >= 0.3.0); http serves on 80, https on
    443. ``chart.serviceName`` in the state file overrides the name (a chart that differs)."""
    values = release.get("values") or {}
    name = (state.get("chart") or {}).get("serviceName")
    if not name:
        match = re.search(r"(?:^|;)ConnectedRegistryName=([^;]+)", str(values.get("connectionString") or ""))
        name = match.group(1).lower() if match else release["name"]
    pinned = (values.get("service") or {}).get("clusterIP")
    port = 80 if truthy(values.get("httpEnabled")) else 443
    return name, pinned, port


def chart_name(ref: str) -> str:
    """The chart's own name (its Chart.yaml) as far as the reference shows it: the last path part,
    or the one before a trailing ``chart`` (``oci://mcr.microsoft.com/acr/connected-registry/chart``)."""
    parts = [p for p in re.split(r"[/:]", ref) if p]
    if len(parts) > 1 and parts[-1] == "chart":
        return parts[-2]
    return parts[-1] if parts else ""


def allocate_ip(state: dict[str, Any], namespace: str, name: str, pinned: str | None) -> str:
    """The API server's ClusterIP allocation and its 422s (docs/config-rules.md: a free IP inside the service CIDR)."""
    cidr = ipaddress.ip_network(state.get("serviceCIDR", SERVICE_CIDR))
    used = {
        (obj.get("spec") or {}).get("clusterIP"): key
        for key, obj in state["objects"].items() if key.startswith("Service/")
    }
    mine = object_key("Service", namespace, name)
    if pinned:
        invalid = f'Service "{name}" is invalid: spec.clusterIP: Invalid value: "{pinned}"'
        try:
            address = ipaddress.ip_address(pinned)
        except ValueError:
            raise Failure(f"{invalid}: must be a valid IP address") from None
        if address not in cidr:
            raise Failure(f"{invalid}: provided IP is not in the valid range. The range of valid IPs is {cidr}")
        if used.get(str(address), mine) != mine:
            raise Failure(f"{invalid}: provided IP is already allocated")
        return str(address)
    for host in list(cidr.hosts())[15:]:
        if str(host) not in used:
            return str(host)
    raise Failure(f"Service \"{name}\" is invalid: spec.clusterIP: Internal error: range is full")


def install_chart(state: dict[str, Any], release: dict[str, Any]) -> list[str]:
    """Create or upgrade the chart's objects; returns their state keys."""
    namespace = release["namespace"]
    name, pinned, port = chart_service(state, release)
    key = object_key("Service", namespace, name)
    existing = state["objects"].get(key)
    if existing is not None and pinned and existing["spec"].get("clusterIP") != pinned:
        raise Failure(f'cannot patch "{name}" with kind Service: Service "{name}" is invalid: spec.clusterIP: '
                      f'Invalid value: "{pinned}": field is immutable')
    cluster_ip = existing["spec"]["clusterIP"] if existing is not None else allocate_ip(state, namespace, name, pinned)
    scheme = "http" if port == 80 else "https"
    metadata = {
        "name": name, "namespace": namespace,
        "labels": {"app.kubernetes.io/managed-by": "Helm", "app.kubernetes.io/instance": release["name"]},
        "annotations": {"meta.helm.sh/release-name": release["name"], "meta.helm.sh/release-namespace": namespace},
    }
    service: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": new_metadata(state, metadata) if existing is None else
        {**existing["metadata"], **metadata, "resourceVersion": next_resource_version(state)},
        "spec": {"type": "ClusterIP", "clusterIP": cluster_ip, "clusterIPs": [cluster_ip],
                 "ports": [{"name": scheme, "port": port, "protocol": "TCP", "targetPort": port}],
                 "selector": {"app.kubernetes.io/instance": release["name"]}},
        "status": {"loadBalancer": {}},
    }
    for old in release.get("resources", []):
        if old != key:
            state["objects"].pop(old, None)
    state["objects"][key] = service
    return [key]


# --------------------------------------------------------------------------------------------
# The Helm release's property shape (helm_release.go Release)

#: helm_release.go Release: the fields it decodes; anything else is dropped by Check.
RELEASE_FIELDS = (
    "allowNullValues", "atomic", "chart", "cleanupOnFail", "createNamespace", "dependencyUpdate",
    "description", "devel", "disableCRDHooks", "disableOpenapiValidation", "disableWebhooks",
    "forceUpdate", "keyring", "lint", "maxHistory", "name", "namespace", "postrender", "recreatePods",
    "renderSubchartNotes", "replace", "repositoryOpts", "resetValues", "reuseValues", "values",
    "skipCrds", "timeout", "verify", "version", "skipAwait", "waitForJobs",
)


def omitempty(value: Any) -> bool:
    return value is None or value is False or value == "" or value == 0 or value == {} or value == []


# --------------------------------------------------------------------------------------------
# The provider


class Kubernetes(Provider):
    name = "kubernetes"
    version = sdk_version()

    def __init__(self) -> None:
        super().__init__()
        self.variables: dict[str, str] = {}
        self.cluster: Cluster | None = None

    # ---- configuration

    def setting(self, key: str) -> Any:
        """A provider setting as provider.go Configure reads it: ``kubernetes:config:<key>``."""
        value = self.variables.get(f"kubernetes:config:{key}")
        return value if value is not None else self.config.get(key)

    def flag(self, key: str, env: str, default: bool = False) -> bool:
        """provider.go Configure: the provider argument wins, then the environment variable, then the default."""
        value = self.setting(key)
        if value is not None:
            return truthy(value)
        if env in os.environ:
            return os.environ[env] == "true"
        return default

    @property
    def server_side_apply(self) -> bool:
        return self.flag("enableServerSideApply", "PULUMI_K8S_ENABLE_SERVER_SIDE_APPLY", default=True)

    @property
    def upsert(self) -> bool:
        return self.flag("upsertExistingObjects", "PULUMI_K8S_UPSERT_EXISTING_OBJECTS")

    @property
    def secret_mutable(self) -> bool:
        return self.flag("enableSecretMutable", "PULUMI_K8S_ENABLE_SECRET_MUTABLE")

    @property
    def default_namespace(self) -> str:
        return str(self.setting("namespace") or "default")

    def Configure(self, request: Any, context: Any) -> provider_pb2.ConfigureResponse:
        response = super().Configure(request, context)
        self.variables = dict(request.variables)
        path = os.environ.get(STATE_ENV) or default_state_path(self.setting("kubeconfig"), self.setting("context"))
        self.cluster = Cluster(Path(path))
        return response

    def state(self) -> Cluster:
        if self.cluster is None:
            self.cluster = Cluster(Path(os.environ.get(STATE_ENV) or default_state_path(None, None)))
        return self.cluster

    def DiffConfig(self, request: Any, context: Any) -> provider_pb2.DiffResponse:
        """provider.go DiffConfig."""
        olds, news = plain(to_dict(request.olds)), plain(to_dict(request.news))
        if olds == news:
            return provider_pb2.DiffResponse(changes=provider_pb2.DiffResponse.DIFF_NONE)
        replaces: list[str] = []
        # A changed clusterIdentifier replaces; an unchanged one (set on both sides) suppresses every
        # replacement below. Adding or removing it replaces nothing.
        ident_old, ident_new = olds.get("clusterIdentifier"), news.get("clusterIdentifier")
        if ident_old is not None and ident_new is not None and ident_old != ident_new:
            replaces.append("clusterIdentifier")
        keep_cluster = ident_new is not None and ident_old == ident_new
        # "We can't tell for sure if a computed value has changed": an unknown kubeconfig, context or
        # cluster replaces (before the identifier rule, which never gets to suppress it).
        for key in ("kubeconfig", "context", "cluster"):
            if news.get(key) == UNKNOWN:
                return provider_pb2.DiffResponse(changes=provider_pb2.DiffResponse.DIFF_SOME, diffs=[key],
                                                 replaces=[*replaces, key])
        diffs = sorted(k for k in set(olds) | set(news) if olds.get(k) != news.get(k))
        if "renderYamlToDirectory" in diffs:
            replaces.append("renderYamlToDirectory")
        # "planning a replacement iff the active cluster in the kubeconfig changes": the cluster entry
        # (server, CA, ...) the current context points at, after the context/cluster overrides. A
        # kubeconfig *path* whose file changed is the same value, so no diff at all.
        old_cluster = active_cluster(load_kubeconfig(olds.get("kubeconfig")), olds.get("context"), olds.get("cluster"))
        new_cluster = active_cluster(load_kubeconfig(news.get("kubeconfig")), news.get("context"), news.get("cluster"))
        if old_cluster is not None and new_cluster is not None and old_cluster != new_cluster:
            replaces += [k for k in ("kubeconfig", "context", "cluster") if k in diffs]
        if keep_cluster:
            replaces = []
        return provider_pb2.DiffResponse(changes=provider_pb2.DiffResponse.DIFF_SOME, diffs=diffs, replaces=replaces)

    # ---- Check

    def Check(self, request: Any, context: Any) -> provider_pb2.CheckResponse:
        token = type_of(request)
        news = to_dict(request.news)
        olds = to_dict(request.olds)
        if token == RELEASE:
            return provider_pb2.CheckResponse(inputs=to_struct(self.check_release(request.urn, olds, news)))
        kind = kind_of(token)
        if kind.patch and not self.server_side_apply:
            # provider.go Check.
            raise Failure("patch resources require Server-Side Apply mode, which is enabled using the "
                          "`enableServerSideApply` Provider config")
        news.setdefault("apiVersion", kind.api_version)
        news.setdefault("kind", kind.kind)
        metadata = news.setdefault("metadata", {})
        if isinstance(metadata, dict) and not plain(metadata.get("name")) and not metadata.get("generateName"):
            if kind.patch:
                raise Failure("patch resources require the `.metadata.name` field to be set")
            old_name = plain((olds.get("metadata") or {}).get("name")) if isinstance(olds.get("metadata"), dict) else None
            # metadata.AssignNameIfAutonamable: <resource name>-<8 hex>, kept from the old inputs.
            metadata["name"] = old_name or f"{name_of(request.urn)}-{uuid.uuid4().hex[:8]}"
        return provider_pb2.CheckResponse(inputs=to_struct(news))

    def check_release(self, urn: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        """helm_release.go Check: adopt or assign the name, default namespace and timeout, resolve the
        chart version (only when nothing is unknown), and keep only the Release struct's non-empty fields."""
        if "name" not in news and olds.get("name"):
            news["name"] = olds["name"]
        if not news.get("name"):
            news["name"] = f"{name_of(urn)}-{uuid.uuid4().hex[:8]}"
        if not news.get("namespace"):
            news["namespace"] = self.default_namespace
        if not truthy(news.get("skipAwait")) and "timeout" not in news:
            news["timeout"] = 300  # helm_release.go defaultTimeoutSeconds
        if not has_unknown(news) and not news.get("version"):
            with self.state().open() as state:
                news["version"] = str((state.get("chart") or {}).get("version", "1.0.0"))
        return {k: v for k, v in news.items() if k in RELEASE_FIELDS and (k == "maxHistory" or not omitempty(v))}

    # ---- Diff

    def force_new(self, kind: Kind, inputs: dict[str, Any]) -> tuple[str, ...]:
        """diff.go forceNewProperties."""
        fields: tuple[str, ...] = (".metadata.name", ".metadata.namespace")
        if kind.patch:
            return fields
        if kind.kind == "Secret" and (not self.secret_mutable or truthy(inputs.get("immutable"))):
            return (*fields, ".type", ".stringData", ".data")
        return fields + kind.force_new

    def Diff(self, request: Any, context: Any) -> provider_pb2.DiffResponse:
        token = type_of(request)
        if token == RELEASE:
            return self.diff_release(request)
        kind = kind_of(token)
        olds = to_dict(request.olds)
        news = plain(to_dict(request.news))
        old_inputs = plain(olds.get(INPUTS_KEY) or {})
        live = {k: v for k, v in plain(olds).items() if not k.startswith("__")}
        # provider.go Diff: compare the new inputs with the live state pruned to the old inputs' shape.
        pruned = prune(live, old_inputs)
        if not isinstance(pruned.get("metadata"), dict):
            pruned["metadata"] = {}
        if not isinstance(news.get("metadata"), dict):
            news["metadata"] = {"name": UNKNOWN}  # unknown metadata: the name may change
        if kind.namespaced:
            pruned["metadata"]["namespace"] = pruned["metadata"].get("namespace") or "default"
            news["metadata"]["namespace"] = news["metadata"].get("namespace") or "default"
        else:
            pruned["metadata"].pop("namespace", None)
            news["metadata"].pop("namespace", None)
        if news["metadata"].get("name"):
            pruned["metadata"]["name"] = (live.get("metadata") or {}).get("name")
        # "Changing the identity of the resource always causes a replacement" (.metadata.name,
        # .metadata.namespace), plus the kind's forceNew fields.
        diff: dict[str, Any] = {}
        detailed_diff(pruned, news, [], self.force_new(kind, news), diff)
        diff = {k: v for k, v in diff.items() if not ignored(k, list(request.ignoreChanges))}
        replaces = sorted(k for k, v in diff.items() if v.kind in REPLACE_KINDS or (k == "metadata" and
                                                                                   v.kind == PropertyDiff.DELETE))
        live_meta = live.get("metadata") or {}
        # provider.go Diff: delete before replace when the replacement keeps its user-given name
        # and namespace (it could not be created beside the old object).
        delete_before_replace = bool(replaces) and bool(news["metadata"].get("name")) and \
            news["metadata"].get("name") == live_meta.get("name") and \
            news["metadata"].get("namespace") == (live_meta.get("namespace") if kind.namespaced else None)
        return provider_pb2.DiffResponse(
            changes=provider_pb2.DiffResponse.DIFF_SOME if diff else provider_pb2.DiffResponse.DIFF_NONE,
            replaces=replaces, deleteBeforeReplace=delete_before_replace,
            detailedDiff=diff, hasDetailedDiff=True,
        )

    def diff_release(self, request: Any) -> provider_pb2.DiffResponse:
        """helm_release.go Diff: a three-way patch (old inputs, new inputs, old state); only ``name``
        and ``namespace`` replace (everything else, values, version, chart included, is a helm
        upgrade); never delete-before-replace (the program asks for it with the resource option)."""
        olds = plain(to_dict(request.olds))
        news = plain(to_dict(request.news))
        old_inputs = {k: v for k, v in (olds.pop(INPUTS_KEY, None) or {}).items()
                      if k not in ("checksum", "resourceNames")}
        if "version" in request.ignoreChanges:
            news["version"] = olds.get("version")
        # CreateThreeWayMergePatch: changes from the old state to the new inputs for what the inputs
        # set, deletions for what the old inputs set and the new ones do not.
        current = {k: v for k, v in olds.items() if k in news or k in old_inputs}
        diff: dict[str, Any] = {}
        detailed_diff(current, news, [], (".name", ".namespace"), diff)
        diff = {k: v for k, v in diff.items() if not ignored(k, list(request.ignoreChanges))}
        top = sorted({re.split(r"[.\[]", k, maxsplit=1)[0] for k in diff})
        return provider_pb2.DiffResponse(
            changes=provider_pb2.DiffResponse.DIFF_SOME if diff else provider_pb2.DiffResponse.DIFF_NONE,
            replaces=sorted(k for k, v in diff.items() if v.kind in REPLACE_KINDS), diffs=top,
            deleteBeforeReplace=False, detailedDiff=diff, hasDetailedDiff=bool(diff),
        )

    # ---- faults

    def fault(self, op: str, token: str, name: str, preview: bool = False) -> dict[str, Any] | None:
        with self.state().open() as state:
            fault = take_fault(state, op, token, name, preview)
        if fault and fault.get("sleep"):
            time.sleep(float(fault["sleep"]))
        return fault if fault and fault.get("error") else None

    # ---- checkpoints

    def checkpoint(self, live: dict[str, Any], inputs: dict[str, Any], old_state: dict[str, Any] | None = None,
                   ) -> dict[str, Any]:
        """provider.go checkpointObject: the live object, secret where the inputs were, plus the inputs."""
        meta = live.get("metadata") or {}
        # provider.go fieldManagerName: kept from the state, else pulumi-kubernetes-<8 hex> (here
        # derived from the object, so repeated reads of a `.get` agree).
        ident = f"{live.get('kind')}/{meta.get('namespace')}/{meta.get('name')}"
        manager = (old_state or {}).get(FIELD_MANAGER_KEY) or \
            f"pulumi-kubernetes-{hashlib.sha256(ident.encode()).hexdigest()[:8]}"
        out = annotate_secrets(copy.deepcopy(live), inputs)
        out[INPUTS_KEY] = inputs
        out[API_VERSION_KEY] = (old_state or {}).get(API_VERSION_KEY) or live.get("apiVersion", "v1")
        out[FIELD_MANAGER_KEY] = manager
        return out

    # ---- Create

    def Create(self, request: Any, context: Any) -> provider_pb2.CreateResponse:
        token = type_of(request)
        if token == RELEASE:
            return self.create_release(request, context)
        kind = kind_of(token)
        inputs = to_dict(request.properties)
        body = plain(inputs)
        meta = body.setdefault("metadata", {})
        if kind.namespaced:
            meta["namespace"] = meta.get("namespace") or self.default_namespace
        else:
            meta.pop("namespace", None)
        namespace, name = meta.get("namespace"), meta.get("name")
        if (fault := self.fault("create", token, str(name), request.preview)) is not None:
            raise Failure(f"resource {request.urn!r} was not successfully created by the Kubernetes API server: "
                          f"{fault['error']}")
        if request.preview and (has_unknown(body) or kind.patch or not self.server_side_apply):
            # provider.go Create: no server-side dry run with unknown inputs, for patch resources or
            # without server-side apply; the inputs come back as they are.
            return provider_pb2.CreateResponse(id="", properties=request.properties)
        with self.state().open() as state:
            objects = state["objects"]
            if kind.namespaced and object_key("Namespace", None, namespace) not in objects:
                if request.preview:
                    # await.go Creation: "If the namespace hasn't been created yet, the preview will always fail."
                    return provider_pb2.CreateResponse(id="", properties=request.properties)
                raise Failure(f"resource {request.urn!r} was not successfully created by the Kubernetes API server: "
                              f'namespaces "{namespace}" not found')
            key = object_key(kind.kind, namespace, name)
            existing = objects.get(key)
            if existing is not None and not (self.server_side_apply and (self.upsert or kind.patch)):
                if request.preview:
                    return provider_pb2.CreateResponse(id="", properties=request.properties)
                # The API server's AlreadyExists; upstream adds advice (use upsertExistingObjects, an
                # alias, a Patch resource or `pulumi import`).
                raise Failure(f'{kind.plural} "{name}" already exists: the object exists in the cluster '
                              "(upsertExistingObjects on the provider adopts it)")
            live = self.apply(state, kind, existing, {}, body, create=True, persist=not request.preview)
            if request.preview:
                live.pop("status", None)  # provider.go Create: no status in a preview
        return provider_pb2.CreateResponse(
            id="" if request.preview else fq_name(namespace, name),
            properties=to_struct(self.checkpoint(live, inputs)),
        )

    def apply(self, state: dict[str, Any], kind: Kind, existing: dict[str, Any] | None, old_inputs: dict[str, Any],
              body: dict[str, Any], create: bool, persist: bool) -> dict[str, Any]:
        """A server-side apply of ``body`` (or a create): what the API server would store and return."""
        meta = body["metadata"]
        namespace, name = meta.get("namespace"), meta["name"]
        if kind.kind == "Secret" and "stringData" in body:
            data = dict(body.get("data") or {})
            for k, v in (body.pop("stringData") or {}).items():
                data[k] = base64.b64encode(str(v).encode()).decode()
            body["data"] = data
        if existing is None:
            live = copy.deepcopy(body)
            live["metadata"] = new_metadata(state, meta) if persist else {
                **meta, "uid": str(uuid.uuid4()), "resourceVersion": "0", "creationTimestamp": now()}
            if kind.kind == "Namespace":
                live["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = name
                live["spec"] = {"finalizers": ["kubernetes"]}
                live["status"] = {"phase": "Active"}
            if kind.kind == "Secret":
                live.setdefault("type", "Opaque")
        else:
            live = deep_merge(drop_missing(existing, old_inputs, body), body)
            live["metadata"]["resourceVersion"] = next_resource_version(state) if persist else \
                existing["metadata"].get("resourceVersion")
        if persist:
            state["objects"][object_key(kind.kind, namespace, name)] = live
            if kind.kind == "Namespace" and existing is None:
                # The service-account controller: every namespace gets a `default` ServiceAccount.
                sa = object_key("ServiceAccount", name, "default")
                state["objects"].setdefault(sa, {
                    "apiVersion": "v1", "kind": "ServiceAccount",
                    "metadata": new_metadata(state, {"name": "default", "namespace": name}),
                })
        return copy.deepcopy(live)

    def create_release(self, request: Any, context: Any) -> provider_pb2.CreateResponse:
        """helm_release.go Create: nothing happens in a preview (status, resourceNames unknown); else a
        helm install of the checked inputs, the id ``namespace/name``."""
        inputs = to_dict(request.properties)
        release = plain(inputs)
        fault = self.fault("create", RELEASE, release["name"], request.preview)
        if request.preview:
            if fault is not None:
                raise Failure(str(fault["error"]))
            return provider_pb2.CreateResponse(id="", properties=to_struct(self.release_checkpoint(inputs, None)))
        ident = fq_name(release["namespace"], release["name"])
        with self.state().open() as state:
            if ident in state["releases"]:
                raise Failure("cannot re-use a name that is still in use")
            if object_key("Namespace", None, release["namespace"]) not in state["objects"]:
                if not truthy(release.get("createNamespace")):
                    raise Failure(f'create: failed to create: namespaces "{release["namespace"]}" not found')
                self.apply(state, KINDS["kubernetes:core/v1:Namespace"], None, {},
                           {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": release["namespace"]}},
                           create=True, persist=True)
            chart = state.get("chart") or {}
            record = {
                "name": release["name"], "namespace": release["namespace"], "chart": release.get("chart"),
                "chartName": chart.get("name") or chart_name(str(release.get("chart") or "")),
                "version": release.get("version"), "appVersion": chart.get("appVersion", release.get("version")),
                "values": release.get("values") or {}, "revision": 1, "status": "deployed", "resources": [],
            }
            error = fault["error"] if fault else None
            if error is None:
                try:
                    record["resources"] = install_chart(state, record)
                except Failure as err:
                    error = str(err)
            if error is not None:
                if truthy(release.get("atomic")):
                    # Helm's install with --atomic uninstalls the failed release; the provider then finds
                    # no release and returns Helm's error as it is (helmCreate).
                    for key in record["resources"]:
                        state["objects"].pop(key, None)
                    raise Failure(f"release {release['name']} failed, and has been uninstalled due to atomic "
                                  f"being set: {error}")
                record["status"] = "failed"
            state["releases"][ident] = record
            live = copy.deepcopy(record)
        checkpoint = self.release_checkpoint(inputs, live)
        if error is not None:
            # helm_release.go Create: the release exists with a failed status: a partial failure
            # (ErrorResourceInitFailed) so the engine records it.
            self.partial(context, ident, checkpoint, inputs,
                         f"Helm release {ident!r} was created, but failed to initialize completely. Use Helm CLI to "
                         f"investigate: failed to become available within allocated timeout. Error: Helm Release "
                         f"{ident}: {error}")
        return provider_pb2.CreateResponse(id=ident, properties=to_struct(checkpoint))

    def release_checkpoint(self, inputs: dict[str, Any], live: dict[str, Any] | None) -> dict[str, Any]:
        """helm_release.go checkpointRelease + setReleaseAttributes: the inputs as the Release's fields,
        with values and version from Helm, ``resourceNames`` and ``status`` (both unknown in a preview),
        and the inputs under ``__inputs`` (secret)."""
        out = {k: copy.deepcopy(v) for k, v in inputs.items() if k != "resourceNames"}
        if live is None:
            out["resourceNames"] = UNKNOWN
            out["status"] = UNKNOWN
        else:
            if not has_unknown(inputs.get("values")):
                out["values"] = annotate_secrets(deep_merge(plain(inputs.get("values") or {}), live["values"]),
                                                 inputs.get("values") or {})
            out["version"] = live["version"]
            names: dict[str, list[str]] = {}
            for key in live.get("resources", []):
                kind, rest = key.split("/", 1)
                names.setdefault(f"{kind}/v1", []).append(rest)
            out["resourceNames"] = names
            out["status"] = {
                "name": live["name"], "namespace": live["namespace"], "status": live["status"],
                "revision": live["revision"], "chart": live.get("chartName") or chart_name(str(live.get("chart") or "")),
                "version": live["version"], "appVersion": live.get("appVersion") or live["version"],
            }
        out[INPUTS_KEY] = secret(inputs)
        return out

    def partial(self, context: Any, ident: str, properties: dict[str, Any], inputs: dict[str, Any] | None,
                message: str) -> None:
        """Fail with ErrorResourceInitFailed (provider.go partialError): the engine keeps ``properties``."""
        detail = provider_pb2.ErrorResourceInitFailed(id=ident, properties=to_struct(properties), reasons=[message])
        if inputs is not None:
            detail.inputs.CopyFrom(to_struct(inputs))
        packed = any_pb2.Any()
        packed.Pack(detail)
        status = status_pb2.Status(code=2, message=message, details=[packed])
        context.set_trailing_metadata((("grpc-status-details-bin", status.SerializeToString()),))
        raise Failure(message)

    # ---- Read

    def Read(self, request: Any, context: Any) -> provider_pb2.ReadResponse:
        token = type_of(request)
        old_state = to_dict(request.properties)
        old_inputs = to_dict(request.inputs)
        if token == RELEASE:
            return self.read_release(request, old_state, old_inputs)
        kind = kind_of(token)
        namespace, name = parse_fq_name(request.id)
        if not name:
            raise Failure(f"failed to read resource because of a failure to parse resource name from request ID: "
                          f"{request.id}")
        if (fault := self.fault("read", token, name)) is not None:
            raise Failure(str(fault["error"]))
        if kind.namespaced:
            namespace = namespace or self.default_namespace
        with self.state().open() as state:
            live = copy.deepcopy(state["objects"].get(object_key(kind.kind, namespace if kind.namespaced else None,
                                                                 name)))
        if live is None:
            # provider.go Read: a 404 is "deleted": an empty response, which the engine turns into
            # "resource '<id>' does not exist" for a `.get` and a removal on refresh.
            return provider_pb2.ReadResponse()
        inputs_shape = {k: v for k, v in plain(old_inputs).items() if v is not None}
        if not inputs_shape:
            # A `.get` (no previous inputs): the live object's input-like fields are the inputs.
            inputs_shape = {k: copy.deepcopy(v) for k, v in live.items() if k != "status"}
            inputs_shape["metadata"] = {k: v for k, v in live["metadata"].items()
                                        if k not in ("creationTimestamp", "generation", "managedFields",
                                                     "resourceVersion", "uid")}
            live_inputs = inputs_shape
        else:
            live_inputs = prune(live, inputs_shape)
        live_inputs = annotate_secrets(live_inputs, old_inputs)
        return provider_pb2.ReadResponse(
            id=request.id or fq_name(namespace if kind.namespaced else None, name),
            properties=to_struct(self.checkpoint(live, live_inputs, old_state)),
            inputs=to_struct(live_inputs),
        )

    def read_release(self, request: Any, old_state: dict[str, Any], old_inputs: dict[str, Any],
                     ) -> provider_pb2.ReadResponse:
        """helm_release.go Read: the release by its stored name and namespace (or the id on import)."""
        if old_state.get("name") and old_state.get("namespace"):
            namespace, name = plain(old_state["namespace"]), plain(old_state["name"])
        else:
            namespace, name = parse_fq_name(request.id)
        if (fault := self.fault("read", RELEASE, name)) is not None:
            raise Failure(str(fault["error"]))
        with self.state().open() as state:
            live = copy.deepcopy(state["releases"].get(fq_name(namespace, name)))
        if live is None:
            return provider_pb2.ReadResponse()
        inputs = plain(old_state.get(INPUTS_KEY)) if old_state.get(INPUTS_KEY) else None
        if not inputs:
            inputs = {k: v for k, v in {"chart": live["chart"], "name": name, "namespace": namespace,
                                        "values": live["values"], "version": live["version"],
                                        "timeout": 300}.items() if not omitempty(v)}
        inputs = annotate_secrets(inputs, old_inputs)
        # Values as Helm has them now (drift shows up as a diff of `values`).
        checkpoint = self.release_checkpoint({**inputs, "values": annotate_secrets(live["values"], inputs.get("values")
                                                                                 or {})}, live)
        checkpoint[INPUTS_KEY] = secret(inputs)
        return provider_pb2.ReadResponse(id=request.id or fq_name(namespace, name), properties=to_struct(checkpoint),
                                         inputs=to_struct(inputs))

    # ---- Update

    def Update(self, request: Any, context: Any) -> provider_pb2.UpdateResponse:
        token = type_of(request)
        if token == RELEASE:
            return self.update_release(request, context)
        kind = kind_of(token)
        olds = to_dict(request.olds)
        inputs = to_dict(request.news)
        body = plain(inputs)
        meta = body.setdefault("metadata", {})
        if kind.namespaced:
            meta["namespace"] = meta.get("namespace") or self.default_namespace
        namespace, name = meta.get("namespace"), meta.get("name")
        if request.preview and has_unknown(body):
            # provider.go Update: "If this is a preview and the input values contain unknowns ... return them as-is".
            return provider_pb2.UpdateResponse(properties=request.news)
        key = object_key(kind.kind, namespace if kind.namespaced else None, name)
        if (fault := self.fault("update", token, str(name), request.preview)) is not None:
            if request.preview:
                raise Failure(str(fault["error"]))
            with self.state().open() as state:
                live = copy.deepcopy(state["objects"].get(key))
            if live is None:
                raise Failure(f"update of resource {request.urn!r} failed: {fault['error']}")
            self.partial(context, fq_name(namespace, name), self.checkpoint(live, inputs, olds), None,
                         f"the Kubernetes API server reported that {fq_name(namespace, name)!r} failed to fully "
                         f"initialize or become live: {fault['error']}")
        with self.state().open() as state:
            old_inputs = plain(olds.get(INPUTS_KEY) or {})
            live = self.apply(state, kind, state["objects"].get(key), old_inputs, body, create=False,
                              persist=not request.preview)
        return provider_pb2.UpdateResponse(properties=to_struct(self.checkpoint(live, inputs, olds)))

    def update_release(self, request: Any, context: Any) -> provider_pb2.UpdateResponse:
        """helm_release.go Update: a helm upgrade (nothing in a preview: status, resourceNames unknown)."""
        inputs = to_dict(request.news)
        release = plain(inputs)
        olds = plain(to_dict(request.olds))
        fault = self.fault("update", RELEASE, release["name"], request.preview)
        if request.preview:
            if fault is not None:
                raise Failure(str(fault["error"]))
            return provider_pb2.UpdateResponse(properties=to_struct(self.release_checkpoint(inputs, None)))
        old_ident = fq_name(olds.get("namespace"), olds.get("name"))
        ident = fq_name(release["namespace"], release["name"])
        with self.state().open() as state:
            record = state["releases"].get(old_ident)
            if record is None:
                # helmUpdate: Helm's upgrade of a release that is gone.
                raise Failure(f'"{release["name"]}" has no deployed releases')
            previous = copy.deepcopy(record)
            record.update(name=release["name"], namespace=release["namespace"], chart=release.get("chart"),
                          version=release.get("version"), values=release.get("values") or {},
                          revision=int(record.get("revision", 1)) + 1, status="deployed")
            if "appVersion" not in (state.get("chart") or {}):
                record["appVersion"] = release.get("version")
            error = fault["error"] if fault else None
            if error is None:
                try:
                    record["resources"] = install_chart(state, record)
                except Failure as err:
                    error = str(err)
            failed = copy.deepcopy(record)
            failed["status"] = "failed"
            if error is not None and truthy(release.get("atomic")):
                # Helm's upgrade with --atomic rolls back: the old values again, as a new revision.
                error = f"release {release['name']} failed, and has been rolled back due to atomic being set: {error}"
                state["releases"][old_ident] = {**previous, "revision": record["revision"] + 1}
            elif error is not None:
                state["releases"][ident] = failed
        if error is not None:
            self.partial(context, ident, self.release_checkpoint(inputs, failed), None,
                         f"Helm release {ident!r} failed to initialize completely. Use Helm CLI to investigate: "
                         f"error running update: failed to become available within allocated timeout. Error: "
                         f"Helm Release {ident}: {error}")
        return provider_pb2.UpdateResponse(properties=to_struct(self.release_checkpoint(inputs, record)))

    # ---- Delete

    def Delete(self, request: Any, context: Any) -> empty_pb2.Empty:
        token = type_of(request)
        olds = to_dict(request.properties)
        if token == RELEASE:
            release = plain(olds)
            if (fault := self.fault("delete", RELEASE, str(release.get("name")))) is not None:
                raise Failure(str(fault["error"]))
            with self.state().open() as state:
                record = state["releases"].pop(fq_name(release.get("namespace"), release.get("name")), None)
                if record is None:
                    # helm_release.go Delete returns Helm's uninstall error as it is.
                    raise Failure(f"uninstall: Release not loaded: {release.get('name')}: release: not found")
                for key in record.get("resources", []):
                    state["objects"].pop(key, None)
            return empty_pb2.Empty()
        kind = kind_of(token)
        namespace, name = parse_fq_name(request.id)
        if (fault := self.fault("delete", token, name)) is not None:
            raise Failure(str(fault["error"]))
        with self.state().open() as state:
            key = object_key(kind.kind, namespace if kind.namespaced else None, name)
            live = state["objects"].get(key)
            if live is None:
                return empty_pb2.Empty()  # await.go Deletion: a 404 means deleted already
            if kind.patch:
                # await.go Deletion: a patch resource relinquishes its fields (ssa.Relinquish) instead.
                applied = plain(olds.get(INPUTS_KEY) or {})
                state["objects"][key] = remove_paths(live, applied, ("apiVersion", "kind", "metadata"))
                return empty_pb2.Empty()
            del state["objects"][key]
            if kind.kind == "Namespace":
                # The namespace controller deletes everything in it.
                for other in [k for k in state["objects"] if k.split("/")[1:2] == [name] and k.count("/") == 2]:
                    del state["objects"][other]
                for ident in [i for i in state["releases"] if i.startswith(f"{name}/")]:
                    del state["releases"][ident]
        return empty_pb2.Empty()


if __name__ == "__main__":
    serve(Kubernetes())
