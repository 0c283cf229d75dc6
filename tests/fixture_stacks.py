"""The test suite's own stacks (``tests/stacks/Pulumi.<name>.yaml``), rendered with the real
``Pulumi.yaml``. The stacks at the repository root belong to the adopter: the example
``Pulumi.dev.yaml`` may be edited into a real site or deleted, and the suite must not notice."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STACK_DIR = ROOT / "tests" / "stacks"


def stack_file(name: str = "dev") -> Path:
    """A fixture stack file."""
    return STACK_DIR / f"Pulumi.{name}.yaml"
