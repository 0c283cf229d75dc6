"""Contract tests: TokenPassword and ConnectedRegistryDeactivation against a local fake ARM.

The real SDK (azure-mgmt-containerregistry) talks HTTPS to tests/arm_server.py, so these tests
check the exact requests ARM would receive (method, path, api-version, JSON body) and that both
the 200 and the 202 + Location (long-running operation) answers work.
"""

from __future__ import annotations

import base64
import pickletools
import contextvars
import traceback
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dill
import pulumi
import pytest
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.rpc import UNKNOWN

from components.azure import token_password
from components.azure.arm import API_VERSION, ArmClient, ArmError, GeneratedPassword, credential_scope_for
from components.azure.deactivation import ConnectedRegistryDeactivation, ConnectedRegistryDeactivationProvider
from components.azure.token_password import NoFreeSlotError, TokenPassword, TokenPasswordProvider
from tests.arm_server import ArmServer, FakeCredential

SUB = "00000000-0000-0000-0000-000000000000"
RG = "myResourceGroup"
REGISTRY = "myRegistry"
REGISTRY_PATH = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.ContainerRegistry/registries/{REGISTRY}"
TOKEN = "syncToken"
TOKEN_ID = f"{REGISTRY_PATH}/tokens/{TOKEN}"
CR = "myConnectedRegistry"
T0 = datetime(2026, 1, 10, 12, 0, 0, tzinfo=UTC)


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[datetime], None]:
    """Set the time TokenPassword sees."""
    current = {"now": T0}
    monkeypatch.setattr(token_password, "now", lambda: current["now"])

    def set_time(moment: datetime) -> None:
        current["now"] = moment

    return set_time


@pytest.fixture
def passwords(client_factory: Callable[[str, str | None], ArmClient]) -> TokenPasswordProvider:
    return TokenPasswordProvider(client_factory)


@pytest.fixture
def deactivation(client_factory: Callable[[str, str | None], ArmClient]) -> ConnectedRegistryDeactivationProvider:
    return ConnectedRegistryDeactivationProvider(client_factory)


def password_props(arm: ArmServer, **overrides: Any) -> dict[str, Any]:
    """TokenPassword inputs as the engine hands them to the provider (numbers arrive as floats)."""
    props = {
        "subscriptionId": SUB,
        "resourceGroup": RG,
        "registryName": REGISTRY,
        "tokenName": TOKEN,
        "tokenId": TOKEN_ID,
        "expiryDays": 30.0,
        "rotateBeforeDays": 7.0,
        "armEndpoint": arm.base_url,
    }
    props.update(overrides)
    return props


def deactivation_props(arm: ArmServer, **overrides: Any) -> dict[str, Any]:
    props = {
        "subscriptionId": SUB,
        "resourceGroup": RG,
        "registryName": REGISTRY,
        "connectedRegistryName": CR,
        "installId": "connected-registry/cr/uid-1",
        "armEndpoint": arm.base_url,
    }
    props.update(overrides)
    return props


def expected_expiry(days: int = 30) -> str:
    return (T0 + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- TokenPassword: create -------------------------------------------------------------------


def test_create_generates_in_password1_when_both_slots_are_free(
    arm: ArmServer, passwords: TokenPasswordProvider, credential: FakeCredential, clock: Any
) -> None:
    arm.state.add_token(TOKEN)

    result = passwords.create(password_props(arm))

    assert result.id == f"{TOKEN_ID}/password1"
    assert result.outs is not None
    assert result.outs["slot"] == "password1"
    assert result.outs["value"] == arm.state.issued_values[0]
    assert result.outs["username"] == TOKEN
    assert result.outs["expiry"] == expected_expiry()
    # The exact wire contract: read the token, then one generateCredentials for the chosen slot.
    assert [(r.method, r.path) for r in arm.requests] == [
        ("GET", f"{REGISTRY_PATH}/tokens/{TOKEN}"),
        ("POST", f"{REGISTRY_PATH}/generateCredentials"),
    ]
    assert all(r.query == {"api-version": API_VERSION} for r in arm.requests)
    assert arm.requests[1].body == {"tokenId": TOKEN_ID, "name": "password1", "expiry": expected_expiry()}
    # A non-Azure endpoint gets "<endpoint>/.default" as its token scope.
    assert credential.scopes[0] == (f"{arm.base_url}/.default",)


def test_create_uses_password2_when_password1_is_taken(
    arm: ArmServer, passwords: TokenPasswordProvider, clock: Any
) -> None:
    arm.state.add_token(TOKEN, "password1")

    result = passwords.create(password_props(arm))

    assert result.outs is not None
    assert result.outs["slot"] == "password2"
    (generate,) = arm.requests_to("POST", "/generateCredentials")
    assert generate.body["name"] == "password2"
    assert set(arm.state.tokens[TOKEN]) == {"password1", "password2"}


def test_create_fails_clearly_when_both_slots_are_taken(
    arm: ArmServer, passwords: TokenPasswordProvider, clock: Any
) -> None:
    arm.state.add_token(TOKEN, "password1", "password2")

    with pytest.raises(NoFreeSlotError) as failure:
        passwords.create(password_props(arm))

    message = str(failure.value)
    assert f"token '{TOKEN}'" in message
    assert "password1" in message and "password2" in message
    assert arm.requests_to("POST", "/generateCredentials") == []  # nothing was overwritten


def test_create_follows_202_location_to_the_operation_result(
    arm: ArmServer, passwords: TokenPasswordProvider, clock: Any
) -> None:
    arm.state.add_token(TOKEN)
    arm.state.generate_mode = "202"
    arm.state.polls_before_done = 2

    result = passwords.create(password_props(arm))

    assert result.outs is not None
    assert result.outs["value"] == arm.state.issued_values[0]
    polls = [r for r in arm.requests if "/operationStatuses/" in r.path]
    # Two "still running" answers, then the result: the SDK really polled the Location.
    assert len(polls) == 3
    assert all(r.method == "GET" and r.path.startswith(f"{REGISTRY_PATH}/operationStatuses/") for r in polls)


def test_create_fails_when_token_is_missing(arm: ArmServer, passwords: TokenPasswordProvider, clock: Any) -> None:
    with pytest.raises(ArmError, match=f"token '{TOKEN}' not found in registry '{REGISTRY}'"):
        passwords.create(password_props(arm))


# --- TokenPassword: delete -------------------------------------------------------------------


def test_delete_removes_only_its_own_slot(arm: ArmServer, passwords: TokenPasswordProvider) -> None:
    arm.state.add_token(TOKEN, "password1", "password2")

    passwords.delete(f"{TOKEN_ID}/password1", {**password_props(arm), "slot": "password1"})

    (patch,) = arm.requests_to("PATCH", f"/tokens/{TOKEN}")
    assert patch.query == {"api-version": API_VERSION}
    assert patch.body == {"properties": {"credentials": {"passwords": [{"name": "password2"}]}}}
    assert set(arm.state.tokens[TOKEN]) == {"password2"}


def test_delete_of_the_last_password_sends_an_empty_list(arm: ArmServer, passwords: TokenPasswordProvider) -> None:
    arm.state.add_token(TOKEN, "password2")

    passwords.delete(f"{TOKEN_ID}/password2", {**password_props(arm), "slot": "password2"})

    (patch,) = arm.requests_to("PATCH", f"/tokens/{TOKEN}")
    assert patch.body == {"properties": {"credentials": {"passwords": []}}}
    assert arm.state.tokens[TOKEN] == {}


@pytest.mark.parametrize("token_exists", [False, True], ids=["token-gone", "slot-already-empty"])
def test_delete_is_a_no_op_when_already_gone(
    arm: ArmServer, passwords: TokenPasswordProvider, token_exists: bool
) -> None:
    if token_exists:
        arm.state.add_token(TOKEN, "password2")

    passwords.delete(f"{TOKEN_ID}/password1", {**password_props(arm), "slot": "password1"})

    assert arm.requests_to("PATCH", f"/tokens/{TOKEN}") == []
    if token_exists:
        assert set(arm.state.tokens[TOKEN]) == {"password2"}


# --- TokenPassword: diff, update, rotation ---------------------------------------------------


def _state_after_create(arm: ArmServer, passwords: TokenPasswordProvider) -> dict[str, Any]:
    arm.state.add_token(TOKEN)
    result = passwords.create(password_props(arm))
    assert result.outs is not None
    return result.outs


def test_diff_reports_no_change_before_the_rotation_window(
    arm: ArmServer, passwords: TokenPasswordProvider, clock: Callable[[datetime], None]
) -> None:
    olds = _state_after_create(arm, passwords)
    clock(T0 + timedelta(days=22, hours=23))  # window opens at day 23 (30 - 7)

    diff = passwords.diff("id", olds, password_props(arm))

    assert diff.changes is False
    assert diff.replaces == []


@pytest.mark.parametrize("elapsed", [timedelta(days=23), timedelta(days=29), timedelta(days=45)])
def test_diff_updates_inside_the_rotation_window(
    arm: ArmServer, passwords: TokenPasswordProvider, clock: Callable[[datetime], None], elapsed: timedelta
) -> None:
    olds = _state_after_create(arm, passwords)
    clock(T0 + elapsed)

    diff = passwords.diff("id", olds, password_props(arm))

    # Rotation is an update that takes one step at a time (components/azure/rotation.py), never a
    # replacement whose delete would remove the old slot in the same run.
    assert diff.changes is True
    assert diff.replaces == []
    assert diff.delete_before_replace is None


@pytest.mark.parametrize(
    "change",
    [
        {"tokenId": f"{REGISTRY_PATH}/tokens/otherToken", "tokenName": "otherToken"},
        {"registryName": "otherRegistry"},
        {"tokenId": UNKNOWN},  # preview while the token is being replaced
    ],
    ids=["token", "registry", "unknown-token-id"],
)
def test_diff_replaces_when_the_token_changes(
    arm: ArmServer, passwords: TokenPasswordProvider, clock: Any, change: dict[str, Any]
) -> None:
    olds = _state_after_create(arm, passwords)

    diff = passwords.diff("id", olds, password_props(arm, **change))

    assert diff.changes is True
    assert diff.replaces is not None
    assert set(diff.replaces) == set(change)


def test_tuning_inputs_alone_are_no_update(arm: ArmServer, passwords: TokenPasswordProvider, clock: Any) -> None:
    # No change: the engine records the new inputs and keeps the outputs (an update would preview
    # every output, the password too, as unknown). The next step's update takes them.
    olds = _state_after_create(arm, passwords)
    news = password_props(arm, expiryDays=60.0, armEndpoint=arm.base_url + "/")

    diff = passwords.diff("id", olds, news)
    updated = passwords.update("id", olds, news).outs

    assert diff.changes is False and diff.replaces == []
    assert updated is not None
    assert updated["expiryDays"] == 60.0
    # The password itself is untouched by an update.
    assert {k: updated[k] for k in ("slot", "value", "expiry")} == {k: olds[k] for k in ("slot", "value", "expiry")}


def test_check_rejects_a_window_as_long_as_the_lifetime_and_a_mismatched_token(arm: ArmServer) -> None:
    news = password_props(arm, rotateBeforeDays=30.0, tokenId=f"{REGISTRY_PATH}/tokens/elsewhere")

    failures = TokenPasswordProvider().check({}, news).failures

    assert {f.property for f in failures} == {"rotateBeforeDays", "tokenId"}


def test_check_accepts_unknowns_during_preview(arm: ArmServer) -> None:
    assert TokenPasswordProvider().check({}, password_props(arm, tokenId=UNKNOWN)).failures == []


def test_read_records_a_slot_removed_outside_pulumi(
    arm: ArmServer, passwords: TokenPasswordProvider, clock: Any
) -> None:
    state = _state_after_create(arm, passwords)
    assert passwords.read("id", state).outs["missing"] == []

    arm.state.tokens[TOKEN].clear()

    refreshed = passwords.read("id", state)
    # Kept in the state and marked: the next up re-issues it (tests/test_rotation.py).
    assert refreshed.id == "id"
    assert refreshed.outs["missing"] == ["password1"]


# --- secrets ---------------------------------------------------------------------------------


def test_a_password_arm_issued_but_did_not_return_is_freed_and_not_shown(
    arm: ArmServer, passwords: TokenPasswordProvider, clock: Any
) -> None:
    arm.state.add_token(TOKEN)
    arm.state.generate_wrong_slot = True  # ARM answers with a value, but for the other slot

    with pytest.raises(ArmError) as failure:
        passwords.create(password_props(arm))

    issued = arm.state.issued_values[0]
    shown = "".join(traceback.format_exception(failure.value)) + repr(failure.value)
    assert "returned no value for slot 'password1'" in shown
    assert issued not in shown
    # The orphaned password was removed again, so the failed create leaks no slot.
    assert arm.state.tokens[TOKEN] == {}


def test_no_error_message_on_the_create_paths_contains_a_password(
    arm: ArmServer, passwords: TokenPasswordProvider, clock: Any
) -> None:
    arm.state.add_token(TOKEN)
    first = passwords.create(password_props(arm)).outs
    assert first is not None
    second = passwords.create(password_props(arm)).outs
    assert second is not None

    with pytest.raises(NoFreeSlotError) as failure:
        passwords.create(password_props(arm))

    shown = "".join(traceback.format_exception(failure.value))
    assert first["value"] not in shown and second["value"] not in shown


def test_generated_password_repr_hides_the_value() -> None:
    password = GeneratedPassword(slot="password1", value="s3cr3t-value", expiry=None, username=TOKEN)
    assert "s3cr3t-value" not in repr(password)


# --- Pulumi registration: secret output and replacement options ------------------------------


class _EchoMocks(pulumi.runtime.Mocks):
    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None


class _RecordingMonitor(MockMonitor):
    """Sees the whole RegisterResource request (options included), which MockResourceArgs hides."""

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.requests: list[Any] = []

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        self.requests.append(request)
        return super().RegisterResource(request)


def _register(build: Callable[[], pulumi.CustomResource]) -> tuple[Any, pulumi.CustomResource]:
    """Construct a resource under mocks; return its RegisterResource request and the resource.

    Runs in a copied context: Pulumi's settings are context variables, so other tests' mocks
    are left as they were.
    """

    def run() -> Any:
        mocks = _EchoMocks()
        monitor = _RecordingMonitor(mocks)
        pulumi.runtime.set_mocks(mocks, monitor=monitor, preview=False)

        built: list[pulumi.CustomResource] = []

        @pulumi.runtime.test
        def program() -> pulumi.Output[Any]:
            built.append(build())
            return built[0].urn

        program()
        (request,) = [r for r in monitor.requests if r.type != "pulumi:pulumi:Stack"]
        return request, built[0]

    return contextvars.copy_context().run(run)


def test_token_password_value_is_a_secret_output_and_caller_options_are_kept() -> None:
    request, resource = _register(
        lambda: TokenPassword(
            "sync-password",
            subscription_id=SUB,
            resource_group=RG,
            registry_name=REGISTRY,
            token_name=TOKEN,
            token_id=TOKEN_ID,
            expiry_days=30,
            rotate_before_days=7,
            opts=pulumi.ResourceOptions(additional_secret_outputs=["username"], protect=True),
        )
    )

    assert set(request.additionalSecretOutputs) == {"value", "nextValue", "username"}
    # The outputs the site reads are attributes of the resource.
    assert all(isinstance(getattr(resource, k), pulumi.Output) for k in ("slot", "value", "expiry", "username"))
    assert request.protect is True
    assert request.type == "pulumi-python:dynamic/edgeregistry:TokenPassword"
    assert not request.deleteBeforeReplace  # rotation must be create-before-delete
    assert {"subscriptionId", "resourceGroup", "registryName", "tokenName", "tokenId", "expiryDays"} <= set(
        request.object.keys()
    )


def test_deactivation_is_always_delete_before_replace() -> None:
    request, _ = _register(
        lambda: ConnectedRegistryDeactivation(
            "deactivation",
            subscription_id=SUB,
            resource_group=RG,
            registry_name=REGISTRY,
            connected_registry_name=CR,
            install_id="ns/name/uid",
        )
    )

    assert request.deleteBeforeReplace is True
    assert request.type == "pulumi-python:dynamic/edgeregistry:ConnectedRegistryDeactivation"


# --- ConnectedRegistryDeactivation -----------------------------------------------------------


def test_deactivation_create_calls_nothing_and_records_its_inputs(
    arm: ArmServer, deactivation: ConnectedRegistryDeactivationProvider
) -> None:
    result = deactivation.create(deactivation_props(arm))

    assert result.outs == deactivation_props(arm)
    assert arm.requests == []


@pytest.mark.parametrize("mode", ["200", "202"])
def test_deactivation_delete_posts_deactivate(
    arm: ArmServer, deactivation: ConnectedRegistryDeactivationProvider, mode: str
) -> None:
    arm.state.connected_registries[CR] = "Active"
    arm.state.deactivate_mode = mode  # type: ignore[assignment]

    deactivation.delete("id", deactivation_props(arm))

    (post,) = [r for r in arm.requests if r.method == "POST"]
    assert post.path == f"{REGISTRY_PATH}/connectedRegistries/{CR}/deactivate"
    assert post.query == {"api-version": API_VERSION}
    assert post.body is None
    assert arm.state.connected_registries[CR] == "Inactive"
    polls = [r for r in arm.requests if "/operationStatuses/" in r.path]
    assert len(polls) == (0 if mode == "200" else 2)
    assert all(r.path.startswith(f"{REGISTRY_PATH}/connectedRegistries/{CR}/operationStatuses/") for r in polls)


def test_deactivation_delete_treats_404_as_already_gone(
    arm: ArmServer, deactivation: ConnectedRegistryDeactivationProvider
) -> None:
    deactivation.delete("id", deactivation_props(arm))  # no connected registry on the server

    assert [(r.method, r.path) for r in arm.requests] == [
        ("POST", f"{REGISTRY_PATH}/connectedRegistries/{CR}/deactivate")
    ]


def test_deactivation_delete_surfaces_other_errors(arm: ArmServer, tmp_path: Path) -> None:
    # A credential ARM rejects (401) must fail the delete, or the state would claim a deactivation.
    def unauthorised(subscription_id: str, endpoint: str | None) -> ArmClient:
        class Rejected(FakeCredential):
            def get_token(self, *scopes: str, **kwargs: Any) -> Any:
                token = super().get_token(*scopes, **kwargs)
                return type(token)("not-the-right-token", token.expires_on)

        return ArmClient(
            subscription_id,
            arm_endpoint=endpoint,
            credential=Rejected(),
            polling_interval=0,
            connection_verify=arm.ca_pem,
            retry_total=0,
        )

    arm.state.connected_registries[CR] = "Active"
    with pytest.raises(Exception, match="401|Unauthorized|no token"):
        ConnectedRegistryDeactivationProvider(unauthorised).delete("id", deactivation_props(arm))
    assert arm.state.connected_registries[CR] == "Active"


def test_deactivation_diff_replaces_on_unknown_install_id(arm: ArmServer) -> None:
    olds = deactivation_props(arm)

    diff = ConnectedRegistryDeactivationProvider().diff("id", olds, deactivation_props(arm, installId=UNKNOWN))

    assert diff.changes is True
    assert diff.replaces == ["installId"]
    assert diff.delete_before_replace is True


def test_deactivation_diff_replaces_on_a_new_install_and_not_otherwise(arm: ArmServer) -> None:
    provider = ConnectedRegistryDeactivationProvider()
    olds = deactivation_props(arm)

    same = provider.diff("id", olds, deactivation_props(arm))
    reinstall = provider.diff("id", olds, deactivation_props(arm, installId="connected-registry/cr/uid-2"))
    endpoint = provider.diff("id", olds, deactivation_props(arm, armEndpoint="https://management.azure.com"))

    assert (same.changes, same.replaces) == (False, [])
    assert (reinstall.changes, reinstall.replaces) == (True, ["installId"])
    assert (endpoint.changes, endpoint.replaces) == (True, [])  # a URL change must not deactivate


# --- ArmClient details -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "scope"),
    [
        ("https://management.azure.com/", "https://management.azure.com/.default"),
        ("https://management.usgovcloudapi.net", "https://management.core.usgovcloudapi.net/.default"),
        ("https://management.chinacloudapi.cn", "https://management.chinacloudapi.cn/.default"),
        ("https://management.local.azurestack.external", "https://management.local.azurestack.external/.default"),
    ],
)
def test_credential_scope_follows_the_arm_endpoint(endpoint: str, scope: str) -> None:
    assert credential_scope_for(endpoint) == scope


@pytest.mark.parametrize("provider_class", [TokenPasswordProvider, ConnectedRegistryDeactivationProvider])
def test_providers_pickle_small_and_without_the_azure_sdk(provider_class: type) -> None:
    # The engine stores the dill-pickled provider in the state and unpickles it in its own process.
    pickled = base64.b64decode(serialize_provider(provider_class()))

    assert len(pickled) < 1024
    # Every module the pickle names is the project's own (the providers live in components.azure).
    named = [arg for op, arg, _ in pickletools.genops(pickled) if op.name in ("SHORT_BINUNICODE", "BINUNICODE")]
    modules = {name for name in named if "." in name or name == "components"}
    assert modules and all(m.startswith("components.") for m in modules), modules
    assert b"azure.identity" not in pickled and b"azure.mgmt" not in pickled
    assert type(dill.loads(pickled)) is provider_class


# --- adopting a password in use (docs/runbooks.md, "Adopt a site") ---------------------------------


def test_create_adopts_the_password_in_use_without_issuing_one(arm: ArmServer, passwords: TokenPasswordProvider) -> None:
    arm.state.add_token(TOKEN, "password2", expiry="2027-03-01T00:00:00Z")
    outs = passwords.create(password_props(arm, role="client", adopt="the-password-in-use")).outs

    assert (outs["slot"], outs["value"], outs["expiry"]) == ("password2", "the-password-in-use", "2027-03-01T00:00:00Z")
    assert "adopt" not in outs  # read by create, never kept beside the outputs
    assert arm.requests_to("POST", "/generateCredentials") == []
    assert set(arm.state.tokens[TOKEN]) == {"password2"}
    # Later runs ignore it: its removal from the config is no change.
    assert not passwords.diff("id", outs, password_props(arm, role="client")).changes


def test_adopting_names_the_slot_when_the_token_holds_two(arm: ArmServer, passwords: TokenPasswordProvider) -> None:
    arm.state.add_token(TOKEN, "password1", "password2")
    with pytest.raises(token_password.AdoptError) as caught:
        passwords.create(password_props(arm, role="sync", adopt="pw"))
    assert str(caught.value).startswith("edge-registry:adoptSyncPassword: token 'syncToken' holds 2 passwords")
    assert "password1:VALUE or password2:VALUE" in str(caught.value)
    assert passwords.create(password_props(arm, role="sync", adopt="password1:pw")).outs["slot"] == "password1"
    with pytest.raises(token_password.AdoptError, match="has no password in password2"):
        arm.state.add_token(TOKEN, "password1")
        passwords.create(password_props(arm, role="sync", adopt="password2:pw"))
    assert arm.requests_to("POST", "/generateCredentials") == []
