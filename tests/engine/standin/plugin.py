"""What every stand-in provider plugin shares: the gRPC server the engine talks to, and the
conversion between the engine's property structs and plain Python values.

A provider plugin is a process the engine starts with the engine's address as its argument;
it serves ``pulumirpc.ResourceProvider`` on a loopback port and prints that port as the first
line of its stdout (as ``pulumi.dynamic``'s server does, ``pulumi/dynamic/__main__.py``
``main``). The stubs are the ones the Python SDK ships (``pulumi.runtime.proto``).

Property values follow the engine's wire encoding (``sdk/go/common/resource/plugin/rpc.go``
``MarshalPropertyValue``): an unknown is the string ``UNKNOWN``; a secret is an object whose
``SIG_KEY`` is ``SECRET_SIG``. Stand-ins declare ``acceptSecrets`` in ``Configure``, keep the
secret wrappers of their inputs on their outputs, and compare values with the wrappers removed.
"""

from __future__ import annotations

import sys
import traceback
from concurrent import futures
from threading import Event
from typing import Any

import grpc
from google.protobuf import empty_pb2, struct_pb2
from google.protobuf.json_format import MessageToDict, ParseDict
from pulumi.runtime.proto import plugin_pb2, provider_pb2, provider_pb2_grpc

UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"


def to_dict(struct: struct_pb2.Struct | None) -> dict[str, Any]:
    return MessageToDict(struct) if struct is not None else {}


def to_struct(value: dict[str, Any]) -> struct_pb2.Struct:
    return ParseDict(value, struct_pb2.Struct())


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SIG_KEY) == SECRET_SIG


def secret(value: Any) -> dict[str, Any]:
    return {SIG_KEY: SECRET_SIG, "value": value}


def plain(value: Any) -> Any:
    """The value with every secret wrapper removed (for comparisons and for the wire to ARM)."""
    if is_secret(value):
        return plain(value.get("value"))
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def has_unknown(value: Any) -> bool:
    if value == UNKNOWN:
        return True
    if isinstance(value, dict):
        return any(has_unknown(v) for v in value.values())
    if isinstance(value, list):
        return any(has_unknown(v) for v in value)
    return False


def type_of(request: Any) -> str:
    """The resource type token of a request (its own field, else the URN's last type part)."""
    typ = getattr(request, "type", "")
    if typ:
        return typ
    urn = getattr(request, "urn", "")
    return urn.split("::")[2].split("$")[-1] if urn.count("::") >= 3 else ""


def name_of(urn: str) -> str:
    return urn.split("::")[-1]


class Failure(Exception):
    """An error the engine should show as the provider's message (gRPC UNKNOWN with this text)."""


class Provider(provider_pb2_grpc.ResourceProviderServicer):
    """Defaults for the calls every provider answers the same way; subclasses add the resources.

    ``supports_preview`` is true, as for the real azure-native and kubernetes providers: the
    engine then calls ``Create``/``Update`` with ``preview=True`` during a preview.
    """

    name = ""
    version = ""

    def __init__(self) -> None:
        self.config: dict[str, Any] = {}

    # Abort with the provider's message instead of a Python traceback in the engine's output.
    def __getattribute__(self, attr: str) -> Any:
        value = object.__getattribute__(self, attr)
        if attr[:1].isupper() and callable(value):

            def call(request: Any, context: grpc.ServicerContext) -> Any:
                try:
                    return value(request, context)
                except NotImplementedError:
                    # The stubs' default for a call a plugin does not serve (Handshake, ...): the
                    # engine falls back when told UNIMPLEMENTED, and gives up on any other code.
                    context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{attr} is not implemented")
                except Failure as err:
                    context.abort(grpc.StatusCode.UNKNOWN, str(err))
                except Exception:  # noqa: BLE001 - shown to the engine as the plugin's failure
                    context.abort(grpc.StatusCode.UNKNOWN, traceback.format_exc())

            return call
        return value

    def GetPluginInfo(self, request: Any, context: Any) -> plugin_pb2.PluginInfo:
        return plugin_pb2.PluginInfo(version=self.version)

    def GetSchema(self, request: Any, context: Any) -> provider_pb2.GetSchemaResponse:
        return provider_pb2.GetSchemaResponse(schema="{}")

    def CheckConfig(self, request: Any, context: Any) -> provider_pb2.CheckResponse:
        return provider_pb2.CheckResponse(inputs=request.news)

    def DiffConfig(self, request: Any, context: Any) -> provider_pb2.DiffResponse:
        return provider_pb2.DiffResponse(changes=provider_pb2.DiffResponse.DIFF_NONE)

    def Configure(self, request: Any, context: Any) -> provider_pb2.ConfigureResponse:
        self.config = dict(request.variables)
        self.config.update({k: v for k, v in plain(to_dict(request.args)).items()})
        return provider_pb2.ConfigureResponse(acceptSecrets=True, supportsPreview=True, acceptResources=True)

    def Check(self, request: Any, context: Any) -> provider_pb2.CheckResponse:
        return provider_pb2.CheckResponse(inputs=request.news)

    def Cancel(self, request: Any, context: Any) -> empty_pb2.Empty:
        return empty_pb2.Empty()

    def Attach(self, request: Any, context: Any) -> empty_pb2.Empty:
        return empty_pb2.Empty()


def serve(provider: Provider) -> None:
    """Serve ``provider`` on a loopback port, print the port, and run until the engine kills us."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4),
        options=[("grpc.max_receive_message_length", 400 * 1024 * 1024)],
    )
    provider_pb2_grpc.add_ResourceProviderServicer_to_server(provider, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    sys.stdout.write(f"{port}\n")
    sys.stdout.flush()
    try:
        Event().wait()
    except KeyboardInterrupt:
        server.stop(0)
