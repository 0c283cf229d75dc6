"""The https settings of a site: the issued certificates' lifetime, or the CA and certificate a
site brings; and the https rules that span keys (:func:`https_problems`).

https is the default, plain http the opt-in (``httpEnabled``, a cluster setting). The X.509 checks
of brought material are :mod:`components.tls`'s pure functions (``cryptography``, no Pulumi).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import Field, SecretStr, field_validator

from components import tls
from components.config.fields import ConfigInt, ConfigModel, int_or_none, is_placeholder, truthy

#: The keys of brought TLS material: field name -> config key.
TLS_MATERIAL_KEYS = {"tls_ca_certificate": "tlsCaCertificate", "tls_ca_key": "tlsCaKey",
                     "tls_certificate": "tlsCertificate", "tls_key": "tlsKey"}


class HttpsSettings(ConfigModel):
    """Certificates for https (a part of :class:`~components.config.site.SiteConfig`)."""

    certificate_validity_days: ConfigInt = Field(
        365, alias="certificateValidityDays", ge=1, le=3650,
        description="Lifetime of the registry's issued server certificate.",
    )
    certificate_renew_before_days: ConfigInt = Field(
        30, alias="certificateRenewBeforeDays", ge=0,
        description="Renew the issued server certificate (and the site CA) this many days before it expires.",
    )
    tls_ca_certificate: SecretStr | None = Field(
        None, alias="tlsCaCertificate", description="Bring your own CA: its certificate, PEM (secret)."
    )
    tls_ca_key: SecretStr | None = Field(
        None, alias="tlsCaKey", description="The brought CA's key, PEM (secret): the program issues with it."
    )
    tls_certificate: SecretStr | None = Field(
        None, alias="tlsCertificate",
        description="Bring your own server certificate, PEM (secret); needs tlsKey and tlsCaCertificate.",
    )
    tls_key: SecretStr | None = Field(None, alias="tlsKey", description="Its key, PEM (secret).")

    @field_validator("tls_ca_certificate", "tls_certificate")
    @classmethod
    def _pem_certificate(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or is_placeholder(value.get_secret_value()):
            return value
        try:
            tls.load_certificate(value.get_secret_value())
        except tls.TlsMaterialError as error:
            raise ValueError(str(error)) from None
        return value

    @field_validator("tls_ca_key", "tls_key")
    @classmethod
    def _pem_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or is_placeholder(value.get_secret_value()):
            return value
        try:
            tls.load_private_key(value.get_secret_value())
        except tls.TlsMaterialError as error:
            raise ValueError(str(error)) from None
        return value


def _secret_text(value: Any) -> str | None:
    """The text of a secret config value (raw or validated); None when unset or a render placeholder."""
    text = value.get_secret_value() if isinstance(value, SecretStr) else value
    return text if isinstance(text, str) and text and not is_placeholder(text) else None


def https_problems(values: Mapping[str, Any]) -> list[tuple[str, str, tuple[str, ...]]]:
    """https is the default: it needs the pinned ClusterIP; brought TLS material must fit together.

    Problems as :func:`~components.config.site.cross_field_problems` gives them (key, message,
    keys involved), on validated or raw values by field name."""
    given = {alias for name, alias in TLS_MATERIAL_KEYS.items() if values.get(name) not in (None, "")}
    material = tuple(TLS_MATERIAL_KEYS.values())
    problems: list[tuple[str, str, tuple[str, ...]]] = []
    if truthy(values.get("http_enabled")):
        for key in sorted(given):
            problems.append((key, "only applies to https (httpEnabled: false)", (key, "httpEnabled")))
        if truthy(values.get("mirror_insecure_skip_verify")):
            problems.append(("mirrorInsecureSkipVerify", "only applies to an https endpoint (httpEnabled: false)",
                             ("mirrorInsecureSkipVerify", "httpEnabled")))
        return problems
    if values.get("service_cluster_ip") is None:
        problems.append((
            "serviceClusterIP",
            "required for https (the default): the registry's certificate names its ClusterIP. Pick a free "
            "IP in the cluster's service CIDR (e.g. 10.43.200.200), or opt in to plain http with "
            "httpEnabled: true in Pulumi.<site>.yaml",
            ("serviceClusterIP", "httpEnabled"),
        ))
    if ("tlsCertificate" in given) != ("tlsKey" in given):
        missing = "tlsKey" if "tlsCertificate" in given else "tlsCertificate"
        problems.append((missing, "required with " + ({"tlsCertificate", "tlsKey"} - {missing}).pop(), material))
    if given & {"tlsCertificate", "tlsKey"} and "tlsCaCertificate" not in given:
        problems.append(
            ("tlsCaCertificate", "required with tlsCertificate: the nodes trust the CA that issued it", material)
        )
    if "tlsCaKey" in given and "tlsCaCertificate" not in given:
        problems.append(("tlsCaCertificate", "required with tlsCaKey", material))
    if "tlsCaKey" in given and "tlsCertificate" in given:
        problems.append(
            ("tlsCaKey", "set either tlsCaKey (the program issues) or tlsCertificate and tlsKey, not both", material)
        )
    if problems:
        return problems
    # The material itself: checked only when every piece is real (the render has placeholders).
    at = datetime.now(UTC)
    ca, ca_key = _secret_text(values.get("tls_ca_certificate")), _secret_text(values.get("tls_ca_key"))
    certificate, server_key = _secret_text(values.get("tls_certificate")), _secret_text(values.get("tls_key"))
    names = {"ca": "tlsCaCertificate", "ca_key": "tlsCaKey", "certificate": "tlsCertificate", "key": "tlsKey"}
    found: list[tuple[str, str]] = []
    if ca is not None and ("tlsCaKey" not in given or ca_key is not None):
        renew = int_or_none(values.get("certificate_renew_before_days")) if ca_key is not None else None
        found += tls.ca_problems(ca, ca_key, at, renew)
    if ca is not None and certificate is not None and server_key is not None:
        ip = values.get("service_cluster_ip")
        found += tls.server_certificate_problems(certificate, server_key, ca, str(ip) if ip else None, at)
    return [(names[which], message, (names[which], "serviceClusterIP")) for which, message in found]
