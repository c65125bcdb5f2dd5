"""The command line: subcommands end to end, and bad input reported with the file's name."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from helpers import tone_with_gaps

from sonotype.audio.io import write_audio
from sonotype.cli import main


def test_demo_runs_end_to_end_and_reports_outputs(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "demo"), "--quick", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "precision" in out and "recall" in out and "Outputs:" in out
    # the console gets one line per stage (number, name, seconds, key numbers); the stages' own messages go to demo.log
    stage_lines = [line for line in out.splitlines() if line.startswith("[")]
    assert [line.split("]")[0] for line in stage_lines] == [f"[{i}/8" for i in range(1, 9)]
    assert "false alarms/h" in out and "epoch 1/3" not in out
    assert "epoch 1/3" in (tmp_path / "demo" / "demo.log").read_text()
    timings = json.loads((tmp_path / "demo" / "timings.json").read_text())
    assert [r["name"] for r in timings["stages"]][:3] == ["corpus", "encoder", "detector"] and len(timings["stages"]) == 8
    assert all(r["wall_s"] >= 0 and r["cpu_s"] >= 0 for r in timings["stages"])
    assert sum(r["wall_s"] for r in timings["stages"]) <= timings["total_wall_s"] + 1
    ev = json.loads((tmp_path / "demo" / "evaluation.json").read_text())
    c = ev["confusion"]
    assert c["tp"] + c["fn"] + c["fp"] + c["tn"] == ev["n_windows"] > 0
    assert ev["files_seen_in_training"] == []
    for name in ("encoder.pt", "detector.pt"):
        assert (tmp_path / "demo" / "models" / name).stat().st_size > 100_000
    events = json.loads((tmp_path / "demo" / "events.json").read_text())
    assert events["events"] > 0 and events["hours"] > 0
    exports = tmp_path / "demo" / "exports"
    assert (exports / "regions.csv").read_text().startswith("region_id,recording,start_s")
    assert list(exports.glob("*.selections.txt"))
    [report] = (tmp_path / "demo" / "reports").glob("*/report.html")
    html = report.read_text()
    assert "figures/regions-map-tsne.png" in html and "figures/catalog-map-tsne.png" in html
    assert list((report.parent / "clusters").glob("cluster-*.wav"))
    from sonotype.store import open_store
    with open_store(f"sqlite:///{tmp_path / 'demo' / 'sonotype.db'}") as s:
        assert {c["algorithm"] for c in s.clusterings()} == {"agglomerative", "kmeans"}
    assert "sonotype serve --db sqlite:///" in out


def test_demo_stage_line_updates_in_place_in_a_terminal(tmp_path, capsys):
    """In a terminal the running stage's line shows its latest message and is then overwritten by
    the stage's summary: once the carriage returns are applied, the console holds one line a stage."""
    from sonotype.demo import _Stages
    st = _Stages(tmp_path, 2, print, live=True)
    st.start("encoder")
    st.detail("epoch 1/3 train loss 0.9")
    st.detail("epoch 2/3 train loss 0.8\n")
    st.done("encoder", "20 epochs")
    st.start("detector")
    st.detail("threshold 0.5")
    st.done("detector", "done")
    out = capsys.readouterr().out
    assert "[1/2] encoder" in out and "epoch 2/3 train loss 0.8" in out and "[2/2] detector" in out
    shown = [line.split("\r")[-1].replace("\x1b[K", "") for line in out.split("\n") if line]
    assert [line.split()[:2] for line in shown] == [["[1/2]", "encoder"], ["[2/2]", "detector"]]
    assert shown[0].endswith("20 epochs") and shown[1].endswith("done")
    assert "epoch 1/3" in (tmp_path / "demo.log").read_text()
    quiet = _Stages(tmp_path, 1, print, live=False)
    quiet.start("corpus")
    quiet.detail("a message")
    quiet.done("corpus", "96 clips")
    assert capsys.readouterr().out.strip().split("  ")[-1] == "96 clips"


def test_train_skips_a_corrupt_file_and_names_it(tmp_path, capsys):
    data = tmp_path / "data"
    tone_with_gaps(data / "good.wav")
    (data / "broken.wav").write_bytes(b"RIFF\x00\x00garbage" * 10)
    (data / "empty.wav").write_bytes(b"")
    rc = main(["train", str(data), "--out", str(tmp_path / "e.pt"), "--epochs", "1", "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "broken.wav" in out and "empty.wav" in out and "skipped" in out
    assert (tmp_path / "e.pt").exists()
    # every trained model gets its report folder beside the checkpoint: weights, config, figures, report
    [folder] = (tmp_path / "reports").iterdir()
    assert folder.name.startswith("e.best@") or folder.name.startswith("e@")
    for name in ("model.pt", "config.json", "README.md", "report.html", "figures/training-curve.png"):
        assert (folder / name).is_file(), name


@pytest.mark.parametrize("content,problem", [
    (b"", "empty"),
    (b"hello, I am a text file\n" * 20, "not readable as audio"),
])
def test_bad_single_file_exits_2_with_message(tmp_path, content, problem):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(content)
    r = subprocess.run([sys.executable, "-m", "sonotype.cli", "info", str(bad)], capture_output=True, text=True)
    assert r.returncode == 2
    assert "bad.wav" in r.stderr and problem in r.stderr


def test_all_zero_audio_trains_to_a_defined_result(tmp_path, capsys):
    write_audio(tmp_path / "zeros.wav", np.zeros(48000 * 2, np.float32), sample_rate=48000)
    assert main(["train", str(tmp_path / "zeros.wav"), "--out", str(tmp_path / "z.pt"), "--epochs", "1",
                 "--quiet"]) == 0
    assert "nan" not in capsys.readouterr().out.lower()


def test_wrong_band_for_sample_rate_is_explained(tmp_path, capsys):
    write_audio(tmp_path / "low.wav", np.zeros(4000, np.float32) + 0.01, sample_rate=2000)
    rc = main(["train", str(tmp_path / "low.wav"), "--out", str(tmp_path / "x.pt"), "--quiet"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "Nyquist" in err and "--preset narw" in err


def test_top_level_help_speaks_to_users(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0
    assert "finds animal vocalisations" in out and "typical order:" in out and "sonotype demo" in out
    assert "No logic lives here" not in out and "README" in out
