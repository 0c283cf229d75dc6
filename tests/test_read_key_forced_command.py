"""The preview read key's ``authorized_keys`` line (``read-account authorized-keys``) against the
suite's real OpenSSH server (tests/sshd.py): with it installed the program's own reader still
reads the node; a shell command, another path, a PTY and ``-L``/``-R``/``-D`` forwarding
all fail. Each refusal has a positive control with the suite's unrestricted key, so a test that
passes is not a test that could not have failed.

The forced command runs ``sudo -n`` on the installed read script, as on a node: the test installs
it at :data:`READ_SCRIPT` (root's) and removes it afterwards unless it was there before.
"""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from components.nodes import read_account
from components.nodes.payload import NodeRead
from components.nodes.read import NodeTarget, SshNodeReader
from components.nodes.read_account import READ_SCRIPT, authorized_keys_line, read_command
from tests.node_engine import node_dir
from tests.sshd import NodePath, SshServer, _free_port, as_root, can_run, running_as_root

CONTENT = b'mirrors:\n  docker.io:\n    endpoint: ["https://m.example"]\n'
GREETING = b"inside-the-site-network\n"


@dataclass
class Setup:
    server: SshServer
    path: str
    read_key: Path
    read_private_key: str


def _ssh_argv(server: SshServer, key: Path, *options: str) -> list[str]:
    return [
        "ssh", "-F", "/dev/null", "-i", str(key), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
        "-o", f"UserKnownHostsFile={server.root / 'known_hosts'}", "-o", "StrictHostKeyChecking=yes",
        "-o", "LogLevel=ERROR", "-o", "KexAlgorithms=curve25519-sha256", "-p", str(server.port),
        *options, f"{server.user}@{server.host}",
    ]


def ssh(setup: Setup, *args: str, key: Path | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    argv = _ssh_argv(setup.server, key or setup.read_key, *args[:-1]) + [args[-1]] if args else []
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    reason = can_run()
    if reason:
        if os.environ.get("EDGE_REGISTRY_REQUIRE_SERVERS"):
            pytest.fail(f"{reason}; EDGE_REGISTRY_REQUIRE_SERVERS is set")
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("readkey")
    server = SshServer(root).start()
    read_key = root / "read_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "edge-registry-read", "-f", str(read_key)],
                   check=True)
    script = root / "read-registries"
    script.write_text(read_account.install_script())
    had_script = subprocess.run([*as_root(), "test", "-e", READ_SCRIPT]).returncode == 0
    try:
        with node_dir("k3s") as node_root:
            path = node_root / "k3s" / "registries.yaml"
            NodePath(path).write_bytes(CONTENT)
            # the line the CLI prints, as the runbook installs it
            printed = subprocess.run(
                [sys.executable, "-m", "components", "read-account", "authorized-keys", "--key", f"{read_key}.pub",
                 "--path", str(path)],
                capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parent.parent,
            ).stdout
            with (root / "authorized_keys").open("a") as keys:
                keys.write(printed)
            if not had_script:
                subprocess.run([*as_root(), "install", "-D", "-o", "0", "-g", "0", "-m", "0755", str(script), READ_SCRIPT],
                               check=True)
            yield Setup(server, str(path), read_key, read_key.read_text())
    finally:
        if not had_script:
            subprocess.run([*as_root(), "rm", "-f", READ_SCRIPT], check=False)
        server.stop()


def test_the_printed_line_is_restricted_and_forces_the_read(setup: Setup) -> None:
    line = authorized_keys_line(Path(f"{setup.read_key}.pub").read_text(), [setup.path])
    options = line.split(" ssh-ed25519 ", 1)[0]
    assert options.startswith('restrict,command="') and options.endswith('"')
    assert f"'{read_command(setup.path)}') exec {read_command(setup.path)};;" in options


def test_the_programs_reader_still_reads_the_node(setup: Setup) -> None:
    target = NodeTarget(setup.server.host, setup.server.port, setup.server.user, setup.path,
                        setup.server.host_public_key, command=read_command(setup.path))
    result = SshNodeReader(connect_timeout=5).read_nodes([target], setup.read_private_key)[setup.server.host]
    assert isinstance(result, NodeRead), result
    assert result.content == CONTENT


def test_a_shell_command_is_refused(setup: Setup) -> None:
    for command in ("id", "cat /etc/shadow", f"{read_command(setup.path)}; id", f"{read_command(setup.path)} && id",
                    "sh", "/bin/sh -i"):
        done = ssh(setup, "-T", command)
        assert done.returncode == 1, (command, done)
        assert "registries.yaml read only" in done.stderr
        assert "uid=" not in done.stdout
    # control: the suite's own key runs it
    assert "uid=" in ssh(setup, "-T", "id", key=setup.server.client_key).stdout


def test_no_command_gives_no_shell(setup: Setup) -> None:
    done = subprocess.run(_ssh_argv(setup.server, setup.read_key, "-T"), input="id\n", capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 1 and "uid=" not in done.stdout


def test_another_path_is_refused(setup: Setup) -> None:
    for path in ("/etc/shadow", "/etc/rancher/k3s/registries.yaml", setup.path + ".edge-registry/original"):
        done = ssh(setup, "-T", read_command(path))
        assert done.returncode == 1 and "registries.yaml read only" in done.stderr, (path, done)
        assert "edge-registry-read 2" not in done.stdout


def test_a_pty_is_refused(setup: Setup) -> None:
    done = ssh(setup, "-tt", "tty")
    assert "PTY allocation request failed" in done.stderr
    assert done.returncode != 0
    if not running_as_root():
        return  # the suite's sshd, run by a non-root user, cannot hand anyone a PTY: no control
    control = ssh(setup, "-tt", "tty", key=setup.server.client_key)
    assert control.returncode == 0 and "/dev/pts/" in control.stdout


class Greeter:
    """A TCP service inside the "site network" (127.0.0.1): says :data:`GREETING` to each client."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.sendall(GREETING)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def greeter() -> Iterator[Greeter]:
    service = Greeter()
    yield service
    service.close()


def _wait_port(port: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and process.poll() is None:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"ssh did not listen on {port}")


def _received(sock: socket.socket) -> bytes:
    sock.settimeout(5)
    data = b""
    try:
        while chunk := sock.recv(100):
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return data


def _through_local_forward(setup: Setup, key: Path, target_port: int) -> bytes:
    local = _free_port()
    tunnel = subprocess.Popen(
        _ssh_argv(setup.server, key, "-N", "-L", f"{local}:127.0.0.1:{target_port}"),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        _wait_port(local, tunnel)
        with socket.create_connection(("127.0.0.1", local), timeout=5) as sock:
            return _received(sock)
    finally:
        _stop(tunnel)


def test_local_forwarding_is_refused(setup: Setup, greeter: Greeter) -> None:
    assert _through_local_forward(setup, setup.server.client_key, greeter.port) == GREETING  # control
    assert _through_local_forward(setup, setup.read_key, greeter.port) == b""


def _stop(process: subprocess.Popen[str]) -> None:
    """End an ssh client; one that ignores SIGTERM on a loaded machine is killed."""
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def _through_socks(setup: Setup, key: Path, target_port: int) -> bytes:
    local = _free_port()
    proxy = subprocess.Popen(
        _ssh_argv(setup.server, key, "-N", "-D", f"127.0.0.1:{local}"),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        _wait_port(local, proxy)
        with socket.create_connection(("127.0.0.1", local), timeout=5) as sock:
            sock.sendall(b"\x05\x01\x00")  # SOCKS5, no authentication
            assert sock.recv(2) == b"\x05\x00"
            sock.sendall(b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + target_port.to_bytes(2, "big"))
            data = _received(sock)
            # the SOCKS5 reply (10 bytes) and then whatever came through
            return data[10:] if data[:2] == b"\x05\x00" else b""
    finally:
        _stop(proxy)


def test_dynamic_forwarding_is_refused(setup: Setup, greeter: Greeter) -> None:
    assert _through_socks(setup, setup.server.client_key, greeter.port) == GREETING  # control
    assert _through_socks(setup, setup.read_key, greeter.port) == b""


def _remote_forward(setup: Setup, key: Path, target_port: int) -> tuple[int, bytes]:
    """(ssh's exit status, or 0 while it is still up; what the forwarded port on the node answered)."""
    remote = _free_port()
    forward = subprocess.Popen(
        _ssh_argv(setup.server, key, "-N", "-o", "ExitOnForwardFailure=yes",
                  "-R", f"127.0.0.1:{remote}:127.0.0.1:{target_port}"),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and forward.poll() is None:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", remote)) == 0:
                    return 0, _received(probe)
            time.sleep(0.1)
        return forward.wait(10), b""
    finally:
        if forward.poll() is None:
            _stop(forward)


def test_remote_forwarding_is_refused(setup: Setup, greeter: Greeter) -> None:
    assert _remote_forward(setup, setup.server.client_key, greeter.port) == (0, GREETING)  # control
    status, answer = _remote_forward(setup, setup.read_key, greeter.port)
    assert status != 0 and answer == b""


@pytest.mark.parametrize("text", [
    "", "ssh-ed25519", "ssh-ed25519 not!base64", "command=\"id\" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE",
    "ssh-ed25519 AAAA\nssh-ed25519 BBBB", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl\n-----END OPENSSH PRIVATE KEY-----",
])
def test_the_line_refuses_what_is_not_one_public_key(text: str) -> None:
    with pytest.raises(ValueError):
        authorized_keys_line(text)


def test_the_line_refuses_a_path_that_would_widen_the_command() -> None:
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE me"
    for path in ("/etc/x.yaml') id;; *) id;; esac; case x in ('/etc/y.yaml", "/etc/*.yaml", "relative.yaml",
                 "/etc/a b.yaml", '/etc/"x".yaml'):
        with pytest.raises(ValueError):
            authorized_keys_line(key, [path])
    # a comment that does not look like one is replaced, never copied into the line
    assert authorized_keys_line('ssh-ed25519 AAAA x" ,command="id').endswith(" ssh-ed25519 AAAA edge-registry-read\n")


def test_cli_authorized_keys(tmp_path: Path) -> None:
    pub = tmp_path / "k.pub"
    pub.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE op@laptop\n")
    run = [sys.executable, "-m", "components", "read-account", "authorized-keys", "--key", str(pub)]
    done = subprocess.run([*run, "--path", "/etc/rancher/rke2/registries.yaml"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith('restrict,command="')
    assert done.stdout.endswith(" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE op@laptop\n")
    assert "/etc/rancher/rke2/registries.yaml" in done.stdout and "/etc/rancher/k3s/" not in done.stdout
    bad = subprocess.run([*run, "--path", "/etc/*"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr == (
        "python -m components read-account authorized-keys: --path: not an absolute registries.yaml path: '/etc/*'\n")
    missing = subprocess.run([*run[:-1], str(tmp_path / "none.pub")], capture_output=True, text=True)
    assert missing.returncode == 2 and f"--key {tmp_path / 'none.pub'}: no such file" in missing.stderr


# --------------------------------------------------------------------------- the readiness check's verb
# `read-account authorized-keys --ready` (and `sudoers --ready`) adds one verb: the installed
# script's `resolve PATH`, which asks the mirror that PATH names for image manifests. It may ask
# only an endpoint the file names, only HEAD of /v2/<repository>/manifests/<reference>.

LOGIN_SERVER = "contosoedge.azurecr.io"
READY_DIGEST = "sha256:" + "c" * 64


class Mirror:
    """A registry stand-in on 127.0.0.1 that records every request and knows one manifest."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        requests = self.requests = []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: object) -> None:
                pass

            def _answer(self) -> None:
                requests.append((self.command, self.path, self.headers.get("Authorization"), self.headers.get("Accept")))
                known = self.command == "HEAD" and self.path == "/v2/samples/hello/manifests/v1"
                self.send_response(200 if known else 404)
                if known:
                    self.send_header("Docker-Content-Digest", READY_DIGEST)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_HEAD = do_GET = do_POST = do_PUT = do_DELETE = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class ReadySetup:
    setup: Setup
    path: str
    content: bytes
    ready_key: Path
    mirror: Mirror
    elsewhere: Mirror


@pytest.fixture(scope="module")
def ready_setup(setup: Setup, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReadySetup]:
    root = tmp_path_factory.mktemp("readykey")
    ready_key = root / "ready_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "edge-registry-ready", "-f", str(ready_key)],
                   check=True)
    mirror, elsewhere = Mirror(), Mirror()
    try:
        with node_dir("k3s") as node_root:
            path = node_root / "k3s" / "registries.yaml"
            content = (f'mirrors:\n  {LOGIN_SERVER}:\n    endpoint: ["http://{mirror.endpoint}"]\n'
                       f'configs:\n  "{mirror.endpoint}":\n    auth:\n      username: client\n      password: secret\n').encode()
            NodePath(path).write_bytes(content)
            printed = subprocess.run(
                [sys.executable, "-m", "components", "read-account", "authorized-keys", "--key", f"{ready_key}.pub",
                 "--path", str(path), "--ready"],
                capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parent.parent,
            ).stdout
            with (setup.server.root / "authorized_keys").open("a") as keys:
                keys.write(printed)
            yield ReadySetup(setup, str(path), content, ready_key, mirror, elsewhere)
    finally:
        mirror.close()
        elsewhere.close()


def _plan(ready: ReadySetup, endpoint: str | None = None, images: tuple[str, ...] = ("samples/hello:v1",),
          content: bytes | None = None) -> str:
    from components.config.images import ImageReference
    from components.nodes.resolve import MirrorEndpoint, mirror_plan, resolve_stdin

    plan = mirror_plan(ready.content, LOGIN_SERVER)
    if endpoint is not None:
        plan = [MirrorEndpoint(endpoint, None, False, plan[0].auth)]
    return resolve_stdin(content if content is not None else ready.content, plan, [ImageReference(*i.split(":")) for i in images])


def resolve(ready: ReadySetup, stdin: str, key: Path | None = None, path: str | None = None) -> subprocess.CompletedProcess[str]:
    argv = _ssh_argv(ready.setup.server, key or ready.ready_key, "-T") + [read_account.resolve_command(path or ready.path)]
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=60)


def test_the_ready_key_resolves_a_manifest_through_the_mirror_the_file_names(ready_setup: ReadySetup) -> None:
    from components.nodes.resolve import Attempt, parse_resolve_output

    before = len(ready_setup.mirror.requests)
    done = resolve(ready_setup, _plan(ready_setup, images=("samples/hello:v1", "samples/absent:v1")))

    assert done.returncode == 0, done.stderr
    endpoint = f"http://{ready_setup.mirror.endpoint}"
    assert parse_resolve_output(done.stdout, 2) == [
        [Attempt(endpoint, "ok", READY_DIGEST)], [Attempt(endpoint, "http-404", None)]]
    seen = ready_setup.mirror.requests[before:]
    assert [(method, path) for method, path, _auth, _accept in seen] == [
        ("HEAD", "/v2/samples/hello/manifests/v1"), ("HEAD", "/v2/samples/absent/manifests/v1")]
    assert {auth for _m, _p, auth, _a in seen} == {"Basic " + base64.b64encode(b"client:secret").decode()}
    assert all("application/vnd.oci.image.index.v1+json" in accept for *_rest, accept in seen)


def test_the_ready_key_refuses_a_plan_the_file_does_not_back(ready_setup: ReadySetup) -> None:
    hello = "samples/hello:v1"
    for stdin, says in (
        (_plan(ready_setup, endpoint=f"http://{ready_setup.elsewhere.endpoint}"), "names no such endpoint"),
        # the cloud registry: its name is a mirror key in the file, never an endpoint
        (_plan(ready_setup, endpoint=f"https://{LOGIN_SERVER}"), "names no such endpoint"),
        # a port that is only the start of the mirror's
        (_plan(ready_setup, endpoint=f"http://{ready_setup.mirror.endpoint[:-1]}"), "names no such endpoint"),
        (_plan(ready_setup, endpoint=f"http://{ready_setup.mirror.endpoint}/v2/x"), "expected scheme://host[:port]"),
        (_plan(ready_setup, images=("samples/../../etc:v1",)), "not a repository name"),
        (_plan(ready_setup, images=(hello,)).replace(" v1\n", " v1;id\n"), "not a tag"),
        (_plan(ready_setup, content=ready_setup.content + b"\n"), "changed since it was read"),
        (_plan(ready_setup) + "exec id\n", "unexpected plan line"),
        ("", "not an edge-registry resolve plan"),
    ):
        before = len(ready_setup.mirror.requests)
        done = resolve(ready_setup, stdin)
        assert done.returncode == 1 and says in done.stderr, (says, done)
        assert "attempt" not in done.stdout and ready_setup.mirror.requests[before:] == []
    assert ready_setup.elsewhere.requests == []


def test_the_ready_key_runs_nothing_else(ready_setup: ReadySetup) -> None:
    server, setup = ready_setup.setup.server, ready_setup.setup
    for command in ("id", f"{read_account.resolve_command(ready_setup.path)}; id", read_command(setup.path),
                    read_account.resolve_command(setup.path)):
        done = subprocess.run(_ssh_argv(server, ready_setup.ready_key, "-T") + [command], capture_output=True,
                              text=True, timeout=30, stdin=subprocess.DEVNULL)
        assert done.returncode == 1, (command, done)
        assert "runs the registries.yaml read and the image readiness check only" in done.stderr
        assert "uid=" not in done.stdout
    # its own file's read still works
    read = subprocess.run(_ssh_argv(server, ready_setup.ready_key, "-T") + [read_command(ready_setup.path)],
                          capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert read.returncode == 0 and read.stdout.startswith("edge-registry-read 2\n")


def test_the_read_key_without_ready_refuses_the_resolve(ready_setup: ReadySetup) -> None:
    setup = ready_setup.setup
    before = len(ready_setup.mirror.requests)
    done = resolve(ready_setup, _plan(ready_setup), key=setup.read_key, path=setup.path)
    assert done.returncode == 1 and "registries.yaml read only" in done.stderr
    assert ready_setup.mirror.requests[before:] == []
