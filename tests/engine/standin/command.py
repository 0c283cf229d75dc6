"""STAND-IN for pulumi-command 1.2.1's ``command:remote:Command`` (not the real provider).

The real provider (``github.com/pulumi/pulumi-command/provider``) cannot be built here: the Go
module proxy refuses its module (tests/engine/README.md, "What the proxy refuses"). Until it
does, ``scripts/engine env`` installs this module as plugin ``command`` 1.2.1, the version the
``pulumi_command`` SDK asks for. It is a real plugin process speaking the engine's gRPC
``ResourceProvider`` protocol (tests/engine/standin/plugin.py) and it really runs the commands
over SSH, with paramiko instead of Go's ``golang.org/x/crypto/ssh``.

What it reproduces, read from pulumi-command's source at tag v1.2.1 (paths below are in that
repository) and from the libraries that release pins in ``provider/go.mod``
(``github.com/pulumi/pulumi-go-provider`` v1.3.0, ``golang.org/x/crypto`` v0.48.0):

* **Inputs** (``provider/pkg/provider/remote/command.go`` ``CommandInputs``,
  ``provider/pkg/provider/common/inputs.go`` ``ResourceInputs``, ``remote/connection.go``
  ``connectionBase``): ``connection`` (required, ``provider:"secret"``), ``create``, ``update``,
  ``delete``, ``stdin``, ``environment``, ``triggers``, ``addPreviousOutputInEnv``, ``logging``.
  Outputs are the inputs plus ``stdout`` and ``stderr`` (``remote/baseOutputs.go``).
* **Check** (pulumi-go-provider ``infer/resource.go`` ``Check``/``DefaultCheck``,
  ``infer/apply_secrets.go``): the connection's defaults from ``connection.go`` ``Annotate``
  (``user`` root, ``port`` 22, ``dialErrorLimit`` 10, ``perDialTimeout`` 15) are filled in, and
  ``connection`` (with its ``password``, ``privateKey``, ``privateKeyPassword``) is made secret.
* **Diff** (``infer/resource.go`` ``Diff``/``diff``, ``provider.go`` ``DiffResponse.rpc``):
  old inputs against new ones (ignored changes taken from the state), a detailed diff keyed by
  property path (``connection``, ``stdin``, ``triggers[0]``, ``environment.FOO``...). Only the
  top-level key ``triggers`` is ``replaceOnChanges`` in the schema (``common/inputs.go``), so a
  changed *element* of ``triggers`` is an update at this level: the replacement comes from the
  engine applying ``replace_on_changes=["triggers[*]"]``, which the generated Python SDK adds to
  every Command (``pulumi_command/remote/command.py``). Every other input is an update, the
  connection included. ``deleteBeforeReplace`` is never set by the provider.
* **Create/Update/Delete** (``remote/commandController.go``): a preview runs nothing (Create
  returns ``stdout``/``stderr`` unknown; Update keeps them unless an input changed, which is
  always the case for an update, see ``infer/resource.go`` ``markComputed``). Create runs
  ``create`` (nothing when unset); Update runs ``update`` if set, else ``create``, else nothing
  and keeps the old outputs; Delete runs ``delete`` from the stored state (its stdin,
  environment and logging too). A failed create or update returns only the error (no partial
  state).
* **Running a command** (``remote/commandOutputs.go`` ``run``): one dial, one session;
  ``environment`` through ``session.Setenv`` (an SSH ``env`` request *with* a reply: sshd
  refuses names not in its ``AcceptEnv``, and the provider then fails with ``could not set
  environment variable "NAME": ssh: setenv failed``); unless ``addPreviousOutputInEnv`` is
  false, ``PULUMI_COMMAND_STDOUT``/``PULUMI_COMMAND_STDERR`` from the previous create/update are
  set the same way, a refusal only warned about; ``stdin`` sent when non-empty, then EOF;
  ``stdout``/``stderr`` captured separately with one trailing newline removed; the lines
  ``logging`` selects (default both) sent to the engine as ephemeral info status
  (``util/util.go`` ``LogOutput``); a non-zero exit fails with
  ``Process exited with status N: running "<command>":\\n<stdout and stderr>`` (x/crypto
  ``ssh/session.go`` ``Waitmsg.String``, Go's ``%q`` quoting of the command).
* **Dialing** (``remote/connection.go`` ``SSHConfig``, ``dialWithRetry``, ``Dial``): without
  ``hostKey`` any host key is accepted; with it, the client offers **only** the pinned key's
  type as host key algorithm (``HostKeyAlgorithms: []string{publicKey.Type()}``) and refuses a
  different key (``ssh: handshake failed: ssh: host key mismatch``, x/crypto ``ssh/client.go``
  ``FixedHostKey``; ``ssh: no common algorithm for host key; we offered: [...], peer offered:
  [...]`` when the server has no key of that type). ``perDialTimeout`` bounds the TCP connect
  only (x/crypto ``ssh.Dial``: ``net.DialTimeout``), not the SSH handshake. Auth methods in
  the provider's order (private key, password, keyboard-interactive, the SSH agent at
  ``agentSocketPath`` or ``$SSH_AUTH_SOCK``) after ``none``, each method name tried once
  (x/crypto ``ssh/client_auth.go``). Every dial failure is retried: the provider gives up when
  the dial count *exceeds* ``dialErrorLimit`` (so ``dialErrorLimit + 1`` dials), waiting 100 ms
  then 1.5x more each time up to 5 s (pulumi ``sdk/go/common/util/retry``), with
  ``after N failed attempts: <error>``.

Not reproduced: ``connection.proxy`` (the program never sets it; refused with a message),
x/crypto's own algorithm negotiation (kex, ciphers, MACs, signature algorithms) and its exact
wording of rarer errors, the 64 KiB line limit of the provider's log scanner. Secrets
(``privateKey``, ``password``, ``stdin``, ``environment`` values) are never logged or put in
an error message; the command text and its output are, as the real provider does.
"""

from __future__ import annotations

import errno
import logging
import os
import secrets as _random
import socket
import sys
import threading
import time
from typing import Any

import grpc
from pulumi.runtime.proto import engine_pb2, engine_pb2_grpc, provider_pb2

from tests.engine.standin.plugin import (
    UNKNOWN,
    Failure,
    Provider,
    is_secret,
    name_of,
    plain,
    secret,
    serve,
    to_dict,
    to_struct,
    type_of,
)

TOKEN = "command:remote:Command"

#: CommandInputs (command.go, common/inputs.go): the input property names.
INPUTS = (
    "triggers", "create", "update", "delete", "stdin", "logging", "connection", "environment",
    "addPreviousOutputInEnv",
)
#: connection.go Annotate: defaults DefaultCheck fills in (ProxyConnection the same).
CONNECTION_DEFAULTS = {"user": "root", "port": 22, "dialErrorLimit": 10, "perDialTimeout": 15}
#: connectionBase fields tagged provider:"secret".
CONNECTION_SECRETS = ("password", "privateKey", "privateKeyPassword")
#: util/util.go.
PULUMI_COMMAND_STDOUT = "PULUMI_COMMAND_STDOUT"
PULUMI_COMMAND_STDERR = "PULUMI_COMMAND_STDERR"
#: x/crypto ssh/session.go: the signal numbers Waitmsg adds to 128.
SIGNALS = {"ABRT": 6, "ALRM": 14, "FPE": 8, "HUP": 1, "ILL": 4, "INT": 2, "KILL": 9, "PIPE": 13,
           "QUIT": 3, "SEGV": 11, "TERM": 15, "USR1": 10, "USR2": 12}
#: x/crypto bounds nothing after the TCP connect; paramiko needs a number.
UNBOUNDED = 10.0**6

_DIFF_KIND = provider_pb2.PropertyDiff.Kind
_REPLACE: dict[Any, Any] = {
    _DIFF_KIND.ADD: _DIFF_KIND.ADD_REPLACE,
    _DIFF_KIND.DELETE: _DIFF_KIND.DELETE_REPLACE,
    _DIFF_KIND.UPDATE: _DIFF_KIND.UPDATE_REPLACE,
}


# --------------------------------------------------------------------------- the engine's log


class EngineLog:
    """Diagnostics to the engine (``pulumirpc.Engine/Log``), as the provider's logger sends them.

    The engine passes its address as the plugin's last argument; without one (a test starting
    the module by hand) nothing is sent.
    """

    def __init__(self, argv: list[str]) -> None:
        address = argv[-1] if len(argv) > 1 and not argv[-1].startswith("-") else None
        self._stub = engine_pb2_grpc.EngineStub(grpc.insecure_channel(address)) if address else None

    def _send(self, severity: Any, urn: str, message: str, ephemeral: bool) -> None:
        if self._stub is None:
            return
        try:
            self._stub.Log(
                engine_pb2.LogRequest(severity=severity, message=message, urn=urn, ephemeral=ephemeral), timeout=10
            )
        except grpc.RpcError:
            pass  # the engine has gone: nothing to tell

    def status(self, urn: str, message: str) -> None:
        """``InfoStatus``: an ephemeral line (the command's output, the dial retries)."""
        self._send(engine_pb2.INFO, urn, message, True)

    def warning(self, urn: str, message: str) -> None:
        self._send(engine_pb2.WARNING, urn, message, False)

    def error(self, urn: str, message: str) -> None:
        self._send(engine_pb2.ERROR, urn, message, False)


# --------------------------------------------------------------------------- Go's formatting


def go_quote(text: str) -> str:
    """Go's ``%q`` of a string (strconv.Quote): the command in the provider's error message."""
    out = ['"']
    for char in text:
        code = ord(char)
        if char in '"\\':
            out.append("\\" + char)
        elif char in "\a\b\f\n\r\t\v":
            out.append({"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}[char])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif not char.isprintable() and char != " ":
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def go_list(items: list[str]) -> str:
    """Go's ``%v`` of a ``[]string``."""
    return "[" + " ".join(items) + "]"


def path_string(path: list[str | int]) -> str:
    """A property path as pulumi's ``resource.PropertyPath.String`` writes it (detailed diff keys)."""
    out = ""
    for i, part in enumerate(path):
        if isinstance(part, int):
            out += f"[{part}]"
        elif part and all(c.isalnum() or c in "_$" for c in part):
            out += part if i == 0 else "." + part
        else:
            out += '["' + part.replace("\\", "\\\\").replace('"', '\\"') + '"]'
    return out


# --------------------------------------------------------------------------- SSH


class DialError(Exception):
    """One failed dial (retried by :func:`dial`)."""


class SetupError(Exception):
    """A connection setting that cannot work (not retried: ``SSHConfig`` fails before dialing)."""


def _parse_authorized_key(line: str) -> tuple[str, bytes]:
    """(key type, key blob) of an authorized_keys line, as x/crypto ``ParseAuthorizedKey`` reads it."""
    import base64

    import paramiko

    fields = line.strip().split()
    for i, field in enumerate(fields[:-1]):
        try:
            blob = base64.b64decode(fields[i + 1], validate=True)
        except ValueError:
            continue
        try:
            kind = paramiko.Message(blob).get_text()
        except Exception:  # noqa: BLE001 - not a key blob
            continue
        if kind == field:
            return kind, blob
    raise SetupError("failed to parse host key: ssh: no key found")


def _private_key(text: str, passphrase: str | None) -> Any:
    """The paramiko key of ``privateKey`` (x/crypto ``ParsePrivateKey[WithPassphrase]``)."""
    import io

    import paramiko

    last: Exception | None = None
    for cls in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return cls.from_private_key(io.StringIO(text), password=passphrase)
        except paramiko.PasswordRequiredException:
            raise SetupError("ssh: this private key is passphrase protected") from None
        except (paramiko.SSHException, ValueError, IndexError) as exc:
            last = exc
    # x/crypto's wording for text that is no key; never the key text itself in a message.
    raise SetupError("ssh: no key found") from last


class _Probe(logging.Handler):
    """Keeps what the server offered as host key algorithms (paramiko logs it at DEBUG)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.server_host_keys: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("server key: "):
            self.server_host_keys = [k.strip() for k in message.removeprefix("server key: ").split(",")]


_probe_ids = iter(range(1, 1 << 62))


def _soft_channel_failure(chan: Any, m: Any) -> None:
    """SSH_MSG_CHANNEL_FAILURE: for an ``env`` request, a refusal (Go's ``SendRequest`` returns
    false and the session goes on); anything else closes the channel as paramiko does."""
    import paramiko

    if getattr(chan, "_standin_soft", False):
        chan._standin_refused = True
        chan.event.set()
        return
    paramiko.Channel._request_failed(chan, m)


def _channel_request(chan: Any, m: Any) -> None:
    """SSH_MSG_CHANNEL_REQUEST: paramiko drops ``exit-signal``; x/crypto reports it."""
    import paramiko

    start = m.packet.tell()
    if m.get_text() == "exit-signal":
        m.get_boolean()  # want_reply: never for exit-signal
        signal_name = m.get_text()
        m.get_boolean()  # core dumped
        chan._standin_signal = (signal_name, m.get_text())
        return
    m.packet.seek(start)
    paramiko.Channel._handle_request(chan, m)


def _join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _dial_once(conn: dict[str, Any]) -> Any:
    """One ``ssh.Dial``: TCP (bounded by perDialTimeout), handshake, host key, auth."""
    import paramiko
    from paramiko.common import MSG_CHANNEL_FAILURE, MSG_CHANNEL_REQUEST

    host, port = str(conn["host"]), int(conn.get("port") or 22)
    address = _join_host_port(host, port)
    timeout = conn.get("perDialTimeout")
    timeout = 15 if timeout is None else int(timeout)
    user = conn.get("user") or "root"
    # SSHConfig: everything that can fail before dialing fails without a retry.
    pinned = _parse_authorized_key(conn["hostKey"]) if conn.get("hostKey") else None
    key = _private_key(conn["privateKey"], conn.get("privateKeyPassword")) if conn.get("privateKey") else None
    agent_path = conn.get("agentSocketPath") or os.environ.get("SSH_AUTH_SOCK") or None
    agent_sock = None
    if agent_path:
        agent_sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            agent_sock.connect(agent_path)
        except OSError as exc:
            agent_sock.close()
            raise SetupError(f"dial unix {agent_path}: connect: {os.strerror(exc.errno or 0).lower()}") from None

    try:
        sock = socket.create_connection((host, port), timeout=timeout or None)
    except socket.gaierror:
        raise DialError(f"dial tcp: lookup {host}: no such host") from None
    except TimeoutError:
        raise DialError(f"dial tcp {address}: i/o timeout") from None
    except OSError as exc:
        reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
        if exc.errno == errno.ECONNREFUSED:
            reason = "connection refused"
        raise DialError(f"dial tcp {address}: connect: {reason}") from None
    sock.settimeout(None)

    transport = paramiko.Transport(sock)
    transport.banner_timeout = transport.handshake_timeout = transport.auth_timeout = UNBOUNDED
    transport._channel_handler_table = {  # per transport: env refusals and exit-signal as x/crypto
        **paramiko.Transport._channel_handler_table,
        MSG_CHANNEL_FAILURE: _soft_channel_failure,
        MSG_CHANNEL_REQUEST: _channel_request,
    }
    probe = _Probe()
    log_name = f"tests.engine.standin.command.ssh.{next(_probe_ids)}"
    logger = logging.getLogger(log_name)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logger.addHandler(logging.NullHandler())  # paramiko's own errors: never on the plugin's stderr
    logger.addHandler(probe)
    transport.set_log_channel(log_name)
    # x/crypto offers exactly the pinned key's type. paramiko 5 cannot offer ssh-rsa (SHA-1)
    # at all: then the server's own offer decides, read from the handshake paramiko does.
    offered = [pinned[0]] if pinned is not None else []
    offerable = pinned is None or pinned[0] in paramiko.Transport._key_info

    def no_common_host_key() -> DialError:
        return DialError(
            "ssh: handshake failed: ssh: no common algorithm for host key; we offered: "
            f"{go_list(offered)}, peer offered: {go_list(probe.server_host_keys)}"
        )

    try:
        if pinned is not None and offerable:
            transport.get_security_options().key_types = offered
        try:
            transport.start_client(timeout=UNBOUNDED)
        except paramiko.ssh_exception.IncompatiblePeer as exc:
            if "host key" in str(exc) and offerable:
                raise no_common_host_key() from None
            if not offerable and probe.server_host_keys and offered[0] not in probe.server_host_keys:
                raise no_common_host_key() from None
            raise DialError(f"ssh: handshake failed: {exc}") from None
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise DialError(f"ssh: handshake failed: {exc or 'EOF'}") from None
        logger.setLevel(logging.WARNING)  # the offer is read; no more DEBUG records
        if not offerable:
            if offered[0] not in probe.server_host_keys:
                raise no_common_host_key()
            raise SetupError(
                f"the command stand-in cannot check a {offered[0]} host key, which this server offers: "
                "paramiko has no such signature algorithm (the real provider would)"
            )
        if pinned is not None and transport.get_remote_server_key().asbytes() != pinned[1]:
            raise DialError("ssh: handshake failed: ssh: host key mismatch")
        _authenticate(transport, user, key, conn.get("password"), agent_sock)
        return transport
    except BaseException:
        transport.close()
        raise
    finally:
        logger.removeHandler(probe)
        if agent_sock is not None:
            agent_sock.close()


def _authenticate(transport: Any, user: str, key: Any, password: str | None, agent_sock: Any) -> None:
    """x/crypto ``clientAuthenticate``: ``none`` first, then the configured methods the server
    allows, in order, each method name once."""
    import paramiko
    from paramiko.agent import AgentSSH

    def agent_keys() -> list[Any]:
        agent = AgentSSH()
        agent._connect(agent_sock)
        return list(agent.get_keys())

    # SSHConfig's order: PublicKeys(key), Password, KeyboardInteractive, the agent's keys.
    methods: list[tuple[str, Any]] = []
    if key is not None:
        methods.append(("publickey", lambda: transport.auth_publickey(user, key)))
    if password is not None:
        methods.append(("password", lambda: transport.auth_password(user, password)))
        methods.append((
            "keyboard-interactive",
            lambda: transport.auth_interactive(user, lambda _t, _i, prompts: [password for _ in prompts]),
        ))
    if agent_sock is not None:
        def with_agent() -> list[str]:
            for agent_key in agent_keys():
                try:
                    return transport.auth_publickey(user, agent_key)
                except paramiko.AuthenticationException:
                    continue
            raise paramiko.AuthenticationException("no agent key accepted")
        methods.append(("publickey", with_agent))

    tried: list[str] = []
    try:
        transport.auth_none(user)
        return
    except paramiko.BadAuthenticationType as exc:
        allowed = list(exc.allowed_types)
    except paramiko.AuthenticationException:
        allowed = []
    except (paramiko.SSHException, EOFError, OSError) as exc:
        raise DialError(f"ssh: handshake failed: {exc or 'EOF'}") from None
    tried.append("none")
    while True:
        candidate = next(((n, f) for n, f in methods if n not in tried and n in allowed), None)
        if candidate is None:
            break
        name, attempt = candidate
        try:
            remaining = attempt()
        except paramiko.BadAuthenticationType as exc:
            allowed = list(exc.allowed_types)
        except paramiko.AuthenticationException:
            pass
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise DialError(f"ssh: handshake failed: {exc or 'EOF'}") from None
        else:
            if transport.is_authenticated():
                return
            allowed = list(remaining or allowed)  # partial success: what is left, this method done
        tried.append(name)
    raise DialError(
        f"ssh: handshake failed: ssh: unable to authenticate, attempted methods {go_list(tried)}, "
        "no supported methods remain"
    )


def dial(conn: dict[str, Any], urn: str, log: EngineLog) -> Any:
    """``Connection.Dial`` with ``dialWithRetry``: dial until it works or the dial count
    exceeds ``dialErrorLimit`` (-1: no limit)."""
    if conn.get("proxy"):
        raise Failure("the command stand-in (tests/engine/standin/command.py) does not implement connection.proxy")
    limit = conn.get("dialErrorLimit")
    limit = 10 if limit is None else int(limit)
    delay, attempt = 0.1, 0
    while True:
        try:
            return _dial_once(conn)
        except SetupError as err:
            raise Failure(str(err)) from None
        except DialError as err:
            dials = attempt + 1
            if limit > -1 and dials > limit:
                raise Failure(f"after {attempt} failed attempts: {err}") from None
            log.status(urn, f"Dial {dials}/{'inf' if limit == -1 else limit} failed: retrying")
        time.sleep(delay)
        delay = min(delay * 1.5, 5.0)
        attempt += 1


class _Lines:
    """util.LogOutput: the logged streams, merged, one engine status line per line of text."""

    def __init__(self, log: EngineLog, urn: str) -> None:
        self.log, self.urn, self.pending, self.lock = log, urn, b"", threading.Lock()

    def feed(self, data: bytes) -> None:
        with self.lock:
            self.pending += data
            *lines, self.pending = self.pending.split(b"\n")
        for line in lines:
            self.log.status(self.urn, line.removesuffix(b"\r").decode("utf-8", "replace"))

    def close(self) -> None:
        if self.pending:
            self.log.status(self.urn, self.pending.removesuffix(b"\r").decode("utf-8", "replace"))
            self.pending = b""


def _setenv(transport: Any, chan: Any, name: str, value: str) -> bool:
    """``session.Setenv``: an ``env`` request that wants a reply; False when the server refuses it."""
    from paramiko import Message, SSHException
    from paramiko.common import cMSG_CHANNEL_REQUEST

    message = Message()
    message.add_byte(cMSG_CHANNEL_REQUEST)
    message.add_int(chan.remote_chanid)
    message.add_string("env")
    message.add_boolean(True)
    message.add_string(name)
    message.add_string(value)
    chan._standin_soft, chan._standin_refused = True, False
    chan._event_pending()
    transport._send_user_message(message)
    chan.event.wait()
    chan._standin_soft = False
    if chan._standin_refused:
        return False
    if not chan.event_ready:
        raise SSHException(str(transport.get_exception() or "channel closed"))
    return True


def _setenv_refused(log: EngineLog, urn: str, severity: str, name: str) -> str:
    """commandOutputs.go ``logAndWrapSetenvErr``: the diagnostic, and the error's text."""
    message = (
        f"Unable to set '{name}'. This only works if your SSH server is configured to accept\n"
        "\tthese variables via AcceptEnv. Alternatively, if a Bash-like shell runs the command on the remote host, "
        "you could\n\tprefix the command itself with the variables in the form 'VAR=value command'"
    )
    (log.error if severity == "error" else log.warning)(urn, message)
    return f"could not set environment variable {go_quote(name)}: ssh: setenv failed"


def run(state: dict[str, Any], command: str, urn: str, log: EngineLog) -> tuple[str, str]:
    """``CommandOutputs.run``: the command on the node; (stdout, stderr) or :class:`Failure`.

    ``state`` is the resource's properties with the secret wrappers removed: its connection,
    environment, stdin, logging, addPreviousOutputInEnv and the previous stdout/stderr.
    """
    import paramiko

    transport = dial(state.get("connection") or {}, urn, log)
    try:
        try:
            chan = transport.open_session()
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise Failure(str(exc)) from None
        with chan:
            for name, value in sorted((state.get("environment") or {}).items()):
                if not _setenv(transport, chan, name, str(value)):
                    raise Failure(_setenv_refused(log, urn, "error", name))
            if state.get("addPreviousOutputInEnv") is not False:
                for name, previous in ((PULUMI_COMMAND_STDOUT, state.get("stdout")),
                                       (PULUMI_COMMAND_STDERR, state.get("stderr"))):
                    if previous and not _setenv(transport, chan, name, str(previous)):
                        _setenv_refused(log, urn, "warning", name)  # warned, and the run goes on
            logging_ = state.get("logging")
            lines = _Lines(log, urn)
            log_stdout = logging_ in (None, "stdout", "stdoutAndStderr")
            log_stderr = logging_ in (None, "stderr", "stdoutAndStderr")
            out, err, both = bytearray(), bytearray(), bytearray()
            lock = threading.Lock()

            def pump(receive: Any, buffer: bytearray, logged: bool) -> None:
                while True:
                    data = receive(32768)
                    if not data:
                        return
                    with lock:
                        buffer.extend(data)
                        both.extend(data)
                    if logged:
                        lines.feed(data)

            try:
                chan.exec_command(command)
            except (paramiko.SSHException, EOFError, OSError):
                # x/crypto Session.start: the exec request refused.
                raise Failure(f"ssh: command {command} failed: running {go_quote(command)}:\n") from None
            stdin = (state.get("stdin") or "").encode()

            def feed_stdin() -> None:
                try:
                    if stdin:
                        chan.sendall(stdin)
                    chan.shutdown_write()
                except (OSError, paramiko.SSHException):
                    pass  # the command exited without reading it all, as with x/crypto

            workers = [threading.Thread(target=feed_stdin, daemon=True),
                       threading.Thread(target=pump, args=(chan.recv, out, log_stdout), daemon=True),
                       threading.Thread(target=pump, args=(chan.recv_stderr, err, log_stderr), daemon=True)]
            for worker in workers:
                worker.start()
            for worker in workers[1:]:
                worker.join()
            lines.close()
            chan.status_event.wait()
            status = chan.exit_status
            signal_name, signal_message = getattr(chan, "_standin_signal", ("", ""))
    finally:
        transport.close()

    # x/crypto ssh/session.go wait(): exit-status, else exit-signal, else ExitMissingError.
    failure = None
    if status == -1 and not signal_name:
        failure = "wait: remote command exited without exit status or exit signal"
    elif status != 0:
        if status == -1:
            status = 128 + SIGNALS.get(signal_name, 0)
        failure = f"Process exited with status {status}"
        if signal_name:
            failure += f" from signal {signal_name}"
        if signal_message:
            failure += f". Reason was: {signal_message}"
    if failure is not None:
        raise Failure(f"{failure}: running {go_quote(command)}:\n{both.decode('utf-8', 'replace')}")
    return out.decode("utf-8", "replace").removesuffix("\n"), err.decode("utf-8", "replace").removesuffix("\n")


# --------------------------------------------------------------------------- the provider


def _known(value: Any) -> bool:
    return value is not None and value != UNKNOWN


def _with_defaults(connection: Any) -> Any:
    """DefaultCheck + applySecrets on a connection value (secret wrapper kept or added)."""
    inner = connection.get("value") if is_secret(connection) else connection
    if not isinstance(inner, dict):
        return connection if is_secret(connection) or not _known(connection) else secret(connection)
    inner = dict(inner)
    for name, default in CONNECTION_DEFAULTS.items():
        if inner.get(name) is None:
            inner[name] = default
    for name in CONNECTION_SECRETS:
        if _known(inner.get(name)) and not is_secret(inner[name]):
            inner[name] = secret(inner[name])
    proxy = inner.get("proxy")
    if isinstance(proxy, dict) and not is_secret(proxy):
        proxy = dict(proxy)
        for name, default in CONNECTION_DEFAULTS.items():
            if proxy.get(name) is None:
                proxy[name] = default
        for name in CONNECTION_SECRETS:
            if _known(proxy.get(name)) and not is_secret(proxy[name]):
                proxy[name] = secret(proxy[name])
        inner["proxy"] = proxy
    return secret(inner)


def _equal(old: Any, new: Any) -> bool:
    """resource.PropertyValue DeepEquals: an unknown equals nothing; secretness counts."""
    if old == UNKNOWN or new == UNKNOWN:
        return False
    if is_secret(old) != is_secret(new):
        return False
    return plain(old) == plain(new)


def _diff(path: list[str | int], old: Any, new: Any, out: dict[str, Any]) -> None:
    """resource.PropertyValue.Diff into plugin.NewDetailedDiffFromObjectDiff's keys: plain
    objects and arrays per element, anything else (secrets included) as one value."""
    if isinstance(old, dict) and isinstance(new, dict) and not is_secret(old) and not is_secret(new):
        for key in new:
            if new[key] is None:
                continue
            if old.get(key) is None:
                out[path_string([*path, key])] = _DIFF_KIND.ADD
            elif not _equal(old[key], new[key]):
                _diff([*path, key], old[key], new[key], out)
        for key in old:
            if old[key] is not None and new.get(key) is None:
                out[path_string([*path, key])] = _DIFF_KIND.DELETE
        return
    if isinstance(old, list) and isinstance(new, list):
        for i in range(max(len(old), len(new))):
            if i >= len(old):
                out[path_string([*path, i])] = _DIFF_KIND.ADD
            elif i >= len(new):
                out[path_string([*path, i])] = _DIFF_KIND.DELETE
            elif not _equal(old[i], new[i]):
                _diff([*path, i], old[i], new[i], out)
        return
    if not _equal(old, new):
        out[path_string(path)] = _DIFF_KIND.UPDATE


def _head(key: str) -> str:
    for i, char in enumerate(key):
        if char in ".[":
            return key[:i] if i else key.split('"')[1]
    return key


class Command(Provider):
    """``command:remote:Command`` as pulumi-command 1.2.1 (see the module docstring)."""

    name = "command"
    version = "1.2.1"

    def __init__(self, argv: list[str] | None = None) -> None:
        super().__init__()
        self.log = EngineLog(sys.argv if argv is None else argv)
        self.sends_old_inputs = False

    def _only_remote_command(self, request: Any) -> None:
        typ = type_of(request)
        if typ != TOKEN:
            raise Failure(f"the command stand-in implements only {TOKEN}, not {typ or 'this resource'}")

    def Configure(self, request: Any, context: Any) -> provider_pb2.ConfigureResponse:
        # provider.go Configure: old inputs are used only when the engine sends them to Diff and Delete.
        self.sends_old_inputs = request.sends_old_inputs and request.sends_old_inputs_to_delete
        return super().Configure(request, context)

    def Check(self, request: Any, context: Any) -> provider_pb2.CheckResponse:
        self._only_remote_command(request)
        news = to_dict(request.news)
        failures = []
        connection = news.get("connection")
        if connection is None:
            failures.append(provider_pb2.CheckFailure(property="connection", reason="missing required property"))
        else:
            inner = plain(connection)
            if isinstance(inner, dict) and inner.get("host") is None:
                failures.append(provider_pb2.CheckFailure(property="connection.host", reason="missing required property"))
            news["connection"] = _with_defaults(connection)
        return provider_pb2.CheckResponse(inputs=to_struct(news), failures=failures)

    def Diff(self, request: Any, context: Any) -> provider_pb2.DiffResponse:
        self._only_remote_command(request)
        state, news = to_dict(request.olds), to_dict(request.news)
        for key in request.ignoreChanges:
            if key in state:
                news[key] = state[key]
        news = {k: v for k, v in news.items() if k != "version" and not k.startswith("__")}
        if self.sends_old_inputs:
            olds = to_dict(request.old_inputs)
        else:  # infer fabricates them from the state's input-named properties
            olds = {k: state[k] for k in INPUTS if k in state}
        detailed: dict[str, Any] = {}
        _diff([], olds, news, detailed)
        replaces: set[str] = set()
        for key, kind in detailed.items():
            if key == "triggers":  # the schema's only replaceOnChanges input (common/inputs.go)
                detailed[key] = kind = _REPLACE[kind]
            if kind in _REPLACE.values():
                replaces.add(_head(key))
        return provider_pb2.DiffResponse(
            changes=provider_pb2.DiffResponse.DIFF_SOME if detailed else provider_pb2.DiffResponse.DIFF_NONE,
            diffs=sorted({_head(k) for k in detailed}),
            replaces=sorted(replaces),
            detailedDiff={k: provider_pb2.PropertyDiff(kind=v, inputDiff=False) for k, v in detailed.items()},
            hasDetailedDiff=True,
            deleteBeforeReplace=False,
        )

    def Create(self, request: Any, context: Any) -> provider_pb2.CreateResponse:
        self._only_remote_command(request)
        props = to_dict(request.properties)
        name = request.name or name_of(request.urn)
        resource_id = name + _random.token_hex(4)  # resource.NewUniqueHex(name, 8, 0)
        if request.preview:
            return provider_pb2.CreateResponse(
                id=resource_id, properties=to_struct({**props, "stdout": UNKNOWN, "stderr": UNKNOWN})
            )
        stdout = stderr = ""
        create = plain(props.get("create"))
        if create is not None:
            stdout, stderr = run({**plain(props), "stdout": "", "stderr": ""}, create, request.urn, self.log)
        return provider_pb2.CreateResponse(id=resource_id, properties=to_struct({**props, "stdout": stdout, "stderr": stderr}))

    def Update(self, request: Any, context: Any) -> provider_pb2.UpdateResponse:
        self._only_remote_command(request)
        olds, news = to_dict(request.olds), to_dict(request.news)
        for key in request.ignoreChanges:
            if key in olds:
                news[key] = olds[key]
        stdout, stderr = olds.get("stdout", ""), olds.get("stderr", "")
        if request.preview:
            # infer markComputed: stdout/stderr depend on every input; one that is unknown, or
            # differs from the state's value, makes them unknown (an input new to the state does not).
            if any(news.get(k) == UNKNOWN or (k in olds and not _equal(olds[k], news.get(k))) for k in INPUTS):
                stdout = stderr = UNKNOWN
            return provider_pb2.UpdateResponse(properties=to_struct({**news, "stdout": stdout, "stderr": stderr}))
        # commandController.go Update: `update` if set (even empty), else `create`, else nothing.
        command = plain(news.get("update"))
        if command is None:
            command = plain(news.get("create"))
        if command is not None:
            stdout, stderr = run({**plain(news), "stdout": plain(stdout), "stderr": plain(stderr)},
                                 command, request.urn, self.log)
        return provider_pb2.UpdateResponse(properties=to_struct({**news, "stdout": stdout, "stderr": stderr}))

    def Delete(self, request: Any, context: Any) -> Any:
        from google.protobuf import empty_pb2

        self._only_remote_command(request)
        props = plain(to_dict(request.properties))
        if props.get("delete") is not None:
            run(props, props["delete"], request.urn, self.log)
        return empty_pb2.Empty()

    def Read(self, request: Any, context: Any) -> provider_pb2.ReadResponse:
        # infer's default Read: the state and inputs as they are.
        self._only_remote_command(request)
        return provider_pb2.ReadResponse(id=request.id, properties=request.properties, inputs=request.inputs)


if __name__ == "__main__":
    serve(Command())
