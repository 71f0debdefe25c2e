"""Scaling groups: which elements share a scale, and where the scales go.

A :class:`Grouping` views an array as a 2-D (groups, members) matrix, one row per scale,
and maps per-group results back to the array's shape and to the shape of the scales
(the layout rules of :mod:`lowprec.scaled`). Recipes work on the rows and never see the
array's shape.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

__all__ = ["GRANULARITIES", "Grouping", "check_granularity", "group_amax"]

GRANULARITIES = ("tensor", "channel", "block")


def check_granularity(granularity: Optional[str],
                      block_size: Optional[int]) -> tuple[str, Optional[int]]:
    """The granularity and block size :func:`lowprec.quantize_scaled` was asked for.

    Args:
        granularity: "tensor", "channel", "block" or None ("block" when ``block_size`` is
            given, "tensor" otherwise).
        block_size: values per block (None: 32 for "block").

    Returns:
        ``(granularity, block_size)``, the block size None unless "block".

    Raises:
        ValueError: for an unknown granularity, a block size below 1, or a block size
            without ``granularity="block"``.
        TypeError: for a block size that is not an int.
    """
    if granularity is None:
        granularity = "block" if block_size is not None else "tensor"
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")
    if granularity != "block":
        if block_size is not None:
            raise ValueError(f"block_size={block_size} needs granularity='block' "
                             f"(got {granularity!r})")
        return granularity, None
    block_size = 32 if block_size is None else block_size
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)):
        raise TypeError(f"block_size must be an int, got {type(block_size).__name__}")
    if block_size < 1:
        raise ValueError(f"block_size must be positive, got {block_size}")
    return granularity, int(block_size)


def group_amax(groups: np.ndarray) -> np.ndarray:
    """Per-row max |x| of a (groups, members) matrix; NaN if the row holds a NaN; 0 for
    empty rows."""
    if groups.shape[1] == 0:
        return np.zeros(groups.shape[0], groups.dtype)
    return np.max(np.abs(groups), axis=1)


class Grouping:
    """Rows of :meth:`to_groups` are scaling groups; :meth:`from_groups` inverts it.

    Args:
        shape: shape of the quantized array.
        granularity: "tensor", "channel" or "block".
        axis: non-negative channel or block axis (ignored for "tensor").
        block_size: values per block (ignored unless "block").

    Attributes:
        scale_shape: shape of the scales (see :mod:`lowprec.scaled`).
    """

    def __init__(self, shape: tuple, granularity: str, axis: int, block_size: int):
        self.shape, self.granularity, self.axis, self.block_size = shape, granularity, axis, \
            block_size
        if granularity == "tensor":
            self.scale_shape = ()
        elif granularity == "channel":
            self.scale_shape = tuple(n if i == axis else 1 for i, n in enumerate(shape))
        else:
            n = shape[axis]
            self.nblocks = -(-n // block_size)
            self.scale_shape = shape[:axis] + (self.nblocks,) + shape[axis + 1:]

    @classmethod
    def for_array(cls, shape: tuple, granularity: str, axis, block_size: Optional[int],
                  pad: bool) -> "Grouping":
        """The grouping of an array of ``shape``, the axis checked against it.

        Args:
            shape: the array's shape.
            granularity: "tensor", "channel" or "block" (as :func:`check_granularity`
                returns it).
            axis: channel or block axis, negative counting from the end.
            block_size: values per block ("block" only).
            pad: False refuses a block size that does not divide the axis.

        Returns:
            A :class:`Grouping`.

        Raises:
            ValueError: for a scalar with "channel"/"block", an axis out of range, or
                ``pad=False`` with a block size that does not divide the axis.
            TypeError: for an axis that is not an int.
        """
        if granularity == "tensor":
            return cls(shape, granularity, 0, 1)
        ndim = len(shape)
        if ndim == 0:
            raise ValueError(f"granularity={granularity!r} needs an array with at least one "
                             f"dimension, got a scalar")
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise TypeError(f"axis must be an int, got {type(axis).__name__}")
        if not -ndim <= axis < ndim:
            raise ValueError(f"axis {axis} is out of range for an array of shape {shape}")
        ax = int(axis) % ndim
        if granularity == "block" and not pad and shape[ax] % block_size:
            raise ValueError(f"block_size {block_size} does not divide axis {ax} of length "
                             f"{shape[ax]} (shape {shape}); pass pad=True to let the last "
                             f"block of each row be partial")
        return cls(shape, granularity, ax, block_size or 1)

    def to_groups(self, a: np.ndarray, fill=0) -> np.ndarray:
        """The array as a (groups, members) matrix; a short last block is padded with
        ``fill``."""
        if self.granularity == "tensor":
            return a.reshape(1, -1)
        if self.granularity == "channel":  # explicit sizes: -1 is ambiguous for empty input
            return np.moveaxis(a, self.axis, 0).reshape(self.shape[self.axis], self._members())
        m = np.moveaxis(a, self.axis, -1)
        n = m.shape[-1]
        m = m.reshape(self._rows(), n)  # explicit row count: -1 is ambiguous for empty input
        padded = self.nblocks * self.block_size
        if padded != n:
            m = np.concatenate([m, np.full((m.shape[0], padded - n), fill, m.dtype)], axis=1)
        return m.reshape(-1, self.block_size)

    def from_groups(self, g: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`to_groups` (the padding dropped)."""
        if self.granularity == "tensor":
            return g.reshape(self.shape)
        if self.granularity == "channel":
            moved = (self.shape[self.axis],) + tuple(
                n for i, n in enumerate(self.shape) if i != self.axis)
            return np.moveaxis(g.reshape(moved), 0, self.axis)
        n = self.shape[self.axis]
        rows = g.reshape(self._rows(), self.nblocks * self.block_size)[:, :n]
        moved = tuple(s for i, s in enumerate(self.shape) if i != self.axis) + (n,)
        return np.moveaxis(rows.reshape(moved), -1, self.axis)

    def scales_to_groups(self, s: np.ndarray) -> np.ndarray:
        """Per-group scales (in ``scale_shape``) as a flat vector in group order."""
        if self.granularity == "tensor":
            return np.asarray(s).reshape(1)
        if self.granularity == "channel":
            return np.asarray(s).reshape(-1)
        return np.moveaxis(np.asarray(s), self.axis, -1).reshape(-1)

    def scales_from_groups(self, v: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`scales_to_groups`: a vector in group order in ``scale_shape``."""
        if self.granularity == "tensor":
            return v.reshape(())
        if self.granularity == "channel":
            return v.reshape(self.scale_shape)
        moved = tuple(s for i, s in enumerate(self.shape) if i != self.axis) + (self.nblocks,)
        if self.axis == len(self.shape) - 1:  # already in place (np.moveaxis costs ~10 us)
            return v.reshape(moved)
        return np.moveaxis(v.reshape(moved), -1, self.axis)

    def expand(self, v: np.ndarray) -> np.ndarray:
        """Broadcast one value per group to one value per element (input shape)."""
        g = np.broadcast_to(v[:, None], (v.size, self._members()))
        return self.from_groups(g)

    def _rows(self) -> int:
        """Rows of blocks: index tuples off ``axis``."""
        return int(np.prod([n for i, n in enumerate(self.shape) if i != self.axis],
                           dtype=np.int64))

    def _members(self) -> int:
        if self.granularity == "tensor":
            return int(np.prod(self.shape, dtype=np.int64))
        if self.granularity == "channel":
            n = self.shape[self.axis]
            return int(np.prod(self.shape, dtype=np.int64)) // n if n else 0
        return self.block_size
