"""scripts/plan_check.py: the reviewed plan's manifest, the refusals that name what changed after
review, and finding the preview run of a merged pull request through a local stand-in for the
GitHub REST API (127.0.0.1)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import util
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "plan_check.py"


def load() -> Any:
    spec = util.spec_from_file_location("plan_check", SCRIPT)
    assert spec and spec.loader
    module = util.module_from_spec(spec)
    sys.modules["plan_check"] = module
    spec.loader.exec_module(module)
    return module


plan_check = load()


class Repo:
    """A checkout with a program, a policy pack, two stacks, and a fake ``pulumi`` whose state
    (what ``stack export`` and ``stack history`` print) the test sets."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.state = root.parent / "state"
        self.state.mkdir()
        self.git("init", "-q")
        self.git("config", "user.email", "ci@example.invalid")
        self.git("config", "user.name", "ci")
        for name, text in {
            "components/site.py": "v1\n", "components/config/azure.py": "v1\n", "policy/config.json": "{}\n",
            "Pulumi.yaml": "name: edge-registry\n", "requirements.lock": "pulumi==3\n", "README.md": "docs\n",
            "Pulumi.ship01.yaml": "config: {}\n", "Pulumi.ship02.yaml": "config: {}\n",
        }.items():
            self.write(name, text)
        self.git("add", "-A")
        self.git("commit", "-qm", "base")
        self.set_state("deployment-1", version=4)
        self.pulumi = root.parent / "pulumi"
        self.pulumi.write_text(
            "#!/bin/sh\n"
            f'case "$2" in export) cat "{self.state}/export";; history) cat "{self.state}/history";; '
            '*) echo "unexpected: $*" >&2; exit 3;; esac\n'
        )
        self.pulumi.chmod(0o755)

    def git(self, *args: str) -> None:
        subprocess.run(["git", *args], cwd=self.root, check=True, capture_output=True)

    def write(self, name: str, text: str) -> None:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def set_state(self, deployment: str, version: int | None) -> None:
        (self.state / "export").write_text(json.dumps({"version": 3, "deployment": deployment}))
        history = [] if version is None else [
            {"version": version, "kind": "update", "result": "succeeded", "endTime": "2026-12-01T05:17:00Z",
             "config": {"edge-registry:kubeconfig": "[secret]"}}]
        (self.state / "history").write_text(json.dumps(history))

    def plan_file(self) -> Path:
        plan = self.root.parent / "plan-ship01.json"
        plan.write_text('{"resourcePlans": {}}\n')
        return plan

    def main(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(SCRIPT), "--pulumi", str(self.pulumi), *args], cwd=self.root,
                              capture_output=True, text=True, timeout=60)

    def record(self) -> Path:
        out = self.root.parent / "reviewed"
        done = self.main("record", "ship01", "--plan", str(self.plan_file()), "--reviewed-commit", "a" * 40,
                         "--previewed-commit", "b" * 40, "--pull-request", "7", "--out", str(out))
        assert done.returncode == 0, done.stdout + done.stderr
        return out


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    (tmp_path / "checkout").mkdir()
    return Repo(tmp_path / "checkout")


def test_the_manifest_records_the_commits_the_stack_file_the_program_and_the_state(repo: Repo) -> None:
    out = repo.record()
    manifest = json.loads((out / "manifest.json").read_text())
    assert (out / "plan.json").read_text() == '{"resourcePlans": {}}\n'
    assert manifest["stack"] == "ship01" and manifest["pullRequest"] == 7
    assert (manifest["reviewedCommit"], manifest["previewedCommit"]) == ("a" * 40, "b" * 40)
    assert manifest["stackFile"]["path"] == "Pulumi.ship01.yaml"
    # The files that affect every stack, and only those: not the docs, not another site's file.
    assert sorted(manifest["program"]) == ["Pulumi.yaml", "components/config/azure.py", "components/site.py",
                                           "policy/config.json", "requirements.lock"]
    # The state as a fingerprint and the last update's words; nothing of the history's config.
    assert manifest["state"]["lastUpdate"] == {"version": 4, "kind": "update", "result": "succeeded",
                                               "endTime": "2026-12-01T05:17:00Z"}
    assert "deployment-1" not in (out / "manifest.json").read_text() and "secret" not in (out / "manifest.json").read_text()


def test_an_unchanged_checkout_and_state_pass(repo: Repo) -> None:
    out = repo.record()
    # Untracked files (the venvs the workflow builds, caches) are not the program.
    repo.write("venv/lib/site.py", "built\n")
    repo.write("components/__pycache__/site.cpython-311.pyc", "x")
    # Another site's stack file and the docs are not this stack's.
    repo.write("Pulumi.ship02.yaml", "config: {changed: true}\n")
    repo.write("README.md", "more docs\n")
    done = repo.main("check", "ship01", "--dir", str(out))
    assert done.returncode == 0, done.stdout
    assert "as reviewed" in done.stdout


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda r: r.write("Pulumi.ship01.yaml", "config: {edge-registry:syncWindow: PT2H}\n"),
         "the stack file Pulumi.ship01.yaml changed after review"),
        (lambda r: r.write("components/site.py", "v2\n"), "the code changed after review (reviewed at aaaa"),
        (lambda r: r.write("policy/config.json", '{"allowHttpStacks": ["ship01"]}\n'), "policy/config.json"),
        (lambda r: r.set_state("deployment-2", version=5),
         "the stack's state changed after review: the preview saw update 4 (update, succeeded, ended "
         "2026-12-01T05:17:00Z), it now has update 5"),
    ],
    ids=["stack file", "code", "policy config", "state"],
)
def test_a_change_after_review_is_refused_naming_it(repo: Repo, change: Any, says: str) -> None:
    out = repo.record()
    change(repo)
    done = repo.main("check", "ship01", "--dir", str(out))
    assert done.returncode == 1, done.stdout
    errors = [line for line in done.stdout.splitlines() if line.startswith("::error")]
    assert len(errors) == 1 and says in errors[0], done.stdout
    assert "Re-run the pull request's preview" in done.stdout


def test_the_changed_files_are_named_and_a_new_or_removed_file_counts(repo: Repo) -> None:
    out = repo.record()
    repo.write("components/new_module.py", "x\n")
    repo.git("add", "components/new_module.py")
    repo.git("rm", "-q", "components/config/azure.py")
    done = repo.main("check", "ship01", "--dir", str(out))
    assert done.returncode == 1
    assert "components/config/azure.py, components/new_module.py" in done.stdout


def test_a_plan_of_another_stack_or_a_missing_one_is_not_applied(repo: Repo) -> None:
    out = repo.record()
    other = repo.main("check", "ship02", "--dir", str(out))
    assert other.returncode == 1 and "stack 'ship01''s, not 'ship02''s" in other.stdout
    (out / "plan.json").unlink()
    missing = repo.main("check", "ship01", "--dir", str(out))
    assert missing.returncode == 2 and "no plan.json" in missing.stdout


def test_a_failing_cli_is_an_error_not_a_pass(repo: Repo) -> None:
    out = repo.record()
    repo.pulumi.write_text("#!/bin/sh\necho 'error: no stack named ship01 found' >&2\nexit 6\n")
    done = repo.main("check", "ship01", "--dir", str(out))
    assert done.returncode == 2 and "exit 6" in done.stdout and "no stack named ship01" in done.stdout


# --- locate -------------------------------------------------------------------------------------

HEAD = "c" * 40
MERGE = "d" * 40


class FakeGitHub(BaseHTTPRequestHandler):
    """GET …/commits/<sha>/pulls and …/actions/artifacts?name=…, from ``routes``."""

    routes: dict[str, Any] = {}
    seen: list[tuple[str, str | None]] = []

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        FakeGitHub.seen.append((self.path, self.headers.get("Authorization")))
        body = FakeGitHub.routes.get(self.path)
        if body is None:
            self.send_response(404)
            self.end_headers()
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def github() -> Iterator[str]:
    FakeGitHub.routes, FakeGitHub.seen = {}, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeGitHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def artifact(run_id: int, created: str, expired: bool = False) -> dict[str, Any]:
    return {"name": f"plan-ship01-{HEAD}", "expired": expired, "created_at": created,
            "workflow_run": {"id": run_id, "head_sha": HEAD}}


def locate(repo: Repo, api: str, commit: str = MERGE) -> subprocess.CompletedProcess[str]:
    output = repo.root.parent / "github_output"
    return subprocess.run(
        [sys.executable, str(SCRIPT), "locate", "ship01", "--commit", commit], cwd=repo.root, capture_output=True,
        text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "GITHUB_API_URL": api, "GITHUB_REPOSITORY": "org/fleet",
             "GITHUB_TOKEN": "job-token", "GITHUB_OUTPUT": str(output)},
    )


def test_locate_finds_the_newest_unexpired_preview_of_the_merged_pull_requests_head(repo: Repo, github: str) -> None:
    FakeGitHub.routes = {
        f"/repos/org/fleet/commits/{MERGE}/pulls": [
            {"number": 3, "merge_commit_sha": "e" * 40, "merged_at": "2026-11-30T00:00:00Z", "head": {"sha": "f" * 40}},
            {"number": 7, "merge_commit_sha": MERGE, "merged_at": "2026-12-02T00:00:00Z", "head": {"sha": HEAD}},
        ],
        f"/repos/org/fleet/actions/artifacts?name=plan-ship01-{HEAD}&per_page=100": {"artifacts": [
            artifact(11, "2026-12-01T09:00:00Z"), artifact(12, "2026-12-01T10:00:00Z"),
            artifact(13, "2026-12-01T11:00:00Z", expired=True)]},
    }
    done = locate(repo, github)
    assert done.returncode == 0, done.stdout + done.stderr
    written = dict(line.split("=", 1) for line in (repo.root.parent / "github_output").read_text().splitlines())
    assert written == {"run-id": "12", "artifact": f"plan-ship01-{HEAD}", "pull-request": "7"}
    assert {auth for _, auth in FakeGitHub.seen} == {"Bearer job-token"}


def test_locate_refuses_a_direct_push_and_a_pull_request_without_a_plan(repo: Repo, github: str) -> None:
    FakeGitHub.routes = {f"/repos/org/fleet/commits/{MERGE}/pulls": []}
    direct = locate(repo, github)
    assert direct.returncode == 1 and "was not merged from a pull request" in direct.stdout
    assert "Run workflow, site ship01" in direct.stdout
    FakeGitHub.routes = {
        f"/repos/org/fleet/commits/{MERGE}/pulls": [
            {"number": 7, "merge_commit_sha": MERGE, "merged_at": "2026-12-02T00:00:00Z", "head": {"sha": HEAD}}],
        f"/repos/org/fleet/actions/artifacts?name=plan-ship01-{HEAD}&per_page=100": {"artifacts": [
            artifact(13, "2026-12-01T11:00:00Z", expired=True)]},
    }
    none = locate(repo, github)
    assert none.returncode == 1 and f"pull request #7 has no reviewed plan for ship01 at its head commit {HEAD}" in none.stdout
    assert not (repo.root.parent / "github_output").exists()


def test_locate_reports_an_unreachable_api_as_an_error(repo: Repo, github: str) -> None:
    done = locate(repo, github, commit="0" * 40)  # not routed: 404
    assert done.returncode == 2 and "HTTP 404" in done.stdout
    unset = subprocess.run([sys.executable, str(SCRIPT), "locate", "ship01", "--commit", MERGE], cwd=repo.root,
                           capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}, timeout=60)
    assert unset.returncode == 2 and "GITHUB_API_URL, GITHUB_REPOSITORY, GITHUB_TOKEN" in unset.stdout
