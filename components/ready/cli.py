"""Image readiness: are the images a site needs there, synced, and pulled through its mirror?

    python -m components ready STACK [--project-dir DIR] [--ssh-key FILE] [--json]
                                     [--allow-arm-endpoint HOST[:PORT] ...]

For each image of the stack's ``requiredImages``: is its repository in the sync scope (``ns/*``
expanded against the parent registry's catalog as the program expands it), which digest the
parent registry gives it, whether the connected registry has synced since it was pushed (ARM's
``lastSyncTime``), and, from every node that is not ``gone``, whether its manifest resolves
through the mirror the node's registries.yaml gives the container runtime, to that same digest,
without the cloud registry (components/ready/verdicts.py). Prints a table of image × node and one
line per gap, or ``--json``. Reads only: ARM and the registry are read, the nodes run the read
script and the resolve script (HEAD of a manifest), nothing is changed.

Credentials: ARM and the parent registry as the program reads them (``EDGE_REGISTRY_ARM_TOKEN``,
sent only to Azure's ARM endpoints, loopback and hosts named with ``--allow-arm-endpoint``; else
``DefaultAzureCredential``); the nodes as ``previewNodeUser`` when the stack sets one, else the
node's user, with ``--ssh-key FILE``, the stack's ``sshPrivateKey`` when it is not encrypted, or
the SSH agent (``sshAgent: true``). The nodes need ``curl`` and ``sed``.

Exit codes: 0 every image is ready on every node; 1 a gap (one line each, naming the image and
the node), or something could not be read (ARM, the registry, a node); 2 usage or configuration
error (no such stack, an invalid stack file, no ``requiredImages``, no subscription, no key).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import IO

from components.command_line import CommandParser
from components.azure.acr import CatalogError
from components.azure.catalog import synced_repositories
from components.azure.cloud_images import CloudImage
from components.azure.credentials import ARM_TOKEN_ENV, credential_from_environment
from components.config import stack_files
from components.config.fields import PROJECT, ConfigError, is_placeholder
from components.config.images import ImageReference
from components.config.site import SiteConfig
from components.config.stack_files import REPO_ROOT
from components.fleet.endpoints import FLAG as ALLOW_FLAG, allowed_endpoint_argument
from components.fleet.endpoints import EndpointPolicy
from components.fleet.stacks import SUBSCRIPTION_ENV, SUBSCRIPTION_KEY
from components.ready.verdicts import NodeCheck, Readiness, as_json, judge, table

PROG = "python -m components ready"
EXIT_READY, EXIT_GAP, EXIT_USAGE = 0, 1, 2
EPILOG = f"""examples:
  {PROG} ship07 --ssh-key ~/.ssh/edge-registry          table of image x node, one line per gap
  {PROG} ship07 --ssh-key ~/.ssh/edge-registry --json   the same as JSON

The images are the stack's edge-registry:requiredImages (repository:tag or repository@sha256:...).
Checks: the sync scope (ns/* expanded against the catalog), the parent registry's digest, a sync
since the push, and on every node a HEAD of the manifest through the mirror its registries.yaml
names, to the same digest, never the cloud registry. Reads only; the nodes need curl and sed.

exit codes:
  0  every image is ready on every node
  1  a gap (each named, with the image and the node), or ARM, the registry or a node could not be read
  2  usage or configuration error (no such stack, an invalid one, no requiredImages, no subscription, no key)
"""


class UsageError(Exception):
    """A usage or configuration problem: one line each, exit 2."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def parser() -> argparse.ArgumentParser:
    """The command line."""
    top = CommandParser(
        prog=PROG, description=__doc__.split("\n\n")[0], epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    top.add_argument("stack", metavar="STACK", help="the site's stack (Pulumi.STACK.yaml)")
    top.add_argument("--project-dir", type=Path, default=REPO_ROOT,
                     help="directory with Pulumi.yaml and the stack files (default: this repository)")
    top.add_argument("--ssh-key", type=Path, metavar="FILE",
                     help="the nodes' SSH private key (default: the stack's sshPrivateKey when not encrypted, "
                          "or the SSH agent with sshAgent: true)")
    top.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    top.add_argument(ALLOW_FLAG, dest="allow_arm_endpoint", type=allowed_endpoint_argument, action="append", default=[],
                     metavar="HOST[:PORT]",
                     help=f"also send {ARM_TOKEN_ENV} to this ARM endpoint (repeatable)")
    return top


def _load(project_dir: Path, stack: str) -> tuple[SiteConfig, dict[str, str]]:
    if not (project_dir / "Pulumi.yaml").is_file():
        raise UsageError([f"{project_dir}: no Pulumi.yaml (use --project-dir)"])
    try:
        site, config = stack_files.load_stack_site_config(project_dir, stack)
    except ConfigError as error:
        raise UsageError(error.problems) from None
    if not site.required_images:
        raise UsageError([
            f"{PROJECT}:requiredImages: not set in Pulumi.{stack}.yaml: list the images the site's workloads "
            "need (repository:tag or repository@sha256:...)"
        ])
    return site, config


def _subscription(config: Mapping[str, str], stack: str) -> str:
    found = config.get(SUBSCRIPTION_KEY) or next((os.environ[e] for e in SUBSCRIPTION_ENV if os.environ.get(e)), "")
    if not found:
        raise UsageError([f"{SUBSCRIPTION_KEY}: not set in Pulumi.{stack}.yaml and neither "
                          f"{' nor '.join(SUBSCRIPTION_ENV)} is set: the check reads the parent registry through ARM"])
    return found


def _node_key(site: SiteConfig, config: Mapping[str, str], key_file: Path | None, stack: str) -> tuple[str | None, bool]:
    """(private key text, use the agent)."""
    if key_file is not None:
        try:
            return key_file.read_text(encoding="utf-8"), False
        except (OSError, UnicodeDecodeError) as error:
            raise UsageError([f"--ssh-key {key_file}: cannot read it: {type(error).__name__}"]) from None
    if site.ssh_agent:
        return None, True
    key = config.get(f"{PROJECT}:sshPrivateKey")
    if not key or is_placeholder(key):
        raise UsageError([f"{PROJECT}:sshPrivateKey is encrypted or not set in Pulumi.{stack}.yaml: pass --ssh-key FILE "
                          "(the key of the nodes' user, or of previewNodeUser when the stack sets it)"])
    return key, False


def check(args: argparse.Namespace) -> Readiness:
    """Read everything and judge. :raises UsageError: bad input (exit 2)."""
    site, config = _load(args.project_dir, args.stack)
    images: list[ImageReference] = list(site.required_image_references)
    subscription = _subscription(config, args.stack)
    has_nodes = any(not node.gone for node in site.nodes)
    key, use_agent = _node_key(site, config, args.ssh_key, args.stack) if has_nodes else (None, False)
    if os.environ.get(ARM_TOKEN_ENV, "").strip():
        refusal = EndpointPolicy(frozenset(args.allow_arm_endpoint)).refusal(site.arm_endpoint)
        if refusal:
            raise UsageError([f"{PROJECT}:armEndpoint: {refusal}"])

    from azure.core.exceptions import AzureError

    from components.azure.arm import ArmClient, ArmError
    from components.azure.cloud_images import AcrCloudRegistry

    credential = credential_from_environment(os.environ)
    problems: list[str] = []
    login_server = None
    last_sync = None
    sync_known = False
    try:
        with ArmClient(subscription, arm_endpoint=site.arm_endpoint, credential=credential) as arm:
            login_server = arm.login_server(site.registry_resource_group, site.registry_name)
            status = arm.connected_registry_status(
                site.registry_resource_group, site.registry_name, site.connected_registry_name
            )
        if status is None:
            problems.append(f"the connected registry {site.connected_registry_name} does not exist in "
                            f"{site.registry_name}: run pulumi up first")
        else:
            last_sync, sync_known = status.last_sync_time, True
    except (AzureError, ArmError, OSError) as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
        problems.append(f"could not read the registry from ARM ({site.arm_endpoint}): {first}")

    scope: list[str] | None = None
    cloud: dict[ImageReference, CloudImage] = {}
    nodes: dict[str, NodeCheck] = {}
    if login_server is not None:
        with AcrCloudRegistry(login_server, credential) as registry:
            try:
                scope = synced_repositories(site, lambda _login_server: registry.repositories(), login_server)
            except ConfigError as error:
                problems += error.problems
            except CatalogError as error:
                problems.append(str(error))
            cloud = {image: registry.image(image) for image in images}
        if has_nodes:
            from components.ready.nodes import check_nodes

            source = f"--ssh-key {args.ssh_key}" if args.ssh_key else "sshPrivateKey"
            nodes = check_nodes(site, login_server, images, key, use_agent, key_source=source)
    return judge(
        args.stack, images, login_server=login_server, scope=scope, cloud=cloud, last_sync_time=last_sync,
        nodes=nodes, problems=problems, repositories=site.repositories, sync_known=sync_known,
    )


def main(argv: list[str] | None = None, stdout: IO[str] | None = None, stderr: IO[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    out, err = stdout or sys.stdout, stderr or sys.stderr
    args = parser().parse_args(argv)
    try:
        readiness = check(args)
    except UsageError as error:
        for line in error.lines:
            err.write(f"ready: {line}\n")
        return EXIT_USAGE
    if args.json:
        out.write(json.dumps(as_json(readiness), indent=2) + "\n")
    else:
        out.write(table(readiness))
    return EXIT_READY if readiness.ready else EXIT_GAP


if __name__ == "__main__":
    sys.exit(main())
