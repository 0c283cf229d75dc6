"""The demo fleet (``--demo``): the example stack and four sites derived from it, against a fake ARM.

A newcomer sees what ``fleet status`` and ``depart`` do without Azure credentials or nodes. The
fleet is the repository's example stack, ``Pulumi.dev.yaml``, read as is, and four variants of
it written beside a copy of ``Pulumi.yaml`` in a temporary project: each has its own connected
registry name and node addresses and a few keys changed (``messageTtl``, the rotation and
renewal lead times). Those files are read by the same code as a real fleet's, so a change to the
example or to the config rules shows in the demo too.

What ARM "says" about each site (state, last sync, password slots) is :data:`SCENARIOS`, relative
to the time of the run, served by :mod:`components.fleet.demo_arm` through the real SDK client.
Everything the demo prints is marked with :data:`BANNER`.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from components.azure.rotation import format_time
from components.config.stack_files import REPO_ROOT
from components.fleet.demo_arm import DemoArmAdapter, DemoCredential, demo_session
from components.fleet.listing import FleetListingClient
from components.fleet.model import SiteDeclaration

BANNER = ("DEMO: the example fleet (Pulumi.dev.yaml and four sites derived from it) against a built-in fake ARM; "
          "no Azure was contacted and none of these sites exist")
EXAMPLE_STACK = "dev"
PREFIX = "edge-registry:"


@dataclass(frozen=True)
class Scenario:
    """What the fake ARM reports for one demo site; times are relative to the run."""

    state: str
    activation: str
    last_sync_ago: timedelta | None
    # (created ago, expires in) per password slot, password1 first
    sync_slots: tuple[tuple[timedelta, timedelta], ...]
    client_slots: tuple[tuple[timedelta, timedelta], ...]
    overrides: dict[str, Any] = field(default_factory=dict)
    status_details: tuple[dict[str, str], ...] = ()


D, H, M = timedelta(days=1), timedelta(hours=1), timedelta(minutes=1)

#: The demo sites: the example itself, then four variants of it.
SCENARIOS: dict[str, Scenario] = {
    # The example as it stands: healthy, fresh passwords; its messageTtl (P2D) limits the budget.
    EXAMPLE_STACK: Scenario("Online", "Active", 25 * M, ((20 * D, 70 * D),), ((20 * D, 70 * D),)),
    # Ready to sail: long messageTtl and certificate lead, a recent rotation.
    "ship02": Scenario("Online", "Active", 30 * M, ((10 * D, 80 * D),), ((10 * D, 80 * D),),
                       {"messageTtl": "P45D", "certificateRenewBeforeDays": 60, "passwordRotateBeforeDays": 14}),
    # At sea for six days: offline and stale, its budget running down.
    "ship03": Scenario("Offline", "Active", 6 * D + 2 * H, ((15 * D, 75 * D),), ((15 * D, 75 * D),),
                       {"messageTtl": "P30D", "certificateRenewBeforeDays": 45}),
    # A client rotation waiting for a sync, and a sync password already due for rotation.
    "ship04": Scenario("Syncing", "Active", 2 * H, ((65 * D, 25 * D),), ((81 * D, 9 * D), (1 * H, 90 * D)),
                       {"messageTtl": "P14D"}),
    # Deployed, never activated: nothing on the site yet.
    "ship05": Scenario("Offline", "Inactive", None, ((1 * D, 89 * D),), ((1 * D, 89 * D),), {},
                       ({"type": "connectedRegistry", "code": "ACTIVATION_PENDING",
                         "description": "The connected registry has not been activated."},)),
}


def _variant(example: dict[str, Any], stack: str, index: int, overrides: dict[str, Any]) -> dict[str, Any]:
    """The example's config for demo site ``stack``: its own names and node addresses."""
    config = dict(example["config"])
    config[f"{PREFIX}connectedRegistryName"] = stack
    config[f"{PREFIX}kubeconfigPath"] = f"~/.kube/{stack}.yaml"
    nodes = []
    for number, node in enumerate(config.get(f"{PREFIX}nodes") or []):
        # 192.0.2.0/24 (TEST-NET-1, RFC 5737): documentation addresses, one pair per site.
        nodes.append({**node, "host": f"192.0.2.{20 + index * 10 + number}"})
    if nodes:
        config[f"{PREFIX}nodes"] = nodes
    config.update({f"{PREFIX}{key}": value for key, value in overrides.items()})
    return {"config": config}


def source_problem(source: Path) -> str | None:
    """Why ``source`` cannot make the demo fleet, or None. The demo is made from the example stack
    only while it is one (listed in .github/example-stacks.txt): once an adopter makes
    ``Pulumi.dev.yaml`` a real site, a "demo" of it would pass a real site off as made up."""
    from components.config.examples import EXAMPLES_FILE, example_stacks

    if not (source / "Pulumi.yaml").is_file() or not (source / f"Pulumi.{EXAMPLE_STACK}.yaml").is_file():
        return (f"{source} has no Pulumi.yaml and Pulumi.{EXAMPLE_STACK}.yaml (the example stack the demo fleet "
                "is made from; use --project-dir)")
    if EXAMPLE_STACK not in example_stacks(source):
        return (f"Pulumi.{EXAMPLE_STACK}.yaml in {source} is a real site now, not the example "
                f"({EXAMPLES_FILE.as_posix()} does not list it): the demo is made from the example only")
    return None


@contextmanager
def demo_project(source: Path = REPO_ROOT) -> Iterator[Path]:
    """A temporary project holding the demo fleet's stack files; removed afterwards."""
    example = yaml.safe_load((source / f"Pulumi.{EXAMPLE_STACK}.yaml").read_text())
    directory = Path(tempfile.mkdtemp(prefix="edge-registry-demo-"))
    try:
        shutil.copyfile(source / "Pulumi.yaml", directory / "Pulumi.yaml")
        shutil.copyfile(source / f"Pulumi.{EXAMPLE_STACK}.yaml", directory / f"Pulumi.{EXAMPLE_STACK}.yaml")
        for index, (stack, scenario) in enumerate(SCENARIOS.items()):
            if stack != EXAMPLE_STACK:
                text = yaml.safe_dump(_variant(example, stack, index, scenario.overrides), sort_keys=False)
                (directory / f"Pulumi.{stack}.yaml").write_text(f"# {BANNER}\n{text}")
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _registry_id(declaration: SiteDeclaration) -> str:
    ref = declaration.registry
    return (f"/subscriptions/{ref.subscription_id}/resourceGroups/{ref.resource_group}"
            f"/providers/Microsoft.ContainerRegistry/registries/{ref.name}")


def _duration(span: timedelta) -> str:
    days, rest = divmod(int(span.total_seconds()), 86400)
    hours = rest // 3600
    return "P" + (f"{days}D" if days else "") + (f"T{hours}H" if hours else "")


def _token(registry_id: str, name: str, slots: tuple[tuple[timedelta, timedelta], ...], now: datetime) -> dict[str, Any]:
    # Shaped like the ARM spec's TokenGet example; ARM never lists password values.
    passwords = [{"name": f"password{i}", "creationTime": format_time(now - created), "expiry": format_time(now + left)}
                 for i, (created, left) in enumerate(slots, 1)]
    return {"id": f"{registry_id}/tokens/{name}", "name": name, "type": "Microsoft.ContainerRegistry/registries/tokens",
            "properties": {"status": "enabled", "scopeMapId": f"{registry_id}/scopeMaps/{name}",
                           "provisioningState": "Succeeded",
                           "credentials": {"certificates": [], "passwords": passwords}}}


def _garbage_collection() -> dict[str, Any]:
    """``garbageCollection`` as the program sets it by default (the demo sites keep the defaults)."""
    from components.config.azure import AzureSettings

    fields = AzureSettings.model_fields
    if "garbage_collection_enabled" not in fields or "garbage_collection_schedule" not in fields:
        return {}
    return {"garbageCollection": {"enabled": fields["garbage_collection_enabled"].default,
                                  "schedule": fields["garbage_collection_schedule"].default}}


def arm_lists(declarations: list[SiteDeclaration], now: datetime) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """What the fake ARM lists per registry: each demo site's connected registry and its tokens,
    shaped like the ARM spec's ConnectedRegistryGet and TokenGet examples."""
    lists: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for declaration in declarations:
        scenario = SCENARIOS.get(declaration.stack)
        if scenario is None:
            continue
        registry_id = _registry_id(declaration)
        name = declaration.connected_registry
        sync_token, client_token = f"{name}-sync-token", f"{name}-client-token"
        sync: dict[str, Any] = {
            "tokenId": f"{registry_id}/tokens/{sync_token}",
            "schedule": declaration.sync_schedule,
            "syncWindow": _duration(declaration.sync_window),
            "messageTtl": _duration(declaration.message_ttl),
            "gatewayEndpoint": f"{declaration.registry.name}.westeurope.data.azurecr.io",
        }
        properties: dict[str, Any] = {
            "provisioningState": "Succeeded", "mode": "ReadOnly", "version": "0.9.0",
            "connectionState": scenario.state, "activation": {"status": scenario.activation},
            "parent": {"syncProperties": sync}, "clientTokenIds": [f"{registry_id}/tokens/{client_token}"],
            "statusDetails": list(scenario.status_details),
        }
        properties.update(_garbage_collection())
        if scenario.last_sync_ago is not None:
            sync["lastSyncTime"] = format_time(now - scenario.last_sync_ago)
            properties["lastActivityTime"] = sync["lastSyncTime"]
        entry = lists.setdefault(registry_id, {"connectedRegistries": [], "tokens": []})
        entry["connectedRegistries"].append({
            "id": f"{registry_id}/connectedRegistries/{name}", "name": name,
            "type": "Microsoft.ContainerRegistry/registries/connectedRegistries", "properties": properties,
        })
        entry["tokens"] += [_token(registry_id, sync_token, scenario.sync_slots, now),
                            _token(registry_id, client_token, scenario.client_slots, now)]
    return lists


def drift_records(now: datetime) -> dict[str, Any]:
    """The demo's last drift checks (what ``--drift DIR`` reads from the drift workflow's records)."""
    from components.fleet.drift import DriftRecord, DriftResult

    return {
        EXAMPLE_STACK: DriftRecord(EXAMPLE_STACK, DriftResult.NONE, now - 5 * H),
        "ship02": DriftRecord("ship02", DriftResult.DRIFT, now - 5 * H, {"update": 1},
                              ("urn:pulumi:ship02::edge-registry::kubernetes:core/v1:Secret::ship02-pull-fleet-apps",)),
        "ship03": DriftRecord("ship03", DriftResult.FAILED, now - 5 * H,
                              error="error: the site's cluster could not be reached"),
        "ship04": DriftRecord("ship04", DriftResult.NONE, now - 29 * H),
    }


def listing_client(declarations: list[SiteDeclaration], now: datetime, **kwargs: Any) -> FleetListingClient:
    """A :class:`FleetListingClient` whose ARM is the demo's (nothing leaves the process)."""
    from azure.core.pipeline.transport import RequestsTransport

    session = demo_session(DemoArmAdapter(arm_lists(declarations, now)))
    return FleetListingClient(DemoCredential(), transport=RequestsTransport(session=session, session_owner=True),
                              **kwargs)
