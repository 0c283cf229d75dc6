"""A real TLS handshake: the registry serves the issued certificate on the pinned ClusterIP.

In a network namespace the test makes (loopback only, 10.43.200.200 on its `lo`), Debian's
`docker-registry` serves https on 10.43.200.200:443 with the server certificate the program's
certificate provider issues (the code `pulumi up` runs), signed by the site CA it issues. `skopeo`
pulls through it trusting only that CA (Go's system roots pointed at it alone) and authenticating
with the `.dockerconfigjson` the program renders, by both image-name forms: the endpoint
(`10.43.200.200:443/samples/hello:v1`) and the parent's login server, mirrored to the endpoint the
way the nodes mirror it (a registries.conf mirror: containers/image, containerd's sibling). The
namespace has no route out, so the login-server pull can only have come from the site registry.

A certificate for another IP and a CA the client does not trust must both fail the handshake.
Needs iproute2, docker-registry, skopeo, apache2-utils, and root or passwordless sudo.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from components.cluster import certificates as sc
from components.cluster.site_tls import service_dns_names
from tests import netns
from tests.k8s_mocks import SECRET
from tests.registry_server import REGISTRY_BIN, build_oci_layout, registry_config, require_tools, write_htpasswd
from tests.test_onprem_mocks import CLIENT_PASSWORD, CLIENT_TOKEN, HTTPS, install

CLUSTER_IP = "10.43.200.200"
OTHER_IP = "10.43.200.201"
ENDPOINT = f"{CLUSTER_IP}:443"
LOGIN_SERVER = "contosoedge.azurecr.io"
REPOSITORY = "samples/hello"
TAG = "v1"
PAYLOAD = b"hello over https\n"
#: The names the program gives the certificate (the handshake itself checks the IP).
DNS_NAMES = service_dns_names("connected-registry", "connected-registry")


@dataclass(frozen=True)
class Material:
    """A CA and a server certificate, as files."""

    ca: Path
    certificate: Path
    key: Path


def issue(workdir: Path, name: str, ip: str = CLUSTER_IP, ca: dict | None = None) -> tuple[Material, dict]:
    """Issue with the program's providers (a new CA unless `ca` is given); write PEM files."""
    ca = ca or sc.SiteCaProvider().create(
        {sc.COMMON_NAME: f"edge-registry {name} CA", sc.VALIDITY_DAYS: 3650, sc.RENEW_BEFORE_DAYS: 30}
    ).outs
    server = sc.ServerCertificateProvider().create({
        sc.CA_CERTIFICATE_PEM: ca[sc.CERTIFICATE_PEM], sc.CA_KEY_PEM: ca[sc.KEY_PEM], sc.IP_ADDRESSES: [ip],
        sc.DNS_NAMES: DNS_NAMES, sc.VALIDITY_DAYS: 365, sc.RENEW_BEFORE_DAYS: 30,
    }).outs
    folder = workdir / name
    folder.mkdir(parents=True)
    material = Material(folder / "ca.crt", folder / "server.crt", folder / "server.key")
    material.ca.write_text(ca[sc.CERTIFICATE_PEM])
    material.certificate.write_text(server[sc.CERTIFICATE_PEM])
    material.key.write_text(server[sc.KEY_PEM])
    material.key.chmod(0o600)
    return material, ca


def rendered_dockerconfigjson() -> dict:
    """The pull Secret's document the program declares for an https site with its login server."""
    args = replace(HTTPS, service_cluster_ip=CLUSTER_IP)
    run = install(args, namespaces=["shop"], login_server=LOGIN_SERVER)
    return json.loads(base64.b64decode(run.monitor.one(SECRET).plain["data"][".dockerconfigjson"]))


class Site:
    """The namespace, and a registry in it serving one certificate at a time."""

    def __init__(self, space: netns.Namespace, workdir: Path) -> None:
        self.space, self.workdir = space, workdir
        self.htpasswd = workdir / "htpasswd"
        write_htpasswd(self.htpasswd, CLIENT_TOKEN, CLIENT_PASSWORD)
        self.storage = workdir / "storage"  # shared by every registry started, so the image stays

    def client_env(self, trusted_ca: Path) -> dict[str, str]:
        """skopeo's environment: Go trusts `trusted_ca` alone, no ambient credentials."""
        home = self.workdir / "home"
        (home / "empty-certs").mkdir(parents=True, exist_ok=True)
        return {"HOME": str(home), "SSL_CERT_FILE": str(trusted_ca), "SSL_CERT_DIR": str(home / "empty-certs")}

    def cert_dir(self, trusted_ca: Path) -> Path:
        """A containers/image cert dir holding only `trusted_ca` (as ca.crt)."""
        folder = self.workdir / f"trust-{trusted_ca.parent.name}"
        folder.mkdir(exist_ok=True)
        (folder / "ca.crt").write_bytes(trusted_ca.read_bytes())
        return folder

    def skopeo(self, trusted_ca: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return self.space.run(["skopeo", "--insecure-policy", *args], env=self.client_env(trusted_ca))

    @property
    def reachable(self) -> bool:
        probe = f"import socket; socket.create_connection(({CLUSTER_IP!r}, 443), timeout=1).close()"
        return self.space.run([sys.executable, "-c", probe], timeout=30).returncode == 0

    @contextmanager
    def serving(self, material: Material) -> Iterator[None]:
        """A registry on CLUSTER_IP:443 with `material`'s certificate, for the `with` block."""
        config = self.workdir / f"config-{material.ca.parent.name}.yml"
        config.write_text(registry_config(self.storage, 443, self.htpasswd, CLUSTER_IP, (material.certificate, material.key)))
        process = self.space.popen([REGISTRY_BIN, "serve", str(config)], self.workdir / "registry.log")
        try:
            deadline = time.monotonic() + 20
            while not self.reachable:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((self.workdir / "registry.log").read_text()[-2000:])
                time.sleep(0.2)
            yield
        finally:
            self.space.stop(process)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    netns.require()
    require_tools()
    workdir = tmp_path_factory.mktemp("tls-site")
    os.chmod(workdir, 0o755)
    with netns.loopback_namespace(CLUSTER_IP) as space:
        try:
            yield Site(space, workdir)
        finally:
            space.give_back(workdir)


@pytest.fixture(scope="module")
def issued(site: Site) -> Material:
    """The site CA and its server certificate; the image is pushed through them once."""
    material, _ = issue(site.workdir, "site")
    with site.serving(material):
        layout = site.workdir / "layout"
        build_oci_layout(layout, TAG, PAYLOAD)
        push_auth = site.workdir / "push.json"
        push_auth.write_text(json.dumps({"auths": {ENDPOINT: {
            "auth": base64.b64encode(f"{CLIENT_TOKEN}:{CLIENT_PASSWORD}".encode()).decode()}}}))
        pushed = site.skopeo(
            material.ca, "copy", "--dest-cert-dir", str(site.cert_dir(material.ca)), "--dest-authfile", str(push_auth),
            f"oci:{layout}:{TAG}", f"docker://{ENDPOINT}/{REPOSITORY}:{TAG}",
        )
    assert pushed.returncode == 0, pushed.stderr
    return material


def pull_secret_file(site: Site) -> Path:
    path = site.workdir / "pull-secret.json"
    path.write_text(json.dumps(rendered_dockerconfigjson()))
    return path


def inspect(site: Site, trusted_ca: Path, reference: str, *extra: str, authfile: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`skopeo inspect` trusting only `trusted_ca`, with the rendered pull secret unless `authfile`."""
    return site.skopeo(
        trusted_ca, *extra, "inspect", "--cert-dir", str(site.cert_dir(trusted_ca)),
        "--authfile", str(authfile or pull_secret_file(site)), reference,
    )


def test_pull_by_the_endpoint_trusting_only_the_site_ca(site: Site, issued: Material) -> None:
    out = site.workdir / "pulled-endpoint"
    with site.serving(issued):
        result = site.skopeo(
            issued.ca, "copy", "--src-cert-dir", str(site.cert_dir(issued.ca)),
            "--src-authfile", str(pull_secret_file(site)),
            f"docker://{ENDPOINT}/{REPOSITORY}:{TAG}", f"oci:{out}:{TAG}",
        )
    assert result.returncode == 0, result.stderr
    site.space.give_back(out)
    index = json.loads((out / "index.json").read_text())
    manifest = json.loads((out / "blobs" / "sha256" / index["manifests"][0]["digest"].split(":", 1)[1]).read_text())
    layer = (out / "blobs" / "sha256" / manifest["layers"][0]["digest"].split(":", 1)[1]).read_bytes()
    with tarfile.open(fileobj=io.BytesIO(layer), mode="r:gz") as tar:
        member = tar.extractfile("hello.txt")
        assert member is not None and member.read() == PAYLOAD


def test_pull_by_the_login_server_name_goes_to_the_site_registry(site: Site, issued: Material) -> None:
    # The nodes mirror <registry>.azurecr.io to the endpoint; containers/image does the same with a
    # registries.conf mirror. No route leaves the namespace: success means the site registry served it.
    conf = site.workdir / "registries.conf"
    conf.write_text(
        f'[[registry]]\nprefix = "{LOGIN_SERVER}"\nlocation = "{LOGIN_SERVER}"\n'
        f'[[registry.mirror]]\nlocation = "{ENDPOINT}"\n'
    )
    with site.serving(issued):
        result = site.skopeo(
            issued.ca, "--registries-conf", str(conf), "inspect", "--no-tags", "--cert-dir", str(site.cert_dir(issued.ca)),
            "--authfile", str(pull_secret_file(site)), f"docker://{LOGIN_SERVER}/{REPOSITORY}:{TAG}",
        )
    assert result.returncode == 0, result.stderr
    inspected = json.loads(result.stdout)
    assert inspected["Name"] == f"{LOGIN_SERVER}/{REPOSITORY}" and len(inspected["Layers"]) == 1


def test_without_the_pull_secret_the_registry_refuses(site: Site, issued: Material) -> None:
    # The handshake succeeds; the registry still wants the client token.
    empty = site.workdir / "no-auth.json"
    empty.write_text('{"auths": {}}')
    with site.serving(issued):
        result = inspect(site, issued.ca, f"docker://{ENDPOINT}/{REPOSITORY}:{TAG}", authfile=empty)
    assert result.returncode != 0
    assert "x509" not in result.stderr and "authentication required" in result.stderr.lower(), result.stderr


def test_an_untrusted_ca_fails_the_handshake(site: Site, issued: Material) -> None:
    stranger, _ = issue(site.workdir, "stranger")
    with site.serving(issued):
        result = inspect(site, stranger.ca, f"docker://{ENDPOINT}/{REPOSITORY}:{TAG}")
    assert result.returncode != 0
    assert "x509" in result.stderr and "unknown authority" in result.stderr, result.stderr


def test_a_certificate_for_another_ip_fails_the_handshake(site: Site, issued: Material) -> None:
    # Trusted CA, but the certificate names another IP than the one the client dials.
    wrong, _ = issue(site.workdir, "wrong-ip", ip=OTHER_IP)
    with site.serving(wrong):
        result = inspect(site, wrong.ca, f"docker://{ENDPOINT}/{REPOSITORY}:{TAG}")
    assert result.returncode != 0
    assert "x509" in result.stderr and OTHER_IP in result.stderr, result.stderr
