"""Crashes and numerics: a killed run resumes from last.ckpt where it stopped, with the same result; a NaN loss
stops the run with its epoch and step; the same seed gives the same metrics; checkpoints are written atomically."""

from __future__ import annotations

import os

import pytest
import torch

from tests.conftest import ROOT, run_script, train_in_process, train_plan

DETERMINISTIC = (
    "trainer.deterministic=true",
    "trainer.max_epochs=2",
    "arch=small",
    "checkpoint_every_n_steps=5",
    "callbacks.model_checkpoint.monitor=null",
)


def test_killed_run_resumes_mid_epoch_with_the_same_result(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    whole = train_in_process(tmp_path / "whole", *DETERMINISTIC)  # the kill itself needs a process of its own

    killed = run_script(
        "train.py",
        tmp_path / "killed",
        *DETERMINISTIC,
        "+callbacks.kill._target_=tests.faults.KillAtStep",
        "+callbacks.kill.step=27",
    )
    assert killed.returncode == -9  # SIGKILL: nothing ran after it
    last = tmp_path / "killed" / "checkpoints" / "last.ckpt"
    saved = torch.load(last, weights_only=True)
    assert saved["global_step"] == 25  # the step checkpoint before the kill, in the middle of epoch 1
    assert saved["epoch"] == 1 and not list(last.parent.glob("*.tmp*"))

    resumed = train_in_process(tmp_path / "resumed", *DETERMINISTIC, f"ckpt_path={last}")
    final = torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", weights_only=True)
    assert (
        final["global_step"]
        == torch.load(tmp_path / "whole" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    )
    for key in ("test/acc", "test/loss", "val/acc", "train_eval/loss"):
        assert resumed.results()[key] == pytest.approx(whole.results()[key], abs=1e-6), key


def test_same_seed_same_metrics(fit, trained_run):
    again = fit("trainer.max_epochs=2", "data.batch_size=256")  # trained_run's settings, in this process

    def metrics(run):  # every metric; wall times (time/...) differ between any two runs
        return {k: v for k, v in run.results().items() if not k.startswith("time/")}

    assert metrics(again) == metrics(trained_run) and len(metrics(again)) >= 12


def test_nan_loss_stops_with_epoch_step_and_advice(fit):
    from cnnlab.callbacks import NonFiniteLoss

    with pytest.raises(NonFiniteLoss) as stop:
        fit("optim=gd", "optim.lr=1e12", "model.reg=0", "trainer.max_epochs=3")
    message = str(stop.value)
    assert "the training loss became nan" in message or "the training loss became inf" in message
    assert "at epoch 0, in steps 1 to " in message and "learning rate" in message


def test_checkpoint_write_is_atomic(tmp_path):
    """Lightning writes a checkpoint to a temporary file and renames it: a failure while writing leaves the
    previous checkpoint whole (the property that makes a kill during a save harmless)."""
    from lightning_fabric.utilities.cloud_io import _atomic_save

    path = tmp_path / "last.ckpt"
    _atomic_save({"w": torch.ones(3)}, path)

    class Exploding:
        def __reduce__(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        _atomic_save({"w": torch.zeros(3), "boom": Exploding()}, path)
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.ones(3))
    assert os.listdir(tmp_path) == ["last.ckpt"]


def test_last_checkpoint_follows_every_epoch_even_without_improvement(fit):
    """Lightning >= 2.6 refreshes a save_last file only with a new best; cnnlab's last.ckpt must not lag."""
    # no batch norm and a zero learning rate: the weights, and so the validation accuracy, never change
    run = fit("optim.lr=0", "model.reg=0", "trainer.max_epochs=3", "trainer.limit_train_batches=2")
    best = torch.load(run.dir / "checkpoints" / "best.ckpt", weights_only=True)
    last = torch.load(run.dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert best["epoch"] == 0 and last["epoch"] == 2


def test_a_run_without_checkpointing_leaves_out_the_checkpoint_callbacks(tmp_path):
    """trainer.enable_checkpointing=false (as a search's trials run) drops the callbacks that write checkpoints, which
    Lightning refuses beside that flag, and keeps the others; the test uses the last weights."""
    from cnnlab.run.tasks import train

    plan = train_plan(tmp_path / "run", "trainer.enable_checkpointing=false", "callbacks=[default,ema]",
                      "trainer.max_epochs=1", "trainer.limit_train_batches=2")
    assert set(plan.callbacks) == {"ema"}
    assert "test/acc" in train(plan)
    assert not (tmp_path / "run" / "checkpoints").exists()
    with pytest.raises(ValueError, match="checkpoint_every_n_steps=5 writes checkpoints and trainer.enable_check"):
        train_plan(tmp_path / "other", "trainer.enable_checkpointing=false", "checkpoint_every_n_steps=5")
