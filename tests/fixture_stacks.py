"""The test suite's own stacks (``tests/stacks/Pulumi.<name>.yaml``), rendered with the real
``Pulumi.yaml``. The stacks at the repository root belong to the adopter: the example
``Pulumi.dev.yaml`` may be edited into a real site or deleted, and the suite must not notice.
Only :func:`example_stack` reads it, for the tests of the example itself and of the docs'
commands run on it, and only while it is listed as an example; those tests skip otherwise."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STACK_DIR = ROOT / "tests" / "stacks"


def stack_file(name: str = "dev") -> Path:
    """A fixture stack file."""
    return STACK_DIR / f"Pulumi.{name}.yaml"


#: The example stack at the root (listed in .github/example-stacks.txt as shipped).
EXAMPLE = "dev"


def example_stack() -> Path:
    """The root's ``Pulumi.dev.yaml`` while .github/example-stacks.txt lists it as an example;
    otherwise (the adopter made it a real site, or deleted it) the calling test skips."""
    import pytest

    from components.config.examples import example_stacks

    path = ROOT / f"Pulumi.{EXAMPLE}.yaml"  # the one door to a root stack file (tests/test_repository.py)
    if not path.is_file() or EXAMPLE not in example_stacks(ROOT):
        pytest.skip(f"Pulumi.{EXAMPLE}.yaml is not the example any more (.github/example-stacks.txt): "
                    "the suite does not read a real site")
    return path
