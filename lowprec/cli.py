"""The ``lowprec`` command.

Each subcommand lives in the module that owns its work and exposes
``register(sub, name, help)``, which adds its parser (with the one-line ``help`` written
once, in :data:`COMMANDS`), sets ``func`` (returning an exit code) and returns the
parser. Modules are imported only when the command line names them, so ``lowprec --help``
stays fast: it imports no more than ``import lowprec`` does (no torch, matplotlib, tqdm).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Optional, Sequence

from . import __version__

#: Exit status after a write to a closed stdout (``lowprec ... | head``): 128 + SIGPIPE,
#: what a shell reports for a Unix tool that the signal ended (``yes | head``).
EXIT_BROKEN_PIPE = 141

#: command -> (module, one-line help): the only place a command's help is written.
COMMANDS = {
    "formats": ("lowprec.cli_formats", "print the table of named formats"),
    "demo": ("lowprec.cli_formats", "show every rounding mode on a few values"),
    "study": ("lowprec.study", "train under precision recipes from several seeds (on Dask): mean +- CI side by side"),
    "reproduce": ("lowprec.study.reproduce.cli", "reproduce a paper's claims (Gupta 2015, Micikevicius 2018/2022, Zamirai 2020, DeepSeek-V3) beside ours"),
    "capture": ("lowprec.hardware.capture", "run conversions/GEMMs/a training step on a torch device and save them"),
    "compare": ("lowprec.hardware.compare", "replay captured or published GPU results under lowprec's models"),
    "fit": ("lowprec.hardware.fit", "search block-FMA parameters that explain captured GPU results"),
}


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # exit code 2 with a clear message, as argparse does
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    """Build the parser, importing only the module of the command named in argv."""
    parser = _Parser(prog="lowprec", description="Bit-exact low-precision emulation on any CPU.")
    parser.add_argument("--version", action="version", version=f"lowprec {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    named = next((a for a in argv if not a.startswith("-")), None)
    for cmd, (module, help_) in COMMANDS.items():
        if cmd == named:
            importlib.import_module(module).register(sub, cmd, help_)
        else:
            sub.add_parser(cmd, help=help_, add_help=False)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``lowprec`` command; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if not argv else 2
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit flush
        return code
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except (ValueError, TypeError) as e:
        # lowprec reports bad user input with these; set LOWPREC_DEBUG=1 for the traceback
        if os.environ.get("LOWPREC_DEBUG"):
            raise
        print(f"lowprec {args.command}: error: {e}", file=sys.stderr)
        return 2


def _silence_stdout() -> None:
    """Point stdout's file descriptor at /dev/null: the reader is gone, and Python's flush
    at exit would otherwise report the same broken pipe as "Exception ignored"."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (e.g. captured by pytest)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
