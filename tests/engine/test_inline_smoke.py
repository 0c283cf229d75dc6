"""``scripts/engine run`` against the real engine: a tiny project whose program is served
in-process (the Automation API's inline program, tests/engine/inline.py) and whose
``pulumi.dynamic`` provider is a module of that project, imported by the provider process.

Skipped unless ``scripts/engine build`` has built the engine of this tree: the test never
builds Go (cold, minutes), so the suite on a machine without the engine (CI) skips it.
"""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.engine.site_harness import engine_bin

ROOT = Path(__file__).resolve().parents[2]
ENGINE = ROOT / "scripts" / "engine"

BIN = engine_bin()
pytestmark = pytest.mark.skipif(
    BIN is None or not (BIN / "pulumi").is_file(), reason="the engine is not built: scripts/engine build"
)

PROVIDER = '''
import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider


class Provider(ResourceProvider):
    def create(self, props):
        return CreateResult(id_="thing-1", outs={"value": props["value"]})

    def diff(self, _id, olds, news):
        return DiffResult(changes=olds["value"] != news["value"])


class Thing(Resource):
    value: pulumi.Output[str]

    def __init__(self, name, value):
        super().__init__(Provider(), name, {"value": value})


def run():
    pulumi.export("value", Thing("thing", pulumi.Config().require("value")).value)
'''


def test_up_preview_destroy(tmp_path: Path) -> None:
    project, stacks = tmp_path / "project", tmp_path / "stacks"
    project.mkdir()
    stacks.mkdir()
    (project / "Pulumi.yaml").write_text("name: smoke\nruntime: python\n")
    (project / "smoke_provider.py").write_text(textwrap.dedent(PROVIDER))
    # The stack file outside the project, as the tier's stacks are.
    (stacks / "Pulumi.smoke.yaml").write_text("config:\n  smoke:value: hello\n")
    env = {**os.environ, "PULUMI_CONFIG_PASSPHRASE": "smoke"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [ENGINE, "run", "--project-dir", str(project), "--stack-dir", str(stacks),
             "--backend", f"file://{tmp_path / 'state'}", "--program", "smoke_provider:run", *args],
            capture_output=True, text=True, env=env, timeout=300,
        )

    (tmp_path / "state").mkdir()
    up = run("--create", "smoke", "up", "--yes")
    assert up.returncode == 0, up.stdout + up.stderr
    assert "+ 2 created" in up.stdout and 'value: "hello"' in up.stdout
    # stack init's encryption salt went to the stack file, not beside Pulumi.yaml.
    assert "encryptionsalt:" in (stacks / "Pulumi.smoke.yaml").read_text()
    assert not (project / "Pulumi.smoke.yaml").exists()

    same = run("smoke", "preview", "--expect-no-changes")
    assert same.returncode == 0, same.stdout + same.stderr
    assert "2 unchanged" in same.stdout

    # A change fails --expect-no-changes with the CLI's own exit code (7, ExitNoChanges).
    (stacks / "Pulumi.smoke.yaml").write_text((stacks / "Pulumi.smoke.yaml").read_text().replace("hello", "bye"))
    changed = run("smoke", "preview", "--expect-no-changes")
    assert changed.returncode == 7, changed.stdout + changed.stderr
    assert "no changes were expected" in changed.stderr

    down = run("smoke", "destroy", "--yes")
    assert down.returncode == 0, down.stdout + down.stderr
    assert "- 2 deleted" in down.stdout
