"""Property: bad input of any kind ends in a config error naming the key, never anything else.

Generated stack configs (a valid one, mutated: values of the wrong type, whitespace and newlines
around values, huge and odd numbers, nested garbage, unknown and misspelt keys, keys set as
secrets) go through the loading the program uses: ``load_site_config`` as ``pulumi up`` hands it
the values (strings, JSON for lists and objects), and ``stack_files.load_stack_site_config``
reading a ``Pulumi.<site>.yaml`` as the offline render and the fleet status do. Each run gives a
``SiteConfig`` or a ``ConfigError`` whose every problem is one line starting with a config key
(``edge-registry:…``, ``azure-native:…``, or the misspelt key as written); no other exception
escapes, and no value set as a secret appears in any message.

Deterministic (``derandomize``: the same examples on every run, no example database) and a
few seconds long.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components.config import stack_files
from components.config.fields import ConfigError
from components.config.keys import PROJECT_KEYS, SECRET_KEYS
from components.config.loading import load_site_config
from components.config.site import SiteConfig
from tests.fixture_stacks import ROOT
from tests.test_config import valid

#: Stands in every secret value the examples set: it must never be in a message.
MARK = "Zq7Xsecret"

FUZZ = settings(
    max_examples=250,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

JSON_KEYS = ("repositories", "clientRepositories", "notifications", "pullSecretNamespaces", "nodes", "chartValues")
UNKNOWN_KEYS = ("repositorys", "Nodes", "syncschedule", "hostKey", "mirrorCaFile", "x")
OTHER_KEYS = ("azure-native:location", "azure-native:locaton", "azure-nativ:location", "Azure-Native:location",
              "edge-registy:registryName", "kubernetes:context", "pulumi:tags", "command:x")
KEYS = sorted(PROJECT_KEYS)

# Text a stack file can hold: anything but lone surrogates (not UTF-8) and NUL.
text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=24)
odd_texts = st.sampled_from([
    "", " ", "\n", "\t", "true", "false", "True", "yes", "null", "None", "[]", "{}", "[", "{", '"a"', "5", "-1",
    " 7 ", "1e400", "9" * 5000, "0x10", "1_000", "inf", "NaN", "PT1H", "P1M", "30 * * * *", "61 * * * *",
    "10.0.0.1", "999.1.1.1", "fe80::1%eth0\n", "::1", "node1\n", "https://management.azure.com",
    "http://management.azure.com", "https://x:99999999999999999999", "ReadWrite", "[secure:kubeconfig]",
    "[" * 40 + "]" * 40, '{"a":' * 40 + "1" + "}" * 40, "/etc/k.yaml\n", "ssh-rsa AAAA", "0.2.0",
])
scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([0, 1, -1, 22, 65536, 10**18, 10**19, 2**63, 10**400]),
    st.floats(allow_nan=True, allow_infinity=True),
    text, odd_texts,
)
garbage = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(text, inner, max_size=4)),
    max_leaves=12,
)
# A value of the wrong type, as a Python value or as the text Pulumi would hand over.
wrong_types: st.SearchStrategy[Any] = st.sampled_from([
    5, "5", -1, 1.5, "1.5", True, "true", None, "", [], "[]", {}, "{}", ["x"], '["x"]', [5], "[5]", [None], "[null]",
    {"a": 1}, '{"a": 1}', [[]], "[[]]", [{}], "[{}]", [{"host": 5}], '[{"host": ["a"]}]', [{"host": "a", "role": 1}],
    {"a": {"b": [1, {"c": None}]}}, 10**400, "1e400", float("inf"), float("nan"), "NaN", ["a", "a"],
])
whitespace = st.sampled_from([" ", "\n", "\t", "\r\n", " \n", "\u00a0", "\u2028"])

node_fields = st.sampled_from(["host", "port", "user", "role", "unit", "path", "hostKey", "gone", "hostname"])
node = st.dictionaries(node_fields, st.one_of(garbage, st.sampled_from(["server", "agent", "10.0.0.1", "n1"])),
                       max_size=5) | st.just({"host": "10.0.0.9", "role": "agent"})


def pulumi_string(value: Any) -> str:
    """A value as Pulumi hands it to the program."""
    try:
        return stack_files.config_string(value)
    except (TypeError, ValueError):
        return repr(value)


def secret_value(key: str) -> st.SearchStrategy[Any]:
    """A value for a key set with --secret, with the mark somewhere in it."""
    if key in JSON_KEYS:
        return st.sampled_from([
            json.dumps([MARK]), json.dumps([f"{MARK}\n"]), json.dumps({MARK: 1}), json.dumps({"a": MARK}),
            json.dumps({f"bad {MARK}!": "x"}), json.dumps([{"host": MARK, "role": "server"}] * 2),
            json.dumps([{"host": "10.0.0.1", "role": "server", MARK: 1}]), json.dumps(MARK), f"{MARK} not json",
            json.dumps([{"host": "10.0.0.1", "role": MARK}]), json.dumps([f"{MARK}:push"]),
        ])
    return st.sampled_from([
        MARK, f"{MARK}\n", f" {MARK}", f"{MARK} * * * *", f"5 {MARK} * * *", f"https://{MARK}.example:1",
        f"https://{MARK}", f"https://host:{MARK}", f"P{MARK}", f"{MARK}.0.0", f"0.2.0-{MARK}",
        f"-----BEGIN PRIVATE KEY-----{MARK}", f"apiVersion: v1\nclusters: [{MARK}]",
    ])


@st.composite
def stack_configs(draw: st.DrawFn) -> tuple[dict[str, Any], frozenset[str], list[str]]:
    """(values without the prefix, keys set with --secret, other namespaces' keys)."""
    values: dict[str, Any] = dict(valid())
    for _ in range(draw(st.integers(0, 4))):
        key = draw(st.sampled_from(KEYS) | st.sampled_from(JSON_KEYS) | st.sampled_from(UNKNOWN_KEYS))
        how = draw(st.sampled_from(["type", "garbage", "string", "whitespace", "delete", "nodes"]))
        if how == "type":
            values[key] = draw(wrong_types)
        elif how == "garbage":
            values[key] = draw(garbage)
        elif how == "string":
            values[key] = pulumi_string(draw(garbage))
        elif how == "whitespace":
            before = values.get(key, draw(odd_texts))
            values[key] = (draw(whitespace) if draw(st.booleans()) else "") + pulumi_string(before) + draw(whitespace)
        elif how == "delete":
            values.pop(key, None)
        else:
            values["nodes"] = pulumi_string(draw(st.lists(node, max_size=3)))
    secret = draw(st.sets(st.sampled_from(KEYS), max_size=3))
    for key in secret | draw(st.sets(st.sampled_from(sorted(SECRET_KEYS)), max_size=2)):
        if draw(st.booleans()):
            values[key] = draw(secret_value(key))
    others = draw(st.lists(st.sampled_from(OTHER_KEYS), max_size=3, unique=True))
    return values, frozenset(secret), others


#: Words of the libraries underneath (pydantic, argparse, Python), never of a stack file: a message
#: says what the key accepts in the project's words instead.
LIBRARY_WORDS = re.compile(
    r"Input should|should be a valid|valid (?:tuple|list|dictionary|string|integer|boolean|number)|Value error|"
    r"Field required|Extra inputs|validation errors? for|errors\.pydantic\.dev|\[type=|_positive|invalid literal|"
    r"object has no attribute|NoneType|Traceback"
)


def assert_config_error(error: ConfigError, given_keys: set[str], stack_file: str | None = None) -> None:
    """Every problem is one line that starts with a config key, in the project's words (no library
    wording); no secret in any of them."""
    known = {f"edge-registry:{k}" for k in PROJECT_KEYS} | given_keys | {"azure-native:subscriptionId"}
    assert error.problems, "a ConfigError with no problem"
    for problem in error.problems:
        assert isinstance(problem, str) and "\n" not in problem and "\r" not in problem, problem
        if stack_file is not None:
            problem = problem.removeprefix(f"{stack_file}: ")
        head, sep, message = problem.partition(": ")
        assert sep and message.strip(), problem
        namespace, colon, name = head.partition(":")
        base = re.split(r"[\[.]", name, maxsplit=1)[0]
        assert (colon and f"{namespace}:{base}" in known) or head in given_keys, problem
    assert MARK not in "\n".join(error.problems), error.problems
    assert "Traceback" not in str(error)
    leaked = [p for p in error.problems if LIBRARY_WORDS.search(p)]
    assert not leaked, leaked


@FUZZ
@given(stack_configs())
def test_generated_configs_load_or_fail_with_key_named_problems(case: tuple[dict[str, Any], frozenset[str], list[str]]) -> None:
    values, secret, others = case
    try:
        site = load_site_config(values, secret, others)
    except ConfigError as error:
        given_keys = {f"edge-registry:{k}" for k in values} | set(others)
        assert_config_error(error, given_keys)
    else:
        assert isinstance(site, SiteConfig)


# --- through a stack file, as the render and the fleet status read it -------------------------

def yaml_value(value: Any) -> Any:
    """A config value as a stack file writes it: lists and objects as YAML, not JSON text."""
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


@st.composite
def stack_documents(draw: st.DrawFn) -> dict[str, Any]:
    values, secret, others = draw(stack_configs())
    config: dict[str, Any] = {f"edge-registry:{k}": yaml_value(v) for k, v in values.items()}
    for key in secret:
        # Set with --secret: ciphertext in the file (the engine decrypts it; offline, a placeholder).
        config[f"edge-registry:{key}"] = {"secure": f"v1:{MARK}"}
    for key in others:
        config[key] = draw(scalars | odd_texts)
    if draw(st.booleans()):
        config[draw(st.sampled_from(["registryName", "auditLog", "bogus"]))] = "x"  # no namespace
    if draw(st.booleans()):
        config["edge-registry:chartValues"] = {"auth": {"password": {"secure": f"v1:{MARK}"}}, "user": draw(garbage)}
    if draw(st.booleans()):
        config["azure-native:subscriptionId"] = "00000000-0000-0000-0000-000000000000"
    return {"config": config}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("fuzz-project")
    shutil.copy(ROOT / "Pulumi.yaml", where / "Pulumi.yaml")
    return where


@FUZZ
@given(document=stack_documents())
def test_generated_stack_files_load_or_fail_with_key_named_problems(project: Path, document: dict[str, Any]) -> None:
    try:
        text = yaml.safe_dump(document, allow_unicode=True)
    except yaml.YAMLError:
        return  # not something a stack file can hold
    (project / "Pulumi.fuzz.yaml").write_text(text, encoding="utf-8")
    try:
        site, _config = stack_files.load_stack_site_config(project, "fuzz")
    except ConfigError as error:
        given_keys = {str(k) for k in document["config"]}
        assert_config_error(error, given_keys, stack_file="Pulumi.fuzz.yaml")
    else:
        assert isinstance(site, SiteConfig)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("config: [a, b]\n", "Pulumi.fuzz.yaml: `config:` must be a mapping of keys to values, found a list"),
        ("- config\n", "Pulumi.fuzz.yaml: expected a mapping (with a `config:` mapping of keys to values), found a list"),
        ("just text\n", "Pulumi.fuzz.yaml: expected a mapping (with a `config:` mapping of keys to values), found text"),
        ("config: {a: [\n", "Pulumi.fuzz.yaml: not valid YAML: "),
        ("config:\n  edge-registry:nodes: " + "[" * 200 + "]" * 200 + "\n", "edge-registry:nodes: nested more than 32"),
        ("a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
         "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
         "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
         "config:\n  edge-registry:chartValues: {x: [*e, *e, *e]}\n", "edge-registry:chartValues: more than 100000 items"),
        ("config:\n  edge-registry:chartValues: {2024-01-01: c}\n", "edge-registry:chartValues: a mapping key is not"),
        ("config:\n  edge-registry:repositories: !!set {a, b}\n", "edge-registry:repositories: a YAML set is not"),
    ],
)
def test_a_stack_file_that_is_not_a_config_is_one_line_naming_the_file_or_key(project: Path, text: str, says: str) -> None:
    (project / "Pulumi.fuzz.yaml").write_text(text)
    with pytest.raises(ConfigError) as caught:
        stack_files.load_stack_site_config(project, "fuzz")
    assert caught.value.problems[0].startswith(says), caught.value.problems
    assert all("\n" not in p for p in caught.value.problems)


def test_a_stack_file_that_is_not_utf8_is_one_line(project: Path) -> None:
    (project / "Pulumi.fuzz.yaml").write_bytes(b"config:\n  edge-registry:registryName: \xff\xfe\n")
    with pytest.raises(ConfigError) as caught:
        stack_files.load_stack_site_config(project, "fuzz")
    assert caught.value.problems == ["Pulumi.fuzz.yaml: not UTF-8 text"]
