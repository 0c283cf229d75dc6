"""Config secrets stay secrets: read through pulumi.Config, nested `--path` secrets included,
in resource inputs, the render and error messages."""

from __future__ import annotations

import contextvars
import json
import shutil
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml
from pulumi.runtime.sync_await import _sync_await

from components.config.fields import ConfigError
from components.config.loading import load_site_config
from components.cluster.onprem import merge_values
from components.preview.output import format_tree
from components.preview.render import render_stack
from components.preview.values import reveal
from components.config.stack import (
    StackConfig,
    hide_leaves,
    leaf_paths,
    read_stack_config,
    stack_file_secret_leaves,
)
from tests.fixture_stacks import stack_file
from tests.test_config import valid, with_

ROOT = Path(__file__).resolve().parent.parent
RELEASE = "kubernetes:helm.sh/v3:Release"
CIPHERTEXT = "v1:c2VjcmV0LWZyb20tdGhlLXN0YWNrLWZpbGU="


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    """The repository's project with the suite's dev stack (tests/stacks/), whose chartValues holds
    one nested secure leaf, as `pulumi config set --secret --path 'chartValues.auth.password' ...`
    writes it."""
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    stack = yaml.safe_load(stack_file("dev").read_text())
    # https, the default, so the certificate and key are among the release's secrets too.
    del stack["config"]["edge-registry:httpEnabled"]
    stack["config"]["edge-registry:chartValues"] = {
        "auth": {"password": {"secure": CIPHERTEXT}, "user": "reader"},
        "resources": {"limits": {"cpu": "500m"}},
    }
    (tmp_path / "Pulumi.dev.yaml").write_text(yaml.safe_dump(stack))
    return tmp_path


def test_stack_file_secure_leaves_are_found(project: Path) -> None:
    assert stack_file_secret_leaves(project, "dev") == {"chartValues": (("auth", "password"),)}


def test_nested_secret_never_shows_in_the_render(project: Path) -> None:
    result = render_stack(project, "dev")
    release = result.one(RELEASE)
    values = reveal(release.inputs)["values"]
    # The engine hands the program the decrypted value; offline a placeholder stands in for it.
    assert values["auth"] == {"password": "[secure:chartValues.auth.password]", "user": "reader"}
    assert values["resources"] == {"limits": {"cpu": "500m"}}
    # Exactly the leaves that are secrets, as the engine sees them: the connection string and the
    # leaf set with --secret; the rest of the chart values stay reviewable.
    # The https certificate and key (tls.crt, tls.key) are secrets too.
    assert sorted(release.secret_paths) == [
        "values.auth.password", "values.connectionString", "values.tls.crt", "values.tls.key"
    ]
    shown = release.as_json(show_secrets=False)["inputs"]["values"]
    assert shown["auth"] == {"password": "[secret]", "user": "reader"}
    masked = json.dumps([r.as_json(show_secrets=False) for r in result.resources])
    assert "secure:chartValues" not in masked
    assert "secure:chartValues" not in format_tree(result)
    assert "[secure:chartValues.auth.password]" in json.dumps(release.as_json(show_secrets=True))
    assert "secure:chartValues" not in json.dumps(result.outputs)


def test_only_the_secret_leaf_is_wrapped() -> None:
    chart_values = {"auth": {"password": "hunter2", "user": "reader"}, "tolerations": [{"key": "a"}]}
    secrets = StackConfig(values={}, secret_keys=frozenset({"chartValues"}),
                          secret_leaves={"chartValues": (("auth", "password"),)})
    hidden = hide_leaves(chart_values, secrets.leaves_to_hide("chartValues", chart_values))
    merged = merge_values(hidden, {"connectionString": "x"})
    password = merged["auth"]["password"]
    assert isinstance(password, pulumi.Output) and _sync_await(password.is_secret())
    assert merged["auth"]["user"] == "reader" and merged["tolerations"] == [{"key": "a"}]


def test_a_stack_file_that_is_not_the_one_the_engine_read_is_not_trusted() -> None:
    # E.g. `pulumi up --config-file other.yaml`: Pulumi.<stack>.yaml says auth.password is the
    # secret, but the engine passed a value whose secret is elsewhere: every leaf is hidden.
    written = {"auth": {"password": {"secure": "v1:abc"}}, "user": "reader"}
    secrets = StackConfig(values={}, secret_keys=frozenset({"chartValues"}), stack_file_values={"chartValues": written})
    same = {"auth": {"password": "hunter2"}, "user": "reader"}
    assert secrets.leaves_to_hide("chartValues", same) == [("auth", "password")]
    other = {"auth": {"token": "hunter2"}, "user": "reader"}
    assert sorted(secrets.leaves_to_hide("chartValues", other)) == [("auth", "token"), ("user",)]
    changed_plain = {"auth": {"password": "hunter2"}, "user": "admin"}
    assert sorted(secrets.leaves_to_hide("chartValues", changed_plain)) == [("auth", "password"), ("user",)]


def test_a_secret_object_without_leaf_information_is_secret_throughout() -> None:
    chart_values = {"a": {"b": "1"}, "c": ["x", "y"]}
    secrets = StackConfig(values={}, secret_keys=frozenset({"chartValues"}))
    paths = secrets.leaves_to_hide("chartValues", chart_values)
    assert sorted(paths, key=str) == sorted(leaf_paths(chart_values), key=str)
    hidden = hide_leaves(chart_values, paths)
    assert all(_sync_await(v.is_secret()) for v in (hidden["a"]["b"], hidden["c"][0], hidden["c"][1]))
    assert StackConfig(values={}).leaves_to_hide("chartValues", chart_values) == []


def test_engine_secret_keys_from_the_language_host_are_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    # `pulumi up` passes config and its secret keys to the Python program in these variables.
    monkeypatch.setenv("PULUMI_CONFIG", json.dumps({
        "edge-registry:chartValues": json.dumps({"auth": {"password": "hunter2"}}),
        "edge-registry:registryName": "contosoedge",
    }))
    monkeypatch.setenv("PULUMI_CONFIG_SECRET_KEYS", json.dumps(["edge-registry:chartValues"]))
    stack: StackConfig = contextvars.Context().run(read_stack_config, None)
    assert stack.values["registryName"] == "contosoedge"
    assert stack.secret_keys == frozenset({"chartValues"})
    assert stack.leaves_to_hide("chartValues", {"auth": {"password": "hunter2"}}) == [("auth", "password")]


def problems(values: dict[str, Any], secret: set[str]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_site_config(values, frozenset(secret))
    return caught.value.problems


def test_a_bad_secret_value_is_never_echoed() -> None:
    for bad in ("not json hunter2", json.dumps(["hunter2"])):
        found = problems(with_(chartValues=bad), {"chartValues"})
        assert any(p.startswith("edge-registry:chartValues:") for p in found), found
        assert not any("hunter2" in p for p in found), found
    # The same mistake in plain config is shown, so the check above is not vacuous.
    assert any("hunter2" in p for p in problems(with_(chartValues=json.dumps(["hunter2"])), set()))


def test_a_secret_the_program_cannot_keep_is_refused_by_name() -> None:
    found = problems(valid(), {"syncSchedule", "chartValues", "kubeconfig"})
    assert found == [
        "edge-registry:syncSchedule: is set as a secret, but only adoptClientPassword, adoptSyncPassword, "
        "chartValues, kubeconfig, sshPrivateKey, "
        "tlsCaCertificate, tlsCaKey, tlsCertificate, tlsKey stay secret (this value goes into resource names, commands or plain outputs): set it without --secret"
    ]


def test_a_secret_leaf_in_an_invalid_chart_value_key_is_not_echoed() -> None:
    found = problems(with_(chartValues={"bad key!": "hunter2"}), {"chartValues"})
    assert any(p.startswith("edge-registry:chartValues:") for p in found)
    assert not any("hunter2" in p for p in found)


#: (key, bad value with "hunter2" in it, the key the problem names) for keys that are not secret
#: themselves, set with --secret: their messages would otherwise quote (part of) the value.
SECRET_ON_PLAIN_KEYS: list[tuple[str, Any, str]] = [
    ("syncSchedule", "hunter2 * * * *", "syncSchedule"),
    ("syncSchedule", "5 hunter2 * * *", "syncSchedule"),
    ("repositories", ["Hunter2"], "repositories"),
    ("repositories", ["hunter2", "hunter2"], "repositories"),
    ("notifications", ["hunter2"], "notifications"),
    ("notifications", ["hunter2:pull"], "notifications"),
    ("armEndpoint", "https://hunter2_x", "armEndpoint"),
    ("armEndpoint", "https://example.com:99999hunter2", "armEndpoint"),
    ("connectedRegistryName", "Hunter2ship", "connectedRegistryName"),
    ("namespace", "Hunter2", "namespace"),
    ("pullSecretNamespaces", ["Hunter2"], "pullSecretNamespaces"),
    ("chartValues", {"hunter2 key!": "x"}, "chartValues"),
    ("nodes", [{"host": "hunter2 x", "role": "server"}], "nodes[0].host"),
    ("nodes", [{"host": "10.0.0.1", "role": "server", "hunter2": 1}], "nodes[0]"),
    ("nodes", [{"host": "hunter2", "role": "server"}, {"host": "hunter2", "role": "agent"}], "nodes"),
    ("chartVersion", "0.2.0-hunter2", "chartVersion"),
    ("syncWindow", "hunter2", "syncWindow"),
    ("registryName", "hunter2\n", "registryName"),
]


@pytest.mark.parametrize(("key", "value", "named"), SECRET_ON_PLAIN_KEYS,
                         ids=[f"{k}={json.dumps(v)}" for k, v, _ in SECRET_ON_PLAIN_KEYS])
def test_a_value_set_as_secret_never_appears_in_a_message_even_on_a_plain_key(key: str, value: Any, named: str) -> None:
    found = problems(with_(**{key: value}), {key})
    # Its own problem, besides the one that says the key cannot be a secret.
    assert any(p.startswith(f"edge-registry:{named}") and "is set as a secret" not in p for p in found), found
    assert "hunter2" not in "\n".join(found).lower(), found


@pytest.mark.parametrize(("key", "value"), [(k, v) for k, v, _ in SECRET_ON_PLAIN_KEYS[:6]])
def test_the_same_values_in_plain_config_are_shown(key: str, value: Any) -> None:
    """So the test above is not vacuous: without --secret the messages quote the value."""
    assert "hunter2" in "\n".join(problems(with_(**{key: value}), set())).lower()


def test_another_key_s_message_does_not_quote_a_secret() -> None:
    # passwordExpiryDays set with --secret: the rule on passwordRotateBeforeDays would quote it.
    found = problems(with_(passwordExpiryDays="917", passwordRotateBeforeDays="918"), {"passwordExpiryDays"})
    assert any(p.startswith("edge-registry:passwordRotateBeforeDays: 918 must be less than") for p in found), found
    assert "917" not in "\n".join(found)
    plain = problems(with_(passwordExpiryDays="917", passwordRotateBeforeDays="918"), set())
    assert "917" in "\n".join(plain)


def test_a_secret_nested_in_a_node_never_shows_in_its_problem() -> None:
    nodes = [{"host": "10.0.0.1", "role": "server", "port": "hunter2", "user": "Hunter2"}]
    found = problems(with_(nodes=nodes), {"nodes"})
    assert {p.split(": ", 1)[0] for p in found} >= {"edge-registry:nodes[0].port", "edge-registry:nodes[0].user"}
    assert "hunter2" not in "\n".join(found).lower()
