"""Where the program's and the fleet status's ARM calls get their credential.

``EDGE_REGISTRY_ARM_TOKEN`` (a bearer token obtained elsewhere, e.g. ``az account
get-access-token``: air-gapped operator machines, the tests' loopback ARM) when it is set, else
azure-identity's ``DefaultAzureCredential``. Both the program (``components.azure.arm``: the
password resources and the sync-status read) and ``fleet status`` follow it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from azure.core.credentials import AccessToken, TokenCredential

#: A bearer token for ARM; when set, azure-identity is not used at all.
ARM_TOKEN_ENV = "EDGE_REGISTRY_ARM_TOKEN"


class StaticBearerCredential:
    """A ``TokenCredential`` for a bearer token obtained elsewhere (``az account get-access-token``).

    The token is never logged; ARM rejects it with 401 once it expires, which the report shows.
    """

    def __init__(self, token: str) -> None:
        self._token = token

    def get_token(self, *_scopes: str, **_kwargs: Any) -> AccessToken:
        from azure.core.credentials import AccessToken

        # The real expiry is unknown; an hour ahead keeps azure-core from asking again mid-run.
        return AccessToken(self._token, int(time.time()) + 3600)


def credential_from_environment(environ: Mapping[str, str]) -> TokenCredential:
    """``EDGE_REGISTRY_ARM_TOKEN`` when set, else ``DefaultAzureCredential``."""
    token = (environ.get(ARM_TOKEN_ENV) or "").strip()
    if token:
        return StaticBearerCredential(token)
    # Imported here: only needed against real Azure, and it is slow to import.
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()
