"""Property values as the engine sees them on the wire, and how the render shows them to people.

The SDK sends a resource's inputs as a protobuf ``Struct``: a secret is a mapping marked with
the SDK's secret signature (:data:`SECRET_SIG_KEY` = :data:`SECRET_SIG`) whose ``value`` holds the
plain value; an output not known before apply is the string :data:`UNKNOWN`; numbers are doubles.

* :func:`is_secret`, :func:`reveal` (secret wrappers removed), :func:`secret_paths` (where they are);
* :func:`mask`, :func:`mask_leaves` (secrets as ``[secret]``, whole values or chosen leaves);
* :func:`integers` (whole doubles as integers, unknowns as :data:`KNOWN_AFTER_APPLY`).

Plain functions of plain data: the policy check (components/preview/policy_check.py) needs
these and nothing else of the render.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
"""The engine's wire value for an unknown output."""
KNOWN_AFTER_APPLY = "(known after apply)"
"""How a value unknown until apply is shown (as ``pulumi preview`` shows it)."""


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SECRET_SIG_KEY) == SECRET_SIG


def reveal(value: Any) -> Any:
    if is_secret(value):
        return reveal(value.get("value"))
    if isinstance(value, dict):
        return {k: reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [reveal(v) for v in value]
    return value


def mask(value: Any) -> Any:
    if is_secret(value):
        return "[secret]"
    if isinstance(value, dict):
        return {k: mask(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v) for v in value]
    return value


def mask_leaves(value: dict[str, Any], leaves: Sequence[str]) -> dict[str, Any]:
    """``value`` with the leaves at the dotted ``leaves`` paths (those that exist) masked."""
    result = json.loads(json.dumps(value, default=str))
    for path in leaves:
        *parents, last = path.split(".")
        node: Any = result
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and last in node:
            node[last] = "[secret]"
    return result


def integers(value: Any) -> Any:
    """Whole floats as integers (the wire format has only doubles, the config has integers);
    values unknown until apply as ``(known after apply)``."""
    from pulumi.output import Unknown

    if isinstance(value, Unknown) or value == UNKNOWN:
        return KNOWN_AFTER_APPLY
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: integers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [integers(v) for v in value]
    return value


def secret_paths(value: Any, prefix: str = "") -> list[str]:
    if is_secret(value):
        return [prefix or "."]
    paths: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            paths += secret_paths(item, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            paths += secret_paths(item, f"{prefix}[{index}]")
    return paths
