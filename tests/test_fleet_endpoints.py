"""Fleet status sends EDGE_REGISTRY_ARM_TOKEN only to Azure's ARM endpoints, loopback, and the
hosts allowed with --allow-arm-endpoint (components/fleet/endpoints.py)."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from azure.core.pipeline import PipelineContext, PipelineRequest
from azure.core.rest import HttpRequest

from components.fleet import cli as fleet
from components.fleet.endpoints import KNOWN_ARM_HOSTS, EndpointPolicy, parse_allowed
from components.fleet.listing import EndpointRefused, FleetListingClient, GuardedAuthenticationPolicy
from components.fleet.model import RegistryListing, RegistryRef
from tests.arm_server import FAKE_BEARER, ArmServer, FakeCredential
from tests.test_fleet import SUB, arm_env, fleet_arm_state, make_project  # noqa: F401 (fixture)

TOKEN_ENV = "EDGE_REGISTRY_ARM_TOKEN"


def test_the_known_hosts_are_azure_s_clouds_as_azure_mgmt_core_lists_them() -> None:
    from urllib.parse import urlsplit

    from azure.core import AzureClouds
    from azure.mgmt.core.tools import get_arm_endpoints

    listed = {urlsplit(get_arm_endpoints(cloud)["resource_manager"]).hostname for cloud in AzureClouds}
    assert listed == set(KNOWN_ARM_HOSTS)


@pytest.mark.parametrize("url", [
    "https://management.azure.com",
    "https://management.azure.com/subscriptions/x?api-version=1",
    "https://Management.Azure.com:443/",
    "https://management.usgovcloudapi.net/subscriptions/x",
    "https://management.chinacloudapi.cn",
    "https://127.0.0.1:8443/subscriptions/x",
    "https://127.0.0.5:1",
    "https://[::1]:8443/x",
    "https://localhost:9/x",
])
def test_azure_clouds_and_loopback_get_the_token(url: str) -> None:
    assert EndpointPolicy().refusal(url) is None


@pytest.mark.parametrize(("url", "says"), [
    ("https://evil.example", "https://evil.example is not an Azure ARM endpoint"),
    ("https://management.azure.com.evil.example/x", "--allow-arm-endpoint management.azure.com.evil.example"),
    ("https://management.azure.com:8443/x", "--allow-arm-endpoint management.azure.com:8443"),
    ("https://evil.example@management.azure.com.evil.example/", "not an Azure ARM endpoint"),
    ("https://10.0.0.1/", "--allow-arm-endpoint 10.0.0.1"),
    ("http://management.azure.com/x", "is sent over https only"),
    ("http://127.0.0.1:8080/x", "is sent over https only"),
    ("https://management.azure.com:99999/", "not a URL the token can be sent to"),
])
def test_any_other_endpoint_is_refused_with_the_flag_to_allow_it(url: str, says: str) -> None:
    refusal = EndpointPolicy().refusal(url)
    assert refusal is not None and says in refusal, refusal


def test_an_allowed_host_gets_the_token_at_any_port_or_only_the_port_allowed() -> None:
    policy = EndpointPolicy(frozenset({parse_allowed("ARM.local.azurestack.external"), parse_allowed("proxy.example:8443")}))
    assert policy.refusal("https://arm.local.azurestack.external/subscriptions") is None
    assert policy.refusal("https://arm.local.azurestack.external:30024/x") is None
    assert policy.refusal("https://proxy.example:8443/x") is None
    assert policy.refusal("https://proxy.example/x") is not None
    assert policy.refusal("https://other.example/x") is not None
    assert policy.refusal("http://arm.local.azurestack.external/x") is not None  # still https only


@pytest.mark.parametrize(("text", "allowed"), [
    ("host.example", "host.example"), ("Host.Example:8443", "host.example:8443"),
    ("https://host.example/", "host.example"), ("10.0.0.1", "10.0.0.1"),
])
def test_the_flag_takes_a_host_and_port(text: str, allowed: str) -> None:
    assert parse_allowed(text) == allowed


@pytest.mark.parametrize("text", ["", "http://host.example", "host.example/path", "bad host", "host:0",
                                  "host:99999", "user@host.example", "999.1.1.1", "host.example\n:1"])
def test_a_bad_flag_value_is_a_usage_error(text: str) -> None:
    with pytest.raises(ValueError):
        parse_allowed(text)
    with pytest.raises(SystemExit) as exit_info:
        fleet.parser().parse_args(["status", "--allow-arm-endpoint", text])
    assert exit_info.value.code == 2


def _request(url: str) -> PipelineRequest[Any]:
    return PipelineRequest(HttpRequest("GET", url), PipelineContext(None))


def test_every_request_is_checked_before_the_token_is_attached() -> None:
    """A nextLink or a redirect to another host never gets the token."""
    credential = FakeCredential()
    policy = GuardedAuthenticationPolicy(credential, "https://management.azure.com/.default",
                                         endpoint_policy=EndpointPolicy())
    elsewhere = _request("https://evil.example/subscriptions/x?$skipToken=1")
    with pytest.raises(EndpointRefused, match="evil.example is not an Azure ARM endpoint"):
        policy.on_request(elsewhere)
    assert "Authorization" not in elsewhere.http_request.headers and not credential.scopes
    arm = _request("https://management.azure.com/subscriptions/x")
    policy.on_request(arm)
    assert arm.http_request.headers["Authorization"].startswith("Bearer ")


def test_a_refused_registry_is_never_asked_and_the_others_are(arm: ArmServer) -> None:
    fleet_arm_state(arm, datetime.now(UTC))
    here = RegistryRef(arm.base_url, SUB, "rg-edge", "contosoedge")
    there = RegistryRef("https://arm.invalid", SUB, "rg-edge", "contosoedge")
    # Loopback refused too for this test, to show the guard stops the request itself.
    strict = EndpointPolicy()
    credential = FakeCredential()

    class NoLoopback(EndpointPolicy):
        def refusal(self, url: str) -> str | None:
            return "refused for the test" if "127.0.0.1" in url else strict.refusal(url)

    with FleetListingClient(credential, connection_verify=arm.ca_pem, endpoint_policy=strict) as client:
        listing = client.list_registry(there)
        assert listing.error is not None and listing.error.startswith("not asked: https://arm.invalid is not")
        assert "--allow-arm-endpoint arm.invalid" in listing.error
        assert client.list_registry(here).error is None
    asked = len(arm.requests)
    with FleetListingClient(credential, connection_verify=arm.ca_pem, endpoint_policy=NoLoopback()) as client:
        assert client.list_registry(here).error == "not asked: refused for the test"
    assert len(arm.requests) == asked  # nothing sent


def _run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = fleet.main(["status", *args], stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_a_stack_pointing_the_token_elsewhere_is_an_unreadable_registry_and_the_rest_is_checked(
    tmp_path: Path, arm: ArmServer, arm_env: dict[str, str]  # noqa: F811
) -> None:
    fleet_arm_state(arm, datetime.now(UTC))
    project = make_project(tmp_path, arm, ["ship01", "ship08"])
    ship08 = project / "Pulumi.ship08.yaml"
    ship08.write_text(ship08.read_text().replace(arm.base_url, "https://arm.invalid"))
    code, out, err = _run("--project-dir", str(project), "--json", "--no-progress")
    assert code == 1 and "Traceback" not in err, err
    report = json.loads(out)
    assert [s["stack"] for s in report["sites"]] == ["ship01"]
    (unreadable,) = report["unreadableRegistries"]
    assert unreadable["stacks"] == ["ship08"] and unreadable["armEndpoint"] == "https://arm.invalid"
    assert unreadable["error"].startswith("not asked: https://arm.invalid is not an Azure ARM endpoint")
    assert f"{TOKEN_ENV} is not sent there" in unreadable["error"] and FAKE_BEARER not in out


def test_the_flag_reaches_the_listing_client_and_only_with_the_bearer_token(
    tmp_path: Path, arm: ArmServer, arm_env: dict[str, str], monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    fleet_arm_state(arm, datetime.now(UTC))
    project = make_project(tmp_path, arm, ["ship01"])
    seen: list[EndpointPolicy | None] = []

    def recording(*args: Any, endpoint_policy: EndpointPolicy | None = None, **kwargs: Any) -> FleetListingClient:
        seen.append(endpoint_policy)
        return FleetListingClient(*args, endpoint_policy=endpoint_policy, **kwargs)

    monkeypatch.setattr(fleet, "FleetListingClient", recording)
    code, _out, err = _run("--project-dir", str(project), "--no-progress",
                           "--allow-arm-endpoint", "arm.local.azurestack.external",
                           "--allow-arm-endpoint", "proxy.example:8443")
    assert code == 0, err
    assert seen[-1] == EndpointPolicy(frozenset({"arm.local.azurestack.external", "proxy.example:8443"}))
    # Without the bearer token, DefaultAzureCredential asks Entra ID per endpoint: no guard.
    monkeypatch.delenv(TOKEN_ENV)
    monkeypatch.setattr(FleetListingClient, "list_registry",
                        lambda self, registry, on_page=None: RegistryListing(registry, error="not listed in this test"))
    _run("--project-dir", str(project), "--no-progress")
    assert seen[-1] is None
