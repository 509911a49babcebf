"""Training recipes: per-step LR schedules, test-time flip averaging, channels_last, torch.compile checkpoints."""

from __future__ import annotations

import functools

import pytest
import torch

from cnnlab.data import make_datamodule
from cnnlab.model.module import LayerListClassifier
from cnnlab.schedules import one_cycle, warmup_linear
from tests.conftest import bare_trainer

SMALL = [{"type": "C", "num_output": 4, "kernel_size": 3}, {"type": "GAP"}, {"type": "T"}]


def test_warmup_linear_rises_then_decays_to_final():
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    sched = warmup_linear(opt, total_steps=100, warmup=0.1, final=0.0, start=0.0)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert max(lrs) == pytest.approx(1.0) and lrs[-1] < 0.02


def _fit(scheduler, tmp_path, **model_options):
    dm = make_datamodule({"family": "digits", "batch_size": 64, "test_size": 360, "val_size": 180}, tmp_path)
    model = LayerListClassifier(
        SMALL,
        {**dm.info.to_dict(), "config": {}},
        optimizer=functools.partial(torch.optim.SGD, lr=0.1),
        scheduler=scheduler,
        reg=0.0,
        **model_options,
    )
    trainer = bare_trainer(
        max_epochs=2,
        limit_train_batches=5,
        limit_val_batches=1,
    )
    trainer.fit(model, datamodule=dm)
    return trainer, model, dm


def test_per_step_schedules_get_the_run_length_and_step_every_batch(tmp_path):
    trainer, _, _ = _fit(functools.partial(one_cycle, max_lr=0.1, pct_start=0.25), tmp_path)
    config = trainer.lr_scheduler_configs[0]
    assert config.interval == "step" and config.scheduler.total_steps == 10
    assert config.scheduler.last_epoch == 10  # stepped after each of the 10 batches


def test_tta_flip_averages_the_mirror_image(tmp_path):
    trainer, model, dm = _fit(None, tmp_path, tta=["flip"], channels_last=True)
    x, y = dm.on_after_batch_transfer(next(iter(dm.val_dataloader())), 0)
    model.eval()
    with torch.no_grad():
        expected = torch.nn.functional.cross_entropy((model(x) + model(x.flip(3))) / 2, y)
        model.stats["test_"].reset()
        model._step((x, y), "test")
        assert model.stats["test_"].compute()[0] == pytest.approx(expected.item(), rel=1e-5)


def test_compiled_model_saves_plain_checkpoints(fit, tmp_path):
    from tests.test_train_cli import eval_in_process

    run = fit("arch=small", "model.compile=eager", "trainer.max_epochs=1", "trainer.limit_train_batches=3")
    keys = torch.load(run.dir / "checkpoints" / "best.ckpt", weights_only=True)["state_dict"]
    assert keys and not [k for k in keys if "_orig_mod" in k]
    evaluated = eval_in_process(tmp_path / "eval", f"ckpt_path={run.dir / 'checkpoints' / 'best.ckpt'}")
    assert evaluated["test/acc"] == pytest.approx(run.results()["test/acc"], abs=1e-6)
