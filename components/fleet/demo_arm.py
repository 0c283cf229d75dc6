"""The demo's fake ARM: the two paged lists the fleet status reads, answered in-process.

``GET …/registries/<r>/connectedRegistries`` and ``GET …/registries/<r>/tokens`` return the
documents they are given, ``page_size`` at a time with a ``nextLink`` (``$skipToken``) as ARM
pages (the ARM spec's ``ConnectedRegistryListResult`` / ``TokenListResult``: ``value`` and
``nextLink``); any other request gets ARM's 404 error body. It is a requests transport adapter
mounted on the azure-core transport of the real SDK client, so the demo runs the same listing,
deserialization and paging code as a real fleet, and no request leaves the process: the adapter
answers every URL, whatever its host, and the bearer token it sees is a fixed demo string.
"""

from __future__ import annotations

import io
import json
import re
import time
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from requests import PreparedRequest, Response, Session
from requests.adapters import HTTPAdapter
from urllib3 import HTTPResponse

#: The bearer token the demo's credential hands out: not a credential anywhere.
DEMO_TOKEN = "edge-registry-demo-token"  # noqa: S105 - a fixed demo string, not a secret

_LIST = re.compile(
    r"(?P<registry>/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.ContainerRegistry"
    r"/registries/[^/]+)/(?P<collection>connectedRegistries|tokens)",
    re.IGNORECASE,
)


class DemoCredential:
    """A ``TokenCredential`` for the fake ARM: a fixed string, never sent off this process."""

    def get_token(self, *_scopes: str, **_kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        return AccessToken(DEMO_TOKEN, int(time.time()) + 3600)


class DemoArmAdapter(HTTPAdapter):
    """Answers the fleet status's ARM lists from ``lists``: registry id (lower case) ->
    ``{"connectedRegistries": [...], "tokens": [...]}``. Records each request path."""

    def __init__(self, lists: dict[str, dict[str, list[dict[str, Any]]]], page_size: int = 2) -> None:
        super().__init__()
        self.lists = {key.lower(): value for key, value in lists.items()}
        self.page_size = page_size
        self.requests: list[str] = []

    def send(self, request: PreparedRequest, stream: bool = False, timeout: Any = None, verify: Any = True,
             cert: Any = None, proxies: Any = None) -> Response:
        url = urlsplit(request.url or "")
        self.requests.append(url.path)
        query = dict(parse_qsl(url.query))
        found = _LIST.fullmatch(url.path)
        if request.method != "GET" or found is None or request.headers.get("Authorization") != f"Bearer {DEMO_TOKEN}":
            return self._answer(request, 404, {"error": {"code": "NotFound", "message": f"the demo ARM has no {url.path}"}})
        documents = self.lists.get(found["registry"].lower(), {}).get(found["collection"], [])
        skip = int(query.get("$skipToken", "0") or 0)
        page: dict[str, Any] = {"value": documents[skip:skip + self.page_size]}
        if skip + self.page_size < len(documents):
            after = {**query, "$skipToken": str(skip + self.page_size)}
            page["nextLink"] = f"{url.scheme}://{url.netloc}{url.path}?{urlencode(after)}"
        return self._answer(request, 200, page)

    def _answer(self, request: PreparedRequest, status: int, body: Any) -> Response:
        data = json.dumps(body).encode()
        raw = HTTPResponse(body=io.BytesIO(data), headers={"Content-Type": "application/json",
                                                           "Content-Length": str(len(data))},
                           status=status, reason="OK" if status == 200 else "Not Found", preload_content=False,
                           decode_content=False)
        return self.build_response(request, raw)


def demo_session(adapter: DemoArmAdapter) -> Session:
    """A requests session whose every URL goes to ``adapter`` (nothing reaches the network)."""
    session = Session()
    session.trust_env = False  # no proxy or netrc from the environment: there is no network here
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session
