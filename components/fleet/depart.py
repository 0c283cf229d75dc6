"""Before departure: can one site stay offline N days, and what to renew first if not.

    python -m components depart STACK --days N [--json] [--demo] [--project-dir DIR]

Reads the site's stack file and its parent registry's lists from ARM, as ``fleet status`` does,
computes the site's offline budget (``components.fleet.budget``) and lists each item that would
break within N days from now, with the command that renews it before departure and whether that
renewal itself needs the site online. With ``--demo``, STACK is a site of the demo fleet (the
example stack and its variants) against the built-in fake ARM: no Azure credentials.

Exit codes: 0 the site can stay offline N days; 1 something would break within N days (each item
is listed); 2 usage error (bad flag, no such stack file, an invalid one, an example stack without
--demo); 3 the site's state could not be read (ARM unreadable, no credentials, or its connected
registry does not exist in Azure).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from components.azure.credentials import ARM_TOKEN_ENV, credential_from_environment, missing_credentials
from components.command_line import CommandParser, number, whole_number
from components.config import stack_files
from components.config.examples import example_stacks
from components.config.fields import ConfigError
from components.config.stack_files import REPO_ROOT
from components.fleet.budget import DAY, BudgetItem, Renewal, renewal
from components.fleet.endpoints import FLAG as ALLOW_FLAG, allowed_endpoint_argument
from components.fleet.endpoints import EndpointPolicy
from components.fleet.listing import DEFAULT_MAX_RETRY_WAIT, FleetListingClient
from components.fleet.model import SiteDeclaration
from components.fleet.report import budget_document, budget_text, human_duration
from components.fleet.stacks import read_declaration
from components.fleet.verdicts import SiteStatus, site_status

PROG = "python -m components depart"
EXIT_READY, EXIT_EXPIRES, EXIT_USAGE, EXIT_UNREADABLE = 0, 1, 2, 3
MAX_DAYS = 3650


class Unreadable(Exception):
    """The site's state could not be read from ARM (exit 3)."""


@dataclass(frozen=True)
class Departure:
    """The answer for one site and N days."""

    site: SiteStatus
    declaration: SiteDeclaration
    days: int
    now: datetime
    breaking: tuple[tuple[BudgetItem, Renewal], ...]
    not_counted: tuple[BudgetItem, ...]

    @property
    def ready(self) -> bool:
        return not self.breaking


def departure(declaration: SiteDeclaration, site: SiteStatus, days: int, now: datetime) -> Departure:
    """What would break within ``days`` days of ``now``, each with its renewal."""
    assert site.budget is not None
    breaking = tuple((item, renewal(item, declaration, days, now, site.budget.last_sync))
                     for item in site.budget.breaking_within(timedelta(days=days)))
    not_counted = tuple(item for item in site.budget.items if item.deadline is None)
    return Departure(site, declaration, days, now, breaking, not_counted)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")


def _relative(moment: datetime, now: datetime) -> str:
    left = moment - now
    return f"in {human_duration(left)}" if left > timedelta(0) else f"{human_duration(left)} ago"


def render_text(result: Departure, out: IO[str]) -> None:
    """The answer for people."""
    site, now, days = result.site, result.now, result.days
    observed = site.observed
    state = observed.connection_state or "unknown"
    last = f"last sync {human_duration(site.age)} ago" if site.age is not None else "never synced"
    out.write(f"{site.stack}: {days} day(s) offline, from {_stamp(now)} to {_stamp(now + timedelta(days=days))}\n")
    out.write(f"  now: {state}, {observed.activation or 'activation unknown'}, {last}; "
              f"offline budget {budget_text(site.budget)}\n")
    if result.ready:
        out.write(f"READY: {site.stack} can stay offline {days} day(s): nothing breaks before "
                  f"{_stamp(now + timedelta(days=days))}.\n")
    else:
        out.write(f"NOT READY: {len(result.breaking)} item(s) break within {days} day(s); renew each before "
                  "departure:\n")
        online = (state.lower() in ("online", "syncing"))
        for item, renew in result.breaking:
            assert item.deadline is not None
            out.write(f"- {item.label} ({item.subject}): the site must be back online by {_stamp(item.deadline)} "
                      f"({_relative(item.deadline, now)})\n")
            out.write(f"    why: {item.basis}\n")
            out.write(f"    renew: {renew.command}\n")
            out.write(f"    needs the site online: {'yes' if renew.needs_site_online else 'no'}: {renew.why}\n")
            if renew.needs_site_online and not online:
                out.write(f"    the site is {state} now: this renewal waits until it is back online\n")
            if renew.covers is not None and timedelta(days=days) > renew.covers and renew.beyond:
                out.write(f"    first: {renew.beyond}\n")
    for item in result.not_counted:
        out.write(f"not counted: {item.label} ({item.subject}): {item.basis}\n")


def render_json(result: Departure) -> str:
    """``--json``: the answer, the site's whole budget, and each breaking item's renewal."""
    site = result.site
    document: dict[str, Any] = {
        "stack": site.stack,
        "connectedRegistry": site.connected_registry,
        "days": result.days,
        "departure": _iso(result.now),
        "returnBy": _iso(result.now + timedelta(days=result.days)),
        "ready": result.ready,
        "connectionState": site.observed.connection_state,
        "activation": site.observed.activation,
        "lastSync": _iso(site.observed.last_sync),
        "offlineBudget": budget_document(site.budget),
        "breaking": [
            {
                "item": item.item.value, "label": item.label, "subject": item.subject,
                "deadline": _iso(item.deadline), "expires": _iso(item.expires), "basis": item.basis,
                "renewal": {
                    "command": renew.command, "needsSiteOnline": renew.needs_site_online, "why": renew.why,
                    "coversDays": renew.covers / DAY if renew.covers is not None else None,
                    "beyond": renew.beyond if renew.covers is not None and timedelta(days=result.days) > renew.covers
                    else None,
                },
            }
            for item, renew in result.breaking
        ],
        "notCounted": [{"item": i.item.value, "label": i.label, "basis": i.basis} for i in result.not_counted],
    }
    return json.dumps(document, indent=2) + "\n"


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z") if moment else None


def parser() -> argparse.ArgumentParser:
    """The command line."""
    top = CommandParser(
        prog=PROG, description=__doc__.split("\n\n")[0],
        epilog="examples:\n  python -m components depart ship07 --days 30\n"
               "  python -m components depart ship02 --days 40 --demo --json\n\n"
               "exit codes: 0 ready for N days; 1 something breaks within N days; 2 usage error; "
               "3 the site's state could not be read",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    top.add_argument("stack", metavar="STACK", help="the site's stack (Pulumi.<STACK>.yaml)")
    top.add_argument("--days", type=whole_number(minimum=1, maximum=MAX_DAYS), required=True, metavar="N",
                     help="how many days the site will be offline, from now")
    top.add_argument("--json", action="store_true", help="print the answer as JSON")
    top.add_argument("--demo", action="store_true",
                     help="a site of the demo fleet (the example stack and its variants) against a built-in fake ARM")
    top.add_argument("--project-dir", type=Path, default=REPO_ROOT,
                     help="directory with Pulumi.yaml and the stack files (default: this repository)")
    top.add_argument("--max-retry-wait", type=number(minimum=0), default=DEFAULT_MAX_RETRY_WAIT, metavar="SECONDS",
                     help=f"longest wait for one Retry-After of a throttled request (default {DEFAULT_MAX_RETRY_WAIT:g})")
    top.add_argument(ALLOW_FLAG, dest="allow_arm_endpoint", type=allowed_endpoint_argument, action="append", default=[],
                     metavar="HOST[:PORT]", help=f"also send {ARM_TOKEN_ENV} to this ARM endpoint (as fleet status)")
    return top


def read_site(args: argparse.Namespace, project_dir: Path, now: datetime) -> tuple[SiteDeclaration, SiteStatus]:
    """The stack's declaration and its status from ARM. :raises ConfigError, Unreadable:"""
    declaration = read_declaration(project_dir, args.stack, os.environ)
    credential = None
    if args.demo:
        from components.fleet import demo

        client = demo.listing_client([declaration], now, max_retry_wait=args.max_retry_wait)
    else:
        guard = EndpointPolicy(frozenset(args.allow_arm_endpoint)) if os.environ.get(ARM_TOKEN_ENV, "").strip() else None
        credential = credential_from_environment(os.environ)
        client = FleetListingClient(credential, max_retry_wait=args.max_retry_wait, endpoint_policy=guard)
    with client:
        listing = client.list_registry(declaration.registry)
    if (missing := missing_credentials(credential)) is not None:
        raise Unreadable(missing)  # no credential at all: one line saying what to provide
    if listing.error is not None:
        raise Unreadable(f"registry {declaration.registry.label} could not be read: {listing.error}")
    wanted = declaration.connected_registry.lower()
    observed = next((cr for cr in listing.connected_registries if cr.name.lower() == wanted), None)
    if observed is None:
        raise Unreadable(f"connected registry {declaration.connected_registry} is not in {declaration.registry.label}: "
                         "the stack is not deployed yet")
    return declaration, site_status(declaration, observed, listing.tokens, datetime.now(UTC))


def run(args: argparse.Namespace, project_dir: Path, stdout: IO[str], stderr: IO[str]) -> int:
    """Read, judge, print; returns the exit code."""
    stacks = stack_files.known_stacks(project_dir)
    if args.stack not in stacks:
        stderr.write(f"depart: no Pulumi.{args.stack}.yaml in {project_dir} (stacks: {', '.join(stacks) or 'none'})\n")
        return EXIT_USAGE
    if not args.demo and args.stack in example_stacks(project_dir):
        stderr.write(f"depart: {args.stack} is an example stack, not a site; try it with --demo "
                     f"({PROG} {args.stack} --days {args.days} --demo)\n")
        return EXIT_USAGE
    try:
        declaration, site = read_site(args, project_dir, datetime.now(UTC))
    except ConfigError as error:
        for problem in error.problems:
            stderr.write(f"depart: Pulumi.{args.stack}.yaml: {problem.removeprefix(f'Pulumi.{args.stack}.yaml: ')}\n")
        return EXIT_USAGE
    except Unreadable as error:
        stderr.write(f"depart: {args.stack}: {error}\n")
        return EXIT_UNREADABLE
    result = departure(declaration, site, args.days, site.budget.now if site.budget else datetime.now(UTC))
    if args.json:
        stdout.write(render_json(result))
    else:
        render_text(result, stdout)
    return EXIT_READY if result.ready else EXIT_EXPIRES


def main(argv: list[str] | None = None, stdout: IO[str] | None = None, stderr: IO[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    out, err = stdout or sys.stdout, stderr or sys.stderr
    args = parser().parse_args(argv)
    if not args.demo:
        if not (args.project_dir / "Pulumi.yaml").is_file():
            err.write(f"depart: {args.project_dir}: no Pulumi.yaml (use --project-dir)\n")
            return EXIT_USAGE
        return run(args, args.project_dir, out, err)
    from components.fleet.demo import BANNER, SCENARIOS, demo_project, source_problem

    if args.stack not in SCENARIOS:
        err.write(f"depart: --demo: {args.stack!r} is not a demo site; the demo sites are {', '.join(SCENARIOS)}\n")
        return EXIT_USAGE
    if (problem := source_problem(args.project_dir)) is not None:
        err.write(f"depart: --demo: {problem}\n")
        return EXIT_USAGE
    (err if args.json else out).write(f"{BANNER}\n")
    with demo_project(args.project_dir) as project:
        return run(args, project, out, err)


if __name__ == "__main__":
    sys.exit(main())
