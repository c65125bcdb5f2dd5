"""Process-level allocator settings: tuned (large buffers kept in the heap) and restored to glibc's defaults."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

SCRIPT = r"""
import json
import numpy as np
from sonotype import runtime

def rss():
    return int(open('/proc/self/statm').read().split()[1]) * 4096 / 2**20

out = {"tuned": runtime.tune_allocator()}
a = np.ones(25_000_000)  # 200 MB
before = rss(); del a; out["kept_mb"] = before - rss()     # tuned: the freed buffer stays in the heap
runtime.keep_default_allocator()
out["tune_after_keep"] = runtime.tune_allocator()
a = np.ones(25_000_000)
before = rss(); del a; out["returned_mb"] = before - rss()  # defaults again: it goes back to the OS
print(json.dumps(out))
"""


def test_keep_default_allocator_undoes_the_tuning_and_blocks_it():
    r = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True)
    out = json.loads(r.stdout.strip().splitlines()[-1])
    if not out["tuned"]:
        pytest.skip("not glibc: tune_allocator is a no-op here")
    assert out["kept_mb"] < 20, out  # the tuned heap kept the 200 MB
    assert out["tune_after_keep"] is False
    assert out["returned_mb"] > 150, out  # with glibc's defaults restored, freeing gives the memory back
