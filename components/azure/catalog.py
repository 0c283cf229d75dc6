"""Where repository patterns are expanded: the parent registry's live catalog.

The catalog is a callable so tests and the offline renderer can inject a fake. The program
(components/site.py) and the readiness check (components/ready/) expand a site's
``repositories`` with :func:`synced_repositories`, so both see the same sync scope.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Sequence

from components.azure import acr
from components.azure.acr import CatalogError
from components.config.azure import MAX_SCOPE_MAP_REPOSITORIES
from components.config.fields import PROJECT, ConfigError

if TYPE_CHECKING:
    from components.config.site import SiteConfig

#: Given the parent registry's login server, return every repository name in it.
CatalogSource = Callable[[str], Sequence[str]]


def azure_catalog(login_server: str) -> list[str]:
    """List repositories with azure-containerregistry, as ``az acr repository list`` does."""
    from azure.containerregistry import ContainerRegistryClient
    from azure.core.exceptions import AzureError
    from azure.identity import DefaultAzureCredential

    try:
        with ContainerRegistryClient(
            f"https://{login_server}", DefaultAzureCredential(), audience="https://containerregistry.azure.net"
        ) as client:
            return list(client.list_repository_names())
    except AzureError as error:
        # The SDK's message names the cause (auth, network); no secret is involved here.
        raise CatalogError(f"could not list repositories of {login_server}: {error}") from None


def synced_repositories(site: SiteConfig, catalog: CatalogSource, login_server: str) -> list[str]:
    """Explicit names as given; ``ns/*`` patterns expanded against the live catalog."""
    if any(acr.is_pattern(entry) for entry in site.repositories):
        try:
            repositories = acr.expand_repositories(site.repositories, catalog(login_server))
        except acr.CatalogError as error:
            raise ConfigError([f"{PROJECT}:repositories: {error}"]) from None
    else:
        repositories = sorted({r.lower() for r in site.repositories})
    if len(repositories) > MAX_SCOPE_MAP_REPOSITORIES:
        raise ConfigError([
            f"{PROJECT}:repositories: the patterns expand to {len(repositories)} repositories; a scope map "
            f"holds at most {MAX_SCOPE_MAP_REPOSITORIES}: narrow the patterns or split the site"
        ])
    return repositories
