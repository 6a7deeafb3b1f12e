"""The network itself: a plain nn.Module, free of training concerns."""

from __future__ import annotations

import torch
from torch import nn


class TabularNet(nn.Module):
    """Numeric features and categorical embeddings, concatenated into an MLP; one logit out."""

    def __init__(
        self,
        numeric_width: int,
        cardinalities: list[int],
        embedding_dim: int = 8,
        hidden_sizes: tuple[int, ...] | list[int] = (128, 64),
        dropout: float = 0.1,
    ):
        super().__init__()
        self.embeddings = nn.ModuleList(
            nn.Embedding(size, min(embedding_dim, (size + 1) // 2 + 1)) for size in cardinalities
        )
        width = numeric_width + sum(e.embedding_dim for e in self.embeddings)
        layers: list[nn.Module] = []
        for hidden in hidden_sizes:
            layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)]
            width = hidden
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        embedded = [table(categorical[:, i]) for i, table in enumerate(self.embeddings)]
        return self.mlp(torch.cat([numeric, *embedded], dim=1)).squeeze(-1)
