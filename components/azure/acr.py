"""Pure ACR domain logic: repository expansion, scope-map action lists, the connection string.

No Pulumi here, so every rule is testable with plain values.
"""

from __future__ import annotations

from typing import Iterable, Literal

Mode = Literal["ReadOnly", "ReadWrite"]

_READ = ("content/read", "metadata/read")
_WRITE = ("content/write", "content/delete", "metadata/write")
_GATEWAY = ("config/read", "config/write", "message/read", "message/write")


class CatalogError(Exception):
    """A repository pattern matched nothing, or the catalog could not be read."""


def is_pattern(entry: str) -> bool:
    """``namespace/*`` selects every repository below that namespace."""
    return entry.endswith("/*")


def expand_repositories(entries: Iterable[str], catalog: Iterable[str]) -> list[str]:
    """Expand ``ns/*`` patterns against the parent registry's catalog, as the manual procedure
    does with ``az acr repository list`` + a filter. Explicit names pass through (they may not
    exist yet). The result is sorted and free of duplicates; a pattern that matches nothing is
    an error naming it."""
    names = sorted({repo.lower() for repo in catalog})
    result: set[str] = set()
    empty: list[str] = []
    for entry in entries:
        if is_pattern(entry):
            prefix = entry[:-1].lower()  # keep the trailing "/"
            matched = [name for name in names if name.startswith(prefix)]
            if not matched:
                empty.append(entry)
            result.update(matched)
        else:
            result.add(entry.lower())
    if empty:
        raise CatalogError(
            "repository pattern(s) matched no repository in the parent registry: "
            + ", ".join(empty)
        )
    return sorted(result)


def sync_actions(connected_registry_name: str, repositories: Iterable[str], mode: Mode) -> list[str]:
    """The sync scope map's actions exactly as ``az acr connected-registry create`` builds them."""
    per_repo = _READ + (_WRITE if mode == "ReadWrite" else ())
    actions = [
        f"repositories/{repo.lower()}/{action}" for repo in repositories for action in per_repo
    ]
    gateway = connected_registry_name.lower()
    actions += [f"gateway/{gateway}/{action}" for action in _GATEWAY]
    return actions


def client_actions(repositories: Iterable[str]) -> list[str]:
    """Read-only client actions; ACR accepts ``ns/*`` wildcards here, so patterns stay patterns."""
    return [f"repositories/{repo.lower()}/{action}" for repo in repositories for action in _READ]


def connection_string(
    connected_registry_name: str, sync_token_name: str, sync_token_password: str, gateway_endpoint: str
) -> str:
    """The on-prem install's connection string, in the exact form ``get-settings`` prints."""
    return (
        f"ConnectedRegistryName={connected_registry_name};"
        f"SyncTokenName={sync_token_name};"
        f"SyncTokenPassword={sync_token_password};"
        f"ParentGatewayEndpoint={gateway_endpoint};"
        "ParentEndpointProtocol=https"
    )


def registry_problems(sku: str | None, data_endpoint_enabled: bool | None, registry_name: str) -> list[str]:
    """Why the parent registry cannot host connected registries, with how to fix it."""
    problems = []
    if (sku or "").lower() != "premium":
        problems.append(
            f"registry {registry_name} is {sku or 'of unknown SKU'}; connected registries need Premium: "
            f"az acr update -n {registry_name} --sku Premium"
        )
    if not data_endpoint_enabled:
        problems.append(
            f"registry {registry_name} has no dedicated data endpoint; enable it: "
            f"az acr update -n {registry_name} --data-endpoint-enabled true"
        )
    return problems
