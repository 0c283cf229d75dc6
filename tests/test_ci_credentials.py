"""Where CI's credentials come from: previews in their own `preview` environment with read-only
site credentials, deploy and decommission only in `production` (behind approval), site
credentials from the environment's key vault (scripts/ci_stack.py), and the deploy workflow's
cloud-only input."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.test_workflows import ROOT, load_workflow_stacks, outputs, run_script, step, workflow

SCRIPT = ROOT / "scripts" / "ci_stack.py"
#: What only an environment may hold: the passphrase and other secrets, the site credentials vault.
#: (The fleet status job reads ARM with the repository-level, Reader-only identity: no secrets.)
CREDENTIAL_EXPRESSIONS = ("secrets.", "vars.SITE_CREDENTIALS_VAULT")
KUBECONFIG = "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\n"


def uses_credentials(job: dict[str, Any]) -> bool:
    """Whether the job reads a secret or the site credentials' vault. The workflow's own
    GITHUB_TOKEN (scoped by the job's ``permissions:``, e.g. fleet status reading the drift
    artifact) is not a site credential."""
    text = json.dumps(job).replace("secrets.GITHUB_TOKEN", "")
    return any(expression in text for expression in CREDENTIAL_EXPRESSIONS)


# --- environments ------------------------------------------------------------------------------

def test_every_job_with_credentials_runs_in_an_environment() -> None:
    expected = {("preview.yml", "preview"): "preview", ("deploy.yml", "deploy"): "production",
                ("decommission.yml", "decommission"): "production", ("drift.yml", "drift"): "preview"}
    seen = {}
    for path in sorted((ROOT / ".github" / "workflows").glob("*.yml")):
        for name, job in workflow(path.name)["jobs"].items():
            if uses_credentials(job):
                seen[(path.name, name)] = job.get("environment")
    assert seen == expected


def test_jobs_outside_an_environment_hold_no_secret() -> None:
    # Such a job (the fleet status) may log in with the repository-level Reader identity only.
    for path in sorted((ROOT / ".github" / "workflows").glob("*.yml")):
        for name, job in workflow(path.name)["jobs"].items():
            if "environment" not in job:
                text = json.dumps(job)
                assert "secrets." not in text.replace("secrets.GITHUB_TOKEN", ""), (path.name, name)
                assert "PULUMI_CONFIG_PASSPHRASE" not in text, (path.name, name)


def test_previews_never_use_the_deploy_environment_or_the_deploy_key() -> None:
    """Only the preview vault's read key goes into the preview's agent, never node-ssh-key."""
    job = workflow("preview.yml")["jobs"]["preview"]
    assert job["environment"] == "preview"
    setup = step(job, "Site credentials")
    assert setup["env"]["VAULT"] == "${{ vars.SITE_CREDENTIALS_VAULT }}"  # the preview environment's vault
    assert "scripts/ci_stack.py" in setup["run"] and "--read-key-secret node-read-key" in setup["run"]
    assert "--ssh-key-secret" not in setup["run"]
    assert "node-ssh-key" not in (ROOT / ".github" / "workflows" / "preview.yml").read_text()
    # The agent the program's node reads use (sshAgent: true), as in deploy.
    assert job["env"]["SSH_AUTH_SOCK"] == "/tmp/edge-registry-ssh-agent.sock"
    names = [s.get("name", "") + s.get("uses", "") for s in job["steps"]]
    assert names.index(next(n for n in names if "azure/login" in n)) < names.index("Site credentials (read-only)")
    assert names.index("Site credentials (read-only)") < names.index(next(n for n in names if "pulumi/actions" in n))


@pytest.mark.parametrize("file, job_name", [("deploy.yml", "deploy"), ("decommission.yml", "decommission")])
def test_deploy_credentials_come_from_the_production_vault_into_an_agent(file: str, job_name: str) -> None:
    job = workflow(file)["jobs"][job_name]
    assert job["environment"] == "production"
    assert job["env"]["SSH_AUTH_SOCK"] == "/tmp/edge-registry-ssh-agent.sock"
    setup = step(job, "Site credentials")
    assert "--ssh-key-secret node-ssh-key" in setup["run"]
    assert setup["env"]["VAULT"] == "${{ vars.SITE_CREDENTIALS_VAULT }}"
    runs = [json.dumps(s) for s in job["steps"]]
    first_pulumi = next(i for i, s in enumerate(runs) if "pulumi up" in s or "pulumi destroy" in s or "pulumi/actions" in s)
    assert runs.index(json.dumps(setup)) < first_pulumi


# --- cloud-only input --------------------------------------------------------------------------

def test_deploy_offers_cloud_only_for_one_site() -> None:
    deploy = workflow("deploy.yml")
    inputs = deploy["on"]["workflow_dispatch"]["inputs"]
    assert inputs["cloud_only"]["type"] == "boolean" and inputs["cloud_only"]["default"] is False
    assert inputs["site"]["type"] == "string" and inputs["site"]["required"] is False
    job = deploy["jobs"]["deploy"]
    assert job["env"]["PULUMI_K8S_SKIP_UPDATE_UNREACHABLE"] == "${{ inputs.cloud_only && 'true' || 'false' }}"
    setup = step(job, "Site credentials")
    assert setup["env"]["CLOUD_ONLY"] == "${{ inputs.cloud_only && 'true' || 'false' }}"
    assert "--cloud-only" in setup["run"]


def select(repo: Path, **env: str) -> subprocess.CompletedProcess[str]:
    # The step runs the repository's stack selection (scripts/workflow_stacks.py).
    for module in ("scripts/workflow_stacks.py", "components/__init__.py", "components/config/examples.py"):
        (repo / module).parent.mkdir(exist_ok=True)
        shutil.copy(ROOT / module, repo / module)
    script = step(workflow("deploy.yml")["jobs"]["stacks"], "Select stacks")["run"]
    return run_script(script, repo, {"GITHUB_OUTPUT": str(repo / ".out"), "GITHUB_SHA": "x", **env})


def test_a_manual_run_can_pick_one_site_and_cloud_only_needs_it(tmp_path: Path) -> None:
    for name in ("Pulumi.yaml", "Pulumi.ship01.yaml", "Pulumi.ship02.yaml"):
        (tmp_path / name).write_text("config: {}\n")
    chosen = select(tmp_path, EVENT="workflow_dispatch", SITE="ship02", CLOUD_ONLY="true")
    assert chosen.returncode == 0, chosen.stdout + chosen.stderr
    assert json.loads(outputs(tmp_path / ".out")["stacks"]) == ["ship02"]
    unknown = select(tmp_path, EVENT="workflow_dispatch", SITE="ship03")
    assert unknown.returncode == 1 and "Pulumi.ship03.yaml" in unknown.stdout
    assert select(tmp_path, EVENT="workflow_dispatch", SITE="../x").returncode == 1
    alone = select(tmp_path, EVENT="workflow_dispatch", SITE="", CLOUD_ONLY="true")
    assert alone.returncode == 1 and "set site" in alone.stdout
    everything = select(tmp_path, EVENT="workflow_dispatch", SITE="", CLOUD_ONLY="false")
    assert everything.returncode == 0, everything.stdout + everything.stderr
    assert json.loads(outputs(tmp_path / ".out")["stacks"]) == ["ship01", "ship02"]


# --- scripts/ci_stack.py -----------------------------------------------------------------------

@pytest.fixture()
def site(tmp_path: Path) -> dict[str, Any]:
    """A project with stack ship01, a fake `az` serving a fake vault, and HOME in tmp."""
    project, home, bin_dir = tmp_path / "project", tmp_path / "home", tmp_path / "bin"
    for d in (project, home, bin_dir):
        d.mkdir()
    key = tmp_path / "node-key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    (bin_dir / "az").write_text(
        "#!/bin/sh\n"
        'echo "$*" >> "$AZ_LOG"\n'
        'while [ "$#" -gt 0 ]; do [ "$1" = --name ] && name=$2; shift; done\n'
        'case "$name" in\n'
        f"  kubeconfig-ship01) printf '%s' '{KUBECONFIG}' ;;\n"
        f'  node-ssh-key|node-read-key) cat "{key}" ;;\n'
        '  *) echo "ERROR: (SecretNotFound) A secret with (name/id) $name was not found in this key vault." >&2; exit 3 ;;\n'
        "esac\n"
    )
    (bin_dir / "az").chmod(0o755)
    stack = {"config": {"edge-registry:registryName": "contosoedge", "edge-registry:kubeconfigPath": "~/.kube/ship01.yaml",
                        "edge-registry:sshAgent": True}}
    (project / "Pulumi.ship01.yaml").write_text(yaml.safe_dump(stack))
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "HOME": str(home), "AZ_LOG": str(tmp_path / "az.log"),
           "SSH_AUTH_SOCK": str(tmp_path / "agent.sock")}
    return {"project": project, "home": home, "env": env, "key": key, "tmp": tmp_path}


def prepare(site: dict[str, Any], *args: str, stack: str = "ship01") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), stack, "--vault", "kv-edge-preview", "--project-dir", str(site["project"]), *args],
        capture_output=True, text=True, timeout=60, env=site["env"],
    )


def test_the_kubeconfig_goes_to_the_stacks_path_readable_by_the_runner_only(site: dict[str, Any]) -> None:
    done = prepare(site)
    assert done.returncode == 0, done.stdout + done.stderr
    target = site["home"] / ".kube" / "ship01.yaml"
    assert target.read_text() == KUBECONFIG
    assert target.stat().st_mode & 0o777 == 0o600
    assert "kubeconfig-ship01" in (site["tmp"] / "az.log").read_text()
    assert KUBECONFIG not in done.stdout + done.stderr


@pytest.mark.parametrize("key", ["edge-registry:sshPrivateKey", "edge-registry:kubeconfig"])
def test_a_stack_file_holding_a_credential_is_refused(site: dict[str, Any], key: str) -> None:
    stack_file = site["project"] / "Pulumi.ship01.yaml"
    document = yaml.safe_load(stack_file.read_text())
    document["config"][key] = {"secure": "v1:c2VjcmV0"}
    stack_file.write_text(yaml.safe_dump(document))
    refused = prepare(site)
    assert refused.returncode == 1 and key in refused.stdout and "c2VjcmV0" not in refused.stdout
    assert not (site["tmp"] / "az.log").exists()  # nothing fetched


def test_a_missing_vault_secret_is_a_clear_error(site: dict[str, Any]) -> None:
    (site["project"] / "Pulumi.ship02.yaml").write_text(yaml.safe_dump(
        {"config": {"edge-registry:kubeconfigPath": "~/.kube/ship02.yaml"}}))
    failed = prepare(site, stack="ship02")
    assert failed.returncode == 1
    assert "kubeconfig-ship02" in failed.stdout and "kv-edge-preview" in failed.stdout


@contextlib.contextmanager
def prepared_with_agent(site: dict[str, Any], *args: str) -> Iterator[subprocess.CompletedProcess[str]]:
    """``prepare`` with ``args``, then stop the SSH agent it started (it prints its pid)."""
    done = prepare(site, *args)
    pid = re.search(r"\(pid (\d+)\)", done.stdout)
    try:
        yield done
    finally:
        if pid:
            os.kill(int(pid.group(1)), signal.SIGTERM)


def test_the_node_key_goes_into_the_agent_only(site: dict[str, Any]) -> None:
    with prepared_with_agent(site, "--ssh-key-secret", "node-ssh-key") as done:
        assert done.returncode == 0, done.stdout + done.stderr
        listed = subprocess.run(["ssh-add", "-L"], capture_output=True, text=True, env=site["env"], timeout=30)
        assert listed.stdout.split()[:2] == Path(f"{site['key']}.pub").read_text().split()[:2]
        assert "PRIVATE KEY" not in done.stdout + done.stderr
        assert "PRIVATE KEY" not in (site["project"] / "Pulumi.ship01.yaml").read_text()


def test_the_node_key_needs_ssh_agent_mode(site: dict[str, Any]) -> None:
    stack_file = site["project"] / "Pulumi.ship01.yaml"
    document = yaml.safe_load(stack_file.read_text())
    del document["config"]["edge-registry:sshAgent"]
    stack_file.write_text(yaml.safe_dump(document))
    refused = prepare(site, "--ssh-key-secret", "node-ssh-key")
    assert refused.returncode == 1 and "sshAgent: true" in refused.stdout


def with_nodes(site: dict[str, Any], **extra: Any) -> None:
    stack_file = site["project"] / "Pulumi.ship01.yaml"
    document = yaml.safe_load(stack_file.read_text())
    document["config"]["edge-registry:nodes"] = [{"host": "192.0.2.10", "role": "server"},
                                                 {"host": "192.0.2.11", "role": "agent", "gone": True}]
    document["config"].update({f"edge-registry:{k}": v for k, v in extra.items()})
    stack_file.write_text(yaml.safe_dump(document))


def test_a_preview_loads_the_read_key_into_the_agent(site: dict[str, Any]) -> None:
    with_nodes(site, previewNodeUser="edge-registry-read")
    with prepared_with_agent(site, "--read-key-secret", "node-read-key") as done:
        assert done.returncode == 0, done.stdout + done.stderr
        assert "node read key 'node-read-key' loaded into the SSH agent" in done.stdout
        assert "::warning" not in done.stdout
        listed = subprocess.run(["ssh-add", "-L"], capture_output=True, text=True, env=site["env"], timeout=30)
        assert listed.stdout.split()[:2] == Path(f"{site['key']}.pub").read_text().split()[:2]
        assert "PRIVATE KEY" not in done.stdout + done.stderr
        assert "node-ssh-key" not in (site["tmp"] / "az.log").read_text()


def test_a_preview_without_a_node_read_account_warns_by_key(site: dict[str, Any]) -> None:
    with_nodes(site)
    with prepared_with_agent(site, "--read-key-secret", "node-read-key") as done:
        assert done.returncode == 0, done.stdout + done.stderr
        assert "::warning title=stack ship01::" in done.stdout and "edge-registry:previewNodeUser" in done.stdout


def test_a_preview_of_a_stack_without_nodes_loads_no_key(site: dict[str, Any]) -> None:
    done = prepare(site, "--read-key-secret", "node-read-key")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no nodes to read: no node key loaded" in done.stdout
    assert "node-read-key" not in (site["tmp"] / "az.log").read_text()
    assert not Path(site["env"]["SSH_AUTH_SOCK"]).exists()  # no agent started


@pytest.mark.parametrize("args", [["--read-key-secret", "node-ssh-key"],
                                  ["--read-key-secret", "node-read-key", "--ssh-key-secret", "node-ssh-key"]],
                         ids=["deploy-key-as-read-key", "both-keys"])
def test_a_preview_never_loads_the_deploy_key(site: dict[str, Any], args: list[str]) -> None:
    with_nodes(site, previewNodeUser="edge-registry-read")
    refused = prepare(site, *args)
    assert refused.returncode == 1 and "::error" in refused.stdout
    assert not Path(site["env"]["SSH_AUTH_SOCK"]).exists()
    assert "node-ssh-key" not in ((site["tmp"] / "az.log").read_text() if (site["tmp"] / "az.log").exists() else "")


def test_cloud_only_is_set_in_this_checkout(site: dict[str, Any]) -> None:
    done = prepare(site, "--cloud-only")
    assert done.returncode == 0, done.stdout + done.stderr
    config = yaml.safe_load((site["project"] / "Pulumi.ship01.yaml").read_text())["config"]
    assert config["edge-registry:cloudOnly"] is True
    assert config["edge-registry:registryName"] == "contosoedge"


def credentials_in_deployed_stacks(root: Path) -> list[str]:
    """What is wrong with the stack files at ``root`` that the workflows deploy (every
    ``Pulumi.<site>.yaml`` not listed in .github/example-stacks.txt): one line per credential."""
    found = []
    for site in load_workflow_stacks().all_sites(root):
        stack_file = root / f"Pulumi.{site}.yaml"
        config = (yaml.safe_load(stack_file.read_text()) or {}).get("config") or {}
        for key in ("sshPrivateKey", "kubeconfig"):
            if f"edge-registry:{key}" in config or key in config:
                found.append(
                    f"{stack_file.name} holds edge-registry:{key}, but the workflows deploy this site and every "
                    f"workflow, previews too, can decrypt its stack file: `pulumi config rm edge-registry:{key} "
                    f"--stack {site}`, then "
                    + ("set edge-registry:sshAgent: true and keep the node key in the environments' key vaults"
                       if key == "sshPrivateKey" else
                       "set edge-registry:kubeconfigPath and keep the kubeconfig in the environments' key vaults")
                    + " (docs/runbooks.md#preview-credentials). A site deployed only from a workstation keeps its "
                    "stack file out of the repository (README, Deploy a site)."
                )
    return found


def test_no_stack_file_the_workflows_deploy_holds_a_credential() -> None:
    problems = credentials_in_deployed_stacks(ROOT)
    assert not problems, "\n".join(problems)


def test_the_credential_guard_finds_a_credential_in_a_deployed_stack(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.ship01.yaml").write_text("config:\n  edge-registry:sshPrivateKey:\n    secure: v1:abc\n")
    (tmp_path / "Pulumi.ship02.yaml").write_text("config:\n  edge-registry:sshAgent: true\n")
    (tmp_path / "Pulumi.dev.yaml").write_text("config:\n  edge-registry:kubeconfig:\n    secure: v1:abc\n")
    (tmp_path / ".github").mkdir()
    (tmp_path / ".github" / "example-stacks.txt").write_text("dev\n")
    (problem,) = credentials_in_deployed_stacks(tmp_path)  # dev is an example: not deployed
    assert problem.startswith("Pulumi.ship01.yaml holds edge-registry:sshPrivateKey")
    assert "pulumi config rm edge-registry:sshPrivateKey --stack ship01" in problem and "sshAgent: true" in problem
