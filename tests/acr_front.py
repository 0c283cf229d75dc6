"""ACR's data-plane metadata API, played in front of a real registry (tests/registry_server.py).

A distribution registry stores and serves images but has no push times, which the readiness
check needs (has the site synced since the image was pushed?). ACR reports them through its own
API, which azure-containerregistry reads; this HTTPS server answers that API for a backing
`docker-registry`, with the digests the backing registry really gives and the push times the
test records (:meth:`AcrFront.record_push`), as ACR would stamp them. It answers exactly what
azure-containerregistry 1.2 calls (its ``_generated/operations/_operations.py`` and
``_patch.py``; the shapes are its models' ``_attribute_map``):

* a request without the access token gets 401 and ACR's challenge,
  ``Bearer realm="https://<host>/oauth2/token",service="<host>",scope="…"``;
* ``POST /oauth2/exchange`` (form ``grant_type=access_token``, ``service``, ``access_token``: the
  AAD/ARM token, checked against :data:`tests.arm_server.FAKE_BEARER`) gives ``refresh_token``,
  and ``POST /oauth2/token`` (``grant_type=refresh_token``, ``scope``) gives ``access_token``:
  JWT-shaped, since the SDK reads ``exp`` from the refresh token's payload;
* ``GET /acr/v1/_catalog``: ``{"repositories": [...]}`` from the backing registry's
  ``/v2/_catalog``;
* ``GET /acr/v1/<repository>/_tags/<tag>``: ``{"registry", "imageName", "tag": {"name", "digest",
  "createdTime", "lastUpdateTime", ...}}``, the digest from a HEAD of the manifest on the backing
  registry (OCI and Docker media types accepted), the times from the push record;
* ``GET /acr/v1/<repository>/_manifests/<digest>``: ``{"registry", "imageName", "manifest":
  {"digest", "createdTime", "lastUpdateTime", ...}}``.

Every request is recorded (method and path) so a test can assert the check only read.
"""

from __future__ import annotations

import base64
import json
import re
import ssl
import threading
import urllib.error
import urllib.request
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import trustme

from tests.arm_server import FAKE_BEARER
from tests.registry_server import Registry

ACCEPT = ", ".join([
    "application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json",
])


def _jwt(claims: dict[str, Any]) -> str:
    """A JWT-shaped token (unsigned): the SDK only reads ``exp`` from the middle part."""
    header = base64.b64encode(json.dumps({"alg": "none"}).encode()).decode()
    body = json.dumps(claims)
    body += " " * (-len(body) % 3)  # standard base64 without padding: the SDK pads it wrongly
    return f"{header}.{base64.b64encode(body.encode()).decode()}.x"


class AcrFront:
    """HTTPS on 127.0.0.1 (a trustme CA at :attr:`ca_pem`), in front of ``backing``. Context manager."""

    def __init__(self, tmp_dir: Path, backing: Registry) -> None:
        self.backing = backing
        ca = trustme.CA()
        self.ca_pem = tmp_dir / "acr-front-ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_pem))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(context)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
        self._httpd.front = self  # type: ignore[attr-defined]
        self.login_server = f"127.0.0.1:{self._httpd.server_address[1]}"
        self.access_token = _jwt({"exp": 4102444800, "kind": "access"})
        self.refresh_token = _jwt({"exp": 4102444800, "kind": "refresh"})
        #: (repository, tag) -> when the tag last moved; digest -> when its manifest was pushed.
        self.tag_pushes: dict[tuple[str, str], datetime] = {}
        self.manifest_pushes: dict[str, datetime] = {}
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> AcrFront:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def record_push(self, repository: str, tag: str, digest: str, at: datetime) -> None:
        """What ACR stamps when ``repository:tag`` is pushed (or moved) to ``digest`` at ``at``."""
        with self._lock:
            self.tag_pushes[(repository, tag)] = at
            self.manifest_pushes.setdefault(digest, at)

    # --- the backing registry ----------------------------------------------------------------

    def _backing(self, method: str, path: str) -> tuple[int, dict[str, str], bytes]:
        auth = base64.b64encode(f"{self.backing.username}:{self.backing.password}".encode()).decode()
        request = urllib.request.Request(f"http://{self.backing.endpoint}{path}", method=method,
                                         headers={"Authorization": f"Basic {auth}", "Accept": ACCEPT})
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status, dict(answer.headers), answer.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), b""

    def digest_of(self, repository: str, reference: str) -> str | None:
        status, headers, _ = self._backing("HEAD", f"/v2/{repository}/manifests/{reference}")
        return headers.get("Docker-Content-Digest") if status == 200 else None

    # --- routes: (status, JSON body) ---------------------------------------------------------

    def answer(self, method: str, path: str, form: dict[str, str]) -> tuple[int, Any]:
        if method == "POST" and path == "/oauth2/exchange":
            if form.get("grant_type") != "access_token" or form.get("access_token") != FAKE_BEARER:
                return 401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad AAD token"}]}
            return 200, {"refresh_token": self.refresh_token}
        if method == "POST" and path == "/oauth2/token":
            if form.get("grant_type") != "refresh_token" or form.get("refresh_token") != self.refresh_token:
                return 401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad refresh token"}]}
            return 200, {"access_token": self.access_token}
        if method != "GET":
            return 405, {"errors": [{"code": "UNSUPPORTED", "message": f"{method} {path}"}]}
        if path == "/acr/v1/_catalog":
            status, _, body = self._backing("GET", "/v2/_catalog")
            return status, {"repositories": json.loads(body or b"{}").get("repositories") or []}
        if found := re.fullmatch(r"/acr/v1/(?P<repo>.+)/_tags/(?P<tag>[^/]+)", path):
            repository, tag = found["repo"], found["tag"]
            digest = self.digest_of(repository, tag)
            if digest is None:
                return 404, {"errors": [{"code": "TAG_UNKNOWN", "message": f"{repository}:{tag}"}]}
            when = self.tag_pushes.get((repository, tag))
            return 200, {"registry": self.login_server, "imageName": repository, "tag": {
                "name": tag, "digest": digest, "createdTime": _iso(when), "lastUpdateTime": _iso(when),
                "signed": False, "changeableAttributes": _changeable(),
            }}
        if found := re.fullmatch(r"/acr/v1/(?P<repo>.+)/_manifests/(?P<digest>sha256:[a-f0-9]{64})", path):
            repository, digest = found["repo"], found["digest"]
            if self.digest_of(repository, digest) != digest:
                return 404, {"errors": [{"code": "MANIFEST_UNKNOWN", "message": f"{repository}@{digest}"}]}
            when = self.manifest_pushes.get(digest)
            return 200, {"registry": self.login_server, "imageName": repository, "manifest": {
                "digest": digest, "createdTime": _iso(when), "lastUpdateTime": _iso(when), "tags": [],
                "changeableAttributes": _changeable(),
            }}
        return 404, {"errors": [{"code": "NAME_UNKNOWN", "message": path}]}


def _iso(when: datetime | None) -> str | None:
    return when.isoformat().replace("+00:00", "Z") if when else None


def _changeable() -> dict[str, bool]:
    return {"deleteEnabled": True, "writeEnabled": True, "readEnabled": True, "listEnabled": True}


class _Handler(BaseHTTPRequestHandler):
    server: ThreadingHTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Quiet."""

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._handle()

    def do_POST(self) -> None:  # noqa: N802
        self._handle()

    def do_HEAD(self) -> None:  # noqa: N802
        self._handle()

    def do_PUT(self) -> None:  # noqa: N802
        self._handle()

    def do_DELETE(self) -> None:  # noqa: N802
        self._handle()

    def _handle(self) -> None:
        front: AcrFront = self.server.front  # type: ignore[attr-defined]
        url = urlsplit(self.path)
        path = unquote(url.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        form = dict(parse_qsl(raw.decode())) if raw else {}
        with front._lock:
            front.requests.append((self.command, path))
        headers: dict[str, str] = {}
        if path.startswith("/oauth2/") or self.headers.get("Authorization") == f"Bearer {front.access_token}":
            status, body = front.answer(self.command, path, form)
        else:
            status, body = 401, {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}
            scope = "registry:catalog:*" if path.endswith("/_catalog") else "repository:*:metadata_read"
            headers["WWW-Authenticate"] = (
                f'Bearer realm="https://{front.login_server}/oauth2/token",service="{front.login_server}",scope="{scope}"'
            )
        data = json.dumps(body).encode()
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
