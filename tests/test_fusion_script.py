"""scripts/narw_fusion.py: A's score at B's window times, against a slow obvious reference."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from sonotype.features.frontend import WindowGrid

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


@pytest.fixture(scope="module")
def fusion():
    sys.path.insert(0, str(SCRIPTS))
    try:
        spec = importlib.util.spec_from_file_location("narw_fusion", SCRIPTS / "narw_fusion.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    finally:
        sys.path.remove(str(SCRIPTS))


def test_a_at_matches_a_loop(fusion):
    rng = np.random.default_rng(3)
    grid = WindowGrid(2000.0, 24000.0, 3000.0)  # 12-s windows every 1.5 s
    a = rng.random(40)
    t = np.r_[rng.uniform(-2.0, 75.0, 300), 0.0, 1.5, 12.0, 13.5]  # incl. window edges and times past the last
    tw = grid.window_times(len(a))
    centres = tw.mean(axis=1)
    want_max = []
    for x in t:
        inside = [a[j] for j in range(len(a)) if tw[j, 0] <= x < tw[j, 1]]
        want_max.append(max(inside) if inside else a[np.argmin(np.abs(centres - x))])
    np.testing.assert_allclose(fusion.a_at(t, a, grid, how="max"), want_max)
    want_lin = []
    for x in t:
        if x <= centres[0] or x >= centres[-1]:
            want_lin.append(a[0] if x <= centres[0] else a[-1])
            continue
        j = int(np.floor((x - centres[0]) / 1.5))
        w = (x - centres[j]) / (centres[j + 1] - centres[j])
        want_lin.append((1 - w) * a[j] + w * a[j + 1])
    np.testing.assert_allclose(fusion.a_at(t, a, grid, how="interp"), want_lin, atol=1e-12)
    with pytest.raises(ValueError, match="how="):
        fusion.a_at(t, a, grid, how="mean")


def test_fuse_geometric_and_gate(fusion):
    b_grid, a_grid = WindowGrid(2000.0, 2496.0, 1024.0), WindowGrid(2000.0, 24000.0, 3000.0)
    rng = np.random.default_rng(5)
    b, a = rng.random(100), rng.random(30)
    t = b_grid.window_times(len(b)).mean(axis=1)
    at = fusion.a_at(t, a, a_grid, how="interp")
    np.testing.assert_allclose(fusion.fuse(b, b_grid, a, a_grid, kind="geo", how="interp", p=0.5), np.sqrt(b * at))
    np.testing.assert_allclose(fusion.fuse(b, b_grid, a, a_grid, kind="geo", how="interp", p=0.0), b)
    g = fusion.fuse(b, b_grid, a, a_grid, kind="gate", how="interp", p=0.5)
    np.testing.assert_array_equal(g, np.where(at > 0.5, b, 0.0))
