"""The node account for previews: it can run the registries.yaml read and nothing else.

A preview must see what a node's ``registries.yaml`` holds, but must not be able to change a
node. The deploy account has passwordless ``sudo`` for anything; the read account
(:data:`READER_USER`) gets exactly one ``sudo`` rule: run the installed read script
(:data:`READ_SCRIPT`, root-owned, the same ``scripts/read.sh`` the program uses) on the
node's own ``registries.yaml`` path. Nothing the account sends ends up in a shell as root: the
script and its argument are fixed by the rule. Its key is not a login either: the
``authorized_keys`` line (:func:`authorized_keys_line`) forces a command that runs that read on
the allowed paths and refuses anything else, and ``restrict`` takes away port, agent and X11
forwarding, the PTY and ``~/.ssh/rc``.

With ``--ready`` the account may also run the image readiness check (``python -m components
ready``, components/ready/) on the same paths: the installed script's ``resolve`` verb, which asks
only the mirror endpoints the node's file names for image manifests (scripts/resolve.sh), and
changes nothing. Without it, the rule and the key allow the read alone.

    python -m components read-account script                     # the file to install on a node
    python -m components read-account sudoers [--path P ...] [--ready]    # its /etc/sudoers.d line(s)
    python -m components read-account authorized-keys --key KEY.pub [--path P ...] [--ready]   # its key's line

docs/runbooks.md ("Preview credentials") has the setup on a node.
"""

from __future__ import annotations

import re
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from components.command_line import CommandParser
from components.nodes.paths import path_problem

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


#: The installed script's second verb: the readiness check's manifest requests (scripts/resolve.sh).
RESOLVE_VERB = "resolve"


def install_script() -> str:
    """The read script as installed on a node: ``common.sh`` + ``guard.sh`` + ``read.sh`` with ``$1``
    the path; or, as ``resolve PATH``, ``resolve.sh`` (the readiness check, plan on stdin).

    Re-install it after an upgrade of edge-registry: its first output line carries the read
    format version the program checks.
    """
    common = (_SCRIPTS / "common.sh").read_text(encoding="utf-8")
    guard = (_SCRIPTS / "guard.sh").read_text(encoding="utf-8")
    read = (_SCRIPTS / "read.sh").read_text(encoding="utf-8")
    resolve = (_SCRIPTS / "resolve.sh").read_text(encoding="utf-8")
    usage = f'echo "usage: $0 /path/to/registries.yaml | $0 {RESOLVE_VERB} /path/to/registries.yaml" >&2; exit 2'
    return (
        "#!/bin/sh\n"
        "# edge-registry: print a node's registries.yaml and edge-registry's record of it (read only);\n"
        f"# '{RESOLVE_VERB} PATH': ask the mirror that file names for image manifests (read only).\n"
        f"# Installed by the runbook (docs/runbooks.md, \"Preview credentials\") as {READ_SCRIPT}.\n"
        f'verb=read\ncase "$#:${{1:-}}" in 1:/*) ;; 2:{RESOLVE_VERB}) verb={RESOLVE_VERB}; shift ;; *) {usage} ;; esac\n'
        f"{common}\n{guard}\n"
        f'if [ "$verb" = {RESOLVE_VERB} ]; then\n{resolve}\nexit 0\nfi\n'
        f"{read}"
    )


def check_paths(paths: Sequence[str]) -> None:
    """:raises ValueError: naming each path that is not a canonical absolute registries.yaml path."""
    bad = [p for p in paths if not _SAFE_ARG.fullmatch(p) or path_problem(p) is not None]
    if bad or not paths:
        raise ValueError(f"not an absolute registries.yaml path: {', '.join(map(repr, bad)) or '(none)'}")


def sudoers_lines(user: str = READER_USER, paths: Sequence[str] = (DEFAULT_PATH,), ready: bool = False) -> str:
    """The ``/etc/sudoers.d/edge-registry-read`` content: one exact rule per registries.yaml path
    (``ready``: and one per path for the readiness check's ``resolve`` verb)."""
    if not _USER.fullmatch(user):
        raise ValueError(f"{user!r} is not a POSIX user name")
    check_paths(paths)
    rules = "".join(f"{user} ALL=(root) NOPASSWD: {READ_SCRIPT} {path}\n" for path in dict.fromkeys(paths))
    if ready:
        rules += "".join(f"{user} ALL=(root) NOPASSWD: {READ_SCRIPT} {RESOLVE_VERB} {path}\n" for path in dict.fromkeys(paths))
        return f"# edge-registry: {user} may run the registries.yaml read and the image readiness check, nothing else.\n{rules}"
    return f"# edge-registry previews: {user} may run the registries.yaml read, nothing else.\n{rules}"


def read_command(path: str = DEFAULT_PATH) -> str:
    """The command the read account runs over SSH: exactly what its sudoers rule allows."""
    if not _SAFE_ARG.fullmatch(path):
        raise ValueError(f"not an absolute path: {path!r}")
    return f"sudo -n {READ_SCRIPT} {shlex.quote(path)}"


def resolve_command(path: str = DEFAULT_PATH) -> str:
    """The readiness check's command for the read account (the plan on stdin): what its
    ``--ready`` sudoers rule allows."""
    if not _SAFE_ARG.fullmatch(path):
        raise ValueError(f"not an absolute path: {path!r}")
    return f"sudo -n {READ_SCRIPT} {RESOLVE_VERB} {shlex.quote(path)}"


#: Public key types the read key may be (OpenSSH's names; security keys included).
_KEY_TYPES = frozenset({
    "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa",
    "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
})
_BASE64 = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")
_COMMENT = re.compile(r"^[A-Za-z0-9@._:+=/-]{1,100}$")


def forced_command(paths: Sequence[str] = (DEFAULT_PATH,), ready: bool = False) -> str:
    """The shell command sshd runs for the read key, whatever the client asked for: the client's
    command (``$SSH_ORIGINAL_COMMAND``) must be exactly :func:`read_command` of an allowed path
    (``ready``: or :func:`resolve_command` of one), and is then run as that fixed text (never the
    client's); anything else (a shell, another command or path, sftp) is refused with exit status 1."""
    check_paths(paths)
    # The paths match _SAFE_ARG: no quote, space, glob or shell character in the patterns below.
    commands = [read_command(p) for p in dict.fromkeys(paths)]
    if ready:
        commands += [resolve_command(p) for p in dict.fromkeys(paths)]
    cases = " ".join(f"'{command}') exec {command};;" for command in commands)
    what = "the registries.yaml read and the image readiness check" if ready else "the registries.yaml read"
    refuse = f"echo 'edge-registry-read: this key runs {what} only' >&2; exit 1"
    return f"case $SSH_ORIGINAL_COMMAND in {cases} *) {refuse};; esac"


def authorized_keys_line(public_key: str, paths: Sequence[str] = (DEFAULT_PATH,), ready: bool = False) -> str:
    """The read key's ``~edge-registry-read/.ssh/authorized_keys`` line: ``restrict`` (no port,
    agent or X11 forwarding, no PTY, no ``~/.ssh/rc``) and the :func:`forced_command`.

    ``public_key``: the key's ``.pub`` text, one ``TYPE BASE64 [COMMENT]`` line without options.
    """
    if "PRIVATE KEY" in public_key:
        raise ValueError("that is a private key: give the public key (the .pub file)")
    lines = [line for line in public_key.strip().splitlines() if line.strip()]
    if len(lines) != 1:
        raise ValueError("the public key file must hold exactly one key line (TYPE BASE64 [COMMENT])")
    parts = lines[0].split()
    if len(parts) < 2 or parts[0] not in _KEY_TYPES or not _BASE64.fullmatch(parts[1]):
        raise ValueError(
            "not an OpenSSH public key line (TYPE BASE64 [COMMENT], no options; TYPE one of "
            f"{', '.join(sorted(_KEY_TYPES))})"
        )
    comment = " ".join(parts[2:])
    key = f"{parts[0]} {parts[1]}" + (f" {comment}" if _COMMENT.fullmatch(comment) else " edge-registry-read")
    # sshd un-escapes only \" inside the option; the command holds no double quote.
    return f'restrict,command="{forced_command(paths, ready)}" {key}\n'


def main(argv: Sequence[str] | None = None) -> int:
    parser = CommandParser(prog="python -m components read-account", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", metavar="COMMAND", required=True)
    sub.add_parser("script", help=f"print the read script to install as {READ_SCRIPT}")
    sudoers = sub.add_parser("sudoers", help="print the sudoers rule(s) for the read account")
    sudoers.add_argument("--user", default=READER_USER)
    sudoers.add_argument("--path", action="append", help=f"registries.yaml path (default {DEFAULT_PATH})")
    sudoers.add_argument("--ready", action="store_true",
                         help="also allow the image readiness check (python -m components ready) on those paths")
    keys = sub.add_parser(
        "authorized-keys",
        help="print the read key's authorized_keys line: the read only (forced command), no forwarding, no PTY",
    )
    keys.add_argument("--key", required=True, metavar="PUBLIC_KEY_FILE", help="the read key's public key (.pub)")
    keys.add_argument("--path", action="append", help=f"registries.yaml path (default {DEFAULT_PATH})")
    keys.add_argument("--ready", action="store_true",
                      help="also allow the image readiness check (python -m components ready) on those paths")
    args = parser.parse_args(argv)
    if args.what == "script":
        sys.stdout.write(install_script())
        return 0
    try:
        if args.what == "authorized-keys":
            try:
                text = Path(args.key).read_text(encoding="utf-8")
            except FileNotFoundError:
                raise ValueError(f"--key {args.key}: no such file") from None
            except (OSError, UnicodeDecodeError) as error:
                reason = getattr(error, "strerror", None) or "not UTF-8 text"
                raise ValueError(f"--key {args.key}: cannot be read: {reason}") from None
            try:
                check_paths(args.path or [DEFAULT_PATH])
            except ValueError as error:
                raise ValueError(f"--path: {error}") from None
            try:
                sys.stdout.write(authorized_keys_line(text, args.path or [DEFAULT_PATH], args.ready))
            except ValueError as error:
                raise ValueError(f"--key {args.key}: {error}") from None
        else:
            sys.stdout.write(sudoers_lines(args.user, args.path or [DEFAULT_PATH], args.ready))
    except ValueError as error:
        print(f"{parser.prog} {args.what}: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
