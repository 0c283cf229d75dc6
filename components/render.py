"""Offline render: evaluate a site's stack as ``pulumi up`` would, with the SDK's mocks.

    python -m components.render STACK [--json] [--show-secrets] [--node-state HOST=FILE ...]

The real program (``components.site.run``) runs against the real Pulumi SDK; only the engine and
the providers are faked. Config is Pulumi.yaml's defaults merged with ``Pulumi.STACK.yaml``;
values the cloud would supply (ids, the gateway endpoint, passwords, the catalog, a node's
current registries.yaml) come from deterministic fakes. Secure values that cannot be decrypted
offline become placeholders. The CLI then runs the policy pack's validators on what it rendered
(components/policy_check.py), so a stack that renders also passes ``--policy-pack policy``.
Exit codes: 0 rendered, 2 configuration error or mandatory policy violation.
"""

from __future__ import annotations

import argparse
import contextvars
import hashlib
import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import yaml

from components.config import PROJECT, ConfigError, key_problems, placeholder
from components.stack_config import is_secure_leaf, secure_leaf_paths

SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
DEFAULT_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
DEFAULT_LOCATION = "westeurope"
REPO_ROOT = Path(__file__).resolve().parent.parent
# libyaml's loader when PyYAML was built with it: a large stack file parses ~10x faster.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class RenderedResource:
    """One resource as the engine would see it registered."""

    type: str
    name: str
    urn: str
    parent: str | None
    custom: bool
    inputs: dict[str, Any]
    dependencies: list[str]
    options: dict[str, Any]
    secret_paths: list[str]
    provider: str | None = None

    def as_json(self, show_secrets: bool) -> dict[str, Any]:
        return {
            "type": self.type,
            "name": self.name,
            "urn": self.urn,
            "parent": self.parent,
            "inputs": reveal(self.inputs) if show_secrets else mask(self.inputs),
            "dependencies": self.dependencies,
            "options": self.options,
            "secretPaths": self.secret_paths,
        }

    def plain_inputs(self) -> dict[str, Any]:
        """Inputs with secret wrappers removed (for assertions on values)."""
        return reveal(self.inputs)


@dataclass
class RenderResult:
    """Everything one evaluation registered, in registration order, plus the stack outputs."""

    resources: list[RenderedResource]
    outputs: dict[str, Any]
    secret_outputs: set[str]
    warnings: list[str] = field(default_factory=list)

    def by_type(self, type_: str) -> list[RenderedResource]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str, name_suffix: str = "") -> RenderedResource:
        found = [r for r in self.by_type(type_) if r.name.endswith(name_suffix)]
        if len(found) != 1:
            raise LookupError(f"expected one {type_} ending in {name_suffix!r}, found {[r.name for r in found]}")
        return found[0]

    def by_urn(self, urn: str) -> RenderedResource:
        return next(r for r in self.resources if r.urn == urn)


# --- secrets in deserialized property values ---------------------------------------------

def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SECRET_SIG_KEY) == SECRET_SIG


def reveal(value: Any) -> Any:
    if is_secret(value):
        return reveal(value.get("value"))
    if isinstance(value, dict):
        return {k: reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [reveal(v) for v in value]
    return value


def mask(value: Any) -> Any:
    if is_secret(value):
        return "[secret]"
    if isinstance(value, dict):
        return {k: mask(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v) for v in value]
    return value


def secret_paths(value: Any, prefix: str = "") -> list[str]:
    if is_secret(value):
        return [prefix or "."]
    paths: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            paths += secret_paths(item, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            paths += secret_paths(item, f"{prefix}[{index}]")
    return paths


# --- stack config as `pulumi up` would see it ------------------------------------------------

def _config_string(value: Any) -> str:
    """Pulumi hands every config value to the program as a string (JSON for lists and maps)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def load_stack_config(
    project_dir: Path, stack: str, stack_dir: Path | None = None
) -> tuple[dict[str, str], list[str], list[str]]:
    """Pulumi.yaml defaults merged with Pulumi.STACK.yaml: (config, secret keys, notes).

    The stack file is read from ``stack_dir`` (default: the project directory, as Pulumi does);
    the test suite keeps its own fixture stacks in ``tests/stacks``.
    """
    project = yaml.load((project_dir / "Pulumi.yaml").read_text(), Loader=_YAML_LOADER)
    stack_dir = stack_dir if stack_dir is not None else project_dir
    stack_file = stack_dir / f"Pulumi.{stack}.yaml"
    if not stack_file.is_file():
        raise ConfigError([f"{stack_file.name}: no such stack file (known: {', '.join(known_stacks(stack_dir))})"])
    try:
        stack_doc = yaml.load(stack_file.read_text(), Loader=_YAML_LOADER) or {}
    except yaml.YAMLError as error:
        raise ConfigError([f"{stack_file.name}: not valid YAML: {error}"]) from None
    name = project["name"]
    config: dict[str, str] = {}
    secret_keys: list[str] = []
    notes: list[str] = []
    declared = project.get("config") or {}
    for key, declaration in declared.items():
        full = key if ":" in key else f"{name}:{key}"
        if isinstance(declaration, dict) and "default" in declaration:
            config[full] = _config_string(declaration["default"])
        if isinstance(declaration, dict) and declaration.get("secret"):
            secret_keys.append(full)
    stack_config = stack_doc.get("config") or {}
    # Pulumi refuses a stack file key without its namespace; say so, with the key to write.
    unprefixed = [str(key) for key in stack_config if ":" not in str(key)]
    if unprefixed:
        raise ConfigError([f"{stack_file.name}: {problem}" for problem in key_problems(unprefixed)])
    for key, value in stack_config.items():
        full = str(key)
        if is_secure_leaf(value):
            # Cannot be decrypted offline: a placeholder stands in, still a secret.
            config[full] = placeholder(full.split(":", 1)[1])
            secret_keys.append(full)
        elif leaves := secure_leaf_paths(value):
            # `--secret --path key.x`: the engine marks the whole key secret and decrypts the
            # leaves in place; here each secure leaf becomes a placeholder.
            config[full] = _config_string(_with_placeholders(full.split(":", 1)[1], value, leaves))
            secret_keys.append(full)
        else:
            config[full] = _config_string(value)
    # A secret the site needs but the stack file leaves unset (secrets are often set per
    # machine) renders as a placeholder so the rest of the site can still be reviewed;
    # `pulumi up` itself reports it as missing.
    from components.config import SECRET_KEYS, load_site_config

    values = {k.split(":", 1)[1]: v for k, v in config.items() if k.startswith(f"{name}:")}
    try:
        load_site_config(values)
    except ConfigError as error:
        for key in sorted(SECRET_KEYS):
            if any(p.startswith(f"{name}:{key}: required") for p in error.problems):
                config[f"{name}:{key}"] = placeholder(key)
                secret_keys.append(f"{name}:{key}")
                notes.append(f"note: {name}:{key} is not set in {stack_file.name}; rendered with a placeholder")
    return config, sorted(set(secret_keys)), notes


def _with_placeholders(key: str, value: Any, leaves: Sequence[tuple[str | int, ...]]) -> Any:
    """``value`` with each secure leaf replaced by the placeholder naming its path."""
    def walk(item: Any, at: tuple[str | int, ...]) -> Any:
        if at in leaves:
            return placeholder(key + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in at))
        if isinstance(item, dict):
            return {k: walk(v, (*at, str(k))) for k, v in item.items()}
        if isinstance(item, list):
            return [walk(v, (*at, i)) for i, v in enumerate(item)]
        return item

    return walk(value, ())


def known_stacks(project_dir: Path) -> list[str]:
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in project_dir.glob("Pulumi.*.yaml"))


# --- fakes for what the cloud and the nodes would supply -------------------------------------

def _digest(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()


def default_catalog(repositories: Sequence[str]) -> Callable[[str], list[str]]:
    """A plausible catalog: every explicit repository plus two per ``ns/*`` pattern."""
    def catalog(_login_server: str) -> list[str]:
        names = []
        for entry in repositories:
            if entry.endswith("/*"):
                names += [f"{entry[:-2]}/app-a", f"{entry[:-2]}/app-b"]
            else:
                names.append(entry)
        return names
    return catalog


@dataclass
class CloudFakes:
    """Deterministic values in place of what Azure, the cluster and the nodes return."""

    subscription_id: str = DEFAULT_SUBSCRIPTION
    location: str = DEFAULT_LOCATION
    registry_sku: str = "Premium"
    data_endpoint_enabled: bool = True
    cluster_ip: str | None = None
    node_state: Mapping[str, bytes | None] = field(default_factory=dict)
    #: Varies the fake token passwords, as if Azure had issued new ones.
    password_epoch: str = ""


class _Mocks:
    def __init__(self, fakes: CloudFakes) -> None:
        self.fakes = fakes

    def call(self, args: Any) -> tuple[dict[str, Any], list[Any]]:
        if args.token == "azure-native:containerregistry:getRegistry":
            name = args.args["registryName"]
            rg = args.args["resourceGroupName"]
            return {
                "id": f"/subscriptions/{self.fakes.subscription_id}/resourceGroups/{rg}"
                f"/providers/Microsoft.ContainerRegistry/registries/{name}",
                "name": name,
                "location": self.fakes.location,
                "loginServer": f"{name.lower()}.azurecr.io",
                "sku": {"name": self.fakes.registry_sku, "tier": self.fakes.registry_sku},
                "dataEndpointEnabled": self.fakes.data_endpoint_enabled,
            }, []
        return {}, []

    def new_resource(self, args: Any) -> tuple[str, dict[str, Any]]:
        inputs = dict(args.inputs)
        typ, name = args.typ, args.name
        if typ.startswith("azure-native:containerregistry:"):
            return self._azure(typ, name, inputs)
        if typ.startswith("pulumi-python:dynamic"):
            return self._dynamic(name, inputs)
        if typ == "kubernetes:helm.sh/v3:Release":
            status = {"name": inputs.get("name", name), "namespace": inputs.get("namespace", "default"),
                      "status": "deployed", "version": inputs.get("version"), "revision": 1,
                      "chart": "connected-registry"}
            return f"{status['namespace']}/{status['name']}", {**inputs, "status": status}
        if typ == "kubernetes:core/v1:Service":
            ip = self.fakes.cluster_ip or "10.43.{}.{}".format(*(int(_digest(name)[i:i + 2], 16) for i in (0, 2)))
            spec = dict(inputs.get("spec") or {})
            spec.setdefault("clusterIP", ip)
            return args.resource_id or name, {**inputs, "spec": spec}
        if typ == "command:remote:Command":
            from components import node_mirror

            outputs = node_mirror.mock_outputs(typ, name, inputs, self.fakes.node_state)
            return f"{name}-id", {**inputs, **(outputs or {"stdout": "", "stderr": ""})}
        if typ.startswith("kubernetes:"):
            meta = inputs.get("metadata") or {}
            ident = "/".join(p for p in (meta.get("namespace"), meta.get("name")) if isinstance(p, str)) or name
            return ident, inputs
        return f"{name}-id", inputs

    def _azure(self, typ: str, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        registry_id = (
            f"/subscriptions/{self.fakes.subscription_id}/resourceGroups/{inputs['resourceGroupName']}"
            f"/providers/Microsoft.ContainerRegistry/registries/{inputs['registryName']}"
        )
        kind, key = {
            "azure-native:containerregistry:ScopeMap": ("scopeMaps", "scopeMapName"),
            "azure-native:containerregistry:Token": ("tokens", "tokenName"),
            "azure-native:containerregistry:ConnectedRegistry": ("connectedRegistries", "connectedRegistryName"),
        }.get(typ, (typ.rsplit(":", 1)[-1], "name"))
        resource_name = inputs.get(key, name)
        state = {**inputs, "name": resource_name}
        if kind == "connectedRegistries":
            parent = dict(inputs.get("parent") or {})
            sync = dict(parent.get("syncProperties") or {})
            sync["gatewayEndpoint"] = f"{inputs['registryName'].lower()}.{self.fakes.location}.data.azurecr.io"
            parent["syncProperties"] = sync
            state.update(parent=parent, activation={"status": "Inactive"}, connectionState="Offline",
                         loginServer={"host": f"{resource_name.lower()}.local"})
        return f"{registry_id}/{kind}/{resource_name}", state

    def _dynamic(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        inputs.pop("__provider", None)
        state = dict(inputs)
        if "tokenId" in inputs or "token_id" in inputs:
            state.update(
                value=f"fake{_digest('password', name, *filter(None, [self.fakes.password_epoch]))[:40]}",
                slot="password1",
                expiry="2030-01-01T00:00:00Z",
                username=inputs.get("tokenName", inputs.get("token_name", "")),
            )
        return f"{name}-id", state


class _RecordingMonitor:
    """A MockMonitor that also records each registration's parent, dependencies and options."""

    def __new__(cls, mocks: _Mocks) -> Any:
        from pulumi.runtime.mocks import MockMonitor

        class Monitor(MockMonitor):
            def __init__(self) -> None:
                super().__init__(mocks)  # type: ignore[arg-type]
                self.records: list[RenderedResource] = []

            def ReadResource(self, request: Any) -> Any:  # noqa: N802 (gRPC method name)
                # `Resource.get`: the program reads an existing object (e.g. the chart's Service).
                response = super().ReadResource(request)
                inputs = _as_sent(request.properties)
                self._record(request, response.urn, inputs, {"read": request.id}, custom=True)
                return response

            def _record(
                self, request: Any, urn: str, inputs: dict[str, Any], options: dict[str, Any], custom: bool
            ) -> None:
                self.records.append(
                    RenderedResource(
                        type=request.type,
                        name=request.name,
                        urn=urn,
                        parent=request.parent or None,
                        custom=custom,
                        inputs=inputs,
                        dependencies=sorted(set(request.dependencies)),
                        options=options,
                        secret_paths=secret_paths(inputs),
                        provider=request.provider or None,
                    )
                )

            def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (gRPC method name)
                response = super().RegisterResource(request)
                if request.type == "pulumi:pulumi:Stack":
                    return response
                inputs = _as_sent(request.object)
                if request.type.startswith("pulumi-python:dynamic"):
                    # The pickled provider is an implementation detail, not an input to review.
                    inputs.pop("__provider", None)
                options: dict[str, Any] = {}
                if request.protect:
                    options["protect"] = True
                if request.deleteBeforeReplace:
                    options["deleteBeforeReplace"] = True
                if request.retainOnDelete:
                    options["retainOnDelete"] = True
                for option in ("replaceOnChanges", "additionalSecretOutputs", "ignoreChanges"):
                    values = list(getattr(request, option))
                    if values:
                        options[option] = values
                self._record(request, response.urn, inputs, options, custom=bool(request.custom))
                return response

        return Monitor()


def _as_sent(struct: Any) -> dict[str, Any]:
    """Properties as the SDK sent them: secrets stay wrapped where they are (a secret leaf inside
    an object is that leaf only, as the engine sees it; the SDK's own deserializer would mark the
    whole object secret)."""
    from google.protobuf import json_format

    return json_format.MessageToDict(struct)


class _LogCapture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def render_stack(
    project_dir: Path | str = REPO_ROOT,
    stack: str = "dev",
    *,
    config_overrides: Mapping[str, Any] | None = None,
    catalog: Callable[[str], Sequence[str]] | None = None,
    fakes: CloudFakes | None = None,
    preview: bool = False,
    stack_dir: Path | str | None = None,
) -> RenderResult:
    """Evaluate the program for STACK under mocks and return what it registered.

    ``config_overrides`` (keys without the project prefix; None removes a key) lets tests vary
    one setting. ``stack_dir`` is where Pulumi.STACK.yaml is (default: ``project_dir``).
    Raises :class:`ConfigError` for a configuration problem.
    """
    config, secret_keys, notes = load_stack_config(
        Path(project_dir), stack, Path(stack_dir) if stack_dir is not None else None
    )
    for key, value in (config_overrides or {}).items():
        full = key if ":" in key else f"{PROJECT}:{key}"
        if value is None:
            config.pop(full, None)
        else:
            config[full] = _config_string(value)
    repositories = json.loads(config.get(f"{PROJECT}:repositories", "[]") or "[]")
    fakes = fakes or CloudFakes(
        subscription_id=config.get("azure-native:subscriptionId", DEFAULT_SUBSCRIPTION),
        location=config.get("azure-native:location", DEFAULT_LOCATION),
    )
    chosen_catalog = catalog or default_catalog(repositories if isinstance(repositories, list) else [])
    # A fresh context: the SDK keeps its settings in context variables, so renders don't leak.
    return contextvars.Context().run(
        _render_in_context, stack, config, secret_keys, notes, chosen_catalog, fakes, preview,
        Path(stack_dir) if stack_dir is not None else Path(project_dir),
    )


def _render_in_context(
    stack: str,
    config: dict[str, str],
    secret_keys: list[str],
    notes: list[str],
    catalog: Callable[[str], Sequence[str]],
    fakes: CloudFakes,
    preview: bool,
    stack_dir: Path,
) -> RenderResult:
    import pulumi
    from pulumi.runtime import mocks as pulumi_mocks
    from pulumi.runtime.stack import run_pulumi_func
    from pulumi.runtime.sync_await import _sync_await

    from components import node_mirror
    from components import site as site_module
    from components.stack_config import read_stack_config

    # Node reads are re-run on every `pulumi up` via a per-run trigger; a fixed one here keeps
    # renders reproducible.
    os.environ.setdefault(node_mirror.RUN_ID_ENV, "offline-render")
    pulumi.runtime.set_all_config(config, secret_keys)
    monitor = _RecordingMonitor(_Mocks(fakes))
    logger = logging.getLogger(f"edge-registry.render.{id(monitor)}")
    logger.propagate = False
    capture = _LogCapture()
    logger.addHandler(capture)
    pulumi_mocks.set_mocks(
        monitor.mocks, project=PROJECT, stack=stack, preview=preview, logger=logger, monitor=monitor
    )
    holder: dict[str, Any] = {}

    def program() -> None:
        # As `pulumi up` does: values through pulumi.Config, secret keys as the engine marks them
        # (set_all_config above), secret leaves from the stack file.
        stack_config = read_stack_config(stack_dir)
        holder["site"] = site_module.build(stack_config.values, catalog, secrets=stack_config)

    _sync_await(run_pulumi_func(program))
    outputs: dict[str, Any] = {}
    secret_outputs: set[str] = set()
    for key, output in site_module.site_outputs(holder["site"]).items():
        output = pulumi.Output.from_input(output)
        outputs[key] = _sync_await(output.future(with_unknowns=True))
        if _sync_await(output.is_secret()):
            secret_outputs.add(key)
    return RenderResult(monitor.records, outputs, secret_outputs, notes + capture.messages)


# --- text output -------------------------------------------------------------------------------

def _summary(value: Any) -> str:
    if isinstance(value, str):
        return value if len(value) <= 60 else value[:57] + "..."
    if isinstance(value, list):
        if all(isinstance(v, str) for v in value) and len(value) <= 3:
            return "[" + ", ".join(_summary(v) for v in value) + "]"
        return f"[{len(value)} items]"
    if isinstance(value, dict):
        return "{" + ", ".join(sorted(value)) + "}"
    return json.dumps(value)


def format_tree(result: RenderResult, show_secrets: bool = False) -> str:
    children: dict[str | None, list[RenderedResource]] = {}
    for resource in result.resources:
        children.setdefault(resource.parent, []).append(resource)
    known = {r.urn for r in result.resources}
    lines: list[str] = []

    def walk(parent: str | None, depth: int) -> None:
        for resource in children.get(parent, []):
            lines.append(f"{'  ' * depth}{resource.type}  {resource.name}")
            shown = reveal(resource.inputs) if show_secrets else mask(resource.inputs)
            for key in sorted(shown):
                lines.append(f"{'  ' * depth}    {key}: {_summary(shown[key])}")
            walk(resource.urn, depth + 1)

    roots = [p for p in children if p is None or p not in known]
    for root in roots:
        walk(root, 0)
    lines += _node_payloads(result, show_secrets)
    lines.append("")
    lines.append("outputs:")
    for key in sorted(result.outputs):
        value = result.outputs[key]
        shown = "[secret]" if key in result.secret_outputs and not show_secrets else value
        lines.append(f"    {key}: {json.dumps(shown)}")
    return "\n".join(lines)


def _node_payloads(result: RenderResult, show_secrets: bool) -> list[str]:
    """What each node's apply command would receive on stdin, decoded (the payload is base64)."""
    from components.node_mirror import decode_apply_stdin

    lines: list[str] = []
    for command in result.by_type("command:remote:Command"):
        stdin = reveal(command.inputs).get("stdin")
        if not command.name.endswith("-apply") or not isinstance(stdin, str) or not stdin:
            continue
        plan = decode_apply_stdin(stdin)
        lines += ["", f"{command.name}: stdin (decoded)"]
        lines.append(f"    expected current file: {plan.expected}")
        lines.append(f"    entries owned: {', '.join(f'{section}[{key}]' for section, key in plan.owned)}")
        if show_secrets:
            lines.append("    desired registries.yaml:")
            lines += [f"      {line}" for line in plan.content.decode().splitlines()]
        else:
            lines.append(f"    desired registries.yaml: [secret: {len(plan.content)} bytes; --show-secrets prints it]")
    return lines


def _parse_node_state(items: Sequence[str]) -> dict[str, bytes | None]:
    state: dict[str, bytes | None] = {}
    for item in items:
        host, sep, path = item.partition("=")
        if not sep or not host or not path:
            raise ConfigError([f"--node-state {item!r}: expected HOST=FILE"])
        file = Path(path)
        if not file.is_file():
            raise ConfigError([f"--node-state {host}: no such file {path}"])
        state[host] = file.read_bytes()
    return state


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m components.render", description=__doc__.split("\n\n")[0])
    parser.add_argument("stack", help="stack name: renders Pulumi.STACK.yaml")
    parser.add_argument("--json", action="store_true", help="print a JSON list of resources")
    parser.add_argument("--show-secrets", action="store_true", help="print secret values instead of [secret]")
    parser.add_argument("--node-state", action="append", default=[], metavar="HOST=FILE",
                        help="evaluate as if FILE were registries.yaml on node HOST (default: no file)")
    parser.add_argument("--project-dir", type=Path, default=REPO_ROOT, help=argparse.SUPPRESS)
    parser.add_argument("--stack-dir", type=Path, default=None, metavar="DIR",
                        help="read Pulumi.STACK.yaml from DIR (default: the project directory)")
    parser.add_argument("--policy-config", type=Path, default=None, metavar="FILE",
                        help="the policy pack's fleet config (default: policy/config.json when it exists)")
    args = parser.parse_args(argv)
    try:
        node_state = _parse_node_state(args.node_state)
        config, _, _ = load_stack_config(args.project_dir, args.stack, args.stack_dir)
        fakes = CloudFakes(
            subscription_id=config.get("azure-native:subscriptionId", DEFAULT_SUBSCRIPTION),
            location=config.get("azure-native:location", DEFAULT_LOCATION),
            node_state=node_state,
        )
        result = render_stack(args.project_dir, args.stack, fakes=fakes, stack_dir=args.stack_dir)
        # The policy pack's own validators on what was rendered (components/policy_check.py).
        from components.policy_check import DEFAULT_POLICY_CONFIG, load_policy_config, policy_violations

        fleet_config = load_policy_config(args.policy_config or args.project_dir / DEFAULT_POLICY_CONFIG)
        violations = policy_violations(result.resources, args.stack_dir or args.project_dir, fleet_config)
    except ConfigError as error:
        print(f"invalid site configuration for stack {args.stack}:", file=sys.stderr)
        for problem in error.problems:
            print(problem, file=sys.stderr)
        return 2
    for warning in result.warnings:
        print(warning, file=sys.stderr)
    for violation in violations:
        if not violation.mandatory:
            print(violation, file=sys.stderr)
    mandatory = [v for v in violations if v.mandatory]
    if mandatory:
        print(f"stack {args.stack} fails the policy pack (pulumi preview --policy-pack policy would too):",
              file=sys.stderr)
        for violation in mandatory:
            print(violation, file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([r.as_json(args.show_secrets) for r in result.resources], indent=2, sort_keys=False))
    else:
        print(format_tree(result, args.show_secrets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
