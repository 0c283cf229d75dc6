"""The sites the repository declares: every ``Pulumi.<site>.yaml``, read as ``pulumi up`` would.

The stack files are loaded and validated by the same code the offline renderer and the program
use (``components.config.stack_files.load_stack_site_config``: ``Pulumi.yaml`` merged with the stack
file, validated by ``components.config.loading.load_site_config`` with the stack's secret keys
and its other namespaces' key names), so a stack the fleet status reads is one the program
would deploy. A stack file that cannot be read or does not validate is reported as invalid,
with one line per problem, each naming its key (or the file); it does not stop the other sites
from being checked, whatever went wrong with it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import isodate

from components.nodes.paths import duplicate_node_paths
from components.config.examples import example_stacks
from components import tls
from components.config.fields import ConfigError, is_placeholder
from components.fleet.model import RegistryRef, SiteDeclaration, TlsFacts
from components.fleet.verdicts import InvalidStack
from components.config import stack_files

#: Where the subscription comes from, in the order azure-native itself looks.
SUBSCRIPTION_KEY = "azure-native:subscriptionId"
SUBSCRIPTION_ENV = ("ARM_SUBSCRIPTION_ID", "AZURE_SUBSCRIPTION_ID")


def read_declarations(
    project_dir: Path, environ: Mapping[str, str] | None = None
) -> tuple[list[SiteDeclaration], list[InvalidStack]]:
    """Every stack file of ``project_dir``: the sites it declares and the stacks that are invalid.
    Examples (``.github/example-stacks.txt``, components/config/examples.py) are not sites: skipped."""
    env = os.environ if environ is None else environ
    sites: list[SiteDeclaration] = []
    invalid: list[InvalidStack] = []
    examples = example_stacks(project_dir)
    for stack in stack_files.known_stacks(project_dir):
        if stack in examples:
            continue
        try:
            sites.append(read_declaration(project_dir, stack, env))
        except ConfigError as error:
            # The report names the file on every line: a problem with the file as a whole
            # ("not valid YAML") says it only once.
            own = f"Pulumi.{stack}.yaml: "
            invalid.append(InvalidStack(stack, tuple(p.removeprefix(own) for p in error.problems)))
        except Exception as error:  # noqa: BLE001 - one stack file must not hide the rest of the fleet
            # Not expected (the config code turns bad input into ConfigError); still only this
            # stack is broken. The type and first line, no traceback: the file holds no secrets
            # in clear (secure values are ciphertext), and the line is for an operator.
            first = (str(error).strip().splitlines() or [""])[0][:200]
            invalid.append(InvalidStack(stack, (f"could not be read: {type(error).__name__}: {first}",)))
    # Two stacks naming one node's file would undo each other's entries (docs/nodes.md): both
    # are reported broken, with the node and the path.
    nodes = {site.stack: site.nodes for site in sites}
    clashing = {site.stack: duplicate_node_paths(nodes, stack=site.stack) for site in sites}
    invalid += [InvalidStack(stack, tuple(lines)) for stack, lines in clashing.items() if lines]
    sites = [site for site in sites if not clashing[site.stack]]
    return sites, invalid


def example_stack_files(project_dir: Path) -> list[str]:
    """The stacks of ``project_dir`` that :func:`read_declarations` skips as examples."""
    examples = example_stacks(project_dir)
    return [stack for stack in stack_files.known_stacks(project_dir) if stack in examples]


def read_declaration(project_dir: Path, stack: str, environ: Mapping[str, str]) -> SiteDeclaration:
    """One stack's site. :raises ConfigError: one line per problem, naming the key."""
    site, config = stack_files.load_stack_site_config(project_dir, stack)
    subscription = config.get(SUBSCRIPTION_KEY) or next((environ[e] for e in SUBSCRIPTION_ENV if environ.get(e)), "")
    if not subscription:
        raise ConfigError([
            f"{SUBSCRIPTION_KEY}: not set in Pulumi.{stack}.yaml and neither {' nor '.join(SUBSCRIPTION_ENV)} "
            "is set: the fleet status needs the parent registry's subscription"
        ])
    window = _duration(site.sync_window)
    return SiteDeclaration(
        stack=stack,
        # ARM names and ids are case-insensitive: two spellings are one registry, listed once.
        registry=RegistryRef(
            arm_endpoint=site.arm_endpoint.rstrip("/").lower(),
            subscription_id=subscription.lower(),
            resource_group=site.registry_resource_group.lower(),
            name=site.registry_name.lower(),
        ),
        connected_registry=site.connected_registry_name,
        sync_schedule=site.sync_schedule,
        sync_window=window,
        rotate_before=timedelta(days=site.password_rotate_before_days),
        nodes=tuple(site.nodes),
        message_ttl=_duration(site.message_ttl),
        password_expiry_days=site.password_expiry_days,
        tls=None if site.http_enabled else tls_facts(site),
    )


def _duration(text: str) -> timedelta:
    value = isodate.parse_duration(text)  # validated by SiteConfig: days/hours only
    assert isinstance(value, timedelta)
    return value


def tls_facts(site: Any) -> TlsFacts:
    """What the stack file says about the site's certificates (see :class:`TlsFacts`)."""

    def brought(value: Any) -> tuple[str, datetime | None]:
        if value is None:
            return "issued", None
        text = value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)
        if is_placeholder(text):  # set with --secret: ciphertext in the file
            return "brought-secret", None
        try:
            return "brought", tls.load_certificate(text).not_valid_after_utc
        except tls.TlsMaterialError:
            return "brought-secret", None  # SiteConfig validated it: not expected

    server_source, server_not_after = brought(site.tls_certificate)
    ca_source, ca_not_after = brought(site.tls_ca_certificate)
    return TlsFacts(
        renew_before_days=site.certificate_renew_before_days,
        validity_days=site.certificate_validity_days,
        server_source=server_source,
        ca_source=ca_source,
        server_not_after=server_not_after,
        ca_not_after=ca_not_after,
    )
