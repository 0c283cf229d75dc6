"""Fleet status: which sites are offline, stale, unactivated or about to lose a password.

    python -m components fleet status [--project-dir DIR] [--stale-after N] [--json] [--html FILE]
                                      [--format table|json|prometheus] [--demo]
                                      [--allow-arm-endpoint HOST[:PORT] ...]

Reads every ``Pulumi.<site>.yaml`` of the project, groups the sites by parent registry, reads
each registry's connected registries and tokens with one paged ARM list each
(``components.fleet.listing``), judges every site (``components.fleet.verdicts``) and prints the
report (``components.fleet.report``): a table (colored on a TTY) or ``--json``, and with
``--html FILE`` a self-contained page, or with ``--format prometheus`` the fleet's gauges
(``components.fleet.prometheus``). Each site's offline budget is part of every view
(``components.fleet.budget``). ``--demo`` runs the example fleet against a built-in fake ARM
(``components.fleet.demo``): no credentials, nothing contacted. Progress goes to stderr.

Credentials: ``EDGE_REGISTRY_ARM_TOKEN`` (a bearer token) when set, else
``DefaultAzureCredential``. ARM endpoint: each stack's ``armEndpoint``; the bearer token goes
only to Azure's ARM endpoints and loopback, and to hosts named with ``--allow-arm-endpoint``
(``components.fleet.endpoints``): a registry elsewhere is reported unreadable, never asked.
To trust a private CA (a TLS-inspecting proxy, the tests' local ARM) set ``REQUESTS_CA_BUNDLE``.

Exit codes: 0 nothing flagged; 1 a site is flagged, a registry could not be read (or was not
asked; with no Azure credentials at all, one line says which were looked for and how to provide
one, and nothing else is listed) or a stack file is invalid (each broken stack is one entry of the report, and the
others are still checked); 2 usage error (no project, no stack files or only examples, bad
option).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from components.command_line import CommandParser, number, whole_number
from components.progress import Progress
from components.azure.credentials import ARM_TOKEN_ENV, credential_from_environment, missing_credentials
from components.fleet.endpoints import FLAG as ALLOW_FLAG, allowed_endpoint_argument
from components.fleet.endpoints import EndpointPolicy
from components.fleet.listing import DEFAULT_MAX_RETRY_WAIT, FleetListingClient
from components.fleet.model import RegistryRef
from components.fleet.report import render_html, render_json, render_table
from components.config.examples import EXAMPLES_FILE
from components.fleet.stacks import example_stack_files, read_declarations
from components.fleet.verdicts import DEFAULT_STALE_WINDOWS, fleet_report
from components.config.stack_files import REPO_ROOT

EXIT_OK, EXIT_FLAGGED, EXIT_USAGE = 0, 1, 2
FORMATS = ("table", "json", "prometheus")


class ListingProgress:
    """Progress on stderr while the registries are listed (components/progress.py): a progress
    bar over the registries on a TTY, one line per registry and page elsewhere (CI logs keep
    every line)."""

    def __init__(self, out: IO[str], enabled: bool = True) -> None:
        self.out = out
        self.enabled = enabled
        self.tty = out.isatty()
        self.total = 0
        self.index = 0
        self._bar: Progress | None = None

    def registry(self, index: int, total: int, registry: RegistryRef) -> None:
        self.index, self.total = index, total
        if self.enabled and self.tty:
            if self._bar is None:
                self._bar = Progress("listing registries", total=total, out=self.out, prefix="fleet", terminal=True)
                self._bar.start()
            elif index > 1:
                self._bar.step()  # the one before is listed
            self._bar.note(registry.label)
            return
        self._show(f"listing registry {index}/{total} {registry.label}")

    def page(self, registry: RegistryRef, what: str, number: int) -> None:
        if self._bar is not None:
            self._bar.note(f"{registry.label}: {what}, page {number}")
            return
        self._show(f"listing registry {self.index}/{self.total} {registry.label}: {what}, page {number}")

    def done(self) -> None:
        if self._bar is not None:
            self._bar.step()
            self._bar.stop()
            self._bar = None

    def _show(self, line: str) -> None:
        if self.enabled:
            self.out.write(f"fleet: {line}\n")
            self.out.flush()


def parser() -> argparse.ArgumentParser:
    """The command line."""
    top = CommandParser(prog="python -m components fleet", description=__doc__.split("\n\n")[0])
    commands = top.add_subparsers(dest="command", metavar="COMMAND", required=True)
    status = commands.add_parser("status", help="report every site's sync, activation and password state")
    status.add_argument("--project-dir", type=Path, default=REPO_ROOT,
                        help="directory with Pulumi.yaml and the Pulumi.<site>.yaml files (default: this repository)")
    status.add_argument("--stale-after", type=whole_number(minimum=1), default=DEFAULT_STALE_WINDOWS, metavar="N",
                        help=f"a site is stale after N scheduled sync windows without a sync (default {DEFAULT_STALE_WINDOWS})")
    status.add_argument("--json", action="store_true", help="print the report as JSON instead of a table "
                        "(the same as --format json)")
    status.add_argument("--format", choices=FORMATS, default=None,
                        help="table (default), json, or prometheus: the fleet's gauges in the Prometheus text format "
                             "(a node exporter's textfile collector, a scrape job)")
    status.add_argument("--demo", action="store_true",
                        help="the example fleet (Pulumi.dev.yaml and four sites derived from it) against a built-in "
                             "fake ARM: no Azure credentials, nothing contacted")
    status.add_argument("--html", type=Path, metavar="FILE", help="also write a self-contained HTML page")
    status.add_argument("--drift", type=Path, metavar="DIR",
                        help="show each stack's last drift check from the records in DIR (the drift workflow's "
                             "`drift` artifact, components/fleet/drift.py)")
    status.add_argument("--no-progress", action="store_true", help="no progress lines on stderr")
    status.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                        help="color the table (default: when stdout is a TTY)")
    status.add_argument("--max-retry-wait", type=number(minimum=0), default=DEFAULT_MAX_RETRY_WAIT, metavar="SECONDS",
                        help=f"longest wait for one Retry-After of a throttled request (default {DEFAULT_MAX_RETRY_WAIT:g})")
    status.add_argument(ALLOW_FLAG, dest="allow_arm_endpoint", type=allowed_endpoint_argument, action="append", default=[],
                        metavar="HOST[:PORT]",
                        help=f"also send {ARM_TOKEN_ENV} to this ARM endpoint (repeatable; by default only Azure's "
                             "ARM endpoints and loopback get it)")
    return top


def status(args: argparse.Namespace, stdout: IO[str], stderr: IO[str]) -> int:
    """``status``: list, judge, print; the exit code says whether anything is flagged."""
    project_dir: Path = args.project_dir
    if not (project_dir / "Pulumi.yaml").is_file():
        stderr.write(f"fleet: {project_dir}: no Pulumi.yaml (use --project-dir)\n")
        return EXIT_USAGE
    with Progress("reading stack files", prefix="fleet", out=stderr, enabled=not args.no_progress):
        declarations, invalid = read_declarations(project_dir)
    if not declarations and not invalid:
        examples = example_stack_files(project_dir)
        if examples:
            # Pulumi.dev.yaml ships as an example: "no stack files" would read as a wrong directory.
            names = ", ".join(f"Pulumi.{stack}.yaml" for stack in examples)
            stderr.write(
                f"fleet: {project_dir}: only example stacks, which are not sites: {names} (listed in "
                f"{EXAMPLES_FILE.as_posix()}); add a site's Pulumi.<site>.yaml, or make an example a site by "
                "deleting its line there\n"
            )
        else:
            stderr.write(f"fleet: {project_dir}: no Pulumi.<site>.yaml stack files\n")
        return EXIT_USAGE
    for stack in invalid:
        for problem in stack.problems:
            stderr.write(f"fleet: Pulumi.{stack.stack}.yaml: {problem}\n")

    registries = sorted({d.registry for d in declarations})
    progress = ListingProgress(stderr, enabled=not args.no_progress)
    listings = []
    if registries:
        # The bearer token is good at ARM wherever it is sent: only to the endpoints allowed.
        guard = EndpointPolicy(frozenset(args.allow_arm_endpoint)) if os.environ.get(ARM_TOKEN_ENV, "").strip() else None
        credential = None
        if args.demo:  # the demo's fake ARM, in-process: no credential, no network (components/fleet/demo.py)
            from components.fleet import demo

            client = demo.listing_client(declarations, datetime.now(UTC), max_retry_wait=args.max_retry_wait)
        else:
            credential = credential_from_environment(os.environ)
            client = FleetListingClient(credential, max_retry_wait=args.max_retry_wait, endpoint_policy=guard)
        with client:
            for index, registry in enumerate(registries, 1):
                progress.registry(index, len(registries), registry)
                listings.append(client.list_registry(registry, progress.page))
                if (missing := missing_credentials(credential)) is not None:
                    # No registry can be read: one line saying what to provide, not a report of unknowns.
                    progress.done()
                    stderr.write(f"fleet: {missing}\n")
                    return EXIT_FLAGGED
        progress.done()

    report = fleet_report(declarations, listings, datetime.now(UTC), args.stale_after, tuple(invalid))
    if args.drift is not None:
        from components.fleet.drift import read_records

        records, unreadable = read_records(args.drift)
        for problem in unreadable:
            stderr.write(f"fleet: drift: {problem}\n")
        report = replace(report, drift=records)
    if args.demo:
        from components.fleet.demo import BANNER, drift_records

        report = replace(report, demo=BANNER,
                         drift=report.drift if args.drift is not None else drift_records(report.generated_at))
    output = args.format or ("json" if args.json else "table")
    if args.demo and output != "table":
        stderr.write(f"fleet: {BANNER}\n")  # stdout stays JSON or Prometheus text
    if args.html:
        args.html.write_text(render_html(report))
    if output == "json":
        stdout.write(render_json(report))
    elif output == "prometheus":
        from components.fleet.prometheus import render_prometheus

        stdout.write(render_prometheus(report))
    else:
        render_table(report, stdout, color={"auto": None, "always": True, "never": False}[args.color])
    return EXIT_FLAGGED if report.flagged else EXIT_OK


def main(argv: list[str] | None = None, stdout: IO[str] | None = None, stderr: IO[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = parser().parse_args(argv)
    if args.json and args.format not in (None, "json"):
        (stderr or sys.stderr).write(f"fleet: --json cannot be combined with --format {args.format}\n")
        return EXIT_USAGE
    if args.demo:
        from components.fleet.demo import demo_project, source_problem

        source: Path = args.project_dir
        if (problem := source_problem(source)) is not None:
            (stderr or sys.stderr).write(f"fleet: --demo: {problem}\n")
            return EXIT_USAGE
        with demo_project(source) as project:
            args.project_dir = project
            return status(args, stdout or sys.stdout, stderr or sys.stderr)
    return status(args, stdout or sys.stdout, stderr or sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
