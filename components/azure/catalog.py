"""Where repository patterns are expanded: the parent registry's live catalog.

The catalog is a callable so tests and the offline renderer can inject a fake.
"""

from __future__ import annotations

from typing import Callable, Sequence

from components.azure.acr import CatalogError

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
