"""How the site wires its https material: what the certificate is for, brought CAs and certificates,
and the warnings about brought ones nearing expiry.

Everything runs through the real program under the SDK's mocks (components/preview/render.py), as
tests/test_site_wiring.py does. Brought material is real (trustme, an independent issuer, or
components/tls.py) and set as secrets: render_stack's config overrides keep the TLS keys secret the
way ``pulumi config set --secret`` does (a ``secure:`` value in a stack file cannot be used here:
the render cannot decrypt it and stands in a placeholder).
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import trustme
from pydantic import SecretStr

from components.cluster import certificates as sc
from components import tls
from components.config.fields import ConfigError
from components.preview.output import format_tree
from components.preview.render import render_stack
from components.preview.result import RenderResult
from components.preview.values import mask
from components.cluster.site_tls import check_brought_expiry
from tests.fixture_stacks import STACK_DIR
from tests.test_site_wiring import _node_plan

RELEASE = "kubernetes:helm.sh/v3:Release"
SITE_CA = "pulumi-python:dynamic/edgeregistry:SiteCa"
SERVER_CERTIFICATE = "pulumi-python:dynamic/edgeregistry:ServerCertificate"
CLUSTER_IP = "10.43.200.200"
HOSTS = ("192.0.2.10", "192.0.2.11")


def https(**overrides: Any) -> RenderResult:
    return render_stack(stack="dev", stack_dir=STACK_DIR, config_overrides={"httpEnabled": False, **overrides})


# --- what the issued server certificate is for ------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "ip", "names"),
    [
        # The chart names its Service after the connected registry (config.effective_service_name).
        ({}, CLUSTER_IP, ["devship01", "devship01.connected-registry", "devship01.connected-registry.svc",
                          "devship01.connected-registry.svc.cluster.local"]),
        ({"serviceName": "cr-svc"}, CLUSTER_IP, ["cr-svc", "cr-svc.connected-registry", "cr-svc.connected-registry.svc",
                                                 "cr-svc.connected-registry.svc.cluster.local"]),
        ({"serviceClusterIP": "10.43.9.9", "namespace": "edge"}, "10.43.9.9",
         ["devship01", "devship01.edge", "devship01.edge.svc", "devship01.edge.svc.cluster.local"]),
    ],
    ids=["default service name", "serviceName", "other ip and namespace"],
)
def test_the_server_certificate_names_the_pinned_ip_and_the_four_service_names(
    overrides: dict[str, str], ip: str, names: list[str]
) -> None:
    result = https(**overrides)
    inputs = result.one(SERVER_CERTIFICATE).plain_inputs()
    assert inputs["ipAddresses"] == [ip]
    assert inputs["dnsNames"] == names
    # The IP the certificate names is the one the chart pins and the nodes dial.
    assert result.one(RELEASE).plain_inputs()["values"]["service"]["clusterIP"] == ip
    assert result.outputs["registryEndpoint"] == f"{ip}:443"


# --- brought material ---------------------------------------------------------------------------


def leak_forms(text: str) -> list[str]:
    """Pieces of a PEM that would show if it leaked: a body line, and the start of its base64 (the
    chart's values carry base64 PEM)."""
    return [text.splitlines()[1], base64.b64encode(text.encode()).decode()[:40]]


def assert_masked_everywhere(result: RenderResult, *texts: str) -> None:
    # Each text is used (in the inputs, or in the nodes' payloads, which are encoded and whole
    # secrets: _node_plan checks that), so the checks below are not vacuous.
    revealed = json.dumps([r.plain_inputs() for r in result.resources])
    revealed += "".join((plan.ca or b"").decode() for plan in (_node_plan(result, host) for host in HOSTS))
    shown = "\n".join([
        json.dumps([mask(r.inputs) for r in result.resources]),
        json.dumps([r.as_json(show_secrets=False) for r in result.resources]),
        json.dumps(mask(result.outputs)),
        format_tree(result),
        *result.warnings,
        *result.node_summaries.values(),
    ])
    for text in texts:
        assert any(form in revealed for form in leak_forms(text))
        assert not any(form in shown for form in leak_forms(text))


@pytest.fixture(scope="module")
def brought_ca() -> trustme.CA:
    return trustme.CA()


def test_a_brought_ca_issues_the_server_certificate_and_is_what_the_nodes_trust(brought_ca: trustme.CA) -> None:
    ca_pem, ca_key = brought_ca.cert_pem.bytes().decode(), brought_ca.private_key_pem.bytes().decode()
    result = https(tlsCaCertificate=ca_pem, tlsCaKey=ca_key)
    assert result.by_type(SITE_CA) == []  # no CA of the program's own
    server = result.one(SERVER_CERTIFICATE)
    inputs = server.plain_inputs()
    assert (inputs["caCertificatePem"], inputs["caKeyPem"]) == (ca_pem, ca_key)
    assert {"caCertificatePem", "caKeyPem"} <= set(server.secret_paths)
    assert inputs["ipAddresses"] == [CLUSTER_IP]
    for host in HOSTS:
        assert _node_plan(result, host).ca == ca_pem.encode()
    assert_masked_everywhere(result, ca_pem, ca_key)


def test_a_brought_certificate_is_served_as_given_and_the_nodes_trust_its_ca(brought_ca: trustme.CA) -> None:
    leaf = brought_ca.issue_cert(CLUSTER_IP, "devship01.connected-registry.svc")
    ca_pem = brought_ca.cert_pem.bytes().decode()
    certificate, key = leaf.cert_chain_pems[0].bytes().decode(), leaf.private_key_pem.bytes().decode()
    result = https(tlsCaCertificate=ca_pem, tlsCertificate=certificate, tlsKey=key)
    assert result.by_type(SITE_CA) == result.by_type(SERVER_CERTIFICATE) == []  # nothing issued
    release = result.one(RELEASE)
    values = release.plain_inputs()["values"]
    assert values["tls"] == {
        "crt": base64.b64encode(certificate.encode()).decode(),
        "key": base64.b64encode(key.encode()).decode(),
    }
    assert {"values.tls.crt", "values.tls.key"} <= set(release.secret_paths)
    # The nodes install tlsCaCertificate as given (components/cluster/site_tls.py): config requires it with
    # tlsCertificate and checks that it issued the certificate, so containerd's check passes.
    for host in HOSTS:
        assert _node_plan(result, host).ca == ca_pem.encode()
    assert_masked_everywhere(result, ca_pem, certificate, key)


# --- brought certificates nearing expiry ----------------------------------------------------------------


def material(ca_days: float = 3650, certificate_days: float = 365, at: datetime | None = None) -> dict[str, str]:
    """A CA and a server certificate for the pinned IP, issued with components/tls.py."""
    at = at or datetime.now(UTC)
    ca = tls.issue_ca("brought CA", ca_days, at)
    server = tls.issue_server_certificate(ca.certificate_pem, ca.key_pem, [CLUSTER_IP], [], certificate_days, at)
    return {"tlsCaCertificate": ca.certificate_pem, "tlsCertificate": server.certificate_pem, "tlsKey": server.key_pem}


def expiry(pem: str) -> str:
    return tls.format_time(tls.load_certificate(pem).not_valid_after_utc)


def expiry_warnings(result: RenderResult) -> list[str]:
    return [w for w in result.warnings if "within certificateRenewBeforeDays" in w]


@pytest.mark.parametrize("preview", [False, True], ids=["up", "preview"])
def test_a_brought_certificate_inside_the_renewal_window_is_warned_about(preview: bool) -> None:
    brought = material(certificate_days=20)
    result = render_stack(stack="dev", stack_dir=STACK_DIR, preview=preview,
                          config_overrides={"httpEnabled": False, **brought})
    assert expiry_warnings(result) == [
        f"edge-registry:tlsCertificate: expires on {expiry(brought['tlsCertificate'])}, within "
        "certificateRenewBeforeDays (30); the program does not renew a brought certificate: issue a new one for the "
        "same ClusterIP and set it with tlsKey (pulumi config set --secret edge-registry:tlsCertificate < server.crt)"
    ]


def test_a_brought_ca_inside_the_renewal_window_is_warned_about_by_its_key() -> None:
    brought = material(ca_days=20, certificate_days=20)  # a certificate never outlives its CA
    warnings = sorted(expiry_warnings(https(**brought)))
    assert [w.split(":")[1] for w in warnings] == ["tlsCaCertificate", "tlsCertificate"]
    assert warnings[0].startswith(f"edge-registry:tlsCaCertificate: expires on {expiry(brought['tlsCaCertificate'])}")
    assert "the nodes trust only this CA" in warnings[0]
    assert not any("BEGIN" in w for w in warnings)


def test_no_warning_outside_the_window() -> None:
    assert expiry_warnings(https(**material(certificate_days=365))) == []
    # The window is certificateRenewBeforeDays.
    assert expiry_warnings(https(**material(certificate_days=20), certificateRenewBeforeDays=10)) == []


def test_a_brought_certificate_that_has_expired_at_program_time_stops_the_run_naming_the_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Valid when config checks it; expired by the certificate clock when the program runs.
    brought = material(certificate_days=20)
    monkeypatch.setattr(sc, "now", lambda: datetime.now(UTC) + timedelta(days=21))
    with pytest.raises(ConfigError) as caught:
        https(**brought)
    assert caught.value.problems == [
        f"edge-registry:tlsCertificate: expired on {expiry(brought['tlsCertificate'])}: issue a new one for the same "
        "ClusterIP and set it with tlsKey (pulumi config set --secret edge-registry:tlsCertificate < server.crt)"
    ]


def test_the_check_names_every_expired_key_and_skips_placeholders(monkeypatch: pytest.MonkeyPatch) -> None:
    brought = material(ca_days=20, certificate_days=20)
    monkeypatch.setattr(sc, "now", lambda: datetime.now(UTC) + timedelta(days=21))
    with pytest.raises(ConfigError) as caught:
        check_brought_expiry(
            {"tlsCertificate": SecretStr(brought["tlsCertificate"]),
             "tlsCaCertificate": SecretStr(brought["tlsCaCertificate"])},
            30,
        )
    assert [p.split(": ")[0] for p in caught.value.problems] == ["edge-registry:tlsCertificate",
                                                                  "edge-registry:tlsCaCertificate"]
    assert not any("BEGIN" in p for p in caught.value.problems)
    # The offline render's stand-in for a secret it cannot decrypt, and unset keys: nothing to check.
    check_brought_expiry({"tlsCertificate": SecretStr("[secure:tlsCertificate]"), "tlsCaCertificate": None}, 30)
