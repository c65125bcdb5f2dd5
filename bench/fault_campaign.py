"""Fault campaign (issue 11): odd inputs, kill -9 during detect and cluster, two writers on one SQLite
file, a full disk, and a burst of mixed web requests; prints one markdown table.

Bounded and local: synthetic recordings and an untrained placeholder model in a temporary folder,
subprocesses of the real command line, a server on 127.0.0.1 only. Seeded (``--seed``). About 5
minutes on 2 cores; ``--quick`` about a minute (one kill of each kind, fewer requests).

    python bench/fault_campaign.py [--quick] [--kills 8] [--requests 300] [--seed 0] [--json out.json]

Exit status 0 when every row holds (regions lost = duplicated = 0, assignments complete and unique,
no 5xx other than the render cap's 503), 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import io
import json
import os
import random
import resource
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # helpers: placeholder_model, tone_with_gaps
CLI = [sys.executable, "-c", "import sys; from sonotype.cli import main; sys.exit(main())"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
       "PYTHONDONTWRITEBYTECODE": "1"}
CALLS = ((0.8, 1.6), (2.2, 3.0))
ROWS: list[dict] = []


def row(check: str, tried: str, expected: str, observed: str, ok: bool, **figures) -> bool:
    ROWS.append({"check": check, "tried": tried, "expected": expected, "observed": observed, "ok": bool(ok),
                 **figures})
    print(f"[{'ok' if ok else 'FAIL'}] {check}: {observed}", file=sys.stderr, flush=True)
    return bool(ok)


# ---------------------------------------------------------------------------- running the command line


def cli(argv: list[str], *, cwd: Path | None = None) -> tuple[int, str, str]:
    """``sonotype ARGV`` in this process (for input checks, where no process needs killing)."""
    from sonotype.cli import main
    out, err = io.StringIO(), io.StringIO()
    old = Path.cwd()
    try:
        if cwd:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = main(argv)
            except SystemExit as e:
                rc = e.code if isinstance(e.code, int) else 1
    finally:
        os.chdir(old)
    return int(rc or 0), out.getvalue(), err.getvalue()


def start(argv: list[str], **kw) -> subprocess.Popen:
    return subprocess.Popen([*CLI, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, **kw)


def finish(p: subprocess.Popen, timeout: float = 300) -> tuple[int, str, str]:
    out, err = p.communicate(timeout=timeout)
    return p.returncode, out, err


def run(argv: list[str], **kw) -> tuple[int, str, str]:
    return finish(start(argv, **kw))


# ---------------------------------------------------------------------------- reading a database


def connect(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True)


def region_keys(db: Path) -> Counter:
    """(file name, start sample, stop sample) of every region row, counted (a count of 2: a duplicate)."""
    con = connect(db)
    try:
        rows = con.execute("SELECT r.path, g.start_sample, g.stop_sample FROM regions g "
                           "JOIN recordings r ON r.id = g.recording_id").fetchall()
    finally:
        con.close()
    return Counter((Path(p).name, a, b) for p, a, b in rows)


def processed(db: Path) -> Counter:
    con = connect(db)
    try:
        return Counter(s for (s,) in con.execute("SELECT status FROM processed"))
    finally:
        con.close()


def compare_regions(ref: Counter, got: Counter) -> tuple[int, int, int]:
    """(lost, duplicated, spurious) region rows of ``got`` against the reference run."""
    lost = sum(1 for k in ref if k not in got)
    dup = sum(n - 1 for n in got.values() if n > 1)
    extra = sum(1 for k in got if k not in ref)
    return lost, dup, extra


def clusterings(db: Path) -> dict[tuple[str, str], dict[int, int]]:
    """(algorithm, params) -> {region id: cluster}, and a check that each region has one row only."""
    con = connect(db)
    try:
        out: dict = {}
        for rid, algo, params, cl in con.execute("SELECT region_id, algorithm, params, cluster FROM clusters"):
            d = out.setdefault((algo, params), {})
            d.setdefault(rid, []).append(cl)
        regions = {r for (r,) in con.execute("SELECT id FROM regions")}
    finally:
        con.close()
    return {k: (v, regions) for k, v in out.items()}


def partition(assign: dict[int, list[int]]) -> frozenset:
    groups: dict[int, set] = {}
    for r, cls in assign.items():
        groups.setdefault(cls[0], set()).add(r)
    return frozenset(frozenset(g) for g in groups.values())


def check_clusters(db: Path, ref: dict) -> tuple[int, int, int, int]:
    """(clusterings missing, regions without an assignment, regions with more than one, clusterings whose
    partition differs from the reference)."""
    got = clusterings(db)
    missing = sum(1 for k in ref if k not in got)
    unassigned = dup = differ = 0
    for k, (assign, regions) in got.items():
        unassigned += len(regions - set(assign))
        dup += sum(len(c) - 1 for c in assign.values() if len(c) > 1)
        if k in ref and partition(assign) != partition(ref[k][0]):
            differ += 1
    return missing, unassigned, dup, differ


# ---------------------------------------------------------------------------- the campaign


class Campaign:
    def __init__(self, work: Path, *, quick: bool, kills: int, requests: int, seed: int):
        self.work, self.quick, self.kills, self.requests = work, quick, kills, requests
        self.rng = random.Random(seed)
        self.files = 6 if quick else 8

    # -- setup
    def setup(self) -> None:
        import numpy as np
        from helpers import placeholder_model, tone_with_gaps

        from sonotype.models.checkpoint import load_model
        from sonotype.models.embed import file_scores
        self.tone = tone_with_gaps
        self.model = placeholder_model(self.work / "placeholder.pt")
        self.data = self.work / "data"
        wavs = [tone_with_gaps(self.data / f"rec{i:02d}.wav", seconds=4, seed=i, calls=CALLS)
                for i in range(self.files)]
        self.threshold = float(np.median(file_scores(load_model(self.model), wavs[0], channel=0,
                                                     sample_rate=48000)))

    def detect_args(self, db: Path, *paths) -> list[str]:
        return ["detect", *(str(p) for p in (paths or (self.data,))), "--model", str(self.model), "--db",
                f"sqlite:///{db}", "--threshold", repr(self.threshold), "--quiet"]

    def cluster_args(self, db: Path) -> list[str]:
        return ["cluster", "--db", f"sqlite:///{db}", "--map", "tsne", "--seed", "0", "--quiet"]

    # -- 1. inputs
    def inputs(self) -> None:
        w = self.work / "inputs"
        kill = w / "kill"
        for i in range(2):
            self.tone(kill / f"f{i}.wav", seconds=3, seed=i, calls=CALLS)
        db = w / "spell.db"
        args = lambda *p: self.detect_args(db, *p)
        rcs = [cli(args("kill/"), cwd=w)[0], cli(args(str(kill.resolve()) + "/"))[0], cli(args("."), cwd=kill)[0],
               cli(args(".", str(kill), "../kill/f0.wav"), cwd=kill)[0]]
        con = connect(db)
        n_rec, n_done = (con.execute("SELECT COUNT(*) FROM recordings").fetchone()[0],
                         con.execute("SELECT COUNT(*) FROM processed WHERE status = 'done'").fetchone()[0])
        con.close()
        row("path spellings", "`kill/`, `/abs/kill/`, `.` (inside), all three at once; 2 files",
            "one recording and one result per file", f"exit {rcs}; {n_rec} recordings, {n_done} done",
            rcs == [0] * 4 and n_rec == 2 and n_done == 2)

        table = w / "events.csv"
        table.write_text("filename,start,end\nF0.wav,1.0,2.0\nf_1.wav,1,2\n")
        rc, _, err = cli(["evaluate-events", "--db", f"sqlite:///{db}", "--annotations", str(table)])
        row("annotation names", "`F0.wav`, `f_1.wav` for f0.wav, f1.wav", "exit 2, one line naming them",
            f"exit {rc}: {err.strip()[:90]}...",
            rc == 2 and "'F0.wav'" in err and len(err.strip().splitlines()) == 1)

        bad = [["detect", "x", "--model", "m", "--threshold", "nan"], ["detect", "x", "--model", "m", "--batch", "0"],
               ["cluster", "--percentile", "101"], ["serve", "--port", "70000"], ["serve", "--max-renders", "0"],
               ["export", "--format", "csv", "--out", "o.csv", "--gap", "-0.1"], ["train", "x", "--out", "o.pt",
                                                                                  "--epochs", "0"]]
        good = 0
        for argv in bad:
            rc, _, err = cli(argv)
            good += rc == 2 and len(err.strip().splitlines()) == 1 and "expected" in err and "Traceback" not in err
        row("bad options", f"{len(bad)} (NaN threshold, batch 0, percentile 101, port 70000, 0 renders, ...)",
            "exit 2, one line naming the value", f"{good}/{len(bad)} as expected", good == len(bad))

        foreign = w / "theirs.db"
        con = sqlite3.connect(foreign)
        con.execute("CREATE TABLE birds (name TEXT)")
        con.commit()
        con.close()
        digest = hashlib.sha256(foreign.read_bytes()).hexdigest()
        cmds = [["export", "--format", "csv", "--out", str(w / "o.csv")], ["search", "1"], ["cluster"],
                ["evaluate-events", "--annotations", str(table)], ["export-labels", "--out", str(w / "l.csv")]]
        good = 0
        for argv in cmds:
            rc1, _, e1 = cli([*argv, "--db", f"sqlite:///{w / 'typo.db'}"])
            rc2, _, e2 = cli([*argv, "--db", f"sqlite:///{foreign}"])
            good += (rc1 == 2 and "no such database" in e1 and not list(w.glob("typo.db*")) and rc2 == 2
                     and "not a sonotype database" in e2 and hashlib.sha256(foreign.read_bytes()).hexdigest() == digest)
        row("read-only commands", f"{len(cmds)} commands x (missing, foreign) database", "exit 2; nothing created "
            "or changed", f"{good}/{len(cmds)} as expected", good == len(cmds))

        odd = w / "odd"
        self.tone(odd / "good.wav", seconds=3, seed=1, calls=CALLS)
        raw = self.tone(w / "c.wav", seconds=3, seed=2).read_bytes()
        (odd / "cut.wav").write_bytes(raw[:len(raw) // 2])
        fast = bytearray(self.tone(w / "f.wav", seconds=3, seed=3).read_bytes())
        fast[24:32] = struct.pack("<II", 2_147_483_647, 0xFFFFFFFE)
        (odd / "fast.wav").write_bytes(bytes(fast))
        os.symlink("gone.wav", odd / "dangling.wav")
        os.symlink("self.wav", odd / "self.wav")
        os.symlink(".", odd / "loop")
        (odd / "empty").mkdir()
        rc, out, err = cli(self.detect_args(w / "odd.db", odd, odd / "empty"))
        named = [("cut.wav", "truncated"), ("fast.wav", "2,147,483,647 Hz"), ("dangling.wav", "dangling"),
                 ("self.wav", "loop"), ("loop", "loop"), ("empty", "no audio")]
        lines = [ln for ln in out.splitlines() if ln.startswith("  ")]
        found = sum(any(f"{odd / n}:" in ln and s in ln for ln in lines) for n, s in named)
        row("odd audio", "truncated WAV, header rate 2^31-1 Hz, dangling and looping symlinks, empty folder",
            "each named in the summary; the good files processed", f"exit {rc}; {found}/{len(named)} named; "
            f"done {processed(w / 'odd.db')['done']}/2", rc == 1 and found == len(named) and
            processed(w / "odd.db")["done"] == 2 and "Traceback" not in out + err)
        rc, _, err = cli(self.detect_args(w / "none.db", odd / "empty"))
        row("empty folder", "detect over a folder with no audio", "exit 2, says so, no database",
            f"exit {rc}; database {'created' if (w / 'none.db').exists() else 'not created'}",
            rc == 2 and "no audio files" in err and not (w / "none.db").exists())

    # -- 2. reference runs
    def reference(self) -> None:
        self.ref_db = self.work / "ref.db"
        t0 = time.monotonic()
        p = start(self.detect_args(self.ref_db))
        self.t_db = None
        while p.poll() is None:
            if self.t_db is None and self.ref_db.exists():
                self.t_db = time.monotonic() - t0
            time.sleep(0.01)
        self.t_detect = time.monotonic() - t0
        rc, _, err = finish(p)
        if rc != 0:
            raise SystemExit(f"the reference detect run failed ({rc}): {err[-2000:]}")
        self.t_db = self.t_db or 0.0
        self.ref_regions = region_keys(self.ref_db)
        self.ref_size = self.ref_db.stat().st_size + sum(f.stat().st_size for f in
                                                          self.work.glob("ref.db-*") if f.is_file())
        self.ref_cluster_db = self.work / "ref-cluster.db"
        shutil.copy(self.ref_db, self.ref_cluster_db)
        t0 = time.monotonic()
        rc, _, err = run(self.cluster_args(self.ref_cluster_db))
        self.t_cluster = time.monotonic() - t0
        if rc != 0:
            raise SystemExit(f"the reference cluster run failed ({rc}): {err[-2000:]}")
        self.ref_clusters = clusterings(self.ref_cluster_db)
        print(f"reference: {sum(self.ref_regions.values())} regions in {self.files} files, detect {self.t_detect:.1f} s "
              f"(database from {self.t_db:.1f} s), cluster {self.t_cluster:.1f} s, "
              f"{len(self.ref_clusters)} clusterings", file=sys.stderr, flush=True)

    # -- 3. kill -9 during detect
    def kill_detect(self) -> None:
        lost = dup = extra = landed = bad_rc = 0
        points = []
        for i in range(self.kills):
            db = self.work / f"kill-detect-{i}.db"
            p = start(self.detect_args(db))
            while p.poll() is None and not db.exists():
                time.sleep(0.005)
            delay = self.rng.uniform(0.0, max(0.05, self.t_detect - self.t_db))
            time.sleep(delay)
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
                landed += 1
                points.append(f"{delay:.2f}")
            p.communicate()
            rc, _, _ = run(self.detect_args(db))
            bad_rc += rc != 0
            lo, du, ex = compare_regions(self.ref_regions, region_keys(db))
            st = processed(db)
            lost, dup, extra = lost + lo, dup + du, extra + ex
            bad_rc += st != Counter({"done": self.files})
        row("kill -9 during detect", f"{self.kills} seeded points ({landed} landed, s after the database "
            f"appeared: {', '.join(points)}), then re-run", "re-run completes; regions = reference",
            f"lost {lost}, duplicated {dup}, spurious {extra}; bad re-runs {bad_rc}",
            lost == dup == extra == bad_rc == 0, lost=lost, duplicated=dup)
        self.lost, self.dup = lost, dup

    # -- 4. kill -9 during cluster
    def kill_cluster(self) -> None:
        missing = unassigned = dup = differ = landed = bad_rc = 0
        for i in range(self.kills):
            db = self.work / f"kill-cluster-{i}.db"
            shutil.copy(self.ref_db, db)
            p = start(self.cluster_args(db))
            time.sleep(self.rng.uniform(0.3, 1.0) * self.t_cluster)
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
                landed += 1
            p.communicate()
            rc, _, _ = run(self.cluster_args(db))
            bad_rc += rc != 0
            m, u, d, f = check_clusters(db, self.ref_clusters)
            missing, unassigned, dup, differ = missing + m, unassigned + u, dup + d, differ + f
            lo, du, ex = compare_regions(self.ref_regions, region_keys(db))
            dup += du + ex + lo
        row("kill -9 during cluster", f"{self.kills} seeded points ({landed} landed), then re-run",
            "every region in each clustering once; same partitions as the reference",
            f"clusterings missing {missing}, regions unassigned {unassigned}, assigned twice {dup}, "
            f"partitions differing {differ}; bad re-runs {bad_rc}",
            missing == unassigned == dup == differ == bad_rc == 0, unassigned=unassigned, duplicated=dup)
        self.cluster_bad = missing + unassigned + dup

    # -- 5. two writers
    def two_writers(self) -> None:
        db = self.work / "two.db"
        a, b = start(self.detect_args(db)), start(self.detect_args(db))
        (ra, _, ea), (rb, _, eb) = finish(a), finish(b)
        lost, dup, extra = compare_regions(self.ref_regions, region_keys(db))
        st = processed(db)
        note = "" if ra == rb == 0 else f"; errors: {(ea or eb).strip().splitlines()[-1][:80] if (ea or eb) else ''}"
        if ra or rb:  # one refused (busy): a re-run must still complete exactly once
            rc, _, _ = run(self.detect_args(db))
            lost, dup, extra = compare_regions(self.ref_regions, region_keys(db))
            st = processed(db)
            note += f"; re-run exit {rc}"
        row("two concurrent detect writers", "two `detect` over the same folder into one SQLite file",
            "both finish (or one refuses clearly); regions = reference", f"exit {ra}, {rb}; lost {lost}, "
            f"duplicated {dup}, spurious {extra}; done {st['done']}/{self.files}{note}",
            lost == dup == extra == 0 and st == Counter({"done": self.files}), lost=lost, duplicated=dup)
        self.lost += lost
        self.dup += dup

    # -- 6. full disk
    def full_disk(self) -> None:
        mnt = self.work / "small-disk"
        mnt.mkdir()
        limit = max(32 * 1024, self.ref_size // 2)
        mounted = False
        why = ""
        if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("mount"):
            kb = max(64, limit // 1024)
            r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kb}k", "tmpfs", str(mnt)],
                               capture_output=True, text=True, check=False)
            mounted = r.returncode == 0
            why = "" if mounted else f"mount refused ({r.stderr.strip()[:60]})"
        else:
            why = "not root: cannot mount"
        db = mnt / "full.db"
        try:
            if mounted:
                how = f"tmpfs of {max(64, limit // 1024)} KiB"
                rc, out, err = run(self.detect_args(db))
            else:
                how = f"RLIMIT_FSIZE {limit // 1024} KiB ({why})"

                def small():
                    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail (EFBIG)
                    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
                rc, out, err = finish(start(self.detect_args(db), preexec_fn=small))
            msg = (err.strip() or out.strip()).splitlines()[-1] if (err.strip() or out.strip()) else ""
            clear = rc != 0 and "Traceback" not in err and any(w in (out + err).lower() for w in
                                                                ("full", "space", "too large", "disk"))
            if mounted:
                subprocess.run(["mount", "-o", "remount,size=64m", str(mnt)], check=True)
            rc2, _, _ = run(self.detect_args(db))
            lost, dup, extra = compare_regions(self.ref_regions, region_keys(db))
            st = processed(db)
            row("full disk", f"detect into a {how}, then again with space",
                "first run fails with a clear error; the re-run completes exactly once",
                f"first exit {rc}: {msg[:110]!r}; re-run exit {rc2}; lost {lost}, duplicated {dup}, "
                f"spurious {extra}; done {st['done']}/{self.files}",
                clear and rc2 == 0 and lost == dup == extra == 0 and st == Counter({"done": self.files}),
                lost=lost, duplicated=dup)
            self.lost += lost
            self.dup += dup
        finally:
            if mounted:
                subprocess.run(["umount", str(mnt)], capture_output=True, check=False)

    # -- 7. web requests
    def web(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        db = self.ref_cluster_db
        server = start(["serve", "--db", f"sqlite:///{db}", "--host", "127.0.0.1", "--port", str(port),
                        "--max-renders", "2", "--audio-root", str(self.work)])
        try:
            deadline = time.monotonic() + 90
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1):
                        break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit(f"the server did not start: {server.communicate()[1][-2000:]}")
                    time.sleep(0.1)
            counts, fives, unavailable, errors, leaks = self._fire(port)
            alive = self._get(port, "GET", "/api/info")[0] == 200
            try:
                with open(f"/proc/{server.pid}/status") as f:
                    hwm = next((ln.split()[1] for ln in f if ln.startswith("VmHWM")), "?")
                peak = f"; server peak RSS {int(hwm) // 1024} MiB" if hwm != "?" else ""
            except OSError:
                peak = ""
            shown = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
            row("web requests", f"{self.requests} mixed valid/invalid requests, 16 at once, on 127.0.0.1 "
                "(render cap 2)", "no 5xx except 503 from the render cap; no absolute path shown",
                f"{shown}; 5xx {fives}, 503 {unavailable}, connection errors {errors}, absolute paths {leaks}; "
                f"alive after: {alive}{peak}", fives == errors == leaks == 0 and alive,
                five_xx=fives, unavailable=unavailable)
            self.fives = fives + errors
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.communicate()

    @staticmethod
    def _get(port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        con = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            con.request(method, path, body=body, headers=headers or {})
            r = con.getresponse()
            return r.status, r.read()
        finally:
            con.close()

    def _fire(self, port: int):
        con = connect(self.ref_cluster_db)
        recs = [r for (r,) in con.execute("SELECT id FROM recordings")]
        regs = [r for (r,) in con.execute("SELECT id FROM regions")]
        con.close()
        status, body = self._get(port, "GET", "/api/clusterings")
        cids = [c["id"] for c in json.loads(body)] if status == 200 else ["x"]
        rng = self.rng
        big = "A" * 6000
        valid = [lambda: ("GET", "/api/info"), lambda: ("GET", "/api/recordings?limit=50"),
                 lambda: ("GET", f"/api/recordings/{rng.choice(recs)}"),
                 lambda: ("GET", f"/api/recordings/{rng.choice(recs)}/regions"),
                 lambda: ("GET", f"/api/regions/{rng.choice(regs)}"), lambda: ("GET", "/api/runs"),
                 lambda: ("GET", f"/api/clusterings/{rng.choice(cids)}"), lambda: ("GET", "/api/runs/1/map"),
                 lambda: ("GET", "/"), lambda: ("GET", f"/recordings/{rng.choice(recs)}"), lambda: ("GET", "/clusters"),
                 lambda: ("GET", f"/regions/{rng.choice(regs)}"), lambda: ("GET", "/static/common.js"),
                 lambda: ("GET", f"/api/regions/{rng.choice(regs)}/audio.wav?pad=0.1"),
                 lambda: ("GET", f"/api/recordings/{rng.choice(recs)}/audio.wav?start=0.5&stop=2"),
                 lambda: ("HEAD", f"/api/recordings/{rng.choice(recs)}/audio.wav"),
                 lambda: ("GET", f"/api/regions/{rng.choice(regs)}/spectrogram.png"),
                 lambda: ("GET", (f"/api/recordings/{rng.choice(recs)}/spectrogram.png?start=0&stop=4&width=4000"
                                  "&height=1024")),
                 lambda: ("GET", f"/api/regions/{rng.choice(regs)}/similar?k=3")]
        invalid = [lambda: ("GET", "/api/recordings/999999"), lambda: ("GET", "/api/recordings/-1"),
                   lambda: ("GET", "/api/recordings/abc"), lambda: ("GET", f"/api/regions/{2 ** 70}"),
                   lambda: ("GET", f"/api/recordings/{recs[0]}/audio.wav?start=nan"),
                   lambda: ("GET", f"/api/recordings/{recs[0]}/audio.wav?start=3&stop=1"),
                   lambda: ("GET", f"/api/recordings/{recs[0]}/audio.wav?start=99999"),
                   lambda: ("GET", f"/api/recordings/{recs[0]}/spectrogram.png?width=99999"),
                   lambda: ("GET", f"/api/recordings/{recs[0]}/spectrogram.png?floor=10&ceiling=-10"),
                   lambda: ("GET", f"/api/recordings?q={big}"), lambda: ("GET", f"/api/recordings?limit={big[:300]}"),
                   lambda: ("GET", "/api/recordings/1/../../../../etc/passwd"), lambda: ("GET", "/static/..%2f..%2fx"),
                   lambda: ("GET", "/api/clusterings/%27%20OR%201=1%20--"), lambda: ("GET", "/nope"),
                   lambda: ("DELETE", "/api/recordings/1"),
                   lambda: ("PUT", f"/api/regions/{rng.choice(regs)}/label", b'{"label": "noise"}'),
                   lambda: ("PUT", f"/api/regions/{rng.choice(regs)}/note", b"{not json"),
                   lambda: ("POST", "/api/clusterings/x/merge", json.dumps({"into": big}).encode()),
                   lambda: ("GET", f"/api/regions/{regs[0]}/audio.wav", None, {"Range": "bytes=999999999-"}),
                   lambda: ("GET", "/api/info", None, {"Host": "evil.example"}),
                   lambda: ("GET", f"/api/runs/1/map?method={big[:200]}")]
        plan = [rng.choice(valid if rng.random() < 0.6 else invalid)() for _ in range(self.requests)]

        def one(req):
            method, path, body, headers = (*req, None, None)[:4]
            try:
                return self._get(port, method, path, body, headers)
            except (OSError, http.client.HTTPException) as e:
                return -1, repr(e).encode()

        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(one, plan))
        counts = Counter(f"{s // 100}xx" if s > 0 else "error" for s, _ in answers)
        fives = sum(1 for s, _ in answers if s >= 500 and s != 503)
        unavailable = sum(1 for s, _ in answers if s == 503)
        errors = counts.pop("error", 0)
        leaks = sum(1 for s, b in answers if str(self.work).encode() in b)
        for (s, b), req in zip(answers, plan):
            if (s >= 500 and s != 503) or str(self.work).encode() in b:
                print(f"  {s} {req[0]} {req[1][:80]}: {b[:200]!r}", file=sys.stderr)
        return counts, fives, unavailable, errors, leaks


def table() -> str:
    lines = ["| # | check | tried | expected | observed | ok |", "|---|---|---|---|---|---|"]
    for i, r in enumerate(ROWS, 1):
        cells = [str(i), r["check"], r["tried"], r["expected"], r["observed"], "yes" if r["ok"] else "**NO**"]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one kill of each kind, fewer files and requests (~1 min)")
    ap.add_argument("--kills", type=int, help="kill -9 points per command (default 8; --quick 1)")
    ap.add_argument("--requests", type=int, help="web requests (default 300; --quick 80)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="also write the rows and totals here")
    ap.add_argument("--keep", help="work in this folder and keep it (default: a temporary folder)")
    a = ap.parse_args(argv)
    kills = a.kills if a.kills is not None else (1 if a.quick else 8)
    requests = a.requests if a.requests is not None else (80 if a.quick else 300)
    t0 = time.monotonic()
    with contextlib.ExitStack() as stack:
        work = Path(a.keep) if a.keep else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="faults-")))
        work.mkdir(parents=True, exist_ok=True)
        c = Campaign(work.resolve(), quick=a.quick, kills=kills, requests=requests, seed=a.seed)
        c.setup()
        c.inputs()
        c.reference()
        c.kill_detect()
        c.kill_cluster()
        c.two_writers()
        c.full_disk()
        c.web()
    totals = {"regions_lost": c.lost, "regions_duplicated": c.dup, "cluster_assignment_faults": c.cluster_bad,
              "server_5xx": c.fives, "rows_failed": sum(not r["ok"] for r in ROWS),
              "seconds": round(time.monotonic() - t0, 1)}
    print(f"\nFault campaign ({'quick' if a.quick else 'full'}, seed {a.seed}, {kills} kills per command, "
          f"{requests} web requests, {totals['seconds']:.0f} s)\n")
    print(table())
    print(f"\nTotals: regions lost {c.lost}, duplicated {c.dup}; cluster assignment faults {c.cluster_bad}; "
          f"server 5xx (besides 503) {c.fives}; rows failed {totals['rows_failed']}/{len(ROWS)}")
    print("FAULTS-JSON " + json.dumps(totals))
    if a.json:
        Path(a.json).write_text(json.dumps({"rows": ROWS, "totals": totals}, indent=1))
    return 0 if totals["rows_failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
