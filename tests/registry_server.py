"""A real registry for tests: Debian's `docker-registry` (CNCF distribution 2.x) on loopback.

Plain http on 127.0.0.1 and a random free port, filesystem storage in a temp dir, htpasswd
(bcrypt) auth for one user. Plus a hand-built OCI image layout, since there is no Docker engine:
one tiny tar layer, a config and a manifest, which `skopeo` can push.

Needs the apt packages docker-registry, skopeo and apache2-utils (htpasswd); `require_tools`
skips the calling test when one is missing.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import socket
import ssl
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

REGISTRY_BIN = "docker-registry"
TOOLS = {REGISTRY_BIN: "docker-registry", "skopeo": "skopeo", "htpasswd": "apache2-utils"}
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


#: Set (to anything) in CI so missing servers fail the run instead of skipping silently.
REQUIRE_ENV = "EDGE_REGISTRY_REQUIRE_SERVERS"


def require_tools() -> None:
    """Skip (naming the apt packages to install) unless every binary is on PATH."""
    missing = sorted(f"{tool} (apt: {package})" for tool, package in TOOLS.items() if shutil.which(tool) is None)
    if missing:
        reason = f"missing {', '.join(missing)}"
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(f"{reason}; {REQUIRE_ENV} is set")
        pytest.skip(reason)


@dataclass(frozen=True)
class Registry:
    """A running registry: where it listens and the one account it accepts."""

    host: str
    port: int
    username: str
    password: str

    @property
    def endpoint(self) -> str:
        """`host:port`, as an image reference and an auths key spell it."""
        return f"{self.host}:{self.port}"


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_htpasswd(path: Path, username: str, password: str) -> None:
    """bcrypt entry (distribution accepts only bcrypt); the password goes on stdin, not argv."""
    subprocess.run(
        ["htpasswd", "-B", "-c", "-i", str(path), username],
        input=password,
        text=True,
        check=True,
        capture_output=True,
    )


def registry_config(
    root: Path, port: int, htpasswd: Path, host: str = "127.0.0.1", tls: tuple[Path, Path] | None = None
) -> str:
    """distribution's config.yml: loopback (or `host`), filesystem storage, htpasswd auth; plain
    http, or https with `tls` = (certificate file, key file)."""
    http: dict[str, object] = {"addr": f"{host}:{port}", "secret": os.urandom(16).hex()}
    if tls is not None:
        http["tls"] = {"certificate": str(tls[0]), "key": str(tls[1])}
    config = {
        "version": 0.1,
        "log": {"level": "warn"},
        "storage": {"filesystem": {"rootdirectory": str(root)}, "delete": {"enabled": True}},
        "http": http,
        "auth": {"htpasswd": {"realm": "edge-registry-test", "path": str(htpasswd)}},
    }
    return json.dumps(config)  # JSON is YAML, and needs no YAML writer


def _wait_until_serving(process: subprocess.Popen[bytes], port: int, timeout: float = 15.0, https: bool = False) -> None:
    """Until /v2/ answers — 401, since auth is on — or the process dies."""
    deadline = time.monotonic() + timeout
    # (the probe only waits for the port: the certificate is what the tests check elsewhere)
    context = ssl._create_unverified_context() if https else None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"docker-registry exited with {process.returncode}")
        try:
            urllib.request.urlopen(f"{'https' if https else 'http'}://127.0.0.1:{port}/v2/", timeout=1, context=context)
        except urllib.error.HTTPError as error:
            if error.code == 401:
                return
            raise
        except OSError:
            time.sleep(0.1)
            continue
        raise RuntimeError("registry answered /v2/ without asking for credentials")
    raise TimeoutError(f"docker-registry did not serve on 127.0.0.1:{port} within {timeout}s")


@contextmanager
def running_registry(
    workdir: Path, username: str, password: str, tls: tuple[Path, Path] | None = None
) -> Iterator[Registry]:
    """Start the registry under `workdir` (https with `tls` = (certificate file, key file)), yield it, stop it."""
    workdir.mkdir(parents=True, exist_ok=True)
    htpasswd = workdir / "htpasswd"
    write_htpasswd(htpasswd, username, password)
    for attempt in range(3):  # the free port can be taken between probe and bind
        port = free_port()
        config = workdir / "config.yml"
        config.write_text(registry_config(workdir / "storage", port, htpasswd, tls=tls))
        log = (workdir / "registry.log").open("wb")
        process = subprocess.Popen([REGISTRY_BIN, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_until_serving(process, port, https=tls is not None)
        except (RuntimeError, TimeoutError):
            process.kill()
            process.wait()
            log.close()
            if attempt == 2:
                raise RuntimeError((workdir / "registry.log").read_text()[-2000:]) from None
            continue
        try:
            yield Registry("127.0.0.1", port, username, password)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()
        return


def _blob(layout: Path, content: bytes) -> tuple[str, int]:
    digest = "sha256:" + hashlib.sha256(content).hexdigest()
    (layout / "blobs" / "sha256" / digest.split(":", 1)[1]).write_bytes(content)
    return digest, len(content)


def build_oci_layout(layout: Path, tag: str, payload: bytes) -> str:
    """A one-layer image in OCI layout at `layout`, tagged `tag`; returns the layer digest.

    The layer is a gzipped tar holding `/hello.txt` = `payload`. Gzipped already because
    skopeo compresses an uncompressed layer on push, which would change the digest under test.
    """
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size, info.mode, info.mtime = len(payload), 0o644, 0
        tar.addfile(info, io.BytesIO(payload))
    diff_id = "sha256:" + hashlib.sha256(buffer.getvalue()).hexdigest()
    layer_digest, layer_size = _blob(layout, gzip.compress(buffer.getvalue(), mtime=0))
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/hello.txt"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }
    config_digest, config_size = _blob(layout, json.dumps(config).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": OCI_LAYER, "digest": layer_digest, "size": layer_size}],
    }
    manifest_digest, manifest_size = _blob(layout, json.dumps(manifest).encode())
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": manifest_digest,
                "size": manifest_size,
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    (layout / "index.json").write_text(json.dumps(index))
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    return layer_digest
