"""Where the program's and the fleet status's ARM calls get their credential.

``EDGE_REGISTRY_ARM_TOKEN`` (a bearer token obtained elsewhere, e.g. ``az account
get-access-token``: air-gapped operator machines, the tests' loopback ARM) when it is set, else
azure-identity's ``DefaultAzureCredential``. Both the program (``components.azure.arm``: the
password resources and the sync-status read) and ``fleet status`` follow it.

When no credential of the chain gives a token, the error is one line (:data:`NO_CREDENTIALS`):
which credentials were looked for and how to provide one, not azure-identity's report of
every credential it tried; the chain is not tried again in the same run.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from azure.core.credentials import AccessToken, TokenCredential

#: A bearer token for ARM; when set, azure-identity is not used at all.
ARM_TOKEN_ENV = "EDGE_REGISTRY_ARM_TOKEN"

#: The one line said when no credential gives a token: what was looked for, how to provide one.
NO_CREDENTIALS = (
    f"no Azure credentials: looked for {ARM_TOKEN_ENV}, a service principal (AZURE_TENANT_ID, AZURE_CLIENT_ID "
    "and AZURE_CLIENT_SECRET), workload identity, a managed identity and an Azure CLI login, and none gave a "
    "token; run `az login`, or set a service principal's AZURE_TENANT_ID, AZURE_CLIENT_ID and "
    f"AZURE_CLIENT_SECRET, or set {ARM_TOKEN_ENV} to a token from `az account get-access-token --query "
    "accessToken -o tsv`"
)


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
    """``EDGE_REGISTRY_ARM_TOKEN`` when set, else ``DefaultAzureCredential`` (whose failure to
    find any credential is the one line :data:`NO_CREDENTIALS`)."""
    token = (environ.get(ARM_TOKEN_ENV) or "").strip()
    if token:
        return StaticBearerCredential(token)
    credential: TokenCredential = _default_credential_class()()
    return credential


def missing_credentials(credential: Any) -> str | None:
    """:data:`NO_CREDENTIALS` when ``credential`` (from :func:`credential_from_environment`) has
    found no credential to get a token with, else None."""
    return NO_CREDENTIALS if getattr(credential, "missing", False) else None


@functools.cache
def _default_credential_class() -> type:
    # Imported here: only needed against real Azure, and it is slow to import.
    from azure.core.exceptions import ClientAuthenticationError
    from azure.identity import DefaultAzureCredential

    # azure-identity logs the whole chain's report as a warning; the error below says it in one line.
    logging.getLogger("azure.identity").setLevel(logging.ERROR)

    class ArmCredential(DefaultAzureCredential):  # type: ignore[misc]
        """``DefaultAzureCredential`` whose "no credential gave a token" is one line, said once."""

        missing = False

        def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
            return self._once(super().get_token, *scopes, **kwargs)

        def get_token_info(self, *scopes: str, **kwargs: Any) -> Any:
            return self._once(super().get_token_info, *scopes, **kwargs)

        def _once(self, get: Any, *scopes: str, **kwargs: Any) -> Any:
            if self.missing:
                raise ClientAuthenticationError(message=NO_CREDENTIALS)
            try:
                return get(*scopes, **kwargs)
            except ClientAuthenticationError as error:
                if "failed to retrieve a token from the included credentials" not in str(error.message or ""):
                    raise
                self.missing = True
                raise ClientAuthenticationError(message=NO_CREDENTIALS) from None

    return ArmCredential
