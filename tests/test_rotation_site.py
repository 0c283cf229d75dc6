"""What the site's consumers get in each phase of a rotation, and that a converged site previews clean.

The real program (components/site.py) runs under the SDK's mocks (components/preview/render.py), with two
real pieces plugged in: the sync status is read by the real ARM reader from tests/arm_server.py,
and the dynamic resources (TokenPassword, SlotRetirement, ConnectedRegistryDeactivation and, on an
https site, SiteCa and ServerCertificate) are handled by their real providers, called the way the
engine calls them (create for a new resource; diff, then update or replace on ``up`` only). So
each "run" below is one ``pulumi up`` or ``pulumi preview`` of the dev stack.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from components.azure import rotation

from components.cluster import certificates as site_certificates

from components import tls

from components.azure import token_password
from components.azure.arm import ArmClient
from components.azure.deactivation import ConnectedRegistryDeactivationProvider, PreInstallDeactivationProvider
from components.azure.password_in_use import PasswordInUseProvider
from components.preview.fakes import CloudFakes
from components.preview.render import render_stack
from components.preview.result import RenderResult
from components.preview.values import UNKNOWN, reveal
from components.cluster.certificates import ServerCertificateProvider, SiteCaProvider
from components.azure.slot_retirement import SlotRetirementProvider
from components.azure.sync_status import ArmSyncStatusReader
from components.azure.token_password import TokenPasswordProvider
from tests.arm_server import ArmServer
from tests.fixture_stacks import STACK_DIR

RELEASE = "kubernetes:helm.sh/v3:Release"
SECRET = "kubernetes:core/v1:Secret"
TOKEN = "azure-native:containerregistry:Token"
PASSWORD = "pulumi-python:dynamic/edgeregistry:TokenPassword"
CR = "devship01"
SYNC_TOKEN, CLIENT_TOKEN = "devship01-sync-token", "devship01-client-token"
T0 = datetime(2026, 1, 10, 12, 0, 0, tzinfo=UTC)
ROTATION = T0 + timedelta(days=24)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class Engine:
    """Calls the real dynamic providers as the engine would and keeps their state between runs."""

    def __init__(self, client_factory: Callable[[str, str | None], ArmClient]) -> None:
        self.client_factory = client_factory
        self.states: dict[str, tuple[str, dict[str, Any]]] = {}
        self.preview = False
        self.changes: dict[str, bool] = {}
        self.replaces: dict[str, list[str]] = {}

    def provider(self, inputs: dict[str, Any]) -> Any:
        """The provider behind a registration, told apart by its inputs as the render fakes do."""
        if "tokenId" in inputs:
            return TokenPasswordProvider(self.client_factory)
        if "activeSlot" in inputs:
            return SlotRetirementProvider(self.client_factory)
        if "commonName" in inputs:
            return SiteCaProvider()
        if "caCertificatePem" in inputs:
            return ServerCertificateProvider()
        if "value" in inputs:  # the password in use (TokenPassword, with tokenId, is above)
            return PasswordInUseProvider()
        if "installId" not in inputs:  # its facts may be None, and so absent
            return PreInstallDeactivationProvider(self.client_factory)
        return ConnectedRegistryDeactivationProvider(self.client_factory)

    def __call__(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        # The engine hands a dynamic provider plain values, secrets too, and an unknown as the
        # SDK's Unknown object (pulumi/dynamic/__main__.py deserializes with keep_unknowns), as
        # the mocks give it here.
        inputs = reveal(inputs)
        provider = self.provider(inputs)
        olds = self.states.get(name)
        checked = provider.check(olds[1] if olds else {}, inputs)
        assert checked.failures == []
        news = checked.inputs
        if olds is None:
            self.changes[name] = True
            if self.preview:
                return f"{name}-preview", news
            created = provider.create(news)
            self.states[name] = (created.id, created.outs)
            return self.states[name]
        diff = provider.diff(olds[0], olds[1], news)
        self.changes[name] = bool(diff.changes)
        if diff.replaces:
            # Renewing a certificate is a replacement; nothing else may ever be replaced.
            assert isinstance(provider, (SiteCaProvider, ServerCertificateProvider)), (
                f"{name} would be replaced: {diff.replaces}"
            )
            self.replaces[name] = list(diff.replaces)
            if self.preview:
                # The replacement is created on `up`: what it issues is unknown to dependents.
                return olds[0], {**news, **{key: UNKNOWN for key in provider.output_keys}}
            created = provider.create(news)  # create before delete; delete removes nothing
            self.states[name] = (created.id, created.outs)
            return self.states[name]
        if diff.changes and self.preview:
            # Like the engine for a provider without preview support: the planned outputs are the
            # new inputs, so the outputs the update would compute are unknown to dependents.
            return olds[0], news
        if diff.changes and not self.preview:
            self.states[name] = (olds[0], provider.update(olds[0], olds[1], news).outs)
        return self.states[name]


class Fleet:
    """The dev stack, run after run, against the local ARM server."""

    def __init__(
        self,
        arm: ArmServer,
        client_factory: Callable[[str, str | None], ArmClient],
        monkeypatch: Any,
        overrides: dict[str, Any] | None = None,
    ):
        self.arm = arm
        self.engine = Engine(client_factory)
        self.reader = ArmSyncStatusReader(client_factory)
        self.overrides = overrides or {}
        self.release_installed: bool | None = True  # what the program reads from the cluster
        self.time = T0
        monkeypatch.setattr(token_password, "now", lambda: self.time)
        monkeypatch.setattr(rotation, "now", lambda: self.time)
        monkeypatch.setattr(site_certificates, "now", lambda: self.time)
        # The azure-native resources are mocked; ARM holds what they would have created.
        arm.state.add_token(SYNC_TOKEN)
        arm.state.add_token(CLIENT_TOKEN)
        arm.state.add_connected_registry(CR, last_sync=None)
        self.at(T0)

    def at(self, moment: datetime) -> None:
        self.time = moment
        self.arm.state.clock = iso(moment)

    def synced(self, moment: datetime) -> None:
        self.arm.state.last_sync[CR] = iso(moment)
        self.arm.state.connection_state[CR] = "Online"

    def run(self, preview: bool = False) -> RenderResult:
        self.engine.preview = preview
        self.engine.changes = {}
        self.engine.replaces = {}
        return render_stack(
            stack="dev",
            stack_dir=STACK_DIR,
            config_overrides={
                "armEndpoint": self.arm.base_url,
                "passwordExpiryDays": 30,
                "passwordRotateBeforeDays": 7,
                **self.overrides,
            },
            fakes=CloudFakes(
                sync_status=self.reader, dynamic_state=self.engine, release_installed=self.release_installed
            ),
            preview=preview,
        )

    def password(self, name_suffix: str, key: str = "value") -> str:
        (found,) = [state for name, (_, state) in self.engine.states.items() if name.endswith(name_suffix)]
        return str(found[key])


def connection_string_password(result: RenderResult) -> str:
    values = result.one(RELEASE).plain_inputs()["values"]
    return dict(part.split("=", 1) for part in values["connectionString"].split(";"))["SyncTokenPassword"]


def pull_secret_passwords(result: RenderResult) -> set[str]:
    passwords = set()
    for secret in result.by_type(SECRET):
        document = json.loads(base64.b64decode(secret.plain_inputs()["data"][".dockerconfigjson"]))
        passwords |= {entry["password"] for entry in document["auths"].values()}
    return passwords


def phases(result: RenderResult) -> tuple[str, str]:
    return result.outputs["syncPasswordRotation"]["phase"], result.outputs["clientPasswordRotation"]["phase"]


def comparable(result: RenderResult) -> list[tuple[str, str]]:
    """Every registration's name and inputs (unknowns as one marker): what a preview would compare."""
    return sorted(
        (r.name, json.dumps(r.plain_inputs(), sort_keys=True, default=lambda value: f"<{type(value).__name__}>"))
        for r in result.resources
    )


def rotation_warnings(result: RenderResult) -> list[str]:
    return [w for w in result.warnings if "rotation" in w or "sync status" in w]


@pytest.fixture
def fleet(arm: ArmServer, client_factory: Callable[[str, str | None], ArmClient], monkeypatch: Any) -> Fleet:
    return Fleet(arm, client_factory, monkeypatch)


def test_consumers_in_each_phase_of_a_rotation(fleet: Fleet) -> None:
    first = fleet.run()
    sync_1, client_1 = fleet.password("sync-token-password"), fleet.password("client-token-password")
    assert connection_string_password(first) == sync_1
    assert pull_secret_passwords(first) == {client_1}
    assert phases(first) == ("settled", "settled")
    fleet.synced(T0 + timedelta(hours=1))

    # Run 2, rotation window open, site not synced since: the connection string switches, the
    # pull secrets do not.
    fleet.at(ROTATION)
    second = fleet.run()
    sync_2, client_2 = fleet.password("sync-token-password"), fleet.password("client-token-password", "nextValue")
    assert sync_2 != sync_1 and client_2 not in (client_1, "None")
    assert connection_string_password(second) == sync_2
    assert pull_secret_passwords(second) == {client_1}
    assert phases(second) == ("switched-awaiting-sync", "issued-awaiting-sync")
    assert second.secret_outputs >= {"clientPassword", "connectionString"}
    assert sync_2 not in json.dumps(second.outputs["syncPasswordRotation"])

    # A preview now names both stuck rotations.
    fleet.at(ROTATION + timedelta(days=1))
    stuck = fleet.run(preview=True)
    assert not any(fleet.engine.changes.values())
    assert any("dev-azure-client-token-password" in w and "LOCK-OUT AHEAD" in w for w in stuck.warnings)
    assert any("dev-azure-sync-token-password" in w for w in stuck.warnings)

    # Run 3, after a sync: pull secrets switch; the sync token's old slot goes. Its preview says so.
    fleet.synced(ROTATION + timedelta(days=1, hours=1))
    fleet.at(ROTATION + timedelta(days=1, hours=2))
    planned = fleet.run(preview=True)
    assert {n for n, changed in fleet.engine.changes.items() if changed} == {
        "dev-azure-client-token-password",
        "dev-azure-client-password-in-use",  # the switch: the consumers change with it
        "dev-azure-sync-slot-retirement",
        "dev-azure-client-slot-retirement",
    }
    assert all(s.plain_inputs()["data"] == UNKNOWN for s in planned.by_type(SECRET))  # known after apply
    assert connection_string_password(planned) == sync_2  # the connection string stays
    third = fleet.run()
    assert pull_secret_passwords(third) == {client_2}
    assert connection_string_password(third) == sync_2
    assert phases(third) == ("settled", "retiring")
    assert set(fleet.arm.state.tokens[SYNC_TOKEN]) == {"password2"}
    assert set(fleet.arm.state.tokens[CLIENT_TOKEN]) == {"password1", "password2"}

    # Run 4: the client's old slot goes, after the pull secrets carry the new one.
    fleet.at(ROTATION + timedelta(days=1, hours=3))
    fourth = fleet.run()
    assert pull_secret_passwords(fourth) == {client_2}
    assert phases(fourth) == ("settled", "settled")
    assert set(fleet.arm.state.tokens[CLIENT_TOKEN]) == {"password2"}
    assert rotation_warnings(fourth) == []


def test_a_converged_site_previews_as_no_change_twice_while_it_keeps_syncing(fleet: Fleet) -> None:
    fleet.run()
    fleet.synced(T0 + timedelta(hours=1))
    fleet.at(T0 + timedelta(hours=2))
    applied = fleet.run()  # the first run after a sync: nothing to do either
    assert not any(fleet.engine.changes.values())

    previews = []
    for hours in (3, 4):
        fleet.synced(T0 + timedelta(hours=hours))  # lastSyncTime moves on every run
        fleet.at(T0 + timedelta(hours=hours, minutes=30))
        previews.append(fleet.run(preview=True))
        assert not any(fleet.engine.changes.values()), fleet.engine.changes

    assert comparable(previews[0]) == comparable(previews[1])
    # What the rotation feeds (passwords and their facts, the connection string, the pull secrets)
    # is exactly what the last up applied. (Reads of live objects are unknown in a mocked preview.)
    for kind in (PASSWORD, RELEASE, SECRET, TOKEN):
        assert [c for c in comparable(previews[1]) if c[0] in {r.name for r in applied.by_type(kind)}] == [
            c for c in comparable(applied) if c[0] in {r.name for r in applied.by_type(kind)}
        ]
    assert rotation_warnings(previews[0]) == rotation_warnings(previews[1]) == []


def test_tokens_never_change_in_place(fleet: Fleet) -> None:
    result = fleet.run()
    tokens = result.by_type(TOKEN)
    assert len(tokens) == 2
    for token in tokens:
        # Any input change replaces the token (same name, so delete first), never a PUT that would
        # wipe its passwords; and nothing the program passes carries credentials.
        assert token.options["replaceOnChanges"] == ["*"]
        assert token.options["deleteBeforeReplace"] is True
        assert "credentials" not in token.plain_inputs()
    for password in result.by_type(PASSWORD):
        token = next(t for t in tokens if t.urn in password.dependencies)
        assert password.plain_inputs()["tokenName"] == token.plain_inputs()["tokenName"]


RETIREMENT = "pulumi-python:dynamic/edgeregistry:SlotRetirement"
COMMAND = "command:remote:Command"


def test_old_slots_are_retired_only_after_every_consumer_of_their_password() -> None:
    result = render_stack(stack="dev", stack_dir=STACK_DIR)
    sync = result.one(RETIREMENT, "sync-slot-retirement")
    client = result.one(RETIREMENT, "client-slot-retirement")

    assert result.one(RELEASE).urn in sync.dependencies
    pull_secrets = {s.urn for s in result.by_type(SECRET)}
    node_applies = {c.urn for c in result.by_type(COMMAND) if c.name.endswith("-apply")}
    assert pull_secrets and node_applies
    assert pull_secrets | node_applies <= set(client.dependencies)
    assert not client.options.get("ignoreChanges")


def test_a_cloud_only_run_holds_the_retirements_like_the_edge() -> None:
    # The edge keeps its stored inputs (old passwords) in a cloud-only run, so no switch may be
    # recorded and no old slot removed because of it.
    # They are told so by an input their diff honours (test_a_held_retirement_never_calls_arm),
    # not by ignore_changes, under which a retirement already due would still call ARM.
    result = render_stack(stack="dev", stack_dir=STACK_DIR, config_overrides={"cloudOnly": True})
    for retirement in result.by_type(RETIREMENT):
        assert retirement.plain_inputs()["held"] is True
        assert not retirement.options.get("ignoreChanges")
    for retirement in render_stack(stack="dev", stack_dir=STACK_DIR).by_type(RETIREMENT):
        assert retirement.plain_inputs()["held"] is False


def node_auth_passwords(result: RenderResult) -> set[str]:
    """The client password each node's registries.yaml gets (configs[endpoint].auth)."""
    from components.nodes.payload import decode_apply_stdin

    passwords = set()
    for command in result.by_type("command:remote:Command"):
        document = decode_apply_stdin(command.plain_inputs()["stdin"]).document
        passwords |= {config["auth"]["password"] for config in document["configs"].values() if "auth" in config}
    return passwords


def test_node_credentials_follow_the_pull_secrets_through_a_rotation(fleet: Fleet) -> None:
    """The nodes' auth takes the same gated client password as the pull secrets: a site that has
    not synced since the rotation keeps the password it knows on its nodes too."""
    first = fleet.run()
    client_1 = fleet.password("client-token-password")
    assert node_auth_passwords(first) == pull_secret_passwords(first) == {client_1}
    fleet.synced(T0 + timedelta(hours=1))

    fleet.at(ROTATION)
    second = fleet.run()  # rotation started, not synced since: nothing switches on the nodes
    assert node_auth_passwords(second) == pull_secret_passwords(second) == {client_1}

    fleet.synced(ROTATION + timedelta(days=1, hours=1))
    fleet.at(ROTATION + timedelta(days=1, hours=2))
    third = fleet.run()  # after a sync: the nodes switch with the pull secrets, before the old slot goes
    client_2 = fleet.password("client-token-password")
    assert client_2 != client_1
    assert node_auth_passwords(third) == pull_secret_passwords(third) == {client_2}
    assert set(fleet.arm.state.tokens[CLIENT_TOKEN]) == {"password1", "password2"}


# --- an https site: the certificates through ups and previews ------------------------------------

SITE_CA = "pulumi-python:dynamic/edgeregistry:SiteCa"
SERVER_CERTIFICATE = "pulumi-python:dynamic/edgeregistry:ServerCertificate"
#: A short-lived server certificate, so its renewal comes long before the passwords' (23 days).
CERTIFICATE_DAYS, RENEW_BEFORE_DAYS = 10, 3
RENEWAL = T0 + timedelta(days=CERTIFICATE_DAYS - RENEW_BEFORE_DAYS, hours=1)


@pytest.fixture
def https_fleet(arm: ArmServer, client_factory: Callable[[str, str | None], ArmClient], monkeypatch: Any) -> Fleet:
    return Fleet(arm, client_factory, monkeypatch, overrides={
        "httpEnabled": False,
        "certificateValidityDays": CERTIFICATE_DAYS,
        "certificateRenewBeforeDays": RENEW_BEFORE_DAYS,
    })


def inputs_of(result: RenderResult, *types: str) -> dict[str, str]:
    """Name -> inputs (as comparable() shows them) of every registration of these types."""
    names = {r.name for t in types for r in result.by_type(t)}
    assert names, types
    return {name: inputs for name, inputs in comparable(result) if name in names}


def test_a_converged_https_site_previews_clean_and_renews_only_the_server_certificate(https_fleet: Fleet) -> None:
    fleet = https_fleet
    fleet.run()
    ca_id, ca_state = fleet.engine.states["dev-tls-ca"]
    _, server_state = fleet.engine.states["dev-tls-server"]
    fleet.synced(T0 + timedelta(hours=1))
    fleet.at(T0 + timedelta(hours=2))
    applied = fleet.run()
    assert not any(fleet.engine.changes.values()), fleet.engine.changes
    release = applied.one(RELEASE).plain_inputs()["values"]["tls"]
    assert base64.b64decode(release["crt"]).decode() == server_state["certificatePem"]

    previews = []
    for hours in (3, 4):
        fleet.synced(T0 + timedelta(hours=hours))
        fleet.at(T0 + timedelta(hours=hours, minutes=30))
        previews.append(fleet.run(preview=True))
        assert not any(fleet.engine.changes.values()), fleet.engine.changes
    assert comparable(previews[0]) == comparable(previews[1])
    for preview in previews:
        assert inputs_of(preview, RELEASE, COMMAND, SECRET, SITE_CA, SERVER_CERTIFICATE) == inputs_of(
            applied, RELEASE, COMMAND, SECRET, SITE_CA, SERVER_CERTIFICATE
        )

    # Past the renewal point: the preview shows the server certificate replaced and the release
    # taking what it issues; the nodes keep their inputs (same CA).
    fleet.synced(RENEWAL - timedelta(minutes=30))
    fleet.at(RENEWAL)
    planned = fleet.run(preview=True)
    assert {name for name, changed in fleet.engine.changes.items() if changed} == {"dev-tls-server"}
    assert fleet.engine.replaces == {"dev-tls-server": ["notAfter"]}
    assert planned.one(RELEASE).plain_inputs()["values"]["tls"] == {"crt": UNKNOWN, "key": UNKNOWN}
    assert inputs_of(planned, COMMAND, SECRET, SITE_CA) == inputs_of(applied, COMMAND, SECRET, SITE_CA)

    renewed = fleet.run()
    assert {name for name, changed in fleet.engine.changes.items() if changed} == {"dev-tls-server"}
    assert fleet.engine.states["dev-tls-ca"] == (ca_id, ca_state)
    _, new_server = fleet.engine.states["dev-tls-server"]
    assert new_server["certificatePem"] != server_state["certificatePem"]
    assert new_server["notAfter"] > server_state["notAfter"]
    tls.load_certificate(new_server["certificatePem"]).verify_directly_issued_by(
        tls.load_certificate(ca_state["certificatePem"])
    )
    tls_values = renewed.one(RELEASE).plain_inputs()["values"]["tls"]
    assert base64.b64decode(tls_values["crt"]).decode() == new_server["certificatePem"]
    assert base64.b64decode(tls_values["key"]).decode() == new_server["keyPem"]
    before, after = applied.one(RELEASE).plain_inputs(), renewed.one(RELEASE).plain_inputs()
    assert {**after, "values": {**after["values"], "tls": None}} == {**before, "values": {**before["values"], "tls": None}}
    assert inputs_of(renewed, COMMAND, SECRET, SITE_CA) == inputs_of(applied, COMMAND, SECRET, SITE_CA)

    fleet.synced(RENEWAL + timedelta(hours=1))
    fleet.at(RENEWAL + timedelta(hours=2))
    settled = fleet.run(preview=True)
    assert not any(fleet.engine.changes.values()), fleet.engine.changes
    assert fleet.engine.replaces == {}
    assert inputs_of(settled, RELEASE, COMMAND, SECRET, SITE_CA, SERVER_CERTIFICATE) == inputs_of(
        renewed, RELEASE, COMMAND, SECRET, SITE_CA, SERVER_CERTIFICATE
    )


# --- tuning changes: at most the tuned resource, nothing downstream (DESIGN: engine preview) -----

DOWNSTREAM = (RELEASE, COMMAND, SECRET)


def converged(fleet: Fleet) -> RenderResult:
    """Two ups and a sync: the state every tuning change below starts from."""
    fleet.run()
    fleet.synced(T0 + timedelta(hours=1))
    fleet.at(T0 + timedelta(hours=2))
    applied = fleet.run()
    assert not any(fleet.engine.changes.values()), fleet.engine.changes
    return applied


def changed(fleet: Fleet) -> set[str]:
    return {name for name, change in fleet.engine.changes.items() if change}


@pytest.mark.parametrize(
    "tuning",
    [
        {"passwordExpiryDays": 60},
        {"passwordRotateBeforeDays": 5},
        {"armEndpoint": "https://management.sovereign.example"},
    ],
    ids=lambda tuning: next(iter(tuning)),
)
def test_a_tuning_change_previews_no_update_and_nothing_downstream(
    arm: ArmServer, client_factory: Callable[[str, str | None], ArmClient], monkeypatch: Any, tuning: dict[str, Any]
) -> None:
    # Every endpoint reaches the suite's ARM: only the spelling in the state differs.
    fleet = Fleet(arm, lambda sub, _endpoint: client_factory(sub, arm.base_url), monkeypatch)
    applied = converged(fleet)
    fleet.overrides.update(tuning)
    fleet.synced(T0 + timedelta(hours=3))
    fleet.at(T0 + timedelta(hours=4))
    preview = fleet.run(preview=True)
    # No password, retirement or certificate reports an update: an update of one would preview
    # all its outputs as unknown under the real engine (the emulation's Engine returns the new
    # inputs), and with them the connection string, the pull secrets and the nodes' auth. A new
    # endpoint updates the deactivation in place (its delete must reach ARM there); nothing
    # consumes its outputs.
    expected = {"dev-azure-deactivation"} if "armEndpoint" in tuning else set()
    assert changed(fleet) == expected
    assert inputs_of(preview, *DOWNSTREAM) == inputs_of(applied, *DOWNSTREAM)
    # `up` does just that, and the next preview is clean.
    fleet.run()
    assert changed(fleet) == expected
    fleet.run(preview=True)
    assert changed(fleet) == set()


def test_cloud_only_on_and_off_previews_no_password_or_retirement_change(fleet: Fleet) -> None:
    applied = converged(fleet)
    for cloud_only in (True, False):
        fleet.overrides["cloudOnly"] = cloud_only  # the dev stack pins serviceClusterIP
        preview = fleet.run(preview=True)
        # The password resource gets a rotation lead time of 0 in a cloud-only run and the
        # configured one again after it: neither is an update.
        assert changed(fleet) == set(), fleet.engine.changes
        assert inputs_of(preview, SECRET) == inputs_of(applied, SECRET)
        fleet.run()
        assert changed(fleet) == set()


def test_a_held_retirement_never_calls_arm(fleet: Fleet) -> None:
    """A retirement due while the site is cloud-only waits for the next run that reaches the edge."""
    fleet.run()
    fleet.synced(T0 + timedelta(hours=1))
    fleet.at(ROTATION)
    fleet.run()  # the sync password switches, the client one is issued
    fleet.synced(ROTATION + timedelta(hours=1))
    fleet.at(ROTATION + timedelta(hours=2))
    fleet.run()  # the client password switches; its old slot is retiring
    assert set(fleet.arm.state.tokens[CLIENT_TOKEN]) == {"password1", "password2"}
    requests = len(fleet.arm.requests)
    fleet.overrides["cloudOnly"] = True
    fleet.at(ROTATION + timedelta(hours=3))
    fleet.run(preview=True)
    assert "dev-azure-client-slot-retirement" not in changed(fleet)
    fleet.run()
    assert "dev-azure-client-slot-retirement" not in changed(fleet)
    assert set(fleet.arm.state.tokens[CLIENT_TOKEN]) == {"password1", "password2"}
    assert not [r for r in fleet.arm.requests[requests:] if r.method == "PATCH"]
    # Back in reach: the old slot goes.
    fleet.overrides["cloudOnly"] = False
    fleet.at(ROTATION + timedelta(hours=4))
    fleet.run()
    assert len(fleet.arm.state.tokens[CLIENT_TOKEN]) == 1


def test_a_new_certificate_renewal_lead_previews_nothing_on_an_https_site(https_fleet: Fleet) -> None:
    fleet = https_fleet
    applied = converged(fleet)
    _, server_state = fleet.engine.states["dev-tls-server"]
    fleet.overrides["certificateRenewBeforeDays"] = RENEW_BEFORE_DAYS - 1  # not due: no renewal
    preview = fleet.run(preview=True)
    assert changed(fleet) == set() and fleet.engine.replaces == {}
    assert inputs_of(preview, *DOWNSTREAM, SITE_CA, SERVER_CERTIFICATE) != inputs_of(
        applied, *DOWNSTREAM, SITE_CA, SERVER_CERTIFICATE
    )  # the certificates' inputs carry the new lead time ...
    assert inputs_of(preview, *DOWNSTREAM) == inputs_of(applied, *DOWNSTREAM)  # ... nothing else moves
    fleet.run()
    assert changed(fleet) == set()
    assert fleet.engine.states["dev-tls-server"][1] == server_state
    # The new lead time decides the renewal: due one day later than before.
    fleet.at(RENEWAL)
    fleet.run(preview=True)
    assert changed(fleet) == set()
    fleet.at(RENEWAL + timedelta(days=1))
    fleet.run(preview=True)
    assert fleet.engine.replaces == {"dev-tls-server": ["notAfter"]}


# --- a release gone while the connected registry is still activated --------------------------------

PRE_INSTALL = "dev-azure-pre-install-deactivation"


def test_a_release_gone_from_the_cluster_is_installed_again_after_a_deactivation(fleet: Fleet) -> None:
    """helm uninstall, an atomic install rolled back, a rebuilt cluster: a refresh drops the
    release, the next up creates it, and its pod would fail with ALREADY_ACTIVATED."""
    converged(fleet)
    assert fleet.arm.state.connected_registries[CR] == "Active"
    assert fleet.arm.requests_to("POST", "/deactivate") == []

    fleet.release_installed = False
    fleet.at(T0 + timedelta(hours=3))
    preview = fleet.run(preview=True)
    assert changed(fleet) == {PRE_INSTALL}  # the preview says it will deactivate ...
    assert any("deactivates it before installing the release" in w for w in preview.warnings)
    release = preview.one(RELEASE)
    assert preview.by_urn(next(r.urn for r in preview.resources if r.name == PRE_INSTALL)).urn in release.dependencies
    assert fleet.arm.requests_to("POST", "/deactivate") == []  # ... and a preview calls nothing

    fleet.run()
    assert len(fleet.arm.requests_to("POST", "/deactivate")) == 1
    assert fleet.arm.state.connected_registries[CR] == "Inactive"

    # The release is back and has activated the connected registry again: nothing more to do.
    fleet.release_installed = True
    fleet.arm.state.connected_registries[CR] = "Active"
    fleet.run(preview=True)
    assert changed(fleet) == set()
    fleet.run()
    assert len(fleet.arm.requests_to("POST", "/deactivate")) == 1


@pytest.mark.parametrize("installed, activation", [(True, "Active"), (False, "Inactive"), (None, "Active")])
def test_no_deactivation_unless_both_reads_say_so(fleet: Fleet, installed: bool | None, activation: str) -> None:
    converged(fleet)
    fleet.release_installed = installed
    fleet.arm.state.connected_registries[CR] = activation
    result = fleet.run()
    assert changed(fleet) == set()
    assert fleet.arm.requests_to("POST", "/deactivate") == []
    if installed is None:  # unreadable: said, with what to do
        assert any("could not read whether Helm release" in w for w in result.warnings)


# --- adopting a site whose state was lost (docs/runbooks.md, "Adopt a site") ------------------------


def test_a_site_that_lost_its_state_comes_back_without_a_new_password_or_a_deactivation(fleet: Fleet) -> None:
    applied = converged(fleet)
    sync, client = fleet.password("sync-token-password"), fleet.password("client-token-password")
    issued = len(fleet.arm.requests_to("POST", "/generateCredentials"))

    fleet.engine.states.clear()  # the state is gone; Azure, the cluster and the nodes are not
    fleet.overrides.update({"adoptSyncPassword": sync, "adoptClientPassword": f"password1:{client}"})
    fleet.at(T0 + timedelta(hours=3))
    adopted = fleet.run()

    assert len(fleet.arm.requests_to("POST", "/generateCredentials")) == issued
    assert fleet.arm.requests_to("POST", "/deactivate") == []
    assert connection_string_password(adopted) == sync
    assert pull_secret_passwords(adopted) == {client}
    assert inputs_of(adopted, *DOWNSTREAM) == inputs_of(applied, *DOWNSTREAM)
    # The keys are only read at creation: removing them afterwards changes nothing.
    del fleet.overrides["adoptSyncPassword"], fleet.overrides["adoptClientPassword"]
    fleet.run(preview=True)
    assert changed(fleet) == set()


def test_adopting_imports_what_exists_in_azure_and_the_release() -> None:
    result = render_stack(stack="dev", stack_dir=STACK_DIR, config_overrides={"importExisting": True})
    registry = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-edge-registry/providers/Microsoft.ContainerRegistry/registries/contosoedge"
    imports = {r.name: r.options.get("import") for r in result.resources if r.options.get("import")}
    assert imports == {
        "dev-azure-sync-scope-map": f"{registry}/scopeMaps/devship01-sync-scope-map",
        "dev-azure-sync-token": f"{registry}/tokens/devship01-sync-token",
        "dev-azure-client-scope-map": f"{registry}/scopeMaps/devship01-client-scope-map",
        "dev-azure-client-token": f"{registry}/tokens/devship01-client-token",
        "dev-azure-connected-registry": f"{registry}/connectedRegistries/devship01",
        "dev-onprem-release": "connected-registry/connected-registry",
    }
    assert not any(r.options.get("import") for r in render_stack(stack="dev", stack_dir=STACK_DIR).resources)


# --- a client rotation's first step previews nothing downstream ------------------------------------


def test_a_client_password_issued_for_later_previews_no_consumer_change(fleet: Fleet) -> None:
    # The client's new password waits for a sync, so the pull secrets and the nodes' auth keep
    # theirs. (The sync password switches at once: the release changes, as it will.)
    applied = converged(fleet)
    client_1 = fleet.password("client-token-password")
    fleet.at(ROTATION)

    preview = fleet.run(preview=True)
    assert "dev-azure-client-token-password" in changed(fleet)  # the ISSUE step
    assert inputs_of(preview, SECRET, COMMAND) == inputs_of(applied, SECRET, COMMAND)

    issued = fleet.run()
    assert fleet.password("client-token-password", "nextValue") not in ("", client_1)
    assert pull_secret_passwords(issued) == node_auth_passwords(issued) == {client_1}
    assert inputs_of(issued, SECRET, COMMAND) == inputs_of(applied, SECRET, COMMAND)

    # After a sync the SWITCH previews the consumers changing, and up changes them.
    fleet.synced(ROTATION + timedelta(hours=1))
    fleet.at(ROTATION + timedelta(hours=2))
    planned = fleet.run(preview=True)
    assert all(s.plain_inputs()["data"] == UNKNOWN for s in planned.by_type(SECRET))
    switched = fleet.run()
    client_2 = fleet.password("client-token-password")
    assert client_2 != client_1
    assert pull_secret_passwords(switched) == node_auth_passwords(switched) == {client_2}


def test_a_release_created_again_previews_no_deactivation_replacement() -> None:
    # Its id is unknown in that preview; read as not installed, the id is namespace/name.
    result = render_stack(stack="dev", stack_dir=STACK_DIR, preview=True,
                          fakes=CloudFakes(release_new=True, release_installed=False))
    assert result.one("pulumi-python:dynamic/edgeregistry:ConnectedRegistryDeactivation").plain_inputs()["installId"] == (
        "connected-registry/connected-registry/connected-registry/connected-registry"
    )
