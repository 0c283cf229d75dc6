"""Offline render: evaluate a site's stack as ``pulumi preview`` would, with the SDK's mocks.

:func:`render_stack` runs the real program (``components.site``) against the real Pulumi SDK;
only the engine and the providers are faked: a mock monitor that records every registration as
the engine would see it (its parent, dependencies and options), on an event loop of its own
(components/preview/loop.py). Config is Pulumi.yaml's defaults merged with ``Pulumi.STACK.yaml``
(components/config/stack_files.py); values the cloud would supply (ids, the gateway endpoint,
passwords, the catalog, the connected registry's last sync) come from deterministic fakes
(components/preview/fakes.py), and the nodes from a :class:`FakeNodeReader` unless the caller
passes a real reader. Secure values that cannot be decrypted offline become placeholders. The
same input gives the same bytes.

It imports what a render uses and no more: the program's real ARM, catalog and SSH readers are
replaced by fakes, so the Azure SDKs, paramiko and cryptography are not loaded (the command line,
components/preview/cli.py, loads paramiko for ``--read-nodes``).
"""

from __future__ import annotations

import contextvars
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from components.config import stack_files
from components.config.fields import PROJECT, ConfigError
from components.config.keys import SECRET_KEYS
from components.config.stack_files import REPO_ROOT
from components.nodes.payload import NodeMirrorError
from components.preview.fakes import (
    DEFAULT_LOCATION,
    DEFAULT_SUBSCRIPTION,
    CloudFakes,
    FakeNodeReader,
    RenderMocks,
    default_catalog,
)
from components.preview.loop import RenderLoop
from components.preview.result import RenderedResource, RenderResult
from components.preview.values import KNOWN_AFTER_APPLY, UNKNOWN, integers, reveal, secret_paths

if TYPE_CHECKING:
    from components.nodes.read import NodeReader


class NodeError(Exception):
    """The program refused a node (``NodeMirrorError``): one line per problem, each naming the node."""

    def __init__(self, lines: Sequence[str]) -> None:
        self.lines = [" ".join(str(line).split()) for line in lines]
        super().__init__("\n".join(self.lines))


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
        # A key given here (the render's --ssh-key) is no longer "not set in the stack file".
        notes = [note for note in notes if not note.startswith(f"note: {full} ")]
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
    with RenderLoop():
        return contextvars.Context().run(
            _render_in_context, stack, config, secret_keys, notes, chosen_catalog, fakes, preview, reader,
            Path(stack_dir) if stack_dir is not None else Path(project_dir),
        )


# --- the engine's side: a monitor that records what the program registers -----------------------


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
                if request.importId:
                    options["import"] = request.importId
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


class _LogCapture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


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
            sync_status_reader=fakes.sync_status, release_reader=fakes.read_release,
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
