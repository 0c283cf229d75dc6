"""Deploy credentials never reach the stack's state, which previews can read (they hold the
state passphrase): nodes are reached through an SSH agent (`sshAgent: true`) and the cluster
through a kubeconfig file (`kubeconfigPath`), so state holds neither a private key nor a
kubeconfig. docs/runbooks.md ("Preview credentials")."""

from __future__ import annotations

import json

import pytest

from components.config.fields import ConfigError
from components.config.loading import load_site_config
from components.nodes.mirror import NodeMirrorArgs
from components.preview.render import render_stack
from components.preview.values import reveal
from tests.fixture_stacks import STACK_DIR
from tests.test_config import SSH_KEY, with_

COMMAND = "command:remote:Command"
PROVIDER = "pulumi:providers:kubernetes"


def everything(result) -> str:
    return json.dumps([reveal(r.inputs) for r in result.resources])


def test_with_an_agent_no_key_is_in_any_resource() -> None:
    result = render_stack(stack="dev", stack_dir=STACK_DIR, config_overrides={"sshAgent": True, "sshPrivateKey": None})
    commands = result.by_type(COMMAND)
    assert commands
    for command in commands:
        connection = reveal(command.inputs)["connection"]
        assert "privateKey" not in connection and "agentSocketPath" not in connection  # $SSH_AUTH_SOCK
        assert connection["user"] == "ubuntu"
    assert "PRIVATE KEY" not in everything(result)
    # The cluster is reached through a file: its path is in the provider's inputs, not its content.
    assert reveal(result.one(PROVIDER).inputs)["kubeconfig"] == "~/.kube/dev-ship01.yaml"


def test_with_a_configured_key_it_would_be_in_the_state() -> None:
    # What the agent avoids (and why the check above can fail): the key goes into every command.
    result = render_stack(stack="dev", stack_dir=STACK_DIR, config_overrides={"sshPrivateKey": SSH_KEY})
    assert "PRIVATE KEY" in everything(result)
    for command in result.by_type(COMMAND):
        assert reveal(command.inputs)["connection"]["privateKey"] == SSH_KEY
        assert any(p.startswith("connection") for p in command.secret_paths)  # encrypted, but in state


def test_agent_and_key_exclude_each_other() -> None:
    with pytest.raises(ConfigError) as caught:
        load_site_config(with_(sshAgent="true"))
    assert caught.value.problems == ["edge-registry:sshAgent: set either sshAgent or sshPrivateKey, not both"]
    assert load_site_config(with_(sshAgent="true", sshPrivateKey=None)).ssh_agent is True
    with pytest.raises(ConfigError) as missing:
        load_site_config(with_(sshPrivateKey=None))
    assert any(p.startswith("edge-registry:sshPrivateKey: required") and "sshAgent" in p for p in missing.value.problems)


def test_node_args_accept_an_agent_instead_of_a_key() -> None:
    base = dict(host="10.0.0.5", role="server", unit="k3s", endpoint="10.43.0.1:80")
    NodeMirrorArgs(**base, ssh_agent=True)
    with pytest.raises(ValueError, match="ssh_private_key"):
        NodeMirrorArgs(**base)
    with pytest.raises(ValueError, match="exclude each other"):
        NodeMirrorArgs(**base, ssh_agent=True, ssh_private_key="k")
