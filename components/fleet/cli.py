"""Fleet status: which sites are offline, stale, unactivated or about to lose a password.

    python -m components fleet status [--project-dir DIR] [--stale-after N] [--json] [--html FILE]
                                      [--allow-arm-endpoint HOST[:PORT] ...]

Reads every ``Pulumi.<site>.yaml`` of the project, groups the sites by parent registry, reads
each registry's connected registries and tokens with one paged ARM list each
(``components.fleet.listing``), judges every site (``components.fleet.verdicts``) and prints the
report (``components.fleet.report``): a table (colored on a TTY) or ``--json``, and with
``--html FILE`` a self-contained page. Progress goes to stderr.

Credentials: ``EDGE_REGISTRY_ARM_TOKEN`` (a bearer token) when set, else
``DefaultAzureCredential``. ARM endpoint: each stack's ``armEndpoint``; the bearer token goes
only to Azure's ARM endpoints and loopback, and to hosts named with ``--allow-arm-endpoint``
(``components.fleet.endpoints``): a registry elsewhere is reported unreadable, never asked.
To trust a private CA (a TLS-inspecting proxy, the tests' local ARM) set ``REQUESTS_CA_BUNDLE``.

Exit codes: 0 nothing flagged; 1 a site is flagged, a registry could not be read (or was not
asked) or a stack file is invalid (each broken stack is one entry of the report, and the
others are still checked); 2 usage error (no project, no stack files or only examples, bad
option).
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from components.azure.credentials import ARM_TOKEN_ENV, credential_from_environment
from components.fleet.endpoints import FLAG as ALLOW_FLAG
from components.fleet.endpoints import EndpointPolicy, parse_allowed
from components.fleet.listing import DEFAULT_MAX_RETRY_WAIT, FleetListingClient
from components.fleet.model import RegistryRef
from components.fleet.report import render_html, render_json, render_table
from components.config.examples import EXAMPLES_FILE
from components.fleet.stacks import example_stack_files, read_declarations
from components.fleet.verdicts import DEFAULT_STALE_WINDOWS, fleet_report
from components.config.stack_files import REPO_ROOT

EXIT_OK, EXIT_FLAGGED, EXIT_USAGE = 0, 1, 2


class ListingProgress:
    """Progress on stderr while the registries are listed: one rewritten line on a TTY, one line
    per page elsewhere (CI logs keep every line)."""

    def __init__(self, out: IO[str], enabled: bool = True) -> None:
        self.out = out
        self.enabled = enabled
        self.tty = out.isatty()
        self.total = 0
        self.index = 0

    def registry(self, index: int, total: int, registry: RegistryRef) -> None:
        self.index, self.total = index, total
        self._show(f"listing registry {index}/{total} {registry.label}")

    def page(self, registry: RegistryRef, what: str, number: int) -> None:
        self._show(f"listing registry {self.index}/{self.total} {registry.label}: {what}, page {number}")

    def done(self) -> None:
        if self.enabled and self.tty and self.total:
            self.out.write("\r\x1b[K")
            self.out.flush()

    def _show(self, line: str) -> None:
        if not self.enabled:
            return
        if self.tty:
            self.out.write(f"\r\x1b[K{line}")
        else:
            self.out.write(f"fleet: {line}\n")
        self.out.flush()


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _wait(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def _allowed_endpoint(text: str) -> str:
    try:
        return parse_allowed(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def parser() -> argparse.ArgumentParser:
    """The command line."""
    top = argparse.ArgumentParser(prog="python -m components fleet", description=__doc__.split("\n\n")[0])
    commands = top.add_subparsers(dest="command", required=True)
    status = commands.add_parser("status", help="report every site's sync, activation and password state")
    status.add_argument("--project-dir", type=Path, default=REPO_ROOT,
                        help="directory with Pulumi.yaml and the Pulumi.<site>.yaml files (default: this repository)")
    status.add_argument("--stale-after", type=_positive, default=DEFAULT_STALE_WINDOWS, metavar="N",
                        help=f"a site is stale after N scheduled sync windows without a sync (default {DEFAULT_STALE_WINDOWS})")
    status.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    status.add_argument("--html", type=Path, metavar="FILE", help="also write a self-contained HTML page")
    status.add_argument("--no-progress", action="store_true", help="no progress lines on stderr")
    status.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                        help="color the table (default: when stdout is a TTY)")
    status.add_argument("--max-retry-wait", type=_wait, default=DEFAULT_MAX_RETRY_WAIT, metavar="SECONDS",
                        help=f"longest wait for one Retry-After of a throttled request (default {DEFAULT_MAX_RETRY_WAIT:g})")
    status.add_argument(ALLOW_FLAG, dest="allow_arm_endpoint", type=_allowed_endpoint, action="append", default=[],
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
        with FleetListingClient(credential_from_environment(os.environ), max_retry_wait=args.max_retry_wait,
                                endpoint_policy=guard) as client:
            for index, registry in enumerate(registries, 1):
                progress.registry(index, len(registries), registry)
                listings.append(client.list_registry(registry, progress.page))
        progress.done()

    report = fleet_report(declarations, listings, datetime.now(UTC), args.stale_after, tuple(invalid))
    if args.html:
        args.html.write_text(render_html(report))
    if args.json:
        stdout.write(render_json(report))
    else:
        render_table(report, stdout, color={"auto": None, "always": True, "never": False}[args.color])
    return EXIT_FLAGGED if report.flagged else EXIT_OK


def main(argv: list[str] | None = None, stdout: IO[str] | None = None, stderr: IO[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = parser().parse_args(argv)
    return status(args, stdout or sys.stdout, stderr or sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
