"""Command lines that run the node scripts (``scripts/`` beside this module) over SSH.

The script text travels inside the command line (``/bin/sh -c SCRIPT ARGV0 ARGS…``); no data
or credential ever does (pulumi-command prints the command on failure, see docs/nodes.md): the
apply payload goes on stdin. A user other than root runs the scripts through ``sudo -n``.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from functools import cache
from pathlib import Path

__all__ = ["apply_command", "destroy_command", "read_command"]

_SCRIPTS = Path(__file__).with_name("scripts")


@cache
def _script(name: str) -> str:
    return (_SCRIPTS / name).read_text(encoding="utf-8")


def _node_command(script: str, argv0: str, args: Sequence[str], user: str) -> str:
    """``/bin/sh -c SCRIPT ARGV0 ARGS…``, through ``sudo -n`` unless the user is root."""
    program = _script("common.sh") + "\n" + _script(script)
    command = " ".join(["/bin/sh", "-c", shlex.quote(program), argv0, *map(shlex.quote, args)])
    if user == "root":
        return command
    hint = (
        f"edge-registry: user {user} cannot run 'sudo -n' on this node: "
        "give it passwordless sudo, or connect as root"
    )
    return f"sudo -n true >/dev/null 2>&1 || {{ echo {shlex.quote(hint)} >&2; exit 1; }}; exec sudo -n {command}"


def read_command(path: str, user: str) -> str:
    """Runs scripts/read.sh: prints the file at ``path`` and edge-registry's record of it."""
    return _node_command("read.sh", "edge-registry-read", [path], user)


def apply_command(path: str, unit: str, service_manager: str, wait_seconds: int, user: str) -> str:
    """Runs scripts/apply.sh; the payload (components/nodes/payload.py) on stdin."""
    return _node_command("apply.sh", "edge-registry-apply", [path, unit, service_manager, str(wait_seconds)], user)


def destroy_command(path: str, unit: str, service_manager: str, wait_seconds: int, user: str) -> str:
    """Runs scripts/destroy.sh (from Pulumi's stored state, on delete)."""
    return _node_command("destroy.sh", "edge-registry-destroy", [path, unit, service_manager, str(wait_seconds)], user)
