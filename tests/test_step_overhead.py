"""No host read of a tensor value per training step beyond what a plain loop with the same optimizer does: on a GPU
each read (`.item()`, `bool(t)`, `if t.any()`) is a sync that idles the device. Counted with a TorchDispatchMode on
the CPU, where the same reads dispatch `_local_scalar_dense`, through `bench/step_overhead.py`'s three paths."""

from __future__ import annotations

import pytest

from cnnlab.data import make_datamodule
from tests import data_files
from tests.test_bench import _bench

step_overhead = _bench("step_overhead")


def counts(overrides: list[str], data_dir, steps: int, names=("plain", "cnnlab")) -> dict[str, dict]:
    paths = step_overhead.Paths(overrides, "cpu")
    cfg = paths.config(steps, str(data_dir / "unused"))
    paths.data = make_datamodule(cfg.data, str(data_dir))
    return step_overhead.measure(paths, steps, repeats=0, names=names)


def test_the_default_run_reads_the_device_per_step_as_often_as_a_plain_loop(tmp_path):
    rows = counts([], tmp_path, steps=3)  # digits, the seed's arch, Adam: what `python src/train.py` trains
    assert rows["plain"]["host_reads_per_step"] > 0  # Adam reads its step counter (a CPU tensor) per parameter
    assert rows["cnnlab"]["host_reads_per_step"] == rows["plain"]["host_reads_per_step"]


def test_best_cifar10s_recipe_reads_the_device_per_step_as_often_as_a_plain_loop(tmp_path):
    """Lookahead every 5 steps, a per-step LR schedule, alternating flips, translations: still no host read."""
    data_files.write_cifar10(tmp_path)
    overrides = ["experiment=best_cifar10", "data.val_size=10", "data.batch_size=4", "data.download=false"]
    rows = counts(overrides, tmp_path, steps=5)
    assert rows["cnnlab"]["host_reads_per_step"] == rows["plain"]["host_reads_per_step"] == 0


def test_aten_ops_per_step_on_the_micro_network_stay_near_the_plain_loop(tmp_path):
    """Issue 20's micro network (average pooling + T, batch 32, Adam): Lightning's own loop adds 5 ops per step
    (the loss divided by the accumulation count and its gradient, a detach, a clone); cnnlab's metrics add 7."""
    paths = step_overhead.Paths(list(step_overhead.MICRO), "cpu")
    rows = step_overhead.measure(paths, 20, repeats=0)
    plain, bare, ours = (rows[name]["ops_per_step"] for name in ("plain", "bare", "cnnlab"))
    assert ours <= bare + 7 and ours <= plain + 12
    assert rows["cnnlab"]["host_reads_per_step"] == rows["plain"]["host_reads_per_step"]


@pytest.mark.parametrize("device_type, expected", [("cuda", {"fused": True}), ("cpu", {})])
def test_optimizers_use_fused_kernels_on_gpus(device_type, expected):
    import functools

    import torch

    from cnnlab.model.module import fused_kwargs

    assert fused_kwargs(functools.partial(torch.optim.SGD, lr=0.1), torch.device(device_type)) == expected
    assert fused_kwargs(functools.partial(torch.optim.RMSprop, lr=0.1), torch.device(device_type)) == {}
    chosen = functools.partial(torch.optim.Adam, lr=0.1, foreach=False)  # the config's choice stands
    assert fused_kwargs(chosen, torch.device(device_type)) == {}
