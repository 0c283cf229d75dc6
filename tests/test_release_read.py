"""The program-time read of the Helm release (components/cluster/release_read.py) with the real
Kubernetes API client, against a loopback HTTP server answering the one call it makes (listing
a namespace's Secrets by Helm's labels) as the API server does. No cluster here: this is the
nearest real thing."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from components.cluster.release_read import KubeReleaseReader, ReleaseTarget


class FakeApi:
    def __init__(self) -> None:
        self.secrets: dict[str, list[dict[str, Any]]] = {}  # namespace -> Secrets (metadata only)
        self.status = 200
        self.requests: list[tuple[str, dict[str, list[str]]]] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                url = urlsplit(self.path)
                query = parse_qs(url.query)
                api.requests.append((url.path, query))
                parts = url.path.strip("/").split("/")  # api v1 namespaces NS secrets
                if api.status != 200 or len(parts) != 5 or parts[4] != "secrets" or parts[3] not in api.secrets:
                    code = api.status if api.status != 200 else 404
                    self._send(code, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code})
                    return
                wanted = dict(p.split("=", 1) for p in query.get("labelSelector", [""])[0].split(",") if p)
                items = [s for s in api.secrets[parts[3]] if wanted.items() <= s["metadata"]["labels"].items()]
                self._send(200, {"kind": "SecretList", "apiVersion": "v1", "metadata": {}, "items": items})

            def _send(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def revision(self, namespace: str, release: str, version: int, status: str) -> None:
        labels = {"owner": "helm", "name": release, "status": status, "version": str(version)}
        self.secrets.setdefault(namespace, []).append(
            {"metadata": {"name": f"sh.helm.release.v1.{release}.v{version}", "namespace": namespace, "labels": labels}}
        )

    def kubeconfig(self) -> str:
        return yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "site",
            "clusters": [{"name": "site", "cluster": {"server": self.url}}],
            "users": [{"name": "site", "user": {"token": "t0ken"}}],
            "contexts": [{"name": "site", "context": {"cluster": "site", "user": "site"}},
                         {"name": "elsewhere", "context": {"cluster": "site", "user": "site", "namespace": "x"}}],
        })


@pytest.fixture
def api() -> Iterator[FakeApi]:
    fake = FakeApi()
    thread = threading.Thread(target=fake.server.serve_forever, daemon=True)
    thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def target(api: FakeApi, **changes: Any) -> ReleaseTarget:
    values: dict[str, Any] = {"namespace": "connected-registry", "release_name": "connected-registry",
                              "kubeconfig": api.kubeconfig()}
    values.update(changes)
    return ReleaseTarget(**values)


def test_a_deployed_revision_is_installed(api: FakeApi) -> None:
    api.revision("connected-registry", "connected-registry", 1, "superseded")
    api.revision("connected-registry", "connected-registry", 2, "deployed")
    assert KubeReleaseReader()(target(api)).installed is True
    path, query = api.requests[-1]
    assert path == "/api/v1/namespaces/connected-registry/secrets"
    assert query["labelSelector"] == ["owner=helm,name=connected-registry"]


def test_no_live_revision_or_no_namespace_is_not_installed(api: FakeApi) -> None:
    api.revision("connected-registry", "other-release", 1, "deployed")
    api.revision("connected-registry", "connected-registry", 1, "failed")
    assert KubeReleaseReader()(target(api)).installed is False
    assert KubeReleaseReader()(target(api, namespace="gone")).installed is False  # 404: no namespace


def test_a_kubeconfig_file_and_context_are_used(api: FakeApi, tmp_path: Path) -> None:
    api.revision("connected-registry", "connected-registry", 3, "pending-upgrade")
    config = tmp_path / "kubeconfig"
    config.write_text(api.kubeconfig())
    read = KubeReleaseReader()(target(api, kubeconfig=None, kubeconfig_path=str(config), context="elsewhere"))
    assert read.installed is True


def test_an_unreadable_cluster_is_unknown_with_the_reason(api: FakeApi) -> None:
    api.status = 403
    read = KubeReleaseReader()(target(api))
    assert read.installed is None and "403" in (read.error or "")
    bad_context = KubeReleaseReader()(target(api, context="nope"))
    assert bad_context.installed is None and "nope" in (bad_context.error or "")
    api.server.shutdown()
    api.server.server_close()
    down = KubeReleaseReader(timeout_seconds=2)(target(api))
    assert down.installed is None and down.error
