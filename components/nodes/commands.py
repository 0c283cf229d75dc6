"""Command lines that run the node scripts (``scripts/`` beside this module) over SSH.

The script text travels inside the command line (``/bin/sh -c SCRIPT ARGV0 ARGS…``); no data
or credential ever does (pulumi-command prints the command on failure, see docs/nodes.md): the
apply payload goes on stdin. A user other than root runs the scripts through ``sudo -n``. Every
script is ``common.sh`` (helpers) and ``guard.sh`` (what root may trust, the file's lock) followed
by its own text.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from functools import cache
from pathlib import Path

__all__ = ["apply_command", "destroy_command", "read_command", "resolve_command"]

_SCRIPTS = Path(__file__).with_name("scripts")


@cache
def _script(name: str) -> str:
    return (_SCRIPTS / name).read_text(encoding="utf-8")


def _node_command(script: str, argv0: str, args: Sequence[str], user: str) -> str:
    """``/bin/sh -c SCRIPT ARGV0 ARGS…``, through ``sudo -n`` unless the user is root."""
    program = "\n".join([_script("common.sh"), _script("guard.sh"), _script(script)])
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


def resolve_command(path: str, user: str) -> str:
    """Runs scripts/resolve.sh: asks the mirror that the file at ``path`` names for each image's
    manifest (the plan on stdin, components/nodes/resolve.py). Reads only."""
    return _node_command("resolve.sh", "edge-registry-resolve", [path], user)


def _write_args(path: str, unit: str, service_manager: str, wait_seconds: int, lock_wait_seconds: int | None) -> list[str]:
    lock = [] if lock_wait_seconds is None else [str(lock_wait_seconds)]
    return [path, unit, service_manager, str(wait_seconds), *lock]


def apply_command(
    path: str, unit: str, service_manager: str, wait_seconds: int, user: str, lock_wait_seconds: int | None = None
) -> str:
    """Runs scripts/apply.sh; the payload (components/nodes/payload.py) on stdin. It waits for the
    file's lock at most ``lock_wait_seconds`` (default: twice ``wait_seconds`` and a minute, what
    another run holding it may take to restart the unit and to roll back)."""
    args = _write_args(path, unit, service_manager, wait_seconds, lock_wait_seconds)
    return _node_command("apply.sh", "edge-registry-apply", args, user)


def destroy_command(
    path: str, unit: str, service_manager: str, wait_seconds: int, user: str, lock_wait_seconds: int | None = None
) -> str:
    """Runs scripts/destroy.sh (from Pulumi's stored state, on delete), under the file's lock too."""
    args = _write_args(path, unit, service_manager, wait_seconds, lock_wait_seconds)
    return _node_command("destroy.sh", "edge-registry-destroy", args, user)
