"""Existing stacks' state stays loadable: the serialized dynamic providers load in a fresh process.

The engine stores each dynamic resource's provider dill-pickled *by reference* (module path and
class name) and the provider process (``pulumi-resource-pulumi-python``) unpickles it from the
project directory: ``pulumi.dynamic.__main__.get_provider`` does
``dill.loads(base64.b64decode(props["__provider"]))`` (that module starts the provider server when
imported, so the loader below makes the same call itself). So the import paths
``components.token_password``, ``components.deactivation`` (and ``components.slot_retirement``)
must keep working for good.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

from components.render import REPO_ROOT, render_stack
from tests.fixture_stacks import STACK_DIR

PROVIDERS = {
    "pulumi-python:dynamic/edgeregistry:TokenPassword": "components.token_password.TokenPasswordProvider",
    "pulumi-python:dynamic/edgeregistry:ConnectedRegistryDeactivation": (
        "components.deactivation.ConnectedRegistryDeactivationProvider"
    ),
    "pulumi-python:dynamic/edgeregistry:SlotRetirement": "components.slot_retirement.SlotRetirementProvider",
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
                     "checks": sorted(f.property for f in check.failures) if check else None}
print(json.dumps(loaded))
"""


def test_serialized_providers_from_a_render_load_in_a_fresh_process(tmp_path: Path) -> None:
    result = render_stack(stack="dev", stack_dir=STACK_DIR)
    blobs = {}
    for type_ in PROVIDERS:
        (first, *_) = result.by_type(type_)
        assert first.serialized_provider
        raw = base64.b64decode(first.serialized_provider)
        # By reference: the state names the module, it does not carry the code.
        module = PROVIDERS[type_].rsplit(".", 1)[0]
        assert module.encode() in raw
        blobs[type_] = first.serialized_provider
    blob_file = tmp_path / "providers.json"
    blob_file.write_text(json.dumps(blobs))

    loaded = subprocess.run(
        [sys.executable, "-c", LOADER, str(blob_file)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )

    found = json.loads(loaded.stdout)
    assert {t: v["class"] for t, v in found.items()} == PROVIDERS
    # Usable, not just importable: each provider validates inputs (all required ones missing here).
    assert "tokenId" in found["pulumi-python:dynamic/edgeregistry:TokenPassword"]["checks"]
    assert "installId" in found["pulumi-python:dynamic/edgeregistry:ConnectedRegistryDeactivation"]["checks"]
    assert "role" in found["pulumi-python:dynamic/edgeregistry:SlotRetirement"]["checks"]
