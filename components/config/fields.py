"""What every group of settings is built from: the project's namespace, :class:`ConfigError`, the
strict scalar types, the base model, the stand-in for a secret the renderer cannot decrypt, the
host name rule more than one group checks, and readers of values that may still be raw.

Pulumi hands every value to the program as a string; the types here accept exactly what
``pulumi.Config``'s getters accept (docs/config-rules.md).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict

PROJECT = "edge-registry"


class ConfigError(Exception):
    """Raised with every config problem at once; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class ValueEcho(ValueError):
    """A validator's problem whose message quotes the value (or part of it); ``hidden`` says the
    same without it, for a key set with ``--secret`` (docs/config-rules.md, "Problems and secrets in messages")."""

    def __init__(self, message: str, hidden: str) -> None:
        super().__init__(message)
        self.hidden = hidden


def full_key(name: str) -> str:
    """The key as a stack file writes it: ``edge-registry:<name>``."""
    return f"{PROJECT}:{name}"


# --- strict scalar types ------------------------------------------------------------------
# Pulumi hands every value to the program as a string. pydantic's lax mode would read "yes",
# "on" or "1" as true and true as 1; these accept exactly what pulumi.Config's getters accept.

#: What a boolean setting accepts: Pulumi reads only these as booleans (YAML 1.2, as the Pulumi
#: CLI parses stack files), so an unquoted `yes` reaches the program as the text "yes".
BOOL_EXPECTED = "expected true or false (yes, no, on and off are not booleans to Pulumi)"


def _strict_bool(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value in ("true", "True", "false", "False"):
        return value.lower() == "true"
    raise ValueError(BOOL_EXPECTED)


#: More digits than any setting needs; Python refuses to parse very long ones (4300 digits) anyway.
MAX_INT_DIGITS = 18


def _strict_int(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        if abs(value) >= 10**MAX_INT_DIGITS:
            raise ValueError(f"expected a whole number of at most {MAX_INT_DIGITS} digits")
        return value
    if isinstance(value, str) and (found := re.fullmatch(r"\s*(-?)([0-9]+)\s*", value)):
        if len(found[2].lstrip("0")) > MAX_INT_DIGITS:
            raise ValueError(f"expected a whole number of at most {MAX_INT_DIGITS} digits")
        return int(value)
    raise ValueError("expected a whole number")


def _set_or_absent(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        raise ValueError("is empty: remove the key to leave it unset")
    return value


def outer_whitespace(value: Any) -> bool:
    """Whether a text starts or ends with whitespace (a trailing newline from a pasted value)."""
    return isinstance(value, str) and value != value.strip()


def _trimmed(value: Any) -> Any:
    if outer_whitespace(value):
        raise ValueError("has leading or trailing whitespace (a newline?): remove it")
    return value


ConfigBool = Annotated[bool, BeforeValidator(_strict_bool)]
ConfigInt = Annotated[int, BeforeValidator(_strict_int)]
#: An optional name or path: set to something, or not set at all.
OptionalName = Annotated[str | None, BeforeValidator(_set_or_absent)]
#: A name or path used as it is (a file path, a kubeconfig context): set, or not set, and never
#: with whitespace around it that would make it name something else.
# (pydantic runs before-validators last first: the empty check, then the whitespace check)
OptionalTrimmedName = Annotated[str | None, BeforeValidator(_trimmed), BeforeValidator(_set_or_absent)]


class ConfigModel(BaseModel):
    """The base of every settings model: unknown keys refused, read by field name or key, frozen."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


# --- secrets the offline renderer cannot decrypt ---------------------------------------------

_PLACEHOLDER_PREFIX = "[secure:"


def placeholder(key: str) -> str:
    """The stand-in the offline renderer uses for a secret it cannot decrypt."""
    return f"{_PLACEHOLDER_PREFIX}{key}]"


def is_placeholder(value: str) -> bool:
    return value.startswith(_PLACEHOLDER_PREFIX) and value.endswith("]")


# --- hosts (a node's address, the ARM endpoint's host) ---------------------------------------

# A host made only of digits and dots is meant as an IPv4 address (no top-level domain is numeric).
# Every pattern of the config is matched whole (``fullmatch``): with ``match`` and ``$``, a value
# with a trailing newline (``host: "node1\n"``) would pass and fail later, on a node.
IPV4_LIKE_RE = re.compile(r"[0-9.]+")
HOSTNAME_RE = re.compile(
    r"(?=.{1,253}\Z)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
#: An IPv6 zone (``fe80::1%eth0``): an interface name or number.
IPV6_ZONE_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def host_problem(host: str) -> str | None:
    """What is wrong with a host (an IP address or a DNS name), or None."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if IPV4_LIKE_RE.fullmatch(host):
            return "looks like an IPv4 address but is not one (four numbers 0-255)"
        if not HOSTNAME_RE.fullmatch(host):
            return "expected an IP address or a DNS host name"
        return None
    zone = getattr(address, "scope_id", None)
    if zone is not None and not IPV6_ZONE_RE.fullmatch(zone):
        return "expected an IP address or a DNS host name (an IPv6 zone is an interface name or number)"
    return None


# --- values that may be raw -----------------------------------------------------------------
# The cross-field rules run on validated values and, when another key is invalid, on the raw
# ones (strings) too, so every problem is reported in one run.

def truthy(value: Any) -> bool:
    """True for a validated true and for the raw text "true" (any case)."""
    return value is True or (isinstance(value, str) and value.lower() == "true")


def int_or_none(value: Any) -> int | None:
    """A validated or raw whole number, or None when it is not one (that is its own problem)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(_strict_int(value))
        except ValueError:
            return None
    return None
