"""The stack files as ``pulumi up`` reads them: Pulumi.yaml's defaults merged with ``Pulumi.<site>.yaml``.

The offline render and the fleet status both load a site's config here, so each sees what the
program will see. Secure values that cannot be decrypted offline become placeholders.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from components.config.fields import PROJECT, ConfigError, placeholder
from components.config.keys import SECRET_KEYS, key_problems
from components.config.loading import MAX_DEPTH, load_site_config
from components.config.site import SiteConfig
from components.config.stack import is_secure_leaf, load_stack_yaml, secure_leaf_paths

REPO_ROOT = Path(__file__).resolve().parents[2]


#: At most this many values (leaves, lists and mappings) in one key's value: YAML aliases can make a
#: small file stand for a huge value (each alias repeats its anchor), which JSON would expand.
MAX_VALUE_ITEMS = 100_000


def config_string(value: Any) -> str:
    """Pulumi hands every config value to the program as a string (JSON for lists and maps)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""  # `key:` with nothing after it: an empty value, refused where a value is needed
    if isinstance(value, (list, dict)):
        # YAML dates and timestamps inside a list or map are text to Pulumi.
        return json.dumps(value, default=str)
    return str(value)


def _value_problem(value: Any) -> str | None:
    """Why a stack file value cannot be handed to the program, or None."""
    count, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        count += 1
        if count > MAX_VALUE_ITEMS:
            return f"more than {MAX_VALUE_ITEMS} items (YAML aliases?)"
        if depth > MAX_DEPTH:
            return f"nested more than {MAX_DEPTH} levels deep"
        if isinstance(item, dict):
            bad = [k for k in item if not isinstance(k, (str, int, float, bool)) and k is not None]
            if bad:
                return "a mapping key is not a plain value (a YAML complex key?)"
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
        elif isinstance(item, (set, tuple, bytes)):
            return f"a YAML {type(item).__name__} is not a config value (a list, a map, text, a number or true/false)"
    return None


def _read_yaml(path: Path, what: str) -> Any:
    """A YAML file's document; :raises ConfigError: one line naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError([f"{what}: not UTF-8 text"]) from None
    except OSError as error:
        raise ConfigError([f"{what}: cannot be read: {error.strerror or error}"]) from None
    try:
        # Booleans as the Pulumi CLI reads them: `yes` is text, refused where true/false belongs.
        return load_stack_yaml(text)
    except yaml.YAMLError as error:
        raise ConfigError([f"{what}: not valid YAML: {' '.join(str(error).split())}"]) from None
    except RecursionError:
        raise ConfigError([f"{what}: not valid YAML: nested too deep"]) from None


def load_stack_config(
    project_dir: Path, stack: str, stack_dir: Path | None = None
) -> tuple[dict[str, str], list[str], list[str]]:
    """Pulumi.yaml defaults merged with Pulumi.STACK.yaml: (config, secret keys, notes).

    The stack file is read from ``stack_dir`` (default: the project directory, as Pulumi does);
    the test suite keeps its own fixture stacks in ``tests/stacks``.

    :raises ConfigError: one line per problem: a file that cannot be read or is not YAML (the line
        names the file), a key without its namespace, a value that is not a config value (the line
        names the key).
    """
    project = _read_yaml(project_dir / "Pulumi.yaml", "Pulumi.yaml")
    if not isinstance(project, dict) or not isinstance(project.get("name"), str):
        raise ConfigError(["Pulumi.yaml: expected a mapping with the project's `name`"])
    stack_dir = stack_dir if stack_dir is not None else project_dir
    stack_file = stack_dir / f"Pulumi.{stack}.yaml"
    if not stack_file.is_file():
        raise ConfigError([f"{stack_file.name}: no such stack file (known: {', '.join(known_stacks(stack_dir))})"])
    stack_doc = _read_yaml(stack_file, stack_file.name)
    if stack_doc is None:
        stack_doc = {}
    if not isinstance(stack_doc, dict):
        raise ConfigError([f"{stack_file.name}: expected a mapping (with a `config:` mapping of keys to values), "
                           f"found {_kind(stack_doc)}"])
    name = project["name"]
    config: dict[str, str] = {}
    secret_keys: list[str] = []
    notes: list[str] = []
    declared = project.get("config") or {}
    if not isinstance(declared, dict):
        raise ConfigError([f"Pulumi.yaml: `config:` must be a mapping of keys to declarations, found {_kind(declared)}"])
    for key, declaration in declared.items():
        full = str(key) if ":" in str(key) else f"{name}:{key}"
        if isinstance(declaration, dict) and "default" in declaration:
            config[full] = config_string(declaration["default"])
        if isinstance(declaration, dict) and declaration.get("secret"):
            secret_keys.append(full)
    stack_config = stack_doc.get("config")
    if stack_config is None:
        stack_config = {}
    if not isinstance(stack_config, dict):
        raise ConfigError([f"{stack_file.name}: `config:` must be a mapping of keys to values, found {_kind(stack_config)}"])
    # Pulumi refuses a stack file key without its namespace; say so, with the key to write.
    unprefixed = [str(key) for key in stack_config if ":" not in str(key)]
    if unprefixed:
        raise ConfigError([f"{stack_file.name}: {problem}" for problem in key_problems(unprefixed)])
    bad_values = [f"{key}: {problem}" for key, value in stack_config.items() if (problem := _value_problem(value))]
    if bad_values:
        raise ConfigError(bad_values)
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


def site_config(config: Mapping[str, str], secret_keys: Iterable[str] = ()) -> SiteConfig:
    """The site of a stack's config as :func:`load_stack_config` gives it (full keys), validated as
    the program validates it: this project's keys, which of them are secrets, and the names of
    the other namespaces' keys (``azure-native:locaton``). :raises ConfigError: one line per problem."""
    prefix = f"{PROJECT}:"
    values = {key[len(prefix):]: value for key, value in config.items() if key.startswith(prefix)}
    secret = frozenset(key[len(prefix):] for key in secret_keys if key.startswith(prefix))
    others = [key for key in config if not key.startswith(prefix)]
    return load_site_config(values, secret, others)


def load_stack_site_config(project_dir: Path, stack: str, stack_dir: Path | None = None) -> tuple[SiteConfig, dict[str, str]]:
    """A stack file read and validated as ``pulumi up`` would: (the site, the merged config).
    :raises ConfigError: one line per problem, each naming its key (or the file)."""
    config, secret_keys, _notes = load_stack_config(project_dir, stack, stack_dir)
    return site_config(config, secret_keys), config


def _kind(value: Any) -> str:
    return {str: "text", int: "a number", float: "a number", bool: "true/false", list: "a list"}.get(
        type(value), f"a {type(value).__name__}"
    )


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
