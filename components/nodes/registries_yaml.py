"""k3s ``registries.yaml``: our mirror entries, merge/unmerge, and a strict schema check.

Pure functions, no Pulumi. The node has no YAML tool, so everything that understands the
file happens here, in the program:

* :func:`mirror_entries` builds the entries this program owns for one endpoint.
* :func:`merge` removes the entries we owned last time (so an endpoint change replaces,
  never accumulates) and adds ours; every foreign entry is kept as data, unchanged.
* :func:`unmerge` removes our entries again (what ``pulumi destroy`` puts back).
* :func:`validate` checks a document against the k3s format (rancher/wharfie types):
  k3s ignores unknown keys silently and retries forever on a type error, so both are
  rejected here, before anything is sent to a node.
* :func:`parse` / :func:`dump` read and write the file (PyYAML safe loader/dumper).

Entries are addressed by *owned keys*: ``(section, registry)`` pairs such as
``("mirrors", "10.43.0.10:80")``.
"""

from __future__ import annotations

import copy
import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

__all__ = [
    "SECTIONS",
    "OwnedKey",
    "RegistriesYamlError",
    "dump",
    "merge",
    "mirror_entries",
    "normalize",
    "owned_keys",
    "parse",
    "unmerge",
    "validate",
]

#: The two top-level sections of registries.yaml.
SECTIONS: tuple[str, ...] = ("mirrors", "configs")

OwnedKey = tuple[str, str]
"""``(section, registry key)``, e.g. ``("configs", "10.43.0.10:443")``."""

_MIRROR_KEYS = {"endpoint", "rewrite"}
_CONFIG_KEYS = {"auth", "tls"}
_AUTH_KEYS = {"username", "password", "auth", "identity_token"}
_TLS_STRING_KEYS = {"ca_file", "cert_file", "key_file"}
_TLS_KEYS = _TLS_STRING_KEYS | {"insecure_skip_verify"}

_DNS_NAME_RE = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)


class RegistriesYamlError(ValueError):
    """The file cannot be read, or a document is not valid for k3s. ``path`` names the spot."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"registries.yaml: {path}: {message}" if path else f"registries.yaml: {message}")


# --------------------------------------------------------------------------- our entries


def _check_endpoint(endpoint: str) -> None:
    """``host:port`` with an IP address, a DNS name or ``[IPv6]``, and a port 1-65535."""
    host, sep, port = endpoint.rpartition(":")
    if not sep or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"endpoint {endpoint!r}: expected host:port, e.g. 10.43.0.10:80")
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ValueError(f"endpoint {endpoint!r}: {host} is not an IPv6 address") from None
        return
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        if not _DNS_NAME_RE.fullmatch(host) or host.replace(".", "").isdigit():
            raise ValueError(f"endpoint {endpoint!r}: {host!r} is not an IPv4 address or DNS name") from None


def mirror_entries(
    endpoint: str,
    scheme: str,
    ca_file: str | None,
    insecure_skip_verify: bool,
    *,
    login_server: str | None = None,
    username: str | None = None,
    password: str | None = None,
) -> dict[str, Any]:
    """The entries this program owns for the connected registry at ``endpoint`` (``host:port``).

    ``mirrors[endpoint].endpoint`` is ``["<scheme>://<endpoint>"]``: the mirror key must equal
    the registry part of image references, and an endpoint without a scheme would be https.
    With ``login_server`` (``<registry>.azurecr.io``) that name is mirrored to the same endpoint,
    so one image name works on every site; containerd still falls back to the login server
    itself when the mirror fails (docs/nodes.md). ``configs[endpoint]`` (k3s looks configs up by
    the endpoint's host:port) carries ``auth`` when ``username``/``password`` are given, so pulls
    through either mirror authenticate, and ``tls`` when ``ca_file`` or
    ``insecure_skip_verify`` is set.
    """
    _check_endpoint(endpoint)
    if scheme not in ("http", "https"):
        raise ValueError(f"scheme {scheme!r}: expected http or https")
    if ca_file is not None and (not ca_file.startswith("/") or "\n" in ca_file):
        raise ValueError(f"ca_file {ca_file!r}: expected an absolute path on the nodes")
    if login_server is not None and (not _DNS_NAME_RE.fullmatch(login_server) or login_server == endpoint):
        raise ValueError(f"login_server {login_server!r}: expected the parent registry's DNS name")
    if (username is None) != (password is None) or username == "" or password == "":
        raise ValueError("username and password: give both (non-empty) or neither")
    mirror = {"endpoint": [f"{scheme}://{endpoint}"]}
    entries: dict[str, Any] = {"mirrors": {endpoint: mirror}}
    if login_server is not None:
        entries["mirrors"][login_server] = copy.deepcopy(mirror)
    config: dict[str, Any] = {}
    if username is not None and password is not None:
        config["auth"] = {"username": username, "password": password}
    tls: dict[str, Any] = {}
    if ca_file:
        tls["ca_file"] = ca_file
    if insecure_skip_verify:
        tls["insecure_skip_verify"] = True
    if tls:
        config["tls"] = tls
    if config:
        entries["configs"] = {endpoint: config}
    return entries


def owned_keys(ours: Mapping[str, Any]) -> list[OwnedKey]:
    """The ``(section, key)`` pairs of an entries document such as :func:`mirror_entries` returns."""
    return sorted((section, key) for section in SECTIONS for key in (ours.get(section) or {}))


# --------------------------------------------------------------------------- merge


def _remove(document: dict[str, Any], keys: Iterable[OwnedKey], keep_sections: Iterable[str] = ()) -> None:
    """Delete ``keys`` in place; drop a section only when this removal emptied it."""
    keep = set(keep_sections)
    for section, key in keys:
        entries = document.get(section)
        if isinstance(entries, dict) and key in entries:
            del entries[key]
            if not entries and section not in keep:
                del document[section]


def merge(
    document: Mapping[str, Any], ours: Mapping[str, Any], previously_owned_keys: Iterable[OwnedKey]
) -> dict[str, Any]:
    """``document`` with our previous entries removed and ``ours`` added; the input is not modified.

    Foreign entries are kept exactly, in their order; our entries come after them. An
    entry a foreign writer put at one of our keys is taken over (replaced by ours).
    Merging the result again with the same ``ours`` gives the same document, in the same
    order, so a re-apply produces the same bytes.
    """
    result = copy.deepcopy(dict(document))
    ours_sections = [s for s in SECTIONS if ours.get(s)]
    _remove(result, previously_owned_keys, keep_sections=ours_sections)
    for section in ours_sections:
        if not isinstance(result.get(section), dict):
            result[section] = {}  # absent or null (k3s treats null as empty)
        for key, entry in ours[section].items():
            result[section][key] = copy.deepcopy(entry)
    return result


def unmerge(document: Mapping[str, Any], owned_keys: Iterable[OwnedKey]) -> dict[str, Any]:
    """``document`` without the entries at ``owned_keys``; the input is not modified.

    A section that our removal leaves empty is dropped, so
    ``unmerge(merge(d, ours, []), owned_keys(ours)) == d`` for any ``d`` without entries at
    our keys and without empty sections (an empty ``mirrors: {}`` means the same to k3s
    as none; :func:`normalize` compares documents that way).
    """
    result = copy.deepcopy(dict(document))
    _remove(result, owned_keys)
    return result


def normalize(document: Mapping[str, Any]) -> dict[str, Any]:
    """``document`` without empty or null sections: equal results mean k3s sees the same file."""
    return {k: v for k, v in document.items() if not (k in SECTIONS and not v)}


# --------------------------------------------------------------------------- schema


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list",
            dict: "a mapping"}.get(type(value), type(value).__name__)


def _key(key: Any) -> str:
    return f'["{key}"]' if isinstance(key, str) else f"[{key!r}]"


def _check_mapping(value: Any, path: str, what: str) -> dict[Any, Any]:
    """A mapping (null counts as empty, as for k3s) with string keys."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RegistriesYamlError(path, f"{what} must be a mapping, not {_type_name(value)}")
    for key in value:
        if not isinstance(key, str):
            raise RegistriesYamlError(f"{path}{_key(key)}", f"key must be a string, not {_type_name(key)} (quote it)")
    return value


def _check_known(value: dict[str, Any], path: str, known: set[str], what: str) -> None:
    for key in value:
        if key not in known:
            hint = " (did you mean endpoint?)" if key == "endpoints" else ""
            raise RegistriesYamlError(
                f"{path}.{key}" if path else str(key), f"unknown key in {what}{hint}; k3s would ignore it silently. "
                f"Known keys: {', '.join(sorted(known))}"
            )


def _check_string(value: Any, path: str) -> None:
    if value is not None and not isinstance(value, str):
        raise RegistriesYamlError(
            path, f"must be a string, not {_type_name(value)} (quote it, so it is kept exactly as written)"
        )


def validate(document: Any) -> None:
    """Raise :class:`RegistriesYamlError` naming the path unless ``document`` is valid for k3s.

    Strict where k3s is lenient: unknown keys (a misspelt ``endpoints:``) are errors, and
    string fields must be strings (an unquoted ``password: 12345`` would be rewritten).
    Null is accepted wherever k3s reads it as empty.
    """
    if not isinstance(document, dict):
        raise RegistriesYamlError("", f"the document must be a mapping, not {_type_name(document)}")
    _check_known(document, "", set(SECTIONS), "the top level")
    mirrors = _check_mapping(document.get("mirrors"), "mirrors", "mirrors")
    for name, mirror in mirrors.items():
        here = f"mirrors{_key(name)}"
        mirror = _check_mapping(mirror, here, "a mirror")
        _check_known(mirror, here, _MIRROR_KEYS, "a mirror")
        endpoints = mirror.get("endpoint")
        if endpoints is not None:
            if not isinstance(endpoints, list):
                raise RegistriesYamlError(
                    f"{here}.endpoint", f"must be a list of URLs, not {_type_name(endpoints)}"
                )
            for i, url in enumerate(endpoints):
                if not isinstance(url, str) or not url:
                    raise RegistriesYamlError(
                        f"{here}.endpoint[{i}]", f"must be a non-empty string URL, not {_type_name(url)}"
                    )
        rewrite = _check_mapping(mirror.get("rewrite"), f"{here}.rewrite", "rewrite")
        for pattern, replacement in rewrite.items():
            _check_string(replacement, f"{here}.rewrite{_key(pattern)}")
    configs = _check_mapping(document.get("configs"), "configs", "configs")
    for name, config in configs.items():
        here = f"configs{_key(name)}"
        config = _check_mapping(config, here, "a registry config")
        _check_known(config, here, _CONFIG_KEYS, "a registry config")
        auth = _check_mapping(config.get("auth"), f"{here}.auth", "auth")
        _check_known(auth, f"{here}.auth", _AUTH_KEYS, "auth")
        for key, value in auth.items():
            _check_string(value, f"{here}.auth.{key}")
        tls = _check_mapping(config.get("tls"), f"{here}.tls", "tls")
        _check_known(tls, f"{here}.tls", _TLS_KEYS, "tls")
        for key in _TLS_STRING_KEYS & tls.keys():
            _check_string(tls[key], f"{here}.tls.{key}")
        skip = tls.get("insecure_skip_verify")
        if skip is not None and not isinstance(skip, bool):
            raise RegistriesYamlError(
                f"{here}.tls.insecure_skip_verify", f"must be a boolean (true/false), not {_type_name(skip)}"
            )


# --------------------------------------------------------------------------- file I/O


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys (PyYAML would silently keep the last one,
    and rewriting the file would then drop the first — a foreign entry lost)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
        except TypeError:  # unhashable key: construct_mapping reports it
            break
        if duplicate:
            raise RegistriesYamlError(
                f"line {key_node.start_mark.line + 1}", f"duplicate key {key!r} (k3s would reject the file)"
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse(content: bytes | str | None) -> dict[str, Any]:
    """The document in ``content``; a missing (``None``) or empty file is ``{}``.

    Raises :class:`RegistriesYamlError` when the bytes are not UTF-8, not YAML, or not a
    mapping. Does not check the schema: call :func:`validate`.
    """
    if content is None:
        return {}
    if isinstance(content, bytes):
        try:
            content = content.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RegistriesYamlError("", f"the file is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        document = yaml.load(content, Loader=_StrictLoader)  # _StrictLoader is a SafeLoader
    except RegistriesYamlError:
        raise
    except yaml.YAMLError as exc:
        raise RegistriesYamlError("", f"the file is not valid YAML: {exc}") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise RegistriesYamlError("", f"the file must hold a mapping (mirrors:/configs:), not {_type_name(document)}")
    return document


def dump(document: Mapping[str, Any]) -> bytes:
    """``document`` as registries.yaml bytes (block style, keys in document order)."""
    return yaml.safe_dump(
        dict(document), default_flow_style=False, sort_keys=False, allow_unicode=True, width=1000
    ).encode("utf-8")
