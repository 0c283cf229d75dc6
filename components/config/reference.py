"""Views of the config model: ``Pulumi.yaml``'s ``config:`` block and the tables of docs/configuration.md.

:class:`~components.config.site.SiteConfig` is the one source of every key, type, default and
description; these views are generated from it, never edited by hand:

    python -m components config-reference --write    # rewrite Pulumi.yaml's config block and the tables of docs/configuration.md
    python -m components config-reference --check    # exit 1 if either is out of date (the tests run this)

What ``Pulumi.yaml`` declares: every key with a default or that is required, typed, so ``pulumi
config set`` and ``pulumi up`` check types and refuse a missing required key. Not declared:
objects (``nodes``, ``chartValues``: Pulumi cannot declare object keys), optional keys without
a default (declaring those would need a ``""`` default, and an explicit empty value could then no
longer be told apart from "unset", docs/config-rules.md), and optional secret keys: the CLI
validates a declared default like a stack value, and refuses a ``secret: true`` key whose value
is not encrypted ("configuration key 'kubeconfig' must be encrypted as it's secret"), while a
declaration without a default makes the key required.
"""

from __future__ import annotations

import sys
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from components.command_line import CommandParser
from components.config.keys import SECRET_KEYS
from components.config.nodes import NodeConfig
from components.config.site import SiteConfig

ROOT = Path(__file__).resolve().parents[2]
PROJECT_FILE = ROOT / "Pulumi.yaml"
CONFIGURATION_DOC = ROOT / "docs" / "configuration.md"
SITE_TABLE = ("<!-- config-table:begin (python -m components config-reference --write) -->", "<!-- config-table:end -->")
NODE_TABLE = ("<!-- node-table:begin (python -m components config-reference --write) -->", "<!-- node-table:end -->")
CONFIG_MARKER = "config:\n"
_NOTE_PREFIXES = ("# Generated from components/config/site.py", "# Not declared")


def key_of(name: str, field: FieldInfo) -> str:
    return field.alias or name


def _kind(annotation: Any) -> tuple[str, str | None]:
    """(type, item type) of an annotation, in Pulumi's config type names."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _kind(inner[0])
    if annotation is bool:
        return "boolean", None
    if annotation is int:
        return "integer", None
    if annotation in (str, SecretStr) or origin is Literal:
        return "string", None
    if origin is tuple:
        item = typing.get_args(annotation)[0]
        return "array", "object" if isinstance(item, type) and issubclass(item, BaseModel) else _kind(item)[0]
    return "object", None


def _default(field: FieldInfo) -> Any:
    value = field.get_default(call_default_factory=True)
    return list(value) if isinstance(value, tuple) else value


def project_declarations() -> dict[str, dict[str, Any]]:
    """The ``config:`` block of Pulumi.yaml, derived from SiteConfig."""
    declared: dict[str, dict[str, Any]] = {}
    for name, field in SiteConfig.model_fields.items():
        key = key_of(name, field)
        kind, item = _kind(field.annotation)
        secret = key in SECRET_KEYS
        if kind == "object" or item == "object":
            continue
        if not field.is_required() and (_default(field) is None or secret):
            continue
        declaration: dict[str, Any] = {"type": kind}
        if item:
            declaration["items"] = {"type": item}
        if secret:
            declaration["secret"] = True
        elif not field.is_required():
            declaration["default"] = _default(field)
        declaration["description"] = field.description
        declared[key] = declaration
    return declared


def undeclared_keys() -> list[str]:
    """Keys of SiteConfig that Pulumi.yaml does not declare (objects, optional without default)."""
    declared = project_declarations()
    return [key_of(n, f) for n, f in SiteConfig.model_fields.items() if key_of(n, f) not in declared]


def project_file_text(current: str) -> str:
    """Pulumi.yaml with its config block regenerated; everything before ``config:`` is kept."""
    head, marker, _ = current.partition(CONFIG_MARKER)
    if not marker:
        head = current.rstrip("\n") + "\n"
    head = "".join(line for line in head.splitlines(keepends=True) if not line.startswith(_NOTE_PREFIXES))
    body = yaml.safe_dump({"config": project_declarations()}, sort_keys=False, width=1000, allow_unicode=True)
    note = (
        f"{_NOTE_PREFIXES[0]} (SiteConfig): python -m components config-reference --write\n"
        f"{_NOTE_PREFIXES[1]} (set them in Pulumi.<site>.yaml when needed): {', '.join(undeclared_keys())}.\n"
    )
    return head + note + body


def _type_label(name: str, field: FieldInfo) -> str:
    kind, item = _kind(field.annotation)
    label = {"array": f"list of {item}s", "boolean": "boolean", "integer": "integer", "string": "string"}.get(
        kind, kind
    )
    return f"{label} (secret)" if key_of(name, field) in SECRET_KEYS else label


def _default_label(field: FieldInfo) -> str:
    if field.is_required():
        return "**required**"
    value = _default(field)
    if value is None or value == [] or value == {}:
        return "—"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def table(model: type[BaseModel], first_column: str) -> str:
    lines = [f"| {first_column} | type | default | meaning |", "|---|---|---|---|"]
    for name, field in model.model_fields.items():
        # Descriptions link from the repository root (Pulumi.yaml shows them too); the table sits in docs/.
        description = (field.description or "").replace("|", "\\|").replace("](docs/", "](")
        lines.append(f"| `{key_of(name, field)}` | {_type_label(name, field)} | {_default_label(field)} | {description} |")
    return "\n".join(lines)


def _replace_between(text: str, markers: tuple[str, str], body: str) -> str:
    begin, end = markers
    before, found, rest = text.partition(begin)
    _, found_end, after = rest.partition(end)
    if not found or not found_end:
        raise SystemExit(f"docs/configuration.md lacks the markers {begin!r} … {end!r}")
    return f"{before}{begin}\n{body}\n{end}{after}"


def configuration_doc_text(current: str) -> str:
    """docs/configuration.md with both configuration tables regenerated."""
    text = _replace_between(current, SITE_TABLE, table(SiteConfig, "key"))
    return _replace_between(text, NODE_TABLE, table(NodeConfig, "field"))


def outdated(root: Path = ROOT) -> list[str]:
    """The generated files that differ from what SiteConfig says."""
    stale = []
    project, doc = root / "Pulumi.yaml", root / "docs" / "configuration.md"
    if project.read_text() != project_file_text(project.read_text()):
        stale.append("Pulumi.yaml")
    if doc.read_text() != configuration_doc_text(doc.read_text()):
        stale.append("docs/configuration.md")
    return stale


def write(root: Path = ROOT) -> list[str]:
    """Regenerate both files; returns the ones that changed."""
    changed = outdated(root)
    project, doc = root / "Pulumi.yaml", root / "docs" / "configuration.md"
    project.write_text(project_file_text(project.read_text()))
    doc.write_text(configuration_doc_text(doc.read_text()))
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = CommandParser(prog="python -m components config-reference", description=__doc__.split("\n\n")[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", action="store_true", help="rewrite Pulumi.yaml's config block and the tables of docs/configuration.md")
    action.add_argument("--check", action="store_true", help="exit 1 when they are out of date")
    args = parser.parse_args(argv)
    if args.write:
        changed = write()
        print(f"updated: {', '.join(changed)}" if changed else "already up to date")
        return 0
    stale = outdated()
    if stale:
        print(f"out of date: {', '.join(stale)}; run: python -m components config-reference --write", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
