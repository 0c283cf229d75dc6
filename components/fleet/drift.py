"""Drift: whether a site still is what its state says, as the scheduled drift job found it.

The drift workflow (.github/workflows/drift.yml) runs ``pulumi preview --refresh
--expect-no-changes --json`` per stack with the preview's read-level credentials and keeps one
record per stack (:func:`record_from_preview`, written by ``python -m components.fleet.drift
record``) in the ``drift`` artifact; the fleet status reads that folder (``fleet status --drift
DIR``, :func:`read_records`) and shows each stack's last result and its date.

A record holds the result (``none``: the refreshed state and the program agree; ``drift``: the
preview planned changes; ``failed``: the preview itself failed, so drift is unknown), when it was
checked, the planned operations counted by kind and the resources they touch (URNs, never
values), the commit and the run. Only stdlib: the workflow runs it before anything else needs the
program's packages, and the fleet status reads it without them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any

#: Steps of a preview that change nothing (a read of a live object, its discard from the state).
UNCHANGED_OPS = frozenset({"same", "read", "discard", "refresh"})
#: The engine's exit code for ``--expect-no-changes`` with changes (pulumi sdk cmdutil ExitNoChanges).
EXIT_NO_CHANGES = 7
#: A record keeps this many resource URNs (the count is always complete).
MAX_RESOURCES = 20
RECORD_VERSION = 1


class DriftResult(str, Enum):
    """What the last drift check found."""

    NONE = "none"
    DRIFT = "drift"
    FAILED = "failed"


@dataclass(frozen=True)
class DriftRecord:
    """One stack's last drift check."""

    stack: str
    result: DriftResult
    checked_at: datetime
    changes: dict[str, int] = field(default_factory=dict)
    """Planned operations by kind (``update``, ``replace``, ``create``, ``delete``, ...)."""
    resources: tuple[str, ...] = ()
    """URNs of the resources the changes touch (at most :data:`MAX_RESOURCES`)."""
    error: str | None = None
    """Why a failed check failed: the preview's first error line."""
    commit: str | None = None
    run_url: str | None = None

    def summary(self) -> str:
        """``none``, ``drift: 2 update, 1 replace`` or ``failed: <error>``: for people."""
        if self.result is DriftResult.DRIFT:
            return "drift: " + ", ".join(f"{count} {op}" for op, count in sorted(self.changes.items()))
        if self.result is DriftResult.FAILED:
            return f"failed: {self.error}" if self.error else "failed"
        return "none"

    def document(self) -> dict[str, Any]:
        """The record as JSON (the file the workflow keeps, and the fleet report's ``drift``)."""
        return {
            "version": RECORD_VERSION,
            "stack": self.stack,
            "result": self.result.value,
            "checkedAt": _iso(self.checked_at),
            "changes": dict(sorted(self.changes.items())),
            "resources": list(self.resources),
            "error": self.error,
            "commit": self.commit,
            "runUrl": self.run_url,
        }


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _first_error(preview: dict[str, Any], stderr: str) -> str | None:
    for diagnostic in preview.get("diagnostics", []) or []:
        if diagnostic.get("severity") == "error" and str(diagnostic.get("message", "")).strip():
            return str(diagnostic["message"]).strip().splitlines()[0][:300]
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.lower().startswith("error")] or lines
    return errors[0][:300] if errors else None


def record_from_preview(stack: str, exit_code: int, preview_output: str, checked_at: datetime,
                        stderr: str = "", commit: str | None = None, run_url: str | None = None) -> DriftRecord:
    """Judge one ``pulumi preview --refresh --expect-no-changes --json`` run.

    Drift is what the preview's steps plan (any step that is not a no-op), whatever the exit code
    says: a CLI that exits 1 rather than 7 for ``--expect-no-changes`` still shows drift by its
    steps (that refusal is the command's error, not a diagnostic of the run). Without a JSON
    document, with an error diagnostic (the program or a provider failed part-way), or with an
    exit code other than 0 and 7 and no planned change, the check failed and drift is unknown."""
    try:
        preview = json.loads(preview_output) if preview_output.strip() else None
    except json.JSONDecodeError:
        preview = None
    if not isinstance(preview, dict):
        error = _first_error({}, stderr) or f"the preview printed no JSON (exit {exit_code})"
        return DriftRecord(stack, DriftResult.FAILED, checked_at, error=error, commit=commit, run_url=run_url)
    errors = [d for d in preview.get("diagnostics", []) or [] if d.get("severity") == "error"]
    if exit_code != 0 and errors:
        # The program or a provider failed part-way: what it planned so far is not the answer.
        return DriftRecord(stack, DriftResult.FAILED, checked_at, error=_first_error(preview, stderr),
                           commit=commit, run_url=run_url)
    planned = [s for s in preview.get("steps", []) or [] if s.get("op") not in UNCHANGED_OPS]
    if planned:
        counts = Counter(str(s.get("op")) for s in planned)
        urns = tuple(sorted({str(s.get("urn")) for s in planned}))[:MAX_RESOURCES]
        return DriftRecord(stack, DriftResult.DRIFT, checked_at, dict(counts), urns, commit=commit, run_url=run_url)
    summary = {str(op): n for op, n in (preview.get("changeSummary") or {}).items()
               if op not in UNCHANGED_OPS and isinstance(n, int) and n > 0}
    if exit_code == EXIT_NO_CHANGES and summary:
        # The engine counted changes its JSON steps do not show: its summary is the record.
        return DriftRecord(stack, DriftResult.DRIFT, checked_at, summary, commit=commit, run_url=run_url)
    if exit_code != 0:
        error = _first_error(preview, stderr) or f"pulumi preview exited {exit_code}"
        return DriftRecord(stack, DriftResult.FAILED, checked_at, error=error, commit=commit, run_url=run_url)
    return DriftRecord(stack, DriftResult.NONE, checked_at, commit=commit, run_url=run_url)


def parse_record(document: Any, where: str) -> DriftRecord:
    """A record read back; :class:`ValueError` naming ``where`` and the field when it is not one."""
    if not isinstance(document, dict) or document.get("version") != RECORD_VERSION:
        raise ValueError(f"{where}: not a drift record of version {RECORD_VERSION}")
    try:
        result = DriftResult(document.get("result"))
    except ValueError:
        raise ValueError(f"{where}: result {document.get('result')!r} is not none, drift or failed") from None
    stack = document.get("stack")
    if not isinstance(stack, str) or not stack:
        raise ValueError(f"{where}: no stack")
    try:
        checked_at = datetime.fromisoformat(str(document.get("checkedAt")).replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{where}: checkedAt {document.get('checkedAt')!r} is not a date-time") from None
    if checked_at.tzinfo is None:
        raise ValueError(f"{where}: checkedAt has no time zone")
    changes = document.get("changes") or {}
    if not isinstance(changes, dict) or not all(isinstance(v, int) for v in changes.values()):
        raise ValueError(f"{where}: changes is not a count per operation")
    return DriftRecord(
        stack=stack, result=result, checked_at=checked_at, changes={str(k): v for k, v in changes.items()},
        resources=tuple(str(u) for u in document.get("resources") or ()), error=document.get("error"),
        commit=document.get("commit"), run_url=document.get("runUrl"),
    )


def read_records(directory: Path) -> tuple[dict[str, DriftRecord], list[str]]:
    """Every ``*.json`` record under ``directory`` (the downloaded ``drift`` artifact), by stack;
    the newest wins when a stack has two. A file that is not a record is a problem line, never an
    exception. A missing directory is a problem too: asked for drift, the report says it has none."""
    if not directory.is_dir():
        return {}, [f"{directory}: no such directory of drift records"]
    records: dict[str, DriftRecord] = {}
    problems = []
    for path in sorted(directory.rglob("*.json")):
        try:
            record = parse_record(json.loads(path.read_text()), path.name)
        except (OSError, json.JSONDecodeError, ValueError) as error:
            problems.append(str(error) if str(error).startswith(path.name) else f"{path.name}: {error}")
            continue
        kept = records.get(record.stack)
        if kept is None or record.checked_at > kept.checked_at:
            records[record.stack] = record
    return records, problems


def _record_command(args: argparse.Namespace) -> int:
    output = args.preview_json.read_text() if args.preview_json.is_file() else ""
    stderr = args.stderr.read_text() if args.stderr and args.stderr.is_file() else ""
    record = record_from_preview(args.stack, args.exit_code, output, datetime.now(UTC), stderr,
                                 commit=args.commit or None, run_url=args.run_url or None)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record.document(), indent=2) + "\n")
    print(f"{args.stack}: {record.summary()}")
    for urn in record.resources:
        print(f"  {urn}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``record STACK --exit-code N --preview-json FILE --out FILE``: write one record; exit 0
    whatever it found (the workflow decides what fails the run)."""
    top = argparse.ArgumentParser(prog="python -m components.fleet.drift",
                                  description="Write the drift record of one `pulumi preview --refresh "
                                              "--expect-no-changes --json` run.")
    commands = top.add_subparsers(dest="command", metavar="COMMAND", required=True)
    rec = commands.add_parser("record", help="judge one drift preview and write its record")
    rec.add_argument("stack")
    rec.add_argument("--exit-code", type=int, required=True, help="the preview's exit code")
    rec.add_argument("--preview-json", type=Path, required=True, help="the preview's --json output")
    rec.add_argument("--stderr", type=Path, help="the preview's stderr (for a failed check's error line)")
    rec.add_argument("--out", type=Path, required=True, help="the record file to write")
    rec.add_argument("--commit", default="")
    rec.add_argument("--run-url", default="")
    return _record_command(top.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
