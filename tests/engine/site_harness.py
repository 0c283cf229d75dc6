"""One site of this project under the real engine: the harness of tests/engine/test_site_tier.py.

:class:`EngineSite` is a two-node site of ``tests/stacks/Pulumi.dev.yaml`` made real enough for
``scripts/engine run``: its stack file in a temporary directory, the local file backend, a
passphrase secrets provider, and everything the program and the stand-in plugins reach on
loopback:

* ARM: tests/arm_server.py (its certificate covers ``127.0.0.1`` and ``localhost``, so
  ``https://localhost:PORT`` is another spelling of the same endpoint), the parent registry
  pre-created Premium with a data endpoint (``getRegistry``);
* nodes: one real OpenSSH server per node (tests/sshd.py) on 127.0.0.1, 127.0.0.2, ... (the
  program refuses two nodes with one host), the host key pinned, ``registries.yaml`` at a
  temporary path, the key set with ``pulumi config set --secret`` as an operator would;
* the cluster: the kubernetes stand-in's JSON file, for a kubeconfig at a temporary path whose
  server is :class:`KubeApiStub`: it answers the one read the program makes itself (is the Helm
  release installed? components/cluster/release_read.py) from the same file, so the README's
  "Helm release gone" row can be run.

:func:`steps` turns ``preview --json`` into (operation, URN) pairs; :class:`FastSite` runs the same
site through the fast suite's emulation (components/preview/render.py with
tests/test_rotation_site.py's ``Engine``/``Fleet``) and :func:`fast_steps` turns one of its runs
into the same pairs, so the two can be compared.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

from tests.arm_server import FAKE_BEARER, ArmServer
from tests.node_engine import node_dir
from tests.sshd import NodePath, SshServer

ROOT = Path(__file__).resolve().parents[2]
ENGINE = ROOT / "scripts" / "engine"


def engine_bin() -> Path | None:
    """The built engine's bin directory (``scripts/engine path``), or None."""
    try:
        out = subprocess.run([ENGINE, "path"], capture_output=True, text=True, check=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return Path(out.strip())


def site_tier_marks() -> list[Any]:
    """A site-tier module's skips: no engine built, no sshd, or under the fast suite's xdist (its
    scenarios share one site in order); under ``scripts/engine test`` each is a failure
    (tests/engine/conftest.py)."""
    import os

    import pytest

    from tests.sshd import can_run

    bin_dir = engine_bin()
    return [
        pytest.mark.skipif(bin_dir is None or not (bin_dir / "pulumi").is_file(),
                           reason="the engine is not built: scripts/engine build"),
        pytest.mark.skipif(can_run() is not None, reason=can_run() or ""),
        # scripts/engine test runs the tier's modules side by side with --dist loadfile (each module
        # whole, in order, on one worker); scripts/test's -n auto would spread one site's scenarios.
        pytest.mark.skipif(bool(os.environ.get("PYTEST_XDIST_WORKER")) and not os.environ.get("EDGE_REGISTRY_REQUIRE_ENGINE"),
                           reason="the scenarios share one site in order: run by scripts/engine test, not under xdist"),
    ]
STACK = "dev"
PROJECT = "edge-registry"
PASSPHRASE = "engine-tier"  # noqa: S105 - the test stack's passphrase
SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
RESOURCE_GROUP = "rg-edge-registry"
REGISTRY = "contosoedge"
CONNECTED_REGISTRY = "devship01"
CLIENT_TOKEN = f"{CONNECTED_REGISTRY}-client-token"
SYNC_TOKEN = f"{CONNECTED_REGISTRY}-sync-token"
#: What each node's registries.yaml holds before the site touches it (destroy must put it back).
ORIGINAL_FILES = {
    "127.0.0.1": b"# managed by hand, keep this comment\nmirrors:\n  docker.io:\n    endpoint:\n"
                 b"      - \"https://mirror.example.com:5000\"\n",
    "127.0.0.2": b"configs:\n  \"mirror.example.com:5000\":\n    tls:\n      insecure_skip_verify: false\n",
    "127.0.0.3": b"mirrors: {}\n",
}
ALL_HOSTS = tuple(ORIGINAL_FILES)


def urn(type_: str, name: str, parents: Iterable[str] = ()) -> str:
    """A URN of this stack: ``parents`` are the types of the enclosing components, outermost first."""
    qualified = "$".join([*parents, type_])
    return f"urn:pulumi:{STACK}::{PROJECT}::{qualified}::{name}"


# --- what a preview plans: (operation, URN) pairs ------------------------------------------------

#: Operations that change nothing: a read of a live object (``.get``) and its discard from the
#: state when the program stops reading it (a cloud-only run reads no ServiceAccount).
UNCHANGED = {"same", "read", "discard"}
#: The engine's steps of one replacement, as one operation.
REPLACEMENT = {"replace", "create-replacement", "delete-replaced", "discard-replaced", "read-replacement",
               "import-replacement"}


def normalise(operation: str) -> str:
    return "replace" if operation in REPLACEMENT else operation


def steps(preview_json: dict[str, Any]) -> set[tuple[str, str]]:
    """What a ``preview --json`` document plans, without the steps that change nothing."""
    return {(normalise(s["op"]), s["urn"]) for s in preview_json.get("steps", []) if s["op"] not in UNCHANGED}


def diagnostics(preview_json: dict[str, Any], severity: str = "warning") -> list[str]:
    return [d.get("message", "") for d in preview_json.get("diagnostics", []) if d.get("severity") == severity]


# --- the cluster's API, for the program's own read -------------------------------------------------------


class KubeApiStub:
    """The Kubernetes API as far as the program's program-time read goes: ``GET
    /api/v1/namespaces/NS/secrets?labelSelector=owner=helm,name=RELEASE``, answered with one Helm
    release Secret per release the kubernetes stand-in's cluster file holds (Helm 3 keeps a
    release revision as a Secret labelled ``owner=helm,name=<release>,status=<status>``).
    Every other request is a 404: the providers never come here (the stand-in reads the file)."""

    def __init__(self, cluster_file: Path) -> None:
        self.cluster_file = cluster_file
        self.requests: list[str] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
                """Quiet."""

            def do_GET(self) -> None:  # noqa: N802 - stdlib naming
                stub.requests.append(self.path)
                url = urlsplit(self.path)
                match = re.fullmatch(r"/api/v1/namespaces/([^/]+)/secrets", url.path)
                if match is None:
                    self._answer(404, {"kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404})
                    return
                selector = dict(part.split("=", 1) for part in
                                parse_qs(url.query).get("labelSelector", [""])[0].split(",") if "=" in part)
                self._answer(200, {"kind": "SecretList", "apiVersion": "v1", "metadata": {},
                                   "items": stub.release_secrets(match.group(1), selector)})

            def _answer(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    def release_secrets(self, namespace: str, selector: dict[str, str]) -> list[dict[str, Any]]:
        cluster = json.loads(self.cluster_file.read_text()) if self.cluster_file.exists() else {}
        items = []
        for release in (cluster.get("releases") or {}).values():
            labels = {"owner": "helm", "name": release["name"], "status": release.get("status", "deployed"),
                      "version": str(release.get("revision", 1))}
            if release.get("namespace") == namespace and all(labels.get(k) == v for k, v in selector.items()):
                items.append({"metadata": {"name": f"sh.helm.release.v1.{release['name']}.v{labels['version']}",
                                           "namespace": namespace, "labels": labels}})
        return items

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


# --- the site ----------------------------------------------------------------------------------------


@dataclass
class Run:
    """One ``scripts/engine run``."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def json(self) -> dict[str, Any]:
        return json.loads(self.stdout)


def engine_env() -> dict[str, str]:
    """The environment ``scripts/engine env`` exports (private PULUMI_HOME, stand-in plugins)."""
    done = subprocess.run(["bash", "-c", f'eval "$({ENGINE} env)" && env -0'], capture_output=True, text=True,
                          check=True, timeout=600)
    return dict(line.split("=", 1) for line in done.stdout.split("\0") if "=" in line)


def snapshot(target: Path) -> Path:
    """A copy of the program (Pulumi.yaml, __main__.py, components/) that every run of the site
    uses: the tier takes minutes, and a site must not meet two versions of the program when
    someone edits the tree meanwhile. (The stand-in plugins and the venv are used in place.)"""
    target.mkdir(parents=True)
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(ROOT / name, target / name)
    shutil.copytree(ROOT / "components", target / "components", ignore=shutil.ignore_patterns("__pycache__"))
    return target


@dataclass
class EngineSite:
    """The site: servers, files, stack file, state backend. Use :meth:`start` and :meth:`stop`."""

    root: Path
    hosts: tuple[str, ...] = ("127.0.0.1", "127.0.0.2")
    arm: ArmServer = field(init=False)
    nodes: dict[str, SshServer] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    runs: list[Run] = field(default_factory=list)
    secure: dict[str, Any] = field(default_factory=dict)

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> EngineSite:
        for folder in ("stacks", "state", "plans"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        self.project = snapshot(self.root / "project")
        # The nodes' files: root's own directories (the node scripts refuse one under /tmp).
        self._cleanup = contextlib.ExitStack()
        self.node_root = self._cleanup.enter_context(node_dir(*(f"{host}/k3s" for host in ALL_HOSTS)))
        self.arm = ArmServer(self.root, names=("127.0.0.1", "localhost")).__enter__()
        self.arm.state.add_registry(REGISTRY)
        for host in self.hosts:
            self.add_node_server(host)
        self.cluster = self.root / "cluster.json"
        self.kube_api = KubeApiStub(self.cluster)
        self.kubeconfig = self.root / "kubeconfig"
        self.kubeconfig.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "default",
            "contexts": [{"name": "default", "context": {"cluster": "site", "user": "admin"}}],
            "clusters": [{"name": "site", "cluster": {"server": self.kube_api.url}}],
            "users": [{"name": "admin", "user": {"token": "t"}}],
        }))
        self.env = {
            **engine_env(),
            "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
            "PULUMI_BACKEND_URL": self.backend,
            "EDGE_REGISTRY_STANDIN_ARM": self.arm.base_url,
            "EDGE_REGISTRY_ARM_TOKEN": FAKE_BEARER,
            "REQUESTS_CA_BUNDLE": self.arm.ca_pem,
            "EDGE_REGISTRY_STANDIN_POLL_SECONDS": "0.05",
            "EDGE_REGISTRY_STANDIN_RETRY_DELAY_SECONDS": "0.05",
            "EDGE_REGISTRY_STANDIN_K8S_STATE": str(self.cluster),
        }
        for name in ("EDGE_REGISTRY_STANDIN_K8S_FAULTS", "SSH_AUTH_SOCK", "PULUMI_ACCESS_TOKEN"):
            self.env.pop(name, None)
        self.config = self.initial_config()
        self.init_stack()
        return self

    def stop(self) -> None:
        for server in self.nodes.values():
            server.stop()
        self.arm.__exit__(None, None, None)
        self.kube_api.stop()
        self._cleanup.close()

    @property
    def backend(self) -> str:
        return f"file://{self.root / 'state'}"

    @property
    def stack_file(self) -> Path:
        return self.root / "stacks" / f"Pulumi.{STACK}.yaml"

    def add_node_server(self, host: str) -> SshServer:
        server = SshServer(self.root / "sshd" / host, host=host)
        (self.root / "sshd" / host).mkdir(parents=True, exist_ok=True)
        self.nodes[host] = server.start()
        NodePath(self.node_file(host)).write_bytes(ORIGINAL_FILES[host])
        return server

    def node_file(self, host: str) -> Path:
        return self.node_root / host / "k3s" / "registries.yaml"

    def node_bytes(self, host: str) -> bytes | None:
        path = NodePath(self.node_file(host))
        return path.read_bytes() if path.exists() else None

    # --- config ----------------------------------------------------------------------------------

    def node_entry(self, host: str, **extra: Any) -> dict[str, Any]:
        server = self.nodes[host]
        return {"host": host, "port": server.port, "user": server.user,
                "role": "server" if host == self.hosts[0] else "agent",
                "path": str(self.node_file(host)), "hostKey": server.host_public_key, **extra}

    def initial_config(self) -> dict[str, Any]:
        """tests/stacks/Pulumi.dev.yaml made real: https, explicit repositories, these nodes and files."""
        fixture = yaml.safe_load((ROOT / "tests" / "stacks" / f"Pulumi.{STACK}.yaml").read_text())["config"]
        config = dict(fixture)
        config.update({
            f"{PROJECT}:armEndpoint": self.arm.base_url,
            # Explicit names: a `ns/*` pattern would read the real registry's catalog.
            f"{PROJECT}:repositories": ["hello-world"],
            # The fast suite's Fleet runs with these (tests/test_rotation_site.py).
            f"{PROJECT}:passwordExpiryDays": 30,
            f"{PROJECT}:passwordRotateBeforeDays": 7,
            f"{PROJECT}:httpEnabled": False,
            f"{PROJECT}:kubeconfigPath": str(self.kubeconfig),
            f"{PROJECT}:kubeContext": "default",
            f"{PROJECT}:nodes": [self.node_entry(host) for host in self.hosts],
            f"{PROJECT}:nodeRestartTimeoutSeconds": 10,
        })
        return config

    def set(self, **values: Any) -> None:
        """Change ``edge-registry:KEY`` values (None removes the key) and write the stack file."""
        for key, value in values.items():
            if value is None:
                self.config.pop(f"{PROJECT}:{key}", None)
            else:
                self.config[f"{PROJECT}:{key}"] = value
        self.write_stack()

    def get(self, key: str) -> Any:
        return copy.deepcopy(self.config.get(f"{PROJECT}:{key}"))

    def write_stack(self) -> None:
        document: dict[str, Any] = {}
        if "salt" in self.secure:
            document["encryptionsalt"] = self.secure["salt"]
        document["config"] = {**self.config, **self.secure.get("config", {})}
        self.stack_file.write_text(yaml.safe_dump(document, sort_keys=False))

    def init_stack(self) -> None:
        """``pulumi stack init`` with the passphrase provider, then the node key as a secret, as an
        operator does (README "Deploy a site"); in a scratch copy of Pulumi.yaml, so nothing is
        written beside the repository's."""
        with tempfile.TemporaryDirectory(prefix="engine-site-") as scratch:
            shutil.copy(self.project / "Pulumi.yaml", scratch)
            shutil.copy(self.root / "sshd" / self.hosts[0] / "client_ed25519", Path(scratch) / "key")
            (Path(scratch) / f"Pulumi.{STACK}.yaml").write_text(yaml.safe_dump({"config": {}}))
            for command, stdin in ((["stack", "init", STACK, "--secrets-provider", "passphrase"], None),
                                   (["config", "set", "--secret", f"{PROJECT}:sshPrivateKey"],
                                    (Path(scratch) / "key").read_text())):
                done = subprocess.run(["pulumi", "--non-interactive", *command, "--stack", STACK] if command[0] == "config"
                                      else ["pulumi", "--non-interactive", *command],
                                      cwd=scratch, env=self.env, input=stdin, capture_output=True, text=True,
                                      timeout=120)
                assert done.returncode == 0, done.stdout + done.stderr
            written = yaml.safe_load((Path(scratch) / f"Pulumi.{STACK}.yaml").read_text())
        self.secure = {"salt": written["encryptionsalt"],
                       "config": {f"{PROJECT}:sshPrivateKey": written["config"][f"{PROJECT}:sshPrivateKey"]}}
        for host in self.hosts[1:]:
            self.authorize(host)
        self.write_stack()

    def authorize(self, host: str) -> None:
        """The site's key (the first node's client key) may log in to ``host`` too."""
        key = (self.root / "sshd" / self.hosts[0] / "client_ed25519.pub").read_text()
        with (self.root / "sshd" / host / "authorized_keys").open("a") as keys:
            keys.write(key)

    # --- runs --------------------------------------------------------------------------------------

    def run(self, command: str, *flags: str, timeout: float = 600) -> Run:
        args = (STACK, command, *flags)
        start = time.monotonic()
        done = subprocess.run(
            [str(ENGINE), "run", "--project-dir", str(self.project), "--stack-dir", str(self.root / "stacks"),
             "--backend", self.backend, *args],
            capture_output=True, text=True, env=self.env, timeout=timeout, cwd=ROOT,
        )
        run = Run(args, done.returncode, done.stdout, done.stderr, time.monotonic() - start)
        self.runs.append(run)
        return run

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """The built ``pulumi`` for what needs no program (stack export and import)."""
        with tempfile.TemporaryDirectory(prefix="engine-cli-") as scratch:
            shutil.copy(self.project / "Pulumi.yaml", scratch)
            shutil.copy(self.stack_file, scratch)
            return subprocess.run(["pulumi", "--non-interactive", *args, "--stack", STACK], cwd=scratch,
                                  env=self.env, input=stdin, capture_output=True, text=True, timeout=120)

    def export(self, show_secrets: bool = False) -> dict[str, Any]:
        done = self.cli("stack", "export", *(["--show-secrets"] if show_secrets else []))
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def import_state(self, state: dict[str, Any]) -> None:
        with tempfile.NamedTemporaryFile("w", suffix=".json", dir=self.root) as out:
            json.dump(state, out)
            out.flush()
            done = self.cli("stack", "import", "--file", out.name)
        assert done.returncode == 0, done.stdout + done.stderr

    def resources(self) -> list[dict[str, Any]]:
        return self.export()["deployment"].get("resources") or []

    def cluster_state(self) -> dict[str, Any]:
        return json.loads(self.cluster.read_text()) if self.cluster.exists() else {}


# --- the same site through the fast suite's emulation ------------------------------------------------


class FastSite:
    """The site's stack file rendered as the fast suite runs it: the real program under the SDK's
    mocks (components/preview/render.py), its dynamic providers called like the engine by
    tests/test_rotation_site.py's ``Engine`` against an ARM emulator of its own, on its own clock
    (``Fleet``, started at its T0). Each :meth:`preview` gives its plan as :func:`fast_steps`
    pairs, against what the last :meth:`up` left."""

    def __init__(self, root: Path, site: EngineSite, monkeypatch: Any) -> None:
        from components.azure.arm import ArmClient
        from tests.arm_server import FakeCredential
        from tests.test_rotation_site import Fleet

        self.site = site
        self.arm = ArmServer(root, names=("127.0.0.1", "localhost")).__enter__()
        self.node_state: dict[str, Any] = {}

        def client(subscription: str, _endpoint: str | None) -> ArmClient:
            # Every spelling of the endpoint reaches this emulator, as in the engine site.
            return ArmClient(subscription, arm_endpoint=self.arm.base_url, credential=FakeCredential(),
                             polling_interval=0, connection_verify=self.arm.ca_pem, retry_total=0)

        self.fleet = Fleet(self.arm, client, monkeypatch)
        self.state: dict[str, dict[str, Any]] = {}
        """What the last :meth:`up` left in the state: URN -> the inputs stored (see :func:`stored`)."""

    def stop(self) -> None:
        self.arm.__exit__(None, None, None)

    def render(self, preview: bool) -> Any:
        from components.preview.fakes import CloudFakes
        from components.preview.render import render_stack

        fleet = self.fleet
        fleet.engine.preview = preview
        fleet.engine.changes = {}
        fleet.engine.replaces = {}
        # The engine site's stack file as it is now, with this emulator for ARM (same spelling).
        endpoint = self.site.get("armEndpoint")
        port = self.site.arm.base_url.rsplit(":", 1)[1]
        overrides = {"armEndpoint": endpoint.replace(f":{port}", ":" + self.arm.base_url.rsplit(":", 1)[1])}
        return render_stack(
            self.site.project, STACK, stack_dir=self.site.root / "stacks", config_overrides=overrides,
            fakes=CloudFakes(sync_status=fleet.reader, dynamic_state=fleet.engine,
                             release_installed=fleet.release_installed, node_state=self.node_state),
            preview=preview,
        )

    def preview(self) -> set[tuple[str, str]]:
        return fast_steps(self.state, self.render(preview=True), self.fleet.engine)

    def up(self) -> Any:
        applied = self.render(preview=False)
        self.state = stored(self.state, applied)
        return applied


def stored(state: dict[str, dict[str, Any]], applied: Any) -> dict[str, dict[str, Any]]:
    """The state after an ``up`` of ``applied``: each managed resource's inputs as the engine
    stores them, the ``ignoreChanges`` ones kept from the state before (a held resource keeps
    what it had)."""
    from components.preview.values import reveal

    after: dict[str, dict[str, Any]] = {}
    for resource in applied.resources:
        if "read" in resource.options:
            continue
        inputs = reveal(resource.inputs)
        old = state.get(resource.urn)
        if old is not None:
            inputs = with_ignored(inputs, old, resource.options.get("ignoreChanges", []))
        after[resource.urn] = inputs
    return after


def with_ignored(news: dict[str, Any], olds: dict[str, Any], ignored: list[str]) -> dict[str, Any]:
    """``news`` with each ignored key taken from ``olds``, or dropped where ``olds`` has none
    (the engine's processIgnoreChanges, top-level keys)."""
    news = dict(news)
    for key in ignored:
        if key in olds:
            news[key] = olds[key]
        else:
            news.pop(key, None)
    return news


def fast_steps(state: dict[str, dict[str, Any]], after: Any, engine: Any) -> set[tuple[str, str]]:
    """One fast-suite preview as (operation, URN) pairs, the way the engine would plan it from
    ``state`` (what the last ``up`` stored, :func:`stored`).

    * a resource the state lacks is a ``create``; one the program no longer declares a ``delete``;
    * a dynamic resource: its provider's diff as ``Engine`` called it (``update``, or ``replace``);
    * any other custom resource: its inputs against the stored ones, with ``ignoreChanges`` taken
      from the state; an unknown input is a change; a changed path under ``replaceOnChanges`` (or
      ``*``) a ``replace``, else an ``update``. Reads (``.get``) and components change nothing.
    """
    from components.preview.values import reveal

    planned: set[tuple[str, str]] = set()
    for resource in after.resources:
        if "read" in resource.options:
            continue
        olds = state.get(resource.urn)
        if olds is None:
            planned.add(("create", resource.urn))
            continue
        if not resource.custom:
            continue
        if resource.type.startswith("pulumi-python:dynamic"):
            if engine.changes.get(resource.name):
                planned.add(("replace" if resource.name in engine.replaces else "update", resource.urn))
            continue
        news = with_ignored(reveal(resource.inputs), olds, resource.options.get("ignoreChanges", []))
        changed = changed_paths(olds, news)
        if changed:
            patterns = [re.sub(r"\[\d+\]", "[*]", p) for p in resource.options.get("replaceOnChanges", [])]
            replace = any(pattern == "*" or _under(path, pattern) or _under(pattern, path)
                          for pattern in patterns for path in changed)
            planned.add(("replace" if replace else "update", resource.urn))
    declared = {r.urn for r in after.resources}
    planned |= {("delete", urn) for urn in state if urn not in declared}
    return planned


def changed_paths(old: Any, new: Any, path: str = "") -> list[str]:
    """The property paths (``a.b``, ``list[*]``) where ``new`` differs from ``old`` or is unknown."""
    from components.preview.values import UNKNOWN

    if new == UNKNOWN:
        return [path or "*"]
    if isinstance(old, dict) and isinstance(new, dict):
        return [p for key in sorted(set(old) | set(new))
                for p in changed_paths(old.get(key), new.get(key), f"{path}.{key}" if path else key)]
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [p for o, n in zip(old, new, strict=True) for p in changed_paths(o, n, f"{path}[*]")]
    return [] if old == new else [path or "*"]


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith((f"{prefix}.", f"{prefix}["))


#: Left out of the comparison: the engine's own Stack resource and default providers (the program
#: never registers them, so the render has none), and the ServiceAccount patches, whose inputs come
#: from a read of the live ServiceAccount that a mocked preview answers as unknown.
NOT_COMPARED_TYPES = ("pulumi:pulumi:Stack", "kubernetes:core/v1:ServiceAccountPatch")


def comparable(planned: set[tuple[str, str]]) -> set[tuple[str, str, str]]:
    """(operation, type, name): the render's URNs qualify a type with its parent's type only, the
    engine's with every ancestor's (names are unique in this program)."""
    out = set()
    for op, u in planned:
        qualified, name = u.split("::")[2], u.split("::")[3]
        type_ = qualified.rsplit("$", 1)[-1]
        if type_ in NOT_COMPARED_TYPES or (type_.startswith("pulumi:providers:") and name.startswith("default")):
            continue
        out.add((op, type_, name))
    return out
