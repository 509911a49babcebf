"""Scaling out: Hydra multirun sweeps with a summary, W&B offline, the SLURM launcher (DDP runs and DDP sweeps:
test_dashboards, which reads what they logged)."""

from __future__ import annotations

import os
import subprocess
import sys

from tests import wandb_records
from tests.conftest import ROOT, compose_train


def sweep(sweep_dir, *overrides, env=None):
    cmd = [sys.executable, "src/train.py", "-m", *overrides, f"hydra.sweep.dir={sweep_dir}"]
    env = {**os.environ, **(env or {}), "CNNLAB_DATA_DIR": str(sweep_dir.parent / "data")}
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def test_wandb_offline_logs_config_metrics_and_reports(train, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = train("logger=wandb", "arch=small", "debug=fast")
    assert run.returncode == 0, run.output[-3000:]
    (run_dir,) = (run.dir / "wandb").glob("offline-run-*")
    history, config = wandb_records.logged(next(run_dir.glob("run-*.wandb")))
    for key in (
        "train/loss",
        "val/err",
        "test/acc",
        "train_eval/err",
        "curves/_type",
        "confusion_matrix/_type",
        "classification_report/_type",
    ):
        assert key in history, key
    assert {"arch", "data", "optim", "trainer", "model", "seed"} <= config
    for name in ("arch_table.txt", "classification_report.txt", "curves.png", "confusion_matrix.png"):
        assert (run_dir / "files" / name).is_file(), name
    assert (run.dir / "metrics.csv").is_file()  # the CSV record stays


def test_wandb_online_without_an_account_is_refused_once_before_the_sweep(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    out = tmp_path / "sweep"
    cmd = [sys.executable, "src/train.py", "-m", "logger=wandb", "arch=small", "seed=1,2", "debug=fast",
           f"hydra.sweep.dir={out}"]
    proc = subprocess.run(cmd, cwd=ROOT, env={**env, "HOME": str(tmp_path)}, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.count("error: logger=wandb logs to W&B online, but no W&B account is configured") == 1
    assert "WANDB_MODE=offline" in proc.stderr and not list(out.glob("*/results.json"))


def test_slurm_launcher_config_composes():
    cfg = compose_train(
        "hydra/launcher=slurm", "trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2", return_hydra_config=True
    )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.gpus_per_node, launcher.tasks_per_node, launcher.nodes) == (4, 4, 2)
    assert cfg.trainer.strategy == "ddp"
