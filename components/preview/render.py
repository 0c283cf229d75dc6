"""Offline render: evaluate a site's stack as ``pulumi preview`` would, with the SDK's mocks.

    python -m components.preview.render STACK [--json] [--show-secrets]
                                [--node-state HOST=FILE ...] [--read-nodes [--ssh-key FILE]]

The real program (``components.site.run``) runs against the real Pulumi SDK; only the engine and
the providers are faked. Config is Pulumi.yaml's defaults merged with ``Pulumi.STACK.yaml``;
values the cloud would supply (ids, the gateway endpoint, passwords, the catalog, the connected
registry's last sync) come from
deterministic fakes (components/preview/fakes.py). Nodes are read from ``--node-state`` files, or
with ``--read-nodes`` over SSH exactly as the program reads them (components/nodes/read.py).
Secure values that cannot be decrypted offline become placeholders. The same input gives the
same bytes. The CLI then runs the policy pack's validators on what it rendered
(components/preview/policy_check.py), so a stack that renders also passes ``--policy-pack policy``.
Exit codes: 0 rendered, 2 configuration or usage error, a node the program refuses (one line
each) or mandatory policy violation.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import gc
import hashlib
import json
import logging
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence


from components.nodes import registries_yaml as ry
from components.config.site import PROJECT, SECRET_KEYS, ConfigError, is_placeholder
from components.nodes.payload import NodeMirrorError, NodeRead
from components.nodes.plan import foreign_problem
from components.nodes.read import NodeReader
from components.preview.fakes import (  # noqa: F401 - CloudFakes and default_catalog: part of this module's API
    DEFAULT_LOCATION,
    DEFAULT_SUBSCRIPTION,
    UNKNOWN,
    CloudFakes,
    FakeNodeReader,
    RenderMocks,
    default_catalog,
)
from components.config import stack_files
from components.config.stack_files import REPO_ROOT

SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
_LOG = logging.getLogger(__name__)


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
    secret_leaves: dict[str, list[str]] = field(default_factory=dict)
    """Per input whose whole value is a secret on the wire (the SDK lifts a nested secret to the
    top-level property): the dotted paths inside it that hold the secret. Masks only those."""

    def shown_inputs(self, show_secrets: bool) -> dict[str, Any]:
        """Inputs for people: secrets as ``[secret]`` (one by one where the program says which
        leaves are secret), whole numbers as integers, unknowns as ``(known after apply)``."""
        if show_secrets:
            return integers(reveal(self.inputs))
        shown: dict[str, Any] = {}
        for key, value in self.inputs.items():
            leaves = self.secret_leaves.get(key)
            if leaves and is_secret(value) and isinstance(reveal(value), dict):
                shown[key] = mask_leaves(reveal(value), leaves)
            else:
                shown[key] = mask(value)
        return integers(shown)
    serialized_provider: str | None = None
    """Dynamic resources: the dill-pickled provider as the engine would store it in the state."""

    def as_json(self, show_secrets: bool) -> dict[str, Any]:
        return {
            "type": self.type,
            "name": self.name,
            "urn": self.urn,
            "parent": self.parent,
            "inputs": self.shown_inputs(show_secrets),
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
    node_summaries: dict[str, str] = field(default_factory=dict)
    """Per NodeMirror name: what this run does to the node (the diagnostic the program logs)."""

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


KNOWN_AFTER_APPLY = "(known after apply)"


def mask_leaves(value: dict[str, Any], leaves: Sequence[str]) -> dict[str, Any]:
    """``value`` with the leaves at the dotted ``leaves`` paths (those that exist) masked."""
    result = json.loads(json.dumps(value, default=str))
    for path in leaves:
        *parents, last = path.split(".")
        node: Any = result
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and last in node:
            node[last] = "[secret]"
    return result


def integers(value: Any) -> Any:
    """Whole floats as integers (the wire format has only doubles, the config has integers);
    values unknown until apply as ``(known after apply)``."""
    from pulumi.output import Unknown

    if isinstance(value, Unknown) or value == UNKNOWN:
        return KNOWN_AFTER_APPLY
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: integers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [integers(v) for v in value]
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


class _RecordingMonitor:
    """A MockMonitor that also records each registration's parent, dependencies and options."""

    def __new__(cls, mocks: RenderMocks) -> Any:
        from pulumi.runtime.mocks import MockMonitor

        class Monitor(MockMonitor):
            def __init__(self) -> None:
                super().__init__(mocks)  # type: ignore[arg-type]
                self.records: list[RenderedResource] = []

            def ReadResource(self, request: Any) -> Any:  # noqa: N802 (gRPC method name)
                # `Resource.get`: the program reads an existing object (e.g. the chart's Service).
                if request.id == UNKNOWN:
                    # As the engine does in a preview: a read whose id is not known yet is
                    # skipped, with no outputs (its object may not exist yet).
                    from pulumi.runtime.proto import resource_pb2

                    response = resource_pb2.ReadResourceResponse(
                        urn=self.make_urn(request.parent, request.type, request.name)
                    )
                    read_id = KNOWN_AFTER_APPLY
                else:
                    response = super().ReadResource(request)
                    read_id = request.id
                inputs = _as_sent(request.properties)
                self._record(request, response.urn, inputs, {"read": read_id}, custom=True)
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
                serialized_provider = None
                if request.type.startswith("pulumi-python:dynamic"):
                    # The pickled provider is an implementation detail, not an input to review;
                    # kept aside so tests can check that the state can load it.
                    serialized_provider = reveal(inputs.pop("__provider", None))
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
                self.records[-1].serialized_provider = serialized_provider
                return response

        return Monitor()


def _as_sent(struct: Any) -> dict[str, Any]:
    """Properties as the SDK sent them: secrets stay wrapped where they are (a secret leaf inside
    an object is that leaf only, as the engine sees it; the SDK's own deserializer would mark the
    whole object secret)."""
    from google.protobuf import json_format

    return json_format.MessageToDict(struct)


class NodeError(Exception):
    """The program refused a node (``NodeMirrorError``): one line per problem, each naming the node."""

    def __init__(self, lines: Sequence[str]) -> None:
        self.lines = [" ".join(str(line).split()) for line in lines]
        super().__init__("\n".join(self.lines))


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
    node_reader: NodeReader | None = None,
) -> RenderResult:
    """Evaluate the program for STACK under mocks and return what it registered.

    ``config_overrides`` (keys without the project prefix; None removes a key) lets tests vary
    one setting; a secret key stays a secret. ``node_reader`` reads the nodes (default: a
    :class:`FakeNodeReader` over ``fakes.node_state``). ``preview`` runs as ``pulumi preview``
    (a node that cannot be read is a warning, not an error). Raises :class:`ConfigError` for a
    configuration problem, :class:`NodeError` for a node the program refuses (a file k3s would
    not start with). ``stack_dir`` is where Pulumi.STACK.yaml is (default: ``project_dir``).
    """
    config, secret_keys, notes = stack_files.load_stack_config(
        Path(project_dir), stack, Path(stack_dir) if stack_dir is not None else None
    )
    for key, value in (config_overrides or {}).items():
        full = key if ":" in key else f"{PROJECT}:{key}"
        if value is None:
            config.pop(full, None)
        else:
            config[full] = stack_files.config_string(value)
            if full.split(":", 1)[1] in SECRET_KEYS:
                secret_keys = sorted({*secret_keys, full})
    repositories = json.loads(config.get(f"{PROJECT}:repositories", "[]") or "[]")
    fakes = fakes or CloudFakes(
        subscription_id=config.get("azure-native:subscriptionId", DEFAULT_SUBSCRIPTION),
        location=config.get("azure-native:location", DEFAULT_LOCATION),
    )
    reader = node_reader or FakeNodeReader(fakes.node_state)
    chosen_catalog = catalog or default_catalog(repositories if isinstance(repositories, list) else [])
    # A fresh context and event loop: the SDK keeps its settings in context variables and its
    # work in tasks; a render that failed must not leak either into the next one.
    with _RenderLoop():
        return contextvars.Context().run(
            _render_in_context, stack, config, secret_keys, notes, chosen_catalog, fakes, preview, reader,
            Path(stack_dir) if stack_dir is not None else Path(project_dir),
        )


class _RpcThreads(ThreadPoolExecutor):
    """The render loop's default executor, where the SDK runs each call to the mock monitor.

    The monitor needs an event loop in the thread that serves the call and makes one when the
    thread has none (``_ensure_event_loop`` in pulumi/runtime/mocks.py). Each worker thread gets
    its loop here, up front, and the render keeps them all to close them at its end: left to the
    garbage collector, a loop may be finalized after its self-pipe socket, at a random moment,
    which prints "Exception ignored in BaseEventLoop.__del__ … Invalid file descriptor: -1" to
    stderr and makes the output differ from run to run.
    """

    def __init__(self, on_exception: Callable[[asyncio.AbstractEventLoop, dict[str, Any]], None]) -> None:
        self.loops: list[asyncio.AbstractEventLoop] = []
        self._on_exception = on_exception
        super().__init__(thread_name_prefix="render-rpc", initializer=self._give_loop)

    def _give_loop(self) -> None:
        loop = asyncio.new_event_loop()
        loop.set_exception_handler(self._on_exception)
        self.loops.append(loop)  # list.append is atomic: workers start concurrently
        asyncio.set_event_loop(loop)


class _RenderLoop:
    """The event loop one render runs on, and every loop its RPC threads made: all closed at the
    end, and the caller's own loop, if it had one, set again."""

    def __init__(self) -> None:
        self.previous = _LoopSetting()
        self.loop = asyncio.new_event_loop()
        # The SDK's own log tasks fail with the program and are never awaited: reported by
        # Task.__del__ when collected, they would print the failure again (a traceback, on stderr,
        # at random). The failure itself reaches the caller as the program's exception.
        self.loop.set_exception_handler(_unreported)
        self.threads = _RpcThreads(_unreported)
        self.loop.set_default_executor(self.threads)

    def __enter__(self) -> asyncio.AbstractEventLoop:
        asyncio.set_event_loop(self.loop)
        return self.loop

    def __exit__(self, *_: object) -> None:
        try:
            _finish(self.loop)
            self.threads.shutdown(wait=True)  # no thread runs one of its loops any more
            for loop in self.threads.loops:
                _finish(loop)
                loop.close()
            # Closed here, not left to the garbage collector: a loop finalized in the middle of
            # other work (say, compiling a module) can break the interpreter's recursion bookkeeping.
            self.loop.close()
        finally:
            self.previous.restore()
            # Run the finalizers of this render's futures now (a failed render leaves some whose
            # exception nobody retrieved): run by the collector inside ast.parse they trip CPython
            # 3.11's "AST constructor recursion depth mismatch".
            gc.collect()


class _LoopSetting:
    """This thread's event loop setting, read without changing it and given back exactly.

    ``asyncio.get_event_loop()`` cannot be used to read it: in the main thread it creates a loop
    when none is set (which nobody would close). ``set_event_loop(None)`` cannot give "none set"
    back: it also marks the loop as set, after which ``get_event_loop()`` raises instead of
    creating one, as the SDK's ``Output.from_input`` outside a program relies on. So both are
    read from, and written back to, the default policy's per-thread record.
    """

    def __init__(self) -> None:
        self._local = getattr(asyncio.get_event_loop_policy(), "_local", None)
        self._loop = getattr(self._local, "_loop", None)
        self._set_called = getattr(self._local, "_set_called", None)

    def restore(self) -> None:
        asyncio.set_event_loop(self._loop)
        if self._local is not None and self._set_called is not None:
            self._local._set_called = self._set_called  # noqa: SLF001 - see the class docstring


def _finish(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel and await what is still pending on ``loop``, and close its async generators."""
    loop.run_until_complete(_cancel_pending())


async def _cancel_pending() -> None:
    pending = asyncio.all_tasks() - {asyncio.current_task()}
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    await asyncio.get_running_loop().shutdown_asyncgens()


def _unreported(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    _LOG.debug("render: %s", context.get("message"), exc_info=context.get("exception"))


def _render_in_context(
    stack: str,
    config: dict[str, str],
    secret_keys: list[str],
    notes: list[str],
    catalog: Callable[[str], Sequence[str]],
    fakes: CloudFakes,
    preview: bool,
    reader: NodeReader,
    stack_dir: Path,
) -> RenderResult:
    import pulumi
    from pulumi.runtime import mocks as pulumi_mocks
    from pulumi.runtime.stack import run_pulumi_func
    from pulumi.runtime.sync_await import _sync_await

    from components import site as site_module
    from components.config.stack import read_stack_config

    pulumi.runtime.set_all_config(config, secret_keys)
    monitor = _RecordingMonitor(RenderMocks(fakes))
    logger = logging.getLogger(f"edge-registry.render.{id(monitor)}")
    logger.propagate = False
    capture = _LogCapture()
    logger.addHandler(capture)
    pulumi_mocks.set_mocks(
        monitor.mocks, project=PROJECT, stack=stack, preview=preview, logger=logger, monitor=monitor
    )
    # The SDK tracks outstanding RPCs in process-wide settings: a render that failed leaves its
    # own behind, which must not be awaited (on a closed loop) by this one.
    from pulumi.runtime.settings import SETTINGS, _get_rpc_manager

    _get_rpc_manager().clear()
    SETTINGS.outputs.clear()
    holder: dict[str, Any] = {}

    def program() -> None:
        # As `pulumi up` does: values through pulumi.Config, secret keys as the engine marks them
        # (set_all_config above), secret leaves from the stack file.
        stack_config = read_stack_config(stack_dir)
        holder["site"] = site_module.build(
            stack_config.values, catalog, secrets=stack_config, node_reader=reader,
            sync_status_reader=fakes.sync_status,
        )

    try:
        _sync_await(run_pulumi_func(program))
    except site_module.NodesUnreadable as error:
        raise ConfigError(error.lines) from None
    except pulumi.RunError as error:
        # The program's own clean error (one message, no traceback under the engine either).
        raise ConfigError(str(error).splitlines()) from None
    except NodeMirrorError as error:
        # What the program refuses about a node (a file k3s would not start with, say): the
        # preview stops with it, so the render does too, with the program's own message.
        raise NodeError(getattr(error, "lines", None) or [str(error)]) from None
    if "site" not in holder:  # the program failed: the SDK logged why
        raise ConfigError(capture.messages or ["the program failed"])
    outputs: dict[str, Any] = {}
    secret_outputs: set[str] = set()
    for key, output in site_module.site_outputs(holder["site"]).items():
        output = pulumi.Output.from_input(output)
        outputs[key] = integers(_sync_await(output.future(with_unknowns=True)))
        if _sync_await(output.is_secret()):
            secret_outputs.add(key)
    release = holder["site"].onprem.release
    for record in monitor.records:
        if record.type == "kubernetes:helm.sh/v3:Release" and record.name == release._name:  # noqa: SLF001
            record.secret_leaves = {"values": list(holder["site"].onprem.secret_value_paths)}
        elif record.type == "command:remote:Command":
            record.secret_leaves = {"connection": ["privateKey", "password", "privateKeyPassword"]}
    summaries = {
        node._name: str(_sync_await(node.summary.future(with_unknowns=True)))  # noqa: SLF001
        for node in holder["site"].nodes
    }
    # Registration order depends on how outputs resolve: sort, so the same input gives the same bytes.
    records = sorted(monitor.records, key=lambda r: r.urn)
    return RenderResult(records, outputs, secret_outputs, notes + sorted(capture.messages), summaries)


# --- text output -------------------------------------------------------------------------------




def _scalar(value: Any) -> str:
    if isinstance(value, str) and "\n" in value:
        # Script text: what it is, not all of it (it is in the repository).
        digest = hashlib.sha256(value.encode()).hexdigest()[:12]
        first = value.splitlines()[0][:60] if value else ""
        return json.dumps(f"{first}… ({len(value.encode())} bytes, sha256 {digest}…)", ensure_ascii=False)
    return json.dumps(value, ensure_ascii=False)


def _value_lines(key: str, value: Any, indent: str) -> list[str]:
    """``key: value`` in full: nested mappings and lists on their own lines, sorted keys."""
    if isinstance(value, dict) and value:
        lines = [f"{indent}{key}:"]
        for child in sorted(value, key=str):
            lines += _value_lines(str(child), value[child], indent + "  ")
        return lines
    if isinstance(value, list) and value:
        lines = [f"{indent}{key}:"]
        for item in value:
            if isinstance(item, (dict, list)) and item:
                lines += _value_lines("-", item, indent + "  ")
            else:
                lines.append(f"{indent}  - {_scalar(item)}")
        return lines
    if isinstance(value, (dict, list)):
        return [f"{indent}{key}: {json.dumps(value)}"]
    return [f"{indent}{key}: {_scalar(value)}"]


def _option_lines(options: Mapping[str, Any], indent: str) -> list[str]:
    shown = {k: v for k, v in options.items() if k != "additionalSecretOutputs"}
    if not shown:
        return []
    parts = []
    for key in sorted(shown):
        value = shown[key]
        parts.append(key if value is True else f"{key}={json.dumps(value)}")
    return [f"{indent}options: {', '.join(parts)}"]


def format_tree(result: RenderResult, show_secrets: bool = False) -> str:
    """The text a reviewer reads: every resource with its inputs in full (secrets masked one by
    one), its options, each node's plan and desired file, then the stack outputs."""
    children: dict[str | None, list[RenderedResource]] = {}
    for resource in result.resources:
        children.setdefault(resource.parent, []).append(resource)
    known = {r.urn for r in result.resources}
    lines: list[str] = []

    def walk(parent: str | None, depth: int) -> None:
        for resource in children.get(parent, []):
            indent = "  " * depth
            lines.append(f"{indent}{resource.type}  {resource.name}")
            shown = resource.shown_inputs(show_secrets)
            for key in sorted(shown):
                lines.extend(_value_lines(key, shown[key], indent + "    "))
            lines.extend(_option_lines(resource.options, indent + "    "))
            walk(resource.urn, depth + 1)

    roots = [p for p in children if p is None or p not in known]
    for root in roots:
        walk(root, 0)
    lines += _node_payloads(result, show_secrets)
    lines.append("")
    lines.append("outputs:")
    for key in sorted(result.outputs):
        value = result.outputs[key]
        shown = "[secret]" if key in result.secret_outputs and not show_secrets else integers(value)
        lines.append(f"    {key}: {json.dumps(shown, sort_keys=True)}")
    return "\n".join(lines)


def mask_credentials(document: Mapping[str, Any]) -> dict[str, Any]:
    """A registries.yaml document with every ``auth`` value but the user name masked."""
    masked = json.loads(json.dumps(document, default=str))
    for entry in (masked.get("configs") or {}).values():
        auth = entry.get("auth") if isinstance(entry, dict) else None
        if isinstance(auth, dict):
            for key in auth:
                if key != "username":
                    auth[key] = "[secret]"
    return masked


def _node_payloads(result: RenderResult, show_secrets: bool) -> list[str]:
    """Per node: what the run does, and the apply payload decoded (the file, credentials masked)."""
    from components.nodes.payload import decode_apply_stdin

    lines: list[str] = []
    for command in result.by_type("command:remote:Command"):
        node = command.name.removesuffix("-apply")
        summary = result.node_summaries.get(node)
        stdin = reveal(command.inputs).get("stdin")
        if summary is None and not isinstance(stdin, str):
            continue
        lines += ["", f"{node}:"]
        if summary is not None:
            lines.append(f"    plan: {summary}")
        if not isinstance(stdin, str) or not stdin or stdin == UNKNOWN:
            continue
        plan = decode_apply_stdin(stdin)
        lines.append(f"    expected current file: {plan.expected}")
        lines.append(f"    entries owned: {', '.join(f'{section}[{key}]' for section, key in plan.owned)}")
        lines.append("    restore on destroy: " + ("no file" if plan.restore is None else f"{len(plan.restore)} bytes"))
        content = plan.content if show_secrets else ry.dump(mask_credentials(plan.document))
        note = "" if show_secrets else " (credentials masked; --show-secrets prints the file)"
        lines.append(f"    desired registries.yaml{note}:")
        lines += [f"      {line}" for line in content.decode().splitlines()]
    return lines


# --- command line --------------------------------------------------------------------------------

class UsageError(Exception):
    """A bad command-line argument: one line, exit 2."""


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _parse_node_state(items: Sequence[str], hosts: Sequence[str]) -> dict[str, bytes | None]:
    """``HOST=FILE`` pairs: each FILE must be a registries.yaml k3s would accept, each HOST a node
    of the stack."""
    state: dict[str, bytes | None] = {}
    for item in items:
        host, sep, path = item.partition("=")
        if not sep or not host or not path:
            raise UsageError(f"--node-state {item!r}: expected HOST=FILE")
        if host not in hosts:
            raise UsageError(f"--node-state {host}: not a node of this stack (nodes: {', '.join(hosts) or 'none'})")
        file = Path(path)
        if not file.is_file():
            raise UsageError(f"--node-state {host}: no such file {path}")
        content = file.read_bytes()
        # The program's own check of a file edge-registry never wrote (what the fake reader
        # makes of it): YAML, a mapping, the strict k3s schema. The problem names keys and types,
        # never values: the file may hold credentials.
        problem = foreign_problem(NodeRead(content=content, recorded=False))
        if problem is not None:
            raise UsageError(_one_line(f"--node-state {host}: {path}: {problem}"))
        state[host] = content
    return state


def _stack_nodes(config: Mapping[str, str]) -> list[str]:
    try:
        nodes = json.loads(config.get(f"{PROJECT}:nodes", "[]") or "[]")
    except ValueError:
        return []
    return [str(n.get("host")) for n in nodes if isinstance(n, dict)] if isinstance(nodes, list) else []


def _ssh_key(path: Path | None, config: Mapping[str, str], stack: str) -> str:
    if path is not None:
        try:
            return path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"--ssh-key {path}: cannot read it: {exc.__class__.__name__}") from None
    key = config.get(f"{PROJECT}:sshPrivateKey")
    if not key or is_placeholder(key):
        raise UsageError(
            f"--read-nodes: {PROJECT}:sshPrivateKey is encrypted or not set in Pulumi.{stack}.yaml; pass --ssh-key FILE"
        )
    return key


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m components.preview.render", description=__doc__.split("\n\n")[0])
    parser.add_argument("stack", help="stack name: renders Pulumi.STACK.yaml")
    parser.add_argument("--json", action="store_true", help="print a JSON list of resources")
    parser.add_argument("--show-secrets", action="store_true", help="print secret values instead of [secret]")
    parser.add_argument("--node-state", action="append", default=[], metavar="HOST=FILE",
                        help="evaluate as if FILE were registries.yaml on node HOST (default: no file)")
    parser.add_argument("--read-nodes", action="store_true",
                        help="read the stack's real nodes over SSH, as pulumi preview does")
    parser.add_argument("--ssh-key", type=Path, metavar="FILE",
                        help="with --read-nodes: the SSH private key (default: the stack's sshPrivateKey, "
                             "or the SSH agent with sshAgent: true)")
    parser.add_argument("--project-dir", type=Path, default=REPO_ROOT, help=argparse.SUPPRESS)
    parser.add_argument("--stack-dir", type=Path, default=None, metavar="DIR",
                        help="read Pulumi.STACK.yaml from DIR (default: the project directory)")
    parser.add_argument("--policy-config", type=Path, default=None, metavar="FILE",
                        help="the policy pack's fleet config (default: policy/config.json when it exists)")
    args = parser.parse_args(argv)
    try:
        config, _, _ = stack_files.load_stack_config(args.project_dir, args.stack, args.stack_dir)
        if args.read_nodes and args.node_state:
            raise UsageError("--read-nodes and --node-state: choose one")
        if args.ssh_key is not None and not args.read_nodes:
            raise UsageError("--ssh-key needs --read-nodes")
        node_state = _parse_node_state(args.node_state, _stack_nodes(config))
        overrides: dict[str, Any] = {}
        reader: NodeReader | None = None
        if args.read_nodes:
            from components.nodes.read import SshNodeReader

            if args.ssh_key is None and config.get(f"{PROJECT}:sshAgent") == "true":
                pass  # as the program does: the agent at $SSH_AUTH_SOCK
            else:
                overrides["sshPrivateKey"] = _ssh_key(args.ssh_key, config, args.stack)
                overrides["sshAgent"] = False
            reader = SshNodeReader()
        fakes = CloudFakes(
            subscription_id=config.get("azure-native:subscriptionId", DEFAULT_SUBSCRIPTION),
            location=config.get("azure-native:location", DEFAULT_LOCATION),
            node_state=node_state,
        )
        result = render_stack(
            args.project_dir, args.stack, fakes=fakes, preview=True, node_reader=reader, config_overrides=overrides,
            stack_dir=args.stack_dir,
        )
        # The policy pack's own validators on what was rendered (components/preview/policy_check.py).
        from components.preview.policy_check import DEFAULT_POLICY_CONFIG, load_policy_config, policy_violations

        fleet_config = load_policy_config(args.policy_config or args.project_dir / DEFAULT_POLICY_CONFIG)
        violations = policy_violations(result.resources, args.stack_dir or args.project_dir, fleet_config)
    except UsageError as error:
        print(error, file=sys.stderr)
        return 2
    except NodeError as error:
        for line in error.lines:
            print(line, file=sys.stderr)
        return 2
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
        print(json.dumps([r.as_json(args.show_secrets) for r in result.resources], indent=2, sort_keys=True))
    else:
        print(format_tree(result, args.show_secrets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
