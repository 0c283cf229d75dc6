"""Renewing the site CA in order: the nodes trust both CAs, then the server switches, then the old
CA goes, one step per ``pulumi up`` (components/cluster/ca_renewal.py, docs/runbooks.md "Renew the
site CA").

Two tiers:

* **fast**: the real program (components/site.py) under the SDK's mocks, its dynamic providers
  called like the engine by tests/test_rotation_site.py's ``Engine``, each node simulated from
  the payload its command got (what apply.sh records and read.sh then reports). Each step's
  preview plans exactly what its ``up`` does (tests/engine/site_harness.py ``fast_steps``, the
  emulation the engine tier compares with the real CLI), and a site between steps previews as
  no change.
* **real**: the same program with a node on the suite's OpenSSH server: the program reads it
  over SSH, its command runs there (apply.sh writes the CA file), and after every step a TLS
  handshake that trusts exactly the CA file on the node reaches a server presenting the Helm
  release's certificate of that step. The wrong orders (the server switched before the node
  trusts the new CA, the old CA dropped before the switch) are shown to fail that handshake.
"""

from __future__ import annotations

import base64
import contextlib
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pulumi.dynamic import DiffResult

from components import tls
from components.azure.arm import ArmClient
from components.cluster.certificates import SiteCaProvider
from components.cluster import ca_renewal
from components.nodes.payload import NodeRead, decode_apply_stdin, file_sha, parse_read_output, render_read_output
from components.nodes import registries_yaml as ry
from components.nodes.read import NodeReadFailure, SshNodeReader
from components.preview.fakes import CloudFakes
from components.preview.render import render_stack
from components.preview.result import RenderResult
from components.preview.values import UNKNOWN
from tests.arm_server import ArmServer
from tests.engine.site_harness import fast_steps, stored
from tests.fixture_stacks import STACK_DIR
from tests.sshd import NodePath, SshServer, running_server
from tests.node_engine import node_dir
from tests.test_rotation_site import RELEASE, T0, Fleet

SITE_CA, SERVER = "dev-tls-ca", "dev-tls-server"
COMMAND = "command:remote:Command"
CLUSTER_IP = "10.43.200.200"  # serviceClusterIP of the dev stack: the certificate names it


# --- the rules, alone ----------------------------------------------------------------------------

OLD, NEW = (tls.issue_ca(f"edge-registry dev CA {n}", 3650, T0).certificate_pem for n in ("old", "new"))
BOTH = tls.trust_bundle([OLD, NEW])


@pytest.mark.parametrize("server, installed, expected", [
    (ca_renewal.ServerView(True, OLD), OLD, BOTH),  # step 1: the old CA serves, the new one joins
    (ca_renewal.ServerView(True, OLD), BOTH, BOTH),  # until the switch
    (ca_renewal.ServerView(False), BOTH, BOTH),  # step 2, preview: the certificate is being issued
    (ca_renewal.ServerView(True, NEW, issued_this_run=True), BOTH, BOTH),  # step 2, up
    (ca_renewal.ServerView(True, NEW), BOTH, NEW),  # step 3: switched in an earlier run
    (ca_renewal.ServerView(True, NEW), NEW, NEW),  # settled
    (ca_renewal.ServerView(False), NEW, NEW),  # a due server certificate: the node keeps its file
    (ca_renewal.ServerView(False), OLD, NEW),  # ... unless that lacks the CA (a first deploy: none)
    (ca_renewal.ServerView(False), None, NEW),
], ids=["step1", "waiting", "step2-preview", "step2-up", "step3", "settled", "due", "due-stale", "first"])
def test_the_ca_file_a_node_gets(server: ca_renewal.ServerView, installed: str | None, expected: str) -> None:
    assert ca_renewal.node_bundle(NEW, server, installed.encode() if installed else None) == expected


def read_with(ca: str | None) -> NodeRead:
    return NodeRead(content=b"", recorded=True, ca=file_sha(ca.encode()) if ca else "none",
                    ca_content=ca.encode() if ca else None)


def test_the_nodes_trust_the_new_ca_only_when_every_live_node_reports_it() -> None:
    assert ca_renewal.nodes_trust(NEW, [read_with(BOTH), read_with(NEW)])
    assert ca_renewal.nodes_trust(NEW, [])  # no live node: nothing to wait for ...
    assert not ca_renewal.nodes_trust(NEW, [], ca_issued_this_run=True)  # ... but not in the run that issued it
    assert not ca_renewal.nodes_trust(NEW, [read_with(BOTH), read_with(OLD)])
    assert not ca_renewal.nodes_trust(NEW, [read_with(BOTH), None])  # not read (cloud-only)
    assert not ca_renewal.nodes_trust(NEW, [NodeReadFailure("192.0.2.10", "refused", True)])
    older_script = NodeRead(content=b"", recorded=True, ca=file_sha(BOTH.encode()), ca_content=None)
    assert not ca_renewal.nodes_trust(NEW, [older_script])
    # The file is there but k3s has not restarted on it (an earlier run was cut off).
    owed = NodeRead(**{**read_with(BOTH).__dict__, "restart_pending": True})
    assert not ca_renewal.nodes_trust(NEW, [owed])


def test_the_read_reports_the_installed_ca_file_and_drops_it_when_the_checksum_disagrees() -> None:
    printed = render_read_output(b"x: 1\n", recorded=True, original=None, ca=file_sha(BOTH.encode()),
                                 ca_content=BOTH.encode())
    assert parse_read_output(printed).ca_content == BOTH.encode()
    other = render_read_output(b"x: 1\n", recorded=True, original=None, ca=file_sha(NEW.encode()),
                               ca_content=BOTH.encode())
    assert parse_read_output(other).ca_content is None


class Site(Fleet):
    """The dev stack over https, run after run, with nodes that keep what their command wrote."""

    def __init__(self, arm: ArmServer, client_factory: Any, monkeypatch: Any, **overrides: Any) -> None:
        super().__init__(arm, client_factory, monkeypatch, overrides={
            "httpEnabled": False, "certificateValidityDays": 30, "certificateRenewBeforeDays": 3,
            # The default ServiceAccounts' patch previews differently under the mocks: not this test's concern.
            "patchDefaultServiceAccount": False, **overrides,
        })
        self.node_state: dict[str, Any] = {}
        self.state: dict[str, dict[str, Any]] = {}
        self.node_reader: Any = None  # a real reader (the real tier); default: node_state

    def render(self, preview: bool) -> RenderResult:
        self.engine.preview = preview
        self.engine.changes, self.engine.replaces = {}, {}
        fakes = CloudFakes(sync_status=self.reader, dynamic_state=self.engine,
                           release_installed=self.release_installed, node_state=self.node_state)
        return render_stack(stack="dev", stack_dir=STACK_DIR, config_overrides={
            "armEndpoint": self.arm.base_url, "passwordExpiryDays": 30, "passwordRotateBeforeDays": 7,
            **self.overrides,
        }, fakes=fakes, preview=preview, node_reader=self.node_reader)

    def preview(self) -> tuple[set[tuple[str, str]], RenderResult]:
        """What ``pulumi preview`` plans, as (operation, resource name) pairs."""
        result = self.render(preview=True)
        return {(op, urn.rsplit("::", 1)[1]) for op, urn in fast_steps(self.state, result, self.engine)}, result

    def up(self) -> RenderResult:
        """``pulumi up``; then each node holds what its command's payload says."""
        result = self.render(preview=False)
        self.state = stored(self.state, result)
        for command in result.by_type(COMMAND):
            host = command.name.removeprefix("dev-node-").removesuffix("-apply")
            self.node_state[host] = node_after(command.plain_inputs()["stdin"])
        return result

    #: How far the clock moves between runs.
    pause = timedelta(hours=1)

    def later(self) -> None:
        """Time passes and the site syncs (so nothing else has a reason to change)."""
        self.synced(self.time)
        self.at(self.time + self.pause)


def node_after(stdin: str) -> NodeRead:
    """What read.sh reports on a node after apply.sh installed this payload."""
    plan = decode_apply_stdin(stdin)
    return NodeRead(
        content=plan.content, recorded=True, original=None, written=file_sha(plan.content), owned=plan.owned,
        applied_expected=plan.expected, applied_pending=plan.restart_pending, applied_generation=plan.generation,
        ca=file_sha(plan.ca) if plan.ca is not None else "none", ca_content=plan.ca,
    )


def node_cas(result: RenderResult, host: str = "192.0.2.10") -> list[str]:
    """The CA certificates a node's CA file gets in this run (PEM blocks)."""
    command = next(c for c in result.by_type(COMMAND) if c.name == f"dev-node-{host}-apply")
    plan = decode_apply_stdin(command.plain_inputs()["stdin"])
    assert plan.ca is not None
    return tls.pem_blocks(plan.ca.decode())


def release_certificate(result: RenderResult) -> str:
    return base64.b64decode(result.one(RELEASE).plain_inputs()["values"]["tls"]["crt"]).decode()


def state(site: Site, name: str) -> dict[str, Any]:
    return site.engine.states[name][1]


def issuer(certificate: str, *cas: str) -> str:
    """Which of ``cas`` issued ``certificate``."""
    (found,) = [ca for ca in cas if _issued_by(certificate, ca)]
    return found


def _issued_by(certificate: str, ca: str) -> bool:
    try:
        tls.load_certificate(certificate).verify_directly_issued_by(tls.load_certificate(ca))
    except Exception:  # noqa: BLE001 - another issuer, whatever the reason
        return False
    return True


NODES = {"dev-node-192.0.2.10-apply", "dev-node-192.0.2.11-apply"}


def converged_site(site: Site) -> RenderResult:
    site.up()
    site.later()
    applied = site.up()
    assert not any(site.engine.changes.values()), site.engine.changes
    site.later()
    planned, _ = site.preview()
    assert planned == set(), planned
    return applied


def age_the_ca(site: Site, days: float = 2) -> None:
    """The site CA's state says it expires in ``days`` (renewal 3 days before): due."""
    ca_id, ca_state = site.engine.states[SITE_CA]
    site.engine.states[SITE_CA] = (ca_id, {**ca_state, "notAfter": tls.format_time(site.time + timedelta(days=days))})


@pytest.fixture
def site(arm: ArmServer, client_factory: Callable[[str, str | None], ArmClient], monkeypatch: Any) -> Site:
    return Site(arm, client_factory, monkeypatch)


def test_a_due_ca_is_renewed_in_three_ups_each_previewing_exactly_what_it_does(site: Site) -> None:
    applied = converged_site(site)
    old_ca = state(site, SITE_CA)["certificatePem"]
    assert node_cas(applied) == [old_ca] and issuer(release_certificate(applied), old_ca) == old_ca
    age_the_ca(site)
    # Step 1 plans the CA's renewal and both nodes' CA files: neither the server certificate nor the release.
    walk_the_three_steps(site, old_ca, {("update", SITE_CA), *(("update", n) for n in NODES)})


def test_the_switch_waits_for_every_node_and_a_site_between_steps_previews_no_change(site: Site) -> None:
    converged_site(site)
    old_ca = state(site, SITE_CA)["certificatePem"]
    age_the_ca(site)
    site.up()  # step 1
    new_ca = state(site, SITE_CA)["certificatePem"]
    bundle_read = site.node_state["192.0.2.11"]
    # The second node lost the bundle (its CA file put back by hand): the server must not switch.
    site.node_state["192.0.2.11"] = NodeRead(**{**bundle_read.__dict__, "ca_content": old_ca.encode(),
                                                "ca": file_sha(old_ca.encode())})
    site.later()
    planned, preview = site.preview()
    assert planned == {("update", "dev-node-192.0.2.11-apply")}, planned  # the repair, nothing else
    assert node_cas(preview, "192.0.2.11") == [old_ca, new_ca]
    repaired = site.up()
    assert state(site, SERVER)["caCertificatePem"] == old_ca
    assert node_cas(repaired, "192.0.2.11") == [old_ca, new_ca]
    # A node that does not answer holds the switch back as well (the preview warns about it).
    site.later()
    answered = site.node_state["192.0.2.10"]
    site.node_state["192.0.2.10"] = NodeReadFailure("192.0.2.10", "connection refused", True)
    planned, preview = site.preview()
    assert planned == set(), planned
    assert any("192.0.2.10" in warning for warning in preview.warnings)
    # It answers again: now every node trusts both CAs, and the switch is all the preview plans.
    site.node_state["192.0.2.10"] = answered
    planned, _ = site.preview()
    assert planned == {("replace", SERVER), ("update", "dev-onprem-release")}, planned


def test_a_state_from_before_issued_at_previews_and_applies_no_change_then_renews_in_order(site: Site) -> None:
    """Certificates in the state of an earlier version have no ``issuedAt`` (in a preview: unknown)."""
    applied = converged_site(site)
    for name in (SITE_CA, SERVER):
        resource_id, outputs = site.engine.states[name]
        site.engine.states[name] = (resource_id, {k: v for k, v in outputs.items() if k != "issuedAt"})
    planned, preview = site.preview()
    assert planned == set(), planned
    assert node_cas(preview) == node_cas(applied)
    site.up()
    assert not any(site.engine.changes.values())
    site.later()
    old_ca = state(site, SITE_CA)["certificatePem"]
    age_the_ca(site)
    planned, _ = site.preview()
    assert planned == {("update", SITE_CA), *(("update", n) for n in NODES)}, planned
    first = site.up()
    assert node_cas(first) == [old_ca, state(site, SITE_CA)["certificatePem"]]


def walk_the_three_steps(site: Site, old_ca: str, first_plan: set[tuple[str, str]], new_ca: str | None = None) -> None:
    """Steps 1 to 3 from a converged site whose next ``up`` brings a new CA (``new_ca``, or the
    SiteCa's), its preview planning ``first_plan``: each preview plans what its ``up`` does."""
    settled = state(site, SERVER)["certificatePem"]
    planned, preview = site.preview()
    assert planned == first_plan, planned
    assert preview.one(RELEASE).plain_inputs()["values"]["tls"]["crt"] != UNKNOWN
    first = site.up()
    new_ca = new_ca or state(site, SITE_CA)["certificatePem"]
    assert new_ca != old_ca and state(site, SERVER)["caCertificatePem"] == old_ca
    assert release_certificate(first) == settled
    for host in ("192.0.2.10", "192.0.2.11"):
        assert node_cas(first, host) == [old_ca, new_ca], host

    # Step 2, a later up: every node trusts both, so the server certificate is issued from the
    # new CA and the release takes it; the nodes' CA files stay as they are.
    site.later()
    planned, preview = site.preview()
    assert planned == {("replace", SERVER), ("update", "dev-onprem-release")}, planned
    assert site.engine.replaces == {SERVER: ["caCertificatePem"]}
    assert preview.one(RELEASE).plain_inputs()["values"]["tls"]["crt"] == UNKNOWN
    second = site.up()
    assert {n for n, changed in site.engine.changes.items() if changed} == {SERVER}
    assert issuer(release_certificate(second), old_ca, new_ca) == new_ca and node_cas(second) == [old_ca, new_ca]

    # Step 3, a later up: the old CA leaves the nodes; the server keeps its certificate.
    site.later()
    planned, _ = site.preview()
    assert planned == {("update", n) for n in NODES}, planned
    third = site.up()
    assert not any(site.engine.changes.values())
    assert node_cas(third) == [new_ca] and release_certificate(third) == release_certificate(second)

    for _ in range(2):  # settled: no change
        site.later()
        planned, _ = site.preview()
        assert planned == set(), planned
        site.up()


def test_a_forced_replacement_of_the_ca_takes_the_same_three_steps(site: Site, monkeypatch: Any) -> None:
    """``pulumi up --replace <the CA's URN>``: the engine replaces the CA, whatever its diff says,
    in that preview and ``up``."""
    converged_site(site)
    forced, diff = iter(["preview", "up"]), SiteCaProvider.diff
    monkeypatch.setattr(SiteCaProvider, "diff", lambda self, *args: DiffResult(changes=True, replaces=["commonName"])
                        if next(forced, None) else diff(self, *args))
    walk_the_three_steps(site, state(site, SITE_CA)["certificatePem"],
                         {("replace", SITE_CA), *(("update", n) for n in NODES)})


def test_another_brought_ca_reaches_the_nodes_before_the_server_uses_it(
    arm: ArmServer, client_factory: Callable[[str, str | None], ArmClient], monkeypatch: Any,
) -> None:
    """Own CA (tlsCaCertificate + tlsCaKey): a new pair is staged like a renewal."""
    one, two = (tls.issue_ca(f"site CA {n}", 3650, T0) for n in (1, 2))
    site = Site(arm, client_factory, monkeypatch, tlsCaCertificate=one.certificate_pem, tlsCaKey=one.key_pem)
    converged_site(site)
    assert node_cas(site.render(preview=True)) == [one.certificate_pem]
    site.overrides.update(tlsCaCertificate=two.certificate_pem, tlsCaKey=two.key_pem)
    # Step 1 is a config change: nothing but the nodes' CA files.
    walk_the_three_steps(site, one.certificate_pem, {("update", n) for n in NODES}, two.certificate_pem)


def test_a_brought_certificate_is_not_staged_and_a_new_one_from_a_ca_the_nodes_lack_is_warned_about(
    arm: ArmServer, client_factory: Callable[[str, str | None], ArmClient], monkeypatch: Any,
) -> None:
    """Own certificate (tlsCertificate + tlsKey + tlsCaCertificate): the nodes get the CA file as
    given; the order of docs/runbooks.md runs without a warning, a new pair in one go warns."""
    cas = {n: tls.issue_ca(f"site CA {n}", 3650, T0) for n in (1, 2)}
    certificates = {n: tls.issue_server_certificate(ca.certificate_pem, ca.key_pem, [CLUSTER_IP], [], 365, T0)
                    for n, ca in cas.items()}
    one, two = cas[1].certificate_pem, cas[2].certificate_pem

    def brought(n: int, ca_file: str) -> dict[str, str]:
        return {"tlsCertificate": certificates[n].certificate_pem, "tlsKey": certificates[n].key_pem,
                "tlsCaCertificate": ca_file}

    def warned(result: RenderResult) -> list[str]:
        return [w for w in result.warnings if "tlsCertificate: issued by a CA" in w]

    site = Site(arm, client_factory, monkeypatch, **brought(1, one))
    converged_site(site)
    site.overrides.update(brought(2, two))  # certificate and CA at once: the wrong order
    _, preview = site.preview()
    (warning,) = warned(preview)
    assert "192.0.2.10, 192.0.2.11" in warning and "Renew the site CA" in warning
    assert certificates[2].key_pem not in warning and two not in warning
    for step, overrides, ca_file in (
        (1, brought(1, one + two), [one, two]),
        (2, brought(2, two + one), [two, one]),
        (3, brought(2, two), [two]),
    ):
        site.overrides.update(overrides)
        _, preview = site.preview()
        assert warned(preview) == [], step
        applied = site.up()
        assert node_cas(applied) == ca_file and release_certificate(applied) == overrides["tlsCertificate"], step
        site.later()


# --- real: a node on the suite's sshd, a TLS server, a handshake after every step ----------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    yield from running_server(tmp_path_factory)


class RealSite(Site):
    """The site with one node on the real sshd: read over SSH, its command run there on `up`."""

    def __init__(self, server: SshServer, path: Path, *args: Any) -> None:
        super().__init__(*args, nodes=[{
            "host": "127.0.0.1", "port": server.port, "user": server.user, "role": "server", "path": str(path),
            "hostKey": server.host_public_key,
        }], sshPrivateKey=server.client_private_key, nodeRestartTimeoutSeconds=10)
        self.server = server
        self.node_reader = SshNodeReader(connect_timeout=5, command_timeout=30)
        # The handshakes check validity against the real clock: issue on it, and keep close to it
        # (a certificate is valid from 5 minutes before its issue, components/tls.py CLOCK_SKEW).
        self.at(datetime.now(UTC).replace(microsecond=0))
        self.pause = timedelta(seconds=2)
        self.stored_stdin: str | None = None

    def up(self) -> RenderResult:
        result = self.render(preview=False)
        self.state = stored(self.state, result)
        (command,) = result.by_type(COMMAND)
        inputs = command.plain_inputs()
        if inputs["stdin"] != self.stored_stdin:  # the engine runs the command only on a change
            done = self.server.ssh(inputs["create"], inputs["stdin"])
            assert done.returncode == 0, done.stderr
            self.stored_stdin = inputs["stdin"]
        return result


@contextlib.contextmanager
def tls_server(certificate: str, key: str, workdir: Path) -> Iterator[int]:
    """A TLS server on 127.0.0.1 presenting ``certificate``; yields its port. Each connection
    completes the handshake (or fails it) and is closed."""
    chain = workdir / "server.pem"
    chain.write_text(certificate + key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            connection.settimeout(5)
            with contextlib.suppress(OSError), context.wrap_socket(connection, server_side=True) as wrapped:
                wrapped.recv(1)
            connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def handshake(port: int, cafile: Path) -> str | None:
    """A TLS handshake as containerd makes it: trusting exactly ``cafile``, checking the
    registry's ClusterIP against the certificate. None when it succeeds, else why it failed."""
    context = ssl.create_default_context(cafile=str(cafile))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                context.wrap_socket(raw, server_hostname=CLUSTER_IP):
            return None
    except ssl.SSLCertVerificationError as error:
        return error.verify_message


def test_a_node_reaches_the_registry_over_tls_after_every_step_of_a_ca_renewal(
    server: SshServer, arm: ArmServer, client_factory: Callable[[str, str | None], ArmClient], monkeypatch: Any,
    tmp_path: Path,
) -> None:
    server.reset_service()
    with node_dir("k3s") as root:
        path = root / "k3s" / "registries.yaml"
        site = RealSite(server, path, arm, client_factory, monkeypatch)
        ca_file = NodePath(path.parent / "edge-registry-ca.crt")
        steps: dict[str, tuple[Path, str, str]] = {}

        def check(step: str, result: RenderResult) -> None:
            """The node's CA file as the node command wrote it, and the release's certificate."""
            document = ry.parse(NodePath(path).read_bytes())
            assert document["configs"][f"{CLUSTER_IP}:443"]["tls"]["ca_file"] == str(ca_file)
            kept = tmp_path / f"{step}-ca.crt"
            kept.write_bytes(ca_file.read_bytes())
            values = result.one(RELEASE).plain_inputs()["values"]["tls"]
            steps[step] = (kept, base64.b64decode(values["crt"]).decode(), base64.b64decode(values["key"]).decode())
            certificate, key = steps[step][1:]
            with tls_server(certificate, key, tmp_path) as port:
                assert handshake(port, Path(str(ca_file))) is None, step

        converged_site(site)
        check("settled", site.up())
        restarts = len(server.restarts())

        age_the_ca(site)  # step 1: both CAs on the node (a restart), the old certificate served
        check("trust both", site.up())
        assert len(server.restarts()) == restarts + 1
        site.later()
        check("switched", site.up())  # step 2: the certificate from the new CA; the node untouched
        assert len(server.restarts()) == restarts + 1
        site.later()
        check("new CA only", site.up())  # step 3: the old CA leaves the node (a restart)
        assert len(server.restarts()) == restarts + 2

        old_ca, new_ca = steps["settled"][0].read_text(), steps["new CA only"][0].read_text()
        assert tls.pem_blocks(steps["trust both"][0].read_text()) == tls.pem_blocks(old_ca + new_ca)
        assert steps["switched"][0].read_text() == steps["trust both"][0].read_text()
        assert steps["trust both"][1] == steps["settled"][1] != steps["switched"][1] == steps["new CA only"][1]
        # The wrong orders fail the very handshake: the server switched while the node trusts only
        # the old CA, or the old CA dropped while the server still presents the old certificate.
        for ca, served in (("settled", "switched"), ("new CA only", "trust both")):
            with tls_server(*steps[served][1:], tmp_path) as port:
                failure = handshake(port, steps[ca][0])
            assert failure is not None and "unable to get local issuer certificate" in failure, (ca, served, failure)
        assert old_ca != new_ca
