"""requirements.txt floors match the provider features the program uses."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pulumi_kubernetes as k8s
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent

#: Feature used by the program -> (package, first version that has it). pulumi-kubernetes added
#: the `upsertExistingObjects` provider option in 4.29 (pulumi/pulumi-kubernetes#4278 made plain
#: create the default and upsert the opt-in).
FEATURES = {
    "upsert_existing_objects": ("pulumi-kubernetes", Version("4.29")),
}


def floors() -> dict[str, Version]:
    found: dict[str, Version] = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        requirement = Requirement(line)
        for spec in requirement.specifier:
            if spec.operator in (">=", "=="):
                found[requirement.name.lower()] = Version(spec.version)
    return found


def used_features() -> set[str]:
    source = "\n".join(p.read_text() for p in (ROOT / "components").glob("*.py"))
    return {name for name in FEATURES if re.search(rf"\b{name}\s*=", source)}


def test_the_program_uses_upsert_existing_objects() -> None:
    # Guards the table below against going stale in the other direction.
    assert "upsert_existing_objects" in used_features()


def test_every_used_feature_is_covered_by_the_floor() -> None:
    have = floors()
    for name in used_features():
        package, minimum = FEATURES[name]
        assert package in have, f"{package} has no lower bound in requirements.txt"
        assert have[package] >= minimum, f"{name} needs {package}>={minimum}, requirements.txt allows {have[package]}"


def test_installed_sdk_knows_the_option() -> None:
    assert "upsert_existing_objects" in inspect.signature(k8s.ProviderArgs.__init__).parameters
