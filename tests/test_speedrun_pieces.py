"""The CIFAR-100 speedrun's pieces (issue 40), each doing what it claims: progressive resizing (training batches at
the scheduled side, validation at the images' own), the warm-up-stable-decay schedule's shape, ResNet-D's
shortcut, Muon's momentum warm-up; and their bad values refused in one sentence before training."""

from __future__ import annotations

import functools

import pytest
import pytorch_lightning as pl
import torch

from cnnlab.checks.errors import ArchError, ConfigError
from cnnlab.checks.fields import OptionError
from cnnlab.layers import build_network
from cnnlab.optim import muon
from cnnlab.run.build import build
from cnnlab.schedules import wsd
from tests.conftest import compose_train, train_plan

POOLED = "arch.layers=[{type:C,num_output:8,kernel_size:3,batch_norm:true},{type:GAP},{type:T}]"


class Sides(pl.Callback):
    """The side of every batch the model sees, by phase and global step."""

    def __init__(self):
        self.train, self.val = {}, set()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.train[trainer.global_step] = batch[0].shape[-1]

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self.val.add(batch[0].shape[-1])


def test_progressive_resizing_trains_at_the_scheduled_side_and_validates_at_the_images_own(tmp_path):
    plan = train_plan(tmp_path / "run", POOLED, "data.augment.sizes=[[0.25,4],[0.25,6],[0.5,8]]",
                      "trainer.max_epochs=2", "data.batch_size=128", "test=false")
    sides = Sides()
    run = build(plan, callbacks=[sides])
    run.trainer.fit(run.model, datamodule=run.datamodule)
    steps = [sides.train[s] for s in sorted(sides.train)]
    quarter = len(steps) // 4  # 2 epochs of 10 steps
    assert len(steps) == 20 and steps == [4] * quarter + [6] * quarter + [8] * (len(steps) - 2 * quarter)
    assert sides.val == {8}


def test_a_resolution_schedule_that_cannot_work_is_one_sentence_before_training(tmp_path):
    with pytest.raises(OptionError, match=r"data.augment.sizes = \[\[0.5, 4\], \[0.25, 8\]\]: the shares .* add up "
                                          "to 0.75"):
        compose_and_check(tmp_path, POOLED, "data.augment.sizes=[[0.5,4],[0.25,8]]")
    with pytest.raises(OptionError, match="data.augment.sizes = 'big'; expected"):
        compose_and_check(tmp_path, POOLED, "data.augment.sizes=big")
    with pytest.raises(ConfigError, match="side 12 is larger than the 8x8 images"):
        build(train_plan(tmp_path / "big", POOLED, "data.augment.sizes=[[0.5,12],[0.5,8]]"))
    with pytest.raises(ConfigError, match="at side 4 the layer list needs other weights than at 8x8 .* GAP"):
        build(train_plan(tmp_path / "flat", "data.augment.sizes=[[0.5,4],[0.5,8]]"))  # the seed's list: flatten
    assert not (tmp_path / "big" / "checkpoints").exists()


def compose_and_check(tmp_path, *overrides):
    from cnnlab.run.plans import check_train

    return check_train(compose_train(*overrides, f"paths.output_dir={tmp_path / 'run'}"))


def test_the_warmup_stable_decay_schedule_has_its_three_phases():
    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([weight], lr=1.0)
    schedule = wsd(optimizer, total_steps=100, warmup=0.1, cooldown=0.4, final=0.1)
    rates = []
    for _ in range(100):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert rates[0] == 0 and rates[5] == pytest.approx(0.5) and rates[10] == rates[59] == 1.0
    assert rates[80] == pytest.approx(0.1 + 0.9 * 0.5) and rates[99] == pytest.approx(0.1 + 0.9 / 40)
    assert all(a <= b for a, b in zip(rates[:10], rates[1:11])) and all(a >= b for a, b in zip(rates[60:], rates[61:]))


def test_a_schedule_whose_warmup_and_cooldown_overlap_is_refused(tmp_path):
    with pytest.raises(OptionError, match=r"scheduler.warmup \+ scheduler.cooldown = 1.1"):
        compose_and_check(tmp_path, "scheduler=wsd", "scheduler.warmup=0.5", "scheduler.cooldown=0.6")


@pytest.mark.parametrize("side", [16, 15])
def test_the_resnet_d_shortcut_pools_every_pixel_then_projects(side):
    block = [{"type": "R", "shortcut": "avgpool", "layers": [
        {"type": "C", "num_output": 8, "kernel_size": 3, "stride": 2, "batch_norm": True},
        {"type": "C", "num_output": 8, "kernel_size": 3, "batch_norm": True, "activation": None}]},
        {"type": "GAP"}, {"type": "T"}]
    net = build_network(block, (4, side, side), 3)
    shortcut = net.layers[0].shortcut
    assert [type(m).__name__ for m in shortcut] == ["AvgPool2d", "Conv2d", "BatchNorm2d"]
    assert shortcut[1].stride == (1, 1) and net.rows[0].shape == (8, 8, 8)
    x = torch.randn(2, 4, side, side)
    assert shortcut(x).shape == (2, 8, 8, 8) and net(x).shape == (2, 3)
    conv = build_network([{**block[0], "shortcut": "conv"}, *block[1:]], (4, side, side), 3).layers[0].shortcut
    assert conv[0].stride == (2, 2) and net.num_params == sum(p.numel() for p in net.parameters())
    with pytest.raises(ArchError, match="layer 0 \\(R\\): field 'shortcut' = 'maxpool' is not allowed; expected one "
                                        "of 'conv', 'avgpool'"):
        build_network([{**block[0], "shortcut": "maxpool"}, *block[1:]], (4, side, side), 3)


def test_the_classifier_is_muons_only_where_its_layer_says_so():
    layers = [{"type": "C", "num_output": 8, "kernel_size": 3}, {"type": "GAP"}]
    for field in (False, True):
        net = build_network([*layers, {"type": "T", "muon": field}], (3, 8, 8), 5)
        classifier = net.layers[-1].weight  # GAP flattens: T is the bare Linear
        assert (id(classifier) in {id(p) for p in net.matrix_weights()}) is field
        assert id(net.layers[0][0].weight) in {id(p) for p in net.matrix_weights()}  # the conv, either way
    with pytest.raises(ArchError, match="field 'muon' = 'yes'"):
        build_network([*layers, {"type": "T", "muon": "yes"}], (3, 8, 8), 5)


def test_muons_momentum_warms_up_linearly_and_its_count_is_checkpointed():
    weight = torch.nn.Parameter(torch.randn(4, 3))
    sgd = functools.partial(torch.optim.SGD, lr=0.1)
    optimizer = muon([{"params": [weight], "matrix": True}], other=sgd, momentum=0.95, momentum_warmup=0.5,
                     momentum_start=0.85, total_steps=20)
    group = optimizer.param_groups[0]
    seen = []
    for _ in range(12):
        weight.grad = torch.randn(4, 3)
        optimizer.step()
        seen.append(group["momentum"])
    assert seen[0] == pytest.approx(0.85) and seen[5] == pytest.approx(0.9) and seen[10:] == [0.95, 0.95]
    state = optimizer.state_dict()
    again = muon([{"params": [weight], "matrix": True}], other=sgd, momentum=0.95, momentum_warmup=0.5,
                 momentum_start=0.85, total_steps=20)
    again.load_state_dict(state)
    assert again.param_groups[0]["warm_step"] == 12
