"""components/nodes/paths.py: canonical registries.yaml paths, and one stack per node and path
(issue 20, points 3 and 4). Pure: no node, no Pulumi engine."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from components.nodes import read_account
from components.nodes.paths import duplicate_node_paths, path_problem


@dataclass(frozen=True)
class N:
    """The fields of components/config/nodes.py NodeConfig the check reads."""

    host: str
    path: str = "/etc/rancher/k3s/registries.yaml"
    port: int = 22
    gone: bool = False


@pytest.mark.parametrize("path", ["/etc/rancher/k3s/registries.yaml", "/etc/rancher/rke2/registries.yaml",
                                  "/var/lib/edge-registry-tests/0a1b/k3s/registries.yml", "/etc/k3s/..registries.yaml"])
def test_canonical_paths_are_accepted(path: str) -> None:
    assert path_problem(path) is None


@pytest.mark.parametrize(("path", "problem"), [
    ("/etc/rancher//k3s/registries.yaml", "no '//'"),
    ("//etc/rancher/k3s/registries.yaml", "no '//'"),
    ("/etc/rancher/k3s/registries.yaml/", "no trailing '/'"),
    ("/etc/rancher/./k3s/registries.yaml", "no '.' or '..' component"),
    ("/etc/rancher/k3s/../k3s/registries.yaml", "no '.' or '..' component"),
    ("/etc/rancher/k3s/..", "no '.' or '..' component"),
    ("etc/rancher/k3s/registries.yaml", "expected an absolute path"),
    ("/etc/rancher/k3s/registries yaml.yaml", "expected an absolute path"),
    ("/etc/rancher/k3s/registries.yaml\n", "expected an absolute path"),
    ("/etc/rancher/k3s/registries.json", "a .yaml file"),
])
def test_paths_that_are_not_canonical_are_refused_with_the_reason(path: str, problem: str) -> None:
    found = path_problem(path)
    assert found is not None and problem in found


def test_the_read_accounts_sudoers_rule_refuses_them_too() -> None:
    with pytest.raises(ValueError, match="not an absolute registries.yaml path"):
        read_account.sudoers_lines(paths=["/etc/rancher//k3s/registries.yaml"])


def test_two_stacks_naming_one_node_and_path_are_refused() -> None:
    stacks = {
        "ship01": [N("10.0.0.5"), N("10.0.0.6")],
        "ship02": [N("10.0.0.7"), N("10.0.0.5")],
        "ship03": [N("10.0.0.8")],
    }
    (message,) = duplicate_node_paths(stacks)
    assert message.startswith(
        "node 10.0.0.5 (port 22): /etc/rancher/k3s/registries.yaml is named by stacks ship01, ship02: "
    )
    assert "Name every node and path in one stack only" in message
    # the render of one stack: only what concerns it
    assert duplicate_node_paths(stacks, stack="ship02") == [message]
    assert duplicate_node_paths(stacks, stack="ship03") == []


def test_what_is_one_node_and_one_path() -> None:
    # host names are case-insensitive (and a trailing dot names the same host)
    assert len(duplicate_node_paths({"a": [N("Node1.example")], "b": [N("node1.example.")]})) == 1
    # two ports of one address may be two machines; two files on one node are two owners' own
    assert duplicate_node_paths({"a": [N("10.0.0.5", port=22)], "b": [N("10.0.0.5", port=2222)]}) == []
    assert duplicate_node_paths({"a": [N("10.0.0.5")], "b": [N("10.0.0.5", "/etc/rancher/rke2/registries.yaml")]}) == []
    # a gone node is never contacted again: the stack that took it over owns it
    assert duplicate_node_paths({"a": [N("10.0.0.5", gone=True)], "b": [N("10.0.0.5")]}) == []
    # three stacks, one message; one stack twice (two spellings of the host) says so
    (three,) = duplicate_node_paths({"c": [N("h")], "a": [N("h")], "b": [N("h")]})
    assert "named by stacks a, b, c:" in three
    (twice,) = duplicate_node_paths({"a": [N("h"), N("H")]})
    assert "named by stack a, twice:" in twice
