"""Pure ACR rules: repository expansion, scope-map actions, connection string, registry checks."""

from __future__ import annotations

import pytest

from components.azure import acr

CATALOG = ["fleet/api", "fleet/web", "fleetwood/x", "hello-world", "Other/Thing"]


def test_patterns_expand_against_the_catalog_and_names_pass_through() -> None:
    assert acr.expand_repositories(["fleet/*", "not-yet-pushed"], CATALOG) == [
        "fleet/api", "fleet/web", "not-yet-pushed"
    ]


def test_pattern_matches_only_below_its_namespace() -> None:
    assert "fleetwood/x" not in acr.expand_repositories(["fleet/*"], CATALOG)


def test_pattern_matching_nothing_is_an_error_naming_it() -> None:
    with pytest.raises(acr.CatalogError, match=r"nothing/\*"):
        acr.expand_repositories(["fleet/*", "nothing/*"], CATALOG)


def test_expansion_is_sorted_lower_case_and_deduplicated() -> None:
    assert acr.expand_repositories(["other/*", "other/thing"], CATALOG) == ["other/thing"]


def test_read_only_sync_actions_match_the_az_cli() -> None:
    assert acr.sync_actions("Ship01", ["hello-world"], "ReadOnly") == [
        "repositories/hello-world/content/read",
        "repositories/hello-world/metadata/read",
        "gateway/ship01/config/read",
        "gateway/ship01/config/write",
        "gateway/ship01/message/read",
        "gateway/ship01/message/write",
    ]


def test_read_write_sync_actions_add_write_and_delete() -> None:
    actions = acr.sync_actions("ship01", ["a/b"], "ReadWrite")
    assert actions[:5] == [
        "repositories/a/b/content/read",
        "repositories/a/b/metadata/read",
        "repositories/a/b/content/write",
        "repositories/a/b/content/delete",
        "repositories/a/b/metadata/write",
    ]
    assert len(actions) == 5 + 4


def test_client_actions_are_read_only_and_keep_wildcards() -> None:
    actions = acr.client_actions(["fleet/*", "hello-world"])
    assert actions == [
        "repositories/fleet/*/content/read",
        "repositories/fleet/*/metadata/read",
        "repositories/hello-world/content/read",
        "repositories/hello-world/metadata/read",
    ]
    assert not any(a.endswith(("write", "delete")) for a in actions)


def test_connection_string_format_is_exact() -> None:
    assert acr.connection_string("ship01", "ship01-sync-token", "p@ss", "reg.westeurope.data.azurecr.io") == (
        "ConnectedRegistryName=ship01;SyncTokenName=ship01-sync-token;SyncTokenPassword=p@ss;"
        "ParentGatewayEndpoint=reg.westeurope.data.azurecr.io;ParentEndpointProtocol=https"
    )


@pytest.mark.parametrize(
    ("sku", "data_endpoint", "expected"),
    [("Premium", True, []), ("Standard", True, ["--sku Premium"]), ("Premium", False, ["--data-endpoint-enabled"]),
     ("Basic", False, ["--sku Premium", "--data-endpoint-enabled"])],
)
def test_registry_problems_say_how_to_fix(sku: str, data_endpoint: bool, expected: list[str]) -> None:
    problems = acr.registry_problems(sku, data_endpoint, "myreg")
    assert len(problems) == len(expected)
    for problem, fix in zip(problems, expected, strict=True):
        assert fix in problem and "myreg" in problem
