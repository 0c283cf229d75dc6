"""The policy pack, run on an offline render: one rule set for the render and ``pulumi preview``.

``pulumi preview --policy-pack policy`` hands every resource to the validators in
``policy/edge_policies.py``. The offline render calls the very same validators on what it
rendered, with the same fleet config (``policy/config.json``, the file the workflows pass as
``--policy-pack-config``), so a stack that renders cleanly also passes the pack
(docs/config-rules.md, "Opt-ins").
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.command_line import read_user_file
from components.preview.values import reveal

DEFAULT_POLICY_CONFIG = Path("policy") / "config.json"
#: The enforcement levels a policy can be set to.
LEVELS = ("mandatory", "advisory", "remediate", "disabled")


@dataclass(frozen=True)
class Violation:
    """One policy's finding on one rendered resource."""

    policy: str
    resource: str
    message: str
    mandatory: bool

    def __str__(self) -> str:
        kind = "policy" if self.mandatory else "advisory policy"
        return f"{kind} {self.policy} ({self.resource}): {self.message}"


class PolicyConfigError(Exception):
    """The policy pack's config file cannot be used: one line naming the file and what is wrong."""


def load_policy_config(path: Path, required: bool = False) -> dict[str, Any]:
    """``policy/config.json`` (``{policy name: {key: value}}``), or {} when the fleet has none.

    ``required``: the file was named on the command line, so a missing one is an error.
    :raises PolicyConfigError: a missing required file, one that is not JSON (with its line and
        column) or not of that shape.
    """
    if not path.exists() and not required:
        return {}
    try:
        text = read_user_file(path, "a JSON file", encoding="utf-8")
    except ValueError as error:
        raise PolicyConfigError(str(error)) from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise PolicyConfigError(f"{path}: not valid JSON: line {error.lineno}, column {error.colno}: {error.msg}") from None
    except RecursionError:
        raise PolicyConfigError(f"{path}: not valid JSON: nested too deep") from None
    expected = '{"policy name": {"setting": value} or an enforcement level}'
    if not isinstance(document, dict):
        raise PolicyConfigError(f"{path}: expected an object {expected}, found {type(document).__name__}")
    for name, entry in document.items():
        if isinstance(entry, str) and entry not in LEVELS:
            raise PolicyConfigError(f"{path}: {name}: {entry!r} is not an enforcement level: expected one of {', '.join(LEVELS)}")
        if not isinstance(entry, (dict, str)):
            raise PolicyConfigError(f"{path}: {name}: expected an object of settings or an enforcement level "
                                    f"({', '.join(LEVELS)}), found {json.dumps(entry)[:40]}")
    return document


def _level(policy: Any, fleet_config: Mapping[str, Any]) -> str:
    """mandatory, advisory or disabled: the pack's level, unless the fleet config sets another
    (``"name": "mandatory"``, or ``"enforcementLevel"`` in the policy's settings)."""
    entry = fleet_config.get(policy.name)
    if isinstance(entry, str):
        return entry
    if isinstance(entry, dict) and isinstance(entry.get("enforcementLevel"), str):
        return str(entry["enforcementLevel"])
    return str(policy.enforcement_level.value) if policy.enforcement_level else "mandatory"


def _config_for(policy: Any, fleet_config: Mapping[str, Any]) -> dict[str, Any]:
    """The config the policy server would hand this policy: its schema's defaults, then the fleet's."""
    schema = getattr(policy, "config_schema", None)
    defaults = {
        key: spec["default"]
        for key, spec in ((schema.properties if schema else None) or {}).items()
        if isinstance(spec, dict) and "default" in spec
    }
    settings = fleet_config.get(policy.name)
    settings = {k: v for k, v in settings.items() if k != "enforcementLevel"} if isinstance(settings, dict) else {}
    return {**defaults, **settings}


def policy_violations(
    resources: Sequence[Any], stack_dir: Path, fleet_config: Mapping[str, Any]
) -> list[Violation]:
    """Run every policy of the pack on the rendered resources (``RenderedResource``s), reading
    stack opt-ins from ``stack_dir`` as the pack reads them from the project directory."""
    from pulumi_policy import PolicyCustomTimeouts, PolicyResourceOptions, ResourceValidationArgs
    from pulumi_policy.proxy import unknown_checking_proxy

    from policy import edge_policies

    options = PolicyResourceOptions(
        protect=False, ignore_changes=[], delete_before_replace=None, aliases=[],
        custom_timeouts=PolicyCustomTimeouts(0, 0, 0), additional_secret_outputs=[],
    )
    found: list[Violation] = []
    token = edge_policies.STACK_DIR.set(stack_dir)
    try:
        for policy in edge_policies.POLICIES:
            level = _level(policy, fleet_config)
            if level == "disabled":
                continue
            mandatory = level == "mandatory"
            config = _config_for(policy, fleet_config)
            for resource in resources:
                args = ResourceValidationArgs(
                    resource.type, unknown_checking_proxy(reveal(resource.inputs)), resource.urn, resource.name,
                    options, None, config,
                )

                def report(
                    message: str, _urn: str | None = None, *, _policy: str = policy.name, _name: str = resource.name,
                    _mandatory: bool = mandatory,
                ) -> None:
                    found.append(Violation(_policy, _name, message, _mandatory))

                policy.validate(args, report)
    finally:
        edge_policies.STACK_DIR.reset(token)
    return found
