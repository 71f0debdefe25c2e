"""Small data sets shipped inside the package, so studies run offline.

* The UCI 8x8 handwritten digits (1,797 samples, CC BY 4.0), the set scikit-learn bundles
  as ``load_digits``; citation and license in ``lowprec/data/DIGITS-CITATION.txt``.
* A character-level text: the first 131,058 characters of Shakespeare's Coriolanus as in
  "tinyshakespeare" (public domain); provenance in ``lowprec/data/SHAKESPEARE-CITATION.txt``.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Optional, Tuple, Union

import numpy as np

__all__ = ["Split", "digits", "load_digits", "stratified_split", "DIGITS_CITATION",
           "TextCorpus", "shakespeare", "load_shakespeare", "sample_batch", "windows",
           "SHAKESPEARE_CITATION"]

DIGITS_CITATION = ("Alpaydin, E. and Kaynak, C. (1998). Optical Recognition of Handwritten "
                   "Digits. UCI Machine Learning Repository. https://doi.org/10.24432/C50P49 "
                   "(CC BY 4.0)")
SHAKESPEARE_CITATION = ("Shakespeare, W. Coriolanus (c. 1608), the opening 131,058 characters "
                        "of Karpathy's tinyshakespeare (char-rnn, 2015). Public domain.")


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


@dataclass(frozen=True)
class TextCorpus:
    """A character-level corpus: token ids of the training and validation text and the
    vocabulary (token id i is the character ``vocab[i]``)."""

    train: np.ndarray
    val: np.ndarray
    vocab: str

    @property
    def vocab_size(self) -> int:
        """Number of distinct tokens."""
        return len(self.vocab)

    def encode(self, text: str) -> np.ndarray:
        """Token ids (int64) of ``text``.

        Raises:
            ValueError: for a character outside the vocabulary.
        """
        table = {c: i for i, c in enumerate(self.vocab)}
        try:
            return np.array([table[c] for c in text], dtype=np.int64)
        except KeyError as e:
            raise ValueError(f"character {e.args[0]!r} is not in the vocabulary") from None

    def decode(self, ids) -> str:
        """The text of token ids."""
        return "".join(self.vocab[int(i)] for i in np.asarray(ids).reshape(-1))


def shakespeare() -> str:
    """The shipped text, exactly as stored (see ``SHAKESPEARE-CITATION.txt``)."""
    return resources.files("lowprec").joinpath("data/shakespeare.txt").read_text(encoding="ascii")


def load_shakespeare(*, val_fraction: float = 0.1) -> TextCorpus:
    """The Shakespeare excerpt as character tokens, split as nanoGPT's shakespeare_char:
    the first ``1 - val_fraction`` of the text for training, the rest for validation.

    Args:
        val_fraction: share of the characters held out at the end (0 < f < 1).

    Returns:
        A :class:`TextCorpus` with int64 token ids and the sorted distinct characters of
        the whole text as the vocabulary (61 of them).

    Raises:
        ValueError: for a fraction outside (0, 1).
    """
    if not 0.0 < float(val_fraction) < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    text = shakespeare()
    vocab = "".join(sorted(set(text)))
    ids = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    lut = np.zeros(128, dtype=np.int64)
    lut[np.frombuffer(vocab.encode("ascii"), dtype=np.uint8)] = np.arange(len(vocab))
    tokens = lut[ids]
    n = int(round(len(tokens) * (1.0 - float(val_fraction))))
    return TextCorpus(tokens[:n].copy(), tokens[n:].copy(), vocab)


def _rng(seed: Union[int, np.random.Generator, None]) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def sample_batch(tokens: np.ndarray, batch_size: int, context: int,
                 seed: Union[int, np.random.Generator, None] = 0) -> Tuple[np.ndarray, np.ndarray]:
    """A batch of random windows for next-token training, as nanoGPT's ``get_batch``.

    Args:
        tokens: 1-D token ids.
        batch_size: number of windows.
        context: window length.
        seed: an int seed or a numpy Generator (pass one Generator to draw a sequence of
            batches); the same seed gives the same batch.

    Returns:
        ``(x, y)``: int64 arrays of shape (batch_size, context), ``y`` being ``x`` shifted
        by one token (the next-token targets).

    Raises:
        ValueError: for non-positive sizes or a text not longer than the context.
    """
    tokens = np.asarray(tokens)
    if batch_size < 1 or context < 1:
        raise ValueError(f"batch_size and context must be positive, got {batch_size}, {context}")
    if tokens.ndim != 1 or len(tokens) <= context:
        raise ValueError(f"tokens must be 1-D and longer than the context ({context}), got "
                         f"shape {tokens.shape}")
    starts = _rng(seed).integers(0, len(tokens) - context, batch_size)
    idx = starts[:, None] + np.arange(context)
    return tokens[idx].astype(np.int64), tokens[idx + 1].astype(np.int64)


def windows(tokens: np.ndarray, context: int,
            limit: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Consecutive non-overlapping windows (the deterministic evaluation set).

    Args:
        tokens: 1-D token ids.
        context: window length.
        limit: keep at most this many windows (the first ones); None for all.

    Returns:
        ``(x, y)`` of shape (n, context), ``y`` shifted by one token; the tail shorter than
        a window is dropped.

    Raises:
        ValueError: for a context that is not positive or a text not longer than it.
    """
    tokens = np.asarray(tokens)
    if context < 1 or tokens.ndim != 1 or len(tokens) <= context:
        raise ValueError(f"tokens must be 1-D and longer than a positive context, got "
                         f"shape {tokens.shape} and context {context}")
    n = (len(tokens) - 1) // context
    if limit is not None:
        n = min(n, int(limit))
    x = tokens[: n * context].reshape(n, context)
    y = tokens[1: n * context + 1].reshape(n, context)
    return x.astype(np.int64), y.astype(np.int64)
