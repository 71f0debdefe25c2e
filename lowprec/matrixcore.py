"""Models of AMD CDNA matrix cores (MI100, MI210/MI250/MI250X, MI300A/MI300X), as plain data.

The semantics are those of the authors' parameterised MATLAB model (Khattak & Mikaitis,
github.com/north-numerical-computing/MATLAB-tensor-core: ``models/MI100MC.m``,
``MI210MC.m`` / ``MI250MC.m``, ``MI300MC.m`` (removed from the repository's HEAD, whose
``MI300XMC.m`` still calls it; read at commit b4bf135) and ``models/tools/GEMM.m``,
``Generic_BFMA_TC.m``), re-derived here; docs/amd.md walks through them with examples.

Every GPU computes ``d = c + sum_k a_k b_k`` with fp32 output and c in fp32. K is cut into
blocks of ``n`` consecutive products (K padded with zero products); each block's fp32
result is the next block's c (recursive summation along K). A block is one of four schemes:

``"exact"`` (CDNA1, MI100): the products and c are summed exactly (a Kulisch accumulator)
and the sum is rounded once to fp32 (RNE, subnormals kept). n = 4 for fp16, 2 for bf16.

``"pairwise"`` (CDNA2, MI210/MI250/MI250X; n = 4): inputs below the input format's smallest
normal are flushed to +0; each product is exact in fp32 (|a b| >= 2^128 gives +-inf), and
one below 2^-126 is flushed to +0; the products are summed as a balanced binary tree of fp32
additions (RNE), ((p0 + p1) + (p2 + p3)), and c is added last, c + tree, in fp32 (RNE). Every
sum below 2^-126 is flushed to zero, keeping its sign; c below 2^-126 is flushed to +0.

``"aligned"`` (CDNA3, MI300X: fp16 and bf16 with n = 8, xf32 (tf32 inputs) with n = 4):

1. Products are exact and not normalised: input exponents are clamped to the input format's
   smallest normal exponent, a product's exponent is e_a + e_b and its significand lies in
   [0, 4). Zero products take no part.
2. E = the largest product exponent. Each product is truncated toward zero to ``frac_bits``
   (F = 24) fraction bits below E and the truncated terms are summed exactly: S * 2^(E - F).
3. c is added afterwards ("late"), with c's exponent e_c = max(floor(log2 |c|), -126) (-126
   for c = 0). If e_c > E both are put on the grid 2^(e_c - ``c_frac_bits``) (31 = 24 + 7
   extra bits), the product sum rounded toward -inf onto it; if e_c < E, c is rounded toward
   -inf onto the products' grid 2^(E - F) (even when S = 0); if equal, nothing is lost. A
   block without non-zero products passes c through unchanged.
4. The exact sum is rounded once to fp32 (RNE, subnormals kept); an exactly zero sum is +0.

``"odd_even"`` (CDNA3 fp8, MI300X; n = 16, inputs in the "fnuz" E4M3/E5M2 formats): step 2
is done separately for the products at even and at odd positions of the block (each group
aligned to its own largest exponent, F = 24); the group with the smaller exponent is rounded
toward -inf onto the other's grid and the two are added; then c as in step 3, except that a
c more than ``c_window`` (25) binades below E is truncated toward zero (it then contributes
nothing) instead of rounded toward -inf. Step 4 as above.

Special values (as :func:`lowprec.matmul`'s NVIDIA models): any NaN product or c, or +inf
together with -inf, gives NaN; otherwise an infinite product or c gives that infinity. A
block's fp32 result that overflows is +-inf and stays so along K. In the "aligned" and
"odd_even" schemes a block with a product |a b| >= 2^128 (bf16, xf32 inputs) gives +-inf
(NaN when both signs occur, or with an accumulator of the other sign).

Deviations from the MATLAB code, where it is not a model of hardware but an artefact of
MATLAB (recorded in docs/amd.md): a block whose products overflow gives -inf for negative
products (MATLAB: +inf whatever the sign); a rounded result at or above 2^128 is inf (MATLAB
keeps values above 2^129 as finite doubles); K = 0 returns c (MATLAB: 0); an infinite
accumulator stays infinite (MATLAB's alignment code is undefined for c = inf).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from .formats import FloatFormat, get_format

__all__ = ["MatrixCorePath", "MatrixCoreModel", "MC_MODELS", "SCHEMES", "get_mc_model",
           "list_mc_models", "select_path", "select_path_pair", "is_mc_model"]

#: Block schemes, in the order the kernels number them.
SCHEMES = ("exact", "pairwise", "aligned", "odd_even")


@dataclass(frozen=True)
class MatrixCorePath:
    """How one matrix-core input format is accumulated (see the module docstring).

    Args:
        scheme: "exact", "pairwise", "aligned" or "odd_even".
        n: products per block (a power of two for "pairwise").
        frac_bits: "aligned"/"odd_even": fraction bits F kept below the largest product
            exponent (24 = 23 + 1 extra alignment bit on CDNA3); 23..30.
        c_frac_bits: "aligned"/"odd_even": fraction bits below c's exponent when c's
            exponent is the larger (31 = 24 + 7); 23..40.
        c_window: "odd_even": c more than this many binades below the products' exponent is
            truncated toward zero instead of rounded toward -inf; None: always toward -inf.
        name: free text for messages.

    Raises:
        ValueError: for values outside the ranges above.
    """

    scheme: str
    n: int
    frac_bits: int = 24
    c_frac_bits: int = 31
    c_window: Optional[int] = None
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise ValueError(f"MatrixCorePath scheme must be one of {SCHEMES}, got "
                             f"{self.scheme!r}")
        if isinstance(self.n, bool) or not isinstance(self.n, int) or not 1 <= self.n <= 64:
            raise ValueError(f"MatrixCorePath n must be an int in 1..64, got {self.n!r}")
        if self.scheme == "pairwise" and self.n & (self.n - 1):
            raise ValueError(f"MatrixCorePath n must be a power of two for the pairwise "
                             f"scheme, got {self.n}")
        if self.scheme == "odd_even" and self.n % 2:
            raise ValueError(f"MatrixCorePath n must be even for the odd_even scheme, got "
                             f"{self.n}")
        # c (fp32, 23 fraction bits) must be exact on its own grid and, at equal exponents,
        # on the products' grid: both keep at least 23 fraction bits (23 + extra bits)
        for nm, hi in (("frac_bits", 30), ("c_frac_bits", 40)):
            v = getattr(self, nm)
            if isinstance(v, bool) or not isinstance(v, int) or not 23 <= v <= hi:
                raise ValueError(f"MatrixCorePath {nm} must be an int in 23..{hi}, got {v!r}")
        if self.c_window is not None and (not isinstance(self.c_window, int)
                                          or not 0 <= self.c_window <= 200):
            raise ValueError(f"MatrixCorePath c_window must be None or an int in 0..200, got "
                             f"{self.c_window!r}")

    @property
    def ftz(self) -> bool:
        """Whether subnormal inputs, products, c and sums are flushed (the CDNA2 scheme)."""
        return self.scheme == "pairwise"


@dataclass(frozen=True)
class MatrixCoreModel:
    """An AMD GPU's matrix cores: input format name -> :class:`MatrixCorePath`.

    The output is always fp32 (c is taken in fp32).

    Attributes:
        name: lower-case GPU name ("mi300x").
        paths: input format name -> path.
        source: where the parameters come from.
        architecture: "CDNA1", "CDNA2" or "CDNA3".
        mixed_inputs: pairs of input format names one instruction takes together.
    """

    name: str
    paths: dict
    source: str = ""
    architecture: str = ""
    mixed_inputs: frozenset = frozenset()

    @property
    def input_formats(self) -> tuple:
        """Input formats the model takes."""
        return tuple(self.paths)

    def path(self, in_fmt) -> MatrixCorePath:
        """The path for an input format (see :func:`select_path`)."""
        return select_path(self, in_fmt)


_FP16, _BF16, _TF32 = "float16", "bfloat16", "tfloat32"
_E4M3Z, _E5M2Z = "float8_e4m3fnuz", "float8_e5m2fnuz"
_SRC = ("Khattak & Mikaitis, MATLAB models (github.com/north-numerical-computing/"
        "MATLAB-tensor-core, models/{})")


def _cdna1(name):
    return MatrixCoreModel(name, {
        _FP16: MatrixCorePath("exact", 4, name=f"{name} fp16"),
        _BF16: MatrixCorePath("exact", 2, name=f"{name} bf16"),
    }, _SRC.format("MI100MC.m"), "CDNA1")


def _cdna2(name):
    return MatrixCoreModel(name, {
        _FP16: MatrixCorePath("pairwise", 4, name=f"{name} fp16"),
        _BF16: MatrixCorePath("pairwise", 4, name=f"{name} bf16"),
    }, _SRC.format("MI210MC.m, MI250MC.m"), "CDNA2")


def _cdna3(name):
    fp8 = {f: MatrixCorePath("odd_even", 16, c_window=25, name=f"{name} {f}")
           for f in (_E4M3Z, _E5M2Z)}
    return MatrixCoreModel(name, {
        _FP16: MatrixCorePath("aligned", 8, name=f"{name} fp16"),
        _BF16: MatrixCorePath("aligned", 8, name=f"{name} bf16"),
        _TF32: MatrixCorePath("aligned", 4, name=f"{name} xf32"),
        **fp8,
    }, _SRC.format("MI300MC.m at b4bf135, MI300XMC.m, MI300AMC.m"), "CDNA3",
        frozenset({frozenset((_E4M3Z, _E5M2Z))}))


MC_MODELS = {
    "mi100": _cdna1("mi100"),
    **{g: _cdna2(g) for g in ("mi210", "mi250", "mi250x")},
    **{g: _cdna3(g) for g in ("mi300a", "mi300x")},
}


def list_mc_models() -> list:
    """Names of the built-in AMD matrix-core models."""
    return sorted(MC_MODELS)


def is_mc_model(model) -> bool:
    """Whether ``model`` names or is an AMD matrix-core model (or path)."""
    if isinstance(model, (MatrixCoreModel, MatrixCorePath)):
        return True
    return isinstance(model, str) and model.strip().lower() in MC_MODELS


def get_mc_model(name):
    """A built-in AMD model by name (case-insensitive), or the model or path itself.

    Raises:
        ValueError: for an unknown name (the message lists the known ones).
        TypeError: for an argument that is neither a name nor a model.
    """
    if isinstance(name, (MatrixCoreModel, MatrixCorePath)):
        return name
    if not isinstance(name, str):
        raise TypeError(f"model must be a name, MatrixCoreModel or MatrixCorePath, got "
                        f"{type(name).__name__}")
    key = name.strip().lower()
    if key not in MC_MODELS:
        raise ValueError(f"unknown matrix-core model {name!r}; known: "
                         f"{', '.join(list_mc_models())}")
    return MC_MODELS[key]


def select_path(model, in_fmt) -> MatrixCorePath:
    """The path of an AMD GPU for an input format.

    Args:
        model: a GPU name, a :class:`MatrixCoreModel`, or a :class:`MatrixCorePath`
            (returned as is for any float input format).
        in_fmt: the format of a and b (name or format).

    Returns:
        The :class:`MatrixCorePath`.

    Raises:
        ValueError: unknown model, or an input format the GPU's matrix cores do not take.
    """
    m = get_mc_model(model)
    fin = get_format(in_fmt)
    if isinstance(m, MatrixCorePath):
        if not isinstance(fin, FloatFormat):
            raise ValueError(f"matrix-core path {m.name or m!r} takes float inputs, not "
                             f"{fin.name}")
        return m
    if fin.name in m.paths:
        return m.paths[fin.name]
    hint = ""
    if fin.name in ("float8_e4m3fn", "float8_e5m2"):
        hint = (f" (CDNA3 matrix cores take the fnuz fp8 formats: "
                f"{_E4M3Z if 'e4m3' in fin.name else _E5M2Z})")
    elif fin.name == "float32":
        hint = (" (fp32 MFMA is a chain of fp32 FMAs, not modelled here: use matmul without "
                "model=, acc='fp32')")
    raise ValueError(f"{m.name} matrix cores do not take {fin.name} inputs{hint}; supported: "
                     f"{', '.join(m.input_formats)}")


def select_path_pair(model, fmt_a, fmt_b) -> MatrixCorePath:
    """The path for a and b in possibly different formats (a pair the GPU lists in
    :attr:`MatrixCoreModel.mixed_inputs`, e.g. E4M3 x E5M2 fnuz on MI300X).

    Raises:
        ValueError: as :func:`select_path`, or for a pair the GPU does not take together.
    """
    fa, fb = get_format(fmt_a), get_format(fmt_b)
    m = get_mc_model(model)
    p = select_path(m, fa)
    if fa == fb or isinstance(m, MatrixCorePath):
        if not isinstance(fb, FloatFormat):
            raise ValueError(f"matrix cores take float inputs, not {fb.name}")
        return p
    if frozenset((fa.name, fb.name)) not in m.mixed_inputs:
        pairs = ", ".join(" x ".join(sorted(q)) for q in m.mixed_inputs) or "none"
        raise ValueError(f"{m.name} matrix cores do not take a in {fa.name} with b in "
                         f"{fb.name}; mixed input pairs it takes: {pairs}")
    q = select_path(m, fb)
    if q != p:
        raise ValueError(f"{m.name}: {fa.name} and {fb.name} run on different datapaths")
    return p
