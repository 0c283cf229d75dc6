"""The offline render imports what it uses and no more, and ``components/`` has no import cycle.

The render's fakes stand in for the program's SSH, ARM and catalog readers and issue no
certificate, so paramiko, the Azure SDKs, cryptography and the HTTP clients must not be loaded by
importing the render or by rendering (``--read-nodes`` loads paramiko). Each check runs in a
fresh interpreter: the suite's own imports would hide what the render loads. Not timed
(``python -m components benchmark`` measures time and memory).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys

from tests.fixture_stacks import ROOT, STACK_DIR

#: What a render must not load: the SSH client, the Azure SDKs, the HTTP stacks, cryptography.
NOT_FOR_A_RENDER = (
    "paramiko", "kubernetes", "azure.identity", "azure.mgmt.containerregistry", "azure.containerregistry", "requests", "aiohttp",
    "cryptography",
)


def loaded_after(code: str) -> list[str]:
    """Which of NOT_FOR_A_RENDER a fresh interpreter has loaded after running ``code``."""
    probe = (
        "import contextlib, io, json, sys\n"
        f"{code}\n"
        f"print(json.dumps([m for m in {NOT_FOR_A_RENDER!r} if m in sys.modules]))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_importing_the_render_and_its_command_line_loads_no_ssh_azure_http_or_crypto_module() -> None:
    assert loaded_after("import components.preview.render, components.preview.cli") == []


def test_a_dev_render_without_read_nodes_loads_no_ssh_azure_or_crypto_module() -> None:
    """The whole command (render, policy pack, tree) on the dev stack. One exception, the SDK's
    own: pulumi-kubernetes' Helm module imports its YAML module, which imports ``requests``, so any
    program that declares a Helm ``Release`` loads it (the benchmark's import floor does too)."""
    render = (
        "from components.preview import cli\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    assert cli.main(['dev', '--stack-dir', {str(STACK_DIR)!r}]) == 0\n"
    )
    assert [m for m in loaded_after(render) if m != "requests"] == []


def _components_imports() -> dict[str, set[str]]:
    """Module -> the ``components`` modules it imports, anywhere in its text (in functions and
    under ``TYPE_CHECKING`` too)."""
    files = {}
    for path in (ROOT / "components").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in files else node.module
                           for a in node.names]
            else:
                continue
            for target in targets:
                while target and target not in files:
                    target = target.rpartition(".")[0]
                if target and target not in (name, "components"):
                    found.add(target)
        graph[name] = found
    return graph


def test_components_has_no_import_cycle() -> None:
    graph = _components_imports()
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            raise AssertionError("import cycle: " + " -> ".join([*path[path.index(module):], module]))
        if module in done:
            return
        for imported in sorted(graph[module]):
            visit(imported, [*path, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])


def test_only_the_command_line_imports_the_policy_check_which_needs_only_the_wire_values() -> None:
    graph = _components_imports()
    assert {m for m, imported in graph.items() if "components.preview.policy_check" in imported} == {
        "components.preview.cli"
    }
    assert {m for m in graph["components.preview.policy_check"] if m.startswith("components.preview")} == {
        "components.preview.values"
    }
