"""What the parent (cloud) registry holds of an image: its digest and when it was pushed there.

The readiness check (components/ready/) compares every node's answer with the digest read here,
and the connected registry's last sync with the push time. Read with azure-containerregistry,
as the program lists the catalog (components/azure/catalog.py): a tag's properties give the
digest it points to and when it last moved (``/acr/v1/<repository>/_tags/<tag>``), a digest's
manifest properties when it was created (``/acr/v1/<repository>/_manifests/<digest>``). Only
reads; the credential is the program's (components/azure/credentials.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from components.azure.acr import CatalogError
from components.config.images import ImageReference

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

#: The audience of ACR's data plane in the public cloud, as components/azure/catalog.py uses.
ACR_AUDIENCE = "https://containerregistry.azure.net"


@dataclass(frozen=True)
class CloudImage:
    """One image as the parent registry reports it."""

    digest: str | None
    """The manifest's digest (the tag's current one); None: not in the registry."""
    pushed_at: datetime | None = None
    """When the tag last moved to this digest (a digest: when its manifest was pushed)."""
    error: str | None = None
    """Why the registry could not be read for this image (then nothing else is known)."""


class CloudRegistry(Protocol):
    """The parent registry's content, as the readiness check reads it."""

    def repositories(self) -> list[str]:
        """Every repository (the catalog ``ns/*`` patterns are expanded against)."""
        ...

    def image(self, image: ImageReference) -> CloudImage:
        """The image's digest and push time; never raises."""
        ...


class AcrCloudRegistry:
    """The parent registry read with azure-containerregistry. Use as a context manager.

    :param login_server: the registry's login server as ARM reports it (``<name>.azurecr.io``).
    :param credential: an azure-core ``TokenCredential`` (ACR exchanges it for a registry token).
    :param client_kwargs: passed to the SDK client (``connection_verify``, retries).
    """

    def __init__(self, login_server: str, credential: TokenCredential, **client_kwargs: Any) -> None:
        from azure.containerregistry import ContainerRegistryClient

        self.login_server = login_server
        self._client = ContainerRegistryClient(
            f"https://{login_server}", credential, audience=ACR_AUDIENCE, **client_kwargs
        )

    def __enter__(self) -> AcrCloudRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.close()

    def repositories(self) -> list[str]:
        from azure.core.exceptions import AzureError

        try:
            return list(self._client.list_repository_names())
        except AzureError as error:
            raise CatalogError(f"could not list repositories of {self.login_server}: {_first_line(error)}") from None

    def image(self, image: ImageReference) -> CloudImage:
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        try:
            if image.digest:
                manifest = self._client.get_manifest_properties(image.repository, image.digest)
                return CloudImage(manifest.digest, manifest.created_on)
            tag = self._client.get_tag_properties(image.repository, image.tag or "")
            return CloudImage(tag.digest, tag.last_updated_on)
        except ResourceNotFoundError:
            return CloudImage(None)
        except AzureError as error:
            return CloudImage(None, error=f"could not read {image} from {self.login_server}: {_first_line(error)}")


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:300]

