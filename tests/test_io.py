"""Tests of sonotype.audio.io: decoding, block streaming, channel choice and bad input."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sonotype.audio import io
from sonotype.audio.io import (
    AudioInfo,
    Recording,
    audio_info,
    file_hash,
    iter_blocks,
    open_recording,
    read_audio,
    select_channel,
    write_audio,
)
from sonotype.errors import AudioError, ConfigError, DecoderMissingError, SonotypeError

HAVE_FFMPEG = shutil.which("ffmpeg") is not None and shutil.which("ffprobe") is not None
needs_ffmpeg = pytest.mark.skipif(
    not HAVE_FFMPEG, reason="ffmpeg/ffprobe not on PATH (install with `apt-get install ffmpeg`); "
                            "skipping the ffmpeg-decoder tests")
TOL = {"PCM_16": 1.0 / 2**15, "PCM_24": 1.0 / 2**23, "PCM_32": 1.0 / 2**31, "FLOAT": 0.0}


def signal(n: int, *, sr: int, seed: int = 0, channels: int = 1, gains=(0.5,)) -> np.ndarray:
    """Seeded noise plus a chirp, float32 in [-1, 1]: ``(n,)`` or ``(n, channels)``."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    f0, f1 = 0.02 * sr, 0.2 * sr
    chirp = np.sin(2 * np.pi * (f0 + (f1 - f0) * t / max(t[-1], 1e-9) / 2) * t)
    cols = [g * (0.7 * chirp + 0.3 * rng.uniform(-1, 1, n)) for g in (gains * channels)[:channels]]
    x = np.stack(cols, axis=1).astype(np.float32)
    return x[:, 0] if channels == 1 else x


def best_corr(a: np.ndarray, b: np.ndarray, max_lag: int = 4096) -> float:
    """Pearson correlation of ``a`` and ``b`` after shifting ``b`` by the best lag in +-max_lag."""
    from scipy.signal import correlate

    n = min(len(a), len(b))
    c = correlate(b[:n], a[:n], mode="full", method="fft")
    lags = np.arange(-n + 1, n)
    keep = np.abs(lags) <= max_lag
    lag = int(lags[keep][np.argmax(c[keep])])
    a2, b2 = (a[: n - lag], b[lag:n]) if lag >= 0 else (a[-lag:n], b[: n + lag])
    return float(np.corrcoef(a2, b2)[0, 1])


# ---------------------------------------------------------------- round trips, blocks, ranges


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "FLOAT"])
@pytest.mark.parametrize("sr", [2000, 44100, 48000, 96000])
def test_roundtrip_wav(tmp_path, sr, subtype):
    x = signal(sr // 2 + 17, sr=sr, seed=sr)
    p = write_audio(tmp_path / "a.wav", x, sample_rate=sr, subtype=subtype)
    info = audio_info(p)
    assert info == AudioInfo(str(p), sr, 1, len(x), "WAV", subtype)
    assert info.duration_s == pytest.approx(len(x) / sr)
    y, sr2 = read_audio(p)
    assert sr2 == sr and y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_allclose(y, x, rtol=0, atol=TOL[subtype])


@pytest.mark.parametrize("suffix,subtype", [(".flac", "PCM_16"), (".flac", "PCM_24"),
                                            (".wav", "PCM_32"), (".wav", "DOUBLE")])
def test_roundtrip_other_formats(tmp_path, suffix, subtype):
    x = signal(12345, sr=22050, channels=2, gains=(0.5, 0.25))
    p = write_audio(tmp_path / f"a{suffix}", x, sample_rate=22050, subtype=subtype)
    assert audio_info(p).channels == 2 and audio_info(p).subtype == subtype
    for ch in (0, 1):
        y, _ = read_audio(p, channel=ch)
        np.testing.assert_allclose(y, x[:, ch], atol=TOL.get(subtype, 1e-7))


def test_write_clips_int_subtypes_and_writes_int_arrays(tmp_path):
    y, _ = read_audio(write_audio(tmp_path / "c.wav", np.array([2.0, -3.0, 0.5]), sample_rate=8000))
    np.testing.assert_allclose(y, [1.0, -1.0, 0.5], atol=1e-4)
    y, _ = read_audio(write_audio(tmp_path / "i.wav", np.array([16384, -32768], np.int16), sample_rate=8000))
    np.testing.assert_array_equal(y, [0.5, -1.0])


@pytest.fixture(scope="module")
def stereo_file(tmp_path_factory):
    """10 001 frames of stereo PCM_24 at 48 kHz; channel 1 is 4x louder."""
    x = signal(10001, sr=48000, seed=3, channels=2, gains=(0.1, 0.4))
    return write_audio(tmp_path_factory.mktemp("st") / "st.wav", x, sample_rate=48000, subtype="PCM_24"), x


@pytest.mark.parametrize("block", [1, 7, 333, 4097, 10000, 10001, 99999])
def test_blocks_concatenate_to_whole(stereo_file, block):
    p, _ = stereo_file
    whole, _ = read_audio(p, channel=1)
    blocks = list(iter_blocks(p, channel=1, block_frames=block))
    assert [b.start for b in blocks] == list(range(0, len(whole), block))
    assert all(len(b.samples) == block for b in blocks[:-1]) and 0 < len(blocks[-1].samples) <= block
    np.testing.assert_array_equal(np.concatenate([b.samples for b in blocks]), whole)


@pytest.mark.parametrize("start,stop", [(0, None), (0, 1), (123, 4567), (5000, 10001), (9998, None),
                                        (10000, 99999), (5, 5), (10001, None), (20000, 30000)])
def test_sub_range_equals_slice(stereo_file, start, stop):
    p, _ = stereo_file
    whole, _ = read_audio(p, channel=0)
    y, _ = read_audio(p, channel=0, start=start, stop=stop)
    np.testing.assert_array_equal(y, whole[start:stop])
    blocks = list(iter_blocks(p, channel=0, start=start, stop=stop, block_frames=1000))
    assert [b.start for b in blocks] == list(range(start, start + len(y), 1000))


@pytest.mark.parametrize("kw", [dict(start=-1), dict(stop=-5), dict(start=10, stop=5), dict(start=1.5),
                                dict(block_frames=0), dict(channel="left"), dict(channel=True)])
def test_bad_parameters_are_config_errors(stereo_file, kw):
    p, _ = stereo_file
    with pytest.raises(ConfigError, match="st.wav"):
        list(iter_blocks(p, **kw))


# ---------------------------------------------------------------- channels


def test_auto_channel_picks_louder(stereo_file, tmp_path):
    p, x = stereo_file
    assert select_channel(p) == select_channel(p, "auto") == 1
    y, _ = read_audio(p, channel=None)
    np.testing.assert_allclose(y, x[:, 1], atol=TOL["PCM_24"])
    rec = open_recording(p)
    assert isinstance(rec, Recording) and rec.channel == 1 and rec.channels == 2
    assert rec.sample_rate == 48000 and rec.frames == 10001 and rec.format == "WAV"
    assert rec.duration_s == pytest.approx(10001 / 48000) and rec.info == audio_info(p)
    q = write_audio(tmp_path / "left.wav", x[:, ::-1], sample_rate=48000)  # louder channel now 0
    assert open_recording(q, channel="auto").channel == 0


def test_explicit_channel_and_mono(stereo_file, tmp_path):
    p, x = stereo_file
    assert select_channel(p, 0) == 0 and open_recording(p, channel=0).channel == 0
    y, _ = read_audio(p, channel=0)
    np.testing.assert_allclose(y, x[:, 0], atol=TOL["PCM_24"])
    m = write_audio(tmp_path / "m.wav", x[:, 0], sample_rate=48000)
    assert select_channel(m) == 0 and select_channel(m, 0) == 0
    s = write_audio(tmp_path / "s.wav", np.zeros((100, 3)), sample_rate=8000)
    assert select_channel(s) == 0  # all silent: ties go to the lowest index


@pytest.mark.parametrize("ch", [2, 5, -1])
def test_out_of_range_channel(stereo_file, ch):
    p, _ = stereo_file
    with pytest.raises(AudioError) as e:
        select_channel(p, ch)
    msg = str(e.value)
    assert "st.wav" in msg and f"channel {ch}" in msg and "2 channel" in msg
    with pytest.raises(AudioError, match=f"channel {ch}"):
        read_audio(p, channel=ch)


# ---------------------------------------------------------------- long files


@pytest.fixture(scope="module")
def long_file(tmp_path_factory):
    """20 minutes of stereo PCM_16 at 2 kHz (2.4 M frames); channel 1 louder; written in chunks."""
    sr, n = 2000, 20 * 60 * 2000
    p = tmp_path_factory.mktemp("long") / "long.wav"
    with sf.SoundFile(str(p), "w", sr, 2, "PCM_16") as f:
        for i in range(0, n, 240_000):
            f.write(signal(240_000, sr=sr, seed=i, channels=2, gains=(0.05, 0.3)))
    return p


def test_iter_blocks_streams_long_file(long_file):
    block = 1 << 16
    total, biggest, n_blocks = 0, 0, 0
    tracemalloc.start()
    try:
        for b in iter_blocks(long_file, channel=1, block_frames=block):
            assert b.start == total
            total += len(b.samples)
            biggest = max(biggest, len(b.samples))
            n_blocks += 1
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert total == 2_400_000 and biggest == block and n_blocks == -(-total // block)
    whole_bytes = total * 4
    assert peak < 8 * block * 2 * 4 < whole_bytes  # a few blocks of (block, 2) float32, never the file


def test_auto_channel_reads_bounded_sample(long_file, monkeypatch):
    frames_read = []
    real_read = sf.SoundFile.read

    def spy(self, frames=-1, *a, **kw):
        out = real_read(self, frames, *a, **kw)
        frames_read.append(len(out))
        return out

    monkeypatch.setattr(sf.SoundFile, "read", spy)
    assert select_channel(long_file) == 1
    assert 0 < len(frames_read) <= io.AUTO_CHANNEL_CHUNKS
    assert sum(frames_read) <= io.AUTO_CHANNEL_SECONDS * 2000  # 60 s of the file's 1200 s


# ---------------------------------------------------------------- bad input


def test_missing_and_directory(tmp_path):
    with pytest.raises(AudioError, match="nope.wav: no such file"):
        audio_info(tmp_path / "nope.wav")
    with pytest.raises(AudioError, match="no such file"):
        read_audio(tmp_path / "nope.flac")
    with pytest.raises(AudioError, match="is a directory"):
        audio_info(tmp_path)
    with pytest.raises(AudioError, match="nope.bin: no such file"):
        file_hash(tmp_path / "nope.bin")


def test_empty_file(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioError, match=r"empty.wav: file is empty \(0 bytes\)"):
        read_audio(tmp_path / "empty.wav")


@pytest.mark.parametrize("name", ["notes.wav", "notes.flac", "notes.xyz"])
def test_non_audio_file(tmp_path, name):
    (tmp_path / name).write_text("these are field notes, not audio\n" * 20)
    with pytest.raises(AudioError, match=f"{name}: not readable as audio") as e:
        audio_info(tmp_path / name)
    assert not isinstance(e.value, DecoderMissingError) and isinstance(e.value, SonotypeError)


def test_truncated_wav_reads_what_is_there(tmp_path):
    x = signal(20000, sr=8000, channels=2, gains=(0.3, 0.3))
    data = write_audio(tmp_path / "full.wav", x, sample_rate=8000).read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: 44 + 4 * 7000 + 3])  # 7000 whole frames and a partial one
    info = audio_info(cut)
    assert info.frames == 7000
    y, _ = read_audio(cut, channel=1)
    np.testing.assert_allclose(y, x[:7000, 1], atol=TOL["PCM_16"])
    assert sum(len(b.samples) for b in iter_blocks(cut, block_frames=999, stop=50000)) == 7000
    (tmp_path / "hdr.wav").write_bytes(data[:44])  # header only
    with pytest.raises(AudioError, match="contains no audio samples"):
        read_audio(tmp_path / "hdr.wav")


def test_truncated_flac_raises(tmp_path):
    x = signal(48000, sr=48000, seed=1)
    data = write_audio(tmp_path / "full.flac", x, sample_rate=48000).read_bytes()
    (tmp_path / "cut.flac").write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioError, match="cut.flac: decoding failed at sample"):
        read_audio(tmp_path / "cut.flac")


def test_zero_length_audio(tmp_path):
    p = tmp_path / "zero.wav"
    sf.write(str(p), np.zeros((0, 1), np.float32), 8000)
    with pytest.raises(AudioError, match="zero.wav: contains no audio samples"):
        audio_info(p)
    with pytest.raises(AudioError, match="contains no audio samples"):
        open_recording(p)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples(tmp_path, bad):
    x = np.zeros((4000, 2), np.float32)
    x[2500, 1] = bad  # t = 2500 / 1000 Hz = 2.5 s
    p = tmp_path / "nan.wav"
    sf.write(str(p), x, 1000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"nan.wav: sample 2500 \(t = 2.500000 s, channel 1\)"):
        read_audio(p, channel=1, start=100)
    with pytest.raises(AudioError, match="2.500000 s"):
        list(iter_blocks(p, channel=1, block_frames=333))
    y, _ = read_audio(p, channel=0)  # the other channel is fine
    assert np.all(y == 0)
    assert select_channel(p) in (0, 1)  # the estimate ignores non-finite samples


def test_silent_audio_is_valid(tmp_path):
    p = write_audio(tmp_path / "silent.flac", np.zeros(5000), sample_rate=16000)
    y, sr = read_audio(p)
    assert sr == 16000 and y.shape == (5000,) and not y.any()


def test_write_audio_rejects_bad_input(tmp_path):
    with pytest.raises(AudioError, match=r"nan.wav: refusing to write non-finite samples \(first at sample 3"):
        write_audio(tmp_path / "nan.wav", np.array([0, 0, 0, np.nan]), sample_rate=10)
    with pytest.raises(ConfigError, match="sample_rate must be a positive int"):
        write_audio(tmp_path / "a.wav", np.zeros(10), sample_rate=0)
    with pytest.raises(ConfigError, match="non-empty"):
        write_audio(tmp_path / "a.wav", np.zeros(0), sample_rate=8000)
    with pytest.raises(AudioError, match="a.m4a: cannot write"):
        write_audio(tmp_path / "a.m4a", np.zeros(10), sample_rate=8000)
    with pytest.raises(AudioError, match="cannot write subtype 'FLOAT'"):
        write_audio(tmp_path / "a.flac", np.zeros(10), sample_rate=8000, subtype="FLOAT")


def test_file_hash(tmp_path):
    p = tmp_path / "b.bin"
    p.write_bytes(b"abc" * 1000)
    assert file_hash(p, chunk=7) == hashlib.sha256(b"abc" * 1000).hexdigest()
    (tmp_path / "e").write_bytes(b"")
    assert file_hash(tmp_path / "e") == hashlib.sha256(b"").hexdigest()


# ---------------------------------------------------------------- ffmpeg


def ffmpeg_encode(src: Path, dst: Path, *args: str) -> Path:
    r = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(src), *args, str(dst)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"this ffmpeg cannot encode {dst.suffix}: {r.stderr.strip()[-200:]}")
    return dst


@pytest.fixture(scope="module")
def source_wav(tmp_path_factory):
    """3 s stereo 44.1 kHz source for lossy encoders; channel 0 is the louder one."""
    x = signal(3 * 44100, sr=44100, seed=7, channels=2, gains=(0.5, 0.1))
    x[:, 1] = signal(3 * 44100, sr=44100, seed=8) * 0.2
    return write_audio(tmp_path_factory.mktemp("ff") / "src.wav", x, sample_rate=44100), x


@pytest.fixture(scope="module")
def m4a_file(source_wav):
    if not HAVE_FFMPEG:
        pytest.skip("ffmpeg not installed")
    src, _ = source_wav
    return ffmpeg_encode(src, src.with_name("src.m4a"), "-c:a", "aac", "-b:a", "192k")


@needs_ffmpeg
def test_m4a_decodes_through_ffmpeg(m4a_file, source_wav):
    _, x = source_wav
    info = audio_info(m4a_file)
    assert (info.decoder, info.format, info.subtype) == ("ffmpeg", "M4A", "aac")
    assert info.sample_rate == 44100 and info.channels == 2
    assert abs(info.frames - len(x)) < 0.05 * 44100  # estimated from the duration
    for ch in (0, 1):
        y, sr = read_audio(m4a_file, channel=ch)
        assert sr == 44100 and y.dtype == np.float32 and abs(len(y) - len(x)) < 0.05 * 44100
        assert best_corr(x[:, ch], y) > 0.9
    rec = open_recording(m4a_file)
    assert rec.channel == 0 and rec.decoder == "ffmpeg"


@needs_ffmpeg
def test_m4a_blocks_and_ranges_are_exact(m4a_file):
    whole, _ = read_audio(m4a_file, channel=1)
    blocks = list(iter_blocks(m4a_file, channel=1, block_frames=4097))
    assert [b.start for b in blocks] == list(range(0, len(whole), 4097))
    np.testing.assert_array_equal(np.concatenate([b.samples for b in blocks]), whole)
    for start, stop in [(0, 100), (12345, 23456), (100000, None), (len(whole) + 10, None)]:
        y, _ = read_audio(m4a_file, channel=1, start=start, stop=stop)
        np.testing.assert_array_equal(y, whole[start:stop])


@needs_ffmpeg
def test_ffmpeg_process_ends_when_consumer_stops(m4a_file, monkeypatch):
    procs = []
    real_popen = subprocess.Popen

    def spy(*a, **kw):
        procs.append(real_popen(*a, **kw))
        return procs[-1]

    info = audio_info(m4a_file)  # ffprobe runs here, before the spy
    monkeypatch.setattr(io.subprocess, "Popen", spy)
    gen = iter_blocks(m4a_file, block_frames=256, info=info)
    first = next(gen)
    assert first.start == 0 and len(first.samples) == 256 and len(procs) == 1
    assert procs[0].poll() is None  # still decoding
    gen.close()
    assert procs[0].returncode is not None and procs[0].stdout.closed


@needs_ffmpeg
@pytest.mark.parametrize("force_ffmpeg", [False, True])
def test_mp3(source_wav, monkeypatch, force_ffmpeg):
    src, x = source_wav
    mp3 = ffmpeg_encode(src, src.with_name("src.mp3"), "-c:a", "libmp3lame", "-b:a", "192k")
    if force_ffmpeg:  # as with a libsndfile built without MP3 support
        real_info = sf.info
        monkeypatch.setattr(io.sf, "info", lambda f, *a, **kw: (_ for _ in ()).throw(
            sf.LibsndfileError(1, "Format not recognised")) if f.endswith(".mp3") else real_info(f, *a, **kw))
    info = audio_info(mp3)
    assert info.decoder == ("ffmpeg" if force_ffmpeg else info.decoder)
    assert info.sample_rate == 44100 and info.channels == 2
    assert abs(info.frames - len(x)) < 0.1 * 44100
    for ch in (0, 1):
        y, sr = read_audio(mp3, channel=ch)
        assert sr == 44100 and best_corr(x[:, ch], y) > 0.9
    assert select_channel(mp3) == 0


@needs_ffmpeg
def test_ffmpeg_bad_files(tmp_path, m4a_file):
    (tmp_path / "notes.m4a").write_text("not audio at all\n" * 50)
    with pytest.raises(AudioError, match="notes.m4a: not readable as audio by ffprobe") as e:
        audio_info(tmp_path / "notes.m4a")
    assert not isinstance(e.value, DecoderMissingError)
    data = m4a_file.read_bytes()
    (tmp_path / "cut.m4a").write_bytes(data[: len(data) // 2])  # index (moov) is at the end: lost
    with pytest.raises(AudioError, match="cut.m4a"):
        read_audio(tmp_path / "cut.m4a")


@pytest.mark.parametrize("missing", ["ffmpeg", "ffprobe"])
def test_missing_ffmpeg_raises_decoder_missing(tmp_path, monkeypatch, missing):
    p = tmp_path / "call.m4a"
    p.write_bytes(b"\x00\x00\x00\x18ftypM4A " + bytes(200))  # libsndfile rejects it either way
    real_which = shutil.which
    monkeypatch.setattr(io.shutil, "which", lambda name, *a, **kw: None if name == missing
                        else real_which(name, *a, **kw))
    if missing == "ffmpeg":  # ffprobe may be absent too here; the header is given, decoding needs ffmpeg
        info = AudioInfo(str(p), 44100, 1, 44100, "M4A", "aac", "ffmpeg")
        with pytest.raises(DecoderMissingError) as e:
            list(iter_blocks(p, info=info))
    else:
        with pytest.raises(DecoderMissingError) as e:
            read_audio(p)
    msg = str(e.value)
    assert "call.m4a" in msg and "M4A" in msg and missing in msg and "apt-get install ffmpeg" in msg
    assert isinstance(e.value, AudioError) and e.value.path == str(p)


# ---------------------------------------------------------------- real recordings


def real_file(data_dir: Path, rel: str) -> Path:
    p = data_dir / rel
    if not p.is_file():
        msg = f"real recording {p} not found in the data folder"
        if os.environ.get("SONOTYPE_REQUIRE_DATA") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    return p


@pytest.mark.realdata
def test_real_orca_whistle_auto_channel(data_dir):
    p = real_file(data_dir, "orca-calls/whistles/SW1a_221111_8m35.wav")
    info = audio_info(p)
    assert info.channels == 2 and info.sample_rate == 48000
    rms = [np.sqrt(np.mean(read_audio(p, channel=c)[0].astype(np.float64) ** 2)) for c in (0, 1)]
    assert rms[0] < 0.01 * rms[1]  # channel 0 nearly silent
    assert select_channel(p) == 1 and open_recording(p).channel == 1


@pytest.mark.realdata
def test_real_dolphin_96k_24bit(data_dir):
    p = real_file(data_dir, "dolphin-clips/silbido_FB272_3_04.wav")
    info = audio_info(p)
    assert (info.sample_rate, info.channels, info.subtype, info.format) == (96000, 1, "PCM_24", "WAV")
    assert info.duration_s == pytest.approx(4.27, abs=0.01)
    y, sr = read_audio(p)
    assert sr == 96000 and len(y) == info.frames
    assert np.isfinite(y).all() and np.abs(y).max() <= 1.0 and np.abs(y).max() > 0


@pytest.mark.realdata
def test_real_orca_flac(data_dir):
    folder = data_dir / "orca-calls" / "catalog-2018"
    flacs = sorted(folder.glob("*.flac"))
    if not flacs:
        real_file(data_dir, "orca-calls/catalog-2018/FO-S01.flac")  # skips / fails with the reason
    info = audio_info(flacs[0])
    assert info.format == "FLAC" and info.sample_rate == 44100
    y, sr = read_audio(flacs[0], channel=None)
    assert sr == 44100 and len(y) == info.frames and 0.4 < info.duration_s < 4
