"""The pull secret the program renders really authenticates a pull from a real registry.

A `docker-registry` on loopback with htpasswd auth for the client token; an image built by hand
and pushed with skopeo; then skopeo inspects and copies it back using nothing but the
`.dockerconfigjson` from the rendered pull Secret, re-keyed from the ClusterIP endpoint to the
loopback one (the key is the only thing that differs on a real site). Needs the apt packages
docker-registry, skopeo and apache2-utils; skipped with the reason when they are missing.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from components.cluster.pull_secrets import dockerconfigjson
from tests.k8s_mocks import SECRET
from tests.registry_server import Registry, build_oci_layout, require_tools, running_registry
from tests.test_onprem_mocks import BASE, CLIENT_PASSWORD, CLIENT_TOKEN, install

REPOSITORY = "samples/hello"
TAG = "v1"
PAYLOAD = b"hello from the edge\n"
SITE_CLUSTER_IP = "10.43.0.10"


@dataclass(frozen=True)
class Pushed:
    """An image in the registry and where skopeo may keep its files."""

    registry: Registry
    reference: str
    layer_digest: str
    workdir: Path
    env: dict[str, str]


def skopeo(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run skopeo; `--insecure-policy` so the host's policy.json does not matter."""
    return subprocess.run(["skopeo", "--insecure-policy", *args], env=env, text=True, capture_output=True, timeout=120)


def isolated_env(home: Path) -> dict[str, str]:
    """An environment with no ambient registry credentials: only --authfile counts."""
    env = {k: v for k, v in os.environ.items() if k not in {"REGISTRY_AUTH_FILE", "DOCKER_CONFIG"}}
    for name in ("HOME", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME"):
        (home / name.lower()).mkdir(parents=True, exist_ok=True)
        env[name] = str(home / name.lower())
    env["DOCKER_CONFIG"] = str(home / "docker")
    return env


def rendered_dockerconfigjson() -> dict:
    """The `.dockerconfigjson` of the pull Secret the program declares for a site (under mocks)."""
    run = install(replace(BASE, service_cluster_ip=SITE_CLUSTER_IP), namespaces=["shop"])
    data = run.monitor.one(SECRET).plain["data"][".dockerconfigjson"]
    return json.loads(base64.b64decode(data))


def rekeyed(document: dict, endpoint: str) -> dict:
    """`document` with its single registry entry moved to `endpoint`, the entry untouched."""
    (entry,) = document["auths"].values()
    return {"auths": {endpoint: entry}}


def authfile(path: Path, document: dict) -> str:
    path.write_text(json.dumps(document))
    path.chmod(0o600)
    return str(path)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    require_tools()
    with running_registry(tmp_path / "registry", CLIENT_TOKEN, CLIENT_PASSWORD) as running:
        yield running


@pytest.fixture
def pushed(registry: Registry, tmp_path: Path) -> Pushed:
    env = isolated_env(tmp_path / "home")
    layer_digest = build_oci_layout(tmp_path / "layout", TAG, PAYLOAD)
    reference = f"docker://{registry.endpoint}/{REPOSITORY}:{TAG}"
    # Pushed with a hand-written auth file, so the pull below depends on the program's alone.
    push_auth = authfile(
        tmp_path / "push-auth.json",
        {
            "auths": {
                registry.endpoint: {"auth": base64.b64encode(f"{CLIENT_TOKEN}:{CLIENT_PASSWORD}".encode()).decode()}
            }
        },
    )
    result = skopeo(
        env,
        "copy",
        "--dest-tls-verify=false",
        "--dest-authfile",
        push_auth,
        f"oci:{tmp_path / 'layout'}:{TAG}",
        reference,
    )
    assert result.returncode == 0, result.stderr
    return Pushed(registry, reference, layer_digest, tmp_path, env)


def test_rendered_pull_secret_is_keyed_by_the_site_endpoint() -> None:
    # What the re-keying below replaces: the ClusterIP:port the nodes and pods pull from.
    assert list(rendered_dockerconfigjson()["auths"]) == [f"{SITE_CLUSTER_IP}:80"]


def test_rendered_pull_secret_inspects_the_image(pushed: Pushed) -> None:
    auth = authfile(pushed.workdir / "pull.json", rekeyed(rendered_dockerconfigjson(), pushed.registry.endpoint))
    result = skopeo(pushed.env, "inspect", "--tls-verify=false", "--authfile", auth, pushed.reference)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["Layers"] == [pushed.layer_digest]


def test_rendered_pull_secret_pulls_the_image(pushed: Pushed) -> None:
    auth = authfile(pushed.workdir / "pull.json", rekeyed(rendered_dockerconfigjson(), pushed.registry.endpoint))
    out = pushed.workdir / "pulled"
    result = skopeo(
        pushed.env, "copy", "--src-tls-verify=false", "--src-authfile", auth, pushed.reference, f"oci:{out}:{TAG}"
    )
    assert result.returncode == 0, result.stderr
    index = json.loads((out / "index.json").read_text())
    manifest_digest = index["manifests"][0]["digest"].split(":", 1)[1]
    manifest = json.loads((out / "blobs" / "sha256" / manifest_digest).read_text())
    assert [layer["digest"] for layer in manifest["layers"]] == [pushed.layer_digest]
    layer = (out / "blobs" / "sha256" / pushed.layer_digest.split(":", 1)[1]).read_bytes()
    with tarfile.open(fileobj=io.BytesIO(layer), mode="r:gz") as tar:
        member = tar.extractfile("hello.txt")
        assert member is not None and member.read() == PAYLOAD


def test_wrong_password_is_refused(pushed: Pushed) -> None:
    wrong = json.loads(dockerconfigjson(pushed.registry.endpoint, CLIENT_TOKEN, CLIENT_PASSWORD + "x"))
    auth = authfile(pushed.workdir / "wrong.json", wrong)
    result = skopeo(pushed.env, "inspect", "--tls-verify=false", "--authfile", auth, pushed.reference)
    assert result.returncode != 0
    assert "unauthorized" in result.stderr.lower() or "authentication required" in result.stderr.lower()


def test_no_credentials_are_refused(pushed: Pushed) -> None:
    # The registry really enforces auth, so the successes above are the secret's doing.
    auth = authfile(pushed.workdir / "none.json", {"auths": {}})
    result = skopeo(pushed.env, "inspect", "--tls-verify=false", "--authfile", auth, pushed.reference)
    assert result.returncode != 0


def test_credentials_keyed_by_another_endpoint_are_not_used(pushed: Pushed) -> None:
    # Without the re-keying, the ClusterIP key does not match the loopback registry.
    auth = authfile(pushed.workdir / "cluster-ip.json", rendered_dockerconfigjson())
    result = skopeo(pushed.env, "inspect", "--tls-verify=false", "--authfile", auth, pushed.reference)
    assert result.returncode != 0
