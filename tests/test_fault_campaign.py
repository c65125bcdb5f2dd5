"""The fault campaign (bench/fault_campaign.py --quick): kill -9 during detect and cluster, two writers,
a full disk, odd inputs and a burst of web requests lose and duplicate nothing and give no 5xx."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_quick_fault_campaign_loses_and_duplicates_nothing(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "fault_campaign.py"), "--quick", "--keep",
                        str(tmp_path / "work"), "--json", str(tmp_path / "faults.json")],
                       check=False, capture_output=True, text=True, env=env,
                       timeout=600)
    assert "| kill -9 during detect |" in r.stdout, r.stderr[-3000:]
    totals = json.loads((tmp_path / "faults.json").read_text())["totals"]
    assert totals["regions_lost"] == 0 and totals["regions_duplicated"] == 0
    assert totals["cluster_assignment_faults"] == 0 and totals["server_5xx"] == 0
    assert totals["rows_failed"] == 0 and r.returncode == 0, r.stdout[-3000:]
