"""Stacks that are examples, not sites: listed in ``.github/example-stacks.txt``.

The repository ships ``Pulumi.dev.yaml`` as a complete example (subscription 0000…). The fleet
workflows (Preview, Deploy, Fleet status) skip every stack listed there; the offline render and
CI still render it. To make an example a real site, edit it and delete its line from the list
(docs/runbooks.md, "New site"). Standard library only: the workflows read it on a bare runner.
"""

from __future__ import annotations

from pathlib import Path

EXAMPLES_FILE = Path(".github") / "example-stacks.txt"


def example_stacks(root: Path) -> set[str]:
    """Stack names listed in ``<root>/.github/example-stacks.txt`` (one a line; ``#`` comments)."""
    path = root / EXAMPLES_FILE
    if not path.is_file():
        return set()
    return parse_example_stacks(path.read_text())


def parse_example_stacks(text: str) -> set[str]:
    """The stack names of an example list's text (also an older commit's, read with ``git show``)."""
    return {line.split("#", 1)[0].strip() for line in text.splitlines()} - {""}
