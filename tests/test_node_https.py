"""The node side of https over the real sshd: the site CA beside registries.yaml, the login-server
mirror and the client token's credentials, with the same write rules as the file itself.

Uses tests/node_engine.py: the program's reader reads the node, NodeMirror declares the very
command and stdin, the engine's diff decides whether it runs; OpenSSH on 127.0.0.1 with a fake
service manager that records restarts.
"""

from __future__ import annotations

import dataclasses
import stat
from collections.abc import Iterator, Sequence
from typing import Any

import pulumi
import pytest

from components.nodes import mirror as nm
from components.nodes import payload
from components.nodes import plan as node_plan
from components.nodes import registries_yaml as ry
from components import tls
from components.nodes.commands import read_command
from components.nodes.read import NodeTarget, ReadResult, SshNodeReader
from components.preview.fakes import FakeNodeReader
from tests import test_node_ssh as harness
from tests.sshd import NodePath, SshServer
from tests.node_engine import Node, evaluate, node_dir
from tests.test_node_ssh import FOREIGN

#: The module-scoped sshd of tests/test_node_ssh.py, shared.
server = harness.server

ENDPOINT = "10.43.200.200:443"
LOGIN_SERVER = "contosoedge.azurecr.io"
USER = "ship01-client-token"
PASSWORD = "cl1ent-t0ken-pa55word"  # noqa: S105 - a test value that must never leak


def ca_pem(name: str) -> str:
    return tls.issue_ca(f"edge-registry {name} CA", 3650, tls.parse_time("2027-01-01T00:00:00Z")).certificate_pem


CA_ONE, CA_TWO = ca_pem("one"), ca_pem("two")


def https(ca: str | None = CA_ONE, **overrides: Any) -> dict[str, Any]:
    """NodeMirrorArgs overrides of an https site with the login-server mirror."""
    return {"scheme": "https", "ca_certificate": ca, "login_server": LOGIN_SERVER,
            "username": USER, "password": PASSWORD, **overrides}


@pytest.fixture
def node(server: SshServer) -> Iterator[Node]:
    server.reset_service()
    # root's own directories (tests/node_engine.py node_dir): the scripts refuse one under /tmp
    with node_dir("k3s") as root:
        yield Node(server, root / "k3s" / "registries.yaml")


def ca_file(node: Node) -> NodePath:
    return node.path.parent / node_plan.CA_FILE_NAME


def test_first_apply_installs_the_ca_and_points_the_file_at_it(node: Node) -> None:
    result = node.up(ENDPOINT, **https())
    assert result.returncode == 0, result.stderr
    ca = ca_file(node)
    assert ca.read_bytes().decode() == CA_ONE
    info = ca.stat()
    assert stat.S_IMODE(info.st_mode) == 0o644 and (info.st_uid, info.st_gid) == (0, 0)
    document = node.document()
    ry.validate(document)
    assert document["mirrors"] == {
        ENDPOINT: {"endpoint": [f"https://{ENDPOINT}"]},
        LOGIN_SERVER: {"endpoint": [f"https://{ENDPOINT}"]},
    }
    assert document["configs"] == {
        ENDPOINT: {"auth": {"username": USER, "password": PASSWORD}, "tls": {"ca_file": str(ca)}}
    }
    assert stat.S_IMODE(node.path.stat().st_mode) == 0o600  # it holds the password
    assert node.server.restarts() == ["systemctl restart --no-block k3s"]


def test_reapply_writes_nothing_and_restarts_nothing(node: Node) -> None:
    assert node.up(ENDPOINT, **https()).returncode == 0
    ca, before = ca_file(node), (ca_file(node).stat(), node.path.stat())
    # A converged https node previews as no change: the CA is part of a stable payload.
    assert node.preview(ENDPOINT, **https()) == "same"
    assert node.last is not None and node.last.summaries == [f"node 127.0.0.1: {node.path} unchanged; k3s not restarted"]
    assert node.up(ENDPOINT, **https()).stdout == "(no change: not run)"
    # And the script itself, run again with the same payload, writes and restarts nothing.
    result = node.run_apply(node.last_apply)
    assert result.returncode == 0, result.stderr
    assert "unchanged; k3s not restarted" in result.stdout
    after = (ca.stat(), node.path.stat())
    assert [(s.st_ino, s.st_mtime_ns) for s in after] == [(s.st_ino, s.st_mtime_ns) for s in before]
    assert len(node.server.restarts()) == 1


def test_a_ca_change_replaces_the_ca_file_and_restarts_once(node: Node) -> None:
    assert node.up(ENDPOINT, **https(CA_ONE)).returncode == 0
    file_before = node.content()
    assert node.preview(ENDPOINT, **https(CA_TWO)) == "update"
    assert node.last is not None and node.last.summaries == [
        f"node 127.0.0.1: {node.path} unchanged; CA file {ca_file(node)} replaced; k3s restarts"
    ]
    result = node.up(ENDPOINT, **https(CA_TWO))
    assert result.returncode == 0, result.stderr
    assert ca_file(node).read_bytes().decode() == CA_TWO
    assert node.content() == file_before  # same path in ca_file: registries.yaml unchanged
    assert len(node.server.restarts()) == 2
    assert node.up(ENDPOINT, **https(CA_TWO)).returncode == 0
    assert len(node.server.restarts()) == 2


@pytest.mark.parametrize("damage", ["deleted", "overwritten"])
def test_a_ca_file_deleted_or_edited_on_the_node_is_put_back_with_one_restart(node: Node, damage: str) -> None:
    assert node.up(ENDPOINT, **https()).returncode == 0
    ca, file_before = ca_file(node), node.content()
    what = "installed again (it was deleted on the node)" if damage == "deleted" else "replaced"
    # Twice: the second time the node is back in the very state the first repair started from.
    for repairs in (1, 2):
        if damage == "deleted":
            ca.unlink()
        else:
            ca.write_bytes(b"someone else's bytes\n")
        assert node.preview(ENDPOINT, **https()) == "update"
        assert node.last is not None
        assert node.last.summaries == [f"node 127.0.0.1: {node.path} unchanged; CA file {ca} {what}; k3s restarts"]
        result = node.up(ENDPOINT, **https())
        assert result.returncode == 0, result.stderr
        assert ca.read_bytes().decode() == CA_ONE
        info = ca.stat()
        assert stat.S_IMODE(info.st_mode) == 0o644 and (info.st_uid, info.st_gid) == (0, 0)
        assert node.content() == file_before
        assert len(node.server.restarts()) == 1 + repairs  # the first up, then one per repair
        for _ in range(2):
            assert node.preview(ENDPOINT, **https()) == "same"
            assert node.last.summaries == [f"node 127.0.0.1: {node.path} unchanged; k3s not restarted"]
    # destroy still removes the CA and gives back the original (no file)
    assert node.destroy().returncode == 0
    assert not ca.exists() and node.content() is None


def test_a_password_change_rewrites_the_file_and_restarts_once(node: Node) -> None:
    # Rotation of the client password reaches the node's configs[endpoint].auth.
    assert node.up(ENDPOINT, **https()).returncode == 0
    assert node.up(ENDPOINT, **https(password="r0tated-pa55word")).returncode == 0
    assert node.document()["configs"][ENDPOINT]["auth"]["password"] == "r0tated-pa55word"
    assert len(node.server.restarts()) == 2


def test_a_failed_start_puts_the_previous_ca_and_file_back(node: Node) -> None:
    assert node.up(ENDPOINT, **https(CA_ONE)).returncode == 0
    file_before = node.content()
    node.server.fail_next_starts(1)
    result = node.up(ENDPOINT, **https(CA_TWO, password="n3w-pa55word"))
    assert result.returncode != 0
    assert ca_file(node).read_bytes().decode() == CA_ONE and node.content() == file_before


@pytest.mark.parametrize("found", [None, b"someone else's CA\n"])
def test_a_failed_switch_to_http_keeps_the_ca_edge_registrys_so_a_retry_and_destroy_remove_it(
    node: Node, found: bytes | None
) -> None:
    node.path.write_bytes(FOREIGN)
    if found is not None:
        ca_file(node).write_bytes(found)  # a file edge-registry found at the CA path comes back in the end
    assert node.up(ENDPOINT, **https()).returncode == 0
    http = {"scheme": "http", "username": USER, "password": PASSWORD}
    node.server.fail_next_starts(1)
    failed = node.up("10.43.200.200:80", **http)
    assert failed.returncode != 0 and "k3s is active again" in failed.stderr
    assert ca_file(node).read_bytes().decode() == CA_ONE  # rolled back with the file ...
    assert (node.side / "ca-file").read_bytes().decode().strip() == str(ca_file(node))  # ... and still ours
    assert not (node.side / "ca-record").exists()
    assert node.preview("10.43.200.200:80", **http) == "update"
    assert node.last is not None and node.last.summaries[0].endswith("CA file removed; k3s restarts")
    result = node.up("10.43.200.200:80", **http)
    assert result.returncode == 0, result.stderr
    assert (ca_file(node).read_bytes() if ca_file(node).exists() else None) == found
    assert node.preview("10.43.200.200:80", **http) == "same"
    result = node.destroy()
    assert result.returncode == 0, result.stderr
    assert node.content() == FOREIGN and not node.side.exists()
    assert (ca_file(node).read_bytes() if ca_file(node).exists() else None) == found


class OldReadScript(SshNodeReader):
    """Reads as a node whose installed read script (previewNodeUser) predates the ``ca`` line."""

    def read_nodes(
        self, targets: Sequence[NodeTarget], private_key: str | None, use_agent: bool = False
    ) -> dict[str, ReadResult]:
        old = [dataclasses.replace(t, command=f"{read_command(t.path, t.user)} | sed '/^ca /d'") for t in targets]
        return super().read_nodes(old, private_key, use_agent)


def test_a_read_script_older_than_the_ca_line_does_not_claim_a_restart(node: Node) -> None:
    assert node.up(ENDPOINT, **https()).returncode == 0
    current = node.reader
    node.reader = OldReadScript(connect_timeout=5)
    ca, unchecked = ca_file(node), "not checked by this preview (the node's installed read script predates"
    # converged: no change, and the line says the CA was not checked, not that k3s restarts
    for _ in range(2):
        assert node.preview(ENDPOINT, **https()) == "same"
        assert node.last is not None
        (line,) = node.last.summaries
        assert line.startswith(f"node 127.0.0.1: {node.path} unchanged; CA file {ca} {unchecked}")
        assert line.endswith("'pulumi up' writes it and restarts k3s only if it differs")
    # a new CA in the config is a change, and 'pulumi up' (the current read) does what the line says
    assert node.preview(ENDPOINT, **https(CA_TWO)) == "update"
    assert node.last.summaries[0].endswith("'pulumi up' writes it and restarts k3s only if it differs")
    node.reader = current
    assert node.up(ENDPOINT, **https(CA_TWO)).returncode == 0
    assert ca.read_bytes().decode() == CA_TWO and len(node.server.restarts()) == 2


def test_destroy_removes_the_ca_and_restores_the_original_bytes(node: Node) -> None:
    node.path.write_bytes(FOREIGN)
    assert node.up(ENDPOINT, **https()).returncode == 0
    node.server.reset_service()
    result = node.destroy()
    assert result.returncode == 0, result.stderr
    assert node.content() == FOREIGN
    assert not ca_file(node).exists() and not node.side.exists()
    assert node.server.restarts() == ["systemctl restart --no-block k3s"]


def test_destroy_puts_back_a_file_it_found_at_the_ca_path(node: Node) -> None:
    ca_file(node).write_bytes(b"someone else's CA\n")
    assert node.up(ENDPOINT, **https()).returncode == 0
    assert ca_file(node).read_bytes().decode() == CA_ONE
    assert node.destroy().returncode == 0
    assert ca_file(node).read_bytes().decode() == "someone else's CA\n"


def test_moving_the_site_to_http_removes_the_ca(node: Node) -> None:
    assert node.up(ENDPOINT, **https()).returncode == 0
    result = node.up("10.43.200.200:80", scheme="http", username=USER, password=PASSWORD)
    assert result.returncode == 0, result.stderr
    assert not ca_file(node).exists()
    assert node.document()["configs"] == {"10.43.200.200:80": {"auth": {"username": USER, "password": PASSWORD}}}


def test_the_password_and_the_ca_travel_on_stdin_only(node: Node) -> None:
    apply = node.plan(ENDPOINT, **https())
    for command in (apply["create"], apply["delete"]):
        assert PASSWORD not in command and "BEGIN CERTIFICATE" not in command
    plan = payload.decode_apply_stdin(apply["stdin"])
    assert plan.ca == CA_ONE.encode() and plan.ca_file == str(ca_file(node))


def test_the_login_server_mirror_is_a_switch() -> None:
    read = payload.parse_read_output(payload.render_read_output(None))
    plan = node_plan.plan_node(read, host="10.0.0.5", path="/etc/rancher/k3s/registries.yaml", endpoint=ENDPOINT,
                               scheme="https", ca_certificate=CA_ONE, username=USER, password=PASSWORD)
    assert list(plan.document["mirrors"]) == [ENDPOINT]
    assert plan.document["configs"][ENDPOINT]["auth"] == {"username": USER, "password": PASSWORD}


@pytest.mark.parametrize("path", ["/etc/rancher/k3s/registries.yaml", "/etc/rancher/rke2/registries.yaml"])
def test_the_ca_goes_beside_the_file(path: str) -> None:
    assert node_plan.ca_file_path(path) == path.rsplit("/", 1)[0] + "/edge-registry-ca.crt"


# --------------------------------------------------------------------------- a preview that cannot see every value


def _first_deploy_args(**overrides: Any) -> nm.NodeMirrorArgs:
    values: dict[str, Any] = dict(
        host="10.0.0.5", role="agent", unit="k3s-agent", endpoint=ENDPOINT, ssh_private_key=pulumi.Output.secret("k"),
        host_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeFakeFakeFakeFakeFakeFakeFakeFakeFake",
        **https(password=pulumi.Output.secret(PASSWORD)),
    )
    values.update(overrides)
    return nm.NodeMirrorArgs(**values)


def test_a_preview_that_cannot_see_the_endpoint_ca_and_password_still_says_what_the_node_gets() -> None:
    """A first deploy: the Service's address, the issued CA and the client password are unknown
    in the preview, so the payload is; the node's line is logged anyway, planned with placeholders."""
    evaluation = evaluate(
        [_first_deploy_args()], FakeNodeReader({"10.0.0.5": FOREIGN}), preview=True,
        unknown=("endpoint", "ca_certificate", "password"),
    )
    ca = node_plan.ca_file_path("/etc/rancher/k3s/registries.yaml")
    line = (
        f"node 10.0.0.5: /etc/rancher/k3s/registries.yaml: mirrors[{LOGIN_SERVER}] added, "
        f"mirrors[<endpoint>] added, configs[<endpoint>] added, CA file {ca} installed; k3s-agent restarts "
        "(planned with placeholders for the endpoint, the site CA and the client credentials, which this preview "
        "cannot see: entries using a placeholder show as changed)"
    )
    assert evaluation.summaries == [line]
    assert ("info", line) in evaluation.logs  # on the node's component (tests/node_engine.py checks)
    assert not isinstance(evaluation.mocks.inputs["node0-apply"].get("stdin"), str)  # unknown, not planned
    assert all(PASSWORD not in message and "BEGIN CERTIFICATE" not in message for _, message in evaluation.logs)


def test_a_preview_that_cannot_see_a_rotated_password_names_the_entry_that_uses_it() -> None:
    evaluation = evaluate([_first_deploy_args()], FakeNodeReader({"10.0.0.5": FOREIGN}), preview=True,
                          unknown=("password",))
    (line,) = evaluation.summaries
    assert f"configs[{ENDPOINT}] added" in line and f"mirrors[{ENDPOINT}] added" in line
    assert line.endswith("k3s-agent restarts (planned with placeholders for the client credentials, which this "
                         "preview cannot see: entries using a placeholder show as changed)")
    # with every value known, the line is the plain one
    known = evaluate([_first_deploy_args()], FakeNodeReader({"10.0.0.5": FOREIGN}), preview=True)
    assert known.summaries[0].endswith("k3s-agent restarts")
