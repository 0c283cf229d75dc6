"""The fleet status report, three ways: a terminal table, JSON, and one self-contained HTML page.

All three are views of one document, :func:`report_document` (the ``--json`` output). The HTML
page embeds that same document once, and its script builds both the table and the chart (time
since last sync per site, log scale, each site's stale threshold drawn) from it, so they cannot
disagree. The page loads nothing from the network: CSS, script and SVG are inline.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

import isodate
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from components.fleet.budget import OfflineBudget
from components.fleet.verdicts import FleetReport, PasswordExpiry, SiteStatus

PAGE_TEMPLATE = Path(__file__).with_name("page.html")
_DATA_MARKER = "/*FLEET_DATA*/null"


def _iso(moment: datetime | None) -> str | None:
    return moment.replace(microsecond=0).isoformat().replace("+00:00", "Z") if moment else None


def _duration(value: timedelta | None) -> str | None:
    return isodate.duration_isoformat(value) if value is not None else None


def human_duration(value: timedelta) -> str:
    """``3d 4h``, ``5h 12m``, ``12m``: two units at most, for people."""
    seconds = int(abs(value.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    return f"{minutes}m"


def _password(password: PasswordExpiry, now: datetime) -> dict[str, Any]:
    return {"token": password.token, "slot": password.slot, "expiry": _iso(password.expiry),
            "secondsToExpiry": (password.expiry - now).total_seconds()}


def _site(site: SiteStatus, now: datetime) -> dict[str, Any]:
    observed = site.observed
    password = site.password
    return {
        "stack": site.stack,
        "registry": site.registry.label,
        "connectedRegistry": site.connected_registry,
        "connectionState": observed.connection_state,
        "activation": observed.activation,
        "lastSync": _iso(observed.last_sync),
        "lastActivity": _iso(observed.last_activity),
        "secondsSinceLastSync": site.age.total_seconds() if site.age is not None else None,
        "windowsSinceLastSync": site.windows_missed,
        "staleAfterSeconds": site.stale_after.total_seconds() if site.stale_after is not None else None,
        "schedule": site.schedule,
        "syncWindow": _duration(site.sync_window),
        "version": observed.version,
        # The expiry that counts: the newest slot's, or an old slot's the site still relies on.
        "nearestPasswordExpiry": _iso(password.expiry) if password else None,
        "secondsToPasswordExpiry": (password.expiry - now).total_seconds() if password else None,
        "passwordToken": password.token if password else None,
        "passwordSlot": password.slot if password else None,
        "passwordAwaitingSync": password.awaiting_sync if password else False,
        "rotationStuck": site.rotation_stuck,
        # Old slots the site has synced past: kept a while by the rotation, never a verdict.
        "retiringPasswords": [_password(r, now) for r in site.retiring_passwords],
        "rotateBeforeDays": site.rotate_before.days,
        "statusDetails": [
            {"type": d.type, "code": d.code, "description": d.description} for d in observed.status_details
        ],
        "verdicts": [v.value for v in site.verdicts],
        "flagged": site.flagged,
        "offlineBudget": budget_document(site.budget),
        "garbageCollection": _garbage_collection(site),
    }


def _garbage_collection(site: SiteStatus) -> dict[str, Any] | None:
    """The connected registry's garbage collection as ARM reports it; None when ARM says nothing."""
    observed = site.observed
    if observed.garbage_collection_enabled is None and observed.garbage_collection_schedule is None:
        return None
    return {"enabled": observed.garbage_collection_enabled, "schedule": observed.garbage_collection_schedule}


def garbage_collection_text(site: SiteStatus) -> str:
    """``on, 0 5 * * *``, ``off`` or ``-`` (ARM reports none): the table's cell."""
    gc = _garbage_collection(site)
    if gc is None:
        return "-"
    if gc["enabled"] is False:
        return "off"
    return f"on, {gc['schedule']}" if gc["schedule"] else "on"


def _drift(report: FleetReport, stack: str) -> dict[str, Any] | None:
    """The stack's last drift check (components/fleet/drift.py), with its age; None when not asked
    or none was recorded."""
    record = (report.drift or {}).get(stack)
    if record is None:
        return None
    return {**record.document(), "secondsSinceCheck": (report.generated_at - record.checked_at).total_seconds()}


def drift_text(report: FleetReport, stack: str) -> str:
    """``none, 5h ago``, ``drift: 1 update, 2d ago``, ``no record`` (asked, none found) or ``-``."""
    if report.drift is None:
        return "-"
    record = report.drift.get(stack)
    if record is None:
        return "no record"
    return f"{record.summary()[:80]}, {human_duration(report.generated_at - record.checked_at)} ago"


def budget_document(budget: OfflineBudget | None) -> dict[str, Any] | None:
    """The offline budget: whole days, seconds, the limiting item and every item with its deadline."""
    if budget is None:
        return None
    limiting = budget.limiting
    left = budget.left
    return {
        "days": budget.days,
        "seconds": left.total_seconds() if left is not None else None,
        "limitingItem": limiting.item.value if limiting else None,
        "limitingLabel": limiting.label if limiting else None,
        "limitingSubject": limiting.subject if limiting else None,
        "items": [
            {
                "item": i.item.value,
                "label": i.label,
                "subject": i.subject,
                "deadline": _iso(i.deadline),
                "secondsToDeadline": (i.deadline - budget.now).total_seconds() if i.deadline else None,
                "expires": _iso(i.expires),
                "secondsToExpiry": (i.expires - budget.now).total_seconds() if i.expires else None,
                "basis": i.basis,
            }
            for i in budget.items
        ],
    }


def budget_text(budget: OfflineBudget | None) -> str:
    """``12d (client password)``: the table's and the page's cell."""
    if budget is None or budget.days is None or budget.limiting is None:
        return "-"
    return f"{budget.days}d ({budget.limiting.label})"


def report_document(report: FleetReport) -> dict[str, Any]:
    """The report as plain JSON-able data: the ``--json`` output and the HTML page's data."""
    now = report.generated_at
    return {
        **({"demo": report.demo} if report.demo else {}),
        "generatedAt": _iso(now),
        "staleAfterWindows": report.stale_windows,
        "flagged": report.flagged,
        "summary": {
            "sites": len(report.sites),
            "flaggedSites": sum(1 for s in report.sites if s.flagged),
            "orphans": len(report.orphans),
            "undeployedStacks": len(report.undeployed),
            "unreadableRegistries": len(report.unreadable),
            "invalidStacks": len(report.invalid_stacks),
        },
        "sites": [{**_site(s, now), "drift": _drift(report, s.stack)} for s in report.sites],
        "orphans": [
            {
                "registry": o.registry.label,
                "connectedRegistry": o.observed.name,
                "connectionState": o.observed.connection_state,
                "activation": o.observed.activation,
                "lastSync": _iso(o.observed.last_sync),
                "version": o.observed.version,
            }
            for o in report.orphans
        ],
        "undeployedStacks": [
            {"stack": d.stack, "registry": d.registry.label, "connectedRegistry": d.connected_registry}
            for d in report.undeployed
        ],
        "unreadableRegistries": [
            {"registry": u.registry.label, "armEndpoint": u.registry.arm_endpoint, "error": u.error,
             "stacks": list(u.stacks)}
            for u in report.unreadable
        ],
        "invalidStacks": [{"stack": i.stack, "problems": list(i.problems)} for i in report.invalid_stacks],
    }


def render_json(report: FleetReport) -> str:
    """``--json``: :func:`report_document`, indented."""
    return json.dumps(report_document(report), indent=2) + "\n"


def render_html(report: FleetReport) -> str:
    """One self-contained page: the template with the report document embedded once."""
    data = json.dumps(report_document(report), separators=(",", ":"))
    # Inside <script>, "</script>" or "<!--" in a name would end or confuse the element: escape
    # the characters that can start them (still valid JSON and JavaScript).
    data = data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    template = PAGE_TEMPLATE.read_text()
    if _DATA_MARKER not in template:
        raise RuntimeError(f"{PAGE_TEMPLATE.name} lost its data marker {_DATA_MARKER!r}")
    return template.replace(_DATA_MARKER, data)


# --- terminal table ----------------------------------------------------------------------------

def _age(site: SiteStatus) -> str:
    if site.age is None:
        return "never"
    # ARM's clock or this machine's is off: "9m ago" would hide that.
    return f"{human_duration(site.age)} in the future" if site.age < timedelta(0) else f"{human_duration(site.age)} ago"


def _windows(site: SiteStatus) -> str:
    return str(site.windows_missed) if site.windows_missed is not None else "-"


def _when(moment: datetime, now: datetime) -> str:
    left = moment - now
    return f"in {human_duration(left)}" if left.total_seconds() > 0 else f"{human_duration(left)} ago"


def _expiry(site: SiteStatus, now: datetime) -> str:
    password = site.password
    if password is None:
        return "-"
    note = ""
    if site.rotation_stuck:
        note = ", rotation stuck: awaiting a sync"
    elif password.awaiting_sync:
        note = ", old password until the site syncs"
    return f"{_when(password.expiry, now)} ({password.token} {password.slot}{note})"


def _verdict(site: SiteStatus) -> Text:
    if not site.flagged:
        return Text("ok", style="green")
    return Text(", ".join(v.value for v in site.verdicts), style="bold red")


def render_table(report: FleetReport, out: IO[str], color: bool | None = None) -> None:
    """The terminal table: colored when ``out`` is a TTY (or ``color`` is True), plain otherwise."""
    tty = out.isatty() if color is None else color
    # soft_wrap: long lines (an ARM error message) are left to the terminal, never cut or broken.
    # No markup or emoji codes: ARM's text ("passwords[password1]", ":x:") is printed as it is.
    console = Console(file=out, force_terminal=tty, no_color=not tty, highlight=False, soft_wrap=True,
                      markup=False, emoji=False)
    now = report.generated_at
    table = Table()
    for column in ("stack", "connected registry", "registry", "state", "activation", "last sync",
                   "windows missed", "version", "nearest password expiry", "offline budget", "garbage collection", "last drift check", "verdict"):
        table.add_column(column, no_wrap=True)
    for site in report.sites:
        table.add_row(
            site.stack, site.connected_registry, site.registry.label, site.observed.connection_state or "-",
            site.observed.activation or "-", _age(site), _windows(site),
            site.observed.version or "-", _expiry(site, now), budget_text(site.budget), garbage_collection_text(site),
            drift_text(report, site.stack), _verdict(site),
        )
    # A narrow terminal wraps long lines rather than rich truncating the cells: data is never cut.
    console.width = max(console.width, Measurement.get(console, console.options.update_width(10_000), table).maximum)
    if report.demo:
        console.print(Text(report.demo, style="bold yellow"))
    console.print(f"Fleet status at {_iso(now)}: stale after {report.stale_windows} missed sync windows")
    console.print(table)
    for site in report.sites:
        for detail in site.observed.status_details:
            console.print(f"{site.stack}: status {detail.type or '-'} {detail.code or '-'}: {detail.description or ''}")
        for old in site.retiring_passwords:
            console.print(f"{site.stack}: {old.token} {old.slot} expires {_when(old.expiry, now)}: retiring "
                          "(old password; the site has synced the newer one)")
    if report.orphans:
        console.print(Text("Orphans (in Azure, declared by no stack file):", style="yellow"))
        for orphan in report.orphans:
            last = _iso(orphan.observed.last_sync) or "never synced"
            console.print(f"  {orphan.registry.label}/{orphan.observed.name}: {orphan.observed.connection_state or '-'}, "
                          f"{orphan.observed.activation or '-'}, last sync {last}")
    if report.undeployed:
        console.print(Text("Undeployed stacks (no connected registry in Azure yet):", style="yellow"))
        for declaration in report.undeployed:
            console.print(f"  {declaration.stack}: {declaration.registry.label}/{declaration.connected_registry}")
    if report.unreadable:
        console.print(Text("Unreadable registries (their sites are unknown):", style="bold red"))
        for unreadable in report.unreadable:
            console.print(f"  {unreadable.registry.label} ({', '.join(unreadable.stacks)}): {unreadable.error}")
    if report.invalid_stacks:
        console.print(Text("Invalid stack files:", style="bold red"))
        for invalid in report.invalid_stacks:
            for problem in invalid.problems:
                console.print(f"  Pulumi.{invalid.stack}.yaml: {problem}")
    summary = report_document(report)["summary"]
    console.print(
        f"{summary['sites']} site(s), {summary['flaggedSites']} flagged; {summary['orphans']} orphan(s); "
        f"{summary['undeployedStacks']} undeployed; {summary['unreadableRegistries']} registry(ies) unreadable; "
        f"{summary['invalidStacks']} invalid stack file(s)",
        style="bold red" if report.flagged else "green",
    )
