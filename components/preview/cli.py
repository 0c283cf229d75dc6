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
Exit codes: 0 rendered, 2 configuration or usage error, a node the program refuses (one line
each) or mandatory policy violation.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from components.config import stack_files
from components.config.fields import PROJECT, ConfigError, is_placeholder
from components.config.stack_files import REPO_ROOT
from components.nodes.payload import NodeRead
from components.nodes.plan import foreign_problem
from components.preview.fakes import DEFAULT_LOCATION, DEFAULT_SUBSCRIPTION, CloudFakes
from components.preview.output import format_tree
from components.preview.policy_check import DEFAULT_POLICY_CONFIG, load_policy_config, policy_violations
from components.preview.render import NodeError, render_stack

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


def _stack_nodes(config: Mapping[str, str]) -> list[str]:
    try:
        nodes = json.loads(config.get(f"{PROJECT}:nodes", "[]") or "[]")
    except ValueError:
        return []
    return [str(n.get("host")) for n in nodes if isinstance(n, dict)] if isinstance(nodes, list) else []


def _ssh_key(path: Path | None, config: Mapping[str, str], stack: str) -> str:
    if path is not None:
        try:
            return path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"--ssh-key {path}: cannot read it: {exc.__class__.__name__}") from None
    key = config.get(f"{PROJECT}:sshPrivateKey")
    if not key or is_placeholder(key):
        raise UsageError(
            f"--read-nodes: {PROJECT}:sshPrivateKey is encrypted or not set in Pulumi.{stack}.yaml; pass --ssh-key FILE"
        )
    return key


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("stack", help="stack name: renders Pulumi.STACK.yaml")
    parser.add_argument("--json", action="store_true", help="print a JSON list of resources")
    parser.add_argument("--show-secrets", action="store_true", help="print secret values instead of [secret]")
    parser.add_argument("--node-state", action="append", default=[], metavar="HOST=FILE",
                        help="evaluate as if FILE were registries.yaml on node HOST (default: no file)")
    parser.add_argument("--read-nodes", action="store_true",
                        help="read the stack's real nodes over SSH, as pulumi preview does")
    parser.add_argument("--ssh-key", type=Path, metavar="FILE",
                        help="with --read-nodes: the SSH private key (default: the stack's sshPrivateKey, "
                             "or the SSH agent with sshAgent: true)")
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
        overrides: dict[str, Any] = {}
        reader: NodeReader | None = None
        if args.read_nodes:
            from components.nodes.read import SshNodeReader

            if args.ssh_key is None and config.get(f"{PROJECT}:sshAgent") == "true":
                pass  # as the program does: the agent at $SSH_AUTH_SOCK
            else:
                overrides["sshPrivateKey"] = _ssh_key(args.ssh_key, config, args.stack)
                overrides["sshAgent"] = False
            reader = SshNodeReader()
        fakes = CloudFakes(
            subscription_id=config.get("azure-native:subscriptionId", DEFAULT_SUBSCRIPTION),
            location=config.get("azure-native:location", DEFAULT_LOCATION),
            node_state=node_state,
        )
        result = render_stack(
            args.project_dir, args.stack, fakes=fakes, preview=True, node_reader=reader, config_overrides=overrides,
            stack_dir=args.stack_dir,
        )
        # The policy pack's own validators on what was rendered (components/preview/policy_check.py).
        fleet_config = load_policy_config(args.policy_config or args.project_dir / DEFAULT_POLICY_CONFIG)
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
    for warning in result.warnings:
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
