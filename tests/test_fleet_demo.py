"""`fleet status --demo`: the example fleet against the built-in fake ARM, as a newcomer runs it:
no Azure credentials, no network, the same table, JSON and page as a real fleet, marked as a demo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import yaml

from components.fleet.demo import BANNER, SCENARIOS, arm_lists, demo_project
from components.fleet.demo_arm import DEMO_TOKEN, DemoArmAdapter, demo_session
from components.fleet.stacks import read_declarations
from tests import netns
from tests.arm_server import FAKE_BEARER, ArmServer
from tests.fixture_stacks import example_stack
from tests.test_fleet import fleet_arm_state, make_project
from tests.test_fleet_page import Dom, load

ROOT = Path(__file__).resolve().parent.parent


def status(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    example_stack()  # the demo is made from the example while it is one; skips otherwise
    return subprocess.run([sys.executable, "-m", "components", "fleet", "status", "--no-progress", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, env=env)


def bare_env(tmp_path: Path) -> dict[str, str]:
    """A newcomer's shell: no Azure variables, no bearer token, an empty home (no `az login`)."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "LANG": "C.UTF-8"}


def test_the_demo_prints_the_fleet_table_under_a_demo_banner_without_credentials(tmp_path: Path) -> None:
    result = status("--demo", env=bare_env(tmp_path))
    assert result.returncode == 1, result.stderr  # the demo fleet has flagged sites, as a real one would
    lines = result.stdout.splitlines()
    assert lines[0] == BANNER and lines[0].startswith("DEMO: ")
    assert lines[1].startswith("Fleet status at ")
    rows = {line.split("│")[1].strip(): line for line in lines if line.startswith("│ ")}
    assert list(rows) == list(SCENARIOS) == ["dev", "ship02", "ship03", "ship04", "ship05"]
    assert "devship01" in rows["dev"] and "Online" in rows["dev"] and rows["dev"].rstrip(" │").endswith("ok")
    assert "offline, stale" in rows["ship03"] and "password-expiring" in rows["ship04"]
    assert "5 site(s), 3 flagged; 0 orphan(s); 0 undeployed; 0 registry(ies) unreadable" in result.stdout
    assert "Traceback" not in result.stderr and "credential" not in result.stderr.lower()


def test_the_demo_reads_the_example_stack_itself() -> None:
    """The demo fleet is Pulumi.dev.yaml as it stands, and variants of it: no second copy of the example."""
    example_file = example_stack()
    example = yaml.safe_load(example_file.read_text())["config"]
    with demo_project() as project:
        assert (project / "Pulumi.dev.yaml").read_text() == example_file.read_text()
        declarations, invalid = read_declarations(project, {})
        assert invalid == []
        hosts = {d.stack: {n.host for n in d.nodes} for d in declarations}
        ship02 = yaml.safe_load((project / "Pulumi.ship02.yaml").read_text())["config"]
    assert not project.exists()  # removed afterwards
    by_stack = {d.stack: d for d in declarations}
    assert by_stack["dev"].connected_registry == example["edge-registry:connectedRegistryName"]
    assert by_stack["dev"].registry.name == example["edge-registry:registryName"]
    # A variant: the example's keys, its own names and node addresses, a few keys changed.
    assert ship02["edge-registry:repositories"] == example["edge-registry:repositories"]
    assert ship02["edge-registry:messageTtl"] == "P45D" and by_stack["ship02"].connected_registry == "ship02"
    assert all(not (hosts[a] & hosts[b]) for a in hosts for b in hosts if a < b)


def test_the_demo_json_has_the_shape_of_a_real_fleets(tmp_path: Path) -> None:
    demo = status("--demo", "--json", env=bare_env(tmp_path))
    assert demo.stderr.startswith(f"fleet: {BANNER}")  # the banner goes to stderr: stdout stays JSON
    document = json.loads(demo.stdout)
    assert document["demo"] == BANNER
    with ArmServer(tmp_path) as arm:
        fleet_arm_state(arm, datetime.now(UTC))
        env = {k: v for k, v in os.environ.items() if k not in ("ARM_SUBSCRIPTION_ID", "AZURE_SUBSCRIPTION_ID")}
        env.update({"EDGE_REGISTRY_ARM_TOKEN": FAKE_BEARER, "REQUESTS_CA_BUNDLE": arm.ca_pem, "NO_PROXY": "127.0.0.1"})
        real = json.loads(status("--project-dir", str(make_project(tmp_path, arm)), "--json", env=env).stdout)
    assert set(document) - {"demo"} == set(real) and "demo" not in real
    assert set(document["summary"]) == set(real["summary"])
    for site in document["sites"]:
        assert set(site) == set(real["sites"][0]), site["stack"]
        assert set(site["offlineBudget"]) == set(real["sites"][0]["offlineBudget"])


def test_the_demo_page_shows_the_banner_and_each_sites_budget(tmp_path: Path) -> None:
    page = tmp_path / "fleet.html"
    result = status("--demo", "--html", str(page), env=bare_env(tmp_path))
    assert result.returncode == 1 and page.is_file()
    html, console = load(page, tmp_path)
    assert console == []
    dom = Dom(html)
    (banner,) = dom.find("p", id="demo")
    assert "hidden" not in banner[1] and "".join(banner[2]) == BANNER
    budgets = ["".join(td[2]) for td in dom.find("td", class_="budget")]
    assert budgets == ["1d (messageTtl)", "44d (messageTtl)", "23d (messageTtl)", "0d (sync password)",
                       "0d (never synced)"]
    headers = ["".join(th[2]) for th in dom.find("th")]
    assert headers.index("offline budget") == headers.index("nearest password expiry") + 1


def test_a_real_fleets_page_has_no_banner(tmp_path: Path) -> None:
    with ArmServer(tmp_path) as arm:
        fleet_arm_state(arm, datetime.now(UTC))
        env = {**os.environ, "EDGE_REGISTRY_ARM_TOKEN": FAKE_BEARER, "REQUESTS_CA_BUNDLE": arm.ca_pem,
               "NO_PROXY": "127.0.0.1"}
        page = tmp_path / "real.html"
        status("--project-dir", str(make_project(tmp_path, arm, ["ship01"])), "--html", str(page), env=env)
    html, console = load(page, tmp_path)
    assert console == []
    (banner,) = Dom(html).find("p", id="demo")
    assert "hidden" in banner[1]


def test_the_demo_runs_where_there_is_no_network_at_all(tmp_path: Path) -> None:
    """In a network namespace with only loopback, as root with an empty environment: the fake ARM
    is in-process, so nothing needs a route, DNS or a credential."""
    example_stack()
    netns.require()
    with netns.loopback_namespace("127.0.0.2") as namespace:
        result = namespace.run([sys.executable, "-m", "components", "fleet", "status", "--demo", "--json",
                                "--no-progress", "--project-dir", str(ROOT)],
                               env={"PYTHONPATH": str(ROOT), "HOME": str(tmp_path)})
        namespace.give_back(tmp_path)
    assert result.returncode == 1, result.stderr
    assert [s["stack"] for s in json.loads(result.stdout)["sites"]] == list(SCENARIOS)


def test_the_fake_arm_pages_like_arm_and_refuses_anything_else() -> None:
    now = datetime.now(UTC)
    with demo_project() as project:
        declarations, _ = read_declarations(project, {})
    lists = arm_lists(declarations, now)
    (registry_id,) = lists
    adapter = DemoArmAdapter(lists, page_size=2)
    session = demo_session(adapter)
    auth = {"Authorization": f"Bearer {DEMO_TOKEN}"}
    url = f"https://management.azure.com{registry_id}/connectedRegistries?api-version=2025-11-01"
    names = []
    while url:
        page = session.get(url, headers=auth).json()
        names += [item["name"] for item in page["value"]]
        url = page.get("nextLink")
    assert names == [d.connected_registry for d in declarations]
    assert len(adapter.requests) == 3  # five items, two a page
    assert session.get(f"https://management.azure.com{registry_id}/tokens", headers={}).status_code == 404
    missing = session.get("https://example.org/anything", headers=auth)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "NotFound"
    # Every URL, http or https, goes to the adapter: nothing reaches the network.
    assert session.get_adapter("http://192.0.2.1/") is adapter is session.get_adapter("https://management.azure.com/")


def test_the_demo_refuses_a_project_whose_example_became_a_real_site(tmp_path: Path) -> None:
    """Once Pulumi.dev.yaml is a site (not listed in .github/example-stacks.txt), ``--demo`` would
    show a real site's settings as a made-up fleet: both commands refuse, naming the list."""
    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    (tmp_path / "Pulumi.dev.yaml").write_text(example_stack().read_text())
    for command in (["fleet", "status", "--demo"], ["depart", "dev", "--days", "1", "--demo"]):
        result = subprocess.run([sys.executable, "-m", "components", *command, "--project-dir", str(tmp_path)],
                                cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert "is a real site now, not the example (.github/example-stacks.txt does not list it)" in result.stderr
        assert "Traceback" not in result.stderr and result.stdout == ""
