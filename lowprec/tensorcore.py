"""Block-FMA models of NVIDIA tensor cores, as plain data.

One :class:`BlockFMAModel` describes how one tensor-core instruction path (one input
format, one output format) computes ``d = c + sum_k a_k b_k``; a :class:`TensorCoreModel`
names a GPU and maps (input format, output format) to its block model. The kernel in
:mod:`lowprec._kernels.tensorcore` takes a model's fields as plain integers, so a fitter can
build a :class:`BlockFMAModel` with any values and run it.

The block FMA (Fasi, Higham, Mikaitis, Pranesh, PeerJ CS 7:e330, 2021; Khattak & Mikaitis,
"Accurate Models of NVIDIA Tensor Cores", arXiv:2512.07004; REFERENCE.md section 4):

1. Products are exact. Each input's exponent is clamped to its format's smallest normal
   exponent; a product's exponent is e_a + e_b and its significand lies in [0, 4):
   products are not normalised (``normalise_products=True`` aligns them by floor(log2|ab|)
   instead). Zero products take no part in the alignment.
2. All terms, c included (c's exponent is taken as an fp32 value's, clamped to -126), are
   aligned to the largest exponent E. c = 0 takes no part either.
3. Each term is truncated toward zero (sign-magnitude) to ``frac_bits`` fraction bits below
   E: to a multiple of 2^(E - frac_bits). No guard or sticky bits.
4. The truncated terms are summed exactly.
5. One normalisation and rounding at the end, into ``out_format`` with ``rounding``
   (``out_frac_bits`` can narrow the result's significand, e.g. 13 bits for fp8 inputs on
   Hopper). Subnormal results are produced. A rounded result beyond the format's largest
   binade is +-inf (round toward zero included, as in the authors' MATLAB model). An exactly
   zero sum gives +0.
6. K is cut into instructions of ``instruction_k`` products (K padded with zeros). An
   instruction runs ``instruction_k // n`` blocks one after the other, each block's output
   being the next block's c. ``interleave = g > 0`` deals runs of g consecutive products
   round-robin to the blocks of an instruction instead of contiguous runs. Along K each
   instruction's result, in ``out_format`` and rounded as above, is the next instruction's
   c (as the authors' ``models/tools/GEMM.m``): K products give the same result as one
   call per instruction with c fed back (tests/test_kchain.py).
7. ``c_mode="block"``: the instruction starts from c. ``c_mode="late"``: the instruction's
   blocks start from 0 and c is added to their result afterwards with one more rounding, a
   separate stage: mode ``c_rounding`` and ``c_frac_bits`` fraction bits (by default the
   block's ``rounding`` and result bits). Hopper's fp8 MMA with fp16 output (the fp16
   datapath) and B200's fp8 MMA with fp32 output add c this way.
8. ``promote_every = P``: after every P products the running result is added into an fp32
   total with round-to-nearest-even and the accumulation restarts from 0; c starts the
   total (DeepSeek-V3's fix for fp8 GEMMs, P = 128).
9. NaN anywhere (or inf * 0) gives NaN; +inf with -inf gives NaN; otherwise inf propagates.

Measured deviations from REFERENCE.md's table, with the evidence in tests/data/tensor-cores
(all 2,500 cases of each V100, A100 and H100 data set and all 1,000 of each Ada and B200
fp8 set, fp32 and fp16 output, reproduced bit for bit by the models here):

- H100 fp8 (E4M3) with fp16 output is not the fp32-output block (n = 32, F = 13). It is the
  fp16 datapath: each 32-product instruction is run as two fp16 blocks (n = 16, F = 25,
  RNE into fp16) over the products with k mod 4 in {0, 1} and then {2, 3}, starting from 0,
  and c (fp16) is added afterwards with one more fp16 RNE rounding. The simple block model
  misses 944 of 2,500 cases; this one misses none.
- The data's authors run Hopper's fp8 MMA with fp32 output (WGMMA, D = A*B + D) with
  D = 0, E4M3 and E5M2 alike: :attr:`TensorCoreModel.fp8_fp32_zero_c`, used by the data
  loader. It holds for the fp32 output only; H100 E4M3's fp16 output file used c rounded to
  fp16 (as for the other fp16 outputs): with c = 0 2,496 of 2,500 cases differ.
- B200 fp8 with fp32 output is not the authors' B200TC.m (n = 32, F = 25, c in the block,
  RTZ: 638 and 661 of 1,000): the block of 32 products sums from 0 with F = 25, rounds to
  nearest-even into fp32, and c is added afterwards with one more RNE rounding
  (``c_mode="late"``). B200 fp8 with fp16 output is Hopper's fp16 datapath (above).
- Ada fp8 with fp16 output is the fp32-output block (n = 16, F = 13, c in the block) with
  RNE into fp16. These three paths were found by ``lowprec fit`` on half of each data set
  and checked on the other half (docs/hardware.md, "Fitted fp8 paths").
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Optional

from .formats import FloatFormat, get_format

__all__ = ["BlockFMAModel", "TensorCoreModel", "MODELS", "AUTHORS_B200_FP8", "get_model",
           "select_block", "select_block_pair", "list_models", "BLOCK_OUTPUTS"]

_ROUNDINGS = ("rtz", "rne", "rup", "rdn")
_C_MODES = ("block", "late")
_OUTPUTS = ("float32", "float16")
#: The formats a block rounds its result to (``BlockFMAModel.out_format``).
BLOCK_OUTPUTS = tuple(get_format(o) for o in _OUTPUTS)


@dataclass(frozen=True)
class BlockFMAModel:
    """Parameters of one tensor-core accumulation path (see the module docstring).

    Args:
        n: products per block FMA (>= 1).
        frac_bits: fraction bits F kept below the largest exponent when aligning (may be
            negative; F = 23 + extra alignment bits).
        rounding: final rounding of each block: "rtz", "rne", "rup" or "rdn".
        out_format: format each block's output is rounded to: "fp32" or "fp16".
        out_frac_bits: fraction bits of the rounded output (None: the format's own,
            23 or 10; 13 models fp8 inputs on Ada/Hopper, whose fp32 results have their
            low 10 bits zero).
        c_mode: "block" (c aligned with the products) or "late" (c added afterwards).
        instruction_k: products per instruction (None: n). A multiple of n.
        interleave: 0 for contiguous blocks, g > 0 to deal runs of g products to the
            blocks of an instruction round-robin.
        promote_every: None, or a number of products after which the running result is
            added into an fp32 total (RNE) and accumulation restarts from 0.
        convert_inputs: None, or a format the inputs are converted to (exactly) before the
            block, whose smallest normal exponent then clamps the input exponents.
        c_rounding: rounding of the separate c-addition stage of ``c_mode="late"`` ("rtz",
            "rne", "rup", "rdn"; None: ``rounding``). The block sum is rounded with
            ``rounding`` to ``out_frac_bits``, the addition of c with this mode.
        c_frac_bits: fraction bits of the c-addition stage's result (None: the block's
            result bits); only with ``c_mode="late"``.
        normalise_products: align the products by their own (normalised) exponents,
            floor(log2 |a b|), instead of e_a + e_b (the default: products unnormalised,
            significands in [1, 4)).
        name: free text for messages.

    Raises:
        ValueError: for values outside the ranges above.
    """

    n: int
    frac_bits: int
    rounding: str = "rtz"
    out_format: str = "fp32"
    out_frac_bits: Optional[int] = None
    c_mode: str = "block"
    instruction_k: Optional[int] = None
    interleave: int = 0
    promote_every: Optional[int] = None
    convert_inputs: Optional[str] = None
    c_rounding: Optional[str] = None
    c_frac_bits: Optional[int] = None
    normalise_products: bool = False
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        out = get_format(self.out_format).name
        if out not in _OUTPUTS:
            raise ValueError(f"BlockFMAModel out_format must be fp32 or fp16, got "
                             f"{self.out_format!r}")
        object.__setattr__(self, "out_format", out)
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1:
            raise ValueError(f"BlockFMAModel n must be a positive int, got {self.n!r}")
        if not isinstance(self.frac_bits, int) or not -20 <= self.frac_bits <= 40:
            raise ValueError(f"BlockFMAModel frac_bits must be an int in -20..40, got "
                             f"{self.frac_bits!r}")
        if self.rounding not in _ROUNDINGS:
            raise ValueError(f"BlockFMAModel rounding must be one of {_ROUNDINGS}, got "
                             f"{self.rounding!r}")
        full = get_format(out).man_bits
        if self.out_frac_bits is not None and not 0 <= self.out_frac_bits <= full:
            raise ValueError(f"BlockFMAModel out_frac_bits must be in 0..{full} for {out}, got "
                             f"{self.out_frac_bits!r}")
        if self.c_mode not in _C_MODES:
            raise ValueError(f"BlockFMAModel c_mode must be one of {_C_MODES}, got {self.c_mode!r}")
        ik = self.instruction_k if self.instruction_k is not None else self.n
        if ik < self.n or ik % self.n:
            raise ValueError(f"BlockFMAModel instruction_k={ik} must be a multiple of n={self.n}")
        if self.interleave < 0 or (self.interleave and ik % (self.interleave * (ik // self.n))):
            raise ValueError(f"BlockFMAModel interleave={self.interleave} must be 0 or divide "
                             f"instruction_k / blocks per instruction")
        if self.promote_every is not None and (self.promote_every < ik
                                               or self.promote_every % ik):
            raise ValueError(f"BlockFMAModel promote_every={self.promote_every} must be a "
                             f"multiple of instruction_k={ik}")
        if self.c_rounding is not None and self.c_rounding not in _ROUNDINGS:
            raise ValueError(f"BlockFMAModel c_rounding must be None or one of {_ROUNDINGS}, "
                             f"got {self.c_rounding!r}")
        if self.c_frac_bits is not None and not 0 <= self.c_frac_bits <= full:
            raise ValueError(f"BlockFMAModel c_frac_bits must be in 0..{full} for {out}, got "
                             f"{self.c_frac_bits!r}")
        if self.c_mode != "late" and (self.c_rounding is not None
                                      or self.c_frac_bits is not None):
            raise ValueError("BlockFMAModel c_rounding / c_frac_bits need c_mode='late' (a "
                             "separate c-addition stage)")
        if not isinstance(self.normalise_products, bool):
            raise ValueError(f"BlockFMAModel normalise_products must be a bool, got "
                             f"{self.normalise_products!r}")
        if self.convert_inputs is not None:
            fmt = get_format(self.convert_inputs)
            if not isinstance(fmt, FloatFormat):
                raise ValueError(f"convert_inputs must be a float format, got {fmt.name}")
            object.__setattr__(self, "convert_inputs", fmt.name)

    @property
    def k_per_instruction(self) -> int:
        """Products per instruction (``instruction_k`` or ``n``)."""
        return self.instruction_k if self.instruction_k is not None else self.n

    @property
    def result_frac_bits(self) -> int:
        """Fraction bits of a block's rounded output."""
        if self.out_frac_bits is not None:
            return self.out_frac_bits
        return get_format(self.out_format).man_bits

    @property
    def c_stage_rounding(self) -> str:
        """Rounding of the c-addition stage (``c_rounding`` or ``rounding``)."""
        return self.c_rounding if self.c_rounding is not None else self.rounding

    @property
    def c_stage_frac_bits(self) -> int:
        """Fraction bits of the c-addition stage's result."""
        return self.c_frac_bits if self.c_frac_bits is not None else self.result_frac_bits

    def with_(self, **changes) -> "BlockFMAModel":
        """A copy with some fields changed (for fitters)."""
        return replace(self, **changes)


@dataclass(frozen=True)
class TensorCoreModel:
    """A GPU's tensor-core paths: (input format name, output format name) -> block model.

    Input names are lowprec format names ("float16", "bfloat16", "tfloat32",
    "float8_e4m3fn", "float8_e5m2"); outputs "float32" or "float16".

    Attributes:
        name: lower-case GPU name ("h100").
        paths: (input format, output format) -> :class:`BlockFMAModel`.
        source: where the parameters come from.
        architecture: the GPU generation ("Volta", "Ampere", "Ada", "Hopper", "Blackwell").
        fp8_fp32_zero_c: the GPU's fp8 MMA with fp32 output accumulates into its result
            register (Hopper's WGMMA: D = A*B + D), and published measurements of that path
            ran it with D = 0: their c file is not the addend the instruction saw (see
            :meth:`data_c_is_zero`).
        mixed_inputs: pairs of input format names one instruction takes together (a and b in
            different formats, e.g. E4M3 x E5M2 on the fp8 tensor cores).
    """

    name: str
    paths: dict
    source: str = ""
    architecture: str = ""
    fp8_fp32_zero_c: bool = False
    mixed_inputs: frozenset = frozenset()

    @property
    def input_formats(self) -> tuple:
        """Input formats with at least one modelled output."""
        return tuple(dict.fromkeys(i for i, _ in self.paths))

    def block(self, in_fmt, out_fmt="fp32") -> BlockFMAModel:
        """The block model for an input and an output format (see :func:`select_block`)."""
        return select_block(self, in_fmt, out_fmt)

    def data_c_is_zero(self, in_fmt, out_fmt) -> bool:
        """Whether real-GPU data of this path were measured with c = 0.

        True for fp8 inputs (E4M3 and E5M2 alike) with fp32 output on a GPU whose
        :attr:`fp8_fp32_zero_c` is set (Hopper: H100, H200), following the data's authors
        (Khattak & Mikaitis, ``model_validation/Validate_TC_models.m``). Other paths,
        including Hopper's fp8 path with fp16 output, used the c file.

        Args:
            in_fmt: input format (name or format).
            out_fmt: output format ("fp32" or "fp16").

        Returns:
            bool.
        """
        fin, out = get_format(in_fmt), get_format(out_fmt).name
        fp8 = isinstance(fin, FloatFormat) and fin.bits == 8
        return self.fp8_fp32_zero_c and fp8 and out == _F32


_FP16, _BF16, _TF32 = "float16", "bfloat16", "tfloat32"
_E4M3, _E5M2 = "float8_e4m3fn", "float8_e5m2"
_F32, _F16 = "float32", "float16"


def _gpu(name, source, arch, *, half_n, half_f, tf32_n, tf32_f, fp8=None, fp8_f16=None,
         inputs=(_FP16, _BF16, _TF32), fp8_fp32_zero_c=False):
    paths = {}
    for fmt in inputs:
        if fmt in (_FP16, _BF16):
            paths[(fmt, _F32)] = BlockFMAModel(half_n, half_f, "rtz", _F32,
                                               name=f"{name} {fmt}->fp32")
            if fmt == _FP16:
                paths[(fmt, _F16)] = BlockFMAModel(half_n, half_f, "rne", _F16,
                                                   name=f"{name} {fmt}->fp16")
        elif fmt == _TF32:
            paths[(fmt, _F32)] = BlockFMAModel(tf32_n, tf32_f, "rtz", _F32,
                                               name=f"{name} tf32->fp32")
    if fp8 is not None:
        for fmt in (_E4M3, _E5M2):
            paths[(fmt, _F32)] = replace(fp8, name=f"{name} {fmt}->fp32")
            if fp8_f16 is not None:
                paths[(fmt, _F16)] = replace(fp8_f16, name=f"{name} {fmt}->fp16")
    mixed = frozenset({frozenset((_E4M3, _E5M2))}) if fp8 is not None else frozenset()
    return TensorCoreModel(name, paths, source, arch, fp8_fp32_zero_c, mixed)


_PEERJ = "Fasi et al., PeerJ CS 7:e330 (2021); REFERENCE.md sec. 4"
_KM = "Khattak & Mikaitis, arXiv:2512.07004; REFERENCE.md sec. 4"
# Ada/L40S fp8: 16 products, 13 fraction bits, c truncated with the products, result RTZ
# to 13 fraction bits (REFERENCE.md; reproduces all 1,000 cases of each Ada fp8 set with
# fp32 output in tests/data).
_ADA_FP8 = BlockFMAModel(16, 13, "rtz", _F32, out_frac_bits=13)
# Ada/L40S fp8 with fp16 output: the same block (16 products, F = 13, c aligned with the
# products, two blocks chained) rounded to nearest-even into fp16, as the authors' AdaTC.m
# sets it up (frmode 'rne' for fp16 output). Fitted by ``lowprec fit`` to the 1,000 cases
# of each Ada fp8 set with fp16 output (500 fit / 500 held out; docs/hardware.md).
_ADA_FP8_F16 = BlockFMAModel(16, 13, "rne", _F16)
# Hopper wgmma fp8: one block of 32 products, F = 13, result's low 10 bits zero.
_HOPPER_FP8 = BlockFMAModel(32, 13, "rtz", _F32, out_frac_bits=13)
# Hopper mma.sync fp8 with fp16 accumulate, fitted to tests/data/tensor-cores/H100/E4M3
# (see the module docstring).
_HOPPER_FP8_F16 = BlockFMAModel(16, 25, "rne", _F16, c_mode="late", instruction_k=32,
                                interleave=2, convert_inputs="fp16")
#: B200 fp8 as the authors' MATLAB model B200TC.m has it: one block of 32 products with the
#: fp16 block's 25 fraction bits, c aligned with the products, RTZ. It matches only about
#: two thirds of the measured B200 fp8 cases (638 of 1,000 E4M3, 661 of 1,000 E5M2), so the
#: named "b200" model no longer uses it; kept under this name for comparison.
AUTHORS_B200_FP8 = BlockFMAModel(32, 25, "rtz", _F32, name="b200 fp8->fp32 (B200TC.m)")
# B200 fp8 with fp32 output, fitted by ``lowprec fit`` (all 1,000 cases of each B200 fp8
# set, 500 fit / 500 held out; docs/hardware.md): the 32 products are aligned and truncated
# to F = 25 and summed from 0, the sum is rounded to nearest-even into fp32, and c is added
# afterwards with one more RNE rounding (c is not aligned with the products: with c in the
# block no F up to 28 explains the data). Two stages differ from B200TC.m: RNE instead of
# RTZ, and c added after the block.
_B200_FP8 = BlockFMAModel(32, 25, "rne", _F32, c_mode="late")
# B200 fp8 with fp16 output: Hopper's fp16 datapath (_HOPPER_FP8_F16) reproduces all 1,000
# cases of each B200 fp8 set with fp16 output.
_B200_FP8_F16 = _HOPPER_FP8_F16

MODELS = {
    "v100": _gpu("v100", _PEERJ, "Volta", half_n=4, half_f=23, tf32_n=4, tf32_f=23,
                 inputs=(_FP16,)),
    **{g: _gpu(g, _KM, "Ampere", half_n=8, half_f=24, tf32_n=4, tf32_f=24)
       for g in ("a100", "a2", "a30")},
    **{g: _gpu(g, _KM + "; fp8 with fp16 output fitted (lowprec fit)", "Ada", half_n=8,
               half_f=24, tf32_n=4, tf32_f=24, fp8=_ADA_FP8, fp8_f16=_ADA_FP8_F16)
       for g in ("ada", "l40s")},
    # Hopper runs fp8 with fp32 output as WGMMA (D = A*B + D): measured with D = 0
    **{g: _gpu(g, _KM, "Hopper", half_n=16, half_f=25, tf32_n=8, tf32_f=25, fp8=_HOPPER_FP8,
               fp8_f16=_HOPPER_FP8_F16, fp8_fp32_zero_c=True) for g in ("h100", "h200")},
    "b200": _gpu("b200", _KM + "; fp8 fitted (lowprec fit), not the authors' B200TC.m",
                 "Blackwell", half_n=16, half_f=25, tf32_n=8, tf32_f=25, fp8=_B200_FP8,
                 fp8_f16=_B200_FP8_F16),
}


def list_models() -> list:
    """Names of the built-in GPU models."""
    return sorted(MODELS)


def get_model(name) -> TensorCoreModel:
    """A built-in GPU model by name (case-insensitive), or the model itself.

    Raises:
        ValueError: for an unknown name (the message lists the known ones).
        TypeError: for an argument that is neither a name nor a model.
    """
    if isinstance(name, (TensorCoreModel, BlockFMAModel)):
        return name
    if not isinstance(name, str):
        raise TypeError(f"model must be a name, TensorCoreModel or BlockFMAModel, got "
                        f"{type(name).__name__}")
    key = name.strip().lower()
    if key not in MODELS:
        raise ValueError(f"unknown tensor-core model {name!r}; known: {', '.join(list_models())}")
    return MODELS[key]


def select_block(model, in_fmt, out_fmt="fp32") -> BlockFMAModel:
    """Choose the block parameters of a GPU for an input and an output format.

    Args:
        model: a GPU name, a :class:`TensorCoreModel`, or a :class:`BlockFMAModel` (returned
            as is when its output format matches).
        in_fmt: the format of a and b (name or format).
        out_fmt: "fp32" (default) or "fp16".

    Returns:
        The :class:`BlockFMAModel` for that path.

    Raises:
        ValueError: unknown model, an input format the GPU's tensor cores do not take, or
            an output format not modelled for that input.
    """
    m = get_model(model)
    out = get_format(out_fmt).name
    if isinstance(m, BlockFMAModel):
        if m.out_format != out:
            raise ValueError(f"block model {m.name or m!r} rounds to {m.out_format}, not {out}")
        return m
    fin = get_format(in_fmt).name
    if (fin, out) in m.paths:
        return m.paths[(fin, out)]
    if fin not in m.input_formats:
        raise ValueError(f"{m.name} tensor cores do not take {fin} inputs; supported: "
                         f"{', '.join(m.input_formats)}")
    outs = [o for i, o in m.paths if i == fin]
    raise ValueError(f"{m.name} with {fin} inputs is modelled for {', '.join(outs)} output, "
                     f"not {out}")


def select_block_pair(model, fmt_a, fmt_b, out_fmt="fp32") -> BlockFMAModel:
    """The block model for a and b in possibly different formats.

    Equal formats take :func:`select_block`. Different formats need a GPU model that lists
    the pair in :attr:`TensorCoreModel.mixed_inputs` (its two paths being one instruction);
    a :class:`BlockFMAModel` given directly takes any pair of float formats (its products
    are exact whatever the inputs).

    Raises:
        ValueError: as :func:`select_block`, or for a pair the GPU does not take together.
    """
    fa, fb = get_format(fmt_a), get_format(fmt_b)
    m = get_model(model)
    blk = select_block(m, fa, out_fmt)
    if fa == fb or isinstance(m, BlockFMAModel):
        return blk
    if frozenset((fa.name, fb.name)) not in m.mixed_inputs:
        pairs = ", ".join(" x ".join(sorted(p)) for p in m.mixed_inputs) or "none"
        raise ValueError(f"{m.name} tensor cores do not take a in {fa.name} with b in "
                         f"{fb.name}; mixed input pairs it takes: {pairs}")
    select_block(m, fb, out_fmt)  # the other path must exist too
    return blk
