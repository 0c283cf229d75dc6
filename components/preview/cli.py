"""Offline render: evaluate a site's stack as ``pulumi preview`` would, with the SDK's mocks.

    python -m components render STACK [--json] [--show-secrets]
                                [--node-state HOST=FILE ...] [--read-nodes [--ssh-key FILE]]

The command line of the offline render (components/preview/render.py): the real program
(``components.site.run``) runs against the real Pulumi SDK; only the engine and the providers are
faked. Config is Pulumi.yaml's defaults merged with ``Pulumi.STACK.yaml``; values the cloud would
supply (ids, the gateway endpoint, passwords, the catalog, the connected registry's last sync)
come from deterministic fakes (components/preview/fakes.py). Nodes are read from
``--node-state`` files, or with ``--read-nodes`` over SSH exactly as the program reads them
(components/nodes/read.py; only then is paramiko loaded). Secure values that cannot be decrypted
offline become placeholders. The same input gives the same bytes: a resource tree
(components/preview/output.py) or, with ``--json``, a list of resources. The CLI then runs the
policy pack's validators on what it rendered (components/preview/policy_check.py), so a stack
that renders also passes ``--policy-pack policy``.
Exit codes: 0 rendered; 1 rendered, but with ``--read-nodes`` a node could not be read or its
file would not be written over (each such node is a warning line, then one line naming them:
``pulumi up`` would stop); 2 configuration or usage error, a node the program refuses (one line
each) or mandatory policy violation.
With ``--read-nodes``, progress (a bar on a terminal, a line per node elsewhere) goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from components.command_line import CommandParser, read_user_file
from components.config import stack_files
from components.config.cluster import kubeconfig_problems
from components.config.fields import PROJECT, ConfigError, is_placeholder
from components.config.stack_files import REPO_ROOT
from components.nodes.payload import NodeRead
from components.nodes.plan import foreign_problem
from components.preview.fakes import DEFAULT_LOCATION, DEFAULT_SUBSCRIPTION, CloudFakes
from components.preview.output import format_tree
from components.preview.policy_check import (
    DEFAULT_POLICY_CONFIG,
    PolicyConfigError,
    load_policy_config,
    policy_violations,
)
from components.preview.render import NodeError, render_stack
from components.progress import Progress

if TYPE_CHECKING:
    from components.nodes.read import NodeReader

PROG = "python -m components render"


class UsageError(Exception):
    """A bad command-line argument: one line, exit 2."""


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _parse_node_state(items: Sequence[str], hosts: Sequence[str]) -> dict[str, bytes | None]:
    """``HOST=FILE`` pairs: each FILE must be a registries.yaml k3s would accept, each HOST a node
    of the stack."""
    state: dict[str, bytes | None] = {}
    for item in items:
        host, sep, path = item.partition("=")
        if not sep or not host or not path:
            raise UsageError(f"--node-state {item!r}: expected HOST=FILE")
        if host not in hosts:
            raise UsageError(f"--node-state {host}: not a node of this stack (nodes: {', '.join(hosts) or 'none'})")
        file = Path(path)
        if not file.is_file():
            raise UsageError(f"--node-state {host}: no such file {path}")
        content = file.read_bytes()
        # The program's own check of a file edge-registry never wrote (what the fake reader
        # makes of it): YAML, a mapping, the strict k3s schema. The problem names keys and types,
        # never values: the file may hold credentials.
        problem = foreign_problem(NodeRead(content=content, recorded=False))
        if problem is not None:
            raise UsageError(_one_line(f"--node-state {host}: {path}: {problem}"))
        state[host] = content
    return state


def _stack_nodes(config: Mapping[str, str], read_only: bool = False) -> list[str]:
    """The stack's node hosts (``read_only``: those a read contacts, not the ``gone`` ones)."""
    try:
        nodes = json.loads(config.get(f"{PROJECT}:nodes", "[]") or "[]")
    except ValueError:
        return []
    if not isinstance(nodes, list):
        return []
    return [str(n.get("host")) for n in nodes
            if isinstance(n, dict) and not (read_only and n.get("gone") in (True, "true"))]


class _KeptReads:
    """The SSH reader, keeping what each node gave (``--read-nodes`` exits 1 when one could not
    be read or used) and showing each node as it is read."""

    def __init__(self, reader: NodeReader, progress: Progress) -> None:
        self.reader = reader
        self.progress = progress
        self.results: dict[str, Any] = {}

    def read_nodes(self, targets: Sequence[Any], private_key: str | None, use_agent: bool = False) -> Mapping[str, Any]:
        self.progress.start()
        try:
            found = self.reader.read_nodes(targets, private_key, use_agent)
        finally:
            self.progress.stop()
        self.results.update(found)
        return found

    def failures(self) -> list[str]:
        """The hosts that could not be read, or whose file the program would not write over."""
        from components.nodes.read import NodeReadFailure, check_read

        return [host for host, result in self.results.items() if isinstance(check_read(host, result), NodeReadFailure)]


def _read_progress(progress: Progress) -> Callable[[str, object], None]:
    def shown(host: str, result: object) -> None:
        from components.nodes.read import NodeReadFailure, check_read

        checked = check_read(host, result) if isinstance(result, (NodeRead, NodeReadFailure)) else result
        progress.step(f"{host} could not be read" if isinstance(checked, NodeReadFailure) else f"{host} read")

    return shown


def _ssh_key(path: Path | None, config: Mapping[str, str], stack: str) -> str:
    if path is not None:
        from components.nodes.read import load_private_key

        try:
            text = read_user_file(path, "an OpenSSH or PEM private key file")
        except ValueError as error:
            raise UsageError(f"--ssh-key {error}") from None
        try:
            load_private_key(text)
        except ValueError as exc:
            raise UsageError(f"--ssh-key {path}: {exc}") from None
        return text
    key = config.get(f"{PROJECT}:sshPrivateKey")
    if not key or is_placeholder(key):
        raise UsageError(
            f"--read-nodes: {PROJECT}:sshPrivateKey is encrypted or not set in Pulumi.{stack}.yaml; pass --ssh-key FILE"
        )
    return key


def _kubeconfig_notes(config: Mapping[str, str]) -> list[str]:
    """The kubeconfig as ``pulumi preview`` on this machine would find it (components/config/cluster.py).

    A ``kubeconfigPath`` that is not on this machine is a note (the render runs anywhere: a CI
    runner, a laptop without the site's cluster); one that is here but unusable (not a
    kubeconfig, no such context) stops the render as it would stop the preview."""
    path = config.get(f"{PROJECT}:kubeconfigPath") or None
    context = config.get(f"{PROJECT}:kubeContext") or None
    if path is not None and not Path(path).expanduser().exists():
        return [f"note: {PROJECT}:kubeconfigPath: {path!r} is not on this machine: the render does not need it, "
                "'pulumi preview' here would stop on it"]
    problems = kubeconfig_problems(path, context, config.get(f"{PROJECT}:kubeconfig") or None)
    if problems:
        raise ConfigError(problems)
    return []


def _policy_config(given: Path | None, project_dir: Path) -> dict[str, Any]:
    """The policy pack's fleet config: the file given with --policy-config (it must exist), else
    policy/config.json when the project has one."""
    try:
        if given is not None:
            return load_policy_config(given, required=True)
        return load_policy_config(project_dir / DEFAULT_POLICY_CONFIG)
    except PolicyConfigError as error:
        flag = "--policy-config" if given is not None else "the policy pack's config"
        raise UsageError(f"{flag} {error}") from None


def _parser(prog: str) -> CommandParser:
    parser = CommandParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("stack", metavar="STACK", help="the stack name (renders Pulumi.STACK.yaml)")
    parser.add_argument("--json", action="store_true", help="print a JSON list of resources")
    parser.add_argument("--show-secrets", action="store_true", help="print secret values instead of [secret]")
    parser.add_argument("--node-state", action="append", default=[], metavar="HOST=FILE",
                        help="evaluate as if FILE were registries.yaml on node HOST (default: no file)")
    parser.add_argument("--read-nodes", action="store_true",
                        help="read the stack's real nodes over SSH, as pulumi preview does")
    parser.add_argument("--ssh-key", type=Path, metavar="FILE",
                        help="with --read-nodes: the SSH private key (default: the stack's sshPrivateKey, "
                             "or the SSH agent with sshAgent: true)")
    parser.add_argument("--no-progress", action="store_true", help="with --read-nodes: no progress on stderr")
    parser.add_argument("--project-dir", type=Path, default=REPO_ROOT, help=argparse.SUPPRESS)
    parser.add_argument("--stack-dir", type=Path, default=None, metavar="DIR",
                        help="read Pulumi.STACK.yaml from DIR (default: the project directory)")
    parser.add_argument("--policy-config", type=Path, default=None, metavar="FILE",
                        help="the policy pack's fleet config (default: policy/config.json when it exists)")
    return parser


def node_path_clashes(project_dir: Path, stack: str, stack_dir: Path | None) -> list[str]:
    """Nodes and paths ``stack`` shares with another stack of its directory (examples aside; a
    stack that does not load is left to its own render)."""
    from components.config.examples import example_stacks
    from components.nodes.paths import duplicate_node_paths

    directory = stack_dir or project_dir
    examples = example_stacks(project_dir)
    nodes: dict[str, Any] = {}
    for name in stack_files.known_stacks(directory):
        if name in examples and name != stack:
            continue
        try:
            nodes[name] = stack_files.load_stack_site_config(project_dir, name, stack_dir)[0].nodes
        except ConfigError:
            continue
    return duplicate_node_paths(nodes, stack=stack)


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    args = _parser(prog).parse_args(argv)
    try:
        config, _, _ = stack_files.load_stack_config(args.project_dir, args.stack, args.stack_dir)
        if args.read_nodes and args.node_state:
            raise UsageError("--read-nodes and --node-state: choose one")
        if args.ssh_key is not None and not args.read_nodes:
            raise UsageError("--ssh-key needs --read-nodes")
        node_state = _parse_node_state(args.node_state, _stack_nodes(config))
        fleet_config = _policy_config(args.policy_config, args.project_dir)
        overrides: dict[str, Any] = {}
        reader: NodeReader | None = None
        kept: _KeptReads | None = None
        if args.read_nodes:
            from components.nodes.read import SshNodeReader

            key_source = "sshPrivateKey"
            if args.ssh_key is None and config.get(f"{PROJECT}:sshAgent") == "true":
                pass  # as the program does: the agent at $SSH_AUTH_SOCK
            else:
                overrides["sshPrivateKey"] = _ssh_key(args.ssh_key, config, args.stack)
                overrides["sshAgent"] = False
                if args.ssh_key is not None:
                    key_source = f"--ssh-key {args.ssh_key}"
            progress = Progress("reading nodes", total=len(_stack_nodes(config, read_only=True)), prefix="render",
                                enabled=not args.no_progress)
            reader = kept = _KeptReads(SshNodeReader(key_source=key_source, on_read=_read_progress(progress)), progress)
        fakes = CloudFakes(
            subscription_id=config.get("azure-native:subscriptionId", DEFAULT_SUBSCRIPTION),
            location=config.get("azure-native:location", DEFAULT_LOCATION),
            node_state=node_state,
        )
        result = render_stack(
            args.project_dir, args.stack, fakes=fakes, preview=True, node_reader=reader, config_overrides=overrides,
            stack_dir=args.stack_dir,
        )
        # What `pulumi preview` on this machine would stop on before the provider (a site that renders).
        kubeconfig_notes = _kubeconfig_notes(config)
        # The policy pack's own validators on what was rendered (components/preview/policy_check.py).
        violations = policy_violations(result.resources, args.stack_dir or args.project_dir, fleet_config)
        clashes = node_path_clashes(args.project_dir, args.stack, args.stack_dir)
    except UsageError as error:
        print(error, file=sys.stderr)
        return 2
    except NodeError as error:
        for line in error.lines:
            print(line, file=sys.stderr)
        return 2
    except ConfigError as error:
        print(f"invalid site configuration for stack {args.stack}:", file=sys.stderr)
        for problem in error.problems:
            print(problem, file=sys.stderr)
        return 2
    if clashes:
        print(f"stack {args.stack} names a node's file another stack names too:", file=sys.stderr)
        for line in clashes:
            print(line, file=sys.stderr)
        return 2
    for warning in [*result.warnings, *kubeconfig_notes]:
        print(warning, file=sys.stderr)
    for violation in violations:
        if not violation.mandatory:
            print(violation, file=sys.stderr)
    mandatory = [v for v in violations if v.mandatory]
    if mandatory:
        print(f"stack {args.stack} fails the policy pack (pulumi preview --policy-pack policy would too):",
              file=sys.stderr)
        for violation in mandatory:
            print(violation, file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([r.as_json(args.show_secrets) for r in result.resources], indent=2, sort_keys=True))
    else:
        print(format_tree(result, args.show_secrets))
    unread = kept.failures() if kept is not None else []
    if unread:
        print(f"--read-nodes: {len(unread)} of {len(kept.results) if kept else 0} node(s) could not be read or used "
              f"({', '.join(unread)}; why is above): the render plans no write for them, and 'pulumi up' would stop",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
