"""``python -m components ready STACK``, run as an operator runs it, against real servers.

The parent (cloud) registry is a real `docker-registry` (tests/registry_server.py) behind ACR's
metadata API (tests/acr_front.py: the digests the registry gives, the push times the test
records); the connected registry is a second `docker-registry`, over https with its own CA and
the client token's credentials, which the nodes' registries.yaml mirrors the login server to;
ARM is tests/arm_server.py (the login server, the connected registry's ``lastSyncTime``); the two
nodes are real OpenSSH servers (tests/sshd.py) on 127.0.0.1 and 127.0.0.2, which run the node
scripts as on a site. "Sync" is a push of the same image to the mirror, as the connected registry
would copy it.

What is in the registries (T0 < last sync < T2):

* ``samples/hello:v1``: pushed at T0, synced: ready, by tag and by digest;
* ``samples/absent:v1``: pushed at T0, never reached the mirror;
* ``samples/moved:v1``: synced, then the tag moved to another image in the cloud at T2;
* ``samples/late:v1``: on the mirror, but the cloud reports it pushed at T2, after the last sync;
* ``other/tool:v1``: on both, but outside ``repositories: [samples/*]``.

Each scenario is a stack of its own naming some of these images.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trustme
import yaml

from tests.acr_front import AcrFront
from tests.arm_server import FAKE_BEARER, ArmServer
from tests.fixture_stacks import ROOT
from tests.node_engine import node_dir
from tests.registry_server import Registry, build_oci_layout, require_tools, running_registry
from tests.sshd import NodePath, SshServer, as_root, can_run

PYTHON = str(ROOT / "venv" / "bin" / "python") if (ROOT / "venv" / "bin" / "python").exists() else sys.executable
LOGIN = "contosoedge"
CONNECTED = "shipone"
CLIENT_USER, CLIENT_PASSWORD = "shipone-client-token", "client-password-in-the-nodes-file"
NOW = datetime.now(UTC).replace(microsecond=0)
T0, LAST_SYNC, T2 = NOW - timedelta(hours=2), NOW - timedelta(hours=1), NOW - timedelta(minutes=10)


@dataclass
class Site:
    project: Path
    ssh_key: Path
    env: dict[str, str]
    digests: dict[str, str]
    front: AcrFront
    nodes: list[SshServer]
    mirror: Registry


def _skopeo_push(layout: Path, tag: str, registry: Registry, repository: str, workdir: Path) -> None:
    auth = workdir / f"auth-{registry.port}.json"
    auth.write_text(json.dumps({"auths": {registry.endpoint: {
        "auth": base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode()}}}))
    done = subprocess.run(
        ["skopeo", "--insecure-policy", "copy", "--dest-tls-verify=false", "--dest-authfile", str(auth),
         f"oci:{layout}:{tag}", f"docker://{registry.endpoint}/{repository}:{tag}"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": str(workdir)},
    )
    assert done.returncode == 0, done.stderr


def _image(workdir: Path, name: str, payload: bytes) -> tuple[Path, str]:
    """An OCI layout with one image tagged v1, and its manifest digest."""
    layout = workdir / "layouts" / name
    build_oci_layout(layout, "v1", payload)
    return layout, json.loads((layout / "index.json").read_text())["manifests"][0]["digest"]


def _stack(project: Path, name: str, images: list[str], nodes: list[SshServer], node_path: str, arm: str,
           extra: dict | None = None) -> None:
    config = {
        "azure-native:subscriptionId": "00000000-0000-0000-0000-000000000000",
        "edge-registry:registryName": LOGIN,
        "edge-registry:registryResourceGroup": "registries",
        "edge-registry:connectedRegistryName": CONNECTED,
        "edge-registry:repositories": ["samples/*"],
        "edge-registry:requiredImages": images,
        "edge-registry:armEndpoint": arm,
        "edge-registry:kubeconfigPath": "/nonexistent/kubeconfig",
        "edge-registry:serviceClusterIP": "10.43.200.200",
        "edge-registry:nodes": [
            {"host": n.host, "port": n.port, "user": n.user, "role": "server", "hostKey": n.host_public_key,
             "path": node_path}
            for n in nodes
        ],
        **(extra or {}),
    }
    (project / f"Pulumi.{name}.yaml").write_text(yaml.safe_dump({"config": config}, sort_keys=False))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    require_tools()
    reason = can_run()
    if reason:
        if os.environ.get("EDGE_REGISTRY_REQUIRE_SERVERS"):
            pytest.fail(f"{reason}; EDGE_REGISTRY_REQUIRE_SERVERS is set")
        pytest.skip(reason)
    work = tmp_path_factory.mktemp("ready")
    with ExitStack() as stack:
        mirror_ca = trustme.CA()
        issued = mirror_ca.issue_cert("127.0.0.1")
        issued.cert_chain_pems[0].write_to_path(str(work / "mirror.crt"))
        issued.private_key_pem.write_to_path(str(work / "mirror.key"))
        cloud = stack.enter_context(running_registry(work / "cloud", "cloud-push", "cloud-push-password"))
        mirror = stack.enter_context(running_registry(work / "mirror", CLIENT_USER, CLIENT_PASSWORD,
                                                      tls=(work / "mirror.crt", work / "mirror.key")))
        front = stack.enter_context(AcrFront(work, cloud))
        arm = stack.enter_context(ArmServer(work))
        arm.state.add_registry(LOGIN, login_server=front.login_server)
        arm.state.add_connected_registry(CONNECTED, last_sync=LAST_SYNC.isoformat().replace("+00:00", "Z"),
                                         connection_state="Online")

        digests: dict[str, str] = {}
        for name, payload, targets, pushed in (
            ("samples/hello", b"hello\n", (cloud, mirror), T0),
            ("samples/absent", b"absent\n", (cloud,), T0),
            ("samples/moved", b"moved, first\n", (cloud, mirror), T0),
            ("samples/late", b"late\n", (cloud, mirror), T2),
            ("other/tool", b"tool\n", (cloud, mirror), T0),
        ):
            layout, digest = _image(work, name, payload)
            for registry in targets:
                _skopeo_push(layout, "v1", registry, name, work)
            front.record_push(name, "v1", digest, pushed)
            digests[name] = digest
        # after the last sync, the tag moves in the cloud only
        layout, moved = _image(work, "samples/moved-again", b"moved, second\n")
        _skopeo_push(layout, "v1", cloud, "samples/moved", work)
        front.record_push("samples/moved", "v1", moved, T2)
        digests["samples/moved:new"] = moved

        nodes = [stack.enter_context(_started(tmp_path_factory.mktemp("node"), host)) for host in ("127.0.0.1", "127.0.0.2")]
        # one key for both nodes, as a site's node key
        key = nodes[0].client_key
        with (nodes[1].root / "authorized_keys").open("a") as keys:
            keys.write(Path(f"{key}.pub").read_text())
        node_root = stack.enter_context(node_dir("k3s"))
        ca_file = node_root / "k3s" / "edge-registry-ca.crt"
        NodePath(ca_file).write_bytes(mirror_ca.cert_pem.bytes())
        registries = {
            "mirrors": {front.login_server: {"endpoint": [f"https://{mirror.endpoint}"]}},
            "configs": {mirror.endpoint: {"auth": {"username": CLIENT_USER, "password": CLIENT_PASSWORD},
                                          "tls": {"ca_file": str(ca_file)}}},
        }
        node_path = node_root / "k3s" / "registries.yaml"
        NodePath(node_path).write_bytes(yaml.safe_dump(registries).encode())
        # a node whose runtime has no mirror for the login server: it would pull from the cloud
        other_path = node_root / "k3s" / "other.yaml"
        NodePath(other_path).write_bytes(b'mirrors:\n  docker.io:\n    endpoint: ["https://m.example"]\n')

        project = work / "project"
        project.mkdir()
        (project / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
        hello = f"samples/hello@{digests['samples/hello']}"
        for name, images in (
            ("ready", ["samples/hello:v1", hello]),
            ("absent", ["samples/hello:v1", "samples/absent:v1"]),
            ("moved", ["samples/moved:v1"]),
            ("late", ["samples/late:v1"]),
            ("scope", ["other/tool:v1"]),
        ):
            _stack(project, name, images, nodes, str(node_path), arm.base_url)
        _stack(project, "nomirror", ["samples/hello:v1"], nodes[:1], str(other_path), arm.base_url)
        # mirrorLoginServer false: workloads name images by the site registry's endpoint, the mirror
        # edge-registry recorded as its own beside the file
        by_endpoint = {**registries, "mirrors": {mirror.endpoint: {"endpoint": [f"https://{mirror.endpoint}"]}}}
        for name in ("recorded", "unrecorded"):
            NodePath(node_root / "k3s" / f"{name}.yaml").write_bytes(yaml.safe_dump(by_endpoint).encode())
            _stack(project, name, ["samples/hello:v1"], nodes[:1], str(node_root / "k3s" / f"{name}.yaml"), arm.base_url,
                   {"edge-registry:mirrorLoginServer": False})
        side = node_root / "k3s" / "recorded.yaml.edge-registry"
        subprocess.run([*as_root(), "install", "-d", "-m", "0700", "-o", "0", "-g", "0", str(side)], check=True)
        NodePath(side / "owned").write_bytes(f"mirrors {mirror.endpoint}\nconfigs {mirror.endpoint}\n".encode())
        _stack(project, "unset", [], nodes, str(node_path), arm.base_url)
        _stack(project, "notdeployed", ["samples/hello:v1"], nodes, str(node_path), arm.base_url,
               {"edge-registry:connectedRegistryName": "shiptwo"})
        _stack(project, "nomatch", ["samples/hello:v1"], nodes, str(node_path), arm.base_url,
               {"edge-registry:repositories": ["samples/*", "nothing/*"]})
        _stack(project, "elsewhere", ["samples/hello:v1"], nodes, str(node_path), "https://arm.example.com")
        _stack(project, "down", ["samples/hello:v1"], nodes, str(node_path), arm.base_url)
        down = yaml.safe_load((project / "Pulumi.down.yaml").read_text())
        down["config"]["edge-registry:nodes"][1]["port"] = _dead_port()
        (project / "Pulumi.down.yaml").write_text(yaml.safe_dump(down, sort_keys=False))
        bundle = work / "ca-bundle.pem"
        bundle.write_text(Path(arm.ca_pem).read_text() + front.ca_pem.read_text())
        env = {**os.environ, "EDGE_REGISTRY_ARM_TOKEN": FAKE_BEARER, "REQUESTS_CA_BUNDLE": str(bundle),
               "NO_PROXY": "127.0.0.1,127.0.0.2"}
        env.pop("SSH_AUTH_SOCK", None)
        yield Site(project, key, env, digests, front, nodes, mirror)


def _dead_port() -> int:
    """A port nothing listens on: a node that is down."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.2", 0))
        return int(probe.getsockname()[1])


def _started(root: Path, host: str):  # noqa: ANN202 - a context manager of a started server
    from contextlib import contextmanager

    @contextmanager
    def server() -> Iterator[SshServer]:
        started = SshServer(root, host=host).start()
        try:
            yield started
        finally:
            started.stop()

    return server()


def ready(site: Site, stack: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "components", "ready", stack, "--project-dir", str(site.project), "--ssh-key", str(site.ssh_key),
         *args],
        cwd=ROOT, env=site.env, capture_output=True, text=True, timeout=300,
    )


def _rows(stdout: str) -> dict[str, list[str]]:
    """The table's rows by image: [scope, cloud digest, synced, node 1, node 2]."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("image "))
    rows = {}
    for line in lines[start + 1:]:
        if line.startswith(("gaps:", "ready:")):
            break
        cells = line.split()
        rows[cells[0]] = cells[1:]
    return rows


def test_a_ready_site_exits_0_with_the_table(site: Site) -> None:
    done = ready(site, "ready")

    assert done.returncode == 0, done.stdout + done.stderr
    header = next(line for line in done.stdout.splitlines() if line.startswith("image "))
    assert header.split() == ["image", "scope", "cloud", "digest", "synced", "127.0.0.1", "127.0.0.2"]
    rows = _rows(done.stdout)
    short = site.digests["samples/hello"][:19]
    assert rows["samples/hello:v1"] == ["yes", short, "yes", "ok", "ok"]
    assert rows[f"samples/hello@{site.digests['samples/hello']}"] == ["yes", short, "yes", "ok", "ok"]
    assert "ready: 2 image(s) on 2 node(s)" in done.stdout
    assert CLIENT_PASSWORD not in done.stdout + done.stderr


def test_the_json_form_names_each_nodes_digest_and_endpoint(site: Site) -> None:
    done = ready(site, "ready", "--json")

    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["ready"] is True and document["gaps"] == []
    assert document["loginServer"] == site.front.login_server
    first = document["images"][0]
    assert first["image"] == "samples/hello:v1" and first["inSyncScope"] is True and first["synced"] is True
    assert first["cloudDigest"] == site.digests["samples/hello"]
    assert first["nodes"]["127.0.0.2"] == {
        "status": "ok", "digest": site.digests["samples/hello"], "endpoint": f"https://{site.mirror.endpoint}",
        "detail": "",
    }


def test_the_check_only_reads_the_parent_registry(site: Site) -> None:
    before = len(site.front.requests)
    assert ready(site, "ready").returncode == 0
    methods = {method for method, path in site.front.requests[before:] if not path.startswith("/oauth2/")}
    assert methods == {"GET"}


def test_no_node_falls_back_to_the_cloud_registry(site: Site) -> None:
    """The cloud registry has samples/absent:v1, the mirror has not: the nodes report it missing,
    and no node asked the cloud registry for it (its registry API got no request at all)."""
    before = len(site.front.requests)
    done = ready(site, "absent")
    assert done.returncode == 1 and "samples/absent:v1 on 127.0.0.1: not on the mirror" in done.stdout
    assert [path for _method, path in site.front.requests[before:] if path.startswith("/v2/")] == []


def test_a_node_without_a_mirror_for_the_login_server_is_a_gap(site: Site) -> None:
    done = ready(site, "nomirror")

    assert done.returncode == 1
    assert _rows(done.stdout)["samples/hello:v1"][-1] == "error"
    assert (f"no mirror for {site.front.login_server} in registries.yaml: the node's runtime pulls from the "
            "cloud registry") in done.stdout


def test_a_node_that_is_down_is_a_gap_naming_it_and_the_others_are_still_checked(site: Site) -> None:
    done = ready(site, "down")

    assert done.returncode == 1
    assert _rows(done.stdout)["samples/hello:v1"][-2:] == ["ok", "error"]
    assert "samples/hello:v1 on 127.0.0.2: cannot connect to 127.0.0.2:" in done.stdout


def test_a_stack_without_required_images_is_a_usage_error_naming_the_key(site: Site) -> None:
    done = ready(site, "unset")

    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("ready: edge-registry:requiredImages: not set in Pulumi.unset.yaml")
    assert "Traceback" not in done.stderr


def test_an_unknown_stack_and_a_missing_key_are_usage_errors(site: Site, tmp_path: Path) -> None:
    unknown = ready(site, "nosuchsite")
    assert unknown.returncode == 2 and "Pulumi.nosuchsite.yaml: no such stack file" in unknown.stderr
    no_key = subprocess.run([PYTHON, "-m", "components", "ready", "ready", "--project-dir", str(site.project)],
                            cwd=ROOT, env=site.env, capture_output=True, text=True, timeout=120)
    assert no_key.returncode == 2
    assert "edge-registry:sshPrivateKey is encrypted or not set in Pulumi.ready.yaml: pass --ssh-key FILE" in no_key.stderr


def test_an_image_missing_on_the_mirror_is_a_gap_on_every_node(site: Site) -> None:
    done = ready(site, "absent")

    assert done.returncode == 1, done.stdout + done.stderr
    rows = _rows(done.stdout)
    assert rows["samples/hello:v1"][-2:] == ["ok", "ok"]
    assert rows["samples/absent:v1"] == ["yes", site.digests["samples/absent"][:19], "yes", "missing", "missing"]
    for host in ("127.0.0.1", "127.0.0.2"):
        assert f"samples/absent:v1 on {host}: not on the mirror https://{site.mirror.endpoint} (404)" in done.stdout


def test_a_tag_moved_in_the_cloud_after_the_sync_is_a_digest_mismatch(site: Site) -> None:
    done = ready(site, "moved")

    assert done.returncode == 1
    old, new = site.digests["samples/moved"], site.digests["samples/moved:new"]
    assert _rows(done.stdout)["samples/moved:v1"][-2:] == ["differs", "differs"]
    assert (f"samples/moved:v1 on 127.0.0.1: the mirror https://{site.mirror.endpoint} resolves it to {old}, "
            f"the parent registry to {new}") in done.stdout
    assert "samples/moved:v1: pushed " in done.stdout  # and it was pushed after the last sync


def test_a_sync_older_than_the_push_is_a_gap_even_when_the_mirror_has_it(site: Site) -> None:
    done = ready(site, "late")

    assert done.returncode == 1
    assert _rows(done.stdout)["samples/late:v1"] == ["yes", site.digests["samples/late"][:19], "NO", "ok", "ok"]
    assert (f"samples/late:v1: pushed {T2.isoformat()}, after the last sync {LAST_SYNC.isoformat()}: "
            "the site has not synced it yet") in done.stdout


def test_a_repository_outside_the_expanded_sync_scope_is_a_gap(site: Site) -> None:
    done = ready(site, "scope")

    assert done.returncode == 1
    assert _rows(done.stdout)["other/tool:v1"][:1] == ["NO"]
    assert ("other/tool:v1: the repository other/tool is not in the sync scope (repositories: samples/*): "
            "add it to edge-registry:repositories and run pulumi up") in done.stdout



# --------------------------------------------------------------------------- through the read account


@pytest.fixture
def read_account_script(site: Site) -> Iterator[None]:
    """The read script installed where the read account's sudoers rule and forced command name it
    (root's), as on a node; whatever was there is put back afterwards."""
    from components.nodes import read_account

    installed = NodePath(read_account.READ_SCRIPT)
    before = installed.read_bytes() if installed.exists() else None
    script = site.project.parent / "read-registries"
    script.write_text(read_account.install_script())
    subprocess.run([*as_root(), "install", "-D", "-o", "0", "-g", "0", "-m", "0755", str(script),
                    read_account.READ_SCRIPT], check=True)
    try:
        yield
    finally:
        if before is None:
            subprocess.run([*as_root(), "rm", "-f", read_account.READ_SCRIPT], check=False)
        else:
            installed.write_bytes(before)
            subprocess.run([*as_root(), "chmod", "0755", read_account.READ_SCRIPT], check=False)


def _read_key(site: Site, name: str, *flags: str) -> Path:
    """A read key whose authorized_keys line (as `read-account authorized-keys` prints it) is on both nodes."""
    key = site.project.parent / name
    if not key.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        node_path = yaml.safe_load((site.project / "Pulumi.ready.yaml").read_text())["config"]["edge-registry:nodes"][0]["path"]
        line = subprocess.run(
            [PYTHON, "-m", "components", "read-account", "authorized-keys", "--key", f"{key}.pub", "--path", node_path,
             *flags], cwd=ROOT, capture_output=True, text=True, check=True).stdout
        for node in site.nodes:
            with (node.root / "authorized_keys").open("a") as keys:
                keys.write(line)
    return key


def _read_account_stack(site: Site) -> None:
    document = yaml.safe_load((site.project / "Pulumi.ready.yaml").read_text())
    document["config"]["edge-registry:previewNodeUser"] = site.nodes[0].user
    document["config"]["edge-registry:requiredImages"] = ["samples/hello:v1"]
    (site.project / "Pulumi.readaccount.yaml").write_text(yaml.safe_dump(document, sort_keys=False))


@pytest.mark.usefixtures("read_account_script")
def test_through_the_read_account_with_its_ready_rule(site: Site) -> None:
    _read_account_stack(site)
    key = _read_key(site, "ready_ed25519", "--ready")
    done = subprocess.run(
        [PYTHON, "-m", "components", "ready", "readaccount", "--project-dir", str(site.project), "--ssh-key", str(key)],
        cwd=ROOT, env=site.env, capture_output=True, text=True, timeout=300)

    assert done.returncode == 0, done.stdout + done.stderr
    assert _rows(done.stdout)["samples/hello:v1"] == ["yes", site.digests["samples/hello"][:19], "yes", "ok", "ok"]


@pytest.mark.usefixtures("read_account_script")
def test_a_read_key_without_the_ready_rule_is_refused_the_check(site: Site) -> None:
    _read_account_stack(site)
    key = _read_key(site, "read_only_ed25519")
    done = subprocess.run(
        [PYTHON, "-m", "components", "ready", "readaccount", "--project-dir", str(site.project), "--ssh-key", str(key)],
        cwd=ROOT, env=site.env, capture_output=True, text=True, timeout=300)

    assert done.returncode == 1
    assert _rows(done.stdout)["samples/hello:v1"][-2:] == ["error", "error"]
    assert ("samples/hello:v1 on 127.0.0.1: the readiness check failed: "
            "edge-registry-read: this key runs the registries.yaml read only") in done.stdout


def test_help_names_the_exit_codes() -> None:
    done = subprocess.run([PYTHON, "-m", "components", "ready", "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0
    codes = done.stdout.split("exit codes:\n", 1)[1]
    assert [line.split()[0] for line in codes.strip().splitlines()] == ["0", "1", "2"]


def test_what_cannot_be_read_is_a_gap_naming_it(site: Site) -> None:
    not_deployed = ready(site, "notdeployed")
    assert not_deployed.returncode == 1
    assert "the connected registry shiptwo does not exist in contosoedge: run pulumi up first" in not_deployed.stdout
    no_match = ready(site, "nomatch", "--json")
    assert no_match.returncode == 1
    document = json.loads(no_match.stdout)
    assert document["ready"] is False and document["images"][0]["inSyncScope"] is None
    assert document["problems"] == [
        "edge-registry:repositories: repository pattern(s) matched no repository in the parent registry: nothing/*"]


def test_the_arm_token_goes_only_to_arm_endpoints(site: Site) -> None:
    done = ready(site, "elsewhere")
    assert done.returncode == 2
    assert done.stderr.startswith("ready: edge-registry:armEndpoint: https://arm.example.com is not an Azure ARM endpoint")


def test_without_the_login_server_mirror_the_check_asks_the_endpoint_mirror_edge_registry_wrote(site: Site) -> None:
    recorded = ready(site, "recorded")
    assert recorded.returncode == 0, recorded.stdout + recorded.stderr
    assert _rows(recorded.stdout)["samples/hello:v1"][-1] == "ok"
    unrecorded = ready(site, "unrecorded")
    assert unrecorded.returncode == 1
    assert "mirrorLoginServer is false and edge-registry has written no mirror for the site registry" in unrecorded.stdout
