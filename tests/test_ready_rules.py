"""The rules under ``python -m components ready`` that need no server: ``requiredImages``'s
validation, the mirror a node's registries.yaml gives containerd (components/nodes/resolve.py),
the resolve script's output, and that the program declares nothing from the list.
(tests/test_ready.py runs the command against real registries and nodes.)"""

from __future__ import annotations

import base64
import json
import re

import pytest
import yaml


def test_required_images_are_validated_with_the_key_named() -> None:
    from components.config.fields import ConfigError
    from components.config.loading import load_site_config

    base = {"registryName": "contosoedge", "registryResourceGroup": "rg", "connectedRegistryName": "shipone",
            "repositories": '["samples/*"]', "kubeconfigPath": "/k", "httpEnabled": "true"}
    good = load_site_config({**base, "requiredImages": json.dumps(["samples/a:1.0", "samples/b@sha256:" + "a" * 64])})
    assert [str(i) for i in good.required_image_references] == ["samples/a:1.0", "samples/b@sha256:" + "a" * 64]
    for entry, says in (
        ("contosoedge.azurecr.io/samples/a:1", "name the repository without the registry host"),
        ("samples/a", "expected `repository:tag` or `repository@sha256:<64 hex>`"),
        ("Samples/a:1", "is not a lower-case repository name"),
        ("samples/a@sha256:abc", "the digest is not sha256:<64 lower-case hex digits>"),
        ("samples/a:-x", "the tag '-x' is not"),
    ):
        with pytest.raises(ConfigError) as raised:
            load_site_config({**base, "requiredImages": json.dumps([entry])})
        (line,) = raised.value.problems
        assert line.startswith("edge-registry:requiredImages: ") and says in line, line
    with pytest.raises(ConfigError) as twice:
        load_site_config({**base, "requiredImages": json.dumps(["a:1", "a:1"])})
    assert twice.value.problems == ["edge-registry:requiredImages: ['a:1', 'a:1'] is invalid: listed more than once: a:1"]


def test_the_mirror_plan_is_what_k3s_gives_containerd() -> None:
    from components.nodes.resolve import MirrorPlanError, mirror_plan

    login = "contosoedge.azurecr.io"
    document = {
        "mirrors": {login: {"endpoint": ["10.43.0.10:443", "http://10.43.0.11:80"]}},
        "configs": {"10.43.0.10:443": {"auth": {"username": "u", "password": "p"},
                                       "tls": {"ca_file": "/etc/rancher/k3s/ca.crt"}},
                    "10.43.0.11:80": {"auth": {"auth": "dTpw"}, "tls": {"insecure_skip_verify": True}}},
    }
    first, second = mirror_plan(yaml.safe_dump(document).encode(), login)
    # no scheme: https; configs looked up by the endpoint's host:port
    assert (first.url, first.ca_file, first.insecure_skip_verify, first.auth) == (
        "https://10.43.0.10:443", "/etc/rancher/k3s/ca.crt", False, base64.b64encode(b"u:p").decode())
    assert (second.url, second.ca_file, second.insecure_skip_verify, second.auth) == (
        "http://10.43.0.11:80", None, True, "dTpw")
    assert str(first.auth) not in repr(first) and "dTpw" not in repr(second)
    # the "*" mirror serves every registry without its own entry (k3s >= 1.29.3)
    star = mirror_plan(b'mirrors:\n  "*":\n    endpoint: ["https://10.0.0.1:443"]\n', login)
    assert [e.url for e in star] == ["https://10.0.0.1:443"]
    for content, says in (
        (None, "no mirror for contosoedge.azurecr.io"),
        (b'mirrors:\n  docker.io:\n    endpoint: ["https://m"]\n', "no mirror for contosoedge.azurecr.io"),
        (yaml.safe_dump({"mirrors": {login: {"endpoint": ["https://m:1"], "rewrite": {"^a/(.*)": "b/$1"}}}}).encode(),
         "rewrites repository names"),
        (yaml.safe_dump({"mirrors": {login: {"endpoint": ["https://m:1/some/path"]}}}).encode(), "not scheme://host[:port]"),
        (yaml.safe_dump({"mirrors": {login: {"endpoint": ["https://m:1"]}},
                         "configs": {"m:1": {"auth": {"identity_token": "t"}}}}).encode(), "identity_token"),
        (b"mirrors: [", "not valid YAML"),
    ):
        with pytest.raises(MirrorPlanError, match=re.escape(says)):
            mirror_plan(content, login)


def test_the_resolve_output_must_be_the_scripts() -> None:
    from components.nodes.resolve import Attempt, parse_resolve_output

    digest = "sha256:" + "b" * 64
    out = f"edge-registry-resolve 1\nattempt 1 https://m:1 http-404 -\nattempt 1 https://n:1 ok {digest}\n" \
          "attempt 2 https://m:1 error - (7) Failed to connect\n"
    assert parse_resolve_output(out, 2) == [
        [Attempt("https://m:1", "http-404", None), Attempt("https://n:1", "ok", digest)],
        [Attempt("https://m:1", "error", None, "(7) Failed to connect")],
    ]
    for bad in ("", "something else\n", "edge-registry-resolve 1\nattempt 3 x ok -\n", "edge-registry-resolve 1\nrm -rf\n"):
        with pytest.raises(ValueError):
            parse_resolve_output(bad, 2)


def test_required_images_change_nothing_the_program_declares() -> None:
    """The program only validates the list: the same resources, inputs and outputs with or without it."""
    from components.preview.render import render_stack
    from tests.fixture_stacks import STACK_DIR

    catalog = ["hello-world", "fleet/a", "fleet/b", "samples/hello"]

    def rendered(images: list[str] | None) -> tuple[list[dict], dict]:
        result = render_stack(stack="dev", stack_dir=STACK_DIR, catalog=lambda _server: catalog,
                              config_overrides={"requiredImages": None if images is None else json.dumps(images)})
        return [r.as_json(True) for r in result.resources], result.outputs

    without = rendered(None)
    assert rendered(["samples/hello:v1", "fleet/a@sha256:" + "d" * 64]) == without
    assert without[0]  # something was declared
    # ... and the program does validate it
    from components.config.fields import ConfigError

    with pytest.raises(ConfigError, match="edge-registry:requiredImages: "):
        rendered(["samples/hello"])
