"""Weights kept only in a low format (bf16, fp16, fixed point): each update is rounded into
it by round to nearest even, stochastic rounding or Kahan-compensated summation, with
reproducible random bits (:func:`derive_seed`).
"""

from __future__ import annotations

from typing import Dict, Optional

import numpy as np

from ..arith import add
from ..formats import FixedFormat, FloatFormat, get_format
from ..quantize import quantize

__all__ = ["WeightUpdate", "derive_seed", "UPDATE_RULES"]

#: How an update is rounded into a low weight format.
UPDATE_RULES = ("rne", "sr", "kahan")


def derive_seed(*parts: int) -> int:
    """A reproducible 63-bit seed from non-negative integers (numpy SeedSequence).

    Args:
        *parts: integers naming the stream (seed, parameter index, step, ...); each is
            taken modulo 2^64.

    Returns:
        A non-negative int below 2^63.
    """
    ss = np.random.SeedSequence([int(p) & 0xFFFFFFFFFFFFFFFF for p in parts])
    return int(ss.generate_state(1, np.uint64)[0] >> np.uint64(1))


class WeightUpdate:
    """Weights kept only in a low format; each update ``w + delta`` is rounded into it.

    * ``"rne"``: round to nearest even. Updates smaller than half a unit in the last place
      of the weight are lost (stagnation; Micikevicius et al. 2018, Zamirai et al. 2020).
    * ``"sr"``: stochastic rounding of the exact sum: the expected weight follows the
      exact update (Gupta et al. 2015). Random bits come from (seed, parameter index,
      update count, element), so runs are reproducible.
    * ``"kahan"``: Kahan-compensated summation with the compensation also stored in the
      format: y = rnd(delta - c); t = rnd(w + y); c = rnd(rnd(t - w) - y); w = t.

    Float formats round the exact sum once (:func:`lowprec.add`). Fixed-point formats are a
    uniform grid, so SR(w + d) equals w + SR(d) for w on the grid (saturating at the ends),
    and RNE rounds the float64 sum, which is exact for the word lengths supported.

    Args:
        fmt: the weight format (a float or fixed-point format or name).
        rounding: "rne", "sr" or "kahan".
        seed: seed of stochastic rounding.

    Raises:
        ValueError: unknown rounding, or Kahan with a fixed-point format.
    """

    def __init__(self, fmt, rounding: str = "rne", seed: int = 0):
        self.fmt = get_format(fmt)
        if rounding not in UPDATE_RULES:
            raise ValueError(f"rounding must be one of {UPDATE_RULES}, got {rounding!r}")
        if rounding == "kahan" and not isinstance(self.fmt, FloatFormat):
            raise ValueError(f"Kahan summation needs a float format, got {self.fmt.name}")
        self.rounding = rounding
        self.seed = int(seed)
        self._count: Dict[int, int] = {}
        self._comp: Dict[int, np.ndarray] = {}

    def __repr__(self) -> str:
        return f"WeightUpdate({self.fmt.name}, {self.rounding!r})"

    def cast(self, x: np.ndarray) -> np.ndarray:
        """Round weights into the format (RNE, saturating): the initial conversion."""
        return quantize(np.asarray(x), self.fmt, rounding="rne", overflow="saturate").astype(
            np.asarray(x).dtype, copy=False)

    def _sum(self, w: np.ndarray, d: np.ndarray, mode: str, seed: Optional[int]) -> np.ndarray:
        """round(w + d) into the format, from the exact sum (float64 result)."""
        f = self.fmt
        if isinstance(f, FixedFormat):
            w64 = np.asarray(w, np.float64)
            d64 = np.asarray(d, np.float64)
            if mode == "sr":
                # Round d on the same grid with the widest word, so SR(d) never saturates
                # before w is added (w + d may be in range while d alone is not).
                wide = FixedFormat(max(32 - f.frac_bits, 1), f.frac_bits)
                r = quantize(d64, wide, rounding="sr", overflow="saturate", seed=seed)
                return np.clip(w64 + r, f.min, f.max)  # exact: both on the 2^-FL grid
            return quantize(w64 + d64, f, rounding=mode, overflow="saturate")
        return add(np.asarray(w, np.float32), np.asarray(d, np.float32), f, rounding=mode,
                   overflow="saturate", seed=seed).astype(np.float64)

    def apply(self, index: int, w: np.ndarray, delta: np.ndarray) -> np.ndarray:
        """The new stored weight after adding ``delta`` to weight array number ``index``.

        Args:
            index: the parameter's position in its optimizer (keys state and random bits).
            w: current weights (on the format's grid).
            delta: the update the optimizer computed (in float32/float64).

        Returns:
            New weights in ``w``'s dtype, on the format's grid.
        """
        n = self._count.get(index, 0)
        self._count[index] = n + 1
        if self.rounding == "kahan":
            c = self._comp.get(index)
            if c is None:
                c = np.zeros(np.shape(w), np.float64)
            y = self._sum(delta, -c, "rne", None)
            t = self._sum(w, y, "rne", None)
            self._comp[index] = self._sum(self._sum(t, -np.asarray(w), "rne", None), -y,
                                          "rne", None)
            new = t
        elif self.rounding == "sr":
            new = self._sum(w, delta, "sr", derive_seed(self.seed, index, n))
        else:
            new = self._sum(w, delta, "rne", None)
        return new.astype(np.asarray(w).dtype, copy=False)

    def state_dict(self) -> dict:
        return dict(count=dict(self._count), comp={k: v.copy() for k, v in self._comp.items()})

    def load_state_dict(self, state: dict) -> None:
        self._count = dict(state["count"])
        self._comp = {int(k): np.asarray(v, np.float64) for k, v in state["comp"].items()}
