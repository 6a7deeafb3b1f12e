"""What optimization found, as plain picklable values, and the choice of the variant to serve."""

from __future__ import annotations

from dataclasses import dataclass, field

from domainflow.config import OptimizationConfig

REFERENCE = "fp32"
# p50s within this share of the fastest count as equally fast (run-to-run noise on a shared CPU
# is of that order); among those the smallest file is served.
LATENCY_TIE = 0.05


@dataclass(frozen=True)
class VariantReport:
    """One variant's measurements; an unavailable one has only its name and the reason."""

    name: str
    available: bool
    reason: str = ""
    format: str | None = None
    size_bytes: int | None = None
    # By batch size, in milliseconds per call.
    p50_ms: dict[int, float] = field(default_factory=dict)
    p95_ms: dict[int, float] = field(default_factory=dict)
    auc: float | None = None
    # FP32's validation AUC minus this one's: positive is worse.
    auc_drop: float | None = None
    # |p - p_fp32| over the validation rows.
    parity_max: float | None = None
    parity_mean: float | None = None


def disqualification(report: VariantReport, config: OptimizationConfig) -> str | None:
    """Why `report` may not be served, or None when it may."""
    if not report.available:
        return f"unavailable: {report.reason}"
    if config.serving_batch_size not in report.p50_ms:
        return f"no latency measured at batch {config.serving_batch_size}"
    if report.auc_drop > config.max_auc_drop:
        return f"AUC drop {report.auc_drop:.4f} > max_auc_drop {config.max_auc_drop}"
    if report.parity_max > config.parity_tolerance:
        return f"max |p - p_fp32| {report.parity_max:.4f} > parity_tolerance {config.parity_tolerance}"
    return None


def select_variant(reports: list[VariantReport], config: OptimizationConfig) -> tuple[str, str]:
    """The fastest qualifying variant at the serving batch size (by p50), and why; FP32 when none beats it.

    Variants within LATENCY_TIE of the fastest p50 are taken as tied, and the
    smallest file among them wins.
    """
    batch = config.serving_batch_size
    by_name = {report.name: report for report in reports}
    if REFERENCE not in by_name or disqualification(by_name[REFERENCE], config):
        raise ValueError("select_variant needs a measured fp32 report: it is the reference and the fallback")
    rejected = {r.name: why for r in reports if (why := disqualification(r, config)) is not None}
    qualified = [r for r in reports if r.name not in rejected]
    fastest = min(r.p50_ms[batch] for r in qualified)
    tied = [r for r in qualified if r.p50_ms[batch] <= fastest * (1 + LATENCY_TIE)]
    best = min(tied, key=lambda r: (r.size_bytes, r.p50_ms[batch]))
    reference = by_name[REFERENCE]
    if best.name == REFERENCE:
        beaten = "no other variant qualified" if len(qualified) == 1 else "no qualifying variant was faster"
        reason = f"fp32 kept: {beaten} at batch {batch} (fp32 p50 {reference.p50_ms[batch]:.3f} ms)"
    else:
        others = [r.name for r in tied if r is not best]
        tie = f", tied within {LATENCY_TIE:.0%} with {others} and smallest" if others else ""
        reason = (
            f"{best.name}: fastest qualifying at batch {batch}{tie}, p50 {best.p50_ms[batch]:.3f} ms against fp32's "
            f"{reference.p50_ms[batch]:.3f} ms ({reference.p50_ms[batch] / best.p50_ms[batch]:.2f}x); "
            f"AUC drop {best.auc_drop:.4f} <= {config.max_auc_drop}, "
            f"max |p - p_fp32| {best.parity_max:.4f} <= {config.parity_tolerance}"
        )
    if rejected:
        reason += "; disqualified: " + ", ".join(f"{name} ({why})" for name, why in rejected.items())
    return best.name, reason


@dataclass
class OptimizationResult:
    """Every variant's report, the one chosen and why, and each built variant's serialized file."""

    variants: list[VariantReport]
    chosen: str
    reason: str
    artifacts: dict[str, bytes]  # name -> the bytes save_variant writes
    formats: dict[str, str]  # name -> "torch" | "onnx"
    config: OptimizationConfig

    def report(self, name: str) -> VariantReport:
        for report in self.variants:
            if report.name == name:
                return report
        raise KeyError(f"no variant {name!r}; variants: {[r.name for r in self.variants]}")

    @property
    def chosen_report(self) -> VariantReport:
        return self.report(self.chosen)

    def ratios(self) -> dict[str, float]:
        """FP32 over chosen: size, and p50 latency at each measured batch size (above 1 is better)."""
        reference, chosen = self.report(REFERENCE), self.chosen_report
        ratios = {"size_ratio": reference.size_bytes / chosen.size_bytes}
        for batch, p50 in chosen.p50_ms.items():
            ratios[f"speedup_p50_b{batch}"] = reference.p50_ms[batch] / p50
        return ratios

    def metrics(self) -> dict[str, float]:
        """Flat numbers for MLflow: variant_<name>_<measure>, and chosen_<ratio>."""
        metrics: dict[str, float] = {}
        for r in self.variants:
            prefix = f"variant_{r.name}"
            metrics[f"{prefix}_available"] = float(r.available)
            if not r.available:
                continue
            metrics[f"{prefix}_size_bytes"] = float(r.size_bytes)
            for batch in r.p50_ms:
                metrics[f"{prefix}_p50_ms_b{batch}"] = r.p50_ms[batch]
                metrics[f"{prefix}_p95_ms_b{batch}"] = r.p95_ms[batch]
            metrics |= {f"{prefix}_auc": r.auc, f"{prefix}_auc_drop": r.auc_drop}
            metrics |= {f"{prefix}_parity_max": r.parity_max, f"{prefix}_parity_mean": r.parity_mean}
        return metrics | {f"chosen_{name}": value for name, value in self.ratios().items()}

    def to_markdown(self) -> str:
        batches = self.config.latency_batch_sizes
        reference = self.report(REFERENCE)
        header = ["variant", "format", "size (bytes)", "size ratio"]
        header += [f"p50 / p95 ms @{batch}" for batch in batches]
        header += ["AUC", "AUC drop", "max abs Δp", "mean abs Δp", "verdict"]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for r in self.variants:
            verdict = "**chosen**" if r.name == self.chosen else (disqualification(r, self.config) or "qualifies")
            if not r.available:
                cells = [r.name, "-", "-", "-", *["-"] * len(batches), "-", "-", "-", "-", verdict]
            else:
                cells = [r.name, r.format, f"{r.size_bytes:,}", f"{reference.size_bytes / r.size_bytes:.2f}x"]
                cells += [f"{r.p50_ms[b]:.3f} / {r.p95_ms[b]:.3f}" if b in r.p50_ms else "-" for b in batches]
                cells += [f"{r.auc:.4f}", f"{r.auc_drop:+.4f}", f"{r.parity_max:.4f}", f"{r.parity_mean:.5f}", verdict]
            lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
        return "\n".join(lines) + f"\n\nChosen: {self.reason}\n"
