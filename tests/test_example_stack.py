"""The example stack says what it is (``Pulumi.dev.yaml``, while .github/example-stacks.txt lists it).

Every value that stands for one of the adopter's own (a subscription, a registry, an address, a
key) carries a ``# example: …`` or ``# placeholder: …`` comment on its own line, and the stack
takes its node key from the SSH agent (``sshAgent: true``), as the new-site runbook says. Every
config key of the example is either such a value (:data:`PLACEHOLDER_KEYS`) or a setting that
suits most sites (:data:`SETTING_KEYS`), so a key added to the example must be sorted into one.

Once the adopter makes ``dev`` a real site (its line deleted from the list) or deletes the file,
these tests skip: the suite never reads a real site.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.fixture_stacks import ROOT, example_stack

#: Values of the adopter's environment: each scalar in them is marked where it stands.
PLACEHOLDER_KEYS = {
    "azure-native:location", "azure-native:subscriptionId", "edge-registry:registryName",
    "edge-registry:registryResourceGroup", "edge-registry:connectedRegistryName", "edge-registry:repositories",
    "edge-registry:notifications", "edge-registry:requiredImages", "edge-registry:kubeconfigPath", "edge-registry:kubeContext",
    "edge-registry:serviceClusterIP", "edge-registry:pullSecretNamespaces",
}
#: Settings whose example value suits most sites (defaults, or the chart's and k3s's usual values).
SETTING_KEYS = {
    "edge-registry:mode", "edge-registry:syncSchedule", "edge-registry:syncWindow", "edge-registry:messageTtl",
    "edge-registry:logLevel", "edge-registry:auditLog", "edge-registry:garbageCollectionEnabled",
    "edge-registry:garbageCollectionSchedule", "edge-registry:passwordExpiryDays",
    "edge-registry:passwordRotateBeforeDays", "edge-registry:namespace", "edge-registry:releaseName",
    "edge-registry:chartVersion", "edge-registry:chunkSizeInMb", "edge-registry:storageClassName",
    "edge-registry:storageRequest", "edge-registry:pullSecretName", "edge-registry:createPullSecretNamespaces",
    "edge-registry:patchDefaultServiceAccount", "edge-registry:sshAgent", "edge-registry:nodeRestartTimeoutSeconds",
    "edge-registry:nodes",  # its entries: NODE_PLACEHOLDERS and NODE_SETTINGS
}
NODE_PLACEHOLDERS = {"host", "user", "hostKey"}
NODE_SETTINGS = {"role", "port", "path", "unit", "gone"}
MARK = re.compile(r"#\s*(example|placeholder):")


@pytest.fixture
def example() -> Path:
    return example_stack()


def placeholder_problems(text: str) -> list[str]:
    """Each placeholder value without its mark, and each key sorted into neither set."""
    lines = text.splitlines()
    document = yaml.compose(text)
    config = next(v for k, v in document.value if k.value == "config")
    problems: list[str] = []

    def unmarked(node: yaml.Node, key: str) -> None:
        if isinstance(node, yaml.ScalarNode):
            line = lines[node.start_mark.line]
            if not MARK.search(line):
                problems.append(f"line {node.start_mark.line + 1}: {key}: {node.value!r} has no '# example:' or "
                                "'# placeholder:' comment on its line")
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                unmarked(item, key)
        elif isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                unmarked(v, f"{key}.{k.value}")

    for key_node, value in config.value:
        key = key_node.value
        if key in PLACEHOLDER_KEYS:
            unmarked(value, key)
        elif key not in SETTING_KEYS:
            problems.append(f"line {key_node.start_mark.line + 1}: {key} is in neither PLACEHOLDER_KEYS nor "
                            "SETTING_KEYS of tests/test_example_stack.py")
        if key == "edge-registry:nodes":
            for index, node in enumerate(value.value):
                for field_node, field_value in node.value:
                    name = f"{key}[{index}].{field_node.value}"
                    if field_node.value in NODE_PLACEHOLDERS:
                        unmarked(field_value, name)
                    elif field_node.value not in NODE_SETTINGS:
                        problems.append(f"line {field_node.start_mark.line + 1}: {name} is in neither "
                                        "NODE_PLACEHOLDERS nor NODE_SETTINGS")
    return problems


def test_every_placeholder_value_says_so_where_it_stands(example: Path) -> None:
    text = example.read_text()
    assert placeholder_problems(text) == []
    assert text.startswith("# AN EXAMPLE, NOT A SITE.")


def test_the_check_finds_an_unmarked_value_and_an_unsorted_key(example: Path) -> None:
    text = example.read_text()
    unmarked = re.sub(r"(registryName: \S+) # placeholder:[^\n]*", r"\1", text)
    assert unmarked != text
    assert [p for p in placeholder_problems(unmarked) if "edge-registry:registryName: 'contosoedge'" in p]
    second_node = re.sub(r"(hostKey: ssh-ed25519 \S+) # placeholder:[^\n]*\n  edge-registry:nodeRestart",
                         r"\1\n  edge-registry:nodeRestart", text)
    assert second_node != text
    assert [p for p in placeholder_problems(second_node) if "edge-registry:nodes[1].hostKey" in p]
    unsorted = text.replace("  edge-registry:nodeRestartTimeoutSeconds:", "  edge-registry:mirrorLoginServer: true\n"
                            "  edge-registry:nodeRestartTimeoutSeconds:")
    assert [p for p in placeholder_problems(unsorted) if "edge-registry:mirrorLoginServer is in neither" in p]


def test_the_example_takes_the_node_key_from_the_agent_and_holds_no_credential(example: Path) -> None:
    config = yaml.safe_load(example.read_text())["config"]
    assert config["edge-registry:sshAgent"] is True
    for key in ("sshPrivateKey", "kubeconfig", "tlsCaKey", "tlsKey"):
        assert f"edge-registry:{key}" not in config


def test_the_example_renders_without_an_agent_or_a_key(example: Path, tmp_path: Path) -> None:
    """CI renders every stack file on a machine without an SSH agent: the example with
    sshAgent: true renders, and its node commands carry no key (the agent gives it at `up`)."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LC_ALL": "C.UTF-8"}  # no SSH_AUTH_SOCK
    done = subprocess.run([sys.executable, "-m", "components", "render", "dev", "--json"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    commands = [r for r in json.loads(done.stdout) if r["type"] == "command:remote:Command"]
    assert len(commands) == 2
    for command in commands:
        connection = command["inputs"]["connection"]
        assert "privateKey" not in connection and connection["host"] in ("192.0.2.10", "192.0.2.11")
    assert "sshPrivateKey" not in done.stderr
