"""registries.yaml merge, unmerge and schema: pure functions, property-based where it pays."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from components.nodes import registries_yaml as ry

ENDPOINT = "10.43.0.10:80"
OURS = ry.mirror_entries(ENDPOINT, "http", None, False)
OURS_TLS = ry.mirror_entries("10.43.0.11:443", "https", "/etc/ssl/cr.pem", True)

# --------------------------------------------------------------------------- strategies

_label = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=10).filter(
    lambda s: s[0] != "-" and s[-1] != "-"
)
# Foreign registry keys never collide with ours (which live in 10.43.0.0/16).
_registry = st.one_of(
    st.sampled_from(["docker.io", "quay.io", "ghcr.io", "registry.k8s.io", "*"]),
    st.builds(lambda a, b, port: f"{a}.{b}" + (f":{port}" if port else ""), _label, _label,
              st.one_of(st.none(), st.integers(1, 65535))),
)
_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), max_size=20)
_url = st.builds(lambda scheme, host: f"{scheme}://{host}", st.sampled_from(["http", "https"]), _registry)
_mirror = st.fixed_dictionaries(
    {},
    optional={
        "endpoint": st.lists(_url, min_size=1, max_size=3),
        "rewrite": st.dictionaries(_text, _text, min_size=1, max_size=2),
    },
)
_auth = st.fixed_dictionaries(
    {}, optional={"username": _text, "password": _text, "auth": _text, "identity_token": _text}
)
_tls = st.fixed_dictionaries(
    {},
    optional={"ca_file": _text, "cert_file": _text, "key_file": _text, "insecure_skip_verify": st.booleans()},
)
_config = st.fixed_dictionaries({}, optional={"auth": _auth, "tls": _tls})
documents = st.fixed_dictionaries(
    {},
    optional={
        "mirrors": st.dictionaries(_registry, _mirror, min_size=1, max_size=4),
        "configs": st.dictionaries(_registry, _config, min_size=1, max_size=4),
    },
)
ours_entries = st.builds(
    ry.mirror_entries,
    st.builds(lambda a, b, port: f"10.43.{a}.{b}:{port}", st.integers(0, 255), st.integers(0, 255),
              st.sampled_from([80, 443, 5000])),
    st.sampled_from(["http", "https"]),
    st.one_of(st.none(), st.just("/etc/ssl/cr.pem")),
    st.booleans(),
)


# --------------------------------------------------------------------------- properties


@given(documents, ours_entries)
def test_merge_then_unmerge_returns_the_original(document: dict[str, Any], ours: dict[str, Any]) -> None:
    merged = ry.merge(document, ours, [])
    assert ry.unmerge(merged, ry.owned_keys(ours)) == document


@given(documents, ours_entries)
def test_merging_twice_equals_merging_once_byte_for_byte(document: dict[str, Any], ours: dict[str, Any]) -> None:
    once = ry.merge(document, ours, [])
    twice = ry.merge(ry.parse(ry.dump(once)), ours, ry.owned_keys(ours))
    assert twice == once
    assert ry.dump(twice) == ry.dump(once)


@given(documents, ours_entries)
def test_foreign_entries_survive_exactly(document: dict[str, Any], ours: dict[str, Any]) -> None:
    before = copy.deepcopy(document)
    merged = ry.merge(document, ours, [])
    assert document == before  # input untouched
    for section in ry.SECTIONS:
        for key, entry in (document.get(section) or {}).items():
            assert merged[section][key] == entry
    ry.validate(merged)


@given(documents, ours_entries, ours_entries)
def test_an_endpoint_change_replaces_never_accumulates(
    document: dict[str, Any], first: dict[str, Any], second: dict[str, Any]
) -> None:
    after_first = ry.merge(document, first, [])
    after_second = ry.merge(after_first, second, ry.owned_keys(first))
    assert after_second == ry.merge(document, second, [])


@given(documents)
def test_generated_documents_are_valid_and_round_trip(document: dict[str, Any]) -> None:
    ry.validate(document)
    assert ry.parse(ry.dump(document)) == document


@settings(max_examples=50)
@given(documents, ours_entries)
def test_merged_documents_are_valid_k3s_files(document: dict[str, Any], ours: dict[str, Any]) -> None:
    ry.validate(ry.parse(ry.dump(ry.merge(document, ours, []))))


# --------------------------------------------------------------------------- our entries


def test_http_endpoint_is_a_mirror_without_configs() -> None:
    assert OURS == {"mirrors": {ENDPOINT: {"endpoint": [f"http://{ENDPOINT}"]}}}
    assert ry.owned_keys(OURS) == [("mirrors", ENDPOINT)]


def test_tls_settings_make_a_configs_tls_mapping() -> None:
    assert OURS_TLS == {
        "mirrors": {"10.43.0.11:443": {"endpoint": ["https://10.43.0.11:443"]}},
        "configs": {"10.43.0.11:443": {"tls": {"ca_file": "/etc/ssl/cr.pem", "insecure_skip_verify": True}}},
    }
    only_skip = ry.mirror_entries("cr.local:443", "https", None, True)
    assert only_skip["configs"] == {"cr.local:443": {"tls": {"insecure_skip_verify": True}}}
    assert "configs" not in ry.mirror_entries("cr.local:443", "https", None, False)


@pytest.mark.parametrize("endpoint", ["10.43.0.10", "10.43.0.10:0", "10.43.0.10:70000", "http://x:80", "a b:80", ""])
def test_bad_endpoints_are_rejected(endpoint: str) -> None:
    with pytest.raises(ValueError, match="endpoint"):
        ry.mirror_entries(endpoint, "http", None, False)


def test_ipv6_and_dns_endpoints_are_accepted() -> None:
    assert "[fd00::10]:80" in ry.mirror_entries("[fd00::10]:80", "http", None, False)["mirrors"]
    assert "cr.site.local:443" in ry.mirror_entries("cr.site.local:443", "https", None, False)["mirrors"]


def test_bad_scheme_and_relative_ca_file_are_rejected() -> None:
    with pytest.raises(ValueError, match="scheme"):
        ry.mirror_entries(ENDPOINT, "ftp", None, False)
    with pytest.raises(ValueError, match="ca_file"):
        ry.mirror_entries(ENDPOINT, "https", "ca.pem", False)


# --------------------------------------------------------------------------- merge details


def test_merge_takes_over_an_entry_at_our_key_and_keeps_order() -> None:
    document = {"mirrors": {"docker.io": {"endpoint": ["https://m"]}, ENDPOINT: {"endpoint": ["https://old"]}}}
    merged = ry.merge(document, OURS, [])
    assert merged["mirrors"][ENDPOINT] == {"endpoint": [f"http://{ENDPOINT}"]}
    assert list(merged["mirrors"]) == ["docker.io", ENDPOINT]


def test_merge_into_null_sections() -> None:
    merged = ry.merge({"mirrors": None, "configs": None}, OURS_TLS, [])
    ry.validate(merged)
    assert list(merged["configs"]) == ["10.43.0.11:443"]


def test_unmerge_drops_only_sections_it_emptied() -> None:
    merged = ry.merge({"configs": {"r.io": {"auth": {"username": "u"}}}}, OURS_TLS, [])
    assert ry.unmerge(merged, ry.owned_keys(OURS_TLS)) == {"configs": {"r.io": {"auth": {"username": "u"}}}}
    assert ry.unmerge({"mirrors": {}}, ry.owned_keys(OURS)) == {"mirrors": {}}


def test_dropping_tls_settings_removes_our_configs_entry() -> None:
    with_tls = ry.merge({}, ry.mirror_entries(ENDPOINT, "https", None, True), [])
    without = ry.merge(with_tls, ry.mirror_entries(ENDPOINT, "https", None, False), [
        ("configs", ENDPOINT), ("mirrors", ENDPOINT)])
    assert without == {"mirrors": {ENDPOINT: {"endpoint": [f"https://{ENDPOINT}"]}}}


def test_normalize_ignores_empty_sections() -> None:
    assert ry.normalize({"mirrors": {}, "configs": None}) == {}
    assert ry.normalize({"mirrors": {"a": {}}}) == {"mirrors": {"a": {}}}


# --------------------------------------------------------------------------- schema


MANUAL_PROCEDURE_SAMPLE = b"""mirrors:
  "10.1.1.1:80":
    endpoint:
    - "http://10.1.1.1:80"

configs:
  "10.1.1.1:80":
    tls:
    - insecure_skip_verify: true
"""


@pytest.mark.parametrize(
    ("text", "path", "message"),
    [
        (MANUAL_PROCEDURE_SAMPLE, 'configs["10.1.1.1:80"].tls', "must be a mapping, not a list"),
        (b"mirrors:\n  r.io:\n    endpoint: http://m\n", 'mirrors["r.io"].endpoint', "must be a list"),
        (b"mirrors:\n  r.io:\n    endpoints: [http://m]\n", 'mirrors["r.io"].endpoints', "did you mean endpoint"),
        (b"mirror:\n  r.io:\n    endpoint: [http://m]\n", "mirror", "unknown key in the top level"),
        (b"configs:\n  r.io:\n    tls:\n      insecure_skip_verify: \"true\"\n",
         'configs["r.io"].tls.insecure_skip_verify', "must be a boolean"),
        (b"configs:\n  r.io:\n    tls:\n      insecure_skip_verify: 1\n",
         'configs["r.io"].tls.insecure_skip_verify', "must be a boolean"),
        (b"configs:\n  r.io:\n    auth: [username, password]\n", 'configs["r.io"].auth', "must be a mapping"),
        (b"configs:\n  r.io:\n    auth:\n      password: 12345\n", 'configs["r.io"].auth.password', "quote it"),
        (b"configs:\n  r.io:\n    auth:\n      token: x\n", 'configs["r.io"].auth.token', "unknown key in auth"),
        (b"configs:\n  r.io:\n    tls:\n      ca: /x\n", 'configs["r.io"].tls.ca', "unknown key in tls"),
        (b"configs:\n  r.io:\n    tlss: {}\n", 'configs["r.io"].tlss', "unknown key"),
        (b"mirrors:\n  r.io:\n    endpoint: [8080]\n", 'mirrors["r.io"].endpoint[0]', "string URL"),
        (b"mirrors:\n  r.io:\n    rewrite: [a]\n", 'mirrors["r.io"].rewrite', "must be a mapping"),
        (b"mirrors:\n  r.io:\n    rewrite: {a: 1}\n", 'mirrors["r.io"].rewrite["a"]', "must be a string"),
        (b"mirrors:\n  5000:\n    endpoint: [http://m]\n", "mirrors[5000]", "key must be a string"),
        (b"mirrors: [r.io]\n", "mirrors", "must be a mapping"),
        (b"mirrors:\n  r.io: [http://m]\n", 'mirrors["r.io"]', "must be a mapping"),
    ],
)
def test_schema_rejects_what_k3s_would_choke_on_or_ignore(text: bytes, path: str, message: str) -> None:
    with pytest.raises(ry.RegistriesYamlError) as caught:
        ry.validate(ry.parse(text))
    assert caught.value.path == path
    assert message in str(caught.value)
    assert path in str(caught.value)


def test_schema_accepts_the_documented_k3s_shapes() -> None:
    ry.validate(ry.parse(b"""
mirrors:
  docker.io:
    endpoint: ["https://mirror.example:5000", "http://10.0.0.1"]
    rewrite:
      "^rancher/(.*)": "mirrorproject/rancher-images/$1"
  "*":
  registry.example.com:
configs:
  "mirror.example:5000":
    auth: {username: u, password: p, auth: x, identity_token: t}
    tls: {ca_file: /a, cert_file: /b, key_file: /c, insecure_skip_verify: yes}
  other.example:
"""))


# --------------------------------------------------------------------------- parse / dump


@pytest.mark.parametrize("content", [None, b"", b"\n", b"# only a comment\n", b"---\n", ""])
def test_empty_or_missing_file_is_an_empty_document(content: bytes | str | None) -> None:
    assert ry.parse(content) == {}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"- a\n- b\n", "must hold a mapping"),
        (b"just text\n", "must hold a mapping"),
        (b"mirrors: [\n", "not valid YAML"),
        (b"\xff\xfe\x00", "not UTF-8"),
        (b"mirrors:\n  a: {}\nmirrors:\n  b: {}\n", "duplicate key 'mirrors'"),
        (b"configs:\n  r.io:\n    auth: {username: a, username: b}\n", "duplicate key 'username'"),
    ],
)
def test_unusable_files_raise_a_clear_error(content: bytes, message: str) -> None:
    with pytest.raises(ry.RegistriesYamlError, match=message):
        ry.parse(content)


def test_dump_keeps_document_order_and_quotes_what_needs_it() -> None:
    document = {"mirrors": {"z.io": {"endpoint": ["http://z"]}, "a.io": {"endpoint": ["http://a"]}},
                "configs": {"r.io": {"auth": {"password": "123"}}}}
    text = ry.dump(document).decode()
    assert text.index("z.io") < text.index("a.io")
    assert "password: '123'" in text
    assert ry.parse(text) == document


def test_https_entries_with_login_server_and_auth_are_valid_for_k3s_and_merge_cleanly() -> None:
    ours = ry.mirror_entries(
        "10.43.200.200:443", "https", "/etc/rancher/k3s/edge-registry-ca.crt", False,
        login_server="contosoedge.azurecr.io", username="ship01-client-token", password="12345",
    )
    foreign = {"mirrors": {"docker.io": {"endpoint": ["https://mirror.example:5000"]}},
               "configs": {"mirror.example:5000": {"auth": {"username": "u", "password": "p"}}}}
    merged = ry.merge(foreign, ours, [])
    ry.validate(merged)
    assert ry.parse(ry.dump(merged)) == merged  # the password "12345" stays a string
    assert ry.owned_keys(ours) == [
        ("configs", "10.43.200.200:443"), ("mirrors", "10.43.200.200:443"), ("mirrors", "contosoedge.azurecr.io"),
    ]
    assert ry.unmerge(merged, ry.owned_keys(ours)) == foreign


def test_half_a_credential_is_refused() -> None:
    with pytest.raises(ValueError, match="username and password"):
        ry.mirror_entries("10.43.200.200:443", "https", None, False, username="u")
