"""Existing stacks' state stays loadable: the serialized dynamic providers load in a fresh process.

The engine stores each dynamic resource's provider dill-pickled *by reference* (module path and
class name) and the provider process (``pulumi-resource-pulumi-python``) unpickles it from the
project directory: ``pulumi.dynamic.__main__.get_provider`` does
``dill.loads(base64.b64decode(props["__provider"]))`` (that module starts the provider server when
imported, so the loader below makes the same call itself). So every import path a stack's state
names must keep working for good: ``components.token_password``, ``components.deactivation``,
``components.slot_retirement`` and ``components.site_certificates`` (re-export modules since the
providers moved into ``components/azure/`` and ``components/cluster/``), and those new homes.

Three sets of blobs are loaded: the ones the current code serializes (a moved module fails), and
two checked-in files under ``tests/fixtures/provider_state/``, each serialized once by an earlier
version (a renamed class, or an instance attribute the methods expect that an old blob does
not carry, fails too: what existing stacks' state holds does not change with the code).
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

from components.config.stack_files import REPO_ROOT
from components.preview.render import render_stack
from tests.fixture_stacks import STACK_DIR

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "provider_state"
FIXTURE = FIXTURES / "providers.json"
# Written by the code of the commit that added it, before components/ moved into subpackages.
FIXTURE_BEFORE_LAYOUT = FIXTURES / "providers-2026-12.json"

PROVIDERS = {
    "pulumi-python:dynamic/edgeregistry:TokenPassword": "components.azure.token_password.TokenPasswordProvider",
    "pulumi-python:dynamic/edgeregistry:ConnectedRegistryDeactivation": (
        "components.azure.deactivation.ConnectedRegistryDeactivationProvider"
    ),
    "pulumi-python:dynamic/edgeregistry:SlotRetirement": "components.azure.slot_retirement.SlotRetirementProvider",
    "pulumi-python:dynamic/edgeregistry:SiteCa": "components.cluster.certificates.SiteCaProvider",
    "pulumi-python:dynamic/edgeregistry:ServerCertificate": "components.cluster.certificates.ServerCertificateProvider",
}

# Runs in a fresh interpreter, from the project directory, like the provider process.
LOADER = """
import base64, json, sys
import dill
sys.path.insert(0, ".")
assert not any(name.startswith("components") for name in sys.modules)
blobs = json.load(open(sys.argv[1]))
loaded = {}
for type_, blob in blobs.items():
    provider = dill.loads(base64.b64decode(blob))
    cls = type(provider)
    check = provider.check({}, {}) if hasattr(provider, "check") else None
    loaded[type_] = {"class": f"{cls.__module__}.{cls.__qualname__}",
                     "checks": sorted(f.property for f in check.failures) if check else None,
                     # What the stored instance carries vs what today's constructor sets.
                     "attributes": sorted(vars(provider)), "expected": sorted(vars(cls()))}
print(json.dumps(loaded))
"""


def serialized_providers() -> dict[str, str]:
    """Each dynamic provider as the SDK serializes it into the state (from renders, http and https)."""
    blobs: dict[str, str] = {}
    for overrides in ({}, {"httpEnabled": False}):
        result = render_stack(stack="dev", stack_dir=STACK_DIR, config_overrides=overrides)
        for type_ in PROVIDERS:
            if type_ not in blobs and result.by_type(type_):
                blobs[type_] = str(result.by_type(type_)[0].serialized_provider)
    return blobs


def write_fixture(path: Path) -> None:
    """Write a stored-state fixture from the current code (see tests/fixtures/provider_state/README.md)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(serialized_providers(), indent=2, sort_keys=True) + "\n")


def load_in_a_fresh_process(blobs: dict[str, str], tmp_path: Path) -> dict[str, dict]:
    blob_file = tmp_path / "providers.json"
    blob_file.write_text(json.dumps(blobs))
    loaded = subprocess.run(
        [sys.executable, "-c", LOADER, str(blob_file)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert loaded.returncode == 0, f"stored providers no longer load:\n{loaded.stderr}"
    found: dict[str, dict] = json.loads(loaded.stdout)
    return found


def assert_usable(found: dict[str, dict]) -> None:
    assert {t: v["class"] for t, v in found.items()} == {t: PROVIDERS[t] for t in found}
    for type_, provider in found.items():
        assert provider["attributes"] == provider["expected"], f"{type_}: the stored instance's attributes differ"
    # Usable, not just importable: each provider validates inputs (all required ones missing here).
    assert "tokenId" in found["pulumi-python:dynamic/edgeregistry:TokenPassword"]["checks"]
    assert "installId" in found["pulumi-python:dynamic/edgeregistry:ConnectedRegistryDeactivation"]["checks"]
    assert "role" in found["pulumi-python:dynamic/edgeregistry:SlotRetirement"]["checks"]
    if "pulumi-python:dynamic/edgeregistry:SiteCa" in found:
        assert "commonName" in found["pulumi-python:dynamic/edgeregistry:SiteCa"]["checks"]
    if "pulumi-python:dynamic/edgeregistry:ServerCertificate" in found:
        assert "caCertificatePem" in found["pulumi-python:dynamic/edgeregistry:ServerCertificate"]["checks"]


def test_serialized_providers_from_a_render_load_in_a_fresh_process(tmp_path: Path) -> None:
    blobs = serialized_providers()
    assert set(blobs) == set(PROVIDERS)
    for type_, blob in blobs.items():
        # By reference: the state names the module, it does not carry the code.
        module = PROVIDERS[type_].rsplit(".", 1)[0]
        assert module.encode() in base64.b64decode(blob)

    assert_usable(load_in_a_fresh_process(blobs, tmp_path))


def test_provider_state_stored_by_an_earlier_version_still_loads_in_a_fresh_process(tmp_path: Path) -> None:
    stored = json.loads(FIXTURE.read_text())
    assert set(stored) == set(PROVIDERS) - {
        "pulumi-python:dynamic/edgeregistry:SiteCa",
        "pulumi-python:dynamic/edgeregistry:ServerCertificate",
    }

    assert_usable(load_in_a_fresh_process(stored, tmp_path))


def test_provider_state_stored_before_the_subpackage_layout_still_loads_in_a_fresh_process(tmp_path: Path) -> None:
    stored = json.loads(FIXTURE_BEFORE_LAYOUT.read_text())
    assert set(stored) == set(PROVIDERS)
    frozen = ("components.token_password", "components.deactivation", "components.slot_retirement",
              "components.site_certificates")
    assert {m for m in frozen for blob in stored.values() if m.encode() + b"\x94" in base64.b64decode(blob)} == set(frozen)

    assert_usable(load_in_a_fresh_process(stored, tmp_path))


def test_renders_leave_pickle_as_they_found_it() -> None:
    """serialize_provider wraps pickle's _batch_setitems once per dynamic resource and never
    unwraps it (components/preview/loop.py): without the unwrap, a process rendering many sites
    reaches the recursion limit. Each render leaves the original in place."""
    import pickle

    from components.preview.render import render_stack
    from tests.fixture_stacks import STACK_DIR

    for _ in range(3):
        render_stack(stack="dev", stack_dir=STACK_DIR)
        assert pickle._Pickler._batch_setitems.__qualname__ == "_Pickler._batch_setitems"
