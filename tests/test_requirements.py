"""requirements.txt floors match the features the program uses, and lists what it imports; the
hash-locked files pin every requirement within its range (tests/locks.py)."""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import inspect
import re
import sys
from pathlib import Path

import pulumi_kubernetes as k8s
import pytest
from cryptography import x509
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.locks import LOCK_COMMAND, LOCKS, lock_problems, read_lock, read_requirements

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


# --- the hash-locked files (docs/ci.md, "Supply chain") ------------------------------------------


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_every_lock_pins_every_requirement_in_its_range_with_hashes(lock: str) -> None:
    path = ROOT / lock
    assert path.is_file(), f"{lock} is missing: run {LOCK_COMMAND}"
    requirements = read_requirements(ROOT / LOCKS[lock])
    assert requirements, f"{LOCKS[lock]} lists nothing"
    problems = lock_problems(path.read_text(), requirements, lock)
    assert problems == [], f"{lock} is stale or broken (run {LOCK_COMMAND}):\n" + "\n".join(problems)


def test_the_locks_agree_on_every_version_they_share() -> None:
    """The test tools and the policy pack are locked against requirements.lock (-c): CI tests the
    versions that deploy."""
    runtime, _ = read_lock((ROOT / "requirements.lock").read_text())
    for lock in sorted(set(LOCKS) - {"requirements.lock"}):
        pins, _ = read_lock((ROOT / lock).read_text())
        differ = [f"{name}: {runtime[name].version} vs {pin.version}"
                  for name, pin in pins.items() if name in runtime and runtime[name].version != pin.version]
        assert differ == [], f"requirements.lock and {lock} differ (run {LOCK_COMMAND}): {differ}"
    dev, _ = read_lock((ROOT / "requirements-dev.lock").read_text())
    assert set(runtime) <= set(dev), f"requirements-dev.lock lacks {sorted(set(runtime) - set(dev))}"


def test_the_locks_name_the_command_that_regenerates_them() -> None:
    script = (ROOT / LOCK_COMMAND).read_text()
    for lock, source in LOCKS.items():
        assert f"#    {LOCK_COMMAND}\n" in (ROOT / lock).read_text()[:200], f"{lock} was not made by {LOCK_COMMAND}"
        assert f"{source} " in script and f"-o {lock}\n" in script, f"{LOCK_COMMAND} does not write {lock}"
    assert "--generate-hashes" in script and "--python-version 3.11" in script and "x86_64" in script
    readme = (ROOT / "README.md").read_text()
    assert f"`{LOCK_COMMAND}`" in readme, f"README.md does not say how to regenerate the locks ({LOCK_COMMAND})"


def test_the_lock_check_finds_a_missing_package_an_unhashed_line_and_a_range_miss(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("pyyaml>=6.0,<7\nrich>=13\nwinonly; sys_platform == 'win32'\n")
    dev = tmp_path / "requirements-dev.txt"
    dev.write_text("-r requirements.txt\npytest>=8  # tests\n")
    listed = read_requirements(dev)
    assert [str(r) for r, _ in listed] == ["pyyaml<7,>=6.0", "rich>=13", 'winonly; sys_platform == "win32"', "pytest>=8"]
    sha, other = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    good = (f"# header\npyyaml==6.0.2 \\\n    --hash={sha} \\\n    --hash={other}\n    # via -r x\n"
            f"rich==14.0.0 --hash={sha}\npytest==8.3.0 \\\n    --hash={sha}\n")
    assert lock_problems(good, listed, "dev.lock") == []
    assert read_lock(good)[0]["pyyaml"].hashes == (sha, other)

    missing = good.replace(f"rich==14.0.0 --hash={sha}\n", "")
    assert lock_problems(missing, listed, "dev.lock") == ["rich>=13 (requirements.txt) is not in dev.lock"]
    unhashed = good.replace(f"rich==14.0.0 --hash={sha}", "rich==14.0.0")
    assert lock_problems(unhashed, listed, "dev.lock") == ["rich==14.0.0: no --hash"]
    outside = good.replace("pyyaml==6.0.2", "pyyaml==7.0")
    assert lock_problems(outside, listed, "dev.lock") == [
        "pyyaml==7.0 in dev.lock is outside pyyaml<7,>=6.0 (requirements.txt)"]
    ranged = good.replace("rich==14.0.0", "rich>=14")
    assert lock_problems(ranged, listed, "dev.lock") == [
        "rich>=14: not pinned to one version with ==", "rich>=13 (requirements.txt) is not in dev.lock"]
    md5 = good.replace(f"pytest==8.3.0 \\\n    --hash={sha}", "pytest==8.3.0 --hash=md5:abc")
    assert lock_problems(md5, listed, "dev.lock") == ["pytest==8.3.0: not a sha256 hash: ['md5:abc']"]
    assert lock_problems("--index-url https://example.invalid\n" + good, listed, "dev.lock") == [
        "--index-url https://example.invalid: an option line, not a pinned requirement"]
