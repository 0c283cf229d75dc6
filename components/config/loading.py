"""Loading a stack's config into :class:`~components.config.site.SiteConfig`: decode what Pulumi
hands over (strings, JSON for arrays and objects), validate, and turn every problem into one line
naming the full key (:class:`~components.config.fields.ConfigError`), all problems at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Mapping

from pydantic import ValidationError

from components.config.fields import PROJECT, ConfigError, full_key
from components.config.keys import (
    PROJECT_KEYS,
    RETIRED_KEYS,
    SECRET_KEYS,
    did_you_mean,
    key_problems,
    secret_key_problems,
)
from components.config.nodes import NodeConfig
from components.config.site import CROSS_FIELD_MARKER, SiteConfig, cross_field_problems

_ALIASES = {name: (field.alias or name) for name, field in SiteConfig.model_fields.items()}
_NODE_ALIASES = {name: (field.alias or name) for name, field in NodeConfig.model_fields.items()}

#: Keys whose values Pulumi hands over as JSON text (arrays and objects).
_JSON_FIELDS = frozenset(
    _ALIASES[name]
    for name, field in SiteConfig.model_fields.items()
    if str(field.annotation).startswith(("tuple", "dict"))
)

#: Secret keys are declared in Pulumi.yaml with the default "" (so `secret: true` is enforced):
#: for them, and only them, "" means unset. Other optional keys are not declared there, so an
#: empty value was written by someone and is refused.
_EMPTY_MEANS_UNSET = SECRET_KEYS


def _describe(value: Any, key: str, secret_keys: frozenset[str] = frozenset()) -> str:
    if key in SECRET_KEYS or key in secret_keys:
        return "[secret]"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _format_errors(
    error: ValidationError, raw: Mapping[str, Any], secret_keys: frozenset[str] = frozenset()
) -> list[str]:
    problems: list[str] = []
    for item in error.errors():
        loc = list(item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        if message.startswith(CROSS_FIELD_MARKER):
            for line in message.removeprefix(CROSS_FIELD_MARKER).splitlines():
                key, text = line.split("\t", 1)
                problems.append(f"{full_key(key)}: {text}")
            continue
        if not loc:
            problems.append(f"{PROJECT}: {message}")
            continue
        top = _ALIASES.get(str(loc[0]), str(loc[0]))
        path = top
        for part in loc[1:]:
            if isinstance(part, int):
                path += f"[{part}]"
            else:
                path += "." + _NODE_ALIASES.get(part, part)
        if item["type"] == "missing":
            problems.append(f"{full_key(path)}: required but not set")
            continue
        if item["type"] == "extra_forbidden":
            known = _NODE_ALIASES.values() if len(loc) > 1 else _ALIASES.values()
            problems.append(f"{full_key(path)}: unknown setting{did_you_mean(str(loc[-1]), known, '')}")
            continue
        value = item.get("input")
        expected = message
        if item["type"] == "literal_error":
            expected = message.replace("Input should be", "expected")
        problems.append(f"{full_key(path)}: {_describe(value, top, secret_keys)} is invalid: {expected}")
    return problems


def parse_site_config(raw: Mapping[str, Any], secret_keys: frozenset[str] = frozenset()) -> SiteConfig:
    """Validate a stack's config (keys without the project prefix) or raise :class:`ConfigError`.

    Values of ``secret_keys`` (and :data:`~components.config.keys.SECRET_KEYS`) are never echoed
    in a message.
    """
    retired = [f"{full_key(key)}: {message}" for key, message in RETIRED_KEYS.items() if raw.get(key) not in (None, "")]
    if retired:
        raise ConfigError(retired)
    try:
        return SiteConfig.model_validate(dict(raw))
    except ValidationError as error:
        problems = _format_errors(error, raw, secret_keys)
    # Field errors stop pydantic before the cross-field rules: run them on the raw values.
    by_name = {name: raw.get(alias, SiteConfig.model_fields[name].get_default(call_default_factory=True))
               for name, alias in _ALIASES.items()}
    reported = {p.split(":", 2)[1].split("[")[0].split(".")[0] for p in problems}
    for key, message, involved in cross_field_problems(by_name):
        if not reported.intersection(involved):
            problems.append(f"{full_key(key)}: {message}")
    raise ConfigError(problems)


def decode_raw_config(
    values: Mapping[str, Any], secret_keys: frozenset[str] = frozenset()
) -> tuple[dict[str, Any], list[str]]:
    """Turn Pulumi's config strings (arrays and objects arrive as JSON) into Python values."""
    decoded: dict[str, Any] = {}
    problems: list[str] = []
    for key, value in values.items():
        if value == "" and key in _EMPTY_MEANS_UNSET:
            continue
        if key in _JSON_FIELDS and isinstance(value, str):
            try:
                decoded[key] = json.loads(value)
            except json.JSONDecodeError:
                kind = "an object" if key == "chartValues" else "a list"
                problems.append(f"{full_key(key)}: {_describe(value, key, secret_keys)} is invalid: expected {kind}")
                continue
        else:
            decoded[key] = value
    return decoded, problems


def load_site_config(
    values: Mapping[str, Any], secret_keys: frozenset[str] = frozenset(), other_keys: Iterable[str] = ()
) -> SiteConfig:
    """Validate config as Pulumi supplies it (strings, JSON for arrays/objects); all problems at once.

    ``values`` are this project's keys without the prefix. ``secret_keys``: the keys Pulumi marked
    secret; their values are never echoed, and a secret the program could not keep secret is a
    problem. ``other_keys``: the full keys of other namespaces (``azure-native:location``),
    checked by name only.
    """
    unknown = [key for key in values if key not in PROJECT_KEYS]
    problems = key_problems([f"{PROJECT}:{key}" for key in unknown] + list(other_keys))
    values = {key: value for key, value in values.items() if key not in unknown}
    decoded, decode_problems = decode_raw_config(values, secret_keys)
    problems += secret_key_problems(frozenset(secret_keys) - set(unknown)) + decode_problems
    try:
        site = parse_site_config(decoded, secret_keys)
    except ConfigError as error:
        raise ConfigError(problems + error.problems) from None
    if problems:
        raise ConfigError(problems)
    return site
