"""edge-registry's command line: ``python -m components COMMAND [ARGS]``.

Every operator command is a subcommand here, so ``--help`` shows what the tool can do; each
command's own ``--help`` gives its flags. The command's module is imported only when it runs, so
one command never pays for another's imports.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

PROG = "python -m components"

# command -> (module whose main(argv) runs it, one line for --help)
COMMANDS: dict[str, tuple[str, str]] = {
    "render": ("components.preview.cli", "render a site's stack offline as `pulumi preview` would, policy pack included"),
    "fleet": ("components.fleet.cli", "fleet status: each site's sync, activation and passwords, from ARM"),
    "depart": ("components.fleet.depart", "before departure: can a site stay offline N days, and what to renew first"),
    "config-reference": ("components.config.reference", "write or check the config reference generated from the site model"),
    "host-key": ("components.nodes.host_keys", "scan a node's SSH host key, show its fingerprint, pin it in the stack file"),
    "ready": ("components.ready.cli", "image readiness: each required image in the sync scope, synced, and on every node's mirror"),
    "read-account": ("components.nodes.read_account", "print the preview read account's node script, sudoers rule or authorized_keys line"),
    "benchmark": ("components.preview.benchmark", "time the offline render against the SDK import floor"),
}


def _parser() -> argparse.ArgumentParser:
    width = max(map(len, COMMANDS)) + 2
    listing = "\n".join(f"  {name:<{width}}{summary}" for name, (_module, summary) in COMMANDS.items())
    parser = argparse.ArgumentParser(
        prog=PROG,
        usage=f"{PROG} COMMAND [ARGS]",
        description="edge-registry: a connected registry per site, its cluster install, node mirrors and pull secrets.",
        epilog=f"commands:\n{listing}\n\nRun '{PROG} COMMAND --help' for a command's flags.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", metavar="COMMAND", choices=list(COMMANDS), help="one of the commands below")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in COMMANDS:
        module = importlib.import_module(COMMANDS[args[0]][0])
        return int(module.main(args[1:]) or 0)
    parser = _parser()
    if not args or args[0] in ("-h", "--help"):
        parser.print_help(sys.stdout if args else sys.stderr)
        return 0 if args else 2
    print(f"{PROG}: unknown command {args[0]!r}; the commands are: {', '.join(COMMANDS)} "
          f"(see '{PROG} --help')", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
