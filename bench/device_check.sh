#!/usr/bin/env bash
# One short prepared check for a lent GPU (< 5 min on an H200): correctness of the torch front end + encoder
# on CUDA against the CPU path, then timings (encoder variants, end-to-end detect on CUDA, sonotype train
# windows/s on CUDA). Run from the repository root:  bash bench/device_check.sh
# Needs a Python with torch (CUDA build) and sonotype's dependencies: $PYTHON (default python3).
# SONOTYPE_DATA (optional): the real recordings; without them everything runs on synthetic audio.
set -euo pipefail
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD/src:$PWD/tests:$PWD/bench"
OUT=${OUT:-/tmp/sonotype-device-check}
mkdir -p "$OUT"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA GPU visible to torch'; print(torch.__version__, torch.cuda.get_device_name(0))"

echo "== 1. correctness on CUDA vs CPU (timeout 120 s)"
timeout 120 "$PY" - "$T" <<'PYEOF' | tee "$OUT/correctness.txt"
import sys, os, numpy as np, torch
from pathlib import Path
from helpers import placeholder_model, tone_with_gaps
from bench_detect import write_synthetic
from sonotype.models.checkpoint import load_model
from sonotype.models.embed import file_scores
from sonotype.features.frontend import PRESETS, file_windows
from sonotype.features.torch_frontend import iter_windows_torch
from sonotype.models.infer import Scorer, ScoreJob
tmp = Path(sys.argv[1])
wav = tmp / "s.wav"; write_synthetic(wav, 5 / 60)
files = [(wav, "dolphin", 48000.0)]
narw = Path(os.environ.get("SONOTYPE_DATA", "/nonexistent")) / "narw-upcalls/narw/NOPP6_EST_20090328_000000.wav"
if narw.exists():
    files.append((narw, "narw", 2000.0))
ok = True
for path, preset, sr in files:
    fe = PRESETS[preset]
    ref = file_windows(path, fe, sample_rate=sr)
    got = torch.cat([b.windows for b in iter_windows_torch(path, fe, sample_rate=sr, device="cuda", batch=4096)]).cpu().numpy()
    d = np.abs(got - ref)
    m = load_model(placeholder_model(tmp / f"{preset}.pt", frontend=fe))
    plain = file_scores(m, path, channel=0, sample_rate=sr)
    f32 = Scorer(m, device="cuda").file_scores(path, channel=0, sample_rate=sr)
    b16 = Scorer(m, device="cuda", bf16=True).file_scores(path, channel=0, sample_rate=sr)
    e32, e16 = np.abs(f32 - plain).max(), np.abs(b16 - plain).max()
    good = d.shape == (ref.shape[0],) + ref.shape[1:] and np.quantile(d, 0.99) < 1e-3 and d.max() < 0.05 and e32 < 1e-3 and e16 < 2e-2
    ok &= bool(good)
    print(f"{preset}: {len(ref)} windows; front end cuda vs numpy: p99 {np.quantile(d, 0.99):.1e} max {d.max():.1e}; "
          f"scores cuda fp32 vs cpu max {e32:.1e}; cuda bf16 vs cpu max {e16:.1e} -> {'OK' if good else 'FAIL'}")
m = load_model(placeholder_model(tmp / "d.pt"))
ws = [tone_with_gaps(tmp / f"{i}.wav", seconds=s, seed=i) for i, s in enumerate((3, 0.05, 7))]
many = list(Scorer(m, device="cuda", batch=50).score_many([ScoreJob(i, w, 0, 48000.0) for i, w in enumerate(ws)]))
e = max(float(np.abs(s - file_scores(m, w, channel=0, sample_rate=48000)).max(initial=0)) for (_, s), w in zip(many, ws))
print(f"score_many across files (cuda) vs per-file cpu: max {e:.1e} -> {'OK' if e < 1e-3 else 'FAIL'}")
ok &= e < 1e-3
print("CORRECTNESS", "OK" if ok else "FAIL")
PYEOF

echo "== 2. encoder + end-to-end timings (timeout 150 s)"
timeout 150 "$PY" bench/bench_gpu.py --device cuda --threads "$(nproc)" --minutes 10 --min-s 1 --compile \
    | tee "$OUT/bench_gpu.md" || echo "bench_gpu timed out or failed"

echo "== 3. sonotype detect --device cuda on 2 h of 48 kHz audio (timeout 120 s)"
timeout 120 "$PY" - "$T" <<'PYEOF' | tee "$OUT/detect_cuda.txt" || echo "detect timing timed out"
import sys, time
from pathlib import Path
from helpers import placeholder_model
from bench_detect import write_synthetic
from sonotype.runner.batch import detect_many
from sonotype.detection.regions import RegionRule
tmp = Path(sys.argv[1]); wav = tmp / "long.wav"
t0 = time.perf_counter(); write_synthetic(wav, 2.0); print(f"wrote 2 h in {time.perf_counter() - t0:.0f} s")
model = placeholder_model(tmp / "p.pt")
for bf16 in (False, True):
    s = detect_many([wav], model=model, db=f"sqlite:///{tmp}/r{int(bf16)}.db", rule=RegionRule(threshold=0.5),
                    device="cuda", bf16=bf16, progress=False, log=lambda _: None)
    print(f"detect_many cuda bf16={bf16}: {s.realtime_factor:,.0f}x real time ({s.wall_seconds:.1f} s, incl. hashing)")
PYEOF

echo "== 4. sonotype train windows/s, CPU vs CUDA (timeout 120 s)"
mkdir -p "$T/train"
"$PY" -c "from bench_detect import write_synthetic; from pathlib import Path; write_synthetic(Path('$T/train/a.wav'), 0.25)"
timeout 120 "$PY" bench/bench_train.py --data "$T/train" --preset dolphin --threads "$(nproc)" --max-windows 2048 \
    --cuda-windows 200000 | tee "$OUT/bench_train.md" || echo "bench_train timed out"
echo "results in $OUT"
