"""The merge planner: from what a node's file is now to the payload its apply command gets.

Pure functions, no Pulumi, no SSH. :func:`plan_apply` merges our mirror entries into the file
as read (:mod:`components.registries_yaml`), validates the result and decides what ``destroy``
will put back. :func:`describe_plan` says in one line, without secrets, what the write does.

**Stable payloads.** The apply command's ``stdin`` is a pure function of the config and of what
was read, and a converged node gives exactly the payload of the run that converged it, so the
next preview shows no change. The payload's ``expected`` (the file the merge started from) and
``pending`` are the only fields that depend on history rather than on the file: ``apply.sh``
records both (``<path>.edge-registry/applied``) and, once the node is converged (the file is
what edge-registry wrote, the merge leaves it as is, no restart owed), the plan re-emits the
recorded values. A file edited on the node since the last write is not converged: the next
payload starts from the edited file, so the preview shows a change and the merge keeps the edit.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from components import registries_yaml as ry
from components.node_payload import ApplyPlan, NodeRead, file_sha

__all__ = ["converged", "describe_plan", "plan_apply"]


def _canonical(document: Any) -> str:
    # Type-strict comparison (1 != true), order-insensitive.
    return json.dumps(document, sort_keys=True, default=repr)


def _restore_target(original: bytes | None, merged: dict[str, Any], keys: Sequence[ry.OwnedKey]) -> bytes | None:
    """The file destroy puts back: the pristine bytes when the foreign entries are still what
    they were (so comments and formatting come back too), else the merged file without our
    entries. None: no file."""
    target = ry.unmerge(merged, keys)
    before = ry.parse(original)
    for section, key in keys:  # an entry we took over at our own key comes back
        entries = before.get(section)
        if isinstance(entries, dict) and key in entries:
            target.setdefault(section, {})[key] = entries[key]
    if _canonical(ry.normalize(target)) == _canonical(ry.normalize(before)):
        return original
    return ry.dump(target)


def converged(read: NodeRead, content: bytes) -> bool:
    """The node holds what edge-registry last wrote, that is what we would write now, and no
    restart is owed: re-emit the recorded payload fields."""
    return (
        read.content is not None
        and content == read.content
        and read.written == file_sha(read.content)
        and not read.restart_pending
        and read.applied_expected is not None
    )


def plan_apply(read: NodeRead, ours: Mapping[str, Any]) -> ApplyPlan:
    """Merge ``ours`` into the node's file as read; validate; decide what destroy restores.

    When the merged document equals the current one, the current bytes are kept (comments
    included), so nothing is written and nothing restarts.
    """
    current = ry.parse(read.content)
    merged = ry.merge(current, ours, read.owned)
    ry.validate(merged)
    if read.content is not None and _canonical(merged) == _canonical(current):
        content = read.content
    else:
        content = ry.dump(merged)
    keys = tuple(ry.owned_keys(ours))
    original = read.original if read.recorded else read.content
    if converged(read, content):
        expected, pending = str(read.applied_expected), read.applied_pending
    else:
        expected, pending = file_sha(read.content), read.restart_pending
    return ApplyPlan(
        expected=expected, content=content, restore=_restore_target(original, merged, keys),
        owned=keys, restart_pending=pending, document=merged,
    )


def _entry_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    changes: list[str] = []
    for section in ry.SECTIONS:
        old_entries, new_entries = before.get(section), after.get(section)
        old: dict[str, Any] = old_entries if isinstance(old_entries, dict) else {}
        new: dict[str, Any] = new_entries if isinstance(new_entries, dict) else {}
        for key in sorted(set(old) | set(new), key=str):
            if key not in old:
                changes.append(f"{section}[{key}] added")
            elif key not in new:
                changes.append(f"{section}[{key}] removed")
            elif _canonical(old[key]) != _canonical(new[key]):
                changes.append(f"{section}[{key}] changed")
    return changes


def _ca_change(read: NodeRead, plan: ApplyPlan) -> str | None:
    """What happens to the CA file beside the file, in words; None when nothing does."""
    desired = file_sha(plan.ca) if plan.ca is not None else "none"
    if read.ca is None:  # an older read script: the CA state is not known
        return None if plan.ca is None else f"CA file {plan.ca_file} written if it differs"
    if read.ca == desired:
        return None
    if plan.ca is None:
        return "CA file removed"
    return f"CA file {plan.ca_file} {'installed' if read.ca in ('none', 'absent') else 'replaced'}"


def describe_plan(read: NodeRead, plan: ApplyPlan, host: str, path: str, unit: str) -> str:
    """One line for the operator: unchanged, or which mirror/config keys change (and the CA file)
    and that the unit restarts. Names keys only, never values (the file may hold credentials)."""
    prefix = f"node {host}: {path}"
    ca = _ca_change(read, plan)
    if plan.content == read.content and ca is not None:
        return f"{prefix} unchanged; {ca}; {unit} restarts"
    if plan.content == read.content:
        if read.restart_pending:
            return f"{prefix} unchanged; {unit} restarts (finishing a restart an earlier run did not complete)"
        if read.recorded and read.written != file_sha(read.content):
            return (f"{prefix} unchanged by the merge, but edited on the node since edge-registry wrote it: "
                    f"the edit is kept and recorded; {unit} not restarted")
        return f"{prefix} unchanged; {unit} not restarted"
    changes = _entry_changes(ry.parse(read.content), plan.document) + ([ca] if ca else [])
    what = ", ".join(changes) if changes else "rewritten (same entries)"
    created = " (new file)" if read.content is None else ""
    return f"{prefix}{created}: {what}; {unit} restarts"
