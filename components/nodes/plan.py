"""The merge planner: from what a node's file is now to the payload its apply command gets.

Pure functions, no Pulumi, no SSH. :func:`plan_node` builds our entries for one node and
:func:`plan_apply` merges them into the file as read (:mod:`components.nodes.registries_yaml`),
validates the result and decides what ``destroy`` will put back. :func:`foreign_problem` says
what is wrong with the part of the file edge-registry does not own (checked right after the
read: such a file is never written over). :func:`describe_plan` says in one line, without
secrets, what the write does; :func:`describe_with_placeholders` says it in a preview that
cannot see every value yet.

**Stable payloads.** The apply command's ``stdin`` is a pure function of the config and of what
was read, and a converged node gives exactly the payload of the run that converged it, so the
next preview shows no change. The payload's ``expected`` (the file the merge started from),
``pending`` and ``generation`` are the fields that depend on history rather than on the file:
``apply.sh`` records them (``<path>.edge-registry/applied``) and, once the node is converged
(the file is what edge-registry wrote, the merge leaves it as is, the CA file is the site's,
no restart owed), the plan re-emits the recorded values. A node that is not converged gets
the next ``generation``, so its payload differs from the stored one even when the node is back
in a state it had before (a CA file deleted again, a file edited back to its original): the
next preview shows a change and the ``up`` repairs it; a foreign edit is kept by the merge.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import yaml

from components.nodes import registries_yaml as ry
from components.nodes.payload import ApplyPlan, NodeMirrorError, NodeRead, file_sha

__all__ = [
    "CA_FILE_NAME",
    "ca_file_path",
    "converged",
    "describe_plan",
    "describe_with_placeholders",
    "foreign_problem",
    "plan_apply",
    "plan_node",
]

#: The site CA's file name on a node, beside registries.yaml.
CA_FILE_NAME = "edge-registry-ca.crt"


def ca_file_path(path: str) -> str:
    """Where the site CA goes on a node whose registries.yaml is ``path``: the same directory."""
    return posixpath.join(posixpath.dirname(path), CA_FILE_NAME)


def _canonical(document: Any) -> str:
    # Type-strict comparison (1 != true), order-insensitive.
    return json.dumps(document, sort_keys=True, default=repr)


def _yaml_problem(content: bytes) -> str:
    """Where the YAML breaks, without the snippet PyYAML quotes (the line may hold a password)."""
    try:
        yaml.safe_load(content)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        return f"the file is not valid YAML: {exc.problem or exc.context or 'syntax error'}{where}"
    except yaml.YAMLError:
        pass
    return "the file is not valid YAML"


def foreign_problem(read: NodeRead) -> str | None:
    """What is wrong with the part of the node's file that edge-registry does not own (None:
    nothing). The merge keeps that part as it is, so a type error there would reach k3s (which
    then never starts) and an unknown key would be ignored silently: such a file is not written
    over. Names keys and types only, never values (the file may hold credentials)."""
    try:
        document = ry.parse(read.content)
    except ry.RegistriesYamlError as exc:
        if exc.message.startswith("the file is not valid YAML") and read.content is not None:
            return _yaml_problem(read.content)
        return f"{exc.path}: {exc.message}" if exc.path else exc.message
    try:
        ry.validate(ry.unmerge(document, read.owned))
    except ry.RegistriesYamlError as exc:
        return f"{exc.path}: {exc.message}" if exc.path else exc.message
    return None


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


def _ca_sha(ca: bytes | None) -> str:
    """The CA as the read reports it: its checksum, or ``none`` when the site has no CA."""
    return file_sha(ca) if ca is not None else "none"


def converged(read: NodeRead, content: bytes, ca: bytes | None = None) -> bool:
    """The node holds what edge-registry last wrote, that is what we would write now, its CA file
    is ``ca`` (none installed when None), and no restart is owed: re-emit the recorded payload
    fields. A read that does not report the CA (an older installed read script, previews only)
    is judged by the file alone; ``up`` reads with the current script."""
    return (
        read.content is not None
        and content == read.content
        and read.written == file_sha(read.content)
        and not read.restart_pending
        and read.applied_expected is not None
        and (read.ca is None or read.ca == _ca_sha(ca))
    )


def plan_apply(read: NodeRead, ours: Mapping[str, Any], ca: bytes | None = None, ca_file: str | None = None) -> ApplyPlan:
    """Merge ``ours`` into the node's file as read; validate; decide what destroy restores.

    ``ca``: the site CA to install at ``ca_file`` (https), None: none. When the merged document
    equals the current one, the current bytes are kept (comments included), so nothing is
    written and nothing restarts.
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
    if converged(read, content, ca):
        expected, pending, generation = str(read.applied_expected), read.applied_pending, read.applied_generation
    else:
        expected, pending = file_sha(read.content), read.restart_pending
        generation = (read.applied_generation or 0) + 1
    return ApplyPlan(
        expected=expected, content=content, restore=_restore_target(original, merged, keys),
        owned=keys, restart_pending=pending, generation=generation, ca=ca, ca_file=ca_file if ca else None,
        document=merged,
    )


def plan_node(
    read: NodeRead,
    *,
    host: str,
    path: str,
    endpoint: str,
    scheme: str,
    ca_certificate: str | None = None,
    login_server: str | None = None,
    username: str | None = None,
    password: str | None = None,
    insecure_skip_verify: bool = False,
) -> ApplyPlan:
    """The apply plan for the node ``host`` whose file at ``path`` was read as ``read``: the
    mirrors of ``endpoint`` (and ``login_server``), the client token's credentials and, for
    https, the site CA beside the file. NodeMirrorError names host and path."""
    try:
        ca_file = ca_file_path(path) if ca_certificate else None
        ours = ry.mirror_entries(
            endpoint, scheme, ca_file, insecure_skip_verify,
            login_server=login_server, username=username, password=password,
        )
        return plan_apply(read, ours, ca_certificate.encode("utf-8") if ca_certificate else None, ca_file)
    except ry.RegistriesYamlError as exc:
        raise NodeMirrorError(
            f"node {host}: {path}: {exc}. Nothing was sent to the node: fix or remove that "
            "entry in the node's file (k3s would not start with it), then run 'pulumi up' again."
        ) from exc
    except ValueError as exc:
        raise NodeMirrorError(f"node {host}: {path}: {exc}") from exc


#: What a preview may not see yet (a first deploy: the Service's address, the issued CA, the
#: client token's password), by plan_node keyword: how the plan line names it, and the
#: placeholder it is planned with. The endpoint's is a reserved name (RFC 2606), shown as
#: ``<endpoint>``.
_PLACEHOLDERS: dict[str, tuple[str, str]] = {
    "endpoint": ("the endpoint", "endpoint.invalid:1"),
    "ca_certificate": ("the site CA", "<site CA>"),
    "username": ("the client credentials", "<client token>"),
    "password": ("the client credentials", "<client password>"),
}


def describe_with_placeholders(read: NodeRead, unit: str, not_known: Collection[str], **node: Any) -> str:
    """The plan line of a preview that cannot see the :func:`plan_node` keywords ``not_known``
    (their values in ``node`` are ignored): planned with placeholders, and saying so."""
    filled = {**node, **{name: _PLACEHOLDERS[name][1] for name in not_known}}
    plan = plan_node(read, **filled)
    names = list(dict.fromkeys(label for name, (label, _) in _PLACEHOLDERS.items() if name in not_known))
    line = describe_plan(read, plan, node["host"], node["path"], unit, not_known=names)
    return line.replace(_PLACEHOLDERS["endpoint"][1], "<endpoint>")


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
    """What happens to the CA file beside the file, in words; None when nothing does. Only
    for a read that reports the CA (``read.ca`` not None)."""
    desired = _ca_sha(plan.ca)
    if read.ca == desired:
        return None
    if plan.ca is None:
        return "CA file removed"
    if read.ca == "none":
        return f"CA file {plan.ca_file} installed"
    if read.ca == "absent":
        return f"CA file {plan.ca_file} installed again (it was deleted on the node)"
    return f"CA file {plan.ca_file} replaced"


def describe_plan(
    read: NodeRead, plan: ApplyPlan, host: str, path: str, unit: str, not_known: Sequence[str] = ()
) -> str:
    """One line for the operator: unchanged, or which mirror/config keys change (and the CA file)
    and that the unit restarts. Names keys only, never values (the file may hold credentials).

    ``not_known``: the values a preview cannot see yet (``the endpoint``…); the plan was made
    with placeholders for them, and the line says so.
    """
    prefix = f"node {host}: {path}"
    line = _describe(read, plan, prefix, unit)
    if not_known:
        names = " and ".join([", ".join(not_known[:-1]), not_known[-1]] if len(not_known) > 1 else not_known)
        line += f" (planned with placeholders for {names}, which this preview cannot see: entries using a placeholder show as changed)"
    return line


def _describe(read: NodeRead, plan: ApplyPlan, prefix: str, unit: str) -> str:
    ca: str | None
    if plan.ca is not None and read.ca is None:
        # An older installed read script (previews with previewNodeUser) does not report the CA.
        unchecked = (f"CA file {plan.ca_file} not checked by this preview (the node's installed read script "
                     "predates the CA line: install it again, docs/runbooks.md#nodes-once-per-node)")
        if plan.content == read.content and not read.restart_pending:
            return f"{prefix} unchanged; {unchecked}; 'pulumi up' writes it and restarts {unit} only if it differs"
        ca = f"CA file {plan.ca_file} written if it differs"
    else:
        ca = _ca_change(read, plan) if read.ca is not None else None
    if plan.content == read.content:
        if read.restart_pending:
            also = f"{ca}; " if ca else ""
            return f"{prefix} unchanged; {also}{unit} restarts (finishing a restart an earlier run did not complete)"
        edited = read.recorded and read.written != file_sha(read.content)
        if ca is not None:
            kept = " by the merge, but edited on the node since edge-registry wrote it: the edit is kept" if edited else ""
            return f"{prefix} unchanged{kept}; {ca}; {unit} restarts"
        if edited:
            return (f"{prefix} unchanged by the merge, but edited on the node since edge-registry wrote it: "
                    f"the edit is kept and recorded; {unit} not restarted")
        return f"{prefix} unchanged; {unit} not restarted"
    changes = _entry_changes(ry.parse(read.content), plan.document) + ([ca] if ca else [])
    what = ", ".join(changes) if changes else "rewritten (same entries)"
    created = " (new file)" if read.content is None else ""
    return f"{prefix}{created}: {what}; {unit} restarts"
