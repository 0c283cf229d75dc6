"""The readiness check on the nodes: one SSH session per node, two commands, both read-only.

Each node that is not ``gone`` is reached as the program reaches it (components/nodes/read.py:
the pinned host key, the same timeouts), as ``previewNodeUser`` when the stack sets one (the read
account, whose forced command and sudoers rule allow this with ``read-account ... --ready``),
else as the node's user. The session reads registries.yaml (the read script), works out the
mirror the node's runtime uses for the login server (components/nodes/resolve.py), and runs the
resolve script with that plan on stdin: the credentials it holds never appear in a command.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from components.config.images import ImageReference
from components.config.site import SiteConfig
from components.nodes import commands, read_account
from components.nodes.payload import NodeMirrorError, parse_read_output
from components.nodes.read import NodeReadFailure, NodeTarget, SshNodeReader, run_command
from components.nodes.resolve import MirrorPlanError, mirror_plan, parse_resolve_output, resolve_stdin
from components.ready.verdicts import NodeCheck

if TYPE_CHECKING:
    import paramiko

#: Seconds the resolve script may take per image: curl's limit per endpoint is 25 s in all.
SECONDS_PER_IMAGE = 30


def node_targets(site: SiteConfig) -> list[NodeTarget]:
    """Every node that is not gone, with the read command its account may run."""
    targets = []
    for node in site.nodes:
        if node.gone:
            continue
        if site.preview_node_user:
            targets.append(NodeTarget(node.host, node.port, site.preview_node_user, node.path, node.host_key,
                                      command=read_account.read_command(node.path)))
        else:
            targets.append(NodeTarget(node.host, node.port, node.user, node.path, node.host_key,
                                      command=commands.read_command(node.path, node.user)))
    return targets


def _last_line(text: str, status: int) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else f"exit status {status}"


class NodeSession:
    """What runs on one connected node (an :data:`components.nodes.read.NodeSession`)."""

    def __init__(self, site: SiteConfig, login_server: str, images: Sequence[ImageReference]) -> None:
        self.site = site
        self.login_server = login_server
        self.images = list(images)
        self.timeout = 30 + SECONDS_PER_IMAGE * len(self.images)

    def _resolve_command(self, target: NodeTarget) -> str:
        if self.site.preview_node_user:
            return read_account.resolve_command(target.path)
        return commands.resolve_command(target.path, target.user)

    def __call__(self, client: paramiko.SSHClient, target: NodeTarget) -> NodeCheck | NodeReadFailure:
        read = run_command(client, target, target.command or "", 30, what="the read")
        if isinstance(read, NodeReadFailure):
            return read
        status, out, err = read
        if status != 0:
            return NodeCheck(target.host, f"reading {target.path} failed: {_last_line(err, status)}")
        try:
            node_read = parse_read_output(out.removesuffix("\n"))
        except NodeMirrorError as error:
            return NodeCheck(target.host, f"{target.path}: {error}")
        content = node_read.content
        registry = self.login_server
        if not self.site.mirror_login_server:
            # Workloads name images by the site registry's endpoint: the mirror edge-registry wrote for it.
            owned = [key for section, key in node_read.owned if section == "mirrors" and key != self.login_server]
            if not owned:
                return NodeCheck(target.host, f"{target.path}: mirrorLoginServer is false and edge-registry has "
                                 "written no mirror for the site registry here: run pulumi up")
            registry = owned[0]
        try:
            plan = mirror_plan(content, registry)
        except MirrorPlanError as error:
            return NodeCheck(target.host, f"{target.path}: {error}")
        done = run_command(client, target, self._resolve_command(target), self.timeout,
                           stdin=resolve_stdin(content, plan, self.images), what="the readiness check")
        if isinstance(done, NodeReadFailure):
            return done
        status, out, err = done
        if status != 0:
            return NodeCheck(target.host, f"the readiness check failed: {_last_line(err, status)}",
                             endpoints=[e.url for e in plan])
        try:
            attempts = parse_resolve_output(out, len(self.images))
        except ValueError as error:
            return NodeCheck(target.host, str(error), endpoints=[e.url for e in plan])
        return NodeCheck(target.host, attempts=attempts, endpoints=[e.url for e in plan])


def check_nodes(
    site: SiteConfig, login_server: str, images: Sequence[ImageReference], private_key: str | None, use_agent: bool,
    key_source: str = "sshPrivateKey",
) -> dict[str, NodeCheck]:
    """Every node's answer, in parallel; a node that cannot be reached is a :class:`NodeCheck`
    with its problem (``key_source`` names where the key came from, for those messages)."""
    targets = node_targets(site)
    session = NodeSession(site, login_server, images)
    reader = SshNodeReader(command_timeout=session.timeout, deadline=60 + session.timeout, key_source=key_source)
    results = reader.run_nodes(targets, private_key, session, use_agent=use_agent)
    return {
        t.host: (r if isinstance(r, NodeCheck) else NodeCheck(t.host, r.reason))
        for t in targets
        for r in [results.get(t.host, NodeReadFailure(t.host, "not reached", True))]
    }
