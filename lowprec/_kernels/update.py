"""One pass over an array where numpy takes several: the SGD-with-momentum step, ReLU.

numpy takes four passes (and a temporary) for the update torch.optim.SGD defines,
``buf = momentum * buf + g; w = w + (-lr) * buf``: a multiply, an add, a scale and an add,
each a call of a microsecond or more on a training step's small arrays. The kernel below
does the same float32 operations, in the same order, in one pass (no fused multiply-add:
numba does not contract without fast-math), so its bits are numpy's.
"""

import numpy as np
from numba.core import types as nbt

from .jit import njit
from .plain import EntryPoint

__all__ = ["sgd_momentum", "ENTRY", "SIGNATURE", "relu_select", "RELU", "RELU_SIGNATURE"]

_F32_1C = nbt.Array(nbt.float32, 1, "C")
#: The kernel's one specialisation: flat C-contiguous float32 arrays and float32 scalars.
SIGNATURE = (_F32_1C, _F32_1C, _F32_1C, nbt.float32, nbt.float32, _F32_1C)


@njit(cache=True)
def sgd_momentum(w, g, buf, momentum, neg_lr, out):
    """buf <- momentum * buf + g; out <- w + neg_lr * buf (float32, rounded per operation).

    All arrays flat, float32, of one length; ``out`` may be ``w`` itself."""
    for i in range(w.size):
        b = buf[i] * momentum + g[i]
        buf[i] = b
        out[i] = w[i] + neg_lr * b


def _numpy(w, g, buf, momentum, neg_lr, out) -> None:
    np.multiply(buf, momentum, out=buf)
    buf += g
    np.add(w, neg_lr * buf, out=out)


#: The entry point callers use (``ENTRY.get()``); numpy before the kernel is compiled.
ENTRY = EntryPoint(sgd_momentum, SIGNATURE, _numpy)


_U32_1C = nbt.Array(nbt.uint32, 1, "C")
#: :func:`relu_select`'s one specialisation.
RELU_SIGNATURE = (_F32_1C, _F32_1C, _U32_1C)


@njit(cache=True)
def relu_select(x, y, mask):
    """mask <- all ones where x > 0 else 0; y <- x where x > 0 else +0 (float32 x, y,
    uint32 mask; flat). One pass for numpy's compare, widen, negate and bitwise and; the
    backward pass selects gradients with the mask."""
    for i in range(x.size):
        v = x[i]
        on = v > 0
        mask[i] = np.uint32(0xFFFFFFFF) if on else np.uint32(0)
        y[i] = v if on else np.float32(0)


def _relu_numpy(x, y, mask) -> None:
    np.negative((x > 0).astype(np.uint32), out=mask)  # 1 -> all ones (unsigned wrap-around)
    np.bitwise_and(x.view(np.uint32), mask, out=y.view(np.uint32))


#: The entry point of :func:`relu_select`; numpy before it is compiled.
RELU = EntryPoint(relu_select, RELU_SIGNATURE, _relu_numpy)
