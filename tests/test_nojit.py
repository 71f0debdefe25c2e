"""The kernels run as plain Python under NUMBA_DISABLE_JIT=1 (how they are debugged) and
give the same bits as the compiled kernels."""

import json
import os
import subprocess
import sys

import numpy as np

import lowprec as lp

_SCRIPT = """
import json, sys, warnings
import numpy as np
import lowprec as lp
warnings.simplefilter("ignore")
x = np.array(json.loads(sys.argv[1]), np.float32)
out = {}
for fmt in ("e4m3fn", "bf16", "e2m1", "int8"):
    for mode in ("rne", "rdn", "rto", "sr"):
        out[f"{fmt}-{mode}"] = lp.encode(x, fmt, rounding=mode, seed=3, nan="zero").tolist()
out["add"] = lp.add(x, x[::-1].copy(), "bf16", rounding="rtz").tolist()
print(json.dumps(out))
"""


def test_plain_python_kernels_match_compiled():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal(40) * np.exp2(rng.integers(-12, 12, 40)),
                        [np.inf, -0.0, 464.0, 2.0 ** -10, 1e-30, 6.5]]).astype(np.float32)
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    r = subprocess.run([sys.executable, "-c", _SCRIPT, json.dumps(x.tolist())], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout)
    for key, codes in got.items():
        if key == "add":
            want = lp.add(x, x[::-1].copy(), "bf16", rounding="rtz")
            assert np.array_equal(np.array(codes, np.float32).view(np.uint32),
                                  want.view(np.uint32)), key
            continue
        fmt, mode = key.split("-")
        want = lp.encode(x, fmt, rounding=mode, seed=3, nan="zero")
        assert codes == want.tolist(), key
