"""The feature pipeline: fitted on the training split only, saved with the model.

Numeric columns are median-imputed (with a missing-indicator) and scaled;
categorical columns become integer codes for embeddings, where 0 stands for
a missing, rare or unseen category.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OrdinalEncoder, StandardScaler

from domainflow.config import DatasetSchema


@dataclass(frozen=True)
class FeatureMatrix:
    numeric: np.ndarray  # float32, (rows, numeric width)
    categorical: np.ndarray  # int64, (rows, categorical columns), 0 = unknown


class FeaturePipeline:
    def __init__(self, numeric: list[str], categorical: list[str], min_category_count: int = 20):
        self.numeric = list(numeric)
        self.categorical = list(categorical)
        transformers = []
        if self.numeric:
            numeric_steps = make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler())
            transformers.append(("numeric", numeric_steps, self.numeric))
        self._numeric = ColumnTransformer(transformers, remainder="drop") if transformers else None
        self._categorical = (
            OrdinalEncoder(
                handle_unknown="use_encoded_value",
                unknown_value=-1,
                encoded_missing_value=-1,
                min_frequency=min_category_count,
                dtype=np.int64,
            )
            if self.categorical
            else None
        )

    @classmethod
    def from_schema(cls, schema: DatasetSchema) -> FeaturePipeline:
        return cls(schema.numeric_features, schema.categorical_features)

    def fit(self, frame: pd.DataFrame) -> FeaturePipeline:
        if self._numeric is not None:
            self._numeric.fit(frame[self.numeric])
        if self._categorical is not None:
            self._categorical.fit(self._as_strings(frame))
        return self

    def _as_strings(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Categories as strings, as validation types them: served rows may send 1 for "1"."""
        columns = frame[self.categorical]
        return columns.astype("string").astype(object).where(columns.notna(), np.nan)

    def transform(self, frame: pd.DataFrame) -> FeatureMatrix:
        rows = len(frame)
        numeric = (
            self._numeric.transform(frame[self.numeric]).astype(np.float32)
            if self._numeric is not None
            else np.zeros((rows, 0), dtype=np.float32)
        )
        categorical = (
            self._categorical.transform(self._as_strings(frame)) + 1
            if self._categorical is not None
            else np.zeros((rows, 0), dtype=np.int64)
        )
        return FeatureMatrix(numeric=np.ascontiguousarray(numeric), categorical=np.ascontiguousarray(categorical))

    @property
    def numeric_width(self) -> int:
        return 0 if self._numeric is None else len(self._numeric.get_feature_names_out())

    @property
    def cardinalities(self) -> list[int]:
        """Embedding table sizes: each column's categories (frequent + infrequent bucket) plus unknown."""
        if self._categorical is None:
            return []
        sizes = []
        for index, categories in enumerate(self._categorical.categories_):
            infrequent = self._categorical.infrequent_categories_[index]
            kept = len(categories) - (0 if infrequent is None else len(infrequent) - 1)
            sizes.append(kept + 1)
        return sizes
