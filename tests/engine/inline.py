"""``scripts/engine run``: one ``pulumi up``/``preview``/``destroy``/``refresh`` of a project whose
program is served by this process, the Automation API's inline program.

Why: plain ``pulumi up`` starts the Python language host (``pulumi-language-python``), whose
module the Go module proxy refuses (tests/engine/README.md). The sanctioned fallback is the
SDK's own: ``Stack.up(...)`` etc. start a LanguageServer (gRPC) in this process and run the
real CLI with ``--client=127.0.0.1:PORT`` (pulumi/automation/_stack.py), so the engine asks
this process to run the program instead of starting a language host.

The workspace is the project directory itself (``LocalWorkspace(work_dir=...)`` without
project settings writes nothing and the CLI reads its Pulumi.yaml: config declarations and
defaults, backend). ``--stack-dir`` passes the stack file as ``--config-file``; ``--create``
then never writes beside Pulumi.yaml (see :func:`stack`).
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from pulumi import automation as auto

# The CLI flags each Stack method can pass, as its keyword (None: the flag is a no-op there).
# What a method lacks, the Automation API cannot pass: refused here rather than dropped.
FLAGS: dict[str, dict[str, str | None]] = {
    "up": {"expect_no_changes": "expect_no_changes", "diff": "diff", "plan": "plan", "refresh": "refresh", "yes": None},
    "preview": {"expect_no_changes": "expect_no_changes", "diff": "diff", "json": "json", "save_plan": "plan",
                "refresh": "refresh"},
    "refresh": {"expect_no_changes": "expect_no_changes", "diff": "diff", "yes": None},
    "destroy": {"diff": "diff", "yes": None},
}


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/engine run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--project-dir", type=Path, required=True,
                        help="the directory of Pulumi.yaml (scripts/engine passes the repository; a later one wins)")
    parser.add_argument("--stack-dir", type=Path, help="where Pulumi.STACK.yaml is (default: the project directory)")
    parser.add_argument("--backend", help="state backend URL (default: PULUMI_BACKEND_URL, else Pulumi.yaml's)")
    parser.add_argument("--program", default="components.site:run", help="MODULE:FUNCTION, imported from the project")
    parser.add_argument("--create", action="store_true", help="create the stack if the backend lacks it")
    parser.add_argument("stack")
    parser.add_argument("command", choices=sorted(FLAGS))
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--save-plan", metavar="FILE")
    parser.add_argument("--plan", metavar="FILE")
    parser.add_argument("--expect-no-changes", action="store_true")
    parser.add_argument("--diff", action="store_true")
    parser.add_argument("--refresh", action="store_true", help="up and preview: refresh first, as the workflows do")
    parser.add_argument("--yes", "-y", action="store_true", help="accepted: up, refresh and destroy never prompt here")
    args = parser.parse_args(argv)
    for flag in ("json", "save_plan", "plan", "expect_no_changes", "diff", "refresh", "yes"):
        if getattr(args, flag) not in (None, False) and flag not in FLAGS[args.command]:
            parser.error(f"--{flag.replace('_', '-')}: the Automation API's Stack.{args.command} cannot pass it")
    return args


def load_program(spec: str, project_dir: Path) -> Callable[[], Any]:
    module, _, function = spec.partition(":")
    # As under the language host: the program imports from, and runs in, the project directory.
    sys.path.insert(0, str(project_dir))
    os.chdir(project_dir)
    return getattr(importlib.import_module(module), function or "run")


def backend_url(args: argparse.Namespace) -> str | None:
    """The CLI's choice (flag, PULUMI_BACKEND_URL, Pulumi.yaml), with a relative file:// URL made
    absolute: stack creation from a scratch copy of Pulumi.yaml must reach the same state."""
    url = args.backend or os.environ.get("PULUMI_BACKEND_URL")
    if url:
        return url
    project = yaml.safe_load((args.project_dir / "Pulumi.yaml").read_text()) or {}
    url = (project.get("backend") or {}).get("url")
    if url and url.startswith("file://") and not url.startswith(("file:///", "file://~")):
        url = "file://" + str((args.project_dir / url.removeprefix("file://")).resolve())
    return url


def stack(args: argparse.Namespace, workspace: auto.LocalWorkspace, stack_file: Path | None) -> auto.Stack:
    try:
        return auto.Stack.select(args.stack, workspace)
    except auto.StackNotFoundError:
        if not args.create:
            raise
    if stack_file is None:
        return auto.Stack.create(args.stack, workspace)
    # `stack init` has no --config-file: it writes the new stack's encryption salt into
    # Pulumi.STACK.yaml beside Pulumi.yaml (the repository's own, for `dev`). So init from a
    # scratch copy of Pulumi.yaml and the stack file, and keep the salt it chose in the stack file.
    with tempfile.TemporaryDirectory(prefix="engine-init-") as scratch:
        shutil.copy(args.project_dir / "Pulumi.yaml", scratch)
        if stack_file.exists():
            shutil.copy(stack_file, scratch)
        auto.Stack.create(args.stack, auto.LocalWorkspace(work_dir=scratch, env_vars=workspace.env_vars))
        created = yaml.safe_load((Path(scratch) / stack_file.name).read_text()) or {}
    kept = (yaml.safe_load(stack_file.read_text()) or {}) if stack_file.exists() else {}
    if "encryptionsalt" in created and "encryptionsalt" not in kept:
        stack_file.parent.mkdir(parents=True, exist_ok=True)
        with stack_file.open("a") as out:
            out.write(f"encryptionsalt: {created['encryptionsalt']}\n")
    return auto.Stack.select(args.stack, workspace)


def main(argv: list[str]) -> int:
    args = parse(argv)
    args.project_dir = args.project_dir.resolve()
    stack_file = (args.stack_dir.resolve() / f"Pulumi.{args.stack}.yaml") if args.stack_dir else None
    url = backend_url(args)
    workspace = auto.LocalWorkspace(
        work_dir=str(args.project_dir),
        program=load_program(args.program, args.project_dir),
        env_vars={"PULUMI_BACKEND_URL": url} if url else {},
    )
    kwargs: dict[str, Any] = {
        "on_output": lambda line: print(line, flush=True),
        "on_error": lambda line: print(line, file=sys.stderr, flush=True),
    }
    for flag, keyword in FLAGS[args.command].items():
        if keyword and getattr(args, flag) not in (None, False):
            kwargs[keyword] = getattr(args, flag)
    if stack_file is not None:
        kwargs["config_file"] = str(stack_file)
    if args.command != "preview":
        kwargs["show_secrets"] = False  # the summary read afterwards: nothing to decrypt for it
    try:
        target = stack(args, workspace, stack_file)
    except auto.StackNotFoundError:
        print(f"error: no stack named {args.stack!r} in {url or 'the current backend'} (--create creates it)",
              file=sys.stderr)
        return 1
    try:
        getattr(target, args.command)(**kwargs)
    except auto.CommandError as error:
        # The CLI's output was streamed already; its exit code is only in the message
        # (CommandResult.__str__: "\n code: N\n stdout: ...").
        code = re.match(r"\s*code: (-?\d+)", str(error))
        if code is None:
            raise
        return int(code.group(1)) or 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
