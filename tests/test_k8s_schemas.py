"""Every Kubernetes object the program declares is valid against the Kubernetes schemas.

The objects are the inputs recorded under mocks (secrets unwrapped), validated with
kubernetes-validate's bundled JSON schemas — offline — in strict mode, so a misspelt field
(`imagePullSecret`, `stringdata`) fails instead of being silently dropped by the API server.
"""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from tests.k8s_mocks import NAMESPACE, SECRET, SERVICE_ACCOUNT_PATCH, Cluster, Request, run_program
from tests.test_onprem_mocks import BASE, install

#: Oldest and newest k3s minors this targets; kubernetes-validate falls back to the nearest
#: bundled schema not newer than the version asked for.
K8S_VERSIONS = ("1.30", "1.33")
KINDS = (NAMESPACE, SECRET, SERVICE_ACCOUNT_PATCH)


def manifest(request: Request) -> dict[str, Any]:
    """The object a request would apply: its inputs, secrets unwrapped."""
    return request.plain


def declared_objects() -> list[Request]:
    run = install(
        BASE,
        Cluster(
            services={f"{BASE.namespace}/{BASE.service_name}": "10.43.7.7"},
            service_accounts={"shop/default": ["vendor-pull"], "erp/default": []},
        ),
        namespaces=["shop", "erp"],
        create_namespaces=True,
        patch_default_service_account=True,
    )
    return [r for r in run.monitor.requests if r.type in KINDS]


def test_the_program_declares_every_kind_checked_here() -> None:
    assert {r.type for r in declared_objects()} == set(KINDS)


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_declared_objects_are_valid(version: str) -> None:
    for request in declared_objects():
        kubernetes_validate.validate(manifest(request), version, strict=True)


def test_the_validator_rejects_a_misspelt_field() -> None:
    # Guards the test above: strict mode really is on and the schemas really load offline.
    bad = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "default", "namespace": "shop"},
        "imagePullSecret": [{"name": "edge-registry-pull"}],
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSIONS[-1], strict=True)


def test_the_validator_rejects_a_wrongly_typed_secret() -> None:
    bad = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}, "data": [".dockerconfigjson"]}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSIONS[-1], strict=True)


def test_run_program_is_independent_per_call() -> None:
    # Objects from one run must not leak into the next (each run gets a fresh monitor).
    first = len(declared_objects())
    assert len(declared_objects()) == first
    assert run_program(lambda: {}).monitor.requests == []


def test_every_kubernetes_object_of_the_dev_site_is_valid() -> None:
    from components.preview.render import render_stack
    from tests.fixture_stacks import STACK_DIR

    objects = [
        r.plain_inputs()
        for r in render_stack(stack="dev", stack_dir=STACK_DIR).resources
        if r.type.startswith("kubernetes:core/v1:") and "read" not in r.options
    ]
    assert {o["kind"] for o in objects} >= {"Namespace", "Secret", "ServiceAccount"}
    for obj in objects:
        kubernetes_validate.validate(obj, K8S_VERSIONS[-1], strict=True)
