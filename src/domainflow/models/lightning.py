"""Lightning wrappers: the training hooks around TabularNet, the data it reads, and the trained result."""

from __future__ import annotations

from dataclasses import dataclass, field

import lightning as L
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics.classification import BinaryAUROC

from domainflow.data.features import FeatureMatrix, FeaturePipeline
from domainflow.models.network import TabularNet


class TabularClassifier(L.LightningModule):
    def __init__(
        self,
        numeric_width: int,
        cardinalities: list[int],
        embedding_dim: int = 8,
        hidden_sizes: list[int] = (128, 64),
        dropout: float = 0.1,
        learning_rate: float = 2e-3,
        weight_decay: float = 1e-5,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = TabularNet(numeric_width, list(cardinalities), embedding_dim, list(hidden_sizes), dropout)
        self.loss = torch.nn.BCEWithLogitsLoss()
        # torchmetrics syncs the AUC state across DDP ranks before computing it.
        self.val_auc = BinaryAUROC()

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        return self.net(numeric, categorical)

    def training_step(self, batch, batch_idx):
        numeric, categorical, label = batch
        loss = self.loss(self(numeric, categorical), label)
        self.log("train_loss", loss, on_step=False, on_epoch=True, sync_dist=True)
        return loss

    def validation_step(self, batch, batch_idx):
        numeric, categorical, label = batch
        logits = self(numeric, categorical)
        self.log("val_loss", self.loss(logits, label), on_epoch=True, sync_dist=True)
        self.val_auc.update(torch.sigmoid(logits), label.int())
        self.log("val_auc", self.val_auc, on_epoch=True, prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.AdamW(
            self.parameters(), lr=self.hparams.learning_rate, weight_decay=self.hparams.weight_decay
        )


def network_from_weights(hparams: dict, state_dict: dict) -> TabularNet:
    """Rebuild the trained network (in eval mode) from its hyperparameters and weights."""
    module = TabularClassifier(**hparams)
    module.load_state_dict(state_dict)
    return module.net.eval()


def _dataset(features: FeatureMatrix, labels: np.ndarray) -> TensorDataset:
    return TensorDataset(
        torch.from_numpy(features.numeric),
        torch.from_numpy(features.categorical),
        torch.from_numpy(np.asarray(labels, dtype=np.float32)),
    )


class TabularDataModule(L.LightningDataModule):
    """In-memory tensors; under DDP Lightning adds a DistributedSampler to each loader."""

    def __init__(
        self,
        train: FeatureMatrix,
        train_labels: np.ndarray,
        validation: FeatureMatrix,
        validation_labels: np.ndarray,
        batch_size: int = 1024,
    ):
        super().__init__()
        self.train_set = _dataset(train, train_labels)
        self.validation_set = _dataset(validation, validation_labels)
        self.batch_size = batch_size

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.validation_set, batch_size=self.batch_size * 4)


@torch.inference_mode()
def predict_proba(net: TabularNet, features: FeatureMatrix, batch_size: int = 8192) -> np.ndarray:
    net.eval()
    numeric, categorical = torch.from_numpy(features.numeric), torch.from_numpy(features.categorical)
    scores = [
        torch.sigmoid(net(numeric[i : i + batch_size], categorical[i : i + batch_size]))
        for i in range(0, len(numeric), batch_size)
    ]
    return torch.cat(scores).numpy() if scores else np.zeros(0, dtype=np.float32)


@dataclass
class TrainedNetwork:
    """Everything needed to rebuild the best network, as plain picklable values."""

    hparams: dict
    state_dict: dict
    best_val_auc: float
    epochs_run: int
    history: list[dict] = field(default_factory=list)

    def build(self) -> TabularNet:
        return network_from_weights(self.hparams, self.state_dict)

    def predict(self, pipeline: FeaturePipeline, frame: pd.DataFrame) -> np.ndarray:
        """Delay probabilities for raw rows."""
        return predict_proba(self.build(), pipeline.transform(frame))
