"""SiteTls: the https material of one site — the CA its nodes trust, the registry's certificate and key.

Three ways, chosen by config (docs/configuration.md, the https keys):

* **issued** (default): a per-site CA (:class:`~components.cluster.certificates.SiteCa`) and a server
  certificate it signs (:class:`~components.cluster.certificates.ServerCertificate`), renewed before
  expiry;
* **own CA** (``tlsCaCertificate`` + ``tlsCaKey``): the server certificate is issued and renewed
  with the site's CA;
* **own certificate** (``tlsCertificate`` + ``tlsKey`` + ``tlsCaCertificate``): used as given;
  renewing it is the operator's job. :func:`check_brought_expiry` warns on every run once a
  brought certificate is within ``certificateRenewBeforeDays`` of expiry and stops the run once it
  has expired.

Every PEM leaves this component as a secret Output: the keys are secrets, and the certificates are
kept secret too so that a brought one set with ``--secret`` is never printed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
from pydantic import SecretStr

from components.cluster import certificates as site_certificates

from components import tls
from components.config.fields import PROJECT, ConfigError, is_placeholder
from components.cluster.certificates import CA_VALIDITY_DAYS, ServerCertificate, SiteCa

#: What to do about a brought certificate nearing expiry, by config key.
_RENEW_HINT = {
    "tlsCertificate": "issue a new one for the same ClusterIP and set it with tlsKey "
    "(pulumi config set --secret edge-registry:tlsCertificate < server.crt)",
    "tlsCaCertificate": "the nodes trust only this CA: bring its successor before then "
    "(docs/runbooks.md, \"Rotate credentials\")",
}


def service_dns_names(service: str, namespace: str) -> list[str]:
    """The names the registry's Service answers to inside the cluster, shortest first."""
    return [service, f"{service}.{namespace}", f"{service}.{namespace}.svc", f"{service}.{namespace}.svc.cluster.local"]


def check_brought_expiry(
    brought: Mapping[str, SecretStr | None], renew_before_days: float, resource: pulumi.Resource | None = None
) -> None:
    """Warn about brought certificates (config key -> PEM) within ``renew_before_days`` of expiry;
    raise :class:`ConfigError` naming every one that has expired.

    The program renews only what it issues: a brought certificate runs out unless the operator
    replaces it, so every run (preview too) says so while there is time. The config model refuses
    an expired one when it can check all the material; this runs at program time with the
    certificate clock, and also where the offline render stands in for a secret next to it.
    Only the key and the date are named: the PEM itself is a secret.
    """
    at = site_certificates.now()
    expired: list[str] = []
    for key, value in brought.items():
        text = value.get_secret_value() if value is not None else ""
        if not text or is_placeholder(text):
            continue
        try:
            not_after = tls.load_certificate(text).not_valid_after_utc
        except tls.TlsMaterialError:
            continue  # the config model reports malformed material by its key
        hint = _RENEW_HINT.get(key, "replace it")
        if not_after <= at:
            expired.append(f"{PROJECT}:{key}: expired on {tls.format_time(not_after)}: {hint}")
        elif tls.renewal_due(tls.format_time(not_after), renew_before_days, at):
            pulumi.log.warn(
                f"{PROJECT}:{key}: expires on {tls.format_time(not_after)}, within certificateRenewBeforeDays "
                f"({renew_before_days:g}); the program does not renew a brought certificate: {hint}",
                resource=resource,
            )
    if expired:
        raise ConfigError(expired)


@dataclass(kw_only=True)
class SiteTlsArgs:
    """Arguments of :class:`SiteTls`; the site's config model has validated them."""

    #: Site name, for the CA's common name.
    site: str
    #: The registry's pinned ClusterIP (the certificate's IP address).
    cluster_ip: str
    #: The Service's in-cluster DNS names.
    dns_names: list[str]
    #: Lifetime of an issued server certificate, days.
    validity_days: int
    #: Renew an issued certificate (and the CA) this many days before it expires.
    renew_before_days: int
    #: A CA the site brings (PEM, secret); with ``ca_key`` the program issues with it.
    ca_certificate: pulumi.Input[str] | None = None
    #: The brought CA's key (PEM, secret).
    ca_key: pulumi.Input[str] | None = None
    #: A server certificate the site brings (PEM, secret), with ``key``.
    certificate: pulumi.Input[str] | None = None
    #: Its key (PEM, secret).
    key: pulumi.Input[str] | None = None

    def __post_init__(self) -> None:
        if (self.certificate is None) != (self.key is None):
            raise ValueError("SiteTlsArgs: set both certificate and key, or neither")
        if self.certificate is not None and self.ca_certificate is None:
            raise ValueError("SiteTlsArgs: a brought certificate needs the CA certificate the nodes trust")
        if self.ca_key is not None and self.ca_certificate is None:
            raise ValueError("SiteTlsArgs: a CA key needs its CA certificate")


class SiteTls(pulumi.ComponentResource):
    """The CA the nodes trust and the certificate and key the registry serves."""

    ca_certificate_pem: pulumi.Output[str]
    """The CA certificate the nodes install (secret Output)."""
    certificate_pem: pulumi.Output[str]
    """The server certificate (secret Output)."""
    key_pem: pulumi.Output[str]
    """The server certificate's key (secret)."""
    not_after: pulumi.Output[str] | None
    """When the issued server certificate expires; None for a brought one."""

    def __init__(self, name: str, args: SiteTlsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("edge-registry:index:SiteTls", name, {}, opts)
        child = pulumi.ResourceOptions(parent=self)
        if args.certificate is not None and args.key is not None and args.ca_certificate is not None:
            self.ca_certificate_pem = pulumi.Output.secret(args.ca_certificate)
            self.certificate_pem = pulumi.Output.secret(args.certificate)
            self.key_pem = pulumi.Output.secret(args.key)
            self.not_after = None
        else:
            if args.ca_certificate is not None and args.ca_key is not None:
                ca_certificate, ca_key = pulumi.Output.from_input(args.ca_certificate), args.ca_key
            else:
                ca = SiteCa(
                    f"{name}-ca",
                    common_name=f"edge-registry {args.site} CA",
                    validity_days=CA_VALIDITY_DAYS,
                    renew_before_days=args.renew_before_days,
                    opts=child,
                )
                ca_certificate, ca_key = ca.certificate_pem, ca.key_pem
            server = ServerCertificate(
                f"{name}-server",
                ca_certificate_pem=ca_certificate,
                ca_key_pem=pulumi.Output.secret(ca_key),
                ip_addresses=[args.cluster_ip],
                dns_names=list(args.dns_names),
                validity_days=args.validity_days,
                renew_before_days=args.renew_before_days,
                opts=child,
            )
            self.ca_certificate_pem = pulumi.Output.secret(ca_certificate)
            self.certificate_pem = pulumi.Output.secret(server.certificate_pem)
            self.key_pem = pulumi.Output.secret(server.key_pem)
            self.not_after = server.not_after
        self.register_outputs({"not_after": self.not_after})
