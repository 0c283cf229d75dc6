"""The fleet status HTML page in a real headless Chromium (Debian's ``chromium``).

Chromium loads the page from a file, runs its script and prints the resulting DOM
(``--dump-dom``); every ``console.*`` message and uncaught error is logged to stderr as an
``INFO:CONSOLE`` line (``--enable-logging=stderr``). The page logs nothing itself, and its
Content-Security-Policy (``default-src 'none'``) turns any attempt to load something from the
network into a console error, so "no console line" means no script error and no fetch.
``--no-sandbox``: the sandbox needs user namespaces that containers and root do not give.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest

from components.fleet.model import (
    ObservedConnectedRegistry,
    RegistryListing,
    RegistryRef,
    SiteDeclaration,
    StatusDetail,
    TokenPasswords,
)
from components.fleet.report import render_html
from components.fleet.verdicts import fleet_report
from components.azure.rotation import SlotStatus

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
REF = RegistryRef("https://management.azure.com", "sub", "rg-edge", "contosoedge")
BROKEN = RegistryRef("https://management.azure.com", "sub", "rg-edge", "brokenedge")
HOSTILE = "HTTP 403 Forbidden: </script><script>console.error('injected')</script><!--"
DISK_FULL = "Disk <b>full</b>: storageRequest exceeded"
SYNC_TOKEN = "/subscriptions/sub/resourceGroups/rg-edge/providers/Microsoft.ContainerRegistry/registries/contosoedge/tokens/ship01-sync-token"


def chromium() -> str:
    # Debian's package is `chromium`; Ubuntu images (GitHub runners) ship Google Chrome instead.
    found = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    if found is None:
        if os.environ.get("EDGE_REGISTRY_REQUIRE_SERVERS"):
            pytest.fail("chromium is not installed (.ci/run installs it); EDGE_REGISTRY_REQUIRE_SERVERS is set")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return found


def load(page: Path, tmp_path: Path) -> tuple[str, list[str]]:
    """The DOM after the page's script ran, and the console lines Chromium logged."""
    profile = tmp_path / "chromium-profile"
    result = subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
         "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
         "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120,
        # A non-root user's HOME may not be writable; Chromium writes its caches there.
        env={**os.environ, "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / ".config"),
             "XDG_CACHE_HOME": str(tmp_path / ".cache")},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout, [line for line in result.stderr.splitlines() if ":CONSOLE" in line]


class Dom(HTMLParser):
    """The elements of a dumped DOM: (tag, attributes, text directly inside)."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str], list[str]]] = []
        self._open: list[int] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}, []))
        if tag not in {"meta", "br", "input", "link", "img"}:
            self._open.append(len(self.elements) - 1)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}, []))

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            if self.elements[self._open.pop()][0] == tag:
                break

    def handle_data(self, data: str) -> None:
        if self._open:
            self.elements[self._open[-1]][2].append(data)

    def find(self, tag: str, **attrs: str) -> list[tuple[str, dict[str, str], list[str]]]:
        return [e for e in self.elements
                if e[0] == tag and all(e[1].get(k.rstrip("_")) == v for k, v in attrs.items())]


def sample_report():  # type: ignore[no-untyped-def]
    def declared(stack: str, registry: RegistryRef = REF) -> SiteDeclaration:
        return SiteDeclaration(stack, registry, stack, "30 * * * *", timedelta(hours=1), timedelta(days=30))

    def seen(name: str, state: str, activation: str, last_sync: datetime | None,
             details: tuple[StatusDetail, ...] = (), tokens: tuple[str, ...] = ()) -> ObservedConnectedRegistry:
        return ObservedConnectedRegistry(name, state, activation, last_sync, last_sync, "30 * * * *",
                                         timedelta(hours=1), "0.9.0", details, tokens)

    # ship01 rotated its sync password 2 days ago and synced since: the old slot is retiring.
    tokens = {SYNC_TOKEN.lower(): TokenPasswords("ship01-sync-token", (
        SlotStatus("password1", NOW - timedelta(days=85), NOW + timedelta(days=5)),
        SlotStatus("password2", NOW - timedelta(days=2), NOW + timedelta(days=88)),
    ))}

    declarations = [declared("ship01"), declared("ship02"), declared("ship04"), declared("ship05"),
                    declared("ship07"), declared("ship08", BROKEN)]
    listings = [
        RegistryListing(REF, (
            seen("ship01", "Online", "Active", NOW - timedelta(minutes=20), tokens=(SYNC_TOKEN,)),
            seen("ship02", "Offline", "Active", NOW - timedelta(minutes=40)),
            seen("ship04", "Offline", "Inactive", None),
            seen("ship05", "Online", "Active", NOW - timedelta(days=2),
                 (StatusDetail("connectedRegistry", "507", DISK_FULL), StatusDetail(None, None, "Sync failed"))),
            seen("oldship99", "Offline", "Active", NOW - timedelta(days=40)),
        ), tokens),
        RegistryListing(BROKEN, error=HOSTILE),
    ]
    return fleet_report(declarations, listings, NOW)


def test_the_page_renders_the_table_and_the_chart_from_one_document_without_console_errors(tmp_path: Path) -> None:
    page = tmp_path / "fleet.html"
    page.write_text(render_html(sample_report()))
    html, console = load(page, tmp_path)
    assert console == []
    dom = Dom(html)
    assert dom.find("body")[0][1].get("data-rendered") == "true"  # the script ran to its end

    # The table: one row per deployed site, verdicts in the last cell.
    rows = [e for e in dom.find("tr") if "data-stack" in e[1]]
    assert [(r[1]["data-stack"], r[1]["class"]) for r in rows] == [
        ("ship01", "ok"), ("ship02", "flagged"), ("ship04", "flagged"), ("ship05", "flagged")]
    verdicts = ["".join(td[2]) for td in dom.find("td", class_="verdict")]
    assert verdicts == ["ok", "offline", "offline, not-activated, stale", "stale"]

    # Under a site's row: its statusDetails (as text: the markup in one stayed text) and its
    # retiring password slots; sites with neither get no extra row.
    details = [e[1]["data-details-for"] for e in dom.find("tr", class_="details")]
    assert details == ["ship01", "ship05"]
    assert ["".join(d[2]) for d in dom.find("div", class_="status-detail")] == [
        f"status connectedRegistry 507: {DISK_FULL}", "status - -: Sync failed"]
    (retiring,) = ["".join(d[2]) for d in dom.find("div", class_="retiring")]
    assert retiring.startswith("ship01-sync-token password1 expires in 5d: retiring")
    assert not dom.find("b")

    # The chart: a group per site with its bar, and the stale threshold for sites that synced.
    groups = [e[1]["data-stack"] for e in dom.find("g", class_="site")]
    assert groups == ["ship01", "ship02", "ship04", "ship05"]
    bars = [e[1] for e in dom.elements if e[0] == "rect" and e[1].get("class", "").startswith("bar")]
    assert [b["class"] for b in bars] == ["bar", "bar", "bar stale", "bar stale"]
    widths = [float(b["width"]) for b in bars]
    assert widths[0] < widths[1] < widths[3]  # 20 min < 40 min < 2 days, on the same axis
    assert len(dom.find("line", class_="threshold")) == 3  # ship04 never synced: no threshold
    ticks = {"".join(t[2]) for t in dom.find("text", **{"text-anchor": "middle"})}
    assert {"1h", "1d"} <= ticks

    # The rest, as text: the hostile error message stayed text, it did not become a script.
    items = {e[1]["id"]: ["".join(li[2]) for li in dom.elements if li[0] == "li"] for e in dom.find("ul") if "id" in e[1]}
    assert set(items) == {"orphans", "undeployed", "unreadable"}
    assert any(HOSTILE in text for text in items["unreadable"])
    assert len(dom.find("script")) == 2  # the data and the page's own script


def test_the_console_check_catches_a_script_error(tmp_path: Path) -> None:
    """The check above could fail: a page whose script throws is caught."""
    broken = render_html(sample_report()).replace('document.body.dataset.rendered = "true";',
                                                  'document.body.dataset.rendered = undefinedVariable;')
    page = tmp_path / "broken.html"
    page.write_text(broken)
    html, console = load(page, tmp_path)
    assert any(re.search(r"ReferenceError: undefinedVariable", line) for line in console), console
    assert 'data-rendered="true"' not in html


def test_the_page_loads_nothing_from_the_network(tmp_path: Path) -> None:
    """The policy blocks any fetch (here to a closed loopback port), and says so on the console:
    that is what a clean console proves."""
    fetching = render_html(sample_report()).replace("</body>", '<img src="http://127.0.0.1:9/x.png"></body>')
    page = tmp_path / "fetching.html"
    page.write_text(fetching)
    _html, console = load(page, tmp_path)
    assert any("Content Security Policy" in line for line in console), console
