"""requirements.txt floors match the features the program uses, and lists what it imports."""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import inspect
import re
import sys
from pathlib import Path

import pulumi_kubernetes as k8s
from cryptography import x509
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent

#: Feature used by the program -> (package, first version that has it, how the source uses it).
#: pulumi-kubernetes added the `upsertExistingObjects` provider option in 4.29
#: (pulumi/pulumi-kubernetes#4278 made plain create the default and upsert the opt-in).
#: cryptography added the timezone-aware `Certificate.not_valid_after_utc` in 42.0.0 and
#: `Certificate.verify_directly_issued_by` in 40.0.0 (its changelog); components/tls.py uses both.
#: pulumi-command added `remote.ConnectionArgs(host_key=...)` in 1.1.0 (docs/nodes.md); the node
#: commands pin every node's host key with it.
FEATURES = {
    "host_key": ("pulumi-command", Version("1.1"), r"\bhost_key\s*="),
    "upsert_existing_objects": ("pulumi-kubernetes", Version("4.29"), r"\bupsert_existing_objects\s*="),
    "not_valid_after_utc": ("cryptography", Version("42"), r"\.not_valid_after_utc\b"),
    "verify_directly_issued_by": ("cryptography", Version("40"), r"\.verify_directly_issued_by\("),
}

#: Modules the program imports that reach it through another requirement, which owns their
#: version: protobuf is pinned by the pulumi SDK, azure-core by the azure-* clients listed.
TRANSITIVE = {"google.protobuf": "pulumi", "azure.core": "azure-identity"}


def requirements() -> list[Requirement]:
    found = []
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            found.append(Requirement(line))
    return found


def floors() -> dict[str, Version]:
    found: dict[str, Version] = {}
    for requirement in requirements():
        for spec in requirement.specifier:
            if spec.operator in (">=", "=="):
                found[requirement.name.lower()] = Version(spec.version)
    return found


def used_features() -> set[str]:
    source = "\n".join(p.read_text() for p in (ROOT / "components").rglob("*.py"))
    return {name for name, (_, _, pattern) in FEATURES.items() if re.search(pattern, source)}


def test_the_program_uses_every_feature_in_the_table() -> None:
    # Guards the table against going stale in the other direction.
    assert used_features() == set(FEATURES)


def test_every_used_feature_is_covered_by_the_floor() -> None:
    have = floors()
    for name in used_features():
        package, minimum, _ = FEATURES[name]
        assert package in have, f"{package} has no lower bound in requirements.txt"
        assert have[package] >= minimum, f"{name} needs {package}>={minimum}, requirements.txt allows {have[package]}"


def test_installed_sdk_knows_the_option() -> None:
    assert "upsert_existing_objects" in inspect.signature(k8s.ProviderArgs.__init__).parameters


def test_installed_cryptography_has_the_certificate_attributes() -> None:
    assert hasattr(x509.Certificate, "not_valid_after_utc")
    assert hasattr(x509.Certificate, "verify_directly_issued_by")


def _imported_modules() -> dict[str, str]:
    """Third-party modules components/ imports -> a file importing it."""
    found: dict[str, str] = {}
    for path in sorted((ROOT / "components").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in ("__future__", "components", "policy"):
                    found.setdefault(name, str(path.relative_to(ROOT)))
    return found


def _distribution_of(module: str, by_file: dict[Path, str]) -> str | None:
    """The installed distribution that holds ``module`` (a namespace package like azure.* has
    several: the module's own file decides)."""
    spec = importlib.util.find_spec(module)
    origin = spec.origin if spec else None
    return by_file.get(Path(origin).resolve()) if origin else None


def test_every_package_the_program_imports_is_a_requirement() -> None:
    """A package used directly is listed with its own bounds, not left to whatever another
    package's requirement allows (cryptography came in through azure-identity and paramiko)."""
    listed = {canonicalize_name(r.name) for r in requirements()}
    by_file = {
        Path(str(distribution.locate_file(file))).resolve(): canonicalize_name(distribution.metadata["Name"])
        for distribution in importlib.metadata.distributions()
        for file in distribution.files or []
        if str(file).endswith(".py")
    }
    modules = _imported_modules()
    assert "cryptography" in modules  # components/tls.py: the check below is not vacuous
    missing = []
    for module, where in modules.items():
        if any(module == m or module.startswith(f"{m}.") for m in TRANSITIVE):
            continue
        owner = _distribution_of(module, by_file)
        if owner not in listed:
            missing.append(f"{module} (imported by components/{where}) comes from {owner}, not in requirements.txt")
    assert missing == []


def test_transitive_modules_come_with_their_owner() -> None:
    listed = {canonicalize_name(r.name) for r in requirements()}
    assert set(TRANSITIVE.values()) <= listed
