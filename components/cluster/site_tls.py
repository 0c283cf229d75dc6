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

A new CA (the issued one renewed, or another brought with its key) reaches the nodes before the
server certificate uses it, in three ``up`` steps (components/cluster/ca_renewal.py): each node's
CA file comes from :meth:`SiteTls.node_ca_certificate`. A brought certificate is not staged: the
nodes get ``tlsCaCertificate`` as given (docs/runbooks.md, "Renew the site CA", for the order).

Every PEM leaves this component as a secret Output: the keys are secrets, and the certificates are
kept secret too so that a brought one set with ``--secret`` is never printed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

import pulumi
from pydantic import SecretStr

from components.cluster import ca_renewal
from components.cluster import certificates as site_certificates

from components import tls
from components.config.fields import PROJECT, ConfigError, is_placeholder
from components.nodes.payload import NodeRead
from components.cluster.certificates import CA_VALIDITY_DAYS, ServerCertificate, SiteCa

#: What to do about a brought certificate nearing expiry, by config key.
_RENEW_HINT = {
    "tlsCertificate": "issue a new one for the same ClusterIP and set it with tlsKey "
    "(pulumi config set --secret edge-registry:tlsCertificate < server.crt)",
    "tlsCaCertificate": "the nodes trust only this CA: bring its successor before then, in three ups "
    "(docs/runbooks.md, \"Renew the site CA\")",
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
    #: What the program read on each live node, by host (None: not read); a new CA waits for them all.
    node_reads: Mapping[str, object] = field(default_factory=dict)

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
    """The site's CA certificate (secret Output): new server certificates are issued with it.
    What a node installs is :meth:`node_ca_certificate`."""
    certificate_pem: pulumi.Output[str]
    """The server certificate (secret Output)."""
    key_pem: pulumi.Output[str]
    """The server certificate's key (secret)."""
    not_after: pulumi.Output[str] | None
    """When the issued server certificate expires; None for a brought one."""

    def __init__(self, name: str, args: SiteTlsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("edge-registry:index:SiteTls", name, {}, opts)
        child = pulumi.ResourceOptions(parent=self)
        # A state time at or after this is from this run (ca_renewal.this_run).
        run_started = site_certificates.now()
        self._server_view: pulumi.Output[ca_renewal.ServerView] | None = None
        if args.certificate is not None and args.key is not None and args.ca_certificate is not None:
            self.ca_certificate_pem = pulumi.Output.secret(args.ca_certificate)
            self.certificate_pem = pulumi.Output.secret(args.certificate)
            self.key_pem = pulumi.Output.secret(args.key)
            self.not_after = None
            reads = dict(args.node_reads)
            self.ca_certificate_pem.apply(lambda ca: self._warn_untrusted_issuer(ca, reads))
        else:
            ca_issued_this_run: pulumi.Output[bool]
            if args.ca_certificate is not None and args.ca_key is not None:
                ca_certificate, ca_key = pulumi.Output.from_input(args.ca_certificate), args.ca_key
                ca_issued_this_run = pulumi.Output.from_input(False)
            else:
                ca = SiteCa(
                    f"{name}-ca",
                    common_name=f"edge-registry {args.site} CA",
                    validity_days=CA_VALIDITY_DAYS,
                    renew_before_days=args.renew_before_days,
                    opts=child,
                )
                ca_certificate, ca_key = ca.certificate_pem, ca.key_pem
                ca_issued_this_run = pulumi.Output.from_input(_from_this_run(ca.issued_at, run_started))
            node_reads = list(args.node_reads.values())
            trusted = pulumi.Output.all(ca_certificate, ca_issued_this_run).apply(
                lambda values: ca_renewal.nodes_trust(str(values[0]), node_reads, bool(values[1]))
            )
            server = ServerCertificate(
                f"{name}-server",
                ca_certificate_pem=ca_certificate,
                ca_key_pem=pulumi.Output.secret(ca_key),
                ip_addresses=[args.cluster_ip],
                dns_names=list(args.dns_names),
                validity_days=args.validity_days,
                renew_before_days=args.renew_before_days,
                # A fact about the nodes, not a secret (the CA it is computed from is kept secret).
                ca_trusted=pulumi.Output.unsecret(trusted),
                opts=child,
            )
            self.ca_certificate_pem = pulumi.Output.secret(ca_certificate)
            self.certificate_pem = pulumi.Output.secret(server.certificate_pem)
            self.key_pem = pulumi.Output.secret(server.key_pem)
            self.not_after = server.not_after
            self._server_view = pulumi.Output.from_input(_server_view(server, run_started))
        self.register_outputs({"not_after": self.not_after})

    def _warn_untrusted_issuer(self, ca_certificate: str, reads: Mapping[str, object]) -> None:
        """A brought certificate is not staged: warn when its CA (the first certificate of
        ``tlsCaCertificate``, the one the config checks it against) is missing from a node's
        installed CA file, since this run switches the registry before that node gets it."""
        issuer = tls.pem_blocks(ca_certificate)[:1]
        hosts = sorted(
            host for host, read in reads.items()
            if isinstance(read, NodeRead) and read.ca_content is not None and issuer
            and not ca_renewal.bundle_text_holds(read.ca_content, issuer[0])
        )
        if hosts:
            pulumi.log.warn(
                f"{PROJECT}:tlsCertificate: issued by a CA that node(s) {', '.join(hosts)} do not trust yet (their CA "
                "file lacks the first certificate of tlsCaCertificate): this run gives the registry the certificate "
                "before those nodes get the new CA file, and their pulls through the mirror fail in between; bring "
                "the CA first (docs/runbooks.md, \"Renew the site CA\")",
                resource=self,
            )

    def node_ca_certificate(self, read: object) -> pulumi.Output[str]:
        """The CA file (PEM, secret) for a node whose read is ``read`` (a NodeRead, a failure, or
        None): the site's CA, or during a CA renewal the old and the new one
        (:func:`components.cluster.ca_renewal.node_bundle`). A brought certificate's CA as given."""
        if self._server_view is None:
            return self.ca_certificate_pem
        installed = read.ca_content if isinstance(read, NodeRead) else None
        return pulumi.Output.secret(
            pulumi.Output.all(self.ca_certificate_pem, self._server_view).apply(
                lambda values: ca_renewal.node_bundle(str(values[0]), values[1], installed)
            )
        )


async def _from_this_run(issued_at: pulumi.Output[str], run_started: datetime) -> bool:
    """Whether the CA was issued (created, renewed, replaced) in this run. Unknown (a preview)
    means either the CA changes in this preview, and then everything computed from it is unknown
    anyway, or a state written before ``issuedAt`` existed: not in this run."""
    if not await issued_at.is_known():
        return False
    return ca_renewal.this_run(await issued_at.future(), run_started)


async def _server_view(server: ServerCertificate, run_started: datetime) -> ca_renewal.ServerView:
    """The server certificate as this run sees it: known unless it is (re)issued in this preview."""
    if not await server.certificate_pem.is_known():
        return ca_renewal.ServerView(known=False)
    issued_with = await server.issued_with.future()
    # Unknown while the certificate is known: a state written before issuedAt, so not this run.
    issued_at = await server.issued_at.future() if await server.issued_at.is_known() else None
    return ca_renewal.ServerView(
        known=True, issued_with=issued_with or None, issued_this_run=ca_renewal.this_run(issued_at, run_started)
    )
