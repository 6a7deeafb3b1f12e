"""Trainer construction and the network's training run.

One process by default; `strategy: ddp` with `devices`/`num_nodes` spreads it.
Started by torchrun (or any launcher that sets the torch.distributed
environment), Lightning joins the existing process group; started from a plain
process, as a Prefect task is, the workers are spawned, because Lightning's
script launcher would re-run the whole CLI command in every worker.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import pandas as pd
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.strategies import DDPStrategy

from domainflow.config import TrainingConfig
from domainflow.data.features import FeaturePipeline, TrainingMatrices
from domainflow.data.split import TimeSplit
from domainflow.models.lightning import TabularClassifier, TabularDataModule, TrainedNetwork
from domainflow.training.params import Params, apply_best_params

MONITOR = "val_auc"


def _launched_by_torchrun() -> bool:
    return "TORCHELASTIC_RUN_ID" in os.environ or ("LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ)


def select_strategy(config: TrainingConfig) -> str | DDPStrategy:
    """One process for one device; DDP for more, whether `strategy` says "auto" or "ddp"."""
    if config.devices * config.num_nodes == 1:
        return "auto"
    if _launched_by_torchrun():
        return DDPStrategy()
    return DDPStrategy(start_method="spawn")


def build_trainer(config: TrainingConfig, work_dir: Path, extra_callbacks: Sequence[Callback] = ()) -> L.Trainer:
    """`extra_callbacks` run beside early stopping and checkpointing (the tuner's pruning callback)."""
    return L.Trainer(
        max_epochs=config.max_epochs,
        accelerator=config.accelerator,
        devices=config.devices,
        num_nodes=config.num_nodes,
        strategy=select_strategy(config),
        precision=config.precision,
        accumulate_grad_batches=config.accumulate_grad_batches,
        limit_train_batches=config.limit_train_batches,
        deterministic=True,
        callbacks=[
            EarlyStopping(monitor=MONITOR, mode="max", patience=config.early_stopping_patience),
            ModelCheckpoint(dirpath=work_dir / "checkpoints", monitor=MONITOR, mode="max", save_top_k=1),
            *extra_callbacks,
        ],
        logger=CSVLogger(save_dir=work_dir, name="", version=""),
        default_root_dir=work_dir,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )


def _read_history(work_dir: Path) -> list[dict]:
    """Per-epoch metrics from the CSV logger (rank 0 writes it, also under DDP spawn)."""
    path = work_dir / "metrics.csv"
    if not path.exists():
        return []
    metrics = pd.read_csv(path).groupby("epoch").first().reset_index()
    return metrics.drop(columns=["step"], errors="ignore").to_dict("records")


def fit_classifier(
    matrices: TrainingMatrices,
    config: TrainingConfig,
    work_root: Path | None = None,
    extra_callbacks: Sequence[Callback] = (),
) -> TrainedNetwork:
    """Fit TabularClassifier with early stopping on validation AUC; return the best epoch's weights."""
    L.seed_everything(config.seed, workers=True, verbose=False)
    hparams = dict(
        numeric_width=matrices.numeric_width,
        cardinalities=list(matrices.cardinalities),
        embedding_dim=config.embedding_dim,
        hidden_sizes=list(config.hidden_sizes),
        dropout=config.dropout,
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
    )
    if work_root is not None:
        work_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work_root, prefix="train-") as scratch:
        work_dir = Path(scratch)
        trainer = build_trainer(config, work_dir, extra_callbacks)
        data = TabularDataModule(matrices.train, matrices.train_labels, matrices.validation,
                                 matrices.validation_labels, config.batch_size)  # fmt: skip
        module = TabularClassifier(**hparams)
        trainer.fit(module, datamodule=data)
        best = TabularClassifier.load_from_checkpoint(trainer.checkpoint_callback.best_model_path, map_location="cpu")
        history = _read_history(work_dir)
    # The spawned DDP launcher hands back the best checkpoint's path but not its
    # score, so the score is read from the same epoch-level history.
    best_val_auc = max((row[MONITOR] for row in history if pd.notna(row.get(MONITOR))), default=float("nan"))
    return TrainedNetwork(
        hparams=hparams,
        state_dict={k: v.detach().cpu().clone() for k, v in best.state_dict().items()},
        best_val_auc=float(best_val_auc),
        epochs_run=len(history),
        history=history,
    )


def train_network(
    pipeline: FeaturePipeline,
    split: TimeSplit,
    config: TrainingConfig,
    best_params: Params | None = None,
    work_root: Path | None = None,
) -> TrainedNetwork:
    """The final training on the split, with the tuning study's best values (`best_params`) over `config`."""
    return fit_classifier(TrainingMatrices.from_split(pipeline, split), apply_best_params(config, best_params or {}),
                          work_root)  # fmt: skip
