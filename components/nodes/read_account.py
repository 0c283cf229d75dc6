"""The node account for previews: it can run the registries.yaml read and nothing else.

A preview must see what a node's ``registries.yaml`` holds, but must not be able to change a
node. The deploy account has passwordless ``sudo`` for anything; the read account
(:data:`READER_USER`) gets exactly one ``sudo`` rule: run the installed read script
(:data:`READ_SCRIPT`, root-owned, the same ``scripts/read.sh`` the program uses) on the
node's own ``registries.yaml`` path. Nothing the account sends ends up in a shell as root: the
script and its argument are fixed by the rule.

    python -m components read-account script                     # the file to install on a node
    python -m components read-account sudoers [--path P ...]     # its /etc/sudoers.d line(s)

docs/runbooks.md ("Preview credentials") has the setup on a node.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

#: The node account previews connect as.
READER_USER = "edge-registry-read"
#: Where the read script is installed on a node (root:root 0755).
READ_SCRIPT = "/usr/local/libexec/edge-registry/read-registries"
#: registries.yaml of k3s (RKE2 uses /etc/rancher/rke2/registries.yaml).
DEFAULT_PATH = "/etc/rancher/k3s/registries.yaml"

_SCRIPTS = Path(__file__).with_name("scripts")
# A sudoers command argument: no whitespace and none of sudoers' special characters, so the
# rule matches exactly this argument (no wildcard, no second argument).
_SAFE_ARG = re.compile(r"^/[A-Za-z0-9._/-]+$")
_USER = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")


def install_script() -> str:
    """The read script as installed on a node: ``common.sh`` + ``read.sh`` with ``$1`` the path.

    Re-install it after an upgrade of edge-registry: its first output line carries the read
    format version the program checks.
    """
    common = (_SCRIPTS / "common.sh").read_text(encoding="utf-8")
    read = (_SCRIPTS / "read.sh").read_text(encoding="utf-8")
    return (
        "#!/bin/sh\n"
        "# edge-registry: print a node's registries.yaml and edge-registry's record of it (read only).\n"
        f"# Installed by the runbook (docs/runbooks.md, \"Preview credentials\") as {READ_SCRIPT}.\n"
        '[ "$#" -eq 1 ] || { echo "usage: $0 /path/to/registries.yaml" >&2; exit 2; }\n'
        f"{common}\n{read}"
    )


def sudoers_lines(user: str = READER_USER, paths: Sequence[str] = (DEFAULT_PATH,)) -> str:
    """The ``/etc/sudoers.d/edge-registry-read`` content: one exact rule per registries.yaml path."""
    if not _USER.match(user):
        raise ValueError(f"{user!r} is not a POSIX user name")
    bad = [p for p in paths if not _SAFE_ARG.match(p) or "/../" in p or not p.endswith((".yaml", ".yml"))]
    if bad or not paths:
        raise ValueError(f"not an absolute registries.yaml path: {', '.join(map(repr, bad)) or '(none)'}")
    rules = "".join(f"{user} ALL=(root) NOPASSWD: {READ_SCRIPT} {path}\n" for path in dict.fromkeys(paths))
    return f"# edge-registry previews: {user} may run the registries.yaml read, nothing else.\n{rules}"


def read_command(path: str = DEFAULT_PATH) -> str:
    """The command the read account runs over SSH: exactly what its sudoers rule allows."""
    if not _SAFE_ARG.match(path):
        raise ValueError(f"not an absolute path: {path!r}")
    return f"sudo -n {READ_SCRIPT} {shlex.quote(path)}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m components read-account", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("script", help=f"print the read script to install as {READ_SCRIPT}")
    sudoers = sub.add_parser("sudoers", help="print the sudoers rule(s) for the read account")
    sudoers.add_argument("--user", default=READER_USER)
    sudoers.add_argument("--path", action="append", help=f"registries.yaml path (default {DEFAULT_PATH})")
    args = parser.parse_args(argv)
    if args.what == "script":
        sys.stdout.write(install_script())
        return 0
    try:
        sys.stdout.write(sudoers_lines(args.user, args.path or [DEFAULT_PATH]))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
