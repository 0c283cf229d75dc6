"""Pulumi.yaml validates against Pulumi's own schema and declares every scalar/array key."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import yaml

from components.config import SiteConfig

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


def test_every_scalar_and_array_key_is_declared() -> None:
    declared = set(project()["config"])
    objects = {"nodes", "chartValues"}  # Pulumi cannot declare object-valued keys
    for name, field in SiteConfig.model_fields.items():
        key = field.alias or name
        if key in objects:
            assert key not in declared
            continue
        assert key in declared, f"{key} is not declared in Pulumi.yaml"


def test_declared_defaults_match_the_model() -> None:
    for key, declaration in project()["config"].items():
        field = next(f for n, f in SiteConfig.model_fields.items() if (f.alias or n) == key)
        if "default" not in declaration:
            assert field.is_required(), f"{key}: required in the model but has no default"
            continue
        default = declaration["default"]
        model_default = field.get_default(call_default_factory=True)
        if default == "" and model_default is None:
            continue
        if isinstance(model_default, tuple):
            model_default = list(model_default)
        assert default == model_default, key


def test_readme_config_reference_lists_every_key() -> None:
    from components.config import NodeConfig

    readme = (ROOT / "README.md").read_text()
    for model in (SiteConfig, NodeConfig):
        for name, field in model.model_fields.items():
            assert f"| `{field.alias or name}` |" in readme, f"{field.alias or name} missing from README"


def test_readme_keeps_the_deploy_and_test_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "pulumi up --stack dev" in readme
    assert "bash .ci/run" in readme and "scripts/test" in (ROOT / ".ci" / "run").read_text()
