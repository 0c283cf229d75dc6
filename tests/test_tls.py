"""Site TLS: issuance with `cryptography`, renewal before expiry, and the checks of brought material.

The brought CAs and certificates come from `trustme` (an independent issuer), so the checks are
not just tested against the program's own output.
"""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import trustme
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from components.cluster import certificates as sc
from components import tls
from components.config.fields import ConfigError
from components.config.loading import load_site_config
from tests.test_config import with_

T0 = datetime(2027, 1, 1, tzinfo=UTC)
IP = "10.43.200.200"
NAMES = ["connected-registry", "connected-registry.connected-registry.svc"]


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Set the time the certificate providers see."""
    def set_time(moment: datetime) -> None:
        monkeypatch.setattr(sc, "now", lambda: moment)
    set_time(T0)
    return set_time


def san(pem: str) -> x509.SubjectAlternativeName:
    return tls.load_certificate(pem).extensions.get_extension_for_class(x509.SubjectAlternativeName).value


# --- issuance --------------------------------------------------------------------------------


def test_ca_is_a_ca_that_signs_only_leaf_certificates() -> None:
    ca = tls.issue_ca("edge-registry ship01 CA", 3650, T0)
    certificate = tls.load_certificate(ca.certificate_pem)
    constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca and constraints.path_length == 0
    assert certificate.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    assert certificate.not_valid_after_utc == T0 + timedelta(days=3650)
    assert tls.ca_problems(ca.certificate_pem, ca.key_pem, T0) == []


def test_server_certificate_names_the_cluster_ip_and_the_service_names() -> None:
    ca = tls.issue_ca("ca", 3650, T0)
    server = tls.issue_server_certificate(ca.certificate_pem, ca.key_pem, [IP], NAMES, 365, T0)
    names = san(server.certificate_pem)
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address(IP)]
    assert names.get_values_for_type(x509.DNSName) == NAMES
    certificate = tls.load_certificate(server.certificate_pem)
    assert ExtendedKeyUsageOID.SERVER_AUTH in certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert not certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    certificate.verify_directly_issued_by(tls.load_certificate(ca.certificate_pem))
    assert tls.server_certificate_problems(server.certificate_pem, server.key_pem, ca.certificate_pem, IP, T0) == []


def test_server_certificate_never_outlives_its_ca() -> None:
    ca = tls.issue_ca("ca", 100, T0)
    server = tls.issue_server_certificate(ca.certificate_pem, ca.key_pem, [IP], [], 365, T0)
    assert server.not_after == T0 + timedelta(days=100)


def test_server_certificate_with_a_brought_rsa_ca() -> None:
    brought = trustme.CA(key_type=trustme.KeyType.RSA)
    server = tls.issue_server_certificate(
        brought.cert_pem.bytes().decode(), brought.private_key_pem.bytes().decode(), [IP], [], 30, T0
    )
    tls.load_certificate(server.certificate_pem).verify_directly_issued_by(
        tls.load_certificate(brought.cert_pem.bytes().decode())
    )


def test_issuing_with_a_key_of_another_ca_is_refused() -> None:
    one, other = tls.issue_ca("one", 10, T0), tls.issue_ca("other", 10, T0)
    with pytest.raises(tls.TlsMaterialError, match="does not belong"):
        tls.issue_server_certificate(one.certificate_pem, other.key_pem, [IP], [], 1, T0)


def test_renewal_is_due_inside_the_window_only() -> None:
    assert not tls.renewal_due("2027-02-01T00:00:00Z", 30, datetime(2027, 1, 1, tzinfo=UTC))
    assert tls.renewal_due("2027-02-01T00:00:00Z", 30, datetime(2027, 1, 2, 0, 0, 1, tzinfo=UTC))


# --- the dynamic providers: issue once, keep, renew ------------------------------------------


def ca_props(**changes: Any) -> dict[str, Any]:
    return {sc.COMMON_NAME: "edge-registry ship01 CA", sc.VALIDITY_DAYS: 3650.0, sc.RENEW_BEFORE_DAYS: 30.0, **changes}


def server_props(ca: dict[str, Any], ca_key: str, **changes: Any) -> dict[str, Any]:
    return {
        sc.CA_CERTIFICATE_PEM: ca[sc.CERTIFICATE_PEM], sc.CA_KEY_PEM: ca_key, sc.IP_ADDRESSES: [IP],
        sc.DNS_NAMES: NAMES, sc.VALIDITY_DAYS: 365.0, sc.RENEW_BEFORE_DAYS: 30.0, **changes,
    }


def test_provider_issues_and_keeps_the_ca_key_out_of_its_outputs(clock: Any) -> None:
    ca = sc.SiteCaProvider().create(ca_props()).outs
    props = server_props(ca, ca[sc.KEY_PEM])
    outs = sc.ServerCertificateProvider().create(props).outs
    assert sc.CA_KEY_PEM not in outs
    assert ca[sc.KEY_PEM] not in str(outs)
    assert outs[sc.NOT_AFTER] == "2028-01-01T00:00:00Z"
    tls.load_certificate(outs[sc.CERTIFICATE_PEM]).verify_directly_issued_by(tls.load_certificate(ca[sc.CERTIFICATE_PEM]))


def test_a_converged_certificate_diffs_as_no_change(clock: Any) -> None:
    provider = sc.ServerCertificateProvider()
    ca = sc.SiteCaProvider().create(ca_props()).outs
    props = server_props(ca, ca[sc.KEY_PEM])
    state = {**props, **provider.create(props).outs}
    clock(T0 + timedelta(days=300))
    diff = provider.diff("id", state, props)
    assert not diff.changes and not diff.replaces
    assert not sc.SiteCaProvider().diff("id", {**ca_props(), **ca}, ca_props()).changes


def test_server_certificate_is_renewed_before_expiry_and_the_ca_stays(clock: Any) -> None:
    ca_provider, provider = sc.SiteCaProvider(), sc.ServerCertificateProvider()
    ca = {**ca_props(), **ca_provider.create(ca_props()).outs}
    props = server_props(ca, ca[sc.KEY_PEM])
    state = {**props, **provider.create(props).outs}
    clock(T0 + timedelta(days=336))  # 29 days before expiry
    assert provider.diff("id", state, props).replaces == [sc.NOT_AFTER]
    # The CA is not due: the nodes keep the CA they trust.
    assert not ca_provider.diff("id", ca, ca_props()).changes
    renewed = provider.create(props).outs
    assert renewed[sc.CERTIFICATE_PEM] != state[sc.CERTIFICATE_PEM]
    assert renewed[sc.NOT_AFTER] == tls.format_time(T0 + timedelta(days=336 + 365))
    tls.load_certificate(renewed[sc.CERTIFICATE_PEM]).verify_directly_issued_by(tls.load_certificate(ca[sc.CERTIFICATE_PEM]))


@pytest.mark.parametrize(
    "change",
    [{sc.IP_ADDRESSES: ["10.43.200.201"]}, {sc.DNS_NAMES: ["other"]}, {sc.CA_CERTIFICATE_PEM: "other CA"}],
    ids=["ip", "dns", "ca"],
)
def test_other_names_or_another_ca_replace_the_certificate(clock: Any, change: dict[str, Any]) -> None:
    provider = sc.ServerCertificateProvider()
    ca = sc.SiteCaProvider().create(ca_props()).outs
    props = server_props(ca, ca[sc.KEY_PEM])
    state = {**props, **provider.create(props).outs}
    assert provider.diff("id", state, {**props, **change}).replaces == list(change)


def test_new_lifetimes_alone_are_no_update(clock: Any) -> None:
    # The engine records the new inputs and keeps the certificate; an update would preview the
    # certificate and key as unknown (and the release and nodes with them).
    provider = sc.ServerCertificateProvider()
    ca = sc.SiteCaProvider().create(ca_props()).outs
    props = server_props(ca, ca[sc.KEY_PEM])
    state = {**props, **provider.create(props).outs}
    news = {**props, sc.VALIDITY_DAYS: 90.0, sc.RENEW_BEFORE_DAYS: props[sc.RENEW_BEFORE_DAYS] - 1}
    diff = provider.diff("id", state, news)
    assert not diff.changes and not diff.replaces
    # An update planned by an older diff keeps the certificate too.
    outs = provider.update("id", state, news).outs
    assert outs[sc.CERTIFICATE_PEM] == state[sc.CERTIFICATE_PEM] and outs[sc.VALIDITY_DAYS] == 90.0


def test_check_refuses_a_renewal_window_not_shorter_than_the_lifetime() -> None:
    failures = sc.SiteCaProvider().check({}, ca_props(**{sc.RENEW_BEFORE_DAYS: 3650.0})).failures
    assert [f.property for f in failures] == [sc.RENEW_BEFORE_DAYS]


def test_the_ca_key_is_a_secret_output_and_input() -> None:
    # additional_secret_outputs is what keeps keyPem secret in the state; checked on the options.
    from components.preview.render import render_stack

    from tests.fixture_stacks import STACK_DIR

    result = render_stack(stack_dir=STACK_DIR, config_overrides={"httpEnabled": False})
    ca = result.one("pulumi-python:dynamic/edgeregistry:SiteCa")
    server = result.one("pulumi-python:dynamic/edgeregistry:ServerCertificate")
    for resource in (ca, server):
        assert resource.options["additionalSecretOutputs"] == ["keyPem"], resource.name
    assert server.secret_paths == ["caKeyPem"]


# --- brought material, checked by config -----------------------------------------------------


def brought(ip: str = IP) -> dict[str, str]:
    ca = trustme.CA()
    leaf = ca.issue_cert(ip, "connected-registry.connected-registry.svc")
    return {
        "tlsCaCertificate": ca.cert_pem.bytes().decode(),
        "tlsCaKey": ca.private_key_pem.bytes().decode(),
        "tlsCertificate": leaf.cert_chain_pems[0].bytes().decode(),
        "tlsKey": leaf.private_key_pem.bytes().decode(),
    }


def problems(**values: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_site_config(with_(**values))
    return caught.value.problems


def test_a_brought_ca_with_its_key_is_accepted() -> None:
    material = brought()
    site = load_site_config(with_(tlsCaCertificate=material["tlsCaCertificate"], tlsCaKey=material["tlsCaKey"]))
    assert site.tls_ca_key is not None


def test_a_brought_certificate_for_the_cluster_ip_is_accepted() -> None:
    material = brought()
    material.pop("tlsCaKey")
    site = load_site_config(with_(**material))
    assert site.tls_certificate is not None


def test_a_brought_certificate_for_another_ip_names_the_key() -> None:
    material = brought("10.43.9.9")
    material.pop("tlsCaKey")
    (problem,) = problems(**material)
    assert problem.startswith("edge-registry:tlsCertificate:") and "10.43.200.200" in problem


def test_a_key_of_another_certificate_names_the_key_and_never_echoes_it() -> None:
    material, other = brought(), brought()
    material.pop("tlsCaKey")
    (problem,) = problems(**{**material, "tlsKey": other["tlsKey"]})
    assert problem.startswith("edge-registry:tlsKey:") and "PRIVATE KEY" not in problem


def test_a_certificate_from_another_ca_is_refused() -> None:
    material, other = brought(), brought()
    material.pop("tlsCaKey")
    (problem,) = problems(**{**material, "tlsCaCertificate": other["tlsCaCertificate"]})
    assert problem.startswith("edge-registry:tlsCertificate:") and "not issued by the CA" in problem


@pytest.mark.parametrize(
    ("given", "key"),
    [(("tlsCertificate",), "tlsKey"), (("tlsKey",), "tlsCertificate"), (("tlsCertificate", "tlsKey"), "tlsCaCertificate"),
     (("tlsCaKey",), "tlsCaCertificate"), (("tlsCaCertificate", "tlsCaKey", "tlsCertificate", "tlsKey"), "tlsCaKey")],
    ids=["cert without key", "key without cert", "cert without ca", "ca key without ca", "both ways"],
)
def test_incomplete_or_conflicting_material_names_the_key(given: tuple[str, ...], key: str) -> None:
    material = brought()
    found = problems(**{k: material[k] for k in given})
    assert any(p.startswith(f"edge-registry:{key}:") for p in found), found


def test_tls_material_on_an_http_site_is_refused() -> None:
    material = brought()
    found = problems(httpEnabled="true", tlsCaCertificate=material["tlsCaCertificate"])
    assert found == ["edge-registry:tlsCaCertificate: only applies to https (httpEnabled: false)"]


def test_a_not_ca_certificate_as_ca_is_refused() -> None:
    material = brought()
    (problem,) = problems(tlsCaCertificate=material["tlsCertificate"], tlsCaKey=material["tlsKey"])
    assert problem.startswith("edge-registry:tlsCaCertificate:") and "not a CA" in problem


def test_no_key_material_is_in_the_render_outside_a_secret() -> None:
    # The render's stand-in keys are plain text; masked, the whole render must not contain them.
    import json

    from components.preview.render import render_stack
    from components.preview.values import mask
    from tests.fixture_stacks import STACK_DIR

    result = render_stack(stack_dir=STACK_DIR, config_overrides={"httpEnabled": False})
    revealed = json.dumps([r.plain_inputs() for r in result.resources])
    assert "render-fake-private-key" in revealed  # the check below is not vacuous
    assert "render-fake-private-key" not in json.dumps([mask(r.inputs) for r in result.resources])
    assert "render-fake-private-key" not in json.dumps(mask(result.outputs))


@pytest.mark.parametrize("provider", ["SiteCaProvider", "ServerCertificateProvider"])
def test_the_pickled_provider_loads_by_reference_in_a_fresh_process(provider: str) -> None:
    """State holds the provider as the SDK pickles it; the engine's provider process unpickles it
    on refresh, update and destroy, importing components.cluster.certificates by that path."""
    import base64
    import subprocess
    import sys
    from pathlib import Path

    from pulumi.dynamic.dynamic import serialize_provider

    pickled = serialize_provider(getattr(sc, provider)())
    assert b"components.cluster.certificates" in base64.b64decode(pickled)  # by reference, not by value
    probe = (
        "import base64, sys, dill\n"
        "from components import tls\n"
        "from datetime import UTC, datetime\n"
        "p = dill.loads(base64.b64decode(sys.stdin.read()))\n"
        "print(type(p).__module__, type(p).__name__)\n"
        "ca = tls.issue_ca('x CA', 10, datetime.now(UTC))\n"
        "props = {'commonName': 'x CA', 'validityDays': 10, 'renewBeforeDays': 1,\n"
        "         'caCertificatePem': ca.certificate_pem, 'caKeyPem': ca.key_pem, 'ipAddresses': ['10.43.0.1'], 'dnsNames': []}\n"
        "print(p.create(props).outs['certificatePem'].splitlines()[0])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], input=pickled, text=True, capture_output=True, timeout=60,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"components.cluster.certificates {provider}", "-----BEGIN CERTIFICATE-----"]


def test_a_brought_ca_inside_the_renewal_window_is_refused_when_the_program_issues_with_it() -> None:
    soon = tls.issue_ca("short-lived CA", 20, datetime.now(UTC))
    (problem,) = problems(tlsCaCertificate=soon.certificate_pem, tlsCaKey=soon.key_pem)
    assert problem.startswith("edge-registry:tlsCaCertificate: expires on") and "renew the CA first" in problem
    assert "PRIVATE" not in problem  # the key is never echoed
    # With a shorter window it is accepted.
    assert load_site_config(with_(tlsCaCertificate=soon.certificate_pem, tlsCaKey=soon.key_pem,
                                  certificateRenewBeforeDays="10")).tls_ca_key is not None
