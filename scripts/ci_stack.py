"""Prepare this checkout for one CI run of a site stack (preview, deploy or decommission).

    venv/bin/python scripts/ci_stack.py STACK --vault VAULT [--ssh-key-secret NAME | --read-key-secret NAME]
                                        [--cloud-only]

* Refuses a stack file that holds a credential (``edge-registry:kubeconfig`` or
  ``edge-registry:sshPrivateKey``): every workflow can decrypt the stack file, previews included,
  so credentials come from the GitHub environment's key vault instead.
* Writes the site's kubeconfig, Key Vault secret ``kubeconfig-<stack>``, to the path the stack
  names in ``edge-registry:kubeconfigPath`` (mode 0600). Each environment has its own vault: the
  preview one holds read-only kubeconfigs (deploy/preview-rbac.yaml), the production one admin
  kubeconfigs. Only the path is ever in the stack's state.
* ``--ssh-key-secret``: loads that Key Vault secret (the node deploy key, ``node-ssh-key``) into
  the SSH agent at ``$SSH_AUTH_SOCK``, started if needed; the stack must say ``sshAgent: true``.
  Deploy and decommission only.
* ``--read-key-secret``: the same for the key of the node read account (``node-read-key`` in the
  preview vault), which can only run the installed read script (docs/runbooks.md, "Nodes (once
  per node)"), so previews read every node at program time. Loaded only when the stack has nodes
  to read; warns when the stack names no ``previewNodeUser`` (the preview would log in as the
  deploy user, which the read key is not authorized for). Never the deploy key.
* ``--cloud-only``: sets ``edge-registry:cloudOnly: true`` in this checkout's stack file (never
  committed), for a site whose cluster and nodes cannot be reached (docs/runbooks.md).

Secrets are read with ``az keyvault secret show`` (the job's azure/login session) and never
printed. docs/runbooks.md ("Preview credentials") lists the vault secrets and role assignments.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

PROJECT = "edge-registry"
CREDENTIAL_KEYS = ("kubeconfig", "sshPrivateKey")
#: The node deploy key's vault secret (production vault): never loaded as a read key.
DEPLOY_KEY_SECRET = "node-ssh-key"


class SetupError(Exception):
    """A problem with the stack or the vault; the message says what to do."""


def stack_document(stack_file: Path) -> dict[str, Any]:
    if not stack_file.is_file():
        raise SetupError(f"{stack_file.name}: no such stack file")
    document = yaml.safe_load(stack_file.read_text()) or {}
    if not isinstance(document, dict):
        raise SetupError(f"{stack_file.name}: not a stack file")
    document.setdefault("config", {})
    return document


def config_value(document: dict[str, Any], key: str) -> Any:
    config = document.get("config") or {}
    return config.get(f"{PROJECT}:{key}", config.get(key))


def vault_secret(vault: str, name: str) -> str:
    done = subprocess.run(
        ["az", "keyvault", "secret", "show", "--vault-name", vault, "--name", name, "--query", "value", "-o", "tsv"],
        capture_output=True, text=True, timeout=120,
    )
    if done.returncode != 0 or not done.stdout.strip():
        # az's message names the vault and secret, never a value.
        raise SetupError(f"cannot read secret {name!r} from key vault {vault!r}: {done.stderr.strip() or 'empty'}")
    return done.stdout if done.stdout.endswith("\n") else done.stdout + "\n"


def write_kubeconfig(stack: str, document: dict[str, Any], vault: str) -> Path:
    path = config_value(document, "kubeconfigPath")
    if not path:
        raise SetupError(
            f"Pulumi.{stack}.yaml: set edge-registry:kubeconfigPath (e.g. ~/.kube/{stack}.yaml); "
            f"CI writes the kubeconfig from key vault secret kubeconfig-{stack} there"
        )
    target = Path(os.path.expanduser(str(path)))
    target.parent.mkdir(parents=True, exist_ok=True)
    content = vault_secret(vault, f"kubeconfig-{stack}")
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(content)
    target.chmod(0o600)
    return target


def load_ssh_key(vault: str, secret: str, document: dict[str, Any], stack: str) -> None:
    if str(config_value(document, "sshAgent")).lower() != "true":
        raise SetupError(f"Pulumi.{stack}.yaml: set edge-registry:sshAgent: true so the node key stays out of the state")
    socket = os.environ.get("SSH_AUTH_SOCK")
    if not socket:
        raise SetupError("SSH_AUTH_SOCK is not set: the workflow names the agent socket")
    if not Path(socket).exists():
        started = subprocess.run(["ssh-agent", "-a", socket], check=True, capture_output=True, text=True, timeout=30)
        pid = re.search(r"SSH_AGENT_PID=(\d+)", started.stdout)
        print(f"ssh-agent started at {socket} (pid {pid.group(1) if pid else '?'})")
    key = vault_secret(vault, secret)
    added = subprocess.run(["ssh-add", "-q", "-"], input=key, capture_output=True, text=True, timeout=30)
    if added.returncode != 0:
        raise SetupError(f"ssh-add refused key vault secret {secret!r}: {added.stderr.strip()}")


def nodes_to_read(document: dict[str, Any]) -> list[str]:
    """Hosts of the stack's nodes that a run reads (a node marked ``gone`` is never contacted)."""
    nodes = config_value(document, "nodes") or []
    if not isinstance(nodes, list):
        return []
    return [str(n.get("host")) for n in nodes if isinstance(n, dict) and not n.get("gone")]


def load_read_key(vault: str, secret: str, document: dict[str, Any], stack: str) -> list[str]:
    """Load the node read account's key for a preview; returns what was done and any warning."""
    if secret == DEPLOY_KEY_SECRET:
        raise SetupError(f"{secret!r} is the node deploy key: a preview loads only the read account's key")
    if not nodes_to_read(document):
        return ["no nodes to read: no node key loaded"]
    load_ssh_key(vault, secret, document, stack)
    done = [f"node read key {secret!r} loaded into the SSH agent"]
    if not config_value(document, "previewNodeUser"):
        done.append(
            f"::warning title=stack {stack}::Pulumi.{stack}.yaml sets no edge-registry:previewNodeUser: the preview "
            "logs in to the nodes as their deploy user, which the read key is not authorized for, so each node "
            "shows a warning and no plan (docs/runbooks.md, Nodes (once per node))"
        )
    return done


def set_cloud_only(stack_file: Path, document: dict[str, Any]) -> None:
    document["config"][f"{PROJECT}:cloudOnly"] = True
    stack_file.write_text(yaml.safe_dump(document, sort_keys=False))


def prepare(
    stack: str,
    vault: str,
    ssh_key_secret: str | None,
    cloud_only: bool,
    project_dir: Path,
    read_key_secret: str | None = None,
) -> list[str]:
    """Do the preparation; returns what was done (no secret values)."""
    if ssh_key_secret and read_key_secret:
        raise SetupError("--ssh-key-secret and --read-key-secret exclude each other: one node key per run")
    stack_file = project_dir / f"Pulumi.{stack}.yaml"
    document = stack_document(stack_file)
    held = [k for k in CREDENTIAL_KEYS if config_value(document, k) not in (None, "")]
    if held:
        raise SetupError(
            f"Pulumi.{stack}.yaml holds {', '.join(f'edge-registry:{k}' for k in held)}: every workflow, previews "
            "included, can decrypt it. Move it to the key vaults and remove it (docs/runbooks.md, Preview credentials)"
        )
    done = [f"kubeconfig written to {write_kubeconfig(stack, document, vault)}"]
    if ssh_key_secret:
        load_ssh_key(vault, ssh_key_secret, document, stack)
        done.append(f"node key {ssh_key_secret!r} loaded into the SSH agent")
    if read_key_secret:
        done += load_read_key(vault, read_key_secret, document, stack)
    if cloud_only:
        set_cloud_only(stack_file, document)
        done.append(f"cloudOnly set in {stack_file.name} (this checkout only)")
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stack")
    parser.add_argument("--vault", required=True, help="Key Vault of the GitHub environment")
    parser.add_argument("--ssh-key-secret", help="Key Vault secret with the node deploy key to load into the agent")
    parser.add_argument("--read-key-secret", help="Key Vault secret with the node read account's key (previews)")
    parser.add_argument("--cloud-only", action="store_true")
    parser.add_argument("--project-dir", type=Path, default=Path(__file__).resolve().parent.parent)
    args = parser.parse_args(argv)
    try:
        for line in prepare(
            args.stack, args.vault, args.ssh_key_secret, args.cloud_only, args.project_dir, args.read_key_secret
        ):
            print(line)
    except SetupError as error:
        print(f"::error title=stack {args.stack}::{error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
