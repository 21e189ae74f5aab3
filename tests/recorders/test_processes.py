"""Several processes, killed processes, other hash seeds: the store stays whole and the same."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from recorders import Recorder, Store

ROOT = Path(__file__).resolve().parents[2]


def _worker(store: Path, start: int, stop: int, *, seed: str = "0",
            mode: str = "auto") -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.recorders.store_worker", str(store), str(start), str(stop),
         "--mode", mode],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_four_processes_recording_overlapping_calls(tmp_path: Path) -> None:
    store = tmp_path / "store"  # created by the racing workers themselves
    procs = [_worker(store, i * 50, i * 50 + 100, mode="record") for i in range(4)]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    with Store(store) as st:
        report = st.verify()
        assert report.ok and report.temp_files == 0
        assert len(st) == 250  # queries 0..249, overlaps recorded by two workers each
        assert report.blobs_checked == 250
    replay = Recorder(Store(store), mode="replay")
    for i in (0, 99, 100, 249):
        assert replay.call_sync("web_search", {"query": f"query {i}", "num_results": 3}).from_store


def test_kill_9_mid_record_leaves_every_finished_entry_readable(tmp_path: Path) -> None:
    store = tmp_path / "store"
    p = _worker(store, 0, 100_000, mode="record")
    assert p.stdout is not None
    done = [p.stdout.readline() for _ in range(300)]  # 300 calls finished, more under way
    time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)
    assert p.returncode == -signal.SIGKILL
    with Store(store) as st:
        report = st.verify()
        assert report.ok, report
        assert len(st) >= 300
        for line in done:
            assert st.load(line.strip()) is not None
        for key, _ in st.entries():  # every entry that exists is complete
            assert st.load(key) is not None


def test_same_calls_same_keys_and_blobs_under_other_hash_seeds(tmp_path: Path) -> None:
    listings = []
    for seed in ("1", "12345"):
        store = tmp_path / f"store-{seed}"
        p = _worker(store, 0, 40, seed=seed)
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        with Store(store) as st:
            blobs = {name: st.blobs.get(name) for name in st.blobs.names()}
            listings.append((out, [(k, e.blob, e.args) for k, e in st.entries()], blobs))
    assert listings[0] == listings[1]
