"""NodeMirror against a real OpenSSH server: the very commands and stdin the resources carry.

Each run evaluates the NodeMirror component under Pulumi mocks after the program's own reader
read the node over SSH (tests/node_engine.py); the captured ``-apply`` ``create`` text then runs
with its stdin over SSH, and ``destroy`` runs the stored ``delete`` text with the stored stdin —
exactly what pulumi-command would do. The node is 127.0.0.1 (tests/sshd.py), the file a temp
path, the service manager a fake that records restarts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pulumi
import pytest

from components.nodes import mirror as nm
from components.nodes import registries_yaml as ry
from components.nodes.payload import NodeRead, apply_stdin, decode_apply_stdin, parse_read_output, render_read_output
from components.nodes.read import NodeReadFailure
from components.preview.fakes import FakeNodeReader
from tests.node_engine import ENDPOINT, Node, evaluate, node_dir
from tests.sshd import SshServer, running_server

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


def _fake_reader(state: dict[str, bytes | None]) -> FakeNodeReader:
    return FakeNodeReader(state)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    yield from running_server(tmp_path_factory)


@pytest.fixture
def node(server: SshServer) -> Iterator[Node]:
    server.reset_service()
    # root's own directories (tests/node_engine.py node_dir): the scripts refuse one under /tmp
    with node_dir("k3s") as root:
        yield Node(server, root / "k3s" / "registries.yaml")


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
    # its owner and mode are kept, without any access for others: it now holds our credentials
    info = node.path.stat()
    assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (0o640, 0, 0)
    assert len(node.server.restarts()) == 1


def test_reapply_writes_nothing_and_restarts_nothing(node: Node) -> None:
    node.path.write_bytes(FOREIGN)
    assert node.up().returncode == 0
    before = node.path.stat()
    sidecar_before = {p.name: p.stat().st_mtime_ns for p in node.side.iterdir()}
    for _ in range(2):
        assert node.up().stdout == "(no change: not run)"  # the same payload: no update at all
        # and running the script again anyway (a forced update) writes nothing either
        result = node.run_apply(node.plan())
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
    # The site CA file is tests/test_node_https.py's; this is the skip-verify switch.
    result = node.up(scheme="https", insecure_skip_verify=True)
    assert result.returncode == 0, result.stderr
    document = node.document()
    assert document["mirrors"][ENDPOINT]["endpoint"] == [f"https://{ENDPOINT}"]
    assert document["configs"][ENDPOINT] == {"tls": {"insecure_skip_verify": True}}


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
        # the program-time read goes through sudo -n too, as the write does
        assert any(c.startswith("sudo -n /bin/sh -c <script> edge-registry-read ") for c in calls), calls


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
    assert node.server.ssh(read).stdout.removesuffix("\n") == render_read_output(FOREIGN)
    node.path.unlink()
    assert node.server.ssh(read).stdout.removesuffix("\n") == render_read_output(None)
    node.path.write_bytes(b"")
    assert node.server.ssh(read).stdout.removesuffix("\n") == render_read_output(b"")


def test_read_output_after_an_apply_reports_the_record(node: Node) -> None:
    node.path.write_bytes(FOREIGN)
    assert node.up().returncode == 0
    stdout = node.server.ssh(nm.read_command(node.args())).stdout.removesuffix("\n")
    read = parse_read_output(stdout)
    assert read.recorded and read.original == FOREIGN
    assert read.owned == (("mirrors", ENDPOINT),)
    assert read.written is not None and read.content is not None
    assert read.applied_expected == hashlib.sha256(FOREIGN).hexdigest() and read.applied_pending is False
    assert read.applied_generation == 1  # the first apply that was not a converged re-emission
    assert stdout == render_read_output(
        read.content, recorded=True, original=FOREIGN, written=read.written, owned=read.owned,
        applied_expected=read.applied_expected, applied_generation=1,
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


def test_no_secret_in_any_command_string() -> None:
    evaluation = evaluate([_args()], _fake_reader({"10.0.0.5": FOREIGN}))
    inputs = evaluation.mocks.inputs
    assert "node0-read" not in inputs  # nodes are read at program time, not by a resource
    for key in ("create", "update", "delete"):
        text = inputs["node0-apply"].get(key) or ""
        assert SECRET_PASSWORD not in text and "PRIVATE KEY" not in text
    assert "environment" not in inputs["node0-apply"]
    # The file (with the password) reaches the node only on stdin, as a secret.
    assert "4dabf18193072939515e22adb298388d" in evaluation.mocks.raw["node0-apply"]["stdin"]
    plan = decode_apply_stdin(inputs["node0-apply"]["stdin"])
    assert ry.parse(plan.content)["configs"]["mirror.example.com:5000"]["auth"]["password"] == SECRET_PASSWORD
    assert plan.restore == FOREIGN
    assert plan.expected == hashlib.sha256(FOREIGN).hexdigest()
    assert plan.owned == (("mirrors", ENDPOINT),)
    # The diagnostic names keys only.
    assert evaluation.summaries == [f"node 10.0.0.5: /etc/rancher/k3s/registries.yaml: mirrors[{ENDPOINT}] added; k3s-agent restarts"]
    assert all(SECRET_PASSWORD not in message for _, message in evaluation.logs)


def test_apply_stdin_is_secret_and_the_dial_limits_are_low() -> None:
    evaluation = evaluate([_args()], _fake_reader({}))
    request = evaluation.monitor.requests["node0-apply"]
    assert "stdin" in request.additionalSecretOutputs
    apply = evaluation.mocks.inputs["node0-apply"]
    assert apply["addPreviousOutputInEnv"] is False
    assert apply["connection"]["dialErrorLimit"] == nm.DIAL_ERROR_LIMIT == 3
    assert apply["connection"]["perDialTimeout"] == nm.PER_DIAL_TIMEOUT == 5
    assert request.deleteBeforeReplace is True


def test_every_node_command_has_custom_timeouts_above_the_scripts_own_bound() -> None:
    # W = restartTimeoutSeconds. apply.sh/destroy.sh wait for the lock at most 2W + 60 s, then a
    # restart (OpenRC: at most W) and a wait of at most W, and on failure the rollback does both
    # again: 6W + 60 s. The engine's limit is above it, so the script rolls back and reports first.
    evaluation = evaluate(
        [_args(restart_timeout_seconds=120), _args("10.0.0.6", restart_timeout_seconds=30),
         _args("10.0.0.7", gone=True, ssh_private_key=None)],
        _fake_reader({}),
    )
    for name, wait in (("node0-apply", 120), ("node1-apply", 30), ("node2-apply", 120)):
        timeouts = evaluation.monitor.requests[name].customTimeouts
        limit = nm.command_timeout_seconds(wait)
        assert (timeouts.create, timeouts.update, timeouts.delete) == (f"{limit}s",) * 3, name
        assert limit > 6 * wait + 60 + nm.DIAL_ERROR_LIMIT * nm.PER_DIAL_TIMEOUT
    assert nm.command_timeout_seconds(120) == 855  # the default: 14 min 15 s


def test_gone_node_is_declared_but_never_contacted() -> None:
    reader = _fake_reader({})
    evaluation = evaluate([_args(), _args("10.0.0.6", gone=True, ssh_private_key=None)], reader)
    inputs = evaluation.mocks.inputs["node1-apply"]
    assert not {"create", "update", "delete", "stdin"} & inputs.keys()
    request = evaluation.monitor.requests["node1-apply"]
    assert request.retainOnDelete is True
    assert {"create", "delete", "stdin", "triggers", "connection"} <= set(request.ignoreChanges)
    assert reader.reads == [["10.0.0.5"]]


def test_unreadable_node_at_preview_warns_and_plans_no_write() -> None:
    down = NodeReadFailure("10.0.0.6", "cannot connect to 10.0.0.6:22: timed out", True)
    reader = _fake_reader({"10.0.0.6": down})  # type: ignore[dict-item]
    evaluation = evaluate([_args(), _args("10.0.0.6")], reader, preview=True)
    warnings = [m for level, m in evaluation.logs if level == "warn"]
    assert any(m.startswith("node 10.0.0.6: cannot read") and "no write is planned" in m for m in warnings)
    inputs = evaluation.mocks.inputs["node1-apply"]
    assert not {"create", "update", "delete", "stdin"} & inputs.keys()
    request = evaluation.monitor.requests["node1-apply"]
    assert {"create", "delete", "stdin", "triggers", "connection"} <= set(request.ignoreChanges)
    assert not request.retainOnDelete  # it is not gone: a later destroy still restores it
    assert "stdin" in evaluation.mocks.inputs["node0-apply"]  # the reachable node is planned as usual


def test_unreadable_node_at_up_stops_naming_the_node_and_the_way_out() -> None:
    down = NodeReadFailure("10.0.0.6", "cannot connect to 10.0.0.6:22: timed out", True)
    with pytest.raises(Exception, match=r"node 10\.0\.0\.6: cannot read .*Nothing was changed.*gone: true"):
        evaluate([_args("10.0.0.6")], _fake_reader({"10.0.0.6": down}), preview=False)  # type: ignore[dict-item]


def test_nodes_roll_one_after_another() -> None:
    evaluation = evaluate([_args("10.0.0.5"), _args("10.0.0.6")], _fake_reader({}))
    second = evaluation.monitor.requests["node1-apply"]
    assert [u for u in second.dependencies if u.endswith("node0-apply")], list(second.dependencies)


def test_missing_host_key_warns_once_per_node() -> None:
    evaluation = evaluate(
        [_args("10.0.0.5", host_key=None), _args("10.0.0.6", host_key=None), _args("10.0.0.7")], _fake_reader({})
    )
    warnings = [m for level, m in evaluation.logs if level == "warn"]
    assert sorted(w.split(":")[0] for w in warnings) == ["node 10.0.0.5", "node 10.0.0.6"]


def test_sudo_is_used_for_a_non_root_user() -> None:
    command = nm.apply_command(_args(user="ubuntu"))
    assert command.startswith("sudo -n true >/dev/null 2>&1 || {")
    assert "exec sudo -n /bin/sh -c " in command
    assert not nm.apply_command(_args(user="root")).startswith("sudo")
    assert nm.read_command(_args(user="ubuntu")).startswith("sudo -n true")


def test_rke2_path_override_reaches_the_scripts() -> None:
    args = _args(path="/etc/rancher/rke2/registries.yaml", unit="rke2-agent")
    assert nm.read_command(args).endswith("' edge-registry-read /etc/rancher/rke2/registries.yaml")
    tail = " /etc/rancher/rke2/registries.yaml rke2-agent auto 120"
    assert nm.apply_command(args).endswith("' edge-registry-apply" + tail)
    assert nm.destroy_command(args).endswith("' edge-registry-destroy" + tail)


def test_fake_reader_answers_as_an_untouched_node() -> None:
    reader = _fake_reader({"10.0.0.5": FOREIGN})
    reads = reader.read_nodes([nm.node_target(_args("10.0.0.5")), nm.node_target(_args("10.0.0.6"))], None)
    assert reads["10.0.0.5"] == NodeRead(content=FOREIGN, recorded=False)
    assert reads["10.0.0.6"] == NodeRead(content=None, recorded=False)


def test_a_node_converged_before_the_generation_line_keeps_its_payload() -> None:
    """A record without a generation (an older version converged the node) is re-emitted as it
    is, so the upgrade changes no payload; a node that is not converged gets generation 1."""
    from components.nodes.plan import plan_node

    merged = ry.dump(ry.merge(ry.parse(FOREIGN), ours(), []))
    sha = hashlib.sha256(FOREIGN).hexdigest()
    node = {"host": "10.0.0.5", "path": "/etc/rancher/k3s/registries.yaml", "endpoint": ENDPOINT, "scheme": "http"}
    old = NodeRead(content=merged, recorded=True, original=FOREIGN, written=hashlib.sha256(merged).hexdigest(),
                   owned=(("mirrors", ENDPOINT),), applied_expected=sha)
    stdin = apply_stdin(plan_node(old, **node))
    assert "\ngeneration " not in stdin and f"\nexpected {sha}\n" in stdin
    edited = NodeRead(content=FOREIGN, recorded=True, original=FOREIGN, written=old.written, owned=old.owned,
                      applied_expected=sha)
    assert decode_apply_stdin(apply_stdin(plan_node(edited, **node))).generation == 1
    later = dataclasses.replace(edited, applied_generation=7)
    assert decode_apply_stdin(apply_stdin(plan_node(later, **node))).generation == 8


def test_render_is_deterministic() -> None:
    first = evaluate([_args()], _fake_reader({"10.0.0.5": FOREIGN}))
    second = evaluate([_args()], _fake_reader({"10.0.0.5": FOREIGN}))
    assert first.mocks.inputs == second.mocks.inputs


def test_args_are_validated() -> None:
    with pytest.raises(ValueError, match="role"):
        _args(role="worker")
    with pytest.raises(ValueError, match="ssh_private_key"):
        _args(ssh_private_key=None)
    with pytest.raises(ValueError, match="service_manager"):
        _args(service_manager="upstart")


def test_scripts_are_posix_sh() -> None:
    scripts = Path(nm.__file__).with_name("scripts")
    for script in sorted(scripts.glob("*.sh")):
        subprocess.run(["sh", "-n", str(script)], check=True)
        assert os.path.getsize(script) < 8000


def test_the_installed_preview_read_script_speaks_the_programs_read_protocol(tmp_path: Path) -> None:
    """The read account's script (components/nodes/read_account.py) is read.sh: same output format."""
    from components.nodes.read_account import install_script

    script = tmp_path / "read-registries"
    script.write_text(install_script())
    target = tmp_path / "registries.yaml"
    target.write_bytes(FOREIGN)
    done = subprocess.run(["sh", str(script), str(target)], capture_output=True, text=True, check=True)
    assert parse_read_output(done.stdout.removesuffix("\n")) == NodeRead(content=FOREIGN, recorded=False)
