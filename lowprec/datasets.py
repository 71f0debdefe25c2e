"""Small data sets shipped inside the package, so studies run offline.

The only one so far is the UCI 8x8 handwritten digits (1,797 samples, CC BY 4.0), the set
scikit-learn bundles as ``load_digits``; its citation and license are in
``lowprec/data/DIGITS-CITATION.txt``.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Tuple

import numpy as np

__all__ = ["Split", "digits", "load_digits", "stratified_split", "DIGITS_CITATION"]

DIGITS_CITATION = ("Alpaydin, E. and Kaynak, C. (1998). Optical Recognition of Handwritten "
                   "Digits. UCI Machine Learning Repository. https://doi.org/10.24432/C50P49 "
                   "(CC BY 4.0)")


@dataclass(frozen=True)
class Split:
    """A train/test split: features ``x_*`` (n x d) and integer labels ``y_*`` (n,)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def n_classes(self) -> int:
        """Number of classes (largest label + 1)."""
        return int(max(self.y_train.max(), self.y_test.max())) + 1


def digits() -> Tuple[np.ndarray, np.ndarray]:
    """The raw digits: pixel counts and labels, exactly as published.

    Returns:
        ``(images, target)``: uint8 arrays of shape (1797, 64) with values 0..16 (row-major
        8x8 images) and (1797,) with labels 0..9.
    """
    with resources.files("lowprec").joinpath("data/digits.npz").open("rb") as f:
        with np.load(f) as z:
            return z["images"].copy(), z["target"].copy()


def stratified_split(y: np.ndarray, test_fraction: float, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """Indices of a seeded stratified split: each class is split in the same proportion.

    Args:
        y: integer labels.
        test_fraction: share of each class put in the test set (0 < f < 1), rounded to the
            nearest whole number of samples per class.
        seed: seed of the permutation (numpy ``default_rng``).

    Returns:
        ``(train_idx, test_idx)``, each sorted.

    Raises:
        ValueError: for a fraction outside (0, 1).
    """
    if not 0.0 < float(test_fraction) < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        k = int(round(len(idx) * float(test_fraction)))
        test.append(idx[:k])
        train.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def load_digits(*, test_fraction: float = 0.2, seed: int = 0, dtype=np.float32) -> Split:
    """The digits as a seeded stratified train/test split, pixels scaled to [0, 1].

    Args:
        test_fraction: share of each class held out for testing.
        seed: seed of the split; the same seed always gives the same split.
        dtype: float dtype of the features.

    Returns:
        A :class:`Split` with features ``images / 16`` and int64 labels.

    Raises:
        ValueError: for a fraction outside (0, 1).
    """
    images, target = digits()
    tr, te = stratified_split(target, test_fraction, seed)
    x = (images.astype(np.float64) / 16.0).astype(dtype)
    y = target.astype(np.int64)
    return Split(x[tr], y[tr], x[te], y[te])
