"""The node side of the readiness check: which mirror a node's container runtime uses for the
parent's login server, and whether an image's manifest resolves through it.

The program reads the node's registries.yaml (the read of components/nodes/read.py) and works
out, with the same parser the merge uses (components/nodes/registries_yaml.py), the mirror
endpoints k3s gives containerd for the login server, in order, each with its CA file, TLS check
and credentials (:func:`mirror_plan`). ``scripts/resolve.sh`` then asks each endpoint, from the
node, for each image's manifest (HEAD, ``Docker-Content-Digest``), and never the login server
itself: the check sees what a pull sees when the mirror is the only way, with no fallback to the
cloud registry. The plan goes on stdin (it holds the credentials the node's file holds); the
script refuses an endpoint or CA file the file does not name, and a file that changed since it
was read.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from components.config.images import ImageReference
from components.nodes import registries_yaml as ry
from components.nodes.payload import file_sha

RESOLVE_HEADER = "edge-registry-resolve 1"
_HOST_PORT_RE = re.compile(r"[A-Za-z0-9.:\[\]-]+")
_CA_RE = re.compile(r"/[A-Za-z0-9._/-]+")


class MirrorPlanError(Exception):
    """The node's file gives its runtime no mirror the check can ask; the message says why."""


@dataclass(frozen=True)
class MirrorEndpoint:
    """One endpoint containerd tries for the login server, with what k3s configures for it."""

    url: str
    """``scheme://host[:port]``."""
    ca_file: str | None
    insecure_skip_verify: bool
    auth: str | None = None
    """base64 ``username:password`` (a secret: it travels on stdin only)."""

    def __repr__(self) -> str:  # never the credentials
        return f"MirrorEndpoint({self.url!r}, ca_file={self.ca_file!r}, insecure={self.insecure_skip_verify})"


@dataclass(frozen=True)
class Attempt:
    """One endpoint's answer for one image."""

    endpoint: str
    status: str
    """``ok``, ``http-<code>`` or ``error``."""
    digest: str | None
    detail: str = ""


def _endpoint_url(entry: Any) -> str:
    """k3s: an endpoint without a scheme is https (http for localhost); only ``scheme://host[:port]``."""
    if not isinstance(entry, str) or not entry.strip():
        raise MirrorPlanError(f"the mirror endpoint {entry!r} is not a URL")
    text = entry.strip()
    if "://" not in text:
        host = text.split("/", 1)[0]
        text = ("http://" if host.split(":", 1)[0] in ("localhost", "127.0.0.1") else "https://") + text
    scheme, _, rest = text.partition("://")
    host_port, _, path = rest.partition("/")
    if scheme not in ("http", "https") or not _HOST_PORT_RE.fullmatch(host_port) or path.strip("/") not in ("", "v2"):
        raise MirrorPlanError(
            f"the mirror endpoint {entry!r} is not scheme://host[:port]: the check asks only such endpoints"
        )
    return f"{scheme}://{host_port}"


def _auth(config: dict[str, Any], host_port: str) -> str | None:
    auth = config.get("auth") or {}
    if auth.get("identity_token"):
        raise MirrorPlanError(f"configs[{host_port}] authenticates with an identity_token, which the check cannot use")
    if auth.get("username") and auth.get("password"):
        return base64.b64encode(f"{auth['username']}:{auth['password']}".encode()).decode("ascii")
    if auth.get("auth"):
        token = str(auth["auth"]).strip()
        if not re.fullmatch(r"[A-Za-z0-9+/=]+", token):
            raise MirrorPlanError(f"configs[{host_port}].auth.auth is not base64")
        return token
    return None


def mirror_plan(content: bytes | None, login_server: str) -> list[MirrorEndpoint]:
    """The endpoints containerd tries for ``login_server``, from the node's registries.yaml, in
    order. :raises MirrorPlanError: no mirror (pulls would go to the cloud registry), or one the
    check cannot ask (rewrites, a URL with a path, an identity token)."""
    try:
        document = ry.parse(content)
    except ry.RegistriesYamlError as error:
        raise MirrorPlanError(str(error)) from None
    mirrors = document.get("mirrors") or {}
    configs = document.get("configs") or {}
    if not isinstance(mirrors, dict) or not isinstance(configs, dict):
        raise MirrorPlanError("registries.yaml: mirrors and configs must be mappings")
    # k3s >= 1.29.3 applies the "*" mirror to every registry without its own entry.
    mirror = mirrors.get(login_server) if login_server in mirrors else mirrors.get("*")
    if not isinstance(mirror, dict) or not mirror.get("endpoint"):
        raise MirrorPlanError(
            f"no mirror for {login_server} in registries.yaml: the node's runtime pulls from the cloud registry"
        )
    if mirror.get("rewrite"):
        raise MirrorPlanError(f"the mirror for {login_server} rewrites repository names, which the check does not follow")
    endpoints = mirror["endpoint"] if isinstance(mirror["endpoint"], list) else [mirror["endpoint"]]
    plan = []
    for entry in endpoints:
        url = _endpoint_url(entry)
        host_port = url.split("://", 1)[1]
        config = configs.get(host_port) or {}
        tls = (config.get("tls") or {}) if isinstance(config, dict) else {}
        ca_file = tls.get("ca_file") or None
        if ca_file is not None and not _CA_RE.fullmatch(str(ca_file)):
            raise MirrorPlanError(f"configs[{host_port}].tls.ca_file {ca_file!r} is not a plain absolute path")
        plan.append(MirrorEndpoint(
            url=url, ca_file=ca_file, insecure_skip_verify=tls.get("insecure_skip_verify") is True,
            auth=_auth(config, host_port) if isinstance(config, dict) else None,
        ))
    return plan


def resolve_stdin(content: bytes | None, endpoints: Sequence[MirrorEndpoint], images: Sequence[ImageReference]) -> str:
    """What ``resolve.sh`` reads on stdin (secret: it holds the endpoints' credentials)."""
    lines = [RESOLVE_HEADER, f"file {file_sha(content)}"]
    lines += [
        f"endpoint {e.url} {e.ca_file or '-'} {'yes' if e.insecure_skip_verify else 'no'} {e.auth or '-'}"
        for e in endpoints
    ]
    lines += [f"image {image.repository} {image.reference}" for image in images]
    return "\n".join(lines) + "\n"


def parse_resolve_output(stdout: str, count: int) -> list[list[Attempt]]:
    """Each image's attempts, in plan order. :raises ValueError: output that is not the script's."""
    lines = stdout.splitlines()
    if not lines or lines[0] != RESOLVE_HEADER:
        first = lines[0][:80] if lines else "(nothing)"
        raise ValueError(f"unexpected output from the resolve script, first line: {first!r}")
    attempts: list[list[Attempt]] = [[] for _ in range(count)]
    for line in lines[1:]:
        word, index, endpoint, status, digest, detail = (line.split(" ", 5) + [""] * 6)[:6]
        if word != "attempt" or not index.isdigit() or not 1 <= int(index) <= count:
            raise ValueError(f"unexpected line from the resolve script: {line[:120]!r}")
        attempts[int(index) - 1].append(
            Attempt(endpoint, status, digest if digest.startswith("sha256:") else None, detail.strip())
        )
    return attempts
