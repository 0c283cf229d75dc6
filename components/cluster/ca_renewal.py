"""Renewing the site CA without cutting off a node: the pure rules, one safe step per ``pulumi up``.

A node trusts only the CAs in its CA file (``configs.<endpoint>.tls.ca_file``, beside
registries.yaml). So a new CA must reach every node before the registry presents a certificate
from it, and the old CA may only leave the nodes once the registry no longer presents one from
it (docs/runbooks.md, "Renew the site CA"):

1. **trust both**: the CA is renewed (:class:`~components.cluster.certificates.SiteCa` falls due)
   or another CA is configured (``tlsCaCertificate``/``tlsCaKey``). The nodes' CA file becomes
   the old CA and the new one (a restart, as for any change of the file); the server certificate
   keeps the old CA.
2. **switch**: at a later ``up``, once every live node's CA file holds the new CA (read over SSH
   at program time), the server certificate is issued from the new CA and the Helm release
   takes it. The nodes' CA file does not change.
3. **drop the old CA**: at a later ``up``, the nodes' CA file becomes the new CA alone.

What each step looks at is known when it matters, so a preview shows exactly what the ``up``
does, and a site between steps (or after the last) previews as no change:

* the CA the server certificate was issued with (:class:`ServerView`) is known unless the
  certificate is being (re)issued in this run (unknown in a preview; ``issuedAt`` at or after
  the run's start in an ``up``): then the nodes keep the CA file they have (:func:`node_bundle`);
* whether the nodes trust the current CA (:func:`nodes_trust`) is read from the nodes, and is
  false in the run that issued the CA (so a site without a live node switches one run later too).

Pure functions, no Pulumi and no ``cryptography`` (the offline render's stand-in texts pass
through as opaque entries): :mod:`components.cluster.site_tls` wires them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from components import tls
from components.nodes.payload import NodeRead


@dataclass(frozen=True)
class ServerView:
    """The server certificate as the program sees it in this run."""

    known: bool
    """Its state is known: it is not being (re)issued in this preview."""
    issued_with: str | None = None
    """The CA certificate it was issued with."""
    issued_this_run: bool = False
    """An ``up`` issued it in this very run (so its step happened now, not in an earlier run)."""

    @property
    def settled(self) -> bool:
        """Known and issued in an earlier run."""
        return self.known and not self.issued_this_run


def this_run(moment: str | None, run_started: datetime) -> bool:
    """Whether a state time (``issuedAt``; whole seconds) is from this run, which
    started at ``run_started``. Empty or None (never, or a state written before the field): no."""
    if not moment:
        return False
    return tls.parse_time(moment) >= run_started.replace(microsecond=0)


def node_bundle(current: str, server: ServerView, node_ca: bytes | None) -> str:
    """The CA file one node gets in this run (PEM text).

    * The server certificate is known and issued with another CA than ``current``: that CA and
      ``current`` (step 1, and until the switch).
    * It is known and was issued in an earlier run (with ``current``): ``current`` alone (step 3,
      and a settled site).
    * It is being issued in this run (step 2, a due renewal, a first deploy): the node keeps the
      CA file it has (``node_ca``) when that holds ``current``, else ``current`` alone.
    """
    if server.known and server.issued_with and not _same(server.issued_with, current):
        return tls.trust_bundle([server.issued_with, current])
    if server.settled:
        return current
    kept = _text(node_ca)
    if kept is not None and tls.bundle_holds(kept, current):
        return kept
    return current


def nodes_trust(current: str, reads: Iterable[object], ca_issued_this_run: bool = False) -> bool:
    """Whether every live node (one read each: a NodeRead, a read failure, or None for a node not
    read) has a CA file that holds ``current`` and owes no restart; false in the run that issued
    it. A node whose read does not report its CA file (unreadable, an older installed read
    script, a cloud-only run) does not count as trusting it."""
    if ca_issued_this_run:
        return False
    for read in reads:
        # A restart still owed (an earlier run cut off): k3s has not loaded the file yet.
        if not isinstance(read, NodeRead) or read.restart_pending or read.ca_content is None:
            return False
        if not bundle_text_holds(read.ca_content, current):
            return False
    return True


def bundle_text_holds(ca_file: bytes, certificate: str) -> bool:
    """Whether a node's CA file (as read) holds ``certificate``."""
    kept = _text(ca_file)
    return kept is not None and tls.bundle_holds(kept, certificate)


def _same(one: str, other: str) -> bool:
    return tls.pem_blocks(one) == tls.pem_blocks(other)


def _text(data: bytes | None) -> str | None:
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None
