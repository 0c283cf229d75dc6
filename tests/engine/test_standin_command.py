"""The command provider's STAND-IN (tests/engine/standin/command.py) against the suite's real sshd.

Fast part: the plugin as the engine starts it (a subprocess printing its port), driven over gRPC
with the SDK's ``ResourceProviderStub``, its diagnostics received by a fake ``pulumirpc.Engine``.
What each test asserts is what pulumi-command 1.2.1 does (the module's docstring cites where).
Engine part: a tiny project with one ``remote.Command`` run by the real CLI (``scripts/engine
run``), skipped unless the engine is built, as test_inline_smoke.py is.

sshd (tests/sshd.py) runs as root with root as the node user, or as the non-root user running the
tests with that user as the node user: the commands here only touch the test's own temp files.
"""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from google.protobuf import empty_pb2
from pulumi.runtime.proto import engine_pb2_grpc, provider_pb2, provider_pb2_grpc

from tests.engine.site_harness import engine_bin
from tests.engine.standin.plugin import UNKNOWN, is_secret, plain, secret, to_dict, to_struct
from tests.sshd import SSHD, SshServer, can_run

ROOT = Path(__file__).resolve().parents[2]
ENGINE = ROOT / "scripts" / "engine"
TOKEN = "command:remote:Command"
URN = f"urn:pulumi:test::standin::{TOKEN}::node-127.0.0.1-apply"
KIND = provider_pb2.PropertyDiff.Kind
# Markers that must never reach a diagnostic.
STDIN = "payload-SECRET-stdin-6f1c"
ENV_VALUE = "value-SECRET-env-93ab"

pytestmark = pytest.mark.skipif(can_run() is not None, reason=can_run() or "")


# --------------------------------------------------------------------------- fixtures


class FakeEngine(engine_pb2_grpc.EngineServicer):
    """Receives the plugin's ``Log`` calls (what the engine would show)."""

    def __init__(self) -> None:
        self.logs: list[Any] = []

    def Log(self, request: Any, context: Any) -> empty_pb2.Empty:
        self.logs.append(request)
        return empty_pb2.Empty()

    def messages(self) -> list[str]:
        return [log.message for log in self.logs]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    ssh_server = SshServer(tmp_path_factory.mktemp("sshd")).start()
    try:
        yield ssh_server
    finally:
        ssh_server.stop()


@pytest.fixture(scope="module")
def accept_env_port(server: SshServer) -> Iterator[int]:
    """A second sshd on the same config and keys whose AcceptEnv takes the variables these
    tests set (the suite's own sshd, like a default one, accepts none)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [SSHD, "-D", "-e", "-f", str(server.root / "sshd_config"), "-o", f"Port={port}",
         "-o", f"PidFile={server.root / 'sshd-acceptenv.pid'}", "-o", "AcceptEnv=EDGE_TEST_* PULUMI_COMMAND_*"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    if sock.recv(4).startswith(b"SSH-"):
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the AcceptEnv sshd did not start")
            time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def engine() -> Iterator[tuple[FakeEngine, str]]:
    fake = FakeEngine()
    grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    engine_pb2_grpc.add_EngineServicer_to_server(fake, grpc_server)
    port = grpc_server.add_insecure_port("127.0.0.1:0")
    grpc_server.start()
    try:
        yield fake, f"127.0.0.1:{port}"
    finally:
        grpc_server.stop(0)


class Plugin:
    """The stand-in's process and a stub on its port."""

    def __init__(self, engine_address: str) -> None:
        # As the engine starts a provider: the engine's address as the last argument.
        self.process = subprocess.Popen(
            [sys.executable, "-u", "-m", "tests.engine.standin.command", engine_address],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True,
        )
        assert self.process.stdout is not None
        port = int(self.process.stdout.readline())
        self.stub = provider_pb2_grpc.ResourceProviderStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
        self.stub.Configure(provider_pb2.ConfigureRequest(
            acceptSecrets=True, acceptResources=True, sends_old_inputs=True, sends_old_inputs_to_delete=True,
        ))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)

    def check(self, news: dict[str, Any]) -> dict[str, Any]:
        response = self.stub.Check(provider_pb2.CheckRequest(urn=URN, type=TOKEN, news=to_struct(news)))
        assert not response.failures, response.failures
        return to_dict(response.inputs)

    def create(self, inputs: dict[str, Any], preview: bool = False) -> tuple[str, dict[str, Any]]:
        response = self.stub.Create(provider_pb2.CreateRequest(
            urn=URN, type=TOKEN, name=URN.split("::")[-1], properties=to_struct(self.check(inputs)), preview=preview,
        ))
        return response.id, to_dict(response.properties)

    def update(self, state: dict[str, Any], news: dict[str, Any], preview: bool = False) -> dict[str, Any]:
        old_inputs = {k: v for k, v in state.items() if k not in ("stdout", "stderr")}
        response = self.stub.Update(provider_pb2.UpdateRequest(
            id="x", urn=URN, type=TOKEN, olds=to_struct(state), news=to_struct(self.check(news)),
            old_inputs=to_struct(old_inputs), preview=preview,
        ))
        return to_dict(response.properties)

    def delete(self, state: dict[str, Any]) -> None:
        self.stub.Delete(provider_pb2.DeleteRequest(id="x", urn=URN, type=TOKEN, properties=to_struct(state)))

    def diff(self, old_inputs: dict[str, Any], news: dict[str, Any], ignore: tuple[str, ...] = ()) -> Any:
        olds = self.check(old_inputs)
        state = {**olds, "stdout": "", "stderr": ""}
        return self.stub.Diff(provider_pb2.DiffRequest(
            id="x", urn=URN, type=TOKEN, olds=to_struct(state), old_inputs=to_struct(olds),
            news=to_struct(self.check(news)), ignoreChanges=list(ignore),
        ))


@pytest.fixture(scope="module")
def plugin(engine: tuple[FakeEngine, str]) -> Iterator[Plugin]:
    started = Plugin(engine[1])
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def logs(engine: tuple[FakeEngine, str], server: SshServer) -> Iterator[FakeEngine]:
    """The diagnostics of this test; none may hold a secret."""
    fake = engine[0]
    fake.logs.clear()
    yield fake
    for message in fake.messages():
        for marker in (STDIN, ENV_VALUE, server.client_private_key.strip().splitlines()[1]):
            assert marker not in message


def connection(server: SshServer, **overrides: Any) -> dict[str, Any]:
    """As components/nodes/mirror.py declares it: pinned host key, key as a secret, low dial limits."""
    return {
        "host": "127.0.0.1", "port": server.port, "user": server.user,
        "privateKey": secret(server.client_private_key), "hostKey": server.host_public_key,
        "dialErrorLimit": 1, "perDialTimeout": 5, **overrides,
    }


def error_of(call: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(grpc.RpcError) as caught:
        call(*args, **kwargs)
    return caught.value.details()


def other_ed25519_key() -> str:
    public = ed25519.Ed25519PrivateKey.generate().public_key()
    return public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


def rsa_key() -> str:
    public = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    return public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


# --------------------------------------------------------------------------- Check, Diff


def test_check_fills_the_connection_defaults_and_makes_it_secret(plugin: Plugin, server: SshServer) -> None:
    inputs = plugin.check({"connection": {"host": "127.0.0.1", "privateKey": "k"}, "create": "true"})
    assert is_secret(inputs["connection"])
    assert is_secret(inputs["connection"]["value"]["privateKey"])
    assert plain(inputs["connection"]) == {
        "host": "127.0.0.1", "privateKey": "k", "user": "root", "port": 22, "dialErrorLimit": 10, "perDialTimeout": 15,
    }
    failures = plugin.stub.Check(provider_pb2.CheckRequest(urn=URN, type=TOKEN, news=to_struct({"create": "x"}))).failures
    assert [f.property for f in failures] == ["connection"]


def test_diff_triggers_replace_and_every_other_input_updates(plugin: Plugin, server: SshServer) -> None:
    base = {"connection": connection(server), "create": "c", "delete": "d", "stdin": secret("a"), "triggers": ["/p"]}
    same = plugin.diff(base, base)
    assert same.changes == provider_pb2.DiffResponse.DIFF_NONE and not same.diffs

    changes: list[tuple[dict[str, Any], str]] = [
        ({"stdin": secret("b")}, "stdin"),
        ({"create": "c2"}, "create"),
        ({"delete": "d2"}, "delete"),
        ({"connection": connection(server, port=2222)}, "connection"),  # no replacement: the same node
        ({"connection": connection(server, hostKey=other_ed25519_key())}, "connection"),
        ({"environment": {"A": "1"}}, "environment"),
        ({"addPreviousOutputInEnv": False}, "addPreviousOutputInEnv"),
        ({"logging": "none"}, "logging"),
        ({"create": UNKNOWN}, "create"),
    ]
    for change, key in changes:
        diff = plugin.diff(base, {**base, **change})
        assert diff.changes == provider_pb2.DiffResponse.DIFF_SOME, key
        assert list(diff.diffs) == [key] and not diff.replaces and not diff.deleteBeforeReplace, key
        assert {k: v.kind for k, v in diff.detailedDiff.items()} in ({key: KIND.UPDATE}, {key: KIND.ADD}), key

    # An element of triggers is an update at the provider (its schema marks only the key
    # `triggers`); the SDK's replace_on_changes=["triggers[*]"] makes the engine replace.
    element = plugin.diff(base, {**base, "triggers": ["/q"]})
    assert {k: v.kind for k, v in element.detailedDiff.items()} == {"triggers[0]": KIND.UPDATE}
    assert list(element.diffs) == ["triggers"] and not element.replaces
    added = plugin.diff({k: v for k, v in base.items() if k != "triggers"}, base)
    assert list(added.replaces) == ["triggers"] and added.detailedDiff["triggers"].kind == KIND.ADD_REPLACE
    removed = plugin.diff(base, {k: v for k, v in base.items() if k != "triggers"})
    assert list(removed.replaces) == ["triggers"] and removed.detailedDiff["triggers"].kind == KIND.DELETE_REPLACE

    ignored = plugin.diff(base, {**base, "stdin": secret("b"), "create": "c2"}, ignore=("stdin",))
    assert list(ignored.diffs) == ["create"]


# --------------------------------------------------------------------------- Create, Update, Delete


def test_create_runs_the_command_on_the_node_with_stdin(plugin: Plugin, server: SshServer, logs: FakeEngine,
                                                         tmp_path: Path) -> None:
    target = tmp_path / "written"
    resource_id, outputs = plugin.create({
        "connection": connection(server), "stdin": secret(STDIN), "addPreviousOutputInEnv": False,
        "create": f"cat > {target}; echo created; echo to-stderr >&2; id -un",
    })
    assert target.read_text() == STDIN
    assert resource_id.startswith("node-127.0.0.1-apply") and len(resource_id) == len("node-127.0.0.1-apply") + 8
    assert outputs["stdout"] == f"created\n{server.user}" and outputs["stderr"] == "to-stderr"  # one newline trimmed
    assert is_secret(outputs["stdin"]) and is_secret(outputs["connection"])  # the inputs, secrets kept
    # The output is logged as ephemeral status lines on the resource, never the inputs.
    status = [(log.message, log.urn) for log in logs.logs if log.ephemeral]
    assert ("created", URN) in status and ("to-stderr", URN) in status

    logs.logs.clear()
    plugin.create({"connection": connection(server), "create": "echo quiet", "logging": "stderr"})
    assert "quiet" not in logs.messages()


def test_environment_needs_accept_env_on_the_node(plugin: Plugin, server: SshServer, accept_env_port: int,
                                                   logs: FakeEngine, tmp_path: Path) -> None:
    target = tmp_path / "env"
    inputs = {"create": f"echo $EDGE_TEST_VAR > {target}", "environment": {"EDGE_TEST_VAR": secret(ENV_VALUE)}}
    # pulumi-command sets it with session.Setenv, an `env` request sshd refuses unless AcceptEnv
    # names it: the suite's sshd (like a default one) accepts none, and the run fails, naming it.
    error = error_of(plugin.create, {**inputs, "connection": connection(server)})
    assert error == 'could not set environment variable "EDGE_TEST_VAR": ssh: setenv failed'
    assert not target.exists()
    assert any(log.severity == 3 and "Unable to set 'EDGE_TEST_VAR'" in log.message for log in logs.logs)

    plugin.create({**inputs, "connection": connection(server, port=accept_env_port)})
    assert target.read_text() == f"{ENV_VALUE}\n"


def test_update_runs_update_else_create_with_the_previous_output(plugin: Plugin, server: SshServer,
                                                                 accept_env_port: int, logs: FakeEngine,
                                                                 tmp_path: Path) -> None:
    target = tmp_path / "updated"
    _id, state = plugin.create({"connection": connection(server), "create": "echo first"})
    outputs = plugin.update(state, {
        "connection": connection(server), "create": "echo first", "stdin": secret(STDIN),
        "update": f"cat > {target}; echo second",
    })
    assert target.read_text() == STDIN and outputs["stdout"] == "second"
    # PULUMI_COMMAND_STDOUT (addPreviousOutputInEnv unset: true) is refused by this sshd: only a warning.
    assert any(log.severity == 2 and "Unable to set 'PULUMI_COMMAND_STDOUT'" in log.message for log in logs.logs)

    # Without `update`, `create` runs again; where sshd accepts it, it sees the previous stdout.
    again = plugin.update({**outputs, "connection": connection(server, port=accept_env_port)}, {
        "connection": connection(server, port=accept_env_port), "create": "echo prev=$PULUMI_COMMAND_STDOUT",
    })
    assert again["stdout"] == "prev=second"
    # Neither: nothing runs and the outputs stay.
    kept = plugin.update(again, {"connection": connection(server), "delete": "true"})
    assert kept["stdout"] == "prev=second"


def test_delete_runs_the_stored_delete_command(plugin: Plugin, server: SshServer, accept_env_port: int,
                                               logs: FakeEngine, tmp_path: Path) -> None:
    target = tmp_path / "deleted"
    _id, state = plugin.create({
        "connection": connection(server, port=accept_env_port), "create": "echo made", "stdin": secret(STDIN),
        "delete": f"{{ echo stdout=$PULUMI_COMMAND_STDOUT; cat; }} > {target}",
    })
    plugin.delete(state)
    # The stored stdin goes to the delete command too; the previous stdout is in its environment.
    assert target.read_text() == f"stdout=made\n{STDIN}"
    plugin.delete({**state, "delete": None})  # no delete command: nothing runs, no error


def test_preview_runs_nothing_and_leaves_the_output_unknown(plugin: Plugin, server: SshServer, logs: FakeEngine,
                                                            tmp_path: Path) -> None:
    target = tmp_path / "preview"
    command = {"connection": connection(server, port=1), "create": f"touch {target}"}  # not even dialed
    _id, outputs = plugin.create(command, preview=True)
    assert outputs["stdout"] == UNKNOWN and outputs["stderr"] == UNKNOWN
    state = {**plugin.check(command), "stdout": "old", "stderr": ""}
    changed = plugin.update(state, {**command, "create": f"touch {target}; true"}, preview=True)
    assert changed["stdout"] == UNKNOWN and changed["create"] == f"touch {target}; true"
    assert not target.exists() and not logs.logs


# --------------------------------------------------------------------------- failures


def test_a_failing_command_reports_its_exit_status_and_output(plugin: Plugin, server: SshServer,
                                                              logs: FakeEngine) -> None:
    command = "echo partial; echo 'it broke' >&2; exit 3"
    error = error_of(plugin.create, {"connection": connection(server), "create": command})
    assert error.startswith('Process exited with status 3: running "echo partial; echo \'it broke\' >&2; exit 3":\n')
    assert "partial\n" in error and "it broke\n" in error
    killed = error_of(plugin.create, {"connection": connection(server), "create": "kill -9 $$"})
    assert killed == 'Process exited with status 137 from signal KILL: running "kill -9 $$":\n'


def test_a_pinned_host_key_must_match(plugin: Plugin, server: SshServer, logs: FakeEngine, tmp_path: Path) -> None:
    target = tmp_path / "never"
    error = error_of(plugin.create, {
        "connection": connection(server, hostKey=other_ed25519_key()), "create": f"touch {target}",
    })
    # x/crypto's FixedHostKey wording: the host is named by the resource (node-<host>-apply), not here.
    assert error == "after 1 failed attempts: ssh: handshake failed: ssh: host key mismatch"
    assert "Dial 1/1 failed: retrying" in logs.messages()  # dialErrorLimit 1: two dials
    assert not target.exists()


def test_a_pinned_key_restricts_the_host_key_algorithm(plugin: Plugin, server: SshServer, logs: FakeEngine) -> None:
    # Only the pinned key's type is offered: an ssh-rsa pin offers SHA-1 signatures alone, which
    # OpenSSH 8.8+ does not (why components/config/nodes.py refuses ssh-rsa pins).
    error = error_of(plugin.create, {"connection": connection(server, hostKey=rsa_key(), dialErrorLimit=0),
                                     "create": "true"})
    assert error.startswith("after 0 failed attempts: ssh: handshake failed: ssh: no common algorithm for host key; "
                            "we offered: [ssh-rsa], peer offered: [")
    assert "ssh-ed25519" in error


def test_without_a_pinned_key_any_host_key_is_accepted(plugin: Plugin, server: SshServer, logs: FakeEngine) -> None:
    _id, outputs = plugin.create({"connection": connection(server, hostKey=None), "create": "echo ok"})
    assert outputs["stdout"] == "ok"


def test_dial_failures_are_retried_up_to_the_limit(plugin: Plugin, server: SshServer, logs: FakeEngine) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    error = error_of(plugin.create, {"connection": connection(server, port=closed, dialErrorLimit=2), "create": "true"})
    assert error == f"after 2 failed attempts: dial tcp 127.0.0.1:{closed}: connect: connection refused"
    assert [m for m in logs.messages() if m.startswith("Dial ")] == ["Dial 1/2 failed: retrying", "Dial 2/2 failed: retrying"]

    wrong_key = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()
    refused = error_of(plugin.create, {"connection": connection(server, privateKey=secret(wrong_key), dialErrorLimit=0),
                                       "create": "true"})
    assert refused == ("after 0 failed attempts: ssh: handshake failed: ssh: unable to authenticate, "
                       "attempted methods [none publickey], no supported methods remain")
    assert base64.b64encode(wrong_key.encode()).decode()[:20] not in refused and wrong_key not in refused


# --------------------------------------------------------------------------- the real engine




PROGRAM = '''
import os

import pulumi
from pulumi_command import remote


def run():
    host = os.environ["EDGE_TEST_SSH_HOST"]
    connection = remote.ConnectionArgs(
        host=host, port=int(os.environ["EDGE_TEST_SSH_PORT"]), user=os.environ["EDGE_TEST_SSH_USER"],
        private_key=pulumi.Output.secret(os.environ["EDGE_TEST_SSH_KEY"]), host_key=os.environ["EDGE_TEST_SSH_HOST_KEY"],
        dial_error_limit=1, per_dial_timeout=5,
    )
    target = os.environ["EDGE_TEST_TARGET"]
    command = remote.Command(
        f"node-{host}-apply",
        connection=connection,
        create=f"cat > {target}; echo created",
        update=f"cat > {target}; echo updated",
        delete=f"rm {target}; echo deleted > {target}.deleted",
        stdin=pulumi.Output.secret(pulumi.Config().require("payload")),
        triggers=[target],
        add_previous_output_in_env=False,
        opts=pulumi.ResourceOptions(additional_secret_outputs=["stdin"], delete_before_replace=True),
    )
    pulumi.export("result", command.stdout)
'''


@pytest.mark.skipif(
    (lambda b: b is None or not (b / "pulumi").is_file())(engine_bin()), reason="the engine is not built: scripts/engine build"
)
def test_engine_up_preview_destroy(server: SshServer, tmp_path: Path) -> None:
    project, stacks, state = tmp_path / "project", tmp_path / "stacks", tmp_path / "state"
    for directory in (project, stacks, state):
        directory.mkdir()
    (project / "Pulumi.yaml").write_text("name: standin-command\nruntime: python\n")
    (project / "command_program.py").write_text(textwrap.dedent(PROGRAM))
    stack_file = stacks / "Pulumi.node.yaml"
    stack_file.write_text(f"config:\n  standin-command:payload: {STDIN}-1\n")
    target = tmp_path / "registries.yaml"
    env = {
        **os.environ, "PULUMI_CONFIG_PASSPHRASE": "standin", "EDGE_TEST_SSH_HOST": "127.0.0.1",
        "EDGE_TEST_SSH_PORT": str(server.port), "EDGE_TEST_SSH_USER": server.user,
        "EDGE_TEST_SSH_KEY": server.client_private_key, "EDGE_TEST_SSH_HOST_KEY": server.host_public_key,
        "EDGE_TEST_TARGET": str(target),
    }

    def run(*args: str, **overrides: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [ENGINE, "run", "--project-dir", str(project), "--stack-dir", str(stacks),
             "--backend", f"file://{state}", "--program", "command_program:run", *args],
            capture_output=True, text=True, env={**env, **overrides}, timeout=300,
        )
        for secret_text in (STDIN, server.client_private_key.strip().splitlines()[1]):
            assert secret_text not in done.stdout + done.stderr
        return done

    up = run("--create", "node", "up", "--yes")
    assert up.returncode == 0, up.stdout + up.stderr
    assert "+ 2 created" in up.stdout and 'result: "created"' in up.stdout
    assert target.read_text() == f"{STDIN}-1"

    same = run("node", "preview", "--expect-no-changes")
    assert same.returncode == 0, same.stdout + same.stderr
    assert "2 unchanged" in same.stdout

    stack_file.write_text(stack_file.read_text().replace(f"{STDIN}-1", f"{STDIN}-2"))
    update = run("node", "up", "--yes")
    assert update.returncode == 0, update.stdout + update.stderr
    assert "~ 1 updated" in update.stdout and '"created" => "updated"' in update.stdout
    assert target.read_text() == f"{STDIN}-2"

    # Another path in triggers: the provider calls it an update of triggers[0], the engine replaces
    # (the SDK's replace_on_changes), as the product relies on for a node's new registries.yaml path.
    moved = run("node", "preview", EDGE_TEST_TARGET=str(tmp_path / "moved.yaml"))
    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert "+-1 to replace" in moved.stdout and "delete original" in moved.stdout, moved.stdout

    # A host key that is not the node's: the update fails, named by the resource (and so the host).
    mismatch = run("node", "up", "--yes", EDGE_TEST_SSH_HOST_KEY=other_ed25519_key())
    assert mismatch.returncode != 0, mismatch.stdout + mismatch.stderr
    output = mismatch.stdout + mismatch.stderr
    assert "node-127.0.0.1-apply" in output and "ssh: host key mismatch" in output
    assert target.read_text() == f"{STDIN}-2"

    down = run("node", "destroy", "--yes")
    assert down.returncode == 0, down.stdout + down.stderr
    assert "- 2 deleted" in down.stdout
    assert not target.exists() and (tmp_path / "registries.yaml.deleted").read_text() == "deleted\n"
