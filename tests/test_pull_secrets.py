"""The pull secret document, without Pulumi: shape, `auth` encoding, and what it refuses."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from components.cluster.pull_secrets import dockerconfigjson, merged_pull_secret_refs


def test_document_has_exactly_the_docker_config_shape() -> None:
    document = json.loads(dockerconfigjson("10.43.0.10:80", "site1-client", "p4ss"))
    assert document == {
        "auths": {
            "10.43.0.10:80": {
                "username": "site1-client",
                "password": "p4ss",
                "auth": base64.b64encode(b"site1-client:p4ss").decode(),
            }
        }
    }


def test_auth_is_base64_of_user_colon_password() -> None:
    entry = json.loads(dockerconfigjson("10.43.0.10:443", "tok", "a:b=c"))["auths"]["10.43.0.10:443"]
    # Registries split at the first colon, so a colon in the password survives.
    assert base64.b64decode(entry["auth"]).decode() == "tok:a:b=c"


def test_ipv6_endpoint_is_kept_bracketed_as_the_key() -> None:
    document = json.loads(dockerconfigjson("[fd00::10]:80", "tok", "pw"))
    assert list(document["auths"]) == ["[fd00::10]:80"]


def test_document_is_compact_json() -> None:
    # Same bytes as `kubectl create secret docker-registry`: no whitespace to drift on.
    assert " " not in dockerconfigjson("10.43.0.10:80", "tok", "pw")


@pytest.mark.parametrize(
    "endpoint",
    ["http://10.43.0.10:80", "https://10.43.0.10", "10.43.0.10:80/v2", "", "10.43.0.10 :80"],
)
def test_endpoint_with_scheme_or_path_is_refused(endpoint: str) -> None:
    # The kubelet matches the key against the image reference's registry part; these never match.
    with pytest.raises(ValueError, match="host:port"):
        dockerconfigjson(endpoint, "tok", "pw")


@pytest.mark.parametrize("username", ["", "to:k"])
def test_user_name_must_be_non_empty_without_colon(username: str) -> None:
    with pytest.raises(ValueError, match="user name"):
        dockerconfigjson("10.43.0.10:80", username, "pw")


def test_empty_password_is_refused() -> None:
    with pytest.raises(ValueError, match="password"):
        dockerconfigjson("10.43.0.10:80", "tok", "")


@given(
    username=st.text(alphabet=st.characters(codec="utf-8", exclude_characters=":"), min_size=1),
    password=st.text(alphabet=st.characters(codec="utf-8"), min_size=1),
)
def test_any_credentials_round_trip(username: str, password: str) -> None:
    entry = json.loads(dockerconfigjson("127.0.0.1:5000", username, password))["auths"]["127.0.0.1:5000"]
    assert (entry["username"], entry["password"]) == (username, password)
    assert base64.b64decode(entry["auth"]).decode() == f"{username}:{password}"


def test_service_account_refs_keep_existing_and_append_ours_once() -> None:
    existing = [{"name": "vendor-pull"}, {"name": "edge-registry-pull"}, {"name": "vendor-pull"}]
    assert merged_pull_secret_refs(existing, "edge-registry-pull") == [
        {"name": "vendor-pull"},
        {"name": "edge-registry-pull"},
    ]
    assert merged_pull_secret_refs([{"name": "vendor-pull"}], "ours") == [{"name": "vendor-pull"}, {"name": "ours"}]
    assert merged_pull_secret_refs(None, "ours") == [{"name": "ours"}]


def test_login_server_gets_the_same_credentials_as_the_endpoint() -> None:
    # Both image-name forms: `10.43.200.200:443/fleet/app` and `contosoedge.azurecr.io/fleet/app`.
    document = json.loads(dockerconfigjson("10.43.200.200:443", "tok", "pw", "contosoedge.azurecr.io"))
    assert list(document["auths"]) == ["10.43.200.200:443", "contosoedge.azurecr.io"]
    assert document["auths"]["10.43.200.200:443"] == document["auths"]["contosoedge.azurecr.io"]


def test_login_server_with_a_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="without scheme"):
        dockerconfigjson("10.43.200.200:443", "tok", "pw", "https://contosoedge.azurecr.io")
