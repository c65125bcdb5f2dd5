"""Tests of sonotype.training.dataset: file discovery, labels, annotation tables, splits and the frame cache.

Window labels are checked against a brute-force loop over windows written here, and cached frames
against :func:`sonotype.features.frontend.spectrogram` of the whole file.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest

from sonotype.audio.io import read_audio, write_audio
from sonotype.errors import AudioError, DataError
from sonotype.features.frontend import FrontEnd, iter_frames, spectrogram
from sonotype.training import dataset
from sonotype.training.dataset import (
    IGNORE,
    NEGATIVE,
    POSITIVE,
    Event,
    FrameCache,
    Item,
    LabelRule,
    find_audio,
    load_items,
    make_items,
    read_annotations,
    split_by_file,
    window_labels,
)

NARW = FrontEnd(n_fft=512, hop=64, fmin=40.0, fmax=1000.0)
SR = 2000


def noise(n: int, seed: int, *, amp: float = 0.3) -> np.ndarray:
    return (amp * np.random.default_rng(seed).uniform(-1, 1, n)).astype(np.float32)


def wav(path: Path, n: int = 4000, seed: int = 0, sr: int = SR) -> Path:
    return write_audio(path, noise(n, seed), sample_rate=sr)


def touch(path: Path, text: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# ------------------------------------------------------------------------------- find_audio


@pytest.fixture()
def tree(tmp_path: Path) -> dict[str, Path]:
    """Audio files in nested folders (only the suffix matters to find_audio) and some non-audio files."""
    files = {
        "a": touch(tmp_path / "root" / "a.wav"),
        "b": touch(tmp_path / "root" / "sub" / "b.FLAC"),
        "c": touch(tmp_path / "root" / "sub" / "deeper" / "c.mp3"),
        "d": touch(tmp_path / "root" / "other" / "d.ogg"),
        "e": touch(tmp_path / "elsewhere" / "e.wav"),
    }
    touch(tmp_path / "root" / "notes.txt")
    touch(tmp_path / "root" / "sub" / "labels.csv")
    touch(tmp_path / "root" / "sub" / "deeper" / "wav")  # no suffix at all
    touch(tmp_path / "root" / "sub" / "b.wav.bak")
    return files


def test_find_audio_folder_recursive_ignores_non_audio(tree, tmp_path):
    got = find_audio([tmp_path / "root"])
    assert got == sorted([tree["a"], tree["b"], tree["c"], tree["d"]])
    assert all(isinstance(p, Path) for p in got)


def test_find_audio_custom_extensions(tree, tmp_path):
    assert find_audio([tmp_path / "root"], extensions=(".WAV",)) == [tree["a"]]


def test_find_audio_explicit_file_and_duplicates(tree, tmp_path):
    got = find_audio([tree["e"], tmp_path / "root" / "sub", tree["b"], str(tree["b"]), tmp_path / "root" / "sub"])
    assert got == sorted([tree["b"], tree["c"], tree["e"]])
    assert len(got) == len(set(got))


def test_find_audio_glob(tree, tmp_path):
    assert find_audio([str(tmp_path / "root" / "*.wav")]) == [tree["a"]]
    got = find_audio([str(tmp_path / "**" / "*.wav")])
    assert got == sorted([tree["a"], tree["e"]])
    # glob results are filtered by suffix
    got = find_audio([str(tmp_path / "root" / "sub" / "*")])
    assert got == [tree["b"]]


def test_find_audio_list_file(tree, tmp_path):
    listing = tmp_path / "root" / "files.txt"
    listing.write_text("# training files\n"
                       "a.wav\n"
                       "\n"
                       "  sub/deeper/  \n"  # a folder, relative to the list, with surrounding spaces
                       "#sub/b.FLAC\n"  # commented out
                       f"{tree['e']}\n"  # absolute
                       "./a.wav\n")  # duplicate
    got = find_audio([f"@{listing}"])
    assert got == sorted([tree["a"], tree["c"], tree["e"]])
    # a list combined with other paths: duplicates across them removed
    got = find_audio([f"@{listing}", tmp_path / "root"])
    assert got == sorted([tree["a"], tree["b"], tree["c"], tree["d"], tree["e"]])


def test_find_audio_missing_path_names_it(tree, tmp_path):
    missing = tmp_path / "root" / "nope.wav"
    with pytest.raises(DataError, match="nope.wav"):
        find_audio([tree["a"], missing])
    with pytest.raises(DataError, match="missing.txt"):
        find_audio([f"@{tmp_path / 'missing.txt'}"])
    listing = tmp_path / "list.txt"
    listing.write_text("root/a.wav\nroot/ghost.wav\n")
    with pytest.raises(DataError, match="ghost.wav"):
        find_audio([f"@{listing}"])


def test_find_audio_empty_folder_and_unmatched_glob(tmp_path):
    (tmp_path / "empty").mkdir()
    assert find_audio([tmp_path / "empty"]) == []
    assert find_audio([str(tmp_path / "empty" / "*.wav")]) == []


# ------------------------------------------------------------------------------- LabelRule


def test_label_rule_default():
    rule = LabelRule()
    assert rule.label("rec/noise_001.wav") == NEGATIVE
    assert rule.label("rec/Noise-b.wav") == NEGATIVE
    assert rule.label("NOISE.WAV") == NEGATIVE
    assert rule.label("rec/whistle_noise.wav") == POSITIVE  # prefix only
    assert rule.label("rec/click.wav") == POSITIVE
    assert rule.label("data/background/x.wav") == NEGATIVE
    assert rule.label("data/Silence/deep/x.wav") == NEGATIVE  # any ancestor folder, any case
    assert rule.label("data/NOISE/x.wav") == NEGATIVE
    assert rule.label("data/noisy/x.wav") == POSITIVE  # folder names match exactly
    assert rule.label(Path("data/calls/x.wav")) == POSITIVE


def test_label_rule_custom():
    rule = LabelRule(negative_patterns=("*_BG.wav", "empty??.*"), negative_dirs=("Quiet",))
    assert rule.label("a/call_bg.wav") == NEGATIVE
    assert rule.label("a/empty01.flac") == NEGATIVE
    assert rule.label("a/empty001.flac") == POSITIVE
    assert rule.label("quiet/x.wav") == NEGATIVE
    assert rule.label("a/noise_1.wav") == POSITIVE  # the default rule is replaced
    assert rule.label("background/x.wav") == POSITIVE
    none = LabelRule(negative_patterns=(), negative_dirs=())
    assert none.label("noise/noise.wav") == POSITIVE


# ------------------------------------------------------------------------------- read_annotations


def test_read_annotations_real_table(data_dir):
    table = data_dir / "narw-upcalls" / "annotations_train.csv"
    if not table.is_file():
        pytest.skip(f"{table} not found")
    ann = read_annotations(table)
    assert len(ann) == 3
    assert sum(len(v) for v in ann.values()) == 53
    assert all(name.endswith(".wav") and "/" not in name for name in ann)
    for evs in ann.values():
        assert all(e.end > e.start >= 0 for e in evs)
        starts = [e.start for e in evs]
        assert starts == sorted(starts)
        assert all(e.label == "1" for e in evs)
    # against a direct reading of the table
    lines = table.read_text().splitlines()[1:]
    rows = [ln.split(",") for ln in lines if ln.strip()]
    for name in {r[0] for r in rows}:
        want = sorted((float(r[1]), float(r[2])) for r in rows if r[0] == name)
        assert [(e.start, e.end) for e in ann[name]] == want


def test_read_annotations_csv_sorted_basenames_and_labels(tmp_path):
    p = tmp_path / "ann.csv"
    p.write_text("\ufeffFilename, Start ,END,label\n"  # BOM, case and spaces in the header
                 "deploy/x.wav,5.0,6.5,upcall\n"
                 "x.wav,1.0,2.0,gunshot\n"
                 "y.wav,0,0.25,upcall\n")
    ann = read_annotations(p)
    assert set(ann) == {"x.wav", "y.wav"}
    assert ann["x.wav"] == [Event(1.0, 2.0, "gunshot"), Event(5.0, 6.5, "upcall")]
    assert ann["y.wav"] == [Event(0.0, 0.25, "upcall")]


def test_read_annotations_tsv(tmp_path):
    p = tmp_path / "ann.tsv"
    p.write_text("filename\tstart\tend\n"
                 "a, b.wav\t3\t4\n"  # a comma inside a name is fine in a TSV
                 "a, b.wav\t1.5\t2\n")
    ann = read_annotations(p)
    assert ann == {"a, b.wav": [Event(1.5, 2.0), Event(3.0, 4.0)]}


def test_read_annotations_empty_times_list_file(tmp_path):
    p = tmp_path / "ann.csv"
    p.write_text("filename,start,end\n"
                 "quiet.wav,,\n"
                 "calls.wav,1,2\n"
                 "calls.wav, , \n")  # an empty row for a file that has events adds nothing
    ann = read_annotations(p)
    assert ann == {"quiet.wav": [], "calls.wav": [Event(1.0, 2.0)]}


def test_read_annotations_missing_columns(tmp_path):
    p = tmp_path / "ann.csv"
    p.write_text("file,begin,end\nx.wav,1,2\n")
    with pytest.raises(DataError) as e:
        read_annotations(p)
    msg = str(e.value)
    assert "filename" in msg and "start" in msg and "ann.csv" in msg
    assert "'end'" not in msg.split("found")[0]  # only the missing ones are listed as missing


def test_read_annotations_bad_rows(tmp_path):
    p = tmp_path / "ann.csv"
    p.write_text("filename,start,end\nx.wav,1,2\nx.wav,abc,3\n")
    with pytest.raises(DataError, match=r"line 3.*'abc'"):
        read_annotations(p)
    p.write_text("filename,start,end\nx.wav,1,2\nx.wav,2,3\ny.wav,-1,2\n")
    with pytest.raises(DataError, match=r"line 4.*start=-1"):
        read_annotations(p)
    p.write_text("filename,start,end\nx.wav,5,2\n")
    with pytest.raises(DataError, match=r"line 2.*start=5.*end=2"):
        read_annotations(p)
    p.write_text("filename,start,end\nx.wav,2,2\n")  # zero length
    with pytest.raises(DataError, match="line 2"):
        read_annotations(p)
    p.write_text("filename,start,end\nx.wav,2,\n")  # only one of the two times
    with pytest.raises(DataError, match="line 2"):
        read_annotations(p)
    # line numbers are the file's own, whatever blank lines and CRLF endings come before
    p.write_text("filename,start,end\r\nx.wav,1,2\r\n\r\n\r\nx.wav,3,4\r\nx.wav,x,4\r\n")
    with pytest.raises(DataError, match=r"line 6\b"):
        read_annotations(p)
    p.write_text("filename,start,end\n\nx.wav,1,2\n\ny.wav,9,8\n")
    with pytest.raises(DataError, match=r"line 5\b"):
        read_annotations(p)


def test_read_annotations_missing_or_empty_table(tmp_path):
    with pytest.raises(DataError, match="nothere.csv"):
        read_annotations(tmp_path / "nothere.csv")
    p = tmp_path / "ann.csv"
    p.write_text("filename,start,end\n")
    with pytest.raises(DataError, match="no rows"):
        read_annotations(p)


# ------------------------------------------------------------------------------- window_labels


def ref_window_labels(n_windows: int, events, *, min_overlap: float) -> list[int]:
    """Brute force from the front end's numbers: window i spans samples
    [i * stride * hop, i * stride * hop + (window - 1) * hop + n_fft)."""
    hop, n_fft, window, stride = NARW.hop, NARW.n_fft, NARW.window, NARW.stride
    out = []
    for i in range(n_windows):
        w0 = i * stride * hop / SR
        w1 = (i * stride * hop + (window - 1) * hop + n_fft) / SR
        positive = touched = False
        for ev in events:
            ov = min(w1, ev.end) - max(w0, ev.start)
            if ov > 0:
                touched = True
                if ov >= min_overlap * min(ev.end - ev.start, w1 - w0):
                    positive = True
        out.append(POSITIVE if positive else IGNORE if touched else NEGATIVE)
    return out


@pytest.mark.parametrize("min_overlap", [0.25, 0.5, 1.0])
@pytest.mark.parametrize("seed", range(6))
def test_window_labels_match_brute_force(seed, min_overlap):
    framing = NARW.at_rate(SR)
    rng = np.random.default_rng(seed)
    n_windows = 60  # ~31 s
    events = []
    for _ in range(rng.integers(1, 12)):
        start = rng.uniform(0, 32)
        length = rng.choice([rng.uniform(0.05, 0.6), rng.uniform(0.6, 3.0)])
        events.append(Event(float(start), float(start + length)))
    got = window_labels(n_windows, framing, events, min_overlap=min_overlap)
    assert got.dtype == np.int8 and got.shape == (n_windows,)
    want = ref_window_labels(n_windows, events, min_overlap=min_overlap)
    assert got.tolist() == want
    # the random events give all three kinds somewhere across the parametrisation
    assert set(want) <= {POSITIVE, NEGATIVE, IGNORE}


def test_window_labels_all_kinds_by_hand():
    framing = NARW.at_rate(SR)
    # windows: 1.248 s long, every 0.512 s. Window 0 = [0, 1.248), 1 = [0.512, 1.76), 2 = [1.024, 2.272) ...
    events = [Event(0.1, 0.3)]  # short call inside window 0 only
    assert window_labels(4, framing, events).tolist() == [POSITIVE, NEGATIVE, NEGATIVE, NEGATIVE]
    # 0.5 s: windows 1 and 2 hold it wholly, window 0 = [0, 1.248) and 3 = [1.536, 2.784) graze it
    events = [Event(1.2, 1.7)]
    assert window_labels(5, framing, events).tolist() == [IGNORE, POSITIVE, POSITIVE, IGNORE, NEGATIVE]
    # an event longer than the windows: every window wholly inside it is positive even at min_overlap=1
    # (window 3 = [1.536, 2.784) .. window 5 = [2.56, 3.808) inside [1.5, 4.0); 2 and 6 partly)
    events = [Event(1.5, 4.0)]
    assert window_labels(8, framing, events, min_overlap=1.0).tolist() == \
        [NEGATIVE, IGNORE, IGNORE, POSITIVE, POSITIVE, POSITIVE, IGNORE, IGNORE]
    # a later graze must not demote a window that an earlier event made positive
    events = [Event(0.1, 0.3), Event(1.2, 1.7)]
    assert window_labels(3, framing, events).tolist() == [POSITIVE, POSITIVE, POSITIVE]


def test_window_labels_edge_cases():
    framing = NARW.at_rate(SR)
    assert window_labels(0, framing, [Event(0, 1)]).shape == (0,)
    assert window_labels(5, framing, []).tolist() == [NEGATIVE] * 5
    item = Item("x.wav", SR, 0, 10000, label=None, events=None)
    with pytest.raises(DataError, match="x.wav"):
        item.window_labels(3, framing)
    assert Item("x.wav", SR, 0, 10000, label=NEGATIVE).window_labels(3, framing).tolist() == [NEGATIVE] * 3
    assert Item("x.wav", SR, 0, 10000, label=POSITIVE).window_labels(2, framing).dtype == np.int8
    ev = Item("x.wav", SR, 0, 10000, label=NEGATIVE, events=(Event(0.1, 0.3),))  # events win over label
    assert ev.window_labels(2, framing).tolist() == [POSITIVE, NEGATIVE]


# ------------------------------------------------------------------------------- make_items / load_items


def test_make_items_annotations_and_errors(tmp_path):
    a = wav(tmp_path / "a.wav", 6000, seed=1)
    b = wav(tmp_path / "noise_b.wav", 5000, seed=2)
    stereo = write_audio(tmp_path / "st.wav", np.stack([noise(4000, 3, amp=0.01), noise(4000, 4, amp=0.5)], 1),
                         sample_rate=4000)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    ann = {"a.wav": [Event(0.1, 0.4)], "unlisted_elsewhere.wav": [Event(1, 2)]}

    errors = []
    items = make_items([a, bad, b, stereo], annotations=ann, on_error=lambda p, e: errors.append((p, e)))
    assert [Path(i.path).name for i in items] == ["a.wav", "noise_b.wav", "st.wav"]
    assert len(errors) == 1 and errors[0][0] == bad and isinstance(errors[0][1], AudioError)
    ia, ib, ist = items
    assert (ia.sample_rate, ia.frames, ia.channel) == (SR, 6000, 0)
    assert ia.events == (Event(0.1, 0.4),) and ia.label is None
    assert ib.events == ()  # not in the table: annotated as holding nothing
    assert ib.window_labels(3, NARW.at_rate(SR)).tolist() == [NEGATIVE] * 3
    assert (ist.sample_rate, ist.frames, ist.channel) == (4000, 4000, 1)  # loudest channel

    with pytest.raises(AudioError, match="bad.wav"):
        make_items([a, bad], annotations=ann)

    ruled = make_items([a, b], rule=LabelRule())
    assert [(i.label, i.events) for i in ruled] == [(POSITIVE, None), (NEGATIVE, None)]
    assert make_items([stereo], channel=0)[0].channel == 0


def test_load_items(tmp_path):
    wav(tmp_path / "audio" / "a.wav", seed=1)
    wav(tmp_path / "audio" / "sub" / "b.wav", seed=2)
    table = tmp_path / "ann.csv"
    table.write_text("filename,start,end\nsomewhere/b.wav,0.5,0.9\n")
    items = load_items([tmp_path / "audio"], annotations=table)
    assert {Path(i.path).name: i.events for i in items} == {"a.wav": (), "b.wav": (Event(0.5, 0.9),)}

    table.write_text("filename,start,end\nc.wav,0.5,0.9\nd.wav,,\n")
    with pytest.raises(DataError, match="c.wav|d.wav"):
        load_items([tmp_path / "audio"], annotations=table)

    items = load_items([tmp_path / "audio"], rule=LabelRule(negative_patterns=("b*",)))
    assert [(Path(i.path).name, i.label) for i in items] == [("a.wav", POSITIVE), ("b.wav", NEGATIVE)]


# ------------------------------------------------------------------------------- split_by_file


def fake_items(n_pos: int, n_neg: int, *, annotated: bool = True) -> list[Item]:
    """Annotated items with events (group "calls") and without (group "quiet"), or rule-labelled items."""
    if not annotated:
        return ([Item(f"call_{i}.wav", SR, 0, 1000, label=POSITIVE) for i in range(n_pos)]
                + [Item(f"noise_{i}.wav", SR, 0, 1000, label=NEGATIVE) for i in range(n_neg)])
    return ([Item(f"calls_{i}.wav", SR, 0, 1000, events=(Event(0, 1),)) for i in range(n_pos)]
            + [Item(f"quiet_{i}.wav", SR, 0, 1000, events=()) for i in range(n_neg)])


def group(it: Item) -> str:
    has_call = it.label == POSITIVE if it.events is None else bool(it.events)
    return "calls" if has_call else "quiet"


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5, 0.75, 0.9])
@pytest.mark.parametrize("sizes", [(2, 2, True), (3, 7, True), (25, 10, True), (2, 9, False), (12, 5, False)])
def test_split_by_file(sizes, fraction):
    items = fake_items(*sizes[:2], annotated=sizes[2])
    train, held = split_by_file(items, fraction=fraction, seed=3)
    # a partition of the files: nothing lost, nothing in both
    assert sorted(i.path for i in train + held) == sorted(i.path for i in items)
    assert not {i.path for i in train} & {i.path for i in held}
    # every group of two or more files is in both parts
    for g in {group(i) for i in items}:
        assert any(group(i) == g for i in train), g
        assert any(group(i) == g for i in held), g
    # about `fraction` of each group held out
    for g, size in zip(["calls", "quiet"], sizes[:2]):
        k = sum(group(i) == g for i in held)
        assert abs(k - fraction * size) <= 1
    # deterministic with the seed
    again = split_by_file(items, fraction=fraction, seed=3)
    assert ([i.path for i in again[0]], [i.path for i in again[1]]) == ([i.path for i in train], [i.path for i in held])


def test_split_by_file_seed_changes_choice_and_edge_cases():
    items = fake_items(10, 10)
    splits = {tuple(sorted(i.path for i in split_by_file(items, fraction=0.3, seed=s)[1])) for s in range(6)}
    assert len(splits) > 1
    # a single file of a group stays in training; fraction 0 holds out nothing
    train, held = split_by_file(fake_items(1, 4), fraction=0.25, seed=0)
    assert [i.path for i in train if group(i) == "calls"] == ["calls_0.wav"]
    assert len(held) == 1 and group(held[0]) == "quiet"
    train, held = split_by_file(items, fraction=0.0, seed=0)
    assert held == [] and len(train) == 20


# ------------------------------------------------------------------------------- FrameCache


def ref_frames(path: Path, frontend: FrontEnd, channel: int = 0) -> np.ndarray:
    x, sr = read_audio(path, channel=channel)
    return spectrogram(x, frontend.at_rate(sr))


def test_frame_cache_frames_match_spectrogram(tmp_path, monkeypatch):
    # small read blocks so that frames straddle block boundaries
    monkeypatch.setattr(dataset, "iter_frames", functools.partial(iter_frames, block_frames=1000))
    f = wav(tmp_path / "a.wav", 23456, seed=7)
    item = make_items([f])[0]
    cache = FrameCache(tmp_path / "cache", NARW)
    got = cache.frames(item)
    want = ref_frames(f, NARW)
    assert got.dtype == np.float16 and got.shape == want.shape
    assert got.shape[0] == NARW.at_rate(SR).n_frames(23456)
    np.testing.assert_allclose(got.astype(np.float32), want, rtol=2e-3, atol=1e-3)

    # stored on disk under the key; the second call is served from memory (same object)
    npy = tmp_path / "cache" / f"{cache.key(item)}.npy"
    assert npy.is_file()
    assert list((tmp_path / "cache").glob("*.tmp.npy")) == []
    assert cache.frames(item) is got

    # a new cache over the same folder reads the stored file and never decodes again
    def no_decoding(*a, **k):
        raise AssertionError("frames should come from the cache on disk")

    monkeypatch.setattr(dataset, "iter_frames", no_decoding)
    again = FrameCache(tmp_path / "cache", NARW).frames(item)
    np.testing.assert_array_equal(np.asarray(again), np.asarray(got))

    # another front end: another key, another file
    other = FrameCache(tmp_path / "cache", FrontEnd(n_fft=256, hop=64, fmin=40.0, fmax=1000.0, n_bins=64))
    assert other.key(item) != cache.key(item)
    with pytest.raises(AssertionError, match="cache on disk"):
        other.frames(item)


def test_frame_cache_key_follows_file_and_channel(tmp_path):
    f = wav(tmp_path / "a.wav", 9000, seed=1)
    item = make_items([f])[0]
    cache = FrameCache(tmp_path / "cache", NARW)
    first = np.array(cache.frames(item))
    k1 = cache.key(item)
    assert cache.key(item) == k1  # stable

    wav(f, 9500, seed=2)  # rewritten with other content
    item2 = make_items([f])[0]
    assert cache.key(item2) != k1
    second = np.array(cache.frames(item2))
    want = ref_frames(f, NARW)
    assert second.shape == want.shape != first.shape
    np.testing.assert_allclose(second.astype(np.float32), want, rtol=2e-3, atol=1e-3)
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 2

    st = write_audio(tmp_path / "st.wav", np.stack([noise(9000, 3), noise(9000, 4, amp=0.6)], 1), sample_rate=SR)
    i0, i1 = make_items([st], channel=0)[0], make_items([st], channel=1)[0]
    assert cache.key(i0) != cache.key(i1)
    np.testing.assert_allclose(np.asarray(cache.frames(i1), np.float32), ref_frames(st, NARW, 1), rtol=2e-3, atol=1e-3)
    np.testing.assert_allclose(np.asarray(cache.frames(i0), np.float32), ref_frames(st, NARW, 0), rtol=2e-3, atol=1e-3)
