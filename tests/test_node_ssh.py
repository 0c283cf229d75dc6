"""NodeMirror against a real OpenSSH server: the very commands and stdin the resources carry.

Each ``up`` evaluates the NodeMirror component under Pulumi mocks; the mocks play
pulumi-command: the ``-read`` command's ``create`` text is run over SSH and its stdout
becomes the resource output, from which the component computes the ``-apply`` stdin. The
test then runs the captured ``-apply`` ``create`` text with that stdin over SSH, and
``destroy`` runs the stored ``delete`` text with the stored stdin — exactly what the
provider would do. The node is 127.0.0.1 (tests/sshd.py), the file a temp path, the
service manager a fake that records restarts.
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pulumi
import pytest
from pulumi.runtime.mocks import MockMonitor

from components import node_mirror as nm
from components import registries_yaml as ry
from tests.sshd import NodePath, SshServer, can_run

ENDPOINT = "10.43.0.10:80"
SECRET_PASSWORD = "s3cr3t-registry-password"  # noqa: S105 - a test value that must never leak
FOREIGN = f"""# managed by hand, keep this comment
mirrors:
  docker.io:
    endpoint:
      - "https://mirror.example.com:5000"
    rewrite:
      "^library/(.*)": "mirrored/library/$1"
configs:
  "mirror.example.com:5000":
    auth:
      username: puller
      password: {SECRET_PASSWORD}
    tls:
      ca_file: /etc/ssl/mirror-ca.pem
      insecure_skip_verify: false
""".encode()


# --------------------------------------------------------------------------- Pulumi mocks


def _unwrap(value: Any) -> Any:
    """Mock inputs with secrets unwrapped (they arrive as a signature map)."""
    if isinstance(value, dict):
        if "4dabf18193072939515e22adb298388d" in value:
            return _unwrap(value.get("value"))
        return {k: _unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    return value


class RecordingMonitor(MockMonitor):
    """Keeps every RegisterResource request (options, parent, dependencies)."""

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.requests: dict[str, Any] = {}

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        self.requests[request.name] = request
        return super().RegisterResource(request)


class CommandMocks(pulumi.runtime.Mocks):
    """Plays pulumi-command: runs ``-read`` commands with ``run_read``; records all inputs."""

    def __init__(self, run_read: Any = None) -> None:
        self.run_read = run_read
        self.inputs: dict[str, dict[str, Any]] = {}
        self.raw: dict[str, dict[str, Any]] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.raw[args.name] = dict(args.inputs)
        self.inputs[args.name] = _unwrap(dict(args.inputs))
        state = dict(args.inputs)
        if args.typ == "command:remote:Command" and args.name.endswith("-read") and self.run_read \
                and "create" in self.inputs[args.name]:  # no create text: the provider runs nothing
            state["stdout"] = self.run_read(self.inputs[args.name])
            state["stderr"] = ""
        return f"{args.name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None


def evaluate(
    nodes: list[nm.NodeMirrorArgs], run_read: Any = None
) -> tuple[CommandMocks, RecordingMonitor, list[Any]]:
    """Run a program declaring ``nodes`` (chained, rolling) under mocks; return what it registered."""
    mocks = CommandMocks(run_read)
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project="edge-registry", stack="test", preview=False, monitor=monitor)
    outputs: list[Any] = []

    @pulumi.runtime.test
    def program() -> pulumi.Output[Any]:
        previous: nm.NodeMirror | None = None
        for i, args in enumerate(nodes):
            opts = pulumi.ResourceOptions(depends_on=[previous]) if previous else None
            previous = nm.NodeMirror(f"node{i}", args, opts)
            outputs.append(previous.apply.stdin)
        return pulumi.Output.all(*[p for p in outputs])

    program()
    return mocks, monitor, outputs


# --------------------------------------------------------------------------- node harness


class Node:
    """One node (the SSH server) and one registries.yaml path on it."""

    def __init__(self, server: SshServer, path: Path) -> None:
        self.server = server
        # The scripts leave these root-owned 0600: NodePath reads them as root (sudo -n if need be).
        self.path = NodePath(path)
        self.side = NodePath(f"{path}.edge-registry")
        self.stored: dict[str, Any] | None = None  # the -apply state after the last successful run
        self.last_apply: dict[str, Any] = {}

    def args(self, endpoint: str = ENDPOINT, **overrides: Any) -> nm.NodeMirrorArgs:
        values: dict[str, Any] = dict(
            host="127.0.0.1", port=self.server.port, user=self.server.user, role="server", unit="k3s",
            path=str(self.path), host_key=self.server.host_public_key, endpoint=endpoint,
            ssh_private_key=pulumi.Output.secret(self.server.client_private_key),
            restart_timeout_seconds=2, service_manager="systemd",
        )
        values.update(overrides)
        return nm.NodeMirrorArgs(**values)

    def _run_read(self, inputs: dict[str, Any]) -> str:
        result = self.server.ssh(inputs["create"], inputs.get("stdin"))
        assert result.returncode == 0, result.stderr
        return result.stdout.removesuffix("\n")  # pulumi-command trims one newline

    def plan(self, endpoint: str = ENDPOINT, **overrides: Any) -> dict[str, Any]:
        """``pulumi up`` up to the apply: the read runs on the node; returns the -apply inputs."""
        mocks, _, _ = evaluate([self.args(endpoint, **overrides)], self._run_read)
        self.last_apply = mocks.inputs["node0-apply"]
        return self.last_apply

    def run_apply(self, apply: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        result = self.server.ssh(apply["create"], apply["stdin"])
        if result.returncode == 0:
            self.stored = apply
        return result

    def up(self, endpoint: str = ENDPOINT, **overrides: Any) -> subprocess.CompletedProcess[str]:
        """A whole ``pulumi up`` of this node."""
        return self.run_apply(self.plan(endpoint, **overrides))

    def destroy(self) -> subprocess.CompletedProcess[str]:
        """``pulumi destroy``: the stored delete text with the stored stdin."""
        assert self.stored is not None, "nothing applied yet"
        return self.server.ssh(self.stored["delete"], self.stored["stdin"])

    def content(self) -> bytes | None:
        return self.path.read_bytes() if self.path.exists() else None

    def document(self) -> dict[str, Any]:
        return ry.parse(self.content())


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    reason = can_run()
    if reason:
        if os.environ.get("EDGE_REGISTRY_REQUIRE_SERVERS"):
            pytest.fail(f"{reason}; EDGE_REGISTRY_REQUIRE_SERVERS is set")
        pytest.skip(reason)
    ssh_server = SshServer(tmp_path_factory.mktemp("sshd")).start()
    yield ssh_server
    ssh_server.stop()


@pytest.fixture
def node(server: SshServer, tmp_path: Path) -> Iterator[Node]:
    server.reset_service()
    (tmp_path / "k3s").mkdir()
    yield Node(server, tmp_path / "k3s" / "registries.yaml")
    # Root-owned files would outlive a non-root test run's temp-dir cleanup.
    NodePath(tmp_path / "k3s").remove_tree()


def ours(endpoint: str = ENDPOINT) -> dict[str, Any]:
    return ry.mirror_entries(endpoint, "http", None, False)


def without_ours(document: dict[str, Any], endpoint: str = ENDPOINT) -> dict[str, Any]:
    return ry.unmerge(document, ry.owned_keys(ours(endpoint)))


# --------------------------------------------------------------------------- apply


def test_first_apply_on_a_missing_file_writes_our_mirror_root_owned_0600(node: Node) -> None:
    result = node.up()
    assert result.returncode == 0, result.stderr
    assert node.document() == {"mirrors": {ENDPOINT: {"endpoint": [f"http://{ENDPOINT}"]}}}
    info = node.path.stat()
    assert stat.S_IMODE(info.st_mode) == 0o600
    assert (info.st_uid, info.st_gid) == (0, 0)
    assert node.server.restarts() == ["systemctl restart --no-block k3s"]
    assert (node.side / "original.absent").exists()


def test_apply_keeps_foreign_entries_and_backs_up_the_previous_file(node: Node) -> None:
    node.path.write_bytes(FOREIGN)
    node.path.chmod(0o644)
    result = node.up()
    assert result.returncode == 0, result.stderr
    assert without_ours(node.document()) == ry.parse(FOREIGN)
    assert node.document()["mirrors"][ENDPOINT] == {"endpoint": [f"http://{ENDPOINT}"]}
    assert (node.side / "backup").read_bytes() == FOREIGN
    assert (node.side / "original").read_bytes() == FOREIGN
    assert stat.S_IMODE(node.path.stat().st_mode) == 0o600
    assert len(node.server.restarts()) == 1


def test_reapply_writes_nothing_and_restarts_nothing(node: Node) -> None:
    node.path.write_bytes(FOREIGN)
    assert node.up().returncode == 0
    before = node.path.stat()
    sidecar_before = {p.name: p.stat().st_mtime_ns for p in node.side.iterdir()}
    for _ in range(2):
        result = node.up()
        assert result.returncode == 0, result.stderr
        assert "unchanged; k3s not restarted" in result.stdout
    after = node.path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert {p.name: p.stat().st_mtime_ns for p in node.side.iterdir()} == sidecar_before
    assert len(node.server.restarts()) == 1


def test_a_file_that_already_has_our_entry_keeps_its_bytes(node: Node) -> None:
    original = ry.dump(ry.merge(ry.parse(FOREIGN), ours(), [])).replace(b"mirrors:", b"# ours already\nmirrors:")
    node.path.write_bytes(original)
    result = node.up()
    assert result.returncode == 0, result.stderr
    assert node.content() == original
    assert node.server.restarts() == []


def test_endpoint_change_replaces_the_old_entry(node: Node) -> None:
    node.path.write_bytes(FOREIGN)
    assert node.up("10.43.0.10:80").returncode == 0
    result = node.up("10.43.0.99:80")
    assert result.returncode == 0, result.stderr
    mirrors = node.document()["mirrors"]
    assert "10.43.0.10:80" not in mirrors
    assert mirrors["10.43.0.99:80"] == {"endpoint": ["http://10.43.0.99:80"]}
    assert without_ours(node.document(), "10.43.0.99:80") == ry.parse(FOREIGN)
    assert len(node.server.restarts()) == 2


def test_tls_settings_add_a_configs_entry_with_a_tls_mapping(node: Node) -> None:
    result = node.up(scheme="https", ca_file="/etc/ssl/cr.pem", insecure_skip_verify=False)
    assert result.returncode == 0, result.stderr
    document = node.document()
    assert document["mirrors"][ENDPOINT]["endpoint"] == [f"https://{ENDPOINT}"]
    assert document["configs"][ENDPOINT] == {"tls": {"ca_file": "/etc/ssl/cr.pem"}}


def test_auto_service_manager_finds_systemctl(node: Node) -> None:
    result = node.up(service_manager="auto")
    assert result.returncode == 0, result.stderr
    assert node.server.restarts() == ["systemctl restart --no-block k3s"]


def test_unit_override_is_the_unit_restarted(node: Node) -> None:
    assert node.up(unit="k3s-edge", role="agent").returncode == 0
    assert node.server.restarts() == ["systemctl restart --no-block k3s-edge"]


def test_openrc_restarts_with_rc_service_and_rolls_back_too(node: Node) -> None:
    node.path.write_bytes(FOREIGN)
    assert node.up(service_manager="openrc").returncode == 0
    assert node.server.restarts() == ["rc-service k3s restart"]
    node.server.fail_next_starts(1)
    result = node.up("10.43.0.12:80", service_manager="openrc")
    assert result.returncode != 0
    assert "/var/log/k3s.log" in result.stderr  # OpenRC's k3s log is where the lines come from
    assert "10.43.0.12:80" not in node.document()["mirrors"]
    assert ENDPOINT in node.document()["mirrors"]


def test_failed_start_restores_the_previous_file_and_reports_the_unit_log(node: Node) -> None:
    node.path.write_bytes(FOREIGN)
    node.server.fail_next_starts(1)
    result = node.up()
    assert result.returncode != 0
    assert "did not become active within 2s" in result.stderr
    assert "the previous" in result.stderr and "k3s is active again" in result.stderr
    assert "FAKE-JOURNAL-MARKER" in result.stderr
    assert node.content() == FOREIGN
    assert len(node.server.restarts()) == 2
    assert "journalctl -u k3s -n 25 --no-pager" in node.server.calls()
    assert not (node.side / "restart-pending").exists()
    # Next run (the unit healthy again) applies normally.
    assert node.up().returncode == 0
    assert ENDPOINT in node.document()["mirrors"]


def test_failed_start_and_failed_rollback_say_the_unit_is_still_down(node: Node) -> None:
    node.server.fail_next_starts(2)
    result = node.up()
    assert result.returncode != 0
    assert "still not active" in result.stderr
    assert node.content() is None  # there was no file before
    assert (node.side / "restart-pending").exists()


def test_concurrent_edit_is_refused_with_what_to_run(node: Node) -> None:
    node.path.write_bytes(FOREIGN)
    apply = node.plan()  # the read happened
    edited = FOREIGN + b"  \"registry.local:5000\":\n    auth:\n      username: late\n"
    node.path.write_bytes(edited)
    result = node.run_apply(apply)
    assert result.returncode != 0
    assert "changed since edge-registry read it" in result.stderr
    assert "Run 'pulumi up' again" in result.stderr
    assert node.content() == edited
    assert node.server.restarts() == []
    # Doing what the message says merges the edit.
    assert node.up().returncode == 0
    assert node.document()["configs"]["registry.local:5000"] == {"auth": {"username": "late"}}


def test_invalid_foreign_file_is_rejected_before_anything_is_sent(node: Node) -> None:
    node.path.write_bytes(b"configs:\n  r.example:5000:\n    tls:\n      - insecure_skip_verify: true\n")
    with pytest.raises(Exception, match=r"configs\[\"r.example:5000\"\]\.tls"):
        node.up()
    assert node.server.restarts() == []
    assert not node.side.exists()


# --------------------------------------------------------------------------- destroy


def test_destroy_restores_the_original_bytes_exactly(node: Node) -> None:
    node.path.write_bytes(FOREIGN)
    assert node.up("10.43.0.10:80").returncode == 0
    assert node.up("10.43.0.11:80").returncode == 0
    node.server.reset_service()
    result = node.destroy()
    assert result.returncode == 0, result.stderr
    assert node.content() == FOREIGN
    assert not node.side.exists()
    assert node.server.restarts() == ["systemctl restart --no-block k3s"]


def test_destroy_removes_the_file_when_there_was_none(node: Node) -> None:
    assert node.up().returncode == 0
    result = node.destroy()
    assert result.returncode == 0, result.stderr
    assert not node.path.exists()
    assert not node.side.exists()


def test_destroy_refuses_when_the_file_changed_and_leaves_it_untouched(node: Node) -> None:
    node.path.write_bytes(FOREIGN)
    assert node.up().returncode == 0
    edited = node.content() + b"# edited on the node\n"  # type: ignore[operator]
    node.path.write_bytes(edited)
    node.server.reset_service()
    result = node.destroy()
    assert result.returncode != 0
    assert "was changed after edge-registry last wrote it" in result.stderr
    assert "run 'pulumi up'" in result.stderr and f"sudo rm -rf {node.side}" in result.stderr
    assert node.content() == edited
    assert node.server.restarts() == []


def test_destroy_after_a_merged_foreign_change_keeps_that_change(node: Node) -> None:
    node.path.write_bytes(FOREIGN)
    assert node.up().returncode == 0
    changed = node.document()
    changed["mirrors"]["quay.io"] = {"endpoint": ["https://quay-mirror.example"]}
    node.path.write_bytes(ry.dump(changed))
    assert node.up().returncode == 0  # what the refusal message says to run
    result = node.destroy()
    assert result.returncode == 0, result.stderr
    expected = ry.parse(FOREIGN)
    expected["mirrors"]["quay.io"] = {"endpoint": ["https://quay-mirror.example"]}
    assert node.document() == expected


def test_destroy_with_no_record_does_nothing(node: Node) -> None:
    assert node.up().returncode == 0
    stored = node.stored
    node.server.ssh_as_root(f"rm -rf {node.side}")
    node.stored = stored
    result = node.destroy()
    assert result.returncode == 0, result.stderr
    assert "nothing to undo" in result.stdout
    assert ENDPOINT in node.document()["mirrors"]


def test_destroy_retries_a_restart_that_failed(node: Node) -> None:
    node.path.write_bytes(FOREIGN)
    assert node.up().returncode == 0
    node.server.fail_next_starts(1)
    first = node.destroy()
    assert first.returncode != 0 and "run 'pulumi destroy' again" in first.stderr
    assert node.content() == FOREIGN
    second = node.destroy()
    assert second.returncode == 0, second.stderr
    assert node.content() == FOREIGN and not node.side.exists()


# --------------------------------------------------------------------------- kill -9


@pytest.mark.parametrize(
    "kill_at",
    ["original", "backup", "file", "restart"],
)
def test_kill_9_leaves_old_or_new_file_and_the_next_run_converges(node: Node, kill_at: str) -> None:
    node.path.write_bytes(FOREIGN)
    apply = node.plan()
    new = node.last_apply["stdin"]
    assert new  # the payload exists
    if kill_at == "restart":
        node.server.kill_on_restart()
    elif kill_at == "file":
        node.server.kill_on_sync(f"{node.path.parent}/.registries.yaml.edge-registry.*")
    else:
        node.server.kill_on_sync(f"{node.side}/.{kill_at}.edge-registry.*")
    killed = node.run_apply(apply)
    assert killed.returncode != 0
    assert any(c.startswith("killed at sync") for c in node.server.calls()) or kill_at == "restart"
    merged = ry.dump(ry.merge(ry.parse(FOREIGN), ours(), []))
    assert node.content() in (FOREIGN, merged)
    if kill_at == "restart":
        assert node.content() == merged and (node.side / "restart-pending").exists()
    else:
        assert node.content() == FOREIGN
    # The next pulumi up converges: new file, exactly one restart, no temp files left.
    node.server.reset_service()
    result = node.up()
    assert result.returncode == 0, result.stderr
    assert node.content() == merged
    assert node.server.restarts() == ["systemctl restart --no-block k3s"]
    leftovers = [p.name for p in [*node.path.parent.iterdir(), *node.side.iterdir()] if ".edge-registry." in p.name]
    assert leftovers == []
    # And destroy still gives back the exact original.
    assert node.destroy().returncode == 0
    assert node.content() == FOREIGN


# --------------------------------------------------------------------------- read / render


def test_read_output_is_what_the_renderer_fakes(node: Node) -> None:
    read = nm.read_command(node.args())
    node.path.write_bytes(FOREIGN)
    assert node.server.ssh(read).stdout.removesuffix("\n") == nm.render_read_output(FOREIGN)
    node.path.unlink()
    assert node.server.ssh(read).stdout.removesuffix("\n") == nm.render_read_output(None)
    node.path.write_bytes(b"")
    assert node.server.ssh(read).stdout.removesuffix("\n") == nm.render_read_output(b"")


def test_read_output_after_an_apply_reports_the_record(node: Node) -> None:
    node.path.write_bytes(FOREIGN)
    assert node.up().returncode == 0
    stdout = node.server.ssh(nm.read_command(node.args())).stdout.removesuffix("\n")
    read = nm.parse_read_output(stdout)
    assert read.recorded and read.original == FOREIGN
    assert read.owned == (("mirrors", ENDPOINT),)
    assert read.written is not None and read.content is not None
    assert stdout == nm.render_read_output(
        read.content, recorded=True, original=FOREIGN, written=read.written, owned=read.owned
    )


# --------------------------------------------------------------------------- the resources themselves (no SSH)


def _args(host: str = "10.0.0.5", **overrides: Any) -> nm.NodeMirrorArgs:
    values: dict[str, Any] = dict(
        host=host, role="agent", unit="k3s-agent", endpoint=ENDPOINT,
        ssh_private_key=pulumi.Output.secret("-----BEGIN OPENSSH PRIVATE KEY-----FAKE"),
        host_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeFakeFakeFakeFakeFakeFakeFakeFakeFake",
    )
    values.update(overrides)
    return nm.NodeMirrorArgs(**values)


def _fake_read(state: dict[str, bytes | None]) -> Any:
    def run(inputs: dict[str, Any]) -> str:
        out = nm.mock_outputs("command:remote:Command", "x-read", inputs, state)
        assert out is not None
        return str(out["stdout"])
    return run


def test_no_secret_in_any_command_string() -> None:
    mocks, _, _ = evaluate([_args()], _fake_read({"10.0.0.5": FOREIGN}))
    for resource in ("node0-read", "node0-apply"):
        for key in ("create", "update", "delete"):
            text = mocks.inputs[resource].get(key) or ""
            assert SECRET_PASSWORD not in text and "PRIVATE KEY" not in text
        assert "environment" not in mocks.inputs[resource]
    # The file (with the password) reaches the node only on stdin, as a secret.
    assert "4dabf18193072939515e22adb298388d" in mocks.raw["node0-apply"]["stdin"]
    plan = nm.decode_apply_stdin(mocks.inputs["node0-apply"]["stdin"])
    assert ry.parse(plan.content)["configs"]["mirror.example.com:5000"]["auth"]["password"] == SECRET_PASSWORD
    assert plan.restore == FOREIGN
    assert plan.expected == hashlib.sha256(FOREIGN).hexdigest()
    assert plan.owned == (("mirrors", ENDPOINT),)


def test_read_stdout_is_secret_and_not_logged_and_rerun_every_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(nm.RUN_ID_ENV, "run-1")
    mocks, monitor, _ = evaluate([_args()], _fake_read({}))
    read = monitor.requests["node0-read"]
    assert "stdout" in read.additionalSecretOutputs
    assert mocks.inputs["node0-read"]["logging"] == "none"
    assert mocks.inputs["node0-read"]["triggers"] == ["run-1"]
    assert mocks.inputs["node0-read"]["addPreviousOutputInEnv"] is False
    assert "stdin" in monitor.requests["node0-apply"].additionalSecretOutputs
    monkeypatch.setenv(nm.RUN_ID_ENV, "run-2")
    mocks, _, _ = evaluate([_args()], _fake_read({}))
    assert mocks.inputs["node0-read"]["triggers"] == ["run-2"]


def test_gone_node_is_declared_but_never_contacted() -> None:
    calls: list[str] = []

    def run_read(inputs: dict[str, Any]) -> str:
        calls.append(inputs["connection"]["host"])
        return nm.render_read_output(None)

    mocks, monitor, _ = evaluate([_args(), _args("10.0.0.6", gone=True, ssh_private_key=None)], run_read)
    for name in ("node1-read", "node1-apply"):
        assert not {"create", "update", "delete", "stdin"} & mocks.inputs[name].keys()
        request = monitor.requests[name]
        assert request.retainOnDelete is True
        assert {"create", "delete", "stdin", "triggers", "connection"} <= set(request.ignoreChanges)
    assert calls == ["10.0.0.5"]


def test_nodes_roll_one_after_another() -> None:
    _, monitor, _ = evaluate([_args("10.0.0.5"), _args("10.0.0.6")], _fake_read({}))
    second_read = monitor.requests["node1-read"]
    first_apply_urn = [u for u in second_read.dependencies if u.endswith("node0-apply")]
    assert first_apply_urn, list(second_read.dependencies)


def test_missing_host_key_warns_once_per_node(monkeypatch: pytest.MonkeyPatch) -> None:
    warnings: list[str] = []
    monkeypatch.setattr(pulumi.log, "warn", lambda msg, *a, **k: warnings.append(msg))
    evaluate([_args("10.0.0.5", host_key=None), _args("10.0.0.6", host_key=None), _args("10.0.0.7")], _fake_read({}))
    assert sorted(w.split(":")[0] for w in warnings) == ["node 10.0.0.5", "node 10.0.0.6"]


def test_sudo_is_used_for_a_non_root_user() -> None:
    command = nm.apply_command(_args(user="ubuntu"))
    assert command.startswith("sudo -n true >/dev/null 2>&1 || {")
    assert "exec sudo -n /bin/sh -c " in command
    assert not nm.apply_command(_args(user="root")).startswith("sudo")


def test_rke2_path_override_reaches_the_scripts() -> None:
    args = _args(path="/etc/rancher/rke2/registries.yaml", unit="rke2-agent")
    assert nm.read_command(args).endswith("' edge-registry-read /etc/rancher/rke2/registries.yaml")
    tail = " /etc/rancher/rke2/registries.yaml rke2-agent auto 120"
    assert nm.apply_command(args).endswith("' edge-registry-apply" + tail)
    assert nm.destroy_command(args).endswith("' edge-registry-destroy" + tail)


def test_mock_outputs_answers_only_for_our_commands() -> None:
    assert nm.mock_outputs("kubernetes:core/v1:Secret", "s", {}, {}) is None
    assert nm.mock_outputs("command:remote:Command", "c", {"create": "echo hi"}, {}) is None
    read = {"create": nm.read_command(_args()), "connection": {"host": "10.0.0.5"}}
    out = nm.mock_outputs("command:remote:Command", "n-read", read, {"10.0.0.5": FOREIGN})
    assert out is not None and nm.parse_read_output(out["stdout"]).content == FOREIGN
    missing = nm.mock_outputs("command:remote:Command", "n-read", read, {})
    assert missing is not None and nm.parse_read_output(missing["stdout"]).content is None


def test_render_is_deterministic(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(nm.RUN_ID_ENV, "fixed")
    first, _, _ = evaluate([_args()], _fake_read({"10.0.0.5": FOREIGN}))
    second, _, _ = evaluate([_args()], _fake_read({"10.0.0.5": FOREIGN}))
    assert first.inputs == second.inputs


def test_args_are_validated() -> None:
    with pytest.raises(ValueError, match="role"):
        _args(role="worker")
    with pytest.raises(ValueError, match="ssh_private_key"):
        _args(ssh_private_key=None)
    with pytest.raises(ValueError, match="service_manager"):
        _args(service_manager="upstart")


def test_scripts_are_posix_sh() -> None:
    scripts = Path(nm.__file__).with_name("node_scripts")
    for script in sorted(scripts.glob("*.sh")):
        subprocess.run(["sh", "-n", str(script)], check=True)
        assert os.path.getsize(script) < 8000


def test_a_non_root_node_user_runs_the_scripts_through_sudo(node: Node) -> None:
    """As a non-root test user (a GitHub runner) the node user is that user: the product's
    ``sudo -n`` path runs for real and still leaves a root-owned file. As root, no sudo at all."""
    result = node.up()
    assert result.returncode == 0, result.stderr
    info = node.path.stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (0, 0, 0o600)
    calls = node.server.sudo_calls()
    if node.server.user == "root":
        assert calls == []
    else:
        assert "sudo -n true" in calls
        assert any(c.startswith("sudo -n /bin/sh -c <script> edge-registry-apply ") for c in calls), calls
