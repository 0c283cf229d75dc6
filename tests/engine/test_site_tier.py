"""The engine tier (issue 18, point 4): one two-node site of this project under the real Pulumi
engine, change after change, as README.md's table "What a change previews" says.

One site (tests/engine/site_harness.py: the stack file from tests/stacks/Pulumi.dev.yaml made
real, the local file backend, a passphrase secrets provider, the ARM emulator, two OpenSSH nodes,
the kubernetes stand-in's cluster file) is shared by the tests below, which run in order, each
starting from the converged site the previous one left:

* for each change, ``preview --json --save-plan`` plans exactly the (operation, URN) steps the
  README documents, and ``up --plan`` applies that plan (no plan mismatch);
* the next preview is empty: each change's exact plan is taken from the state the previous
  ``up --plan`` left, so a step left over by that change shows up there (the message says so);
  after the last change, and around the changes made outside the stack file, an explicit preview
  must be empty;
* where it is meaningful, the fast suite's emulation of the same change (components/preview/
  render.py with tests/test_rotation_site.py's ``Engine``/``Fleet``, :class:`FastSite`) plans
  the same steps;
* ``destroy`` puts both nodes' registries.yaml back byte for byte and leaves no resource.

A scenario that finds the program misbehaving records every difference, brings the site back to
convergence with a plain ``up`` so the next scenario starts clean, and then fails. The four
program defects it found first are fixed (tests/engine/README.md, "The site tier").

Skipped unless ``scripts/engine build`` has built the engine (like test_inline_smoke.py), and
unless the node servers can run (tests/sshd.py: root, or passwordless sudo), and under the fast
suite's pytest-xdist (``scripts/test``): the scenarios run in order on one site, which
``scripts/engine test`` does (``--dist loadfile``: this module whole on one worker). About 6 to
7 minutes (tests/engine/README.md, "Times").
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.engine.site_harness import (
    site_tier_marks,
    CLIENT_TOKEN,
    CONNECTED_REGISTRY,
    ORIGINAL_FILES,
    EngineSite,
    FastSite,
    Run,
    comparable,
    diagnostics,
    steps,
    urn,
)
from tests.sshd import NodePath


pytestmark = site_tier_marks()

# --- the site's URNs ------------------------------------------------------------------------------

SITE = "edge-registry:index:Site"
AZURE = (SITE, "edge-registry:index:AzureConnectedRegistry")
ONPREM = (SITE, "edge-registry:index:OnPremInstall")
PULL = (SITE, "edge-registry:index:PullSecrets")
TLS = (SITE, "edge-registry:index:SiteTls")
DYNAMIC = "pulumi-python:dynamic/edgeregistry"

CONNECTED_REGISTRY_URN = urn("azure-native:containerregistry:ConnectedRegistry", "dev-azure-connected-registry", AZURE)
SCOPE_MAPS = {urn("azure-native:containerregistry:ScopeMap", f"dev-azure-{kind}-scope-map", AZURE)
              for kind in ("sync", "client")}
RELEASE = urn("kubernetes:helm.sh/v3:Release", "dev-onprem-release", ONPREM)
DEACTIVATION = urn(f"{DYNAMIC}:ConnectedRegistryDeactivation", "dev-azure-deactivation", AZURE)
PRE_INSTALL = urn(f"{DYNAMIC}:PreInstallDeactivation", "dev-azure-pre-install-deactivation", AZURE)
CLIENT_PASSWORD = urn(f"{DYNAMIC}:TokenPassword", "dev-azure-client-token-password", AZURE)
CLIENT_RETIREMENT = urn(f"{DYNAMIC}:SlotRetirement", "dev-azure-client-slot-retirement", AZURE)
#: The record of the client password in use (components/azure/password_in_use.py), where the program has one.
CLIENT_IN_USE = urn(f"{DYNAMIC}:PasswordInUse", "dev-azure-client-password-in-use", AZURE)
SERVER_CERTIFICATE = urn(f"{DYNAMIC}:ServerCertificate", "dev-tls-server", TLS)
PULL_SECRETS = {urn("kubernetes:core/v1:Secret", f"dev-pull-secrets-{ns}", PULL) for ns in ("fleet-apps", "monitoring")}


def node_mirror(host: str) -> str:
    return urn("edge-registry:index:NodeMirror", f"dev-node-{host}", (SITE,))


def node_command(host: str) -> str:
    return urn("command:remote:Command", f"dev-node-{host}-apply", (SITE, "edge-registry:index:NodeMirror"))


def updates(*urns: str) -> set[tuple[str, str]]:
    return {("update", u) for u in urns}


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def short(planned: set[tuple[str, ...]]) -> list[str]:
    """``op name`` per step, for messages."""
    return sorted(f"{step[0]} {step[-1].split('::')[-1]}" for step in planned)


# --- the shared site ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineSite]:
    engine_site = EngineSite(tmp_path_factory.mktemp("site")).start()
    try:
        yield engine_site
    finally:
        engine_site.stop()


@pytest.fixture(scope="module")
def fast(site: EngineSite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastSite]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        fast_site = FastSite(tmp_path_factory.mktemp("fast"), site, monkeypatch)
        try:
            yield fast_site
        finally:
            fast_site.stop()


def synced(site: EngineSite, fast: FastSite | None = None) -> None:
    """The site syncs (and is activated, as the chart's first start does): in the emulator, and
    in the fast site's emulator an hour later on its own clock."""
    state = site.arm.state
    state.connected_registries[CONNECTED_REGISTRY] = "Active"
    state.connection_state[CONNECTED_REGISTRY] = "Online"
    state.last_sync[CONNECTED_REGISTRY] = iso(datetime.now(UTC) + timedelta(seconds=1))
    if fast is not None:
        fast.fleet.synced(fast.fleet.time + timedelta(hours=1))
        fast.fleet.at(fast.fleet.time + timedelta(hours=2))


class Change:
    """One change through the engine: what it planned, applied and left, and what went wrong."""

    def __init__(self, site: EngineSite, label: str) -> None:
        self.site = site
        self.label = label
        self.plan = site.root / "plans" / f"{label}.json"
        self.problems: list[str] = []
        self.preview: Run | None = None
        self.planned: set[tuple[str, str]] = set()
        self.applied: Run | None = None

    def check(self, condition: bool, problem: str) -> None:
        if not condition:
            self.problems.append(problem)

    def previewed(self) -> set[tuple[str, str]]:
        self.preview = self.site.run("preview", "--json", "--save-plan", str(self.plan))
        assert self.preview.returncode == 0, self.preview.output[-4000:]
        self.planned = steps(self.preview.json())
        return self.planned

    def apply(self, recover: Any = None) -> Run:
        """``up --plan``; when that fails, a plain ``up`` (after ``recover()``) so the site is
        converged for the next test."""
        self.applied = self.site.run("up", "--yes", "--plan", str(self.plan))
        if self.applied.returncode != 0:
            errors = [line.strip() for line in self.applied.output.splitlines() if "error" in line.lower()]
            self.problems.append(f"up --plan failed: {errors[:3]}")
            if recover is not None:
                recover()
            converge = self.site.run("up", "--yes")
            assert converge.returncode == 0, converge.output[-4000:]
        return self.applied

    def next_preview(self, expected: set[tuple[str, str]] | None = None) -> set[tuple[str, str]]:
        """The preview after the change: empty, or ``expected`` (a rotation's next step)."""
        then = self.site.run("preview", "--json")
        assert then.returncode == 0, then.output[-4000:]
        found = steps(then.json())
        self.check(found == (expected or set()), f"the next preview plans {short(found)}, expected {short(expected or set())}")
        return found

    def done(self) -> None:
        assert not self.problems, f"{self.label}:\n" + "\n".join(self.problems)


def change(site: EngineSite, fast: FastSite | None, label: str, expected: set[tuple[str, str]],
           compare: bool = True, **config: Any) -> Change:
    """Set ``config``; the preview plans exactly ``expected`` (and so does the fast suite when
    ``compare``); ``up --plan`` applies it."""
    done = Change(site, label)
    if config:
        site.set(**config)
    planned = done.previewed()
    done.check(planned == expected, f"the preview plans {short(planned)}, the README says {short(expected)} "
               "(a step the previous change left over would show here too)")
    if fast is not None and compare:
        fast_planned = fast.preview()
        done.check(comparable(planned) == comparable(fast_planned),
                   f"the fast suite plans {short(comparable(fast_planned))}, the engine {short(comparable(planned))}")
    done.apply()
    if fast is not None:
        fast.up()
    return done


# --- a fresh site, converged ----------------------------------------------------------------------


def test_fresh_up(site: EngineSite, fast: FastSite) -> None:
    first = Change(site, "fresh")
    planned = first.previewed()
    assert planned and {op for op, _ in planned} == {"create"}, short(planned)
    fast_planned = fast.preview()
    first.check(comparable(planned) == comparable(fast_planned),
                f"the fast suite also creates {short(comparable(fast_planned) - comparable(planned))} and not "
                f"{short(comparable(planned) - comparable(fast_planned))}")
    first.apply()
    fast.up()
    for host in site.hosts:
        text = site.node_bytes(host) or b""
        first.check(b"10.43.200.200:443" in text and b"contosoedge.azurecr.io" in text,
                    f"node {host}: the mirrors are not in registries.yaml")
    first.done()


def test_a_converged_site_previews_no_change_twice_while_it_keeps_syncing(site: EngineSite, fast: FastSite) -> None:
    done = Change(site, "converged")
    # The chart activates the connected registry and the site syncs; it keeps syncing.
    for _ in range(2):
        synced(site, fast)
        same = site.run("preview", "--expect-no-changes")
        done.check(same.returncode == 0, f"preview --expect-no-changes: exit {same.returncode}\n{same.output[-3000:]}")
        done.check(not [w for w in diagnostics_of(same) if "could not read whether Helm release" in w],
                   "the program could not read the Helm release from the cluster")
        fast_planned = fast.preview()
        done.check(comparable(fast_planned) == set(), f"the fast suite plans {short(comparable(fast_planned))}")
        fast.up()
    done.done()


def diagnostics_of(run: Run) -> list[str]:
    return [line for line in run.output.splitlines() if "warning:" in line]


# --- changes the README's table documents ---------------------------------------------------------


def test_sync_schedule_and_window_update_the_connected_registry(site: EngineSite, fast: FastSite) -> None:
    done = change(site, fast, "sync", updates(CONNECTED_REGISTRY_URN), syncSchedule="0 * * * *", syncWindow="PT2H")
    sync = site.arm.state.connected_registry_properties[CONNECTED_REGISTRY]["parent"]["syncProperties"]
    done.check((sync["schedule"], sync["syncWindow"]) == ("0 * * * *", "PT2H"), f"ARM holds {sync}")
    done.done()


def test_the_repository_list_updates_both_scope_maps(site: EngineSite, fast: FastSite) -> None:
    done = change(site, fast, "repositories", updates(*SCOPE_MAPS), repositories=["hello-world", "tools/scanner"])
    for name, properties in site.arm.state.scope_maps.items():
        done.check(any("tools/scanner" in action for action in properties["actions"]), f"{name}: {properties['actions']}")
    done.done()


def test_the_chart_version_upgrades_the_release(site: EngineSite, fast: FastSite) -> None:
    done = change(site, fast, "chart", updates(RELEASE), chartVersion="0.3.1")
    release = site.cluster_state()["releases"]["connected-registry/connected-registry"]
    done.check(release["version"] == "0.3.1" and release["revision"] == 2, f"the cluster holds {release}")
    done.done()


@pytest.mark.parametrize("key, value", [("passwordExpiryDays", 60), ("passwordRotateBeforeDays", 5)])
def test_password_tuning_previews_no_change(site: EngineSite, fast: FastSite, key: str, value: int) -> None:
    requests = len(site.arm.requests)
    done = change(site, fast, key, set(), **{key: value})
    issued = [r.path for r in site.arm.requests[requests:] if r.method in ("POST", "PATCH")]
    done.check(issued == [], f"ARM was asked {issued}")
    done.done()


def test_certificate_lifetimes_preview_no_change(site: EngineSite, fast: FastSite) -> None:
    before = site.cluster_state()["releases"]["connected-registry/connected-registry"]["values"]["tls"]
    done = change(site, fast, "certificates", set(), certificateRenewBeforeDays=20, certificateValidityDays=300)
    after = site.cluster_state()["releases"]["connected-registry/connected-registry"]["values"]["tls"]
    done.check(after == before, "the release got another certificate")
    done.done()


def test_another_spelling_of_the_arm_endpoint_updates_the_deactivation(site: EngineSite, fast: FastSite) -> None:
    # The emulator's certificate covers localhost too (site_harness): the same ARM, spelt otherwise.
    endpoint = site.arm.base_url.replace("127.0.0.1", "localhost")
    done = change(site, fast, "armEndpoint", updates(DEACTIVATION), armEndpoint=endpoint)
    done.check(not site.arm.requests_to("POST", "/deactivate"), "the connected registry was deactivated")
    done.done()


def test_the_server_certificate_due_is_replaced_with_the_release(site: EngineSite) -> None:
    """Pre-aged: the certificate in the state expires in 5 days (renewal 20 days before)."""
    state = site.export()
    for resource in state["deployment"]["resources"]:
        if resource["urn"] == SERVER_CERTIFICATE:
            resource["outputs"]["notAfter"] = iso(datetime.now(UTC) + timedelta(days=5))
    site.import_state(state)
    before = site.cluster_state()["releases"]["connected-registry/connected-registry"]["values"]["tls"]
    done = change(site, None, "certificate-due", {("replace", SERVER_CERTIFICATE), ("update", RELEASE)})
    after = site.cluster_state()["releases"]["connected-registry/connected-registry"]["values"]["tls"]
    done.check(after != before, "the release kept the old certificate")
    done.done()


SITE_CA = urn(f"{DYNAMIC}:SiteCa", "dev-tls-ca", TLS)


def node_ca_certificates(site: EngineSite, host: str) -> int:
    """How many certificates the node's CA file (beside registries.yaml) holds."""
    return NodePath(site.node_file(host).parent / "edge-registry-ca.crt").read_bytes().count(b"BEGIN CERTIFICATE")


def test_a_ca_renewal_takes_three_ups_in_the_readmes_order(site: EngineSite) -> None:
    """Pre-aged: the site CA in the state expires in 5 days. Step 1 renews it and every node trusts
    both CAs; step 2 switches the server certificate (and the release) to the new CA; step 3
    leaves the new CA alone on the nodes; then nothing (README, "What a change previews")."""
    nodes = {node_command(host) for host in site.hosts}
    state = site.export()
    for resource in state["deployment"]["resources"]:
        if resource["urn"] == SITE_CA:
            resource["outputs"]["notAfter"] = iso(datetime.now(UTC) + timedelta(days=5))
    site.import_state(state)
    release_tls = site.cluster_state()["releases"]["connected-registry/connected-registry"]["values"]["tls"]

    one = change(site, None, "ca-renewal-1", {("update", SITE_CA), *updates(*nodes)})
    one.check([node_ca_certificates(site, h) for h in site.hosts] == [2] * len(site.hosts),
              "step 1 left a node without both CAs")
    one.check(site.cluster_state()["releases"]["connected-registry/connected-registry"]["values"]["tls"] == release_tls,
              "step 1 changed the server's certificate before the nodes trusted the new CA")
    one.done()
    synced(site)
    two = change(site, None, "ca-renewal-2", {("replace", SERVER_CERTIFICATE), ("update", RELEASE)})
    two.check([node_ca_certificates(site, h) for h in site.hosts] == [2] * len(site.hosts),
              "step 2 dropped the old CA in the same up")
    two.check(site.cluster_state()["releases"]["connected-registry/connected-registry"]["values"]["tls"] != release_tls,
              "step 2 left the release on the old certificate")
    two.done()
    synced(site)
    three = change(site, None, "ca-renewal-3", updates(*nodes))
    three.check([node_ca_certificates(site, h) for h in site.hosts] == [1] * len(site.hosts),
                "step 3 left the old CA on a node")
    three.next_preview()
    three.done()


# --- a rotation: the client password issued, switched after a sync, the old one removed -------------


def client_slots(site: EngineSite) -> list[str]:
    return sorted(site.arm.state.tokens[CLIENT_TOKEN])


def client_consumers(site: EngineSite) -> set[str]:
    return {*PULL_SECRETS, *(node_command(host) for host in site.hosts)}


def client_records(site: EngineSite) -> set[str]:
    """The client password and, where the program keeps one, its record of the password in use."""
    urns = {r["urn"] for r in site.resources()}
    return {CLIENT_PASSWORD} | ({CLIENT_IN_USE} & urns)


def pre_age_client_password(site: EngineSite, fast: FastSite, days_left: int = 3) -> None:
    """The clock cannot move under the engine: the client password is aged instead, to
    ``days_left`` days before its expiry, in ARM (the token's slots in the emulator) and in every
    record the state keeps of it (the password resource decides from the expiry ARM gave it at
    issue, kept in its state): ``stack export``, edit, ``stack import``. The fast site the same
    way, on its own clock (its ``Engine`` keeps the dynamic resources' state)."""
    aged = iso(datetime.now(UTC) + timedelta(days=days_left))
    state = site.export()
    old = next(r for r in state["deployment"]["resources"] if r["urn"] == CLIENT_PASSWORD)["outputs"]["expiry"]
    for resource in state["deployment"]["resources"]:
        if "client" in resource["urn"].rsplit("::", 1)[-1] or resource["type"] == "pulumi:pulumi:Stack":
            resource.update(json.loads(json.dumps(resource).replace(old, aged)))
    site.import_state(state)
    for slot in site.arm.state.tokens[CLIENT_TOKEN].values():
        slot["expiry"] = aged

    states = fast.fleet.engine.states
    fast_old = states["dev-azure-client-token-password"][1]["expiry"]
    fast_aged = iso(fast.fleet.time + timedelta(days=days_left))
    for name, (rid, outs) in list(states.items()):
        if "client" in name:
            states[name] = (rid, json.loads(json.dumps(outs).replace(fast_old, fast_aged)))
    for slot in fast.arm.state.tokens[CLIENT_TOKEN].values():
        slot["expiry"] = fast_aged


def test_rotation_issue_step(site: EngineSite, fast: FastSite) -> None:
    pre_age_client_password(site, fast)
    done = change(site, fast, "rotation-issue", updates(CLIENT_PASSWORD, CLIENT_RETIREMENT))
    done.check(client_slots(site) == ["password1", "password2"], f"the client token holds {client_slots(site)}")
    done.done()


def test_rotation_switch_after_a_sync(site: EngineSite, fast: FastSite) -> None:
    synced(site, fast)
    switched = updates(*client_records(site), *client_consumers(site), CLIENT_RETIREMENT)
    # The old slot goes at the next run, after every consumer carries the new password: the next
    # preview is the retirement (the next test).
    done = change(site, fast, "rotation-switch", switched)
    done.check(client_slots(site) == ["password1", "password2"], f"the client token holds {client_slots(site)}")
    done.done()


def test_rotation_retires_the_old_password(site: EngineSite, fast: FastSite) -> None:
    done = change(site, fast, "rotation-retire", updates(CLIENT_RETIREMENT))
    done.check(client_slots(site) == ["password2"], f"the client token holds {client_slots(site)}")
    done.done()


# --- nodes ----------------------------------------------------------------------------------------

THIRD = "127.0.0.3"


def test_a_node_added_is_created_and_written(site: EngineSite, fast: FastSite) -> None:
    site.add_node_server(THIRD)
    site.authorize(THIRD)
    done = change(site, fast, "node-added", {("create", node_mirror(THIRD)), ("create", node_command(THIRD))},
                  nodes=[*site.get("nodes"), site.node_entry(THIRD)])
    done.check(b"10.43.200.200:443" in (site.node_bytes(THIRD) or b""), "the new node's file has no mirror")
    done.done()


def test_a_node_marked_gone_is_never_contacted(site: EngineSite, fast: FastSite) -> None:
    site.nodes[THIRD].stop()  # gone for good: a run that dialled it would fail
    nodes = site.get("nodes")
    nodes[-1]["gone"] = True
    change(site, fast, "node-gone", set(), nodes=nodes).done()


def test_an_unreachable_node_warns_in_preview_and_stops_up_before_any_change(site: EngineSite, fast: FastSite) -> None:
    host = site.hosts[1]
    site.nodes[host].stop()
    site.set(chartVersion="0.3.0")  # a change is pending: up must not make it
    done = Change(site, "node-unreachable")
    try:
        planned = done.previewed()
        done.check(planned == updates(RELEASE), f"the preview plans {short(planned)}")
        warned = [w for w in diagnostics(done.preview.json()) if f"node {host}: cannot read" in w] if done.preview else []
        done.check(len(warned) == 1 and "no write is planned" in warned[0], f"preview warnings: {diagnostics(done.preview.json())}")
        fast.node_state[host] = unreadable(host)
        fast_planned = fast.preview()
        done.check(comparable(fast_planned) == comparable(planned), f"the fast suite plans {short(fast_planned)}")

        before = (by_urn(site.export(show_secrets=True)), site.cluster_state(),
                  {h: site.node_bytes(h) for h in site.hosts}, len(site.arm.requests))
        up = site.run("up", "--yes")
        done.check(up.returncode != 0, "up went on with a node it cannot read")
        done.check(f"node {host}: cannot read" in up.output and "Nothing was changed" in up.output, up.output[-2000:])
        writes = [(r.method, r.path) for r in site.arm.requests[before[3]:] if r.method != "GET"]
        done.check(writes == [], f"ARM was changed: {writes}")
        done.check(site.cluster_state() == before[1], "the cluster was changed")
        done.check({h: site.node_bytes(h) for h in site.hosts} == before[2], "a node's file was changed")
        after = by_urn(site.export(show_secrets=True))
        done.check(after == before[0], f"the state was changed: {state_changes(before[0], after)}")
    finally:
        site.nodes[host].resume()
        fast.node_state.pop(host, None)
        site.set(chartVersion="0.3.1")
    done.next_preview()
    done.done()


def by_urn(export: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """An export's resources by URN (a failed update may write them back in another order)."""
    return {r["urn"]: r for r in export["deployment"].get("resources") or []}


def state_changes(old: dict[str, dict[str, Any]], new: dict[str, dict[str, Any]]) -> list[str]:
    """What differs between two exports' resources: URN and key."""
    out = [f"{u.split('::')[-1]}: {'added' if u in new else 'removed'}" for u in set(old) ^ set(new)]
    for u in set(old) & set(new):
        out += [f"{u.split('::')[-1]}.{k}" for k in sorted(set(old[u]) | set(new[u])) if old[u].get(k) != new[u].get(k)]
    return sorted(out)


def unreadable(host: str) -> Any:
    from components.nodes.read import NodeReadFailure

    return NodeReadFailure(host, "cannot connect: connection refused", True)


# --- cloudOnly --------------------------------------------------------------------------------------


def test_cloud_only_on_holds_the_edge_of_an_unreachable_site(site: EngineSite, fast: FastSite) -> None:
    """The site cannot be reached (every node down): a cloud-only run changes nothing and contacts no node."""
    done = Change(site, "cloud-only-on")
    site.set(cloudOnly=True)
    for server in site.nodes.values():
        server.stop()

    def back() -> None:
        for server in site.nodes.values():
            if not server.running:
                server.resume()

    try:
        planned = done.previewed()
        done.check(planned == set(), f"the preview plans {short(planned)}, the README says nothing")
        held = [w for w in diagnostics(done.preview.json()) if "cloudOnly: edge resources" in w] if done.preview else []
        done.check(len(held) == 1, "no warning that the edge is held")
        fast_planned = fast.preview()
        done.check(comparable(planned) == comparable(fast_planned),
                   f"the fast suite plans {short(comparable(fast_planned))}, the engine {short(comparable(planned))}")
        done.apply(recover=back)
        fast.up()
    finally:
        back()
        site.nodes[THIRD].stop()  # gone for good
    done.done()


def test_cloud_only_off_takes_the_edge_back(site: EngineSite, fast: FastSite) -> None:
    change(site, fast, "cloud-only-off", set(), cloudOnly=False).done()


# --- the Helm release gone while the connected registry is still activated --------------------------


def test_a_release_gone_is_installed_again_after_a_deactivation(site: EngineSite) -> None:
    """``helm uninstall`` behind the program's back; a refresh drops the release from the state."""
    cluster = site.cluster_state()
    release = cluster["releases"].pop("connected-registry/connected-registry")
    for key in release.get("resources", []):
        cluster["objects"].pop(key, None)
    site.cluster.write_text(json.dumps(cluster))
    refresh = site.run("refresh", "--yes")
    assert refresh.returncode == 0, refresh.output[-4000:]
    deactivations = len(site.arm.requests_to("POST", "/deactivate"))
    done = change(site, None, "release-gone", {("update", PRE_INSTALL), ("create", RELEASE)})
    warned = [w for w in diagnostics(done.preview.json()) if "deactivates it before installing" in w] if done.preview else []
    done.check(len(warned) == 1, "no warning that the run deactivates first")
    done.check(len(site.arm.requests_to("POST", "/deactivate")) == deactivations + 1, "not deactivated exactly once")
    done.check("connected-registry/connected-registry" in site.cluster_state()["releases"], "the release is not back")
    site.arm.state.connected_registries[CONNECTED_REGISTRY] = "Active"  # the new install activates it
    done.next_preview()
    done.done()


# --- destroy ----------------------------------------------------------------------------------------


def test_destroy_restores_the_nodes_and_leaves_nothing(site: EngineSite) -> None:
    down = site.run("destroy", "--yes")
    assert down.returncode == 0, down.output[-4000:]
    for host in site.hosts:
        assert site.node_bytes(host) == ORIGINAL_FILES[host], f"node {host}: registries.yaml not restored"
    assert site.resources() == []
    cluster = site.cluster_state()
    assert cluster.get("releases") == {}
    # Kept on purpose (docs/runbooks.md, decommission): the namespaces (created or adopted, they
    # may hold other things) with the default ServiceAccount every namespace has, and its
    # imagePullSecrets entry (the list is shared). Nothing else of the site is left.
    namespaces = ("connected-registry", "fleet-apps", "monitoring")
    left = set(cluster.get("objects", {})) - {f"ServiceAccount/{ns}/default" for ns in namespaces}
    assert left == {f"Namespace/{ns}" for ns in namespaces}, sorted(left)
    state = site.arm.state
    assert state.scope_maps == {} and state.token_properties == {} and state.connected_registries == {}
