#!/usr/bin/env python3
"""Which site stacks the fleet workflows preview and deploy (stdlib only: runs on a bare runner).

    python3 scripts/workflow_stacks.py all                  # every real site, as a JSON list
    python3 scripts/workflow_stacks.py changed BASE HEAD    # the sites a change between two commits affects

A stack is a ``Pulumi.<name>.yaml`` at the repository root. Examples are not sites: a stack listed
in ``.github/example-stacks.txt`` (components/config/examples.py; the example ``dev`` is, as
shipped) is never previewed or deployed; delete its line there to make it a real site
(docs/runbooks.md, "New site").

``changed`` gives every real site when the program or the rules changed (``components/``,
``policy/``, ``__main__.py``, ``requirements*.txt``, ``Pulumi.yaml``), else the sites whose stack
file changed and still exists (a removed file is a decommissioned site), and the sites the change
opted in: stacks that ``.github/example-stacks.txt`` listed at BASE and no longer lists, even
when their stack file did not change.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

# Run as a script from the repository root: the project's modules are one directory up. No
# __pycache__ left in the checkout (it would count as a change under components/).
sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from components.config.examples import EXAMPLES_FILE, example_stacks, parse_example_stacks  # noqa: E402  (after the path is set)

STACK_FILE = re.compile(r"^Pulumi\.(?P<name>[^/]+)\.yaml$")
#: A change under these paths can change what every stack declares, or whether it passes policy.
AFFECTS_EVERY_STACK = re.compile(r"^(components/|policy/|__main__\.py$|requirements[^/]*\.(txt|lock)$|Pulumi\.yaml$)")


def all_sites(root: Path) -> list[str]:
    """Every Pulumi.<name>.yaml at the root that is not an example."""
    names = {m.group("name") for p in root.glob("Pulumi.*.yaml") if (m := STACK_FILE.match(p.name))}
    return sorted(names - example_stacks(root))


def affected_sites(root: Path, changed_files: list[str], opted_in: Iterable[str] = ()) -> list[str]:
    """The real sites a set of changed paths affects; ``opted_in``: stacks the change removed
    from the example list (:func:`opted_in_stacks`)."""
    sites = all_sites(root)
    if any(AFFECTS_EVERY_STACK.match(path) for path in changed_files):
        return sites
    touched = {m.group("name") for path in changed_files if (m := STACK_FILE.match(path))}.union(opted_in)
    return [site for site in sites if site in touched]


def opted_in_stacks(root: Path, base: str, changed: list[str]) -> set[str]:
    """Stacks the example list named at ``base`` and no longer names: the change made them sites,
    so their first preview and deploy come with it. Empty when the list did not change or did
    not exist at ``base``."""
    if EXAMPLES_FILE.as_posix() not in changed:
        return set()
    before = subprocess.run(
        ["git", "show", f"{base}:{EXAMPLES_FILE.as_posix()}"], cwd=root, capture_output=True, text=True, check=False
    )
    if before.returncode != 0:
        return set()
    return parse_example_stacks(before.stdout) - example_stacks(root)


def changed_files(root: Path, base: str, head: str) -> list[str]:
    done = subprocess.run(
        ["git", "diff", "--name-only", base, head], cwd=root, capture_output=True, text=True, check=True
    )
    return [line.strip() for line in done.stdout.splitlines() if line.strip()]


def main(argv: list[str]) -> int:
    root = Path.cwd()
    if argv[:1] == ["all"] and len(argv) == 1:
        print(json.dumps(all_sites(root)))
        return 0
    if argv[:1] == ["changed"] and len(argv) == 3:
        changed = changed_files(root, argv[1], argv[2])
        print(json.dumps(affected_sites(root, changed, opted_in_stacks(root, argv[1], changed))))
        return 0
    print("usage: workflow_stacks.py all | changed BASE HEAD", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
