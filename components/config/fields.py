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


def full_key(name: str) -> str:
    """The key as a stack file writes it: ``edge-registry:<name>``."""
    return f"{PROJECT}:{name}"


# --- strict scalar types ------------------------------------------------------------------
# Pulumi hands every value to the program as a string. pydantic's lax mode would read "yes",
# "on" or "1" as true and true as 1; these accept exactly what pulumi.Config's getters accept.

def _strict_bool(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value in ("true", "True", "false", "False"):
        return value.lower() == "true"
    raise ValueError("expected true or false")


def _strict_int(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*-?[0-9]+\s*", value):
        return int(value)
    raise ValueError("expected a whole number")


def _set_or_absent(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        raise ValueError("is empty: remove the key to leave it unset")
    return value


ConfigBool = Annotated[bool, BeforeValidator(_strict_bool)]
ConfigInt = Annotated[int, BeforeValidator(_strict_int)]
#: An optional name or path: set to something, or not set at all.
OptionalName = Annotated[str | None, BeforeValidator(_set_or_absent)]


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
IPV4_LIKE_RE = re.compile(r"^[0-9.]+$")
HOSTNAME_RE = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)


def host_problem(host: str) -> str | None:
    """What is wrong with a host (an IP address or a DNS name), or None."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if IPV4_LIKE_RE.match(host):
            return "looks like an IPv4 address but is not one (four numbers 0-255)"
        if not HOSTNAME_RE.match(host):
            return "expected an IP address or a DNS host name"
    return None


# --- values that may be raw -----------------------------------------------------------------
# The cross-field rules run on validated values and, when another key is invalid, on the raw
# ones (strings) too, so every problem is reported in one run.

def truthy(value: Any) -> bool:
    """True for a validated true and for the raw text "true" (any case)."""
    return value is True or (isinstance(value, str) and value.lower() == "true")


def int_or_none(value: Any) -> int | None:
    """A validated or raw whole number, or None when it is not one (that is its own problem)."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
