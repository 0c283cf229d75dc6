"""Loading a stack's config into :class:`~components.config.site.SiteConfig`: decode what Pulumi
hands over (strings, JSON for arrays and objects), validate, and turn every problem into one line
naming the full key (:class:`~components.config.fields.ConfigError`), all problems at once.
"""

from __future__ import annotations

import json
import re
import reprlib
from collections.abc import Iterable
from typing import Any, Mapping

from pydantic import SecretStr, ValidationError

from components.config.fields import PROJECT, ConfigError, ValueEcho, full_key
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
_NAMES = {alias: name for name, alias in _ALIASES.items()}
_NODE_NAMES = {alias: name for name, alias in _NODE_ALIASES.items()}

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

#: How deep a list or object value may nest (nodes, chartValues): far more than any real value,
#: and well inside what the JSON decoder and the checks can walk.
MAX_DEPTH = 32

#: The names of settings and node fields: in a secret object they are the schema, not the secret.
_FIELD_NAMES = frozenset(_NODE_ALIASES) | frozenset(_NODE_ALIASES.values())

#: What a secret value is shown as.
HIDDEN = "[secret]"

# A value shown in a message: short, whatever its size or depth.
_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 80
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxdict, _SHORT.maxtuple = 3, 6, 6, 6
_SHORT.maxlong = 40


#: pydantic's words for a value of the wrong type, in the words of a stack file.
_TYPE_MESSAGES = {
    "tuple_type": "expected a list",
    "list_type": "expected a list",
    "dict_type": "expected an object (key: value pairs)",
    "model_type": "expected an object (a node: host, role, …)",
    "model_attributes_type": "expected an object (a node: host, role, …)",
    "string_type": "expected text",
}


#: The start of pydantic's own messages ("Input should be 'a' or 'b'", "List should have at least
#: 1 item"): replaced by "expected ...".
_PYDANTIC_WORDS = re.compile(r"\A(?:Input|String|List|Tuple|Dictionary|Set|Value) should (?:be |have )?")

#: pydantic's errors for a number out of a field's bounds (``Field(ge=..., le=...)``).
_BOUND_ERRORS = frozenset({"greater_than_equal", "less_than_equal", "greater_than", "less_than"})


def _field(loc: list[Any]) -> Any:
    """The model field a pydantic location points at (a site setting or a node's field)."""
    # pydantic locates an error by the key as given: the field's alias (the config key) or its name
    if len(loc) == 1:
        return SiteConfig.model_fields.get(_NAMES.get(str(loc[0]), str(loc[0])))
    if str(loc[0]) == "nodes" and isinstance(loc[-1], str):
        return NodeConfig.model_fields.get(_NODE_NAMES.get(loc[-1], loc[-1]))
    return None


def _bounds(loc: list[Any], ctx: Mapping[str, Any]) -> str:
    """"a whole number from 1 to 65535": the field's bounds, as a stack file's reader says them."""
    low = high = None
    field = _field(loc)
    for bound in field.metadata if field is not None else ():
        low = getattr(bound, "ge", low)
        high = getattr(bound, "le", high)
    low = ctx.get("ge", low) if low is None else low
    high = ctx.get("le", high) if high is None else high
    if low is not None and high is not None:
        return f"a whole number from {low} to {high}"
    if low is not None:
        return f"a whole number of at least {low}"
    if high is not None:
        return f"a whole number of at most {high}"
    return "a whole number within its bounds (docs/configuration.md)"


def is_secret(key: str, secret_keys: Iterable[str] = ()) -> bool:
    """Whether ``key``'s value is a secret: a key that always is, or one set with ``--secret``."""
    return key in SECRET_KEYS or key in secret_keys


def _describe(value: Any, key: str, secret_keys: frozenset[str] = frozenset()) -> str:
    if is_secret(key, secret_keys) or isinstance(value, SecretStr):
        return HIDDEN
    text = _SHORT.repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _depth(value: Any) -> int:
    """How deep lists and mappings nest in ``value`` (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, Mapping):
            children: Iterable[Any] = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        deepest = max(deepest, level + 1)
        if deepest > MAX_DEPTH:
            return deepest
        stack.extend((child, level + 1) for child in children)
    return deepest


def _secret_texts(values: Mapping[str, Any], secret_keys: Iterable[str]) -> set[str]:
    """Every text a secret value could be echoed as: the value, each leaf and mapping key of a
    list or object (decoded from its JSON too), in the forms a message may quote them."""
    found: set[str] = set()

    def add(text: str) -> None:
        for form in (text, text.strip(), repr(text)[1:-1], json.dumps(text)[1:-1]):
            if form.strip():
                found.add(form)

    def walk(item: Any) -> None:
        stack = [(item, 0)]
        while stack:
            current, level = stack.pop()
            if level > MAX_DEPTH:
                continue
            if isinstance(current, SecretStr):
                current = current.get_secret_value()
            if isinstance(current, str):
                add(current)
                if current.lstrip().startswith(("[", "{")):
                    try:
                        stack.append((json.loads(current), level + 1))
                    except (ValueError, RecursionError):
                        pass
            elif isinstance(current, Mapping):
                for k, v in current.items():
                    if str(k) not in _FIELD_NAMES:  # a node's `host`: the project's word, not the value's
                        add(str(k))
                    stack.append((v, level + 1))
            elif isinstance(current, (list, tuple)):
                stack.extend((v, level + 1) for v in current)
            elif current is not None:
                add(str(current))

    for key, value in values.items():
        if is_secret(key, secret_keys):
            walk(value)
    return found


def redact(problems: list[str], secrets: set[str]) -> list[str]:
    """``problems`` with every occurrence of a secret text after the key replaced by ``[secret]``.

    Texts of three characters or fewer are replaced only where they stand alone (not inside a
    word), so a secret ``10`` hides ``10`` but not the ``1`` of ``PT1H``."""
    texts = sorted((t for t in secrets if t != HIDDEN), key=lambda t: (-len(t), t))  # longest first, stable
    if not texts or not problems:
        return problems
    pattern = re.compile("|".join(
        re.escape(t) if len(t) > 3 else rf"(?<![A-Za-z0-9]){re.escape(t)}(?![A-Za-z0-9])" for t in texts
    ))
    redacted = []
    for problem in problems:
        key, sep, message = problem.partition(": ")
        # What is already hidden stays as it is (a secret "secret" must not rewrite "[secret]").
        shown = HIDDEN.join(pattern.sub(HIDDEN, piece) for piece in message.split(HIDDEN))
        redacted.append(key + sep + shown if sep else problem)
    return redacted


_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _path(loc: list[Any], secret: bool) -> str:
    """``key[0].field`` for a pydantic location; inside a secret value, only the project's own
    field names and list indexes are shown (an unknown key is part of the value)."""
    path = _ALIASES.get(str(loc[0]), str(loc[0]))
    for part in loc[1:]:
        if isinstance(part, int):
            path += f"[{part}]"
        elif secret and part not in _FIELD_NAMES:
            path += f".{HIDDEN}"
        elif _NAME_RE.fullmatch(str(part)):
            path += "." + _NODE_ALIASES.get(part, part)
        else:
            path += f"[{_SHORT.repr(str(part))}]"  # a key with spaces, a newline…: quoted, one line
    return path


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
        secret = is_secret(top, secret_keys)
        path = _path(loc, secret)
        if item["type"] == "missing":
            problems.append(f"{full_key(path)}: required but not set")
            continue
        if item["type"] == "extra_forbidden":
            known = _NODE_ALIASES.values() if len(loc) > 1 else _ALIASES.values()
            problems.append(f"{full_key(path)}: unknown setting{did_you_mean(str(loc[-1]), known, '')}")
            continue
        cause = (item.get("ctx") or {}).get("error")
        if secret and isinstance(cause, ValueEcho):
            message = cause.hidden
        value = item.get("input")
        expected = _TYPE_MESSAGES.get(item["type"], message)
        if item["type"] in _BOUND_ERRORS:
            expected = f"expected {_bounds(loc, item.get('ctx') or {})}"
        elif _PYDANTIC_WORDS.search(expected):  # pydantic's own words (literal_error: "Input should be 'a' or 'b'")
            expected = "expected " + _PYDANTIC_WORDS.sub("", expected, count=1).strip()
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
    raise ConfigError(redact(problems, _secret_texts(raw, secret_keys)))


def decode_raw_config(
    values: Mapping[str, Any], secret_keys: frozenset[str] = frozenset()
) -> tuple[dict[str, Any], list[str]]:
    """Turn Pulumi's config strings (arrays and objects arrive as JSON) into Python values."""
    decoded: dict[str, Any] = {}
    problems: list[str] = []
    for key, value in values.items():
        if value == "" and key in _EMPTY_MEANS_UNSET:
            continue
        kind = "an object" if key == "chartValues" else "a list"
        if key in _JSON_FIELDS and isinstance(value, str):
            try:
                value = json.loads(value)
            except (ValueError, RecursionError):  # JSONDecodeError, a number too long, nesting too deep
                problems.append(f"{full_key(key)}: {_describe(value, key, secret_keys)} is invalid: expected {kind}")
                continue
        if key in _JSON_FIELDS and _depth(value) > MAX_DEPTH:
            problems.append(f"{full_key(key)}: {_describe(value, key, secret_keys)} is invalid: {kind} nested "
                            f"more than {MAX_DEPTH} levels deep")
            continue
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
    secret_keys = frozenset(secret_keys)
    unknown = [key for key in values if key not in PROJECT_KEYS]
    problems = key_problems([f"{PROJECT}:{key}" for key in unknown] + list(other_keys))
    known = {key: value for key, value in values.items() if key not in unknown}
    decoded, decode_problems = decode_raw_config(known, secret_keys)
    problems += secret_key_problems(secret_keys - set(unknown)) + decode_problems
    try:
        site = parse_site_config(decoded, secret_keys)
    except ConfigError as error:
        problems += error.problems
    else:
        if not problems:
            return site
    # A secret never shows, not even where another key's message quotes it.
    raise ConfigError(redact(problems, _secret_texts(values, secret_keys)))
