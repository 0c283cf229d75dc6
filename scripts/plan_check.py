#!/usr/bin/env python3
"""Plans applied as reviewed: what a pull request's preview saved, found again and checked before
``pulumi up --plan`` applies it (stdlib only; the workflows run it with the program's venv).

    plan_check.py record STACK --plan FILE --reviewed-commit SHA --previewed-commit SHA
                               [--pull-request N] --out DIR
        (Preview) the plan and a manifest of what was reviewed, into DIR for the artifact
        ``plan-<STACK>-<reviewed commit>``: the commits, the sha256 of the stack file and of
        every program file, and the stack's state (sha256 of ``pulumi stack export``, its last
        update from ``pulumi stack history``).
    plan_check.py locate STACK --commit SHA
        (Deploy) the pull request the pushed commit came from, and the preview run that saved the
        plan of its head commit: ``run-id`` and ``artifact`` for actions/download-artifact, in
        $GITHUB_OUTPUT. Reads the GitHub REST API ($GITHUB_API_URL, $GITHUB_REPOSITORY,
        $GITHUB_TOKEN).
    plan_check.py check STACK --dir DIR
        (Deploy) refuses, naming what changed, when the stack file, the program or the stack's
        state is not what the preview saw; else the plan in DIR may be applied.

Exit codes: 0 done (``check``: as reviewed); 1 refused (the message says why and what to do);
2 usage or an unreadable input. Nothing secret is read into a message: the state is hashed,
never printed (its secrets are ciphertext anyway), and the plan is copied as Pulumi wrote it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent))
from workflow_stacks import AFFECTS_EVERY_STACK  # noqa: E402  (after the path is set)

MANIFEST = "manifest.json"
PLAN = "plan.json"
MANIFEST_VERSION = 1
#: How the deploy workflow finds the run again: one artifact per stack and reviewed commit.
ARTIFACT = "plan-{stack}-{commit}"
MAX_LISTED = 8


class Refused(Exception):
    """The plan must not be applied; the message says why and what to do instead."""


class Unusable(Exception):
    """An input could not be read (usage, a missing file, the CLI or the API failing)."""


def artifact_name(stack: str, commit: str) -> str:
    return ARTIFACT.format(stack=stack, commit=commit)


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def program_files(root: Path) -> dict[str, str]:
    """sha256 of every tracked file whose change affects every stack (the program, the policy
    pack and its config, the locks, Pulumi.yaml): the set scripts/workflow_stacks.py uses."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=False)
    if listed.returncode != 0:
        raise Unusable(f"git ls-files failed in {root}: {listed.stderr.decode(errors='replace').strip()}")
    paths = sorted(p for p in listed.stdout.decode().split("\0") if p and AFFECTS_EVERY_STACK.match(p))
    return {p: sha256_file(root / p) for p in paths if (root / p).is_file()}


def _pulumi(args: list[str], pulumi: str) -> str:
    try:
        done = subprocess.run([pulumi, *args, "--non-interactive"], capture_output=True, text=True, check=False, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise Unusable(f"`pulumi {' '.join(args)}` did not run: {error}") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1][:300]
        raise Unusable(f"`pulumi {' '.join(args)}` failed (exit {done.returncode}): {last}")
    return done.stdout


def stack_state(stack: str, pulumi: str = "pulumi") -> dict[str, Any]:
    """The stack's state as a fingerprint: sha256 of ``pulumi stack export`` (never kept or
    printed) and the last update ``pulumi stack history`` lists, for the message."""
    exported = _pulumi(["stack", "export", "--stack", stack], pulumi)
    history = _pulumi(["stack", "history", "--stack", stack, "--json", "--page-size", "1"], pulumi)
    try:
        updates = json.loads(history or "[]")
    except json.JSONDecodeError:
        raise Unusable(f"`pulumi stack history` for {stack} did not print JSON") from None
    last = None
    if updates:
        first = updates[0]
        last = {key: first.get(key) for key in ("version", "kind", "result", "endTime")}
    return {"sha256": hashlib.sha256(exported.encode()).hexdigest(), "lastUpdate": last}


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def record(stack: str, plan: Path, reviewed_commit: str, previewed_commit: str, pull_request: int | None,
           out: Path, root: Path, pulumi: str = "pulumi") -> dict[str, Any]:
    """Write DIR/plan.json and DIR/manifest.json; returns the manifest."""
    if not plan.is_file():
        raise Unusable(f"no plan at {plan}: did `pulumi preview --save-plan` run?")
    stack_file = root / f"Pulumi.{stack}.yaml"
    if not stack_file.is_file():
        raise Unusable(f"no stack file {stack_file.name}")
    manifest = {
        "version": MANIFEST_VERSION,
        "stack": stack,
        "reviewedCommit": reviewed_commit,
        "previewedCommit": previewed_commit,
        "pullRequest": pull_request,
        "createdAt": _now(),
        "stackFile": {"path": stack_file.name, "sha256": sha256_file(stack_file)},
        "program": program_files(root),
        "state": stack_state(stack, pulumi),
    }
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(plan, out / PLAN)
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def _update_words(update: dict[str, Any] | None) -> str:
    if not update:
        return "no update yet"
    # The file and blob backends number no updates (version 0): the kind and the end time say which.
    number = f" {update['version']}" if update.get("version") else ""
    return f"update{number} ({update.get('kind')}, {update.get('result')}, ended {update.get('endTime')})"


def _listed(paths: list[str]) -> str:
    shown = ", ".join(paths[:MAX_LISTED])
    return shown + (f" and {len(paths) - MAX_LISTED} more" if len(paths) > MAX_LISTED else "")


def differences(manifest: dict[str, Any], stack: str, root: Path, state: dict[str, Any]) -> list[str]:
    """Each thing that is not as the preview saw it, one line each; empty when all is."""
    problems = []
    if manifest.get("version") != MANIFEST_VERSION:
        return [f"the reviewed plan's manifest is version {manifest.get('version')!r}, this check reads {MANIFEST_VERSION}"]
    if manifest.get("stack") != stack:
        return [f"the reviewed plan is stack {manifest.get('stack')!r}'s, not {stack!r}'s"]
    reviewed = manifest.get("reviewedCommit")
    stack_file = root / f"Pulumi.{stack}.yaml"
    if not stack_file.is_file():
        problems.append(f"the stack file {stack_file.name} is gone since review")
    elif sha256_file(stack_file) != manifest["stackFile"]["sha256"]:
        problems.append(f"the stack file {stack_file.name} changed after review (reviewed at {reviewed})")
    now, then = program_files(root), manifest.get("program", {})
    changed = sorted(p for p in set(now) | set(then) if now.get(p) != then.get(p))
    if changed:
        problems.append(f"the code changed after review (reviewed at {reviewed}): {_listed(changed)}")
    if state["sha256"] != manifest["state"]["sha256"]:
        problems.append(
            f"the stack's state changed after review: the preview saw {_update_words(manifest['state'].get('lastUpdate'))}, "
            f"it now has {_update_words(state.get('lastUpdate'))}"
        )
    return problems


def check(stack: str, directory: Path, root: Path, pulumi: str = "pulumi") -> list[str]:
    """What :func:`differences` finds for the reviewed plan in ``directory``."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise Unusable(f"no readable {MANIFEST} in {directory}: {error}") from None
    if not (directory / PLAN).is_file():
        raise Unusable(f"no {PLAN} in {directory}")
    return differences(manifest, stack, root, stack_state(stack, pulumi))


# --- locate: the GitHub REST API ---------------------------------------------------------------


@dataclass(frozen=True)
class Located:
    pull_request: int
    head: str
    artifact: str
    run_id: int


class GitHub:
    """The few REST calls ``locate`` makes, with the job's token."""

    def __init__(self, api_url: str, repository: str, token: str) -> None:
        self.base = f"{api_url.rstrip('/')}/repos/{repository}"
        self.token = token

    def get(self, path: str, **query: str) -> Any:
        url = f"{self.base}/{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
        request = urllib.request.Request(url, headers={
            "Accept": "application/vnd.github+json", "Authorization": f"Bearer {self.token}",
            "X-GitHub-Api-Version": "2022-11-28", "User-Agent": "edge-registry-plan-check",
        })
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 (the Actions API URL)
                return json.load(answer)
        except urllib.error.HTTPError as error:
            raise Unusable(f"GitHub API {path}: HTTP {error.code} {error.reason}") from None
        except (urllib.error.URLError, OSError, json.JSONDecodeError) as error:
            raise Unusable(f"GitHub API {path}: {error}") from None


def locate(api: GitHub, stack: str, commit: str) -> Located:
    """The reviewed plan of ``stack`` for the pushed ``commit``: its pull request's head commit's
    preview artifact, the newest one that has not expired."""
    pulls = api.get(f"commits/{commit}/pulls")
    merged = [p for p in pulls if p.get("merge_commit_sha") == commit] or [p for p in pulls if p.get("merged_at")]
    if not merged:
        raise Refused(
            f"commit {commit} was not merged from a pull request, so no preview was reviewed for it: "
            f"deploy {stack} by hand (Actions > Deploy > Run workflow, site {stack}) behind the production reviewers"
        )
    pull = merged[0]
    head = pull["head"]["sha"]
    name = artifact_name(stack, head)
    listed = api.get("actions/artifacts", name=name, per_page="100")
    found = [a for a in listed.get("artifacts", []) if a.get("name") == name and not a.get("expired")]
    if not found:
        raise Refused(
            f"pull request #{pull['number']} has no reviewed plan for {stack} at its head commit {head} "
            f"(artifact {name}): its preview failed, was skipped or expired. Re-run that preview, or deploy "
            f"{stack} by hand (Actions > Deploy > Run workflow, site {stack})"
        )
    newest = max(found, key=lambda a: a.get("created_at") or "")
    return Located(pull["number"], head, name, int(newest["workflow_run"]["id"]))


# --- command line ------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="plan_check.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--pulumi", default="pulumi", help="the Pulumi CLI (default: pulumi on PATH)")
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record", help="save the plan and the manifest of what was reviewed")
    rec.add_argument("stack")
    rec.add_argument("--plan", type=Path, required=True)
    rec.add_argument("--reviewed-commit", required=True)
    rec.add_argument("--previewed-commit", required=True)
    rec.add_argument("--pull-request", type=int)
    rec.add_argument("--out", type=Path, required=True)
    loc = sub.add_parser("locate", help="find the preview run that saved the reviewed plan")
    loc.add_argument("stack")
    loc.add_argument("--commit", required=True)
    chk = sub.add_parser("check", help="refuse a plan whose stack file, code or state changed since review")
    chk.add_argument("stack")
    chk.add_argument("--dir", type=Path, required=True)
    return parser


def _github_output(values: dict[str, str]) -> None:
    target = os.environ.get("GITHUB_OUTPUT")
    if target:
        with open(target, "a", encoding="utf-8") as out:
            out.writelines(f"{k}={v}\n" for k, v in values.items())


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    root = Path.cwd()
    try:
        if args.command == "record":
            manifest = record(args.stack, args.plan, args.reviewed_commit, args.previewed_commit, args.pull_request,
                              args.out, root, args.pulumi)
            name = artifact_name(args.stack, args.reviewed_commit)
            print(f"reviewed plan of {args.stack} at {args.reviewed_commit}: {_update_words(manifest['state']['lastUpdate'])}, "
                  f"{len(manifest['program'])} program files; artifact {name}")
            _github_output({"artifact": name})
            return 0
        if args.command == "locate":
            environment = {k: os.environ.get(k, "") for k in ("GITHUB_API_URL", "GITHUB_REPOSITORY", "GITHUB_TOKEN")}
            missing = [k for k, v in environment.items() if not v]
            if missing:
                raise Unusable(f"not set: {', '.join(missing)}")
            found = locate(GitHub(*environment.values()), args.stack, args.commit)
            print(f"{args.stack}: pull request #{found.pull_request}, head {found.head}: artifact {found.artifact} "
                  f"of run {found.run_id}")
            _github_output({"run-id": str(found.run_id), "artifact": found.artifact,
                            "pull-request": str(found.pull_request)})
            return 0
        problems = check(args.stack, args.dir, root, args.pulumi)
    except Refused as refusal:
        print(f"::error title=no reviewed plan::{refusal}")
        return 1
    except Unusable as error:
        print(f"::error title=plan check::{error}")
        return 2
    if problems:
        for problem in problems:
            print(f"::error title=not as reviewed::{args.stack}: {problem}")
        print(f"Refusing to apply the reviewed plan of {args.stack}. Re-run the pull request's preview (a new plan "
              f"against the code and state of now) and then this deploy, or deploy {args.stack} by hand "
              f"(Actions > Deploy > Run workflow, site {args.stack}) behind the production reviewers.")
        return 1
    print(f"{args.stack}: stack file, code and state as reviewed; applying the reviewed plan")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
