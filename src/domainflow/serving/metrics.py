"""The server's Prometheus metrics, in a registry of its own so several apps can live in one process."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from domainflow.serving.models import ServingTable

# One model call on a group of records: ~0.3 ms for one row up to seconds for a large batch on a busy CPU.
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ServingMetrics:
    def __init__(self, log_backlog: Callable[[], float] = lambda: 0.0):
        self.registry = CollectorRegistry()
        r = self.registry
        arm = ["domain", "variant", "version"]
        self.predictions = Counter(
            "domainflow_predictions", "Records predicted, by the arm that served them (errors included).", arm,
            registry=r,
        )  # fmt: skip
        self.prediction_errors = Counter(
            "domainflow_prediction_errors", "Records the model failed on (logged with the error).", arm, registry=r
        )
        self.model_latency = Histogram(
            "domainflow_model_latency_seconds", "One model call on the records of a request routed to one arm.",
            arm, buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.feedback = Counter(
            "domainflow_feedback_labels", "Labels received, by outcome (accepted, duplicate, unknown, conflict).",
            ["domain", "outcome"], registry=r,
        )  # fmt: skip
        self.feedback_conflicts = Counter(
            "domainflow_feedback_conflicts", "Labels refused for contradicting the label stored first, by API key.",
            ["domain", "key_id"], registry=r,
        )  # fmt: skip
        self.rollout_weight = Gauge("domainflow_rollout_weight", "Share of traffic per arm.", arm, registry=r)
        self.model_loaded = Gauge("domainflow_model_loaded", "1 when the arm's model is loaded.", arm, registry=r)
        self.domain_ready = Gauge("domainflow_domain_ready", "1 when the domain's champion is loaded.", ["domain"],
                                  registry=r)  # fmt: skip
        self.load_failures = Counter(
            "domainflow_model_load_failures", "Versions refused: reason=integrity (digest mismatch) or load.",
            ["model", "version", "reason"], registry=r,
        )  # fmt: skip
        self.rejected_requests = Counter(
            "domainflow_rejected_requests", "Requests answered with a 4xx or 503.", ["status"], registry=r
        )
        self.server_errors = Counter("domainflow_server_errors", "Requests that ended in an unexpected fault.",
                                     registry=r)  # fmt: skip
        self.log_dropped = Counter(
            "domainflow_prediction_log_dropped", "Predictions the log writer gave up on.", registry=r
        )
        backlog = Gauge("domainflow_prediction_log_backlog", "Predictions waiting for the log writer.", registry=r)
        backlog.set_function(log_backlog)

    def show_tables(self, tables: Mapping[str, ServingTable]) -> None:
        self.rollout_weight.clear()
        self.model_loaded.clear()
        for domain, table in tables.items():
            for arm in table.arms:
                self.rollout_weight.labels(domain, arm.variant, arm.version).set(arm.weight)
                self.model_loaded.labels(domain, arm.variant, arm.version).set(int(arm.variant in table.models))
            self.domain_ready.labels(domain).set(int(table.ready))

    def render(self) -> bytes:
        return generate_latest(self.registry)
