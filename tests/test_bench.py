"""bench/gpu.py, the one-command GPU benchmark, run on the CPU with a tiny budget on tiny files: it trains each
target through src/train.py, reads back its figures, and measures the overhead ratio (nothing here is timed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests import data_files
from tests.conftest import ROOT


def test_gpu_benchmark_runs_end_to_end_on_cpu(tmp_path):
    data_files.write_mnist(tmp_path / "data")
    data_files.write_cifar10(tmp_path / "data")
    out = tmp_path / "gpu.jsonl"
    cmd = [sys.executable, str(ROOT / "bench" / "gpu.py"), "--device", "cpu", "--data-dir", str(tmp_path / "data"),
           "--epochs", "1", "--overhead-images", "256", "--out", str(out),
           "--override", "data.val_size=10", "data.download=false"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[0]["device"].startswith("CPU")
    runs = {r["experiment"]: r for r in rows if "experiment" in r}
    assert set(runs) == {"best_cifar10", "mnist_fast"}  # one budget each, tiny data: far from the target
    for r in runs.values():
        assert r["epochs"] == 1 and 0 <= r["test_acc"] <= 1 and r["reached"] == (r["test_acc"] >= r["target"])
        assert 0 < r["startup_s"] < r["total_s"] <= r["wall_s"]
    ratios = {r["arch"]: r for r in rows if "ratio" in r}
    assert set(ratios) == {"small", "mnist_fast"}
    for r in ratios.values():  # achieved FLOP/s can not be far above the measured convolution peak
        assert r["cnnlab_img_s"] > 0 and r["plain_img_s"] > 0 and 0 < r["peak_fraction"] < 1.5
