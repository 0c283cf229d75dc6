"""The commands of README.md and docs/*.md, run or checked, so that a runbook whose command fails
fails the suite.

Every fenced ``sh`` block is split into commands (:func:`parse`): continuation lines are joined,
comments dropped, here-documents kept with their command, and the commands inside ``$(…)``,
pipelines, ``&&``/``||`` lists and loop bodies taken one by one. Each command falls in exactly
one class (:func:`classify`); a command in none fails :func:`test_every_command_is_classified`,
so a new runbook command cannot slip in unchecked:

* ``run``: the project's own commands (``venv/bin/python -m components …``, ``venv/bin/python -``
  or ``-c``) and ``ssh-keygen`` making a key file. The line holding them runs with ``sh -e -c``
  in a scratch copy of the project (:func:`scratch_project`), in the order of the document, and
  must exit 0 (or as :data:`EXPECTED_EXIT` says) without a traceback.
* ``dry``: our commands the suite cannot run (:data:`DRY`: the benchmark takes minutes). They
  run with ``parse_args`` stopping the program once the flags parsed, so a flag our argparse
  does not accept fails.
* ``checked``: the setup, the test suite and CI's checks (:data:`CHECKED`): running them here
  would build a second venv or run this suite inside itself; every file they name must exist.
* ``pulumi``: every subcommand and flag must be in the Pulumi CLI's command tree,
  ``tests/vendor/pulumi-cli-commands.json`` (derived from ``pulumi … --help`` of the CLI the
  engine tier builds, tests/engine/README.md; :func:`test_vendored_pulumi_commands_match_the_engine_cli`
  compares it with that CLI when it is built, and ``python -m tests.pulumi_cli PULUMI``
  writes it again). ``pulumi up`` itself needs the Python language host, which neither the
  fast suite nor the engine tier has (tests/engine/README.md).
* ``external`` and ``shell``: :data:`EXTERNAL` and :data:`SHELL`, each with the reason it is
  not run (Azure, the cluster, a node's shell as root, the operator's agent).

What the runs see (the mapping, explicit):

* the scratch project: ``components/``, ``policy/``, ``Pulumi.yaml`` and
  ``.github/example-stacks.txt`` copied, ``venv`` linked to this venv; ``Pulumi.dev.yaml`` is
  the example at the root (while it is an example: the suite must not read an adopter's real
  site), with its nodes mapped as below; ``Pulumi.ship07.yaml`` is the site of the new-site
  runbook as its ``pulumi stack init``/``config set`` lines leave it (:func:`ship07_stack`),
  its node's host key pinned unless the document pins it itself with ``host-key`` (which then
  runs on a pseudo-terminal and is answered ``y``);
* node addresses (:data:`NODE_ADDRESSES`): ``192.0.2.10`` and ``192.0.2.70`` are the suite's
  sshd on 127.0.0.1, ``192.0.2.11`` a second sshd on 127.0.0.2 (tests/sshd.py), in the stack
  files (with the sshd's port, user and host key, and a node file under the scratch directory)
  and in the commands;
* ``HOME`` is a scratch home whose ``~/.ssh/edge-registry`` is the sshd's client key; no SSH
  agent;
* ARM is tests/arm_server.py (ship07's ``armEndpoint``), reached with ``EDGE_REGISTRY_ARM_TOKEN``
  and its CA in ``REQUESTS_CA_BUNDLE``; it knows ship07 as online, synced and with fresh passwords;
* ``<name>`` placeholders take the values of :data:`PLACEHOLDERS` and literal stand-ins those of
  :data:`LITERALS`; a placeholder not listed there fails the classification test;
* files a command reads and no earlier command made: :data:`GIVEN_FILES`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixture_stacks import example_stack
from tests.pulumi_cli import check_pulumi, cli_env, cli_help, engine_pulumi, pulumi_tree
from tests.shell_commands import (
    DRY_PARSE, SENTINEL, Command, Statement, parse, placeholders_in, run_on_a_terminal, sh_blocks, unsentinel,
)
from tests.sshd import SshServer, can_run

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

#: ``<name>`` in a command -> the value it runs with.
PLACEHOLDERS = {
    "account": "edgestate", "org": "contoso", "repo": "edge-registry", "site": "ship07", "stack": "ship07",
    "cr": "ship07", "subscription": "00000000-0000-0000-0000-000000000000", "release": "connected-registry",
    "namespace": "connected-registry", "pullSecretName": "edge-registry-pull", "app namespace": "fleet-apps",
    "CLUSTER-IP": "10.43.200.200", "NAME": "ship07", "host": "192.0.2.10", "file": "registries.yaml",
}
#: Literal stand-ins in the docs' commands -> what they run with.
LITERALS = {"path/to/project": "."}
#: Node addresses of the docs -> the suite's sshd servers (index into the ``nodes`` fixture).
NODE_ADDRESSES = {"192.0.2.10": 0, "192.0.2.11": 1, "192.0.2.70": 0}
#: Files the docs' commands read that no earlier command of the same document makes.
GIVEN_FILES = {
    "registries.yaml": "mirrors:\n  docker.io:\n    endpoint:\n      - https://mirror.example:5000\n",
}
#: Exit codes other than 0 that a command may end with, by a regular expression on its text.
EXPECTED_EXIT: dict[str, set[int]] = {
    # The demo fleet has flagged sites (offline, stale, a password due) on purpose: exit 1, as a real one.
    r"components fleet status --demo": {1},
    # 1 is the documented NOT READY answer (ship07 keeps the default messageTtl P2D, so 30 or 45 days break it).
    r"components depart ": {1},
}

#: Commands not of this project, never run here: the first word -> why.
EXTERNAL = {
    "az": "the Azure CLI changes Azure (apps, roles, key vaults, registries); the program's own ARM "
          "calls are tested against tests/arm_server.py",
    "kubectl": "the site's cluster", "helm": "the site's cluster",
    "ssh": "a shell on a node, as root through sudo: never on the machine running the tests",
    "scp": "copies files to a node", "ssh-add": "the operator's SSH agent", "ssh-agent": "the operator's SSH agent",
    "sudo": "commands on a node (crictl, journalctl, the node's files)",
    "openssl": "a TLS check on the site's network (tests/test_tls_handshake.py does it against a real registry)",
    "jq": "a filter in a pipeline of the commands above", "tac": "a filter in a pipeline of the commands above",
    "base64": "a filter in a pipeline of the commands above", "sed": "a filter in a pipeline of the commands above",
    "grep": "a filter in a pipeline of the commands above", "head": "a filter in a pipeline of the commands above",
    "curl": "downloads the Pulumi CLI's install script (the network)",
    "sh": "runs that install script: it installs the CLI into ~/.pulumi",
}
#: Shell builtins and coreutils: they run as part of a line that runs, and alone need no check.
SHELL = {"export", "eval", "echo", "read", "true", "false", "test", "[", "mkdir", "rm", "cd", "cat", "exit"}
#: Our commands that are checked, not run: a pattern on the command -> why.
CHECKED = {
    r"python3 -m venv venv": "makes the venv this suite runs in",
    r"venv/bin/pip install .*": "installs the venv this suite runs in (from a lock file that must exist)",
    r"bash \.ci/run": "CI's entry point: it runs this suite",
    r"scripts/test( .*)?": "the suite this test is part of",
    r"scripts/lock( .*)?": "regenerates the lock files (needs the network)",
    r"scripts/engine( .*)?": "the engine tier: builds Go modules (minutes, the network)",
    r"venv/bin/ruff check .*": "CI runs it (.ci/run)",
    r"venv/bin/mypy .*": "CI runs it (the workflows)",
}
#: Our commands that only have their flags parsed: a pattern -> why.
DRY = {r"venv/bin/python -m components benchmark( .*)?": "the benchmark measures for about two minutes",
       r"venv/bin/python -m components ready .*": "it reads the parent registry's own API (ACR's), which the "
       "suite's ARM stand-in does not serve: tests/test_ready.py runs it against real registries and nodes"}


# ---------------------------------------------------------------------------------- classifying


def statements_of(path: Path) -> list[Statement]:
    name = path.relative_to(ROOT).as_posix()
    return [s for line, text in sh_blocks(path) for s in parse(text, name, line)]


def classify(command: Command) -> tuple[str, str]:
    """(class, reason or problem); class is run, dry, checked, pulumi, external, shell or unknown."""
    text = unsentinel(command.text)
    first = command.words[0]
    for pattern, why in DRY.items():
        if re.fullmatch(pattern, text):
            return "dry", why
    for pattern, why in CHECKED.items():
        if re.fullmatch(pattern, text):
            return "checked", why
    if first == "venv/bin/python" and len(command.words) > 1 and (
            command.words[1:3] == ["-m", "components"] or command.words[1] in ("-", "-c")):
        return "run", "the project's own command"
    if first == "ssh-keygen":
        return "run", "makes a key file in the scratch directory"
    if first == "pulumi":
        return "pulumi", "checked against the Pulumi CLI's command tree"
    if first in EXTERNAL:
        return "external", EXTERNAL[first]
    if first in SHELL:
        return "shell", "a shell builtin or coreutil"
    return "unknown", f"{text!r} is in no class: add it to a class of tests/test_doc_commands.py with a reason"


# ------------------------------------------------------------------------------------ the runs


def _node(server: SshServer, node_dir: Path, pinned: bool = True) -> dict[str, Any]:
    node_dir.mkdir(parents=True, exist_ok=True)
    mapped = {"host": server.host, "port": server.port, "user": server.user, "path": str(node_dir / "registries.yaml")}
    if pinned:
        mapped["hostKey"] = server.host_public_key
    return mapped


def map_nodes(config: dict[str, Any], servers: list[SshServer], scratch: Path, pinned: bool = True) -> None:
    """The stack's nodes at their documented addresses -> the sshd servers (NODE_ADDRESSES)."""
    nodes = config.get("edge-registry:nodes") or []
    for node in nodes:
        server = servers[NODE_ADDRESSES[node["host"]]]
        node.update(_node(server, scratch / "nodes" / f"{node['host']}", pinned))


def ship07_stack(example: dict[str, Any], arm_url: str) -> dict[str, Any]:
    """Pulumi.ship07.yaml as the new-site runbook's step 1 and 2 leave it (the example's keys,
    connectedRegistryName ship07, one server node 192.0.2.70, sshAgent), its ARM the fake one."""
    config = dict(example["config"])
    config.update({
        "edge-registry:connectedRegistryName": "ship07",
        "edge-registry:armEndpoint": arm_url,
        "edge-registry:sshAgent": True,
        "edge-registry:kubeconfigPath": "~/.kube/ship07.yaml",
        "edge-registry:nodes": [{"host": "192.0.2.70", "role": "server", "user": "ubuntu"}],
    })
    return {"config": config}


def arm_documents(now: datetime) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """ship07 in the fake ARM: online, synced ten minutes ago, passwords issued ten days ago."""
    registry = ("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-edge-registry"
                "/providers/Microsoft.ContainerRegistry/registries/contosoedge")
    iso = lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # noqa: E731
    synced = iso(now - timedelta(minutes=10))
    crs = [{
        "id": f"{registry}/connectedRegistries/ship07", "name": "ship07",
        "type": "Microsoft.ContainerRegistry/registries/connectedRegistries",
        "properties": {
            "provisioningState": "Succeeded", "mode": "ReadOnly", "version": "0.9.0", "connectionState": "Online",
            "activation": {"status": "Active"}, "lastActivityTime": synced, "statusDetails": [],
            "clientTokenIds": [f"{registry}/tokens/ship07-client-token"], "loginServer": {"host": "ship07.local"},
            "parent": {"syncProperties": {
                "tokenId": f"{registry}/tokens/ship07-sync-token", "schedule": "30 * * * *", "syncWindow": "PT1H",
                "messageTtl": "P2D", "gatewayEndpoint": "contosoedge.westeurope.data.azurecr.io",
                "lastSyncTime": synced}},
        },
    }]
    tokens = [{
        "id": f"{registry}/tokens/{name}", "name": name, "type": "Microsoft.ContainerRegistry/registries/tokens",
        "properties": {"status": "enabled", "scopeMapId": f"{registry}/scopeMaps/{name}", "credentials": {
            "certificates": [], "passwords": [{"name": "password1", "creationTime": iso(now - timedelta(days=10)),
                                               "expiry": iso(now + timedelta(days=80))}]}},
    } for name in ("ship07-sync-token", "ship07-client-token")]
    return crs, tokens


def scratch_project(tmp: Path, example_file: Path, servers: list[SshServer], arm_url: str, pin_ship07: bool) -> Path:
    project = tmp / "project"
    project.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "venv", "*.pyc")
    for tree in ("components", "policy"):
        shutil.copytree(ROOT / tree, project / tree, ignore=ignore)
    shutil.copy(ROOT / "Pulumi.yaml", project / "Pulumi.yaml")
    (project / ".github").mkdir()
    shutil.copy(ROOT / ".github" / "example-stacks.txt", project / ".github" / "example-stacks.txt")
    (project / "venv").symlink_to(ROOT / "venv")
    example = yaml.safe_load(example_file.read_text())
    dev = {"config": dict(example["config"])}
    dev["config"]["edge-registry:nodes"] = [dict(n) for n in example["config"]["edge-registry:nodes"]]
    map_nodes(dev["config"], servers, tmp)
    (project / "Pulumi.dev.yaml").write_text(yaml.safe_dump(dev, sort_keys=False))
    ship07 = ship07_stack(example, arm_url)
    map_nodes(ship07["config"], servers, tmp, pinned=pin_ship07)
    (project / "Pulumi.ship07.yaml").write_text(yaml.safe_dump(ship07, sort_keys=False))
    for name, text in GIVEN_FILES.items():
        (project / name).write_text(text)
    home = tmp / "home"
    (home / ".ssh").mkdir(parents=True)
    key = home / ".ssh" / "edge-registry"
    key.write_text(servers[0].client_private_key)
    key.chmod(0o600)
    return project


def runnable_text(statement: Statement, servers: list[SshServer]) -> str:
    """The statement's text with every placeholder, literal stand-in and node address mapped."""
    text = SENTINEL.sub(lambda m: PLACEHOLDERS[m["name"]], statement.text)
    for literal, value in LITERALS.items():
        text = text.replace(literal, value)
    for address, index in NODE_ADDRESSES.items():
        if address in text:
            text = re.sub(rf"(?<![\d.]){re.escape(address)}(?![\d])", servers[index].host, text)
    return text


def run_statement(statement: Statement, kind: str, project: Path, env: dict[str, str],
                  servers: list[SshServer]) -> subprocess.CompletedProcess[str]:
    text = runnable_text(statement, servers)
    if kind == "dry":
        words = statement.commands[0].words
        argv = [str(project / "venv" / "bin" / "python"), "-c", DRY_PARSE, *words[3:]]
        return subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True, timeout=120)
    if "components host-key" in text and "--yes" not in text:
        return run_on_a_terminal(text, project, env, answer="y\n")
    return subprocess.run(["sh", "-e", "-c", text], cwd=project, env=env, capture_output=True, text=True,
                          timeout=300)


# ------------------------------------------------------------------------------------- tests


def _ids(paths: list[Path]) -> list[str]:
    return [p.relative_to(ROOT).as_posix() for p in paths]


DOCS_WITH_BLOCKS = [p for p in DOCUMENTS if sh_blocks(p)]


def test_the_parser_takes_commands_apart() -> None:
    text = (
        "export A=1   # a comment with `quotes' and <a placeholder>\n"
        "x=$(az acr show -n \"$r\" --query id) && pulumi config set \\\n"
        "  --path 'k:nodes[0].host' <host>\n"
        "for ns in a b; do\n"
        "  kubectl -n $ns get pods | grep x > out.txt 2>&1\n"
        "done\n"
        "venv/bin/python - <<'EOF'\n"
        "import os  # not a command\n"
        "EOF\n"
        "ssh u@h '\n  sudo a &&\n  sudo b'\n"
    )
    statements = parse(text, "doc.md", 10)
    assert [s.line for s in statements] == [10, 11, 13, 16, 19]
    assert [[unsentinel(c.text) for c in s.commands] for s in statements] == [
        ["export A=1"],
        ["pulumi config set --path k:nodes[0].host <host>", "az acr show -n $r --query id"],
        ["kubectl -n $ns get pods", "grep x"],
        ["venv/bin/python -"],
        ["ssh u@h \n  sudo a &&\n  sudo b"],
    ]
    assert statements[3].text.endswith("import os  # not a command\nEOF")
    assert placeholders_in(statements[1]) == {"host"}
    with pytest.raises(ValueError, match="here-document"):
        parse("cat <<EOF\nno end\n")


@pytest.mark.parametrize("document", DOCS_WITH_BLOCKS, ids=_ids(DOCS_WITH_BLOCKS))
def test_every_command_is_classified(document: Path) -> None:
    problems = []
    for statement in statements_of(document):
        for name in placeholders_in(statement) - PLACEHOLDERS.keys():
            problems.append(f"{statement.where()}: placeholder <{name}> has no value in PLACEHOLDERS")
        kinds = {classify(c)[0] for c in statement.commands}
        for command in statement.commands:
            kind, why = classify(command)
            if kind == "unknown":
                problems.append(f"{statement.where()}: {why}")
        if {"run", "dry"} & kinds and kinds - {"run", "dry", "shell"}:
            problems.append(f"{statement.where()}: a line that runs one of our commands also runs "
                            f"{sorted(kinds - {'run', 'dry', 'shell'})} commands: give them lines of their own")
        if any("…" in c.text for c in statement.commands) and {"run", "dry"} & kinds:
            problems.append(f"{statement.where()}: '…' in a command that runs: write a value")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("document", DOCS_WITH_BLOCKS, ids=_ids(DOCS_WITH_BLOCKS))
def test_pulumi_commands_exist_in_the_cli(document: Path) -> None:
    tree = pulumi_tree()
    problems = [f"{s.where()}: {problem}" for s in statements_of(document) for c in s.commands
                if classify(c)[0] == "pulumi" and (problem := check_pulumi(c.words, tree))]
    assert not problems, "\n".join(problems)


def test_the_pulumi_check_refuses_what_the_cli_refuses() -> None:
    tree = pulumi_tree()
    assert check_pulumi("pulumi up --stack ship07 --policy-pack policy --replace urn".split(), tree) is None
    assert check_pulumi("pulumi stack rm --force ship07".split(), tree) is None  # an alias
    assert check_pulumi("pulumi stack --stack ship07 --show-urns".split(), tree) is None
    assert "no flag --polcy-pack" in str(check_pulumi("pulumi up --polcy-pack policy".split(), tree))
    assert "not a command" in str(check_pulumi("pulumi upp".split(), tree))
    assert "no such subcommand" in str(check_pulumi("pulumi config sett k v".split(), tree))
    assert "no flag --target-dependents" in str(check_pulumi("pulumi stack output --target-dependents".split(), tree))


def test_a_command_that_fails_is_seen_failing() -> None:
    """The runner reports what the shell saw: a flag our argparse refuses (dry parse), a stack
    that does not exist (a run, ``sh -e``: a later ``echo`` does not hide it)."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"}
    failed = run_statement(parse("venv/bin/python -m components render nosuchstack; echo done\n")[0], "run", ROOT,
                           env, [])
    assert failed.returncode == 2 and "done" not in failed.stdout and "Pulumi.nosuchstack.yaml" in failed.stderr
    good, bad = (parse(f"venv/bin/python -m components benchmark {flags}\n")[0]
                 for flags in ("--precision 0.05 --max-rounds 60", "--precison 0.05"))
    assert run_statement(good, "dry", ROOT, env, []).returncode == 0
    refused = run_statement(bad, "dry", ROOT, env, [])
    assert refused.returncode == 2 and "--precison" in refused.stderr


def test_checked_commands_name_files_that_exist() -> None:
    problems = []
    for document in DOCUMENTS:
        for statement in statements_of(document):
            for command in statement.commands:
                if classify(command)[0] != "checked":
                    continue
                words = command.words
                named = [words[i + 1] for i, w in enumerate(words[:-1]) if w in ("-r", "--requirement")]
                named += [w for w in words if w.startswith(("scripts/", ".ci/"))]
                named += [words[0]] if words[0].startswith("venv/") else []
                problems += [f"{statement.where()}: {unsentinel(command.text)}: {name} does not exist"
                             for name in named if not (ROOT / name).exists()]
    assert not problems, "\n".join(problems)


def test_the_readme_sets_up_deploys_and_tests() -> None:
    commands = [unsentinel(c.text) for s in statements_of(ROOT / "README.md") for c in s.commands]
    setup = [c for c in commands if c.startswith("venv/bin/pip install")]
    assert "python3 -m venv venv" in commands and setup, commands
    assert any(re.fullmatch(r"pulumi up --stack \S+.*", c) for c in commands), commands
    assert "scripts/test" in commands, commands
    text = (ROOT / "README.md").read_text()
    assert "file://.pulumi-state" in text  # the deploy's state backend, local files


def test_the_docs_name_test_files_that_exist() -> None:
    """A note that a test checks something names a test that is there (``tests/…`` paths and
    bare ``test_*.py`` names in README.md and docs/*.md)."""
    missing = [f"{document.relative_to(ROOT)}: {name}" for document in DOCUMENTS
               for name in sorted(set(re.findall(r"\btests/[\w/.-]+\.(?:py|md|yaml|json)\b", document.read_text()))
                                  | {f"tests/{m}" for m in re.findall(r"`(test_\w+\.py)`", document.read_text())})
               if not (ROOT / name).exists()]
    assert not missing, "\n".join(missing)


def test_the_readme_names_the_pulumi_cli_versions_the_project_runs() -> None:
    """The supported range in the README is the workflows' CLI (the SDK's release in
    requirements.lock) to the engine tier's CLI (tests/engine/go.mod, the vendored command tree)."""
    sdk = re.search(r"^pulumi==([\d.]+) ", (ROOT / "requirements.lock").read_text(), re.M)
    assert sdk is not None
    workflows = {m for f in (ROOT / ".github" / "workflows").glob("*.yml")
                 for m in re.findall(r'pulumi-version: "([\d.]+)"', f.read_text())}
    assert workflows == {sdk[1]}
    engine = re.search(r"github.com/pulumi/pulumi/pkg/v3 v([\d.]+)", (ROOT / "tests" / "engine" / "go.mod").read_text())
    assert engine is not None and pulumi_tree()["version"] == engine[1]
    readme = (ROOT / "README.md").read_text()
    assert f"**{sdk[1]} to {engine[1]}**" in readme
    assert f"curl -fsSL https://get.pulumi.com | sh -s -- --version {sdk[1]}" in readme


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[SshServer]]:
    reason = can_run()
    if reason:
        if os.environ.get("EDGE_REGISTRY_REQUIRE_SERVERS"):
            pytest.fail(f"{reason}; EDGE_REGISTRY_REQUIRE_SERVERS is set")
        pytest.skip(reason)
    servers = [SshServer(tmp_path_factory.mktemp("sshd"), host=host).start() for host in ("127.0.0.1", "127.0.0.2")]
    # One node key for the whole site (the runbooks' ~/.ssh/edge-registry): the first server's.
    for server in servers[1:]:
        with (server.root / "authorized_keys").open("a") as keys:
            keys.write((servers[0].root / "client_ed25519.pub").read_text())
    yield servers
    for server in servers:
        server.stop()


RUN_DOCS = [p for p in DOCS_WITH_BLOCKS
            if any(classify(c)[0] in ("run", "dry") for s in statements_of(p) for c in s.commands)]


@pytest.mark.parametrize("document", RUN_DOCS, ids=_ids(RUN_DOCS))
def test_the_documents_commands_run(document: Path, nodes: list[SshServer], tmp_path: Path) -> None:
    example_file = example_stack()  # skips once the example is a real site
    from tests.arm_server import FAKE_BEARER, ArmServer

    statements = statements_of(document)
    pins_itself = any("components host-key ship07" in s.text for s in statements)
    with ArmServer(tmp_path) as arm:
        crs, tokens = arm_documents(datetime.now(UTC))
        arm.state.listed_connected_registries["contosoedge"] = crs
        arm.state.listed_tokens["contosoedge"] = tokens
        project = scratch_project(tmp_path, example_file, nodes, arm.base_url, pin_ship07=not pins_itself)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path / "home"),
               "LC_ALL": "C.UTF-8", "EDGE_REGISTRY_ARM_TOKEN": FAKE_BEARER, "REQUESTS_CA_BUNDLE": arm.ca_pem,
               "NO_PROXY": "127.0.0.1,127.0.0.2"}
        ran = 0
        for statement in statements:
            kinds = {classify(c)[0] for c in statement.commands}
            kind = "dry" if "dry" in kinds else "run" if "run" in kinds else None
            if kind is None:
                continue
            done = run_statement(statement, kind, project, env, nodes)
            output = done.stdout + done.stderr
            allowed = {0}.union(*(codes for pattern, codes in EXPECTED_EXIT.items()
                                  if re.search(pattern, statement.text)))
            assert done.returncode in allowed and "Traceback" not in output, (
                f"{statement.where()}: `{unsentinel(statement.text)}` exited {done.returncode}"
                f" (runs as `{runnable_text(statement, nodes)}` in {project}):\n{output[-3000:]}")
            ran += 1
    assert ran > 0


def test_vendored_pulumi_commands_match_the_engine_cli(tmp_path: Path) -> None:
    """The vendored tree is the CLI's, for every command the docs use (when the engine is built)."""
    pulumi = engine_pulumi()
    if pulumi is None:
        pytest.skip("the engine tier's Pulumi CLI is not built (scripts/engine build)")
    tree = pulumi_tree()
    version = subprocess.run([pulumi, "version"], capture_output=True, text=True, env=cli_env(tmp_path),
                             timeout=60).stdout.strip().lstrip("v")
    assert tree["version"] == version, "regenerate: venv/bin/python -m tests.pulumi_cli PULUMI"
    paths: set[tuple[str, ...]] = set()
    for document in DOCUMENTS:
        for statement in statements_of(document):
            for command in statement.commands:
                if classify(command)[0] == "pulumi":
                    node, words = tree["root"], list[str]()
                    for word in command.words[1:]:
                        if word in node.get("commands", {}):
                            node, words = node["commands"][word], [*words, word]
                        elif not word.startswith("-"):
                            break
                    paths.add(tuple(words))
    assert paths
    for path in sorted(paths):
        live = cli_help(pulumi, list(path), tmp_path)
        node = tree["root"]
        for word in path:
            node = node["commands"][word]
        assert sorted(set(live["flags"]) - set(tree["globalFlags"])) == node["flags"], path
        assert sorted(live.get("subcommands", [])) == sorted(node.get("commands", {})), path
