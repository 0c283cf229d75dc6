"""The stack's config as the program receives it, with which values are secrets.

Values are read through :class:`pulumi.Config`; which keys hold a secret comes from the engine
(the language host passes them in ``PULUMI_CONFIG_SECRET_KEYS``; an in-process run such as the
offline renderer sets them with ``pulumi.runtime.set_all_config``). Both are consulted.

The engine marks a whole key secret when any value inside it is: ``pulumi config set --secret
--path chartValues.auth.password x`` makes ``edge-registry:chartValues`` a secret key, and the
program gets the whole object decrypted. Which *leaves* were set with ``--secret`` is only
written in the stack file (``Pulumi.<stack>.yaml``, as ``{secure: ...}`` leaves), so it is read
from there: only those leaves become secrets in the Helm values. When the stack file does not say
(config from an ESC environment, a ``--config-file`` elsewhere, a whole object set with
``--secret``), every leaf of the object is a secret.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import config as runtime_config

from components.config.fields import PROJECT

#: A path into a config object: mapping keys and list indexes.
LeafPath = tuple[str | int, ...]

# libyaml's loader when PyYAML was built with it: a large stack file parses ~10x faster.
_BASE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_BOOL_TAG = "tag:yaml.org,2002:bool"


class StackFileLoader(_BASE_LOADER):  # type: ignore[misc,valid-type]
    """PyYAML's safe loader, reading booleans as the Pulumi CLI does.

    PyYAML follows YAML 1.1, where ``yes``, ``no``, ``on`` and ``off`` are booleans; the Pulumi
    CLI reads stack files with Go's yaml.v3 (YAML 1.2), where only ``true`` and ``false`` (any of
    ``true``, ``True``, ``TRUE``) are, and ``yes`` is the text "yes". Read here the same way, the
    render, the fleet status and ``pulumi up`` see the same value, and a ``yes`` where a boolean
    belongs is refused by all of them with the same message.
    """

    yaml_implicit_resolvers = {
        first: [(tag, pattern) for tag, pattern in resolvers if tag != _BOOL_TAG]
        for first, resolvers in _BASE_LOADER.yaml_implicit_resolvers.items()
    }


StackFileLoader.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"\A(?:true|True|TRUE|false|False|FALSE)\Z"), list("tTfF")
)


def load_stack_yaml(text: str) -> Any:
    """A stack file's document, its booleans read as the Pulumi CLI reads them."""
    return yaml.load(text, Loader=StackFileLoader)  # noqa: S506 - a safe loader


@dataclass(frozen=True)
class StackConfig:
    """The project's config values (keys without the ``edge-registry:`` prefix) and their secrecy."""

    #: Values as Pulumi hands them to a program: strings, JSON text for lists and objects.
    values: dict[str, Any]
    #: Keys whose values are secrets.
    secret_keys: frozenset[str] = frozenset()
    #: For secret object keys: the leaves set with ``--secret`` (absent: every leaf is secret).
    secret_leaves: Mapping[str, tuple[LeafPath, ...]] = field(default_factory=dict)
    #: For secret object keys: the value as written in the stack file, ``{secure: ...}`` leaves
    #: included; checked against the value the engine passed before its leaves are trusted.
    stack_file_values: Mapping[str, Any] = field(default_factory=dict)

    def is_secret(self, key: str) -> bool:
        """Whether ``key``'s value (or part of it) is a secret."""
        return key in self.secret_keys

    def leaves_to_hide(self, key: str, value: Any) -> list[LeafPath]:
        """The leaves of object ``value`` (config ``key``) that must be secrets.

        The stack file's secure leaves are trusted only when the rest of the file's value equals
        ``value`` (the file is the one the engine read); otherwise every leaf is secret.
        """
        if key not in self.secret_keys:
            return []
        if key in self.stack_file_values:
            written = self.stack_file_values[key]
            paths = secure_leaf_paths(written)
            if paths and matches_stack_file(written, value):
                return paths
            return leaf_paths(value)
        known = self.secret_leaves.get(key)
        return list(known) if known else leaf_paths(value)


def _project_keys(source: Mapping[str, Any]) -> list[str]:
    return [k.split(":", 1)[1] for k in source if k.startswith(f"{PROJECT}:")]


def config_keys() -> list[str]:
    """Every ``edge-registry:*`` key the engine passed (without the prefix), in a stable order."""
    keys = _project_keys(runtime_config.get_config_env()) + _project_keys(runtime_config.CONFIG.get())
    return list(dict.fromkeys(keys))


def secret_config_keys() -> frozenset[str]:
    """The project's keys the engine marked secret (without the prefix)."""
    full = set(runtime_config.get_config_secret_keys_env()) | set(runtime_config._SECRET_KEYS.get())
    return frozenset(k.split(":", 1)[1] for k in full if k.startswith(f"{PROJECT}:"))


def leaf_paths(value: Any, prefix: LeafPath = ()) -> list[LeafPath]:
    """Paths of every scalar leaf of a JSON-like value."""
    if isinstance(value, Mapping):
        return [p for k, v in value.items() for p in leaf_paths(v, (*prefix, str(k)))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in leaf_paths(v, (*prefix, i))]
    return [prefix]


def is_secure_leaf(value: Any) -> bool:
    """A stack file's encrypted value: a mapping whose only key is ``secure``."""
    return isinstance(value, Mapping) and set(value) == {"secure"}


def secure_leaf_paths(value: Any, prefix: LeafPath = ()) -> list[LeafPath]:
    """Paths of the ``{secure: ...}`` leaves of a value as written in a stack file."""
    if is_secure_leaf(value):
        return [prefix]
    if isinstance(value, Mapping):
        return [p for k, v in value.items() for p in secure_leaf_paths(v, (*prefix, str(k)))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in secure_leaf_paths(v, (*prefix, i))]
    return []


def matches_stack_file(written: Any, value: Any) -> bool:
    """Whether ``value`` (as the engine passed it) is ``written`` (as in the stack file) with its
    secure leaves decrypted: same structure, same plain leaves."""
    if is_secure_leaf(written):
        return not isinstance(value, (Mapping, list))
    if isinstance(written, Mapping):
        return isinstance(value, Mapping) and set(map(str, written)) == set(map(str, value)) and all(
            matches_stack_file(v, value[str(k)]) for k, v in written.items()
        )
    if isinstance(written, list):
        return isinstance(value, list) and len(written) == len(value) and all(
            matches_stack_file(w, v) for w, v in zip(written, value, strict=True)
        )
    return bool(written == value)


def stack_file_objects(project_dir: Path, stack: str) -> dict[str, Any]:
    """Per project key, the object values of ``Pulumi.<stack>.yaml`` that hold secure leaves."""
    try:
        document = load_stack_yaml((project_dir / f"Pulumi.{stack}.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}
    found: dict[str, Any] = {}
    for key, value in (document.get("config") or {}).items() if isinstance(document, dict) else ():
        name = key if ":" in str(key) else f"{PROJECT}:{key}"
        if not str(name).startswith(f"{PROJECT}:") or is_secure_leaf(value):
            continue  # a whole secure value: every leaf is secret, the default
        if secure_leaf_paths(value):
            found[str(name).split(":", 1)[1]] = value
    return found


def stack_file_secret_leaves(project_dir: Path, stack: str) -> dict[str, tuple[LeafPath, ...]]:
    """Per project key, the secure leaves nested in it in ``Pulumi.<stack>.yaml`` (if readable)."""
    return {k: tuple(secure_leaf_paths(v)) for k, v in stack_file_objects(project_dir, stack).items()}


def read_stack_config(project_dir: Path | None = None) -> StackConfig:
    """The project's config through :class:`pulumi.Config`, with its secret keys and leaves.

    ``project_dir`` holds ``Pulumi.<stack>.yaml`` (the program's working directory under
    ``pulumi up``); None skips the stack file, so every leaf of a secret object is secret.
    """
    config = pulumi.Config(PROJECT)
    values = {key: config.get(key) for key in config_keys()}
    secret = secret_config_keys()
    written = stack_file_objects(project_dir, pulumi.get_stack()) if project_dir is not None else {}
    return StackConfig(
        values={k: v for k, v in values.items() if v is not None},
        secret_keys=secret,
        stack_file_values={k: v for k, v in written.items() if k in secret},
    )


def hide_leaves(value: Any, paths: Sequence[LeafPath]) -> Any:
    """``value`` with the leaves at ``paths`` wrapped in ``Output.secret`` (new containers, same leaves)."""
    targets = {tuple(p) for p in paths}

    def walk(item: Any, at: LeafPath) -> Any:
        if at in targets:
            return pulumi.Output.secret(item)
        if isinstance(item, Mapping):
            return {k: walk(v, (*at, str(k))) for k, v in item.items()}
        if isinstance(item, list):
            return [walk(v, (*at, i)) for i, v in enumerate(item)]
        return item

    return walk(value, ())
