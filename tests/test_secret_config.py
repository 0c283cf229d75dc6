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
