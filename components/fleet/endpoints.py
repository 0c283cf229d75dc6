"""Where the fleet status may send the bearer token of ``EDGE_REGISTRY_ARM_TOKEN``.

That token is a plain ARM access token, good at ARM whichever host it is sent to, and each
stack file names its own ``armEndpoint``: a stack file edited to name another host would hand
that host the operator's token. So the token goes only to

* Azure's ARM endpoints: the public cloud and the sovereign clouds, as azure-mgmt-core lists them
  for azure-core's ``AzureClouds`` (``get_arm_endpoints``: ``AZURE_PUBLIC_CLOUD``,
  ``AZURE_CHINA_CLOUD``, ``AZURE_US_GOVERNMENT``), over https on the default port;
* loopback (``127.0.0.0/8``, ``::1``, ``localhost``), where the tests' ARM listens;
* hosts the operator allows with ``--allow-arm-endpoint HOST[:PORT]`` (Azure Stack Hub, a proxy).

Any other endpoint is refused before a request is made, and every request (a ``nextLink``, a
redirect) is checked again before the token is attached (``components.fleet.listing``).
``DefaultAzureCredential`` is not limited: it asks Entra ID for a token for each endpoint's own
audience, which is issued only for a resource Entra ID knows.

Pure: no Azure SDK import.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from components.azure.credentials import ARM_TOKEN_ENV
from components.config.fields import host_problem

#: The ARM hosts of Azure's clouds (azure-mgmt-core's ``get_arm_endpoints`` for each of
#: azure-core's ``AzureClouds``; tests/test_fleet_endpoints.py checks the two agree).
KNOWN_ARM_HOSTS = frozenset({
    "management.azure.com",  # AzureCloud
    "management.chinacloudapi.cn",  # AzureChinaCloud
    "management.usgovcloudapi.net",  # AzureUSGovernment
})

FLAG = "--allow-arm-endpoint"


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (``127.0.0.0/8``, ``::1``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_allowed(text: str) -> str:
    """One ``--allow-arm-endpoint`` value, ``HOST`` or ``HOST:PORT`` (an ``https://`` URL is
    taken too), as the lower-case ``host`` or ``host:port`` it allows.

    :raises ValueError: not a host (and port)."""
    value = text
    if not value or any(c.isspace() or not c.isprintable() for c in value):
        raise ValueError(f"{text!r}: expected HOST or HOST:PORT, without spaces or newlines")
    parts = urlsplit(value if "://" in value else f"https://{value}")
    if parts.scheme.lower() != "https" or parts.path not in ("", "/") or parts.query or parts.fragment \
            or parts.username or parts.password:
        raise ValueError(f"{text!r}: expected HOST or HOST:PORT, e.g. management.local.azurestack.external")
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{text!r}: the port is not 1-65535") from None
    problem = host_problem(host) if host else "expected a host"
    if problem or port == 0:
        raise ValueError(f"{text!r}: {problem or 'the port is not 1-65535'}")
    return f"{host}:{port}" if port is not None else host


@dataclass(frozen=True)
class EndpointPolicy:
    """Which URLs may receive the bearer token: known clouds, loopback, and ``allowed``."""

    #: From ``--allow-arm-endpoint``: ``host`` (any port) or ``host:port``, lower case.
    allowed: frozenset[str] = frozenset()

    def refusal(self, url: str) -> str | None:
        """Why the token may not be sent to ``url``, or None when it may."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            return f"{url!r} is not a URL the token can be sent to"
        host = (parts.hostname or "").lower()
        origin = f"{parts.scheme}://{parts.netloc}" if parts.netloc else repr(url)
        if parts.scheme.lower() != "https":
            return f"{origin}: {ARM_TOKEN_ENV} is sent over https only"
        if host in KNOWN_ARM_HOSTS and port in (None, 443):
            return None
        if is_loopback(host) or host in self.allowed or (port is not None and f"{host}:{port}" in self.allowed):
            return None
        shown = f"{host}:{port}" if port is not None else host
        return (
            f"{origin} is not an Azure ARM endpoint ({', '.join(sorted(KNOWN_ARM_HOSTS))}) or loopback: "
            f"{ARM_TOKEN_ENV} is not sent there; if this endpoint is yours (Azure Stack Hub, a proxy), "
            f"allow it with {FLAG} {shown}"
        )


def allowed_endpoint_argument(text: str) -> str:
    """``parse_allowed`` as an argparse ``type=`` for the commands' ``--allow-arm-endpoint``."""
    import argparse

    try:
        return parse_allowed(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
