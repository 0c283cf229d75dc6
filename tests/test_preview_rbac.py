"""deploy/preview-rbac.yaml: the Kubernetes identity previews use is read-only, schema-valid,
and can read everything a site's preview reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from components.preview.render import render_stack
from tests.fixture_stacks import STACK_DIR
from tests.test_k8s_schemas import K8S_VERSIONS

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "deploy" / "preview-rbac.yaml"
READ_VERBS = {"get", "list", "watch"}
SUBJECT = {"kind": "ServiceAccount", "name": "edge-registry-preview", "namespace": "kube-system"}
#: Kubernetes type token -> (API group, resource) the provider reads on refresh.
RESOURCE_OF = {
    "kubernetes:core/v1:Namespace": ("", "namespaces"),
    "kubernetes:core/v1:Secret": ("", "secrets"),
    "kubernetes:core/v1:ServiceAccount": ("", "serviceaccounts"),
    "kubernetes:core/v1:ServiceAccountPatch": ("", "serviceaccounts"),
    "kubernetes:core/v1:Service": ("", "services"),
    # Helm keeps a release in Secrets of its namespace.
    "kubernetes:helm.sh/v3:Release": ("", "secrets"),
}


def documents(text: str | None = None) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text if text is not None else MANIFEST.read_text()) if d]


def problems(docs: list[dict[str, Any]]) -> list[str]:
    """Anything in the manifest that would let a preview change the cluster or read too much."""
    found = []
    roles = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ClusterRole"}
    for role in [d for d in docs if d["kind"] in ("ClusterRole", "Role")]:
        for rule in role.get("rules", []):
            name = role["metadata"]["name"]
            if not set(rule["verbs"]) <= READ_VERBS:
                found.append(f"{name}: verbs {rule['verbs']}")
            if "*" in rule.get("resources", []) + rule.get("apiGroups", []) + rule["verbs"]:
                found.append(f"{name}: wildcard in {rule}")
            if rule.get("nonResourceURLs") and rule["verbs"] != ["get"]:
                found.append(f"{name}: non-resource verbs {rule['verbs']}")
    for binding in [d for d in docs if d["kind"] in ("ClusterRoleBinding", "RoleBinding")]:
        if binding["subjects"] != [SUBJECT]:
            found.append(f"{binding['metadata']['name']}: subjects {binding['subjects']}")
        role = roles.get(binding["roleRef"]["name"])
        grants_secrets = role is None or any("secrets" in r.get("resources", []) for r in role.get("rules", []))
        if binding["kind"] == "ClusterRoleBinding" and grants_secrets:
            found.append(f"{binding['metadata']['name']}: secrets (or an unknown role) cluster-wide")
    return found


def readable(docs: list[dict[str, Any]], group: str, resource: str, namespace: str | None) -> bool:
    roles = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ClusterRole"}
    for binding in docs:
        if binding["kind"] not in ("ClusterRoleBinding", "RoleBinding"):
            continue
        if binding["kind"] == "RoleBinding" and binding["metadata"].get("namespace") != namespace:
            continue
        for rule in roles[binding["roleRef"]["name"]].get("rules", []):
            if group in rule.get("apiGroups", []) and resource in rule.get("resources", []) and "get" in rule["verbs"]:
                return True
    return False


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_object_is_schema_valid(version: str) -> None:
    for doc in documents():
        kubernetes_validate.validate(doc, version, strict=True)


def test_the_preview_identity_is_read_only() -> None:
    assert problems(documents()) == []


@pytest.mark.parametrize("change", [
    lambda t: t.replace("verbs: [get, list, watch]", "verbs: [get, list, watch, patch]", 1),
    lambda t: t.replace("resources: [secrets]", "resources: ['*']"),
    lambda t: t.replace("kind: RoleBinding\nmetadata:\n  name: edge-registry-preview-secrets",
                        "kind: ClusterRoleBinding\nmetadata:\n  name: edge-registry-preview-secrets"),
    lambda t: t.replace("  - kind: ServiceAccount\n    name: edge-registry-preview\n    namespace: kube-system\n",
                        "  - kind: Group\n    name: system:authenticated\n    apiGroup: rbac.authorization.k8s.io\n", 1),
])
def test_the_check_catches_a_wider_grant(change) -> None:
    text = MANIFEST.read_text()
    assert change(text) != text
    assert problems(documents(change(text)))


def test_a_site_preview_can_read_everything_it_refreshes() -> None:
    docs = documents()
    result = render_stack(stack="dev", stack_dir=STACK_DIR)
    release_namespace = result.outputs["releaseNamespace"]
    needed = set()
    for r in result.resources:
        if r.type not in RESOURCE_OF:
            continue
        inputs = r.plain_inputs()
        namespace = (inputs.get("metadata") or {}).get("namespace") or inputs.get("namespace")
        if r.type == "kubernetes:core/v1:Namespace":
            namespace = None
        needed.add((*RESOURCE_OF[r.type], namespace))
    assert ("", "secrets", release_namespace) in needed
    app_namespaces = {ns for group, resource, ns in needed if resource == "secrets"} - {release_namespace}
    missing = {n for n in needed if n[2] not in app_namespaces and not readable(docs, *n)}
    assert missing == set()
    # Application namespaces get their secrets binding from the runbook's command (one per namespace).
    assert "create rolebinding edge-registry-preview-secrets" in MANIFEST.read_text()
    assert "--clusterrole=edge-registry-preview-secrets" in MANIFEST.read_text()
    for namespace in app_namespaces:
        bound = documents() + [{
            "kind": "RoleBinding", "metadata": {"name": "edge-registry-preview-secrets", "namespace": namespace},
            "roleRef": {"kind": "ClusterRole", "name": "edge-registry-preview-secrets"}, "subjects": [SUBJECT],
        }]
        assert readable(bound, "", "secrets", namespace)
        assert not readable(docs, "", "secrets", namespace)  # not without that binding
