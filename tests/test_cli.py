"""The lowprec command: formats table, demo, help, and exit codes."""

import json
import os
import subprocess
import sys

import pytest

import lowprec as lp
from lowprec.cli import main
from lowprec.hardware.tcdata import default_root

TCDATA = default_root()


def test_formats_table_lists_every_named_format(capsys):
    assert main(["formats"]) == 0
    out = capsys.readouterr().out
    for f in lp.list_formats():
        assert f.name in out
    assert "448" in out and "57344" in out and "all-ones" in out


def test_formats_json(capsys):
    assert main(["formats", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    e4m3 = next(r for r in rows if r["name"] == "float8_e4m3fn")
    assert e4m3["max"] == "448" and e4m3["bias"] == 7 and e4m3["inf"] == "no"


def test_demo_runs(capsys):
    assert main(["demo", "--format", "bf16"]) == 0
    out = capsys.readouterr().out
    assert "rne" in out and "sr" in out and "bf16" in out


def test_help_and_errors():
    r = subprocess.run([sys.executable, "-m", "lowprec.cli", "--help"], capture_output=True,
                       text=True)
    assert r.returncode == 0 and "formats" in r.stdout and "study" in r.stdout
    r = subprocess.run([sys.executable, "-m", "lowprec.cli", "bogus"], capture_output=True,
                       text=True)
    assert r.returncode == 2 and "invalid choice" in r.stderr
    r = subprocess.run([sys.executable, "-m", "lowprec.cli", "demo", "--format", "fp7"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "unknown format 'fp7'" in r.stderr


def test_each_command_help_is_written_once():
    # the subcommand's own parser carries the help of COMMANDS, which --help lists
    from lowprec.cli import COMMANDS, build_parser

    listed = subprocess.run([sys.executable, "-m", "lowprec.cli", "--help"],
                            capture_output=True, text=True).stdout
    for cmd, (_, help_) in COMMANDS.items():
        sub = next(a for a in build_parser([cmd])._actions if a.dest == "command")
        (choice,) = [c for c in sub._choices_actions if c.dest == cmd]
        assert choice.help == help_, cmd
        assert sub.choices[cmd].add_help, cmd  # registered by its module, not a stub
        assert help_[:40] in " ".join(listed.split()), cmd


def test_help_imports_no_command_module_and_nothing_heavy():
    # `lowprec --help` loads what `import lowprec` loads and the cli, nothing more: no
    # subcommand module, no torch, matplotlib or tqdm, no numba beyond `import lowprec`
    code = ("import json, sys; import lowprec; base = set(sys.modules)\n"
            "from lowprec.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(json.dumps(sorted(set(sys.modules) - base)), file=sys.stderr)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    new = json.loads(r.stderr.strip().splitlines()[-1])
    assert [m for m in new if m.startswith("lowprec")] == ["lowprec.cli"]
    heavy = ("numba", "torch", "matplotlib", "tqdm", "ml_dtypes")
    assert not [m for m in new if m.split(".")[0] in heavy], new


def _run_into_closed_pipe(*args):
    """Run ``lowprec ARGS`` with stdout a pipe whose reader is already gone (``| head``
    after head exited): every write fails with EPIPE."""
    r, w = os.pipe()
    os.close(r)
    try:
        return subprocess.run([sys.executable, "-m", "lowprec.cli", *args], stdout=w,
                              stderr=subprocess.PIPE, text=True, timeout=300)
    finally:
        os.close(w)


@pytest.mark.parametrize("args", [["formats", "--json"], ["formats"], ["compare", "--json"]])
def test_closed_stdout_exits_quietly_with_sigpipe_status(args, tmp_path):
    # `lowprec ... | head`: exit as a Unix tool killed by SIGPIPE is reported (128 + 13),
    # with nothing on stderr (no traceback, no "Exception ignored" from the exit flush)
    if args[0] == "compare":
        d = tmp_path / "V100" / "fp16"
        d.mkdir(parents=True)
        for f in (TCDATA / "V100" / "fp16").iterdir():
            d.joinpath(f.name).write_text("\n".join(f.read_text().splitlines()[:20]) + "\n")
        args = args + ["--tc-dir", str(tmp_path)]
    r = _run_into_closed_pipe(*args)
    assert r.returncode == 141, r.stderr
    assert r.stderr == ""
