"""Inputs that used to give silently wrong results (issue 11): one recording per content whatever the
path spelling, annotation names that match nothing, unchecked options, read-only commands that wrote,
and the failures table. Real WAV files, real SQLite files, the real command line."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from helpers import placeholder_model, tone_with_gaps

from sonotype.cli import main
from sonotype.models.checkpoint import load_model
from sonotype.models.embed import file_scores
from sonotype.store import open_store

CALLS = ((1.0, 2.0), (3.0, 3.6))


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return placeholder_model(tmp_path_factory.mktemp("m") / "placeholder.pt")


@pytest.fixture(scope="module")
def threshold(model, tmp_path_factory):
    wav = tone_with_gaps(tmp_path_factory.mktemp("t") / "t.wav", seconds=4, seed=0, calls=CALLS)
    return float(np.median(file_scores(load_model(model), wav, channel=0, sample_rate=48000)))


def detect(args, *, model, db, threshold) -> int:
    return main(["detect", *args, "--model", str(model), "--db", db, "--threshold", str(threshold), "--quiet"])


def counts(db) -> tuple[int, int, int]:
    with open_store(db, read_only=True) as st:
        return len(st.recordings()), len(st.regions()), len(st.processed(status="done"))


# ---------------------------------------------------------------------------- 1. one recording per content


def test_three_spellings_of_one_folder_give_one_recording_per_file(model, threshold, tmp_path, monkeypatch):
    kill = tmp_path / "kill"
    for i in range(2):
        tone_with_gaps(kill / f"f{i}.wav", seconds=4, seed=i, calls=CALLS)
    db = f"sqlite:///{tmp_path / 'r.db'}"
    monkeypatch.chdir(tmp_path)
    assert detect(["kill/"], model=model, db=db, threshold=threshold) == 0
    once = counts(db)
    assert once[0] == 2 and once[1] > 0 and once[2] == 2
    assert detect([str(kill.resolve()) + "/"], model=model, db=db, threshold=threshold) == 0
    monkeypatch.chdir(kill)
    assert detect(["."], model=model, db=db, threshold=threshold) == 0
    assert detect([".", str(kill), "../kill/f0.wav"], model=model, db=db, threshold=threshold) == 0  # all at once
    assert counts(db) == once
    with open_store(db, read_only=True) as st:
        assert sorted(r.path for r in st.recordings()) == [str((kill / f"f{i}.wav").resolve()) for i in range(2)]


def test_same_bytes_under_two_paths_is_one_recording_with_both_paths(model, threshold, tmp_path):
    a = tone_with_gaps(tmp_path / "a" / "x.wav", seconds=4, seed=3, calls=CALLS)
    (tmp_path / "b").mkdir()
    b = shutil.copy(a, tmp_path / "b" / "copy.wav")
    db = f"sqlite:///{tmp_path / 'r.db'}"
    assert detect([str(tmp_path / "a"), str(tmp_path / "b")], model=model, db=db, threshold=threshold) == 0
    with open_store(db, read_only=True) as st:
        [rec] = st.recordings()
        assert set(rec.paths) == {str(a), str(b)} and len(st.processed(status="done")) == 1


def test_files_sharing_a_base_name_stay_apart_in_events_and_exports(model, threshold, tmp_path, capsys):
    s1 = tone_with_gaps(tmp_path / "site1" / "0001.wav", seconds=4, seed=4, calls=CALLS)
    s2 = tone_with_gaps(tmp_path / "site2" / "0001.wav", seconds=4, seed=5, calls=((0.5, 1.5),))
    db = f"sqlite:///{tmp_path / 'r.db'}"
    assert detect([str(tmp_path / "site1"), str(tmp_path / "site2")], model=model, db=db, threshold=threshold) == 0
    assert counts(db)[0] == 2
    table = tmp_path / "events.csv"
    table.write_text("filename,start,end\n0001.wav,1.0,2.0\n")  # fits both files: refused, not merged
    assert main(["evaluate-events", "--db", db, "--annotations", str(table)]) == 2
    err = capsys.readouterr().err
    assert "'0001.wav'" in err and "site1" in err and "site2" in err
    table.write_text("filename,start,end\nsite1/0001.wav,1.0,2.0\nsite1/0001.wav,3.0,3.6\nsite2/0001.wav,0.5,1.5\n")
    assert main(["evaluate-events", "--db", db, "--annotations", str(table), "--json", str(tmp_path / "e.json")]) == 0
    import json
    res = json.loads((tmp_path / "e.json").read_text())
    assert res["events"] == 3 and res["recordings"] == sorted([str(s1), str(s2)])
    assert res["pam_rule"]["tolerance_s"] == 1.5 and res["pam_rule"]["events"] == 3  # also scored by the PAM rule
    one = res["one_to_one"]  # and one to one: never more found than by overlap, nor than regions
    assert one["events"] == 3 and one["events_found"] <= min(res["events_found"], res["regions"])
    assert res["hours"] == pytest.approx(8 / 3600)
    out = tmp_path / "raven"
    assert main(["export", "--db", db, "--format", "raven", "--out", str(out)]) == 0
    tables = sorted(out.glob("*.selections.txt"))
    assert len(tables) == 2
    paths = [{line.split("\t")[7] for line in t.read_text().splitlines()[1:]} for t in tables]
    assert sorted(map(tuple, paths)) == sorted([(str(s1),), (str(s2),)])  # one recording per table


# ---------------------------------------------------------------------------- 2. names that match nothing


def test_evaluate_events_refuses_annotation_names_that_match_no_recording(model, threshold, tmp_path, capsys):
    data = tmp_path / "data"
    for i in range(2):
        tone_with_gaps(data / f"rec{i}.wav", seconds=4, seed=i, calls=CALLS)
    db = f"sqlite:///{tmp_path / 'r.db'}"
    assert detect([str(data)], model=model, db=db, threshold=threshold) == 0
    table = tmp_path / "events.csv"
    table.write_text("filename,start,end\nREC0.wav,1.0,2.0\nREC1.wav,1,2\n")  # none matches
    assert main(["evaluate-events", "--db", db, "--annotations", str(table)]) == 2
    err = capsys.readouterr().err.strip()
    assert "'REC0.wav'" in err and "none of the 2" in err and len(err.splitlines()) == 1
    table.write_text("filename,start,end\nrec0.wav,1.0,2.0\nrec0.wav,3.0,3.6\nrec_1.wav,1,2\n")  # partial
    assert main(["evaluate-events", "--db", db, "--annotations", str(table)]) == 2
    err = capsys.readouterr().err
    assert "'rec_1.wav'" in err and "--allow-unmatched" in err
    assert main(["evaluate-events", "--db", db, "--annotations", str(table), "--allow-unmatched",
                 "--json", str(tmp_path / "e.json")]) == 0
    import json
    res = json.loads((tmp_path / "e.json").read_text())
    assert res["recordings"] == [str(data / "rec0.wav")] and res["events"] == 2  # rec1 is not scored as empty
    assert "rec1.wav" in capsys.readouterr().out


def test_train_detector_refuses_annotation_rows_for_files_it_was_not_given(model, tmp_path, capsys):
    data = tmp_path / "data"
    tone_with_gaps(data / "a.wav", seconds=3, seed=1, calls=((1.0, 2.0),))
    tone_with_gaps(data / "b.wav", seconds=3, seed=2, calls=((0.5, 1.5),))
    table = tmp_path / "events.csv"
    table.write_text("filename,start,end\na.wav,1.0,2.0\nbb.wav,0.5,1.5\n")  # a typo: b's call would be noise
    rc = main(["train-detector", str(data), "--annotations", str(table), "--encoder", str(model),
               "--out", str(tmp_path / "d.pt"), "--epochs", "1", "--report-dir", "", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "'bb.wav'" in err and "--allow-unmatched" in err
    assert not (tmp_path / "d.pt").exists()


# ---------------------------------------------------------------------------- 3. options checked up front


@pytest.mark.parametrize("args,bad", [
    (["detect", "x", "--model", "m", "--threshold", "nan"], "--threshold"),
    (["detect", "x", "--model", "m", "--threshold", "-1"], "--threshold"),
    (["detect", "x", "--model", "m", "--threshold", "2"], "--threshold"),
    (["detect", "x", "--model", "m", "--min-duration", "nan"], "--min-duration"),
    (["detect", "x", "--model", "m", "--batch", "0"], "--batch"),
    (["detect", "x", "--model", "m", "--channel", "abc"], "--channel"),
    (["evaluate", "x", "--model", "m", "--threshold", "inf"], "--threshold"),
    (["train", "x", "--out", "o.pt", "--epochs", "0"], "--epochs"),
    (["cluster-eval", "x", "--model", "m", "--channel", "abc"], "--channel"),
    (["cluster", "--percentile", "101"], "--percentile"),
    (["export", "--format", "csv", "--out", "o.csv", "--gap", "-0.1"], "--gap"),
    (["search", "0"], "region"),
    (["serve", "--port", "70000"], "--port"),
])
def test_bad_option_is_one_line_naming_the_value_and_exit_2(args, bad, capsys):
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2
    err = capsys.readouterr().err
    value = args[args.index(bad) + 1] if bad in args else args[1]
    assert len(err.strip().splitlines()) == 1 and err.startswith("sonotype: error:")
    assert bad in err and repr(value) in err and "expected" in err and "Traceback" not in err


def test_export_onto_an_existing_file_is_an_error_not_a_traceback(tmp_path, capsys):
    from helpers import detected_store
    url, _, _ = detected_store(tmp_path, files=1)
    taken = tmp_path / "taken.txt"
    taken.write_text("keep me")
    for fmt in ("raven", "audacity", "wav"):
        assert main(["export", "--db", url, "--format", fmt, "--out", str(taken)]) == 2
        err = capsys.readouterr().err
        assert "taken.txt" in err and "folder" in err and len(err.strip().splitlines()) == 1
    assert main(["export", "--db", url, "--format", "csv", "--out", str(taken / "x.csv")]) == 2
    assert taken.read_text() == "keep me"


# ---------------------------------------------------------------------------- 4. read-only commands


def _foreign(path):
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE birds (name TEXT)")
    con.execute("INSERT INTO birds VALUES ('wren')")
    con.commit()
    con.close()
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("argv", [
    ["export", "--format", "csv", "--out", "{tmp}/out.csv"],
    ["search", "1"],
    ["cluster"],
    ["evaluate-events", "--annotations", "{tmp}/ann.csv"],
    ["export-labels", "--out", "{tmp}/labels.csv"],
])
def test_read_only_commands_leave_missing_and_foreign_databases_untouched(argv, tmp_path, capsys):
    (tmp_path / "ann.csv").write_text("filename,start,end\na.wav,1,2\n")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    missing = tmp_path / "typo.db"
    assert main([*argv, "--db", f"sqlite:///{missing}"]) == 2
    err = capsys.readouterr().err
    assert "typo.db" in err and "no such database" in err
    assert not missing.exists() and not list(tmp_path.glob("typo.db*"))
    foreign = tmp_path / "theirs.db"
    digest = _foreign(foreign)
    assert main([*argv, "--db", f"sqlite:///{foreign}"]) == 2
    assert "not a sonotype database" in capsys.readouterr().err
    assert hashlib.sha256(foreign.read_bytes()).hexdigest() == digest
    with sqlite3.connect(foreign) as con:
        assert [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")] == ["birds"]


# ---------------------------------------------------------------------------- 6. failures table


def test_failures_table_has_one_row_per_file_and_run_cleared_on_success(model, threshold, tmp_path):
    data = tmp_path / "data"
    good = tone_with_gaps(data / "good.wav", seconds=4, seed=1, calls=CALLS)
    (data / "corrupt.wav").write_bytes(b"RIFF" + bytes(range(256)) * 2)
    db = f"sqlite:///{tmp_path / 'r.db'}"
    for _ in range(3):  # re-runs: still one row for the corrupt file
        assert detect([str(data)], model=model, db=db, threshold=threshold) == 1
    with open_store(db, read_only=True) as st:
        [f] = st.failures()
        assert f.path == str((data / "corrupt.wav").resolve()) and f.recording_id is None
    # the file becomes readable: its failure row is gone
    shutil.copy(tone_with_gaps(tmp_path / "fixed.wav", seconds=4, seed=2, calls=CALLS), data / "corrupt.wav")
    assert detect([str(data)], model=model, db=db, threshold=threshold) == 0
    with open_store(db, read_only=True) as st:
        assert st.failures() == [] and len(st.processed(status="done")) == 2
    assert good.exists()


def test_failure_of_a_known_recording_names_it_and_marks_it_failed(model, threshold, tmp_path, monkeypatch):
    import sonotype.runner.batch as batch
    from sonotype.errors import AudioError
    data = tmp_path / "data"
    wav = tone_with_gaps(data / "late.wav", seconds=4, seed=1, calls=CALLS)
    db = f"sqlite:///{tmp_path / 'r.db'}"

    def broken(*a, **k):
        raise AudioError(wav, "decoding failed at 2.0 s")
    monkeypatch.setattr(batch, "detect_file", broken)
    for _ in range(2):
        assert detect([str(data)], model=model, db=db, threshold=threshold) == 1
    with open_store(db, read_only=True) as st:
        [rec] = st.recordings()
        [f] = st.failures()
        assert f.recording_id == rec.id and "decoding failed" in f.error
        [p] = st.processed()
        assert (p.recording_id, p.status) == (rec.id, "failed") and "decoding failed" in p.error
    monkeypatch.undo()
    assert detect([str(data)], model=model, db=db, threshold=threshold) == 0
    with open_store(db, read_only=True) as st:
        assert st.failures() == [] and [p.status for p in st.processed()] == ["done"]


# ---------------------------------------------------------------------------- 5. odd audio


def test_odd_audio_is_named_in_the_summary(model, threshold, tmp_path, capsys):
    import os
    import struct
    data = tmp_path / "data"
    good = tone_with_gaps(data / "good.wav", seconds=4, seed=1, calls=CALLS)
    raw = good.read_bytes()
    (data / "cut.wav").write_bytes(tone_with_gaps(tmp_path / "c.wav", seconds=4, seed=2).read_bytes()[:len(raw) // 2])
    fast = bytearray(tone_with_gaps(tmp_path / "f.wav", seconds=4, seed=3).read_bytes())
    fast[24:32] = struct.pack("<II", 2_147_483_647, 0xFFFFFFFE)  # sample rate, byte rate
    (data / "fast.wav").write_bytes(bytes(fast))
    os.symlink("gone.wav", data / "dangling.wav")
    os.symlink("self.wav", data / "self.wav")
    os.symlink(".", data / "loop")
    (data / "empty").mkdir()
    db = f"sqlite:///{tmp_path / 'r.db'}"
    assert main(["detect", str(data), str(data / "empty"), "--model", str(model), "--db", db,
                 "--threshold", str(threshold), "--quiet"]) == 1  # fast.wav: an error
    out = capsys.readouterr().out
    lines = {ln.split(": ", 1)[0].strip(): ln for ln in out.splitlines() if ln.startswith("  ")}
    assert "truncated" in lines[f"WARNING {data / 'cut.wav'}"]
    assert "2,147,483,647 Hz" in lines[f"FAILED {data / 'fast.wav'}"]
    assert "dangling" in lines[f"WARNING {data / 'dangling.wav'}"]
    assert "loop" in lines[f"WARNING {data / 'self.wav'}"] and "loop" in lines[f"WARNING {data / 'loop'}"]
    assert "no audio" in lines[f"WARNING {data / 'empty'}"]
    assert counts(db)[2] == 2  # good and cut were processed


def test_detect_over_an_empty_folder_says_so_and_exits_non_zero(model, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    db = tmp_path / "r.db"
    assert main(["detect", str(tmp_path / "empty"), "--model", str(model), "--db", f"sqlite:///{db}", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "no audio files" in err and "empty" in err and not db.exists()


def test_curated_labels_of_files_sharing_a_base_name_go_back_to_their_own_file(model, threshold, tmp_path):
    from sonotype.training.dataset import load_items
    for site, seed in (("site1", 4), ("site2", 5)):
        tone_with_gaps(tmp_path / site / "0001.wav", seconds=4, seed=seed, calls=CALLS if seed == 4 else ((0.5, 1.5),))
    db = f"sqlite:///{tmp_path / 'r.db'}"
    assert detect([str(tmp_path / "site1"), str(tmp_path / "site2")], model=model, db=db, threshold=threshold) == 0
    table = tmp_path / "curated.csv"
    assert main(["export-labels", "--db", db, "--out", str(table)]) == 0
    with open_store(db, read_only=True) as st:
        want = {r.path: sorted((round(g.region.start_s, 6), round(g.region.stop_s, 6))
                               for g in st.regions(recording_id=r.id)) for r in st.recordings()}
    items = load_items([tmp_path / "site1", tmp_path / "site2"], annotations=table)
    got = {str(Path(i.path).resolve()): sorted((round(e.start, 6), round(e.end, 6)) for e in i.events) for i in items}
    assert got == want and len(got) == 2 and got[str(tmp_path / "site1" / "0001.wav")] != got[str(tmp_path / "site2" / "0001.wav")]
