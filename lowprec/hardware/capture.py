"""``lowprec capture``: run the capture script in this process, or write it for a GPU machine.

The capture suite lives in one standalone script, :mod:`lowprec.hardware.lowprec_capture`
(numpy and torch only, no lowprec import), so that a user can copy it to a machine with a
GPU and run it there::

    lowprec capture --write-script lowprec_capture.py     # here
    python lowprec_capture.py --device cuda --out cap.npz  # on the GPU machine
    lowprec compare cap.npz                                # here again

:func:`capture` runs the same code in this process (``lowprec capture --device cpu``) and
returns the :class:`~lowprec.hardware.capture_format.Capture`, checked by the reader's
:func:`~lowprec.hardware.capture_format.validate_capture` exactly as a file from another
machine is. The suite and the file layout are described in the script's docstring.
torch is imported only when a capture runs.
"""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path

from tqdm import tqdm

from . import lowprec_capture as script
from .capture_format import Capture, validate_capture

__all__ = ["capture", "conversion_sample", "write_script", "register", "CONVERT_TARGETS",
           "SCRIPT_NAME"]

#: The file name the script is shipped under (in this package) and written as by default.
SCRIPT_NAME = "lowprec_capture.py"
#: The conversion targets of the suite.
CONVERT_TARGETS = script.CONVERT_TARGETS
#: A seeded float32 sample covering every special region of :data:`CONVERT_TARGETS`
#: (the script's own function).
conversion_sample = script.conversion_sample


def capture(device: str = "cpu", out=None, seed: int = 0, sizes: str = "auto", *,
            conversions: bool = True, gemms: bool = True, train: bool = True,
            progress: bool = False) -> Capture:
    """Run the capture suite on a PyTorch device, in this process.

    Args:
        device: "cpu", "cuda" (or "cuda:N") or "mps".
        out: path to save the capture to (``.npz``), or None to only return it.
        seed: base seed of every input.
        sizes: "small" (seconds on a CPU), "full" (long K) or "auto" (full on CUDA, small
            elsewhere).
        conversions, gemms, train: which parts of the suite to run.
        progress: show a tqdm progress bar on stderr.

    Returns:
        The :class:`~lowprec.hardware.capture_format.Capture` (``.path`` set when saved).

    Raises:
        ImportError: if PyTorch is not installed.
        ValueError: unknown device or sizes, or a device torch cannot use here.
        TypeError: non-string device, non-int seed.
    """
    def bar(items, desc):
        return tqdm(items, desc=desc, file=sys.stderr, leave=False) if progress else items

    meta, arrays = script.run(device, seed, sizes, conversions=conversions, gemms=gemms,
                              train=train, progress=bar)
    cap = Capture(meta, arrays)
    validate_capture(cap)
    if out is not None:
        cap.path = script.save(out, meta, arrays)
    return cap


def script_source() -> str:
    """The text of the standalone capture script shipped in this package."""
    return resources.files(__package__).joinpath(SCRIPT_NAME).read_text(encoding="utf-8")


def write_script(path) -> str:
    """Write the standalone capture script to ``path`` (a file, or a folder to write
    ``lowprec_capture.py`` into); returns the path written.

    Raises:
        OSError: when the file cannot be written.
    """
    p = Path(path)
    if p.is_dir():
        p = p / SCRIPT_NAME
    p.write_text(script_source(), encoding="utf-8")
    p.chmod(p.stat().st_mode | 0o111)
    return str(p)


def _main(args) -> int:
    if args.write_script is not None:
        try:
            where = write_script(args.write_script)
        except OSError as e:
            print(f"lowprec capture: error: cannot write the script: {e}", file=sys.stderr)
            return 2
        print(f"wrote {where}: copy it to the GPU machine and run\n"
              f"  python {Path(where).name} --device cuda --out cap.npz\n"
              f"(needs Python >= 3.9, numpy and torch), then here: lowprec compare cap.npz")
        if args.out is None:
            return 0
    if args.out is None:
        raise ValueError("give --out FILE (or --write-script PATH)")
    try:
        cap = capture(args.device, args.out, seed=args.seed, sizes=args.sizes, progress=True)
    except ImportError as e:
        print(f"lowprec capture: error: {e}", file=sys.stderr)
        return 2
    ok = sum(o["status"] == "ok" for o in cap.ops)
    print(f"captured {ok} ops on {cap.meta['device']['device']} "
          f"({cap.meta['device'].get('name', '')}) into {cap.path}")
    for o in cap.ops:
        if o["status"] != "ok":
            print(f"  skipped {o['id']}: {o['reason']}")
    return 0


def register(sub, name: str, help: str) -> argparse.ArgumentParser:
    """Add the ``capture`` subcommand (``help``: its one-line help, from
    :data:`lowprec.cli.COMMANDS`)."""
    p = sub.add_parser(name, help=help)
    p.add_argument("--device", default="cpu", help="cpu, cuda or mps (default cpu)")
    p.add_argument("--out", help="capture file to write (.npz)")
    p.add_argument("--seed", type=int, default=0, help="base seed of the inputs")
    p.add_argument("--sizes", choices=["auto"] + sorted(script.SIZES), default="auto",
                   help="suite size (default auto: full on CUDA, small elsewhere)")
    p.add_argument("--write-script", metavar="PATH",
                   help=f"write the standalone capture script ({SCRIPT_NAME}: numpy and "
                        f"torch only) to PATH, to run on a machine with a GPU")
    p.set_defaults(func=_main)
    return p
