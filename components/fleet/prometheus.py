"""``fleet status --format prometheus``: the fleet's gauges in the Prometheus text format.

For a node exporter's textfile collector (write to a ``.prom`` file atomically) or a scrape job.
The text is prometheus-client's own exposition (``generate_latest`` of a registry holding one
collector), so names, labels, escaping and ``# HELP``/``# TYPE`` lines are what Prometheus parses.
Every sample is from :func:`~components.fleet.report.report_document`'s data, the same the table,
JSON and page show; the drift gauges come from the drift records the report was given
(``--drift DIR``, components/fleet/drift.py). A value that is not known (a site that never synced
has no last-sync age, a stack without a drift record has no drift gauge) is left out rather than
given a made-up number.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from components.fleet.verdicts import FleetReport

PREFIX = "edge_registry"
DAY_SECONDS = 86400.0
SITE_LABELS = ("stack", "connected_registry", "registry")


def _site_labels(site: Any) -> list[str]:
    return [site.stack, site.connected_registry, site.registry.label]


class FleetCollector(Collector):
    """The gauges of one fleet report."""

    def __init__(self, report: FleetReport) -> None:
        self.report = report

    def collect(self) -> Iterator[GaugeMetricFamily]:
        report = self.report
        now = report.generated_at

        def gauge(name: str, documentation: str, labels: tuple[str, ...] = SITE_LABELS) -> GaugeMetricFamily:
            return GaugeMetricFamily(f"{PREFIX}_{name}", documentation, labels=list(labels))

        online = gauge("site_online", "1 when ARM reports the connected registry Online or Syncing, else 0")
        flagged = gauge("site_flagged", "1 when fleet status flags the site (any verdict), else 0")
        age = gauge("site_last_sync_age_seconds", "Seconds since the site's last successful sync (absent: never synced)")
        budget = gauge("site_offline_budget_days",
                       "Days the site can stay offline before something breaks (see the limiting item)",
                       (*SITE_LABELS, "limiting_item"))
        expiry = gauge("site_expiry_days",
                       "Days to each item's expiry: a password, messages queued since the last sync, a certificate "
                       "(issued certificates: the lower bound the renewal rule gives); negative once past",
                       (*SITE_LABELS, "item", "subject"))
        drift = gauge("site_drift",
                      "1 when the stack's last drift check found changes, 0 when it found none (absent: no result, "
                      "or the check failed)")
        drift_failed = gauge("site_drift_check_failed", "1 when the stack's last drift check failed, else 0")
        drift_age = gauge("site_drift_check_age_seconds", "Seconds since the stack's last drift check")
        records = getattr(report, "drift", None) or {}
        for site in report.sites:
            labels = _site_labels(site)
            state = (site.observed.connection_state or "").lower()
            online.add_metric(labels, 1.0 if state in ("online", "syncing") else 0.0)
            flagged.add_metric(labels, 1.0 if site.flagged else 0.0)
            if site.age is not None:
                age.add_metric(labels, site.age.total_seconds())
            if site.budget is not None:
                limiting = site.budget.limiting
                left = site.budget.left
                if limiting is not None and left is not None:
                    budget.add_metric([*labels, limiting.item.value], left.total_seconds() / DAY_SECONDS)
                for item in site.budget.items:
                    moment = item.expires or item.deadline
                    if moment is not None:
                        expiry.add_metric([*labels, item.item.value, item.subject],
                                          (moment - now).total_seconds() / DAY_SECONDS)
            record = records.get(site.stack)
            if record is not None:
                result = getattr(record.result, "value", record.result)
                if result in ("drift", "none"):
                    drift.add_metric(labels, 1.0 if result == "drift" else 0.0)
                drift_failed.add_metric(labels, 1.0 if result == "failed" else 0.0)
                drift_age.add_metric(labels, (now - record.checked_at).total_seconds())
        yield from (online, flagged, age, budget, expiry, drift, drift_failed, drift_age)

        fleet = ("unreadable_registries", "Parent registries fleet status could not read (their sites are unknown)",
                 len(report.unreadable)), ("invalid_stacks", "Stack files that could not be used", len(report.invalid_stacks)), (
                 "orphans", "Connected registries no stack file declares", len(report.orphans)), (
                 "undeployed_stacks", "Stack files without a connected registry in Azure", len(report.undeployed))
        for name, documentation, value in fleet:
            family = GaugeMetricFamily(f"{PREFIX}_fleet_{name}", documentation)
            family.add_metric([], float(value))
            yield family
        generated = GaugeMetricFamily(f"{PREFIX}_fleet_status_generated_timestamp_seconds",
                                      "When this report was made (Unix time)")
        generated.add_metric([], now.timestamp())
        yield generated


def render_prometheus(report: FleetReport) -> str:
    """The report's gauges, as Prometheus text (exposition format 0.0.4)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(report))
    return generate_latest(registry).decode("utf-8")
