"""What makes a GPU the bottleneck, checked on the CPU: one compiled graph per mode for a whole run, the data set kept
on the device when it fits (or a clear stop), and `trainer=gpu` set up as fast GPU trainers are."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch

from cnnlab.checks.errors import ConfigError
from cnnlab.data.batching import fits_on_device
from cnnlab.run.build import build
from cnnlab.run.lightning import quiet_lightning
from tests.conftest import compose_train, train_plan


class GraphCount(pl.Callback):
    """Dynamo's count of compiled graphs at the end of every epoch and of the test."""

    def __init__(self):
        self.seen: list[tuple[str, int, int]] = []

    def _record(self, loop: str, trainer: pl.Trainer) -> None:
        self.seen.append((loop, trainer.current_epoch, torch._dynamo.utils.counters["stats"]["unique_graphs"]))

    def on_train_epoch_end(self, trainer, pl_module):
        self._record("train", trainer)

    def on_validation_epoch_end(self, trainer, pl_module):
        self._record("val", trainer)

    def on_test_epoch_end(self, trainer, pl_module):
        self._record("test", trainer)


def test_a_compiled_network_compiles_once_for_training_and_once_for_evaluation(tmp_path):
    """No recompilation across epochs, nor between validation and test, whose batches differ in size (360 test
    images, 1,077 training images evaluated in batches of 1,000 and 77); dynamo's `eager` backend has the same
    guards as inductor, without the C++ compile."""
    quiet_lightning()
    torch._dynamo.reset()
    before = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    plan = train_plan(
        tmp_path / "run",
        "arch=small",
        "model.compile=eager",
        "trainer.max_epochs=3",
        "trainer.enable_progress_bar=false",
    ).replace(quiet=True)
    count = GraphCount()
    run = build(plan, callbacks=[count])
    run.trainer.fit(run.model, datamodule=run.datamodule)
    run.trainer.test(run.model, datamodule=run.datamodule, verbose=False)
    graphs = [n - before for _, _, n in count.seen]
    assert [loop for loop, _, _ in count.seen][-1] == "test" and len(count.seen) == 8  # sanity val, 3 x (train, val)
    assert graphs[2] == 2 and set(graphs[2:]) == {2}  # after the first epoch: nothing new, the test included


@pytest.mark.parametrize(
    "option, needed, free, kept",
    [("auto", 300, 1000, True), ("auto", 600, 1000, False), (True, 900, 1000, True), (False, 1, 1000, False)],
)
def test_data_on_device_keeps_what_fits(option, needed, free, kept):
    assert fits_on_device(option, needed, free, "cuda:0") is kept


def test_data_on_device_true_that_does_not_fit_names_both_sizes():
    with pytest.raises(ConfigError, match=r"needs 3.00 GiB on cuda:0, which has 2.00 GiB free; set data.on_device"):
        fits_on_device(True, 3 * 2**30, 2 * 2**30, "cuda:0")


def test_trainer_gpu_and_ddp_bring_bf16_and_channels_last():
    for preset in ("gpu", "ddp"):
        cfg = compose_train(f"trainer={preset}")
        assert (cfg.trainer.accelerator, cfg.trainer.precision, cfg.model.channels_last) == ("gpu", "bf16-mixed", True)
    cfg = compose_train("trainer=gpu", "experiment=best_cifar10", "trainer.precision=16-mixed")
    assert cfg.trainer.precision == "16-mixed" and cfg.trainer.max_epochs == 16 and cfg.model.channels_last
    cpu = compose_train("trainer=cpu")
    assert (cpu.trainer.precision, cpu.model.channels_last) == ("32-true", False)


def test_the_learning_rate_rule_for_another_batch_is_written_once():
    assert compose_train("experiment=best_cifar10").optim.lr == 0.75
    assert compose_train("experiment=best_cifar10", "data.batch_size=256").optim.lr == 0.375
    gpu = compose_train("experiment=best_cifar10_gpu")
    assert (gpu.data.batch_size, gpu.optim.lr, gpu.model.reg) == (1024, 1.5, 1.33e-3)
    assert (gpu.trainer.accelerator, gpu.trainer.precision, gpu.model.channels_last) == ("gpu", "bf16-mixed", True)


def test_the_on_device_choice_is_made_once_for_all_splits(monkeypatch):
    """Asked per loader, the second answer would count the splits the first one placed against the free memory."""
    from omegaconf import OmegaConf

    from cnnlab.data import make_datamodule

    dm = make_datamodule(OmegaConf.to_container(compose_train().data, resolve=True), "unused")
    dm.setup("fit")
    free = iter([10**12, 1])  # all the memory at the first question, none at a second one
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (next(free), 10**12))
    device = torch.device("cuda", 0)
    assert dm.source._keep_on_device(device) and dm.source._keep_on_device(device)
