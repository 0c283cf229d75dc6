"""Pulumi.yaml validates against Pulumi's own schema and declares every scalar/array key."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import yaml

from components.config.keys import SECRET_KEYS
from components.config.site import SiteConfig

ROOT = Path(__file__).resolve().parent.parent
# Pulumi's own project schema, vendored with its source and licence (tests/vendor/README.md).
SCHEMA = ROOT / "tests" / "vendor" / "pulumi-project.schema.json"


def project() -> dict:
    return yaml.safe_load((ROOT / "Pulumi.yaml").read_text())


def test_pulumi_yaml_validates_against_pulumi_schema() -> None:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator(schema).validate(project())


def test_schema_check_would_catch_a_bad_declaration() -> None:
    schema = json.loads(SCHEMA.read_text())
    broken = project()
    broken["config"]["repositories"] = {"type": "array"}  # arrays need items
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(broken))


def test_local_file_backend_is_the_default() -> None:
    assert project()["backend"]["url"].startswith("file://")


def test_pulumi_yaml_and_readme_are_generated_from_the_model() -> None:
    """SiteConfig is the one source; a key added there without regenerating fails here, with the command."""
    from components.config import reference as config_docs

    stale = config_docs.outdated()
    assert not stale, f"{', '.join(stale)} out of date with SiteConfig: run python -m components config-reference --write"


def test_the_drift_check_catches_a_hand_edit(tmp_path: Path) -> None:
    from components.config import reference as config_docs

    (tmp_path / "docs").mkdir()
    for name in ("Pulumi.yaml", "docs/configuration.md"):
        (tmp_path / name).write_text((ROOT / name).read_text())
    assert config_docs.outdated(tmp_path) == []
    project_text = (tmp_path / "Pulumi.yaml").read_text().replace("default: 90", "default: 60")
    (tmp_path / "Pulumi.yaml").write_text(project_text)
    doc_text = (tmp_path / "docs/configuration.md").read_text().replace("| `auditLog` | boolean | `false` |", "| `auditLog` | boolean | `true` |")
    (tmp_path / "docs/configuration.md").write_text(doc_text)
    assert config_docs.outdated(tmp_path) == ["Pulumi.yaml", "docs/configuration.md"]
    assert config_docs.write(tmp_path) == ["Pulumi.yaml", "docs/configuration.md"]
    assert config_docs.outdated(tmp_path) == []
    assert (tmp_path / "Pulumi.yaml").read_text() == (ROOT / "Pulumi.yaml").read_text()


def test_declarations_follow_the_model() -> None:
    """Required keys have no default (Pulumi then refuses a stack without them); objects, optional
    keys without a default and optional secrets are not declared, so an empty value in a stack
    file is the site's own and is refused (docs/config-rules.md). (The real CLI refuses a stack
    whose declared secret key has a plaintext default: tests/engine/README.md.)"""
    declared = project()["config"]
    for name, field in SiteConfig.model_fields.items():
        key = field.alias or name
        if key in ("nodes", "chartValues"):
            assert key not in declared
        elif key in SECRET_KEYS:
            assert field.is_required() or key not in declared, key
        elif field.is_required():
            assert "default" not in declared[key], key
        elif field.get_default(call_default_factory=True) is None:
            assert key not in declared, key
        else:
            default = field.get_default(call_default_factory=True)
            assert declared[key]["default"] == (list(default) if isinstance(default, tuple) else default), key
        if key in declared:
            assert declared[key]["description"] == field.description


def test_readme_config_reference_lists_every_key() -> None:
    from components.config.nodes import NodeConfig

    readme = (ROOT / "docs" / "configuration.md").read_text()
    for model in (SiteConfig, NodeConfig):
        for name, field in model.model_fields.items():
            assert f"| `{field.alias or name}` |" in readme, f"{field.alias or name} missing from docs/configuration.md"


def test_readme_keeps_the_deploy_and_test_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "pulumi up --stack dev" in readme
    assert "bash .ci/run" in readme and "scripts/test" in (ROOT / ".ci" / "run").read_text()
