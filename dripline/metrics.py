"""Prometheus metrics for ``dripline run --metrics-port PORT``, with the official client.

Exposed on 127.0.0.1 only (an operator's scraper runs beside it, or reaches it through
their own proxy). Every series is prefixed ``dripline_``:

- ``dripline_deliveries_total{outcome}``: sent, deferred, failed, bounced, ambiguous,
  released, skipped (a step's ``when`` was false); counted as each chunk is recorded,
  so it moves during a long pass;
- ``dripline_pass_duration_seconds``: one dispatch pass, claim to last record;
- ``dripline_claim_latency_seconds``: how late a delivery was when claimed (its due
  time to the pass's clock), per delivery;
- ``dripline_queue_depth{status}``: deliveries in each status after a pass;
- ``dripline_sender_errors_total{kind}``: transient, connection, ambiguous, bounce,
  permanent (the sender's errors, not render failures);
- ``dripline_lease_expiries_total``: dead workers whose leases this worker expired.

Each :class:`RunMetrics` has its own registry (no process-global state), so tests and
several dispatchers in one process never collide.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from sender import PermanentSendError, SendError, TransientSendError

__all__ = ["OUTCOMES", "RunMetrics"]

OUTCOMES = ("sent", "deferred", "failed", "bounced", "ambiguous", "released", "skipped")
_LATENCY_BUCKETS = (1, 5, 30, 60, 300, 900, 3600, 4 * 3600, 86400, float("inf"))


class RunMetrics:
    """The dispatcher's metrics (see the module); thread-safe like the client's types."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.deliveries = Counter(
            "dripline_deliveries", "Deliveries recorded, by outcome.", ["outcome"], registry=r
        )
        self.pass_duration = Histogram(
            "dripline_pass_duration_seconds", "Seconds one dispatch pass took.", registry=r
        )
        self.claim_latency = Histogram(
            "dripline_claim_latency_seconds",
            "Seconds from a delivery's due time to its claim.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "dripline_queue_depth", "Deliveries in each status.", ["status"], registry=r
        )
        self.sender_errors = Counter(
            "dripline_sender_errors", "Sender errors, by kind.", ["kind"], registry=r
        )
        self.lease_expiries = Counter(
            "dripline_lease_expiries", "Dead workers' leases expired by this worker.", registry=r
        )
        for outcome in OUTCOMES:
            self.deliveries.labels(outcome)  # present at 0 from the first scrape
        self._lock = threading.Lock()
        self._published: dict[str, int] = {}
        self._leases_seen = 0

    def serve(self, port: int, host: str = "127.0.0.1") -> Any:
        """Start the /metrics endpoint in a daemon thread; returns (server, thread)."""
        return start_http_server(port, addr=host, registry=self.registry)

    def begin_pass(self) -> None:
        with self._lock:
            self._published = {}

    def publish(self, report: Any) -> None:
        """Add what ``report`` (a PassReport) counted since the last call in this pass."""
        with self._lock:
            for outcome in OUTCOMES:
                total = getattr(report, outcome)
                delta = total - self._published.get(outcome, 0)
                if delta > 0:
                    self.deliveries.labels(outcome).inc(delta)
                self._published[outcome] = total

    def sender_error(self, error: SendError) -> None:
        """Count one sender error under its ``kind`` label."""
        self.sender_errors.labels(_error_kind(error)).inc()

    def leases(self, expired_total: int) -> None:
        with self._lock:
            if expired_total > self._leases_seen:
                self.lease_expiries.inc(expired_total - self._leases_seen)
            self._leases_seen = expired_total

    def depth(self, query: Callable[[], dict[str, int]]) -> None:
        for status, count in query().items():
            self.queue_depth.labels(status).set(count)


def _error_kind(error: SendError) -> str:
    """The kind label of a sender error for ``dripline_sender_errors_total``."""
    if isinstance(error, TransientSendError):
        if error.ambiguous:
            return "ambiguous"
        if getattr(error, "connection_failure", False) or getattr(error, "unreachable", False):
            return "connection"
        return "transient"
    if isinstance(error, PermanentSendError) and error.bounce:
        return "bounce"
    return "permanent"
