"""bench/gpu.py, the one-command GPU benchmark, run on the CPU with a tiny budget on tiny files: it trains each
target through src/train.py, reads back its figures, and measures the overhead ratio (nothing here is timed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests import data_files
from tests.conftest import ROOT


@pytest.mark.slow  # the GPU benchmark's rehearsal on the CPU: run it before taking the script to a GPU
def test_gpu_benchmark_runs_end_to_end_on_cpu(tmp_path):
    data_files.write_mnist(tmp_path / "data")
    data_files.write_cifar10(tmp_path / "data")
    out = tmp_path / "gpu.jsonl"
    cmd = [
        sys.executable,
        str(ROOT / "bench" / "gpu.py"),
        "--device",
        "cpu",
        "--data-dir",
        str(tmp_path / "data"),
        "--epochs",
        "1",
        "--overhead-images",
        "256",
        "--out",
        str(out),
        "--override",
        "data.val_size=10",
        "data.download=false",
    ]
    proc = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONWARNINGS": "ignore"}
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[0]["device"].startswith("CPU")
    runs = {r["experiment"]: r for r in rows if r.get("path") == "cnnlab"}
    assert set(runs) == {"best_cifar10", "mnist_fast"}  # one budget each, tiny data: far from the target
    for r in runs.values():
        assert r["epochs"] == 1 and 0 <= r["test_acc"] <= 1 and r["reached"] == (r["test_acc"] >= r["target"])
        assert 0 < r["startup_s"] < r["total_s"] <= r["wall_s"] and r["gpu_busy_pct"] is None  # no GPU here
    (plain,) = [r for r in rows if r.get("path") == "plain"]  # the same recipe in a hand-written loop
    assert plain["experiment"] == "best_cifar10" and plain["epochs"] == 1 and 0 <= plain["test_acc"] <= 1
    assert plain["fit_s"] > 0 and plain["cnnlab_fit_s / plain_fit_s"] > 0
    ratios = {r["arch"]: r for r in rows if "ratio" in r}
    assert set(ratios) == {"small", "mnist_fast"}
    for r in ratios.values():  # achieved FLOP/s can not be far above the measured convolution peak
        assert r["cnnlab_img_s"] > 0 and r["plain_img_s"] > 0 and 0 < r["peak_fraction"] < 1.5


def _bench(name: str):
    """A bench script imported as a module, so that its main() can be called with arguments."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_time_to_accuracy_plot_reads_run_directories(fit, tmp_path):
    run = fit("data.monitor_test=true", "trainer.max_epochs=2", "arch=small")  # what it reads, not what it learns
    out = tmp_path / "plot.png"
    rows = _bench("time_to_accuracy").main([str(run.dir), "--out", str(out), "--targets", "0.0", "1.01"])
    assert out.is_file() and len(rows) == 1
    results = run.results()
    assert rows[0]["final_test_acc"] == results["test/acc"] and rows[0]["total_s"] == results["time/total_s"]
    assert 0 < rows[0]["time_to_0_s"] <= results["time/total_s"]  # reached after the first epoch
    assert rows[0]["time_to_1.01_s"] is None  # never reached


def test_tta_views_benchmark_scores_the_validation_split(fit):
    run = fit("trainer.max_epochs=1")
    rows = _bench("tta_views").main([str(run.dir / "checkpoints" / "best.ckpt")])
    assert list(rows) == ["none", "flip", "flip+translate", "flip+crops"]
    assert rows["none"]["val_acc"] == round(run.results()["val/acc"], 4)  # the run's own validation, no views
    assert all(0 <= r["val_acc"] <= 1 and r["seconds"] > 0 for r in rows.values())


@pytest.mark.slow  # a minute: the agents themselves are tested in test_search_agents.py
def test_search_agents_benchmark_end_to_end(tmp_path):
    data_files.write_mnist(tmp_path / "data", n_train=200, n_test=40)
    record = _bench("search_agents").main(
        [
            "--data-dir",
            str(tmp_path / "data"),
            "--trials",
            "2",
            "--seeds",
            "0",
            "--train-size",
            "60",
            "--val-size",
            "40",
            "--final-epochs",
            "1",
            "--agents", "random", "tpe",
            "--variants", "epochs=", "seconds=search.fidelity=seconds search.seconds=1",
            "--work",
            str(tmp_path / "work"),
            "--out",
            str(tmp_path / "agents.png"),
        ]
    )
    assert set(record["studies"]) == {f"{a}/{v}" for a in ("random", "tpe") for v in ("epochs", "seconds")}
    assert (tmp_path / "agents.png").is_file()
    study = tmp_path / "work" / "random-none-seconds-0"  # a variant's overrides reach its studies only
    assert "search.fidelity=seconds" in next((study / ".hydra").glob("*/overrides.yaml")).read_text()
    assert "search.fidelity" not in next((study.parent / "random-none-epochs-0" / ".hydra").glob("*/overrides.yaml"))\
        .read_text()
    for name, curve in record["curves"].items():
        errors = curve["best_val_err"]
        assert len(errors) == 2 and errors[1] <= errors[0], name  # best so far never gets worse
    studies = record["studies"].values()  # at equal wall time (the quickest study's): never better than at the end
    assert all(s["best_val_err_at_equal_time_per_seed"][0] >= s["best_val_err_per_seed"][0] for s in studies)
    assert any(s["best_val_err_at_equal_time_per_seed"][0] == s["best_val_err_per_seed"][0] for s in studies)
    # scored on the 40 test images: a multiple of 1/40 (float32 apart)
    assert all(abs(40 * a["final_test_acc"] - round(40 * a["final_test_acc"])) < 1e-4
               for a in record["studies"].values())


def test_step_time_benchmark():
    rows = _bench("step_time").main(
        ["--arch", "small", "--input", "1", "8", "8", "--batch", "4", "8", "--repeats", "1"]
    )
    assert len(rows) == 4 and all(r["img_s"] > 0 for r in rows)


@pytest.mark.slow  # two fresh processes by design (each figure is a user's run): 15 s for a benchmark's rehearsal
def test_folder_decode_benchmark(tmp_path):
    from tests.test_folder import write_images

    write_images(tmp_path / "imgs", n_per_class=6, suffix=".jpg")
    record = _bench("folder_decode").main(["--root", str(tmp_path / "imgs"), "--workers", "1", "--decoder-sample", "5"])
    first, cached = record["workers_1"]["first"], record["workers_1"]["cached"]
    assert first["images"] == cached["images"] == 18 and first["uint8_bytes"] == 18 * 3 * 8 * 8
    assert record["decoders_one_core"]["pillow_img_s"] > 0


def test_zero_cost_proxies_score_what_their_papers_define():
    import torch
    from torch import nn

    zero_cost = _bench("zero_cost")
    torch.manual_seed(0)
    linear = nn.Linear(6, 3, bias=False)
    weight = linear.weight.detach().clone()
    # synflow of one linear map on an all-ones input: sum |W|, every weight made positive
    assert zero_cost.synflow(linear, (6,)) == pytest.approx(weight.double().abs().sum().item(), rel=1e-12)
    net = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 3))
    distinct, same = torch.randn(8, 6), torch.randn(1, 6).repeat(8, 1)
    # NASWOT: images with the same activation codes make a singular kernel; distinct codes a full-rank one
    assert zero_cost.naswot(net, same) == float("-inf") and zero_cost.naswot(net, distinct) > 0
    assert zero_cost.spearman([1, 2, 3, 4], [10, 20, 40, 30]) == pytest.approx(0.8)
