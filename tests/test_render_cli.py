"""`python -m components render`: the offline evaluation operators and CI run per stack."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from components.config.fields import ConfigError
from components.nodes.payload import NodeMirrorError
from components.nodes.read import NodeReadFailure
from components.preview.fakes import CloudFakes
from components.preview.output import format_tree
from components.preview.render import NodeError, render_stack
from components.preview.values import KNOWN_AFTER_APPLY
from components.preview.fakes import FakeNodeReader
from tests.fixture_stacks import STACK_DIR, stack_file

ROOT = Path(__file__).resolve().parent.parent


def render(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """The CLI on the suite's fixture stacks (tests/stacks), unless a test names its own project."""
    where = [] if "--project-dir" in args else ["--stack-dir", str(STACK_DIR)]
    return subprocess.run(
        [sys.executable, "-m", "components", "render", *args, *where], cwd=cwd, capture_output=True, text=True,
        timeout=120,
    )


def test_json_lists_every_resource_with_its_wiring() -> None:
    done = render("dev", "--json")
    assert done.returncode == 0, done.stderr
    resources = json.loads(done.stdout)
    urns = {r["urn"] for r in resources}
    for resource in resources:
        assert set(resource) == {"type", "name", "urn", "parent", "inputs", "dependencies", "options", "secretPaths"}
        assert resource["parent"] is None or resource["parent"] in urns or resource["parent"].endswith("Stack::edge-registry-dev")
        assert set(resource["dependencies"]) <= urns
    types = {r["type"] for r in resources}
    assert "azure-native:containerregistry:ConnectedRegistry" in types
    assert "kubernetes:helm.sh/v3:Release" in types
    assert "command:remote:Command" in types


def test_secrets_are_masked_unless_asked() -> None:
    masked = json.loads(render("dev", "--json").stdout)
    release = next(r for r in masked if r["type"] == "kubernetes:helm.sh/v3:Release")
    assert any("connectionString" in p or p == "values" for p in release["secretPaths"])
    assert "SyncTokenPassword" not in json.dumps(masked)
    shown = render("dev", "--json", "--show-secrets").stdout
    assert "SyncTokenPassword=" in shown


def test_text_mode_prints_a_tree_and_outputs() -> None:
    done = render("dev")
    assert done.returncode == 0, done.stderr
    assert "azure-native:containerregistry:ConnectedRegistry" in done.stdout
    assert "connectionString: \"[secret]\"" in done.stdout
    assert "note: edge-registry:sshPrivateKey is not set" in done.stderr


def test_config_error_exits_2_with_one_line_per_problem(tmp_path: Path) -> None:
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    stack = yaml.safe_load(stack_file().read_text())
    stack["config"]["edge-registry:connectedRegistryName"] = "ship-01"
    stack["config"]["edge-registry:syncWindow"] = "P30D"
    (tmp_path / "Pulumi.broken.yaml").write_text(yaml.safe_dump(stack))
    done = render("broken", "--project-dir", str(tmp_path))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert "Traceback" not in done.stderr
    assert any(line.startswith("edge-registry:connectedRegistryName:") for line in lines)
    assert any(line.startswith("edge-registry:syncWindow:") for line in lines)
    assert done.stdout == ""


def test_unknown_stack_exits_2() -> None:
    done = render("nosuchsite")
    assert done.returncode == 2 and "Pulumi.nosuchsite.yaml" in done.stderr


def test_secure_values_render_as_placeholders(tmp_path: Path) -> None:
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    stack = yaml.safe_load(stack_file().read_text())
    stack["config"]["edge-registry:sshPrivateKey"] = {"secure": "v1:abc:def"}
    (tmp_path / "Pulumi.enc.yaml").write_text(yaml.safe_dump(stack))
    done = render("enc", "--json", "--show-secrets", "--project-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "[secure:sshPrivateKey]" in done.stdout
    assert "not set" not in done.stderr


def test_node_state_shows_what_that_node_would_receive(tmp_path: Path) -> None:
    current = tmp_path / "registries.yaml"
    current.write_text(
        "mirrors:\n  docker.io:\n    endpoint:\n      - https://mirror.example:5000\n"
        "configs:\n  mirror.example:5000:\n    auth:\n      username: u\n      password: foreign-pass\n"
    )
    done = render("dev", "--show-secrets", "--node-state", f"192.0.2.10={current}")
    assert done.returncode == 0, done.stderr
    first = done.stdout.split("\ndev-node-192.0.2.10:\n")[1].split("\ndev-node-192.0.2.11:\n")[0]
    second = done.stdout.split("\ndev-node-192.0.2.11:\n")[1].split("outputs:")[0]
    import hashlib

    assert hashlib.sha256(current.read_bytes()).hexdigest() in first
    assert "docker.io" in first and "foreign-pass" in first and "http://10.43.200.200:80" in first
    assert "plan: node 192.0.2.10: /etc/rancher/k3s/registries.yaml: mirrors[10.43.200.200:80] added, mirrors[contosoedge.azurecr.io] added, configs[10.43.200.200:80] added; k3s restarts" in first
    assert "expected current file: absent" in second and "docker.io" not in second
    masked = render("dev", "--node-state", f"192.0.2.10={current}")
    assert "foreign-pass" not in masked.stdout
    # The desired file is shown with the credential masked, not hidden as a whole.
    desired = masked.stdout.split("\ndev-node-192.0.2.10:\n")[1].split("\ndev-node-192.0.2.11:\n")[0]
    assert "username: u" in desired and "password: '[secret]'" in desired and "http://10.43.200.200:80" in desired


def test_node_state_needs_host_and_file() -> None:
    done = render("dev", "--node-state", "192.0.2.10")
    assert done.returncode == 2 and "HOST=FILE" in done.stderr


def test_stack_files_can_live_apart_from_the_project(tmp_path: Path) -> None:
    """A project directory with no stack file at all (the example deleted): --stack-dir finds it."""
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    stacks = tmp_path / "elsewhere"
    stacks.mkdir()
    shutil.copy(stack_file(), stacks / "Pulumi.ship07.yaml")
    done = render("ship07", "--json", "--project-dir", str(tmp_path), "--stack-dir", str(stacks))
    assert done.returncode == 0, done.stderr
    assert any(r["urn"].startswith("urn:pulumi:ship07::") for r in json.loads(done.stdout))
    missing = render("ship07", "--project-dir", str(tmp_path))
    assert missing.returncode == 2 and "Pulumi.ship07.yaml: no such stack file" in missing.stderr


def test_the_suite_refuses_to_render_the_adopters_stacks() -> None:
    """tests/conftest.py: rendering a root stack file fails the test, with the fix in the message."""
    with pytest.raises(pytest.fail.Exception, match="stack_dir"):
        render_stack(ROOT, "dev")


# --- one rule set: the render runs the policy pack ----------------------------------------------

def site_variant(tmp_path: Path, name: str, drop: tuple[str, ...] = (), **config: object) -> None:
    """A copy of the fixture site as Pulumi.<name>.yaml in a project dir, with keys dropped or set."""
    if not (tmp_path / "Pulumi.yaml").exists():
        shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    stack = yaml.safe_load(stack_file().read_text())
    for key in drop:
        stack["config"].pop(key)
    stack["config"].update(config)
    # Each site its own node files: two stacks naming one node's file are refused.
    for node in stack["config"].get("edge-registry:nodes") or []:
        node["path"] = f"/etc/rancher/{name}/registries.yaml"
    (tmp_path / f"Pulumi.{name}.yaml").write_text(yaml.safe_dump(stack))


def project_default_http(tmp_path: Path) -> None:
    """A project whose Pulumi.yaml defaults httpEnabled to true (as it did before https became the
    default): that default is still not a site's opt-in."""
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    project = yaml.safe_load((tmp_path / "Pulumi.yaml").read_text())
    project["config"]["httpEnabled"]["default"] = True
    (tmp_path / "Pulumi.yaml").write_text(yaml.safe_dump(project, sort_keys=False))


def test_without_the_sites_opt_in_a_site_is_https_and_passes(tmp_path: Path) -> None:
    site_variant(tmp_path, "ship01", drop=("edge-registry:httpEnabled",))
    done = render("ship01", "--project-dir", str(tmp_path), "--json")
    assert done.returncode == 0, done.stderr
    release = next(r for r in json.loads(done.stdout) if r["type"] == "kubernetes:helm.sh/v3:Release")
    assert release["inputs"]["values"]["httpEnabled"] is False


def test_http_without_the_sites_opt_in_fails_the_render_as_it_fails_the_pack(tmp_path: Path) -> None:
    """Only the stack file's own `httpEnabled: true` is the opt-in, whatever Pulumi.yaml's default says."""
    project_default_http(tmp_path)
    site_variant(tmp_path, "ship02", drop=("edge-registry:httpEnabled",))
    done = render("ship02", "--project-dir", str(tmp_path))
    assert done.returncode == 2 and done.stdout == ""
    assert "stack ship02 fails the policy pack" in done.stderr
    assert "policy http-only-where-opted-in" in done.stderr
    assert "write `edge-registry:httpEnabled: true` in Pulumi.ship02.yaml" in done.stderr
    # Choosing either way passes: https, or http written in the stack file.
    site_variant(tmp_path, "ship03", **{"edge-registry:httpEnabled": False})
    assert render("ship03", "--project-dir", str(tmp_path)).returncode == 0
    site_variant(tmp_path, "ship04", **{"edge-registry:httpEnabled": True})
    assert render("ship04", "--project-dir", str(tmp_path)).returncode == 0


def test_the_fleet_policy_config_opts_a_stack_in_for_the_render_too(tmp_path: Path) -> None:
    project_default_http(tmp_path)
    site_variant(tmp_path, "ship05", drop=("edge-registry:httpEnabled",))
    (tmp_path / "policy").mkdir()
    (tmp_path / "policy" / "config.json").write_text(json.dumps({"http-only-where-opted-in": {"allowHttpStacks": ["ship0*"]}}))
    done = render("ship05", "--project-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"http-only-where-opted-in": {"allowHttpStacks": ["plant*"]}}))
    assert render("ship05", "--project-dir", str(tmp_path), "--policy-config", str(other)).returncode == 2


def test_a_password_lifetime_past_the_packs_maximum_fails_the_render(tmp_path: Path) -> None:
    site_variant(tmp_path, "ship06", **{"edge-registry:passwordExpiryDays": 365})
    done = render("ship06", "--project-dir", str(tmp_path))
    assert done.returncode == 2 and "policy token-passwords-expire" in done.stderr
    assert "the maximum is 90" in done.stderr


def test_read_write_needs_the_opt_in_in_the_stack_file(tmp_path: Path) -> None:
    site_variant(tmp_path, "plant07", **{"edge-registry:mode": "ReadWrite", "edge-registry:allowReadWrite": True})
    done = render("plant07", "--project-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr


def test_advisory_findings_are_printed_without_failing(tmp_path: Path) -> None:
    # Every policy of the pack is mandatory (the host key one too, issue 20); the fleet config can
    # lower one to advisory, which the render prints without failing.
    site_variant(tmp_path, "ship10", **{"edge-registry:passwordExpiryDays": 365})
    config = tmp_path / "policy.json"
    config.write_text(json.dumps({"token-passwords-expire": "advisory"}))
    done = render("ship10", "--project-dir", str(tmp_path), "--policy-config", str(config))
    assert done.returncode == 0, done.stderr
    assert "advisory policy token-passwords-expire" in done.stderr


def test_unprefixed_and_misspelt_keys_in_a_stack_file_are_named(tmp_path: Path) -> None:
    site_variant(tmp_path, "ship08", auditLog=False)
    done = render("ship08", "--project-dir", str(tmp_path))
    assert done.returncode == 2
    assert "Pulumi.ship08.yaml: auditLog: a stack config key needs its namespace" in done.stderr
    assert "write `edge-registry:auditLog`" in done.stderr
    site_variant(tmp_path, "ship09", **{"azure-native:locaton": "westeurope", "edge-registry:httpEnabld": True})
    done = render("ship09", "--project-dir", str(tmp_path))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "azure-native:locaton: not a setting of the azure-native provider; did you mean `azure-native:location`?" in done.stderr
    assert "edge-registry:httpEnabld: unknown setting; did you mean `edge-registry:httpEnabled`?" in done.stderr


def test_the_policy_config_can_set_a_level_for_the_render_too(tmp_path: Path) -> None:
    """`"<policy>": "<level>"` (the documented form) sets a policy's level for the render as for the pack."""
    site_variant(tmp_path, "ship11", **{"edge-registry:passwordExpiryDays": 365})
    config = tmp_path / "policy.json"
    config.write_text(json.dumps({"token-passwords-expire": "mandatory"}))
    done = render("ship11", "--project-dir", str(tmp_path), "--policy-config", str(config))
    assert done.returncode == 2 and "policy token-passwords-expire" in done.stderr
    config.write_text(json.dumps({"token-passwords-expire": "disabled"}))
    done = render("ship11", "--project-dir", str(tmp_path), "--policy-config", str(config))
    assert done.returncode == 0 and "token-passwords-expire" not in done.stderr


@pytest.mark.parametrize(
    ("content", "host", "expected"),
    [
        ("mirrors: [unclosed\n", "192.0.2.10", "--node-state 192.0.2.10: "),
        ("- a\n- b\n", "192.0.2.10", "must hold a mapping"),
        ("mirrors: {}\n", "198.51.100.7", "--node-state 198.51.100.7: not a node of this stack"),
        # YAML, but not a file k3s accepts (docs/nodes.md): the program's own check says so.
        ('mirrors: {x: {endpoint: "str"}}\n', "192.0.2.10", 'mirrors["x"].endpoint: must be a list of URLs, not a string'),
        ("mirrors: oops\n", "192.0.2.11", "mirrors must be a mapping, not a string"),
        ("configs:\n  m.example:\n    tls: {insecure_skip_verify: yes-please}\n", "192.0.2.10",
         'configs["m.example"].tls.insecure_skip_verify: must be a boolean'),
        # k3s would ignore a misspelt key silently; the program refuses to merge into such a file.
        ("mirrors:\n  docker.io:\n    endpoints: [https://m.example]\n", "192.0.2.11",
         'mirrors["docker.io"].endpoints: unknown key in a mirror (did you mean endpoint?)'),
    ],
    ids=["broken-yaml", "a-list", "unknown-host", "endpoint-not-a-list", "mirrors-not-a-mapping",
         "skip-verify-not-a-boolean", "misspelt-endpoints"],
)
def test_bad_node_state_exits_2_with_one_clean_line(tmp_path: Path, content: str, host: str, expected: str) -> None:
    state = tmp_path / "registries.yaml"
    state.write_text(content)
    done = render("dev", "--node-state", f"{host}={state}")
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"--node-state {host}: ") and "Traceback" not in done.stderr
    assert expected in lines[0]
    if "not a node of this stack" not in expected:  # a problem in the file: the line names it
        assert f"--node-state {host}: {state}: " in lines[0]


def test_a_broken_node_state_line_is_not_quoted(tmp_path: Path) -> None:
    """The file may hold credentials: where the YAML breaks is named, the line is not shown."""
    state = tmp_path / "registries.yaml"
    state.write_text('configs:\n  m.example:\n    auth: {username: u, password: "hunter2-secret\n')
    done = render("dev", "--node-state", f"192.0.2.10={state}")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "not valid YAML" in done.stderr and "line 4, column 1" in done.stderr
    assert "hunter2" not in done.stderr


class _RefusingReader(FakeNodeReader):
    """A node reader whose answer the program refuses (NodeMirrorError), as a damaged read is."""

    def read_nodes(self, targets, private_key, use_agent=False):  # type: ignore[no-untyped-def]
        raise NodeMirrorError("node 192.0.2.10: read output is damaged:\nsection 'file' ends early")


def test_a_node_the_program_refuses_is_a_clean_render_error() -> None:
    with pytest.raises(NodeError) as refused:
        render_stack(stack="dev", stack_dir=STACK_DIR, preview=True, node_reader=_RefusingReader())
    assert refused.value.lines == ["node 192.0.2.10: read output is damaged: section 'file' ends early"]


def test_the_cli_turns_a_refused_node_into_exit_2_and_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import components.preview.render as render_module
    from components.preview import cli

    monkeypatch.setattr(render_module, "FakeNodeReader", lambda _state: _RefusingReader())
    assert cli.main(["dev", "--stack-dir", str(STACK_DIR)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == ["node 192.0.2.10: read output is damaged: section 'file' ends early"]


def test_same_input_gives_the_same_bytes(tmp_path: Path) -> None:
    current = tmp_path / "registries.yaml"
    current.write_text("configs:\n  z.example:5000:\n    auth: {username: u, password: p}\n")
    for extra in ([], ["--json"], ["--json", "--show-secrets"]):
        args = ["dev", "--node-state", f"192.0.2.11={current}", *extra]
        first, second = render(*args), render(*args)
        assert first.returncode == 0, first.stderr
        assert first.stdout == second.stdout and first.stderr == second.stderr


def test_the_cli_prints_the_same_bytes_every_time(tmp_path: Path) -> None:
    """Run after run, stdout and stderr are byte for byte the same: no event loop is left for the
    garbage collector to finalize at a random moment ("Exception ignored in
    BaseEventLoop.__del__" on stderr). Runs in parallel, which varies the timing."""
    current = tmp_path / "registries.yaml"
    current.write_text("configs:\n  z.example:5000:\n    auth: {username: u, password: p}\n")
    command = [sys.executable, "-m", "components", "render", "dev", "--node-state", f"192.0.2.11={current}",
               "--stack-dir", str(STACK_DIR)]

    def once(_: int) -> tuple[int, bytes, bytes]:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, timeout=120)
        return done.returncode, done.stdout, done.stderr

    with ThreadPoolExecutor(max_workers=4) as pool:
        runs = list(pool.map(once, range(16)))
    code, stdout, stderr = runs[0]
    assert code == 0, stderr.decode()
    assert b"Exception ignored" not in stderr and b"Traceback" not in stderr, stderr.decode()
    assert b"rendered with a placeholder" in stderr and b"dev-node-192.0.2.11:" in stdout
    for other in runs[1:]:
        assert other == runs[0], (other[2] or other[1]).decode()


def test_a_render_closes_every_event_loop_it_made() -> None:
    import asyncio
    import gc

    def open_loops() -> set[int]:
        gc.collect()
        return {id(o) for o in gc.get_objects() if isinstance(o, asyncio.AbstractEventLoop) and not o.is_closed()}

    # Other tests in this worker may have left loops of their own: only the render's count.
    before = open_loops()
    render_stack(stack="dev", stack_dir=STACK_DIR, preview=True)
    assert open_loops() - before == set()


def test_text_shows_what_a_reviewer_needs() -> None:
    text = render("dev").stdout
    # scope-map actions in full, one per line
    assert '          - "repositories/fleet/app-b/metadata/read"' in text
    assert '          - "gateway/devship01/message/write"' in text
    # chart values shown, only the connection string masked
    values = text.split("kubernetes:helm.sh/v3:Release")[1].split("edge-registry:index:PullSecrets")[0]
    assert 'connectionString: "[secret]"' in values
    assert "httpEnabled: true" in values and "chunkSizeInMb: 1\n" in values
    assert 'storageRequest: "20Gi"' in values and "SyncTokenPassword" not in text
    # integers as integers
    assert "timeout: 600\n" in values and "600.0" not in text
    # resource options
    assert "options: deleteBeforeReplace" in values
    assert 'options: deleteBeforeReplace, replaceOnChanges=["mode", "parent.syncProperties.tokenId"]' in text
    assert "options: retainOnDelete" in text
    # the command's connection: host, port and user shown, the key masked
    node = text.split("dev-node-192.0.2.10-apply")[1]
    assert 'host: "192.0.2.10"' in node and 'privateKey: "[secret]"' in node and 'user: "ubuntu"' in node
    assert "perDialTimeout: 5" in node and "dialErrorLimit: 3" in node


def test_options_show_ignore_changes_for_a_node_that_cannot_be_read_at_preview() -> None:
    """A node that does not answer keeps its command's stored inputs: the text says so."""
    fakes = CloudFakes(node_state={"192.0.2.10": NodeReadFailure("192.0.2.10", "cannot connect: timed out", True)})
    text = format_tree(render_stack(stack="dev", stack_dir=STACK_DIR, preview=True, fakes=fakes))
    node = text.split("command:remote:Command  dev-node-192.0.2.10-apply\n")[1].split("edge-registry:index:")[0]
    assert 'options: ignoreChanges=["addPreviousOutputInEnv", "connection", "create", "delete", ' in node
    assert '"stdin", "triggers", "update"]' in node
    other = text.split("command:remote:Command  dev-node-192.0.2.11-apply\n")[1].split("\n\n")[0]
    assert "ignoreChanges" not in other


def test_options_show_ignore_changes_and_retain_for_a_gone_node(tmp_path: Path) -> None:
    stack = yaml.safe_load(stack_file().read_text())
    stack["config"]["edge-registry:nodes"][1]["gone"] = True
    site_variant(tmp_path, "ship10", **{"edge-registry:nodes": stack["config"]["edge-registry:nodes"]})
    done = render("ship10", "--project-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    node = done.stdout.split("command:remote:Command  ship10-node-192.0.2.11-apply\n")[1].split("\n\n")[0]
    options = next(line.strip() for line in node.splitlines() if line.strip().startswith("options: "))
    assert options.startswith('options: ignoreChanges=["addPreviousOutputInEnv", "connection", ')
    assert options.endswith(", retainOnDelete") or ", retainOnDelete," in options


def test_an_empty_service_read_is_a_config_error_naming_what_was_tried() -> None:
    """The program's clean error (pulumi.RunError) is the render's exit-2 path, not a traceback."""
    with pytest.raises(ConfigError) as missing:
        render_stack(stack="dev", stack_dir=STACK_DIR, config_overrides={"serviceClusterIP": None},
                     fakes=CloudFakes(service_missing=True))
    assert missing.value.problems == [
        "edge-registry:serviceName: no Service connected-registry/devship01 (namespace/name) after the chart was "
        "installed: set edge-registry:serviceName to the chart's Service, or pin edge-registry:serviceClusterIP"
    ]


def test_a_first_install_preview_skips_the_service_read() -> None:
    """No serviceClusterIP and no release yet: the lookup waits for the release's id, so the
    render (like the engine) skips it and the endpoint is known after apply."""
    result = render_stack(stack="dev", stack_dir=STACK_DIR, preview=True, config_overrides={"serviceClusterIP": None},
                          fakes=CloudFakes(release_new=True))
    assert result.one("kubernetes:core/v1:Service").options == {"read": KNOWN_AFTER_APPLY}
    assert result.outputs["registryEndpoint"] == KNOWN_AFTER_APPLY
    installed = render_stack(stack="dev", stack_dir=STACK_DIR, preview=True, config_overrides={"serviceClusterIP": None})
    assert installed.one("kubernetes:core/v1:Service").options == {"read": "connected-registry/devship01"}


def test_the_render_refuses_a_stack_naming_a_node_s_file_another_stack_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from components.preview import cli
    from tests.fixture_stacks import STACK_DIR

    shutil.copy(STACK_DIR / "Pulumi.dev.yaml", tmp_path / "Pulumi.dev.yaml")
    assert cli.main(["dev", "--stack-dir", str(tmp_path)]) == 0
    capsys.readouterr()
    # ship07 takes over dev's first node without marking it gone in dev.
    document = yaml.safe_load((tmp_path / "Pulumi.dev.yaml").read_text())
    document["config"]["edge-registry:connectedRegistryName"] = "ship07"
    (tmp_path / "Pulumi.ship07.yaml").write_text(yaml.safe_dump(document))
    assert cli.main(["dev", "--stack-dir", str(tmp_path)]) == 2
    _out, err = capsys.readouterr()
    assert err.splitlines()[0] == "stack dev names a node's file another stack names too:"
    assert "is named by stacks dev, ship07" in err
