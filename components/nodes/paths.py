"""Which registries.yaml a node command works on: canonical paths, and one owner per node and path.

Pure (no Pulumi, no I/O): the site model, the offline render and the fleet status can call it
with plain values.

* :func:`path_problem`: a node's ``path`` must be the file's own, canonical path. The node
  scripts write it, its CA and its record (``<path>.edge-registry/``) as root, and refuse a
  path with ``//``, ``/./``, ``/../`` or a trailing ``/`` too (components/nodes/scripts/guard.sh).
* :func:`duplicate_node_paths`: two stacks that name the same node and path would take turns
  removing each other's entries, and each destroy would put back its own "original". The node
  lock (``flock`` on ``<path>.edge-registry/lock``) keeps their runs from interleaving, not from
  undoing each other: the render and the fleet status refuse such stacks.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Mapping
from typing import Protocol

__all__ = ["NodeRef", "duplicate_node_paths", "path_problem"]

_PATH_CHARS = re.compile(r"/[A-Za-z0-9._/-]+")


def path_problem(path: str) -> str | None:
    """Why ``path`` cannot be a node's registries.yaml path (None: it can). The reason names no key:
    the caller prefixes it (``nodes[0].path: …``)."""
    if not _PATH_CHARS.fullmatch(path):
        return "expected an absolute path of letters, digits, '.', '_', '-' and '/'"
    parts = path.split("/")[1:]
    if path.endswith("/") or "" in parts:
        return "not a canonical path: no '//' and no trailing '/'"
    if "." in parts or ".." in parts:
        return "not a canonical path: no '.' or '..' component"
    if not path.endswith((".yaml", ".yml")):
        return "expected the path of a .yaml file"
    return None


class NodeRef(Protocol):
    """A node as the site model declares it (components/config/nodes.py ``NodeConfig`` fits)."""

    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...

    @property
    def path(self) -> str: ...

    @property
    def gone(self) -> bool: ...


def _node_key(node: NodeRef) -> tuple[str, int, str]:
    # DNS names are case-insensitive; a trailing dot names the same host. The path as written
    # (canonical paths are required), normalized anyway so that two spellings still collide.
    return node.host.lower().rstrip("."), node.port, posixpath.normpath(node.path)


def duplicate_node_paths(stacks: Mapping[str, Iterable[NodeRef]], stack: str | None = None) -> list[str]:
    """One message per node and registries.yaml path that more than one stack names (gone nodes,
    never contacted, do not count); with ``stack``, only those that stack is one of.

    A node is its host (case-insensitive) and SSH port (two ports of one address may reach two
    machines). One stack naming a node and path twice (two spellings of the host, which the site
    model's duplicate-host check does not see) is reported too."""
    owners: dict[tuple[str, int, str], list[str]] = {}
    for name, nodes in stacks.items():
        for node in nodes:
            if not node.gone:
                owners.setdefault(_node_key(node), []).append(name)
    messages = []
    for (host, port, path), names in sorted(owners.items()):
        if len(names) < 2 or (stack is not None and stack not in names):
            continue
        named = f"stacks {', '.join(sorted(set(names)))}" if len(set(names)) > 1 else f"stack {names[0]}, twice"
        messages.append(
            f"node {host} (port {port}): {path} is named by {named}: each stack's runs would remove the "
            "other's entries, and each destroy would put back its own copy of the original file. Name every node "
            "and path in one stack only (for a node that moved, set gone: true on it in the stack it left)."
        )
    return messages
