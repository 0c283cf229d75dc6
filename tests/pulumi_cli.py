"""The Pulumi CLI's command tree, vendored as ``tests/vendor/pulumi-cli-commands.json``, and the
check of a ``pulumi …`` command line against it.

The tree comes from ``pulumi … --help`` of the CLI the engine tier builds (``scripts/engine
build``, tests/engine/README.md): per command its flags (``=``: the flag takes a value), aliases,
subcommands and whether it runs by itself. Write it again for that CLI with
``venv/bin/python -m tests.pulumi_cli "$(scripts/engine path)/pulumi"`` (about 45 s).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PULUMI_COMMANDS = ROOT / "tests" / "vendor" / "pulumi-cli-commands.json"


def pulumi_tree() -> dict[str, Any]:
    return json.loads(PULUMI_COMMANDS.read_text())


def check_pulumi(words: list[str], tree: dict[str, Any]) -> str | None:
    """What is wrong with ``pulumi WORDS`` by the CLI's command tree, or None."""
    node, path = tree["root"], ["pulumi"]
    global_flags = tree["globalFlags"]
    args = words[1:]
    i = 0
    while i < len(args):
        word = args[i]
        flags = {f.rstrip("="): f.endswith("=") for f in [*node.get("flags", []), *global_flags]}
        if word.startswith("-") and word != "-":
            name = word.split("=", 1)[0]
            if name not in flags:
                return f"`{' '.join(path)}` has no flag {name} (Pulumi CLI {tree['version']})"
            i += 2 if flags[name] and "=" not in word else 1
            continue
        commands = node.get("commands", {})
        match = next((c for c, sub in commands.items() if word == c or word in sub.get("aliases", [])), None)
        if match is not None:
            node, path = commands[match], [*path, match]
        elif commands and len(path) == 1:
            return f"`pulumi {word}` is not a command of the Pulumi CLI {tree['version']}"
        elif commands:
            return f"`{' '.join(path)} {word}`: no such subcommand (Pulumi CLI {tree['version']})"
        i += 1
    if node.get("commands") and not node.get("runnable", False):
        return f"`{' '.join(path)}` needs a subcommand (Pulumi CLI {tree['version']})"
    return None


def cli_env(home: Path) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PULUMI_HOME": str(home), "HOME": str(home),
            "PULUMI_SKIP_UPDATE_CHECK": "1", "NO_COLOR": "1", "LC_ALL": "C.UTF-8"}


_FLAG_LINE = re.compile(r"^\s+(?:-(?P<short>\w), )?--(?P<long>[\w-]+)(?: (?P<type>\S+))?(?:\s{2,}|$)")
_COMMAND_LINE = re.compile(r"^  (?P<name>[\w-]+)\s{2,}\S")


def cli_help(pulumi: str, path: list[str], home: Path) -> dict[str, Any]:
    """One command's node from ``pulumi PATH --help``: flags (``=``: takes a value), subcommands,
    aliases, and whether it runs by itself (its usage line has no ``[command]`` only)."""
    done = subprocess.run([pulumi, *path, "--help"], capture_output=True, text=True, env=cli_env(home), timeout=60)
    flags: dict[str, bool] = {}
    inherited: dict[str, bool] = {}
    subcommands: list[str] = []
    aliases: list[str] = []
    usage: list[str] = []
    section = ""
    for line in done.stdout.splitlines():
        if line and not line.startswith(" "):
            section = line[:-1] if line.endswith(":") else ""
            continue
        if section in ("Flags", "Global Flags") and (m := _FLAG_LINE.match(line)):
            target = flags if section == "Flags" else inherited
            target["--" + m["long"]] = bool(m["type"])
            if m["short"]:
                target["-" + m["short"]] = bool(m["type"])
        elif section == "Aliases" and line.strip():
            aliases = [a.strip() for a in line.split(",")][1:]
        elif section.endswith("Commands") and (m := _COMMAND_LINE.match(line)):
            subcommands.append(m["name"])
        elif section == "Usage" and line.strip():
            usage.append(line.strip())
    node: dict[str, Any] = {"flags": sorted(k + ("=" if v else "") for k, v in {**inherited, **flags}.items())}
    if aliases:
        node["aliases"] = aliases
    subcommands = [s for s in subcommands if s not in ("help", "completion")]
    if subcommands:
        node["subcommands"] = subcommands
        node["runnable"] = any("[command]" not in u for u in usage)
    return node


def cli_tree(pulumi: str, home: Path) -> dict[str, Any]:
    """The whole command tree of a Pulumi CLI (about 45 s: one ``--help`` per command)."""
    version = subprocess.run([pulumi, "version"], capture_output=True, text=True, env=cli_env(home),
                             timeout=60).stdout.strip().lstrip("v")
    root = cli_help(pulumi, [], home)
    global_flags = root["flags"]

    def walk(path: list[str], node: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {k: v for k, v in node.items() if k != "subcommands"}
        out["flags"] = [f for f in node["flags"] if f not in global_flags]
        if "subcommands" in node:
            out["commands"] = {s: walk([*path, s], cli_help(pulumi, [*path, s], home)) for s in node["subcommands"]}
        return out

    return {
        "version": version,
        "source": f"`pulumi … --help` of the Pulumi CLI v{version} that `scripts/engine build` builds "
                  "(tests/engine/README.md); written by `venv/bin/python -m tests.test_doc_commands PULUMI`",
        "globalFlags": global_flags,
        "root": walk([], root),
    }


def engine_pulumi() -> str | None:
    """The engine tier's pulumi when it is built (never builds it)."""
    done = subprocess.run([str(ROOT / "scripts" / "engine"), "path"], capture_output=True, text=True, timeout=60)
    candidate = Path(done.stdout.strip()) / "pulumi"
    return str(candidate) if done.returncode == 0 and os.access(candidate, os.X_OK) else None


if __name__ == "__main__":
    # venv/bin/python -m tests.pulumi_cli PULUMI: write the vendored command tree of that CLI.
    import tempfile

    with tempfile.TemporaryDirectory() as home:
        tree = cli_tree(sys.argv[1], Path(home))
    PULUMI_COMMANDS.write_text(json.dumps(tree, indent=1, sort_keys=True) + "\n")
    print(f"wrote {PULUMI_COMMANDS.relative_to(ROOT)}: Pulumi CLI {tree['version']}")
