"""Errors a person can act on: each command is run as a person runs it (``python -m components
...``), and what it prints and its exit code are checked: the message names the flag or config
key, what was given and what is accepted, in the project's words, in one line.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from components.__main__ import COMMANDS
from components.azure.credentials import NO_CREDENTIALS
from components.config.fields import BOOL_EXPECTED, ConfigError
from components.config.loading import load_site_config
from components.config.stack_files import config_string
from tests.fixture_stacks import ROOT, stack_file
from tests.sshd import SshServer, running_server
from tests.test_config import KUBECONFIG, valid

#: What the libraries underneath say, never the tool: argparse's and pydantic's own phrasing.
LIBRARY_WORDS = re.compile(
    r"usage:|error: argument|the following arguments are required|invalid \w+ value|invalid choice|"
    r"unrecognized arguments|_positive|Input should|valid tuple|Value error|Traceback"
)


def components(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m components ARGS`` from the repository, as a person runs it."""
    return subprocess.run([sys.executable, "-m", "components", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env)


def project(tmp_path: Path, config: dict[str, object] | None = None, text: str | None = None) -> Path:
    """A project directory with stack ``site``: the fixture dev stack with ``config`` changed."""
    where = tmp_path / "project"
    where.mkdir(exist_ok=True)
    shutil.copy(ROOT / "Pulumi.yaml", where / "Pulumi.yaml")
    if text is None:
        document = yaml.safe_load(stack_file().read_text())
        document["config"].update(config or {})
        text = yaml.safe_dump(document)
    (where / "Pulumi.site.yaml").write_text(text)
    return where


# --- --policy-config ---------------------------------------------------------------------------

def test_a_policy_config_that_does_not_exist_is_an_error_naming_the_flag_and_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    done = components("render", "site", "--project-dir", str(project(tmp_path)), "--policy-config", str(missing))
    assert done.returncode == 2
    assert done.stderr.splitlines() == [f"--policy-config {missing}: no such file"]
    assert done.stdout == ""


def test_a_policy_config_that_is_not_json_says_the_line_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "policy.json"
    bad.write_text('{\n  "edge-no-http": {"enforcementLevel": "advisory"},\n  "x" 2\n}\n')
    done = components("render", "site", "--project-dir", str(project(tmp_path)), "--policy-config", str(bad))
    assert done.returncode == 2
    assert done.stderr.splitlines() == [f"--policy-config {bad}: not valid JSON: line 3, column 7: Expecting ':' delimiter"]
    assert "invalid site configuration" not in done.stderr


def test_a_policy_config_with_an_unknown_level_names_the_policy_and_the_levels(tmp_path: Path) -> None:
    bad = tmp_path / "policy.json"
    bad.write_text(json.dumps({"edge-no-http": "strict"}))
    done = components("render", "site", "--project-dir", str(project(tmp_path)), "--policy-config", str(bad))
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"--policy-config {bad}: edge-no-http: 'strict' is not an enforcement level: expected one of "
        "mandatory, advisory, remediate, disabled"
    ]


# --- booleans ----------------------------------------------------------------------------------

@pytest.mark.parametrize("spelling", ["yes", "no", "on", "off", "Yes", "ON"])
def test_a_yaml_1_1_boolean_is_refused_by_the_render_and_the_program_alike(tmp_path: Path, spelling: str) -> None:
    # Unquoted in the stack file, as a person writes it.
    text = stack_file().read_text() + f"  edge-registry:cloudOnly: {spelling}\n"
    done = components("render", "site", "--project-dir", str(project(tmp_path, text=text)))
    assert done.returncode == 2
    line = f"edge-registry:cloudOnly: {spelling!r} is invalid: {BOOL_EXPECTED}"
    assert done.stderr.splitlines() == ["invalid site configuration for stack site:", line]
    # The program gets the text as the Pulumi CLI (YAML 1.2) passes it, and says the same.
    with pytest.raises(ConfigError) as program:
        load_site_config({**valid(), "cloudOnly": spelling})
    assert program.value.problems == [line]


def test_a_yaml_1_1_boolean_inside_a_node_is_refused_with_its_path(tmp_path: Path) -> None:
    text = stack_file().read_text().replace("role: server", "role: server\n      gone: yes", 1)
    assert "gone: yes" in text
    done = components("render", "site", "--project-dir", str(project(tmp_path, text=text)))
    assert done.returncode == 2
    assert f"edge-registry:nodes[0].gone: 'yes' is invalid: {BOOL_EXPECTED}" in done.stderr.splitlines()


@pytest.mark.parametrize("spelling", ["true", "True", "TRUE"])
def test_the_yaml_1_2_booleans_are_accepted(tmp_path: Path, spelling: str) -> None:
    text = stack_file().read_text() + f"  edge-registry:auditLog: {spelling}\n"
    assert "edge-registry:auditLog:" in stack_file().read_text()  # the later key wins, as in YAML
    done = components("render", "site", "--project-dir", str(project(tmp_path, text=text)), "--json")
    assert done.returncode == 0, done.stderr
    assert '"auditLogStatus": "Enabled"' in done.stdout


def test_the_render_hands_the_program_the_text_the_pulumi_cli_would() -> None:
    from components.config.stack import load_stack_yaml

    document = load_stack_yaml("config:\n  a: yes\n  b: on\n  c: true\n  d: FALSE\n  e: 'true'\n")
    assert {k: config_string(v) for k, v in document["config"].items()} == {
        "a": "yes", "b": "on", "c": "true", "d": "false", "e": "true"}


# --- fleet status without credentials -------------------------------------------------------------

def test_fleet_status_without_credentials_says_in_one_line_what_it_looked_for(tmp_path: Path) -> None:
    where = tmp_path / "fleet"
    where.mkdir()
    shutil.copy(ROOT / "Pulumi.yaml", where / "Pulumi.yaml")
    fixture = ROOT / "tests" / "fleet_fixtures" / "Pulumi.ship01.yaml"
    (where / "Pulumi.ship01.yaml").write_text(fixture.read_text().replace("__ARM_ENDPOINT__", "https://management.azure.com"))
    empty_bin = tmp_path / "bin"  # no az, azd or pwsh to find
    empty_bin.mkdir()
    # A workstation without a login: only the developer credentials (no IMDS probe from a test).
    env = {"PATH": str(empty_bin), "HOME": str(tmp_path), "AZURE_TOKEN_CREDENTIALS": "dev", "LANG": "C.UTF-8"}
    done = components("fleet", "status", "--project-dir", str(where), "--no-progress", env=env)
    assert done.returncode == 1  # docs/operations.md: a registry could not be read
    assert done.stderr.splitlines() == [f"fleet: {NO_CREDENTIALS}"]
    for how in ("az login", "AZURE_CLIENT_SECRET", "EDGE_REGISTRY_ARM_TOKEN", "az account get-access-token"):
        assert how in done.stderr
    assert done.stdout == ""


# --- --read-nodes and --ssh-key ------------------------------------------------------------------

@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    yield from running_server(tmp_path_factory)


def node_project(tmp_path: Path, server: SshServer) -> Path:
    node_file = tmp_path / "k3s" / "registries.yaml"
    node_file.parent.mkdir()
    nodes = [{"host": "127.0.0.1", "port": server.port, "user": server.user, "role": "server",
              "hostKey": server.host_public_key, "path": str(node_file)}]
    return project(tmp_path, {"edge-registry:nodes": nodes})


def test_an_ssh_key_the_server_refuses_is_named_as_given_and_exits_1(tmp_path: Path, server: SshServer) -> None:
    other = tmp_path / "other-key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    done = components("render", "site", "--project-dir", str(node_project(tmp_path, server)), "--read-nodes",
                      "--ssh-key", str(other), "--no-progress")
    assert done.returncode == 1, done.stderr
    assert f"SSH login as {server.user} with --ssh-key {other} was refused" in done.stderr
    assert "sshPrivateKey" not in done.stderr
    assert done.stderr.splitlines()[-1].startswith("--read-nodes: 1 of 1 node(s) could not be read or used (127.0.0.1;")
    assert "site-node-127.0.0.1" in done.stdout  # still rendered


def _encrypted_openssh_key(tmp_path: Path) -> Path:
    path = tmp_path / "locked"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "a passphrase", "-f", str(path)], check=True)
    return path


def _public_key(tmp_path: Path) -> Path:
    path = tmp_path / "k"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return Path(f"{path}.pub")


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda tmp: tmp / "missing", "no such file"),
        (lambda tmp: tmp, "is a directory, expected an OpenSSH or PEM private key file"),
        (_public_key, "that is a public key (a .pub line): give the private key"),
        (_encrypted_openssh_key, "the private key is protected by a passphrase: use an unencrypted key, or the SSH "
                                 "agent (sshAgent: true) holding it"),
        (lambda tmp: (tmp / "text").write_text("hello\n") and tmp / "text",
         "not an SSH private key: expected an unencrypted ed25519, ecdsa or rsa key (OpenSSH or PEM format)"),
    ],
    ids=["missing", "directory", "public", "passphrase", "text"],
)
def test_an_unusable_ssh_key_file_is_named_as_given(tmp_path: Path, make: object, says: str) -> None:
    key = make(tmp_path)  # type: ignore[operator]
    done = components("render", "dev", "--stack-dir", str(ROOT / "tests" / "stacks"), "--read-nodes", "--ssh-key", str(key))
    assert done.returncode == 2
    assert done.stderr.splitlines() == [f"--ssh-key {key}: {says}"]
    assert done.stdout == ""


# --- command lines: the flag, what was given, what is accepted ------------------------------------

@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["fleet", "status", "--stale-after", "0"],
         "python -m components fleet status: --stale-after: '0' is not accepted: expected a whole number of at least 1"),
        (["fleet", "status", "--stale-after", "three"],
         "python -m components fleet status: --stale-after: 'three' is not accepted: expected a whole number of at least 1"),
        (["fleet", "status", "--max-retry-wait", "-1"],
         "python -m components fleet status: --max-retry-wait: '-1' is not accepted: expected a number of at least 0"),
        (["fleet", "status", "--color", "pink"],
         "python -m components fleet status: --color: 'pink' is not accepted: expected one of auto, always, never"),
        (["fleet"], "python -m components fleet: COMMAND is missing: one of status"),
        (["render"], "python -m components render: STACK is missing: the stack name (renders Pulumi.STACK.yaml)"),
        (["render", "dev", "--ssh-key"], "python -m components render: --ssh-key needs a value (FILE)"),
        (["render", "dev", "--json=yes"], "python -m components render: --json takes no value, given 'yes'"),
        (["read-account"], "python -m components read-account: COMMAND is missing: one of script, sudoers, authorized-keys"),
        (["read-account", "keys"], "python -m components read-account: COMMAND: 'keys' is not accepted: expected a "
                                   "command: script, sudoers, authorized-keys"),
        (["benchmark", "--min-rounds", "0"],
         "python -m components benchmark: --min-rounds: '0' is not accepted: expected a whole number of at least 1"),
        (["benchmark", "--min-rounds", "9", "--max-rounds", "3"],
         "python -m components benchmark: --min-rounds 9 is more than --max-rounds 3"),
        (["host-key", "dev", "--node", "n1", "--port", "70000"],
         "python -m components host-key: --port: '70000' is not accepted: expected a whole number from 1 to 65535"),
        (["config-reference"], "python -m components config-reference: give one of --write, --check"),
    ],
)
def test_a_bad_command_line_is_one_line_naming_the_flag_given_and_accepted(args: list[str], line: str) -> None:
    done = components(*args)
    assert done.returncode == 2
    prog = line.split(":", 1)[0]
    assert done.stderr.splitlines() == [f"{line}; see '{prog} --help'"]
    assert not LIBRARY_WORDS.search(done.stderr)
    assert done.stdout == ""


def test_an_unknown_flag_lists_the_flags() -> None:
    done = components("render", "dev", "--jsn")
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert line.startswith("python -m components render: unknown argument '--jsn': the flags are --json, ")
    assert "--read-nodes" in line and line.endswith("; see 'python -m components render --help'")


@pytest.mark.parametrize("args, prog, flag", [
    (("fleet", "status", "--jsn"), "python -m components fleet status", "--json"),
    (("read-account", "sudoers", "--jsn"), "python -m components read-account sudoers", "--user"),
])
def test_an_unknown_flag_after_a_subcommand_lists_that_subcommands_flags(args: tuple[str, ...], prog: str, flag: str) -> None:
    """argparse reports it from the top parser, whose flags it is not among ("the flags are none")."""
    done = components(*args)
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"{prog}: unknown argument '--jsn': the flags are ") and flag in line
    assert line.endswith(f"; see '{prog} --help'") and "none" not in line


def test_a_number_out_of_its_bounds_is_said_with_the_bounds(tmp_path: Path) -> None:
    nodes = yaml.safe_load(stack_file().read_text())["config"]["edge-registry:nodes"]
    nodes[0]["port"] = 0
    done = components("render", "site", "--project-dir", str(project(tmp_path, {
        "edge-registry:helmTimeoutSeconds": 5, "edge-registry:passwordRotateBeforeDays": -1, "edge-registry:nodes": nodes,
    })))
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert "edge-registry:helmTimeoutSeconds: 5 is invalid: expected a whole number from 30 to 7200" in lines
    assert "edge-registry:passwordRotateBeforeDays: -1 is invalid: expected a whole number of at least 0" in lines
    assert "edge-registry:nodes[0].port: 0 is invalid: expected a whole number from 1 to 65535" in lines
    assert not LIBRARY_WORDS.search(done.stderr)


# --- kubeconfigPath ----------------------------------------------------------------------------

def test_a_kubeconfig_without_the_context_stops_the_render_naming_the_key(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "site.kubeconfig"
    kubeconfig.write_text(KUBECONFIG)
    done = components("render", "site", "--project-dir", str(project(tmp_path, {
        "edge-registry:kubeconfigPath": str(kubeconfig), "edge-registry:kubeContext": "ship01",
    })))
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "invalid site configuration for stack site:",
        f"edge-registry:kubeContext: 'ship01' is not a context in {kubeconfig}; expected one of 'default'",
    ]


def test_a_kubeconfig_path_not_on_this_machine_is_a_note_in_the_render(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "site.kubeconfig"
    done = components("render", "site", "--project-dir", str(project(tmp_path, {
        "edge-registry:kubeconfigPath": str(missing)})))
    assert done.returncode == 0, done.stderr
    assert (f"note: edge-registry:kubeconfigPath: '{missing}' is not on this machine: the render does not need it, "
            "'pulumi preview' here would stop on it") in done.stderr.splitlines()


def test_the_program_stops_at_preview_on_a_kubeconfig_path_it_cannot_use(tmp_path: Path) -> None:
    from components.site import local_file_problems

    def problems(**values: str) -> list[str]:
        return local_file_problems(load_site_config({**valid(), "kubeconfig": None, **values}))

    missing = tmp_path / "missing.yaml"
    assert problems(kubeconfigPath=str(missing)) == [
        f"edge-registry:kubeconfigPath: '{missing}' does not exist on this machine; expected the path of a "
        "kubeconfig file here (or set kubeconfig, with --secret, to its content)"
    ]
    no_current = tmp_path / "k.yaml"
    no_current.write_text(KUBECONFIG.replace("current-context: default\n", ""))
    assert problems(kubeconfigPath=str(no_current)) == [
        f"edge-registry:kubeContext: not set, and {no_current} has no current-context; set it to one of 'default'"
    ]
    assert problems(kubeconfigPath=str(no_current), kubeContext="default") == []
    # The content set with --secret is checked against kubeContext too, and never quoted.
    (line,) = local_file_problems(load_site_config({**valid(), "kubeContext": "other"}))
    assert line == ("edge-registry:kubeContext: 'other' is not a context in the kubeconfig set in "
                    "edge-registry:kubeconfig; expected one of 'default'")


# --- the documented spellings run --------------------------------------------------------------

def test_every_documented_command_spelling_is_a_command() -> None:
    """``python -m components X`` in the README and docs names a command; ``python -m
    components.module`` names a module that exists (an old spelling such as
    ``components.preview_read_account`` would fail for whoever copies it)."""
    texts = {path: path.read_text() for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]}
    found = 0
    for path, text in texts.items():
        for module, command in re.findall(r"python3? -m components(\.[\w.]+)?(?: +([a-z][\w-]*))?", text):
            found += 1
            if module:
                assert (ROOT / "components" / module[1:].replace(".", "/")).with_suffix(".py").is_file() or (
                    ROOT / "components" / module[1:].replace(".", "/") / "__main__.py").is_file(), (path.name, module)
            elif command:
                assert command in COMMANDS, (path.name, command)
    assert found > 20
    assert not any("preview_read_account" in text.replace("test_preview_read_account", "") for text in texts.values())


def test_read_account_names_the_key_file_it_cannot_use(tmp_path: Path) -> None:
    missing = tmp_path / "read.pub"
    done = components("read-account", "authorized-keys", "--key", str(missing))
    assert done.returncode == 2
    assert done.stderr == f"python -m components read-account authorized-keys: --key {missing}: no such file\n"
    private = tmp_path / "read"
    private.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE=\n-----END OPENSSH PRIVATE KEY-----\n")
    done = components("read-account", "authorized-keys", "--key", str(private))
    assert done.returncode == 2
    assert done.stderr == (f"python -m components read-account authorized-keys: --key {private}: that is a private key: "
                           "give the public key (the .pub file)\n")


def test_read_account_runs_as_the_docs_show_it() -> None:
    done = components("read-account", "script")
    assert done.returncode == 0 and done.stdout.startswith("#!/bin/sh\n")
    done = components("read-account", "sudoers")
    assert done.returncode == 0 and "NOPASSWD: /usr/local/libexec/edge-registry/read-registries" in done.stdout


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_answers_a_bad_flag_in_one_line_of_its_own_words(command: str) -> None:
    """Each command of ``python -m components --help`` (components/command_line.py): one line,
    the command's name, the help to read, and none of argparse's phrasing."""
    done = components(command, "--no-such-flag")
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"python -m components {command}") and "--help'" in line, line
    assert not LIBRARY_WORDS.search(line), line
