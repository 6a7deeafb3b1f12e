"""How well a calibration map carries forward in time: fitted on one month, scored on every later month.

    python benchmarks/calibration_transfer.py [--domains EWR,JFK,LGA] [--families gradient_boosting]
        [--calibration-months 2013-07,2013-08,2013-09,2013-10,2013-11] [--until 2014-01] [--max-epochs 3]

(gradient boosting alone: about 2 minutes on two cores; with `network` add 20-80 s a window.)

The decision measured is the calibration stage's: `calibration.method: auto` picks Platt
(`sigmoid`), temperature or isotonic by cross-validated log loss on the calibration month, and
the map then serves every later month. The simplest alternative is no map at all ("none": the
family's served scores as they are). For each calibration month M, every family is trained on
the rows before M with the library's code (feature pipeline, gradient boosting, the network and
its served variant), each map is fitted on M with `calibration.fit.fit_calibration`, and each is
scored on every later month up to --until. Printed per domain and family: the mean log loss of
each method over those (month, later month) pairs, the next month alone and two or more months
on, and how often auto's map beat no map. The month's delay rate (base rate) is printed beside:
a map fitted on one month learns that month's base rate along with the scores' scale.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import log_loss

from domainflow.calibration.fit import apply_calibration, fit_calibration
from domainflow.candidates.scores import boosting_model, family_models
from domainflow.config import CalibrationConfig, SplitConfig, build_config
from domainflow.data import sources
from domainflow.data.features import fit_feature_pipeline
from domainflow.data.prepared import prepare_domain
from domainflow.data.split import split_by_time
from domainflow.data.validation import LABEL_COLUMN
from domainflow.models.baseline import train_baseline
from domainflow.optimization.optimize import optimize_for_serving
from domainflow.training.trainer import train_network

METHODS = ("none", "auto", "sigmoid", "temperature", "isotonic")
EPSILON = 1e-6
started = time.perf_counter()


def progress(message: str) -> None:
    print(f"[{time.perf_counter() - started:5.0f}s] {message}", file=sys.stderr, flush=True)


def month_rows(valid: pd.DataFrame, timestamp: str, start: pd.Timestamp) -> pd.DataFrame:
    times = valid[timestamp]
    return valid.loc[(times >= start) & (times < start + pd.offsets.MonthBegin(1))]


def served_scores(valid, name, calibration_month, config, work) -> dict[str, tuple]:
    """Per family: (the served model's predictor, the pipeline), trained on the rows before `calibration_month`."""
    after = calibration_month + pd.offsets.MonthBegin(1)
    split = SplitConfig(
        train_until=calibration_month, validation_until=after, test_until=after + pd.offsets.MonthBegin(1)
    )
    data = split_by_time(valid, config.data.timestamp, LABEL_COLUMN, split)
    pipeline = fit_feature_pipeline(data, config.data)
    baseline = train_baseline(pipeline, data, config.baseline, config.training.seed)
    wanted = config.candidates.families
    if "network" in wanted:
        network = train_network(pipeline, data, config.training, {}, work)
        optimized = optimize_for_serving(pipeline, data, network, config.optimization)
        models = family_models(optimized, baseline)
    else:  # the network trains only when asked for
        models = (boosting_model(baseline),)
    progress(f"{name}: trained on the rows before {calibration_month:%Y-%m}")
    return {m.family: (m.predictor(), pipeline) for m in models if m.family in wanted}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", default="EWR,JFK,LGA")
    parser.add_argument("--families", default="gradient_boosting")
    parser.add_argument("--calibration-months", default="2013-07,2013-08,2013-09,2013-10,2013-11")
    parser.add_argument("--until", default="2014-01", help="the first month not scored")
    parser.add_argument("--max-epochs", type=int, default=3)
    args = parser.parse_args()
    domains = args.domains.split(",")
    config = build_config({
        "domains": {"values": domains}, "candidates": {"families": args.families.split(",")},
        "training": {"max_epochs": args.max_epochs}, "tuning": {"n_trials": 0},
    })  # fmt: skip
    months = [pd.Timestamp(m) for m in args.calibration_months.split(",")]
    until = pd.Timestamp(args.until)
    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")
    frame = sources.load_source(config.data.source, config.source_columns())
    timestamp = config.data.timestamp
    # (domain, family) -> method -> list of (months ahead, log loss); and auto's wins over none
    results: dict[tuple[str, str], dict[str, list[tuple[int, float]]]] = {}
    chosen: dict[tuple[str, str], list[str]] = {}
    with tempfile.TemporaryDirectory() as work:
        for name in domains:
            valid = prepare_domain(frame, name, "", config, f"{work}/{name}.csv").validation.valid
            rates = valid.groupby(valid[timestamp].dt.to_period("M"))[LABEL_COLUMN].mean()
            print(f"{name} base rate: " + " ".join(f"{p.strftime('%b')} {r:.2f}" for p, r in rates.items()))
            for month in months:
                calibration_rows = month_rows(valid, timestamp, month)
                labels = calibration_rows[LABEL_COLUMN].to_numpy()
                for family, (predictor, pipeline) in served_scores(valid, name, month, config, Path(work)).items():
                    scores = predictor.predict(pipeline.transform(calibration_rows))
                    maps = {"none": None}
                    for method in METHODS[1:]:
                        fitted = fit_calibration(labels, scores, f"{month:%Y-%m}",
                                                 CalibrationConfig(method=method))  # fmt: skip
                        maps[method] = fitted.calibrator
                        if method == "auto":
                            chosen.setdefault((name, family), []).append(fitted.method)
                    later = month + pd.offsets.MonthBegin(1)
                    ahead = 1
                    while later < until:
                        rows = month_rows(valid, timestamp, later)
                        raw, truth = predictor.predict(pipeline.transform(rows)), rows[LABEL_COLUMN].to_numpy()
                        for method, calibrator in maps.items():
                            served = np.clip(apply_calibration(calibrator, raw), EPSILON, 1 - EPSILON)
                            loss = log_loss(truth, served, labels=[0, 1])
                            results.setdefault((name, family), {}).setdefault(method, []).append((ahead, loss))
                        later, ahead = later + pd.offsets.MonthBegin(1), ahead + 1
    print()
    print("Mean log loss of the later months, by the map fitted on each calibration month")
    print(f"{'domain':<6} {'family':<17} {'method':<11} {'all':>6} {'next':>6} {'2+ on':>6} {'beats none':>10}")
    for (name, family), by_method in results.items():
        base = np.array([loss for _, loss in by_method["none"]])
        for method, pairs in by_method.items():
            ahead = np.array([a for a, _ in pairs])
            losses = np.array([loss for _, loss in pairs])
            wins = f"{int((losses < base).sum())}/{len(losses)}" if method != "none" else ""
            later = f"{losses[ahead >= 2].mean():.4f}" if (ahead >= 2).any() else "-"
            print(f"{name:<6} {family:<17} {method:<11} {losses.mean():.4f} {losses[ahead == 1].mean():.4f} "
                  f"{later:>6} {wins:>10}")  # fmt: skip
        print(f"{'':<6} {'':<17} auto chose: {', '.join(chosen[(name, family)])}")
    progress("done")


if __name__ == "__main__":
    main()
