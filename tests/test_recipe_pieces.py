"""The pieces the CIFAR-100 and FER2013 recipes are made of, each checked for doing what it claims: Muon on conv
kernels, width and depth multipliers with REPEAT blocks, mixup and cutmix, a weight EMA, ten-crop TTA."""

from __future__ import annotations

import copy
import functools

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from cnnlab.averaging import ema
from cnnlab.checks.errors import ArchError, ConfigError
from cnnlab.checks.fields import OptionError
from cnnlab.data import make_datamodule
from cnnlab.layers import build_network, parse_layers, resize
from cnnlab.layers.arch import read_arch
from cnnlab.model.mixing import Mixer
from cnnlab.model.module import LayerListClassifier
from cnnlab.model.options import Mixing, ModelOptions
from cnnlab.model.tta import vote
from cnnlab.optim import KernelMuon, muon
from tests.conftest import bare_trainer, compose_train

NET = [
    {"type": "C", "num_output": 8, "kernel_size": 3, "batch_norm": True},
    {"type": "C", "num_output": 8, "kernel_size": 3, "init": "dirac", "freeze_weights": True},
    {"type": "FC", "num_output": 16},
    {"type": "T"},
]
SGD = functools.partial(torch.optim.SGD, lr=0.05, momentum=0.9)
MUON = functools.partial(muon, other=SGD, lr=0.1, momentum=0.6, ns_steps=3)


def _model(tmp_path, layers=NET, optimizer=MUON, **options):
    dm = make_datamodule({"family": "digits", "batch_size": 64, "test_size": 360, "val_size": 180}, tmp_path)
    return LayerListClassifier(layers, {**dm.info.to_dict(), "config": {}}, optimizer=optimizer, **options), dm


# --- Muon -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_muon_steps_a_conv_kernel_as_torch_muon_steps_its_2d_matrix(layout):
    torch.manual_seed(0)
    kernel = torch.nn.Parameter(torch.randn(6, 4, 3, 3).contiguous(memory_format=layout))
    matrix = torch.nn.Parameter(kernel.detach().reshape(6, -1).clone())
    reference = torch.optim.Muon([matrix], lr=0.1, momentum=0.6, ns_steps=3, weight_decay=0.01)
    ours = KernelMuon([kernel], lr=0.1, momentum=0.6, ns_steps=3, weight_decay=0.01)
    for _ in range(3):
        grad = torch.randn(6, 4, 3, 3)
        kernel.grad = grad.contiguous(memory_format=layout)
        matrix.grad = grad.reshape(6, -1).clone()
        ours.step(), reference.step()
    assert torch.allclose(kernel.detach().reshape(6, -1), matrix.detach(), atol=1e-6)
    assert kernel.is_contiguous(memory_format=layout)  # updated in place, in its own layout
    assert not torch.allclose(kernel.detach().reshape(6, -1), torch.zeros(6, 36))


def test_muon_normalize_keeps_each_weight_at_a_fixed_norm():
    torch.manual_seed(0)
    kernel = torch.nn.Parameter(5 * torch.randn(8, 2, 3, 3))
    optimizer = KernelMuon([kernel], normalize=True, lr=0.2, momentum=0.0, weight_decay=0.0)
    norms = []
    for _ in range(4):
        kernel.grad = torch.randn_like(kernel)
        optimizer.step()
        norms.append(kernel.detach().norm().item())
    # normalised to sqrt(8) before each step, then one orthogonalised step of size 0.2 away from it
    assert all(abs(n - 8**0.5) < 0.2 * 8**0.5 for n in norms) and abs(norms[0] - 5 * 12**0.5) > 1


def test_muon_takes_c_and_fc_weights_and_the_other_rule_the_rest(tmp_path):
    model, _ = _model(tmp_path, bn_bias_lr_scale=4)
    optimizer = model.configure_optimizers()
    matrices, rest, shifts = optimizer.param_groups
    net = model.net.layers
    kernels = optimizer.optimizers[0].sources  # Muon's groups hold 2-D views of these very tensors
    assert {id(p) for p in kernels} == {id(net[0][0].weight), id(net[2][1].weight)}
    assert [p.data_ptr() for p in matrices["params"]] == [p.data_ptr() for p in kernels]
    assert matrices["lr"] == pytest.approx(0.1) and matrices["momentum"] == 0.6
    # biases, the T classifier and batch norm follow SGD with the seed's L2 penalty; frozen kernels nobody
    assert id(net[3].weight) in {id(p) for p in rest["params"]} and rest["weight_decay"] == pytest.approx(1e-3)
    assert shifts["lr"] == pytest.approx(0.05 * 4)
    assert id(net[1][0].weight) not in {id(p) for g in optimizer.param_groups for p in g["params"]}
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5)  # one schedule scales both rules
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.05, 0.025, 0.1])
    del schedule


def test_muon_state_round_trips_through_a_checkpoint(tmp_path):
    model, _ = _model(tmp_path)
    optimizer = model.configure_optimizers()
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,))

    def step():
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()

    step()
    saved_state = copy.deepcopy(optimizer.state_dict())  # as a checkpoint file holds it
    saved_weights = copy.deepcopy(model.state_dict())
    step()
    after_two = [p.detach().clone() for p in model.parameters()]
    model.load_state_dict(saved_weights)
    optimizer.load_state_dict(saved_state)  # the momentum of both rules comes back
    step()
    assert all(torch.equal(a, p) for a, p in zip(after_two, model.parameters()))


def test_muon_trains_with_lightning(tmp_path):
    model, dm = _model(tmp_path)  # a list without C or FC weights is refused by the plan (test_bad_input)
    trainer = bare_trainer(max_epochs=2)
    trainer.fit(model, datamodule=dm)
    assert trainer.callback_metrics["val/acc"] > 0.5  # 2 epochs on digits: far above chance (0.1)


def test_optim_muon_composes_into_one_optimizer(tmp_path):
    from hydra.utils import instantiate

    factory = instantiate(compose_train("optim=muon").optim)
    weight, bias = torch.nn.Parameter(torch.randn(4, 3)), torch.nn.Parameter(torch.zeros(4))
    optimizer = factory(params=[{"params": [weight], "matrix": True}, {"params": [bias]}], weight_decay=1e-3)
    assert [type(o).__name__ for o in optimizer.optimizers] == ["KernelMuon", "SGD"]
    assert optimizer.param_groups[0]["lr"] == 2e-3 and optimizer.param_groups[1]["lr"] == 0.05


# --- width, depth, REPEAT ---------------------------------------------------------------------------------------
def _raw(arch) -> list[dict]:
    from omegaconf import OmegaConf

    return read_arch(OmegaConf.to_container(arch, resolve=True)).raw


def test_width_scales_c_and_fc_to_multiples_of_8_and_keeps_t_and_whitening():
    cfg = compose_train("arch=cifar_fast", "arch.width=1.5")
    layers = _raw(cfg.arch)
    widths = [layer.get("num_output") for layer in layers if layer["type"] == "C"]
    assert widths == [24, 96, 96, 384, 384, 384, 384]  # the whitening stem keeps its 24 = 2 x 3 x 2 x 2 filters
    net = build_network(layers, (3, 32, 32), 100)
    assert net.rows[-1].shape == (100,) and "96 k3x3" in net.rows[1].args
    seed = _raw(compose_train("arch.width=0.3").arch)
    assert [layer.get("num_output") for layer in seed[:4]] == [16, 40, None, 80]  # 64 x 0.3 = 19.2 -> 16, ...


def test_repeat_unrolls_and_depth_multiplies_it():
    block = {"type": "REPEAT", "times": 2, "layers": [{"type": "C", "num_output": 8, "kernel_size": 3}, {"type": "BN"}]}
    layers = [block, {"type": "GAP"}, {"type": "T"}]
    assert [s.type for s in resize(parse_layers(layers))] == ["C", "BN", "C", "BN", "GAP", "T"]
    deeper = resize(parse_layers(layers), width=2, depth=1.5)
    assert [s.type for s in deeper] == ["C", "BN"] * 3 + ["GAP", "T"] and deeper[0]["num_output"] == 16
    net = build_network(layers, (1, 8, 8), 3)  # the table lists every unrolled layer
    assert [r.type for r in net.rows] == ["C", "BN", "C", "BN", "GAP", "T"]
    nested = [{"type": "R", "layers": [block]}, {"type": "T"}]
    assert len(resize(parse_layers(nested))[0]["layers"]) == 4  # unrolled inside a residual block too


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["arch.width=0"], "arch.width = 0"),
        (["arch.width=-1.5"], "arch.width = -1.5"),
        (["arch.width=wide"], "arch.width = 'wide'; expected a number > 0"),
        (["arch.width=true"], "arch.width = True"),
        (["arch.depth=2"], "arch.depth = 2, but the layer list has no REPEAT block"),
    ],
)
def test_bad_multipliers_are_one_sentence(overrides, message):
    with pytest.raises(ConfigError, match=message):
        _raw(compose_train(*overrides).arch)


def test_repeat_errors_name_the_nested_layer():
    with pytest.raises(ArchError, match=r"layer 0 \(REPEAT\): missing required field 'times'"):
        parse_layers([{"type": "REPEAT", "layers": [{"type": "BN"}]}, {"type": "T"}])
    with pytest.raises(ArchError, match=r"layer 0 \(REPEAT\) > layer 1 \(T\): the terminal layer cannot sit inside"):
        parse_layers([{"type": "REPEAT", "times": 2, "layers": [{"type": "BN"}, {"type": "T"}]}, {"type": "T"}])


# --- mixup and cutmix ------------------------------------------------------------------------------------------
def test_mixup_mixes_images_and_targets_by_one_weight():
    torch.manual_seed(0)
    x, y = torch.rand(8, 1, 6, 6), torch.arange(8) % 4
    mixed, target = Mixer(4, Mixing(alpha=0.4, share=1.0), None)(x, y)
    lam = target[torch.arange(8), y]
    assert target.shape == (8, 4) and torch.allclose(target.sum(1), torch.ones(8))
    assert torch.allclose(lam, lam[0].expand(8)) and 0 < lam[0] < 1
    assert torch.allclose(mixed, lam[0] * x + (1 - lam[0]) * x.roll(1, 0), atol=1e-6)


def test_cutmix_pastes_a_box_from_the_neighbour_and_weights_by_its_area():
    torch.manual_seed(3)
    x, y = torch.rand(8, 1, 16, 16), torch.arange(8) % 4
    mixed, target = Mixer(4, None, Mixing(alpha=1.0, share=1.0))(x, y)
    from_neighbour = (mixed == x.roll(1, 0)) & (mixed != x)
    area = from_neighbour[0].float().mean()
    assert 0 < area < 1 and torch.allclose(target[0, y[0]], 1 - area, atol=1e-6)


def test_mixing_shares_decide_how_many_batches_mix():
    x, y = torch.rand(4, 1, 6, 6), torch.arange(4)
    assert not Mixer(4, Mixing(alpha=0.2, share=0.0), Mixing(alpha=1.0, share=0.0))
    torch.manual_seed(0)
    mixer = Mixer(4, Mixing(alpha=0.2, share=0.25), Mixing(alpha=1.0, share=0.25))
    mixed = sum(mixer(x, y)[1].ndim == 2 for _ in range(400))
    assert 150 < mixed < 250  # half of the batches


def test_mixup_trains_on_mixed_targets_through_the_model(tmp_path):
    model, dm = _model(tmp_path, optimizer=SGD, mixup={"alpha": 1.0, "share": 1.0})
    with torch.no_grad():  # confident outputs, so that the loss depends on the targets
        model.net.layers[-1].weight.mul_(100)
    dm.setup()
    x, y = dm.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)
    torch.manual_seed(1)
    loss = model._step((x, y), "train")
    torch.manual_seed(1)
    mixed, target = model.mixer(x, y)
    assert target.ndim == 2 and 0.1 < target[0].max() < 0.9  # this seed mixes about evenly
    assert loss.item() == pytest.approx(F.cross_entropy(model(mixed), target).item(), rel=1e-5)
    assert loss.item() != pytest.approx(F.cross_entropy(model(x), y).item(), rel=1e-2)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"alpha": -1, "share": 0.5}, "model.mixup.alpha = -1"),
        ({"alpha": 0.2, "share": 1.5}, "model.mixup.share = 1.5"),
        ({"alpha": 0.2, "share": True}, "model.mixup.share = True"),
        ({"beta": 1}, "model.mixup.beta is not an option"),
        ("lots", "model.mixup = 'lots'"),
    ],
)
def test_bad_mixing_options_are_one_sentence(options, message):
    with pytest.raises(OptionError, match=message):
        ModelOptions.read({"mixup": options})


def test_mixing_shares_above_one_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="model.mixup.share \\+ model.cutmix.share = 1.5"):
        _model(tmp_path, mixup={"alpha": 0.2, "share": 0.75}, cutmix={"alpha": 1.0, "share": 0.75})


# --- weight EMA --------------------------------------------------------------------------------------------------
class _Record(pl.Callback):
    def __init__(self, into: list):
        self.into = into

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.into.append(pl_module.net.layers[-1].weight.detach().clone())


def test_ema_averages_without_moving_the_model_and_ends_on_the_average(tmp_path):
    model, dm = _model(tmp_path, layers=[{"type": "GAP"}, {"type": "T"}], optimizer=SGD, reg=0.0)
    seen = []
    averaging = ema(every=1, decay=0.5, power=0)
    trainer = bare_trainer(
        max_steps=4,
        limit_val_batches=0,
        callbacks=[averaging, _Record(seen)],
    )
    trainer.fit(model, datamodule=dm)
    average = seen[0]
    for k in range(1, 4):
        average = (average + seen[k]) / 2
        assert not torch.allclose(seen[k], seen[k - 1])  # the model trains on its own weights
    assert torch.allclose(model.net.layers[-1].weight, average, atol=1e-6)  # and ends on the average
    with pytest.raises(ConfigError, match="callbacks.ema.decay = 1"):
        ema(decay=1)
    with pytest.raises(ConfigError, match="callbacks.ema.jump = 'yes'"):
        ema(jump="yes")


# --- ten-crop TTA ------------------------------------------------------------------------------------------------
def test_crops_average_the_image_and_its_four_corner_shifts():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3), torch.nn.Flatten(), torch.nn.LazyLinear(4))
    x = torch.randn(2, 1, 8, 8)
    net(x)
    padded = F.pad(x, (2,) * 4, mode="reflect")
    views = [x] + [padded[..., dy : dy + 8, dx : dx + 8] for dy in (0, 4) for dx in (0, 4)]
    assert torch.allclose(vote(net, x, ("crops",)), sum(net(v) for v in views) / 5, atol=1e-6)
    ten = sum((net(v) + net(v.flip(3))) / 2 for v in views) / 5
    assert torch.allclose(vote(net, x, ("flip", "crops")), ten, atol=1e-6)
    with pytest.raises(ConfigError, match="one kind of shift at most"):
        ModelOptions.read({"tta": ["translate", "crops"]})
