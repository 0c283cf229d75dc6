"""The text a reviewer reads from an offline render: :func:`format_tree`.

Every resource under its parent with its inputs in full (secrets masked one by one unless
asked), its options, then per node what the run does to it and the file it would receive
(:func:`mask_credentials` hides the credentials in it), then the stack outputs. The same
result gives the same text.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping

from components.nodes import registries_yaml as ry
from components.preview.result import RenderedResource, RenderResult
from components.preview.values import UNKNOWN, integers, reveal


def _scalar(value: Any) -> str:
    if isinstance(value, str) and "\n" in value:
        # Script text: what it is, not all of it (it is in the repository).
        digest = hashlib.sha256(value.encode()).hexdigest()[:12]
        first = value.splitlines()[0][:60] if value else ""
        return json.dumps(f"{first}… ({len(value.encode())} bytes, sha256 {digest}…)", ensure_ascii=False)
    return json.dumps(value, ensure_ascii=False)


def _value_lines(key: str, value: Any, indent: str) -> list[str]:
    """``key: value`` in full: nested mappings and lists on their own lines, sorted keys."""
    if isinstance(value, dict) and value:
        lines = [f"{indent}{key}:"]
        for child in sorted(value, key=str):
            lines += _value_lines(str(child), value[child], indent + "  ")
        return lines
    if isinstance(value, list) and value:
        lines = [f"{indent}{key}:"]
        for item in value:
            if isinstance(item, (dict, list)) and item:
                lines += _value_lines("-", item, indent + "  ")
            else:
                lines.append(f"{indent}  - {_scalar(item)}")
        return lines
    if isinstance(value, (dict, list)):
        return [f"{indent}{key}: {json.dumps(value)}"]
    return [f"{indent}{key}: {_scalar(value)}"]


def _option_lines(options: Mapping[str, Any], indent: str) -> list[str]:
    shown = {k: v for k, v in options.items() if k != "additionalSecretOutputs"}
    if not shown:
        return []
    parts = []
    for key in sorted(shown):
        value = shown[key]
        parts.append(key if value is True else f"{key}={json.dumps(value)}")
    return [f"{indent}options: {', '.join(parts)}"]


def format_tree(result: RenderResult, show_secrets: bool = False) -> str:
    """The text a reviewer reads: every resource with its inputs in full (secrets masked one by
    one), its options, each node's plan and desired file, then the stack outputs."""
    children: dict[str | None, list[RenderedResource]] = {}
    for resource in result.resources:
        children.setdefault(resource.parent, []).append(resource)
    known = {r.urn for r in result.resources}
    lines: list[str] = []

    def walk(parent: str | None, depth: int) -> None:
        for resource in children.get(parent, []):
            indent = "  " * depth
            lines.append(f"{indent}{resource.type}  {resource.name}")
            shown = resource.shown_inputs(show_secrets)
            for key in sorted(shown):
                lines.extend(_value_lines(key, shown[key], indent + "    "))
            lines.extend(_option_lines(resource.options, indent + "    "))
            walk(resource.urn, depth + 1)

    roots = [p for p in children if p is None or p not in known]
    for root in roots:
        walk(root, 0)
    lines += _node_payloads(result, show_secrets)
    lines.append("")
    lines.append("outputs:")
    for key in sorted(result.outputs):
        value = result.outputs[key]
        shown = "[secret]" if key in result.secret_outputs and not show_secrets else integers(value)
        lines.append(f"    {key}: {json.dumps(shown, sort_keys=True)}")
    return "\n".join(lines)


def mask_credentials(document: Mapping[str, Any]) -> dict[str, Any]:
    """A registries.yaml document with every ``auth`` value but the user name masked."""
    masked = json.loads(json.dumps(document, default=str))
    for entry in (masked.get("configs") or {}).values():
        auth = entry.get("auth") if isinstance(entry, dict) else None
        if isinstance(auth, dict):
            for key in auth:
                if key != "username":
                    auth[key] = "[secret]"
    return masked


def _node_payloads(result: RenderResult, show_secrets: bool) -> list[str]:
    """Per node: what the run does, and the apply payload decoded (the file, credentials masked)."""
    from components.nodes.payload import decode_apply_stdin

    lines: list[str] = []
    for command in result.by_type("command:remote:Command"):
        node = command.name.removesuffix("-apply")
        summary = result.node_summaries.get(node)
        stdin = reveal(command.inputs).get("stdin")
        if summary is None and not isinstance(stdin, str):
            continue
        lines += ["", f"{node}:"]
        if summary is not None:
            lines.append(f"    plan: {summary}")
        if not isinstance(stdin, str) or not stdin or stdin == UNKNOWN:
            continue
        plan = decode_apply_stdin(stdin)
        lines.append(f"    expected current file: {plan.expected}")
        lines.append(f"    entries owned: {', '.join(f'{section}[{key}]' for section, key in plan.owned)}")
        lines.append("    restore on destroy: " + ("no file" if plan.restore is None else f"{len(plan.restore)} bytes"))
        content = plan.content if show_secrets else ry.dump(mask_credentials(plan.document))
        note = "" if show_secrets else " (credentials masked; --show-secrets prints the file)"
        lines.append(f"    desired registries.yaml{note}:")
        lines += [f"      {line}" for line in content.decode().splitlines()]
    return lines
