"""The stack files as ``pulumi up`` reads them: Pulumi.yaml's defaults merged with ``Pulumi.<site>.yaml``.

The offline render and the fleet status both load a site's config here, so each sees what the
program will see. Secure values that cannot be decrypted offline become placeholders.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from components.config.fields import ConfigError, placeholder
from components.config.keys import SECRET_KEYS, key_problems
from components.config.loading import load_site_config
from components.config.stack import is_secure_leaf, secure_leaf_paths

REPO_ROOT = Path(__file__).resolve().parents[2]
# libyaml's loader when PyYAML was built with it: a large stack file parses ~10x faster.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def config_string(value: Any) -> str:
    """Pulumi hands every config value to the program as a string (JSON for lists and maps)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def load_stack_config(
    project_dir: Path, stack: str, stack_dir: Path | None = None
) -> tuple[dict[str, str], list[str], list[str]]:
    """Pulumi.yaml defaults merged with Pulumi.STACK.yaml: (config, secret keys, notes).

    The stack file is read from ``stack_dir`` (default: the project directory, as Pulumi does);
    the test suite keeps its own fixture stacks in ``tests/stacks``.
    """
    project = yaml.load((project_dir / "Pulumi.yaml").read_text(), Loader=_YAML_LOADER)
    stack_dir = stack_dir if stack_dir is not None else project_dir
    stack_file = stack_dir / f"Pulumi.{stack}.yaml"
    if not stack_file.is_file():
        raise ConfigError([f"{stack_file.name}: no such stack file (known: {', '.join(known_stacks(stack_dir))})"])
    try:
        stack_doc = yaml.load(stack_file.read_text(), Loader=_YAML_LOADER) or {}
    except yaml.YAMLError as error:
        raise ConfigError([f"{stack_file.name}: not valid YAML: {error}"]) from None
    name = project["name"]
    config: dict[str, str] = {}
    secret_keys: list[str] = []
    notes: list[str] = []
    declared = project.get("config") or {}
    for key, declaration in declared.items():
        full = key if ":" in key else f"{name}:{key}"
        if isinstance(declaration, dict) and "default" in declaration:
            config[full] = config_string(declaration["default"])
        if isinstance(declaration, dict) and declaration.get("secret"):
            secret_keys.append(full)
    stack_config = stack_doc.get("config") or {}
    # Pulumi refuses a stack file key without its namespace; say so, with the key to write.
    unprefixed = [str(key) for key in stack_config if ":" not in str(key)]
    if unprefixed:
        raise ConfigError([f"{stack_file.name}: {problem}" for problem in key_problems(unprefixed)])
    for key, value in stack_config.items():
        full = str(key)
        if is_secure_leaf(value):
            # Cannot be decrypted offline: a placeholder stands in, still a secret.
            config[full] = placeholder(full.split(":", 1)[1])
            secret_keys.append(full)
        elif leaves := secure_leaf_paths(value):
            # `--secret --path key.x`: the engine marks the whole key secret and decrypts the
            # leaves in place; here each secure leaf becomes a placeholder.
            config[full] = config_string(_with_placeholders(full.split(":", 1)[1], value, leaves))
            secret_keys.append(full)
        else:
            config[full] = config_string(value)
    # A secret the site needs but the stack file leaves unset (secrets are often set per
    # machine) renders as a placeholder so the rest of the site can still be reviewed;
    # `pulumi up` itself reports it as missing.
    values = {k.split(":", 1)[1]: v for k, v in config.items() if k.startswith(f"{name}:")}
    try:
        load_site_config(values)
    except ConfigError as error:
        for key in sorted(SECRET_KEYS):
            if any(p.startswith(f"{name}:{key}: required") for p in error.problems):
                config[f"{name}:{key}"] = placeholder(key)
                secret_keys.append(f"{name}:{key}")
                notes.append(f"note: {name}:{key} is not set in {stack_file.name}; rendered with a placeholder")
    return config, sorted(set(secret_keys)), notes


def _with_placeholders(key: str, value: Any, leaves: Sequence[tuple[str | int, ...]]) -> Any:
    """``value`` with each secure leaf replaced by the placeholder naming its path."""
    def walk(item: Any, at: tuple[str | int, ...]) -> Any:
        if at in leaves:
            return placeholder(key + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in at))
        if isinstance(item, dict):
            return {k: walk(v, (*at, str(k))) for k, v in item.items()}
        if isinstance(item, list):
            return [walk(v, (*at, i)) for i, v in enumerate(item)]
        return item

    return walk(value, ())


def known_stacks(project_dir: Path) -> list[str]:
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in project_dir.glob("Pulumi.*.yaml"))
