"""The site's CA and the registry's server certificate as resources: issued once, kept, renewed.

Why dynamic resources: pulumi-tls is the ecosystem's way to issue certificates, but it is one more
provider plugin to install on every runner, and it cannot run where the tests run. The issuance
itself is `cryptography` (:mod:`components.tls`), so it is tested for real. As resources, a
certificate is issued once, kept (its key a secret) in the state, renewed before it expires and
shown in a preview as a replacement when it will be.

* :class:`SiteCa` — the per-site CA the nodes trust. Replaced only when its name changes. Within
  ``renewBeforeDays`` of its (long) expiry it is *renewed* by an update: a new CA and key, and
  ``issuedAt`` says when. That is step 1 of a CA renewal (docs/runbooks.md, "Renew the site
  CA"): the server certificate keeps its CA until every node trusts the new one
  (components/cluster/ca_renewal.py). A new ``renewBeforeDays`` or ``validityDays`` alone changes
  nothing now (no update): it applies at the next renewal.
* :class:`ServerCertificate` — the registry's certificate, signed by the site CA (or a CA the site
  brings). Replaced when its IP addresses or DNS names change, when it is within
  ``renewBeforeDays`` of expiry, and when its CA input is another CA *and* ``caTrusted`` (every
  live node's CA file holds that CA) says the nodes are ready: step 2 of a CA renewal. Until
  then it keeps the CA it was issued with (``caCertificatePem`` in its state), and a renewal that
  falls due meanwhile waits for that switch unless the certificate has expired. ``issuedAt``
  says when it was issued. Its CA stays otherwise, so the nodes keep trusting a renewed
  certificate without any change on them.

Nothing outside the state is created, so ``delete`` has nothing to undo. ``create`` runs only on
``pulumi up``: the Python dynamic provider does not declare ``supportsPreview``, so a preview
issues nothing (see :mod:`components.azure.token_password`).

**This module's path is permanent**: the providers are pickled by reference (dill) into every
stack's state, and the engine imports ``components.cluster.certificates`` to load them on refresh,
update and destroy. Moving the classes needs a shim here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeGuard

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    ResourceProvider,
    UpdateResult,
)
from pulumi.runtime.rpc import UNKNOWN

from components import tls

# Wire names (camelCase, like every other resource's state).
COMMON_NAME = "commonName"
CA_CERTIFICATE_PEM = "caCertificatePem"
CA_KEY_PEM = "caKeyPem"
IP_ADDRESSES = "ipAddresses"
DNS_NAMES = "dnsNames"
VALIDITY_DAYS = "validityDays"
RENEW_BEFORE_DAYS = "renewBeforeDays"
CERTIFICATE_PEM = "certificatePem"
KEY_PEM = "keyPem"
NOT_AFTER = "notAfter"
#: ServerCertificate: every live node trusts ``caCertificatePem`` (a fact read at program time);
#: absent: the caller does not stage a new CA (the certificate follows its CA at once).
CA_TRUSTED = "caTrusted"
#: When the CA or the certificate was issued (created, renewed); states written before it lack it.
ISSUED_AT = "issuedAt"

#: Lifetime of a site CA: long, since renewing it means a new CA file on every node.
CA_VALIDITY_DAYS = 3650


def now() -> datetime:
    """The current time, UTC. Module-level so tests can move the clock."""
    return datetime.now(UTC)


def _known_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _changed(old: Any, new: Any) -> bool:
    # An unknown new value (preview, an upstream replacement) may differ: assume it does.
    return new == UNKNOWN or old != new


def _lifetime_failures(news: dict[str, Any]) -> list[CheckFailure]:
    validity, renew = news.get(VALIDITY_DAYS), news.get(RENEW_BEFORE_DAYS)
    failures = []
    if _known_number(validity) and validity <= 0:
        failures.append(CheckFailure(VALIDITY_DAYS, "validityDays must be positive"))
    if _known_number(renew) and renew < 0:
        failures.append(CheckFailure(RENEW_BEFORE_DAYS, "renewBeforeDays must not be negative"))
    if _known_number(validity) and _known_number(renew) and renew >= validity:
        # Otherwise every run would find the fresh certificate due and issue another.
        failures.append(CheckFailure(RENEW_BEFORE_DAYS, "renewBeforeDays must be smaller than validityDays"))
    return failures


def _due(olds: dict[str, Any], news: dict[str, Any]) -> bool:
    not_after, renew = olds.get(NOT_AFTER), news.get(RENEW_BEFORE_DAYS)
    if not isinstance(not_after, str) or not not_after:
        return True  # nothing usable in the state: issue afresh
    return _known_number(renew) and tls.renewal_due(not_after, renew, now())


def _expired(olds: dict[str, Any]) -> bool:
    not_after = olds.get(NOT_AFTER)
    return not isinstance(not_after, str) or not not_after or tls.parse_time(not_after) <= now()


class _CertificateProvider(ResourceProvider):
    """What both providers share: identity inputs, the tuning, the state as the only copy.

    New lifetimes (``validityDays``, ``renewBeforeDays``) are never a change in either ``diff``:
    the engine records them as inputs and keeps the certificate, and the next renewal uses them.
    An update would preview the certificate and key as unknown, and the release and nodes with them.
    """

    replace_keys: tuple[str, ...] = ()
    update_keys: tuple[str, ...] = (VALIDITY_DAYS, RENEW_BEFORE_DAYS)
    output_keys: tuple[str, ...] = (CERTIFICATE_PEM, KEY_PEM, NOT_AFTER)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """Not asked for by diff any more; kept for a plan made by an older diff: the certificate stays."""
        outs = {k: olds.get(k) for k in self.output_keys}
        outs.update({k: news.get(k) for k in self.replace_keys + self.update_keys})
        return UpdateResult(outs)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """The state is the only copy: refresh keeps it."""
        return ReadResult(id_, props)

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        """Nothing outside the state to remove."""


class SiteCaProvider(_CertificateProvider):
    """Dynamic provider behind :class:`SiteCa`."""

    replace_keys = (COMMON_NAME,)
    output_keys = (CERTIFICATE_PEM, KEY_PEM, NOT_AFTER, ISSUED_AT)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        """Replace for another name; a due CA is an *update* (renewed in place, step 1 of a CA
        renewal: its dependents see a new CA, the server certificate waits for the nodes);
        nothing else is a change (new lifetimes apply at the next renewal)."""
        replaces = [k for k in self.replace_keys if _changed(olds.get(k), news.get(k))]
        if replaces:
            return DiffResult(changes=True, replaces=replaces, delete_before_replace=False)
        return DiffResult(changes=_due(olds, news), replaces=[], delete_before_replace=False)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """Renew the CA when it is due (a new key too); otherwise (a plan made by an older diff)
        keep it and record the new inputs."""
        if not _due(olds, news):
            return super().update(_id, olds, news)
        return UpdateResult(self._issue(news))

    def _issue(self, props: dict[str, Any]) -> dict[str, Any]:
        issued = tls.issue_ca(props[COMMON_NAME], props[VALIDITY_DAYS], now())
        outs = {k: props.get(k) for k in self.replace_keys + self.update_keys}
        outs.update({CERTIFICATE_PEM: issued.certificate_pem, KEY_PEM: issued.key_pem,
                     NOT_AFTER: tls.format_time(issued.not_after), ISSUED_AT: tls.format_time(now())})
        return outs

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        """A name and sane lifetimes."""
        failures = _lifetime_failures(news)
        if news.get(COMMON_NAME) in (None, ""):
            failures.append(CheckFailure(COMMON_NAME, "commonName is required"))
        return CheckResult(news, failures)

    def create(self, props: dict[str, Any]) -> CreateResult:
        """Issue the CA."""
        outs = self._issue(props)
        return CreateResult(f"ca-{tls.load_certificate(outs[CERTIFICATE_PEM]).serial_number:x}", outs)


class ServerCertificateProvider(_CertificateProvider):
    """Dynamic provider behind :class:`ServerCertificate`."""

    replace_keys = (CA_CERTIFICATE_PEM, IP_ADDRESSES, DNS_NAMES)
    output_keys = (CERTIFICATE_PEM, KEY_PEM, NOT_AFTER, ISSUED_AT)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        """Replace for other names, for a due renewal, and for another CA once the nodes trust it.

        With ``caTrusted`` among the inputs (the site stages a new CA): another CA replaces the
        certificate only when ``caTrusted`` is true and the CA is known; until then it keeps the
        CA it was issued with, and a due renewal waits for the switch (which renews it anyway)
        unless the certificate has expired. Without ``caTrusted``: another CA, or one not known
        yet, replaces it at once.
        """
        replaces = [k for k in (IP_ADDRESSES, DNS_NAMES) if _changed(olds.get(k), news.get(k))]
        ca, issued_with = news.get(CA_CERTIFICATE_PEM), olds.get(CA_CERTIFICATE_PEM)
        if CA_TRUSTED not in news:
            waiting = False
            if _changed(issued_with, ca):
                replaces.insert(0, CA_CERTIFICATE_PEM)
        else:
            # Unknown (a preview in which the CA itself changes): the nodes cannot trust it yet.
            waiting = _changed(issued_with, ca) and (news.get(CA_TRUSTED) is not True or ca == UNKNOWN)
            if _changed(issued_with, ca) and not waiting:
                replaces.insert(0, CA_CERTIFICATE_PEM)
        if _due(olds, news) and (not waiting or _expired(olds)):
            replaces.append(NOT_AFTER)
        return DiffResult(changes=bool(replaces), replaces=replaces, delete_before_replace=False)

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        """A CA, at least one name, sane lifetimes."""
        failures = _lifetime_failures(news)
        for key in (CA_CERTIFICATE_PEM, CA_KEY_PEM):
            if news.get(key) in (None, ""):
                failures.append(CheckFailure(key, f"{key} is required"))
        ips, names = news.get(IP_ADDRESSES), news.get(DNS_NAMES)
        if isinstance(ips, list) and isinstance(names, list) and not ips and not names:
            failures.append(CheckFailure(IP_ADDRESSES, "at least one IP address or DNS name is required"))
        return CheckResult(news, failures)

    def create(self, props: dict[str, Any]) -> CreateResult:
        """Issue the server certificate with the CA."""
        issued = tls.issue_server_certificate(
            props[CA_CERTIFICATE_PEM], props[CA_KEY_PEM], list(props.get(IP_ADDRESSES) or []),
            list(props.get(DNS_NAMES) or []), props[VALIDITY_DAYS], now(),
        )
        # The CA key is an input only: it is not copied into the outputs.
        outs = {k: props.get(k) for k in self.replace_keys + self.update_keys}
        outs.update({CERTIFICATE_PEM: issued.certificate_pem, KEY_PEM: issued.key_pem,
                     NOT_AFTER: tls.format_time(issued.not_after), ISSUED_AT: tls.format_time(now())})
        return CreateResult(f"cert-{tls.load_certificate(issued.certificate_pem).serial_number:x}", outs)


def _secret_options(opts: pulumi.ResourceOptions | None) -> pulumi.ResourceOptions:
    # Merged, not replaced: the caller's parent and dependencies are kept.
    return pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=[KEY_PEM]))


class _IssuedResource(Resource):
    """The SDK names a dynamic resource's output attributes by their wire names; these are snake_case."""

    certificate_pem: pulumi.Output[str]
    key_pem: pulumi.Output[str]
    not_after: pulumi.Output[str]

    def _expose_outputs(self) -> None:
        self.certificate_pem = getattr(self, CERTIFICATE_PEM)
        self.key_pem = getattr(self, KEY_PEM)
        self.not_after = getattr(self, NOT_AFTER)


class SiteCa(_IssuedResource, module="edgeregistry", name="SiteCa"):
    """The site's CA, issued once and kept, renewed in place when due; ``key_pem`` is a secret output."""

    certificate_pem: pulumi.Output[str]
    """The CA certificate, PEM (installed on every node)."""
    key_pem: pulumi.Output[str]
    """The CA's private key, PEM (secret)."""
    not_after: pulumi.Output[str]
    """When the CA expires, ISO 8601 UTC."""
    issued_at: pulumi.Output[str]
    """When it was issued (created or renewed); unknown in a preview of a state written before it."""

    def __init__(
        self,
        resource_name: str,
        *,
        common_name: pulumi.Input[str],
        renew_before_days: pulumi.Input[float],
        validity_days: pulumi.Input[float] = CA_VALIDITY_DAYS,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            COMMON_NAME: common_name, VALIDITY_DAYS: validity_days, RENEW_BEFORE_DAYS: renew_before_days,
            CERTIFICATE_PEM: None, KEY_PEM: None, NOT_AFTER: None, ISSUED_AT: None,
        }
        super().__init__(SiteCaProvider(), resource_name, props, _secret_options(opts))
        self._expose_outputs()
        self.issued_at = getattr(self, ISSUED_AT)


class ServerCertificate(_IssuedResource, module="edgeregistry", name="ServerCertificate"):
    """The registry's server certificate, renewed before expiry; ``key_pem`` is a secret output."""

    certificate_pem: pulumi.Output[str]
    """The certificate, PEM (the chart's ``tls.crt``, base64)."""
    key_pem: pulumi.Output[str]
    """Its private key, PEM (the chart's ``tls.key``, base64; secret)."""
    not_after: pulumi.Output[str]
    """When it expires, ISO 8601 UTC."""
    issued_with: pulumi.Output[str]
    """The CA certificate it was issued with (during a CA renewal: the old CA until the switch)."""
    issued_at: pulumi.Output[str]
    """When it was issued; unknown in a preview of a state written before it."""

    def __init__(
        self,
        resource_name: str,
        *,
        ca_certificate_pem: pulumi.Input[str],
        ca_key_pem: pulumi.Input[str],
        ip_addresses: pulumi.Input[list[str]],
        dns_names: pulumi.Input[list[str]],
        validity_days: pulumi.Input[float],
        renew_before_days: pulumi.Input[float],
        ca_trusted: pulumi.Input[bool] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            CA_CERTIFICATE_PEM: ca_certificate_pem,
            # Secret whatever the caller passed: the CA key is kept in the state as an input.
            CA_KEY_PEM: pulumi.Output.secret(ca_key_pem),
            IP_ADDRESSES: ip_addresses, DNS_NAMES: dns_names,
            VALIDITY_DAYS: validity_days, RENEW_BEFORE_DAYS: renew_before_days,
            CERTIFICATE_PEM: None, KEY_PEM: None, NOT_AFTER: None, ISSUED_AT: None,
        }
        if ca_trusted is not None:
            props[CA_TRUSTED] = ca_trusted
        super().__init__(ServerCertificateProvider(), resource_name, props, _secret_options(opts))
        self._expose_outputs()
        self.issued_with = getattr(self, CA_CERTIFICATE_PEM)
        self.issued_at = getattr(self, ISSUED_AT)
