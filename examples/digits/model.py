"""The digits model: scikit-learn's bundled UCI handwritten digits, a fixed split, a fast classifier.

The data set (1,797 images of 8x8 pixels, each pixel 0..16) ships inside scikit-learn, so nothing is
downloaded. The model is an RBF kernel approximated by Nystroem features followed by a multinomial
logistic regression: about 0.99 accuracy on the held-out quarter, a fraction of a second to train on
one core, real class probabilities, and sub-millisecond predictions for one image. Every step has a
fixed seed, so two trainings give the same model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from sklearn import config_context
from sklearn.datasets import load_digits
from sklearn.kernel_approximation import Nystroem
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler

TEST_SIZE = 0.25
SPLIT_SEED = 0
MODEL_SEED = 0


def load_split() -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64], NDArray[np.int64]]:
    """The fixed train/test split: (X_train, X_test, y_train, y_test), stratified, 25% held out.

    X rows are the 64 pixels of one image, row by row; y holds the digit 0..9. The same call always
    returns the same rows in the same order (1,347 for training, 450 held out).
    """
    data = load_digits()
    x = np.asarray(data.data, dtype=np.float64)
    y = np.asarray(data.target, dtype=np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=TEST_SIZE, stratify=y, random_state=SPLIT_SEED
    )
    return x_train, x_test, y_train, y_test


def build_pipeline() -> Pipeline:
    """The unfitted pipeline: scale pixels to 0..1, Nystroem RBF features, logistic regression."""
    return Pipeline(
        [
            ("scale", MinMaxScaler()),
            ("rbf", Nystroem(kernel="rbf", gamma=0.2, n_components=300, random_state=MODEL_SEED)),
            ("classify", LogisticRegression(C=10.0, max_iter=5000)),
        ]
    )


def train_model(
    x_train: NDArray[np.float64] | None = None, y_train: NDArray[np.int64] | None = None
) -> Pipeline:
    """A fitted pipeline, trained on the fixed split's training rows unless others are given."""
    if x_train is None or y_train is None:
        x_train, _, y_train, _ = load_split()
    return build_pipeline().fit(x_train, y_train)


@dataclass(frozen=True)
class TrainedModel:
    """A fitted pipeline and its accuracy on the held-out split (what the server logs at start-up)."""

    pipeline: Pipeline
    accuracy: float
    train_images: int
    test_images: int

    @property
    def classes_(self) -> NDArray[np.int64]:
        return np.asarray(self.pipeline.classes_)

    def predict_proba(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """Class probabilities for already validated pixels (finite, 0..16, 64 per row).

        scikit-learn's own input and parameter checks are skipped here: for one image they cost
        about as much as the prediction itself, and the server has checked every pixel already.
        """
        with config_context(assume_finite=True, skip_parameter_validation=True):
            return np.asarray(self.pipeline.predict_proba(x), dtype=np.float64)


def train_and_evaluate() -> TrainedModel:
    """Train on the fixed split and score on its held-out rows."""
    x_train, x_test, y_train, y_test = load_split()
    pipeline = train_model(x_train, y_train)
    accuracy = float(pipeline.score(x_test, y_test))
    return TrainedModel(pipeline, accuracy, len(y_train), len(y_test))
