"""The pieces of airbench's recipe, each as a named option any layer list or run can use: whitening and dirac
initialisation, scale-free batch norm, logit scaling, the BN-shift learning rate, lookahead, alternating flips,
reflect-padded translations and multi-view TTA. Each test checks that the option does what it claims."""

from __future__ import annotations

import functools

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from cnnlab.averaging import lookahead
from cnnlab.checks.errors import ArchError, ConfigError
from cnnlab.data import make_datamodule
from cnnlab.data.augment import alternating_flip, random_crop
from cnnlab.layers import build_network
from cnnlab.layers.init import WhiteningConv2d
from cnnlab.model.module import LayerListClassifier
from cnnlab.model.options import ModelOptions
from cnnlab.model.tta import vote
from cnnlab.schedules import one_cycle
from tests.conftest import bare_trainer

STEM = {
    "type": "C",
    "num_output": 24,
    "kernel_size": 2,
    "padding": "valid",
    "init": "whiten",
    "freeze_weights": True,
    "activation": None,
}


def _correlated_images(n: int = 400) -> torch.Tensor:
    """Images whose channels and neighbouring pixels are strongly correlated, as natural images are."""
    torch.manual_seed(0)
    base = torch.randn(n, 1, 16, 16)
    smooth = F.avg_pool2d(F.pad(base, (1, 1, 1, 1), mode="reflect"), 3, 1)
    return torch.cat([smooth, 0.8 * smooth + 0.2 * torch.randn_like(smooth), torch.randn_like(smooth)], 1)


def test_whitened_stem_output_covariance_is_identity_on_its_fitting_batch():
    net = build_network([STEM, {"type": "GAP"}, {"type": "T"}], (3, 16, 16), 10)
    x = _correlated_images()
    before = net.layers[0].weight.clone()
    assert net.needs_data_init and net.init_from_data(x) == 1
    conv = net.layers[0]
    assert isinstance(conv, WhiteningConv2d) and not torch.equal(conv.weight, before)
    out = F.conv2d(x, conv.weight)  # bias excluded: the whitening is in the weights
    flat = out.permute(0, 2, 3, 1).reshape(-1, 24).double()
    moment = flat.T @ flat / len(flat)
    # the first 12 filters whiten: uncorrelated outputs of unit second moment (eigenvalue / (eigenvalue + eps):
    # the eps damps only the faintest patch directions); the other 12 are their negatives
    white = moment[:12, :12]
    assert (white - torch.diag(white.diag())).abs().max() < 1e-4
    assert white.diag().min() > 0.9 and white.diag().max() < 1.0 + 1e-6 and white.diag()[:6].min() > 0.995
    assert torch.allclose(conv.weight[12:], -conv.weight[:12])
    # the raw patches were far from white: whitening did real work
    patches = x.unfold(2, 2, 1).unfold(3, 2, 1).permute(0, 2, 3, 1, 4, 5).reshape(-1, 12).double()
    correlation = torch.corrcoef(patches.T)
    assert (correlation - torch.eye(12, dtype=torch.double)).abs().max() > 0.5
    assert not conv.weight.requires_grad and conv.bias.requires_grad  # frozen weights, a trainable shift


def test_whitening_checks_its_width_and_reaches_layers_inside_the_net():
    with pytest.raises(ArchError, match=r"layer 0 \(C\): init: whiten .* num_output is 16: use 12 or 24"):
        build_network([{**STEM, "num_output": 16}, {"type": "T"}], (3, 16, 16), 10)
    # a whitening layer after another layer is fitted to what reaches it, not to the raw images
    deep = build_network(
        [
            {"type": "C", "num_output": 3, "kernel_size": 1, "activation": None},
            {**STEM, "num_output": 12},
            {"type": "GAP"},
            {"type": "T"},
        ],
        (3, 16, 16),
        10,
    )
    x = _correlated_images()
    deep.init_from_data(x)
    with torch.no_grad():
        inner = F.conv2d(deep.layers[0](x), deep.layers[1].weight)
    flat = inner.permute(0, 2, 3, 1).reshape(-1, 12).double()
    moment = flat.T @ flat / len(flat)
    assert (moment - torch.diag(moment.diag())).abs().max() < 1e-4 and moment.diag()[:4].min() > 0.99


def test_dirac_convolution_starts_as_the_identity():
    net = build_network(
        [{"type": "C", "num_output": 8, "kernel_size": 3, "init": "dirac", "activation": None}, {"type": "T"}],
        (5, 6, 6),
        2,
    )
    x = torch.randn(2, 5, 6, 6)
    with torch.no_grad():
        out = net.layers[0](x)
    assert torch.allclose(out[:, :5], x)  # the first five filters pass their channel through
    assert out[:, 5:].abs().sum() > 0  # the extra three keep PyTorch's random init
    assert torch.count_nonzero(net.layers[0].bias) == 0


def test_scale_free_batch_norm_and_logit_scale():
    layers = [
        {"type": "C", "num_output": 4, "kernel_size": 3, "activation": None},
        {"type": "BN", "scale": False, "momentum": 0.4},
        {"type": "GAP"},
        {"type": "T", "logit_scale": 0.25},
    ]
    net = build_network(layers, (1, 8, 8), 3)
    norm = net.layers[1]
    assert norm.momentum == 0.4 and not norm.weight.requires_grad and norm.bias.requires_grad
    plain = build_network([*layers[:3], {"type": "T"}], (1, 8, 8), 3)
    plain.load_state_dict(net.state_dict())
    x = torch.randn(4, 1, 8, 8)
    net.eval(), plain.eval()
    assert torch.allclose(net(x), 0.25 * plain(x))
    assert "no-scale m0.4" in net.rows[1].args and "x0.25" in net.rows[3].args
    for bad, message in [
        ({"type": "BN", "momentum": 0}, "field 'momentum' = 0"),
        ({"type": "BN", "scale": "no"}, "field 'scale' = 'no'"),
        ({"type": "T", "logit_scale": -1}, "field 'logit_scale' = -1"),
        ({"type": "C", "num_output": 4, "kernel_size": 3, "init": "xavier"}, "field 'init'"),
    ]:
        with pytest.raises(ArchError, match=message):
            build_network([bad] if bad["type"] == "T" else [bad, {"type": "T"}], (1, 8, 8), 3)


def _model(tmp_path, layers, **options):
    dm = make_datamodule({"family": "digits", "batch_size": 32, "test_size": 360, "val_size": 180}, tmp_path)
    optimizer = functools.partial(torch.optim.SGD, lr=0.1, momentum=0.9)
    options = {"reg": 1e-3, **options}
    return LayerListClassifier(layers, {**dm.info.to_dict(), "config": {}}, optimizer=optimizer, **options), dm


BN_NET = [
    {"type": "C", "num_output": 4, "kernel_size": 3, "batch_norm": True, "init": "dirac", "freeze_weights": True},
    {"type": "BN", "scale": False},
    {"type": "GAP"},
    {"type": "T"},
]


def test_bn_shifts_get_a_scaled_learning_rate_and_frozen_weights_no_group(tmp_path):
    model, _ = _model(tmp_path, BN_NET, bn_bias_lr_scale=64)
    optimizer = model.configure_optimizers()
    plain, shifts = optimizer.param_groups
    assert plain["lr"] == pytest.approx(0.1) and plain["weight_decay"] == pytest.approx(1e-3)
    assert shifts["lr"] == pytest.approx(6.4) and shifts["weight_decay"] == pytest.approx(1e-3 / 64)
    norm_biases = {id(m.bias) for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert {id(p) for p in shifts["params"]} == norm_biases
    grouped = [id(p) for g in optimizer.param_groups for p in g["params"]]
    assert id(model.net.layers[0][0].weight) not in grouped  # frozen conv weights are not optimised
    assert id(model.net.layers[1].weight) not in grouped  # nor a scale-free BN's fixed scale
    peaks = one_cycle(optimizer, total_steps=10, max_lr=0.2, pct_start=0.25)  # one-cycle keeps the ratio between groups
    assert [g["max_lr"] for g in optimizer.param_groups] == pytest.approx([0.2, 12.8])
    del peaks
    with pytest.raises(ConfigError, match="model.bn_bias_lr_scale = 0"):
        _model(tmp_path, BN_NET, bn_bias_lr_scale=0)


def _classifier_weight(module):
    return module.net.layers[-1].weight.detach().clone()


class _Record(pl.Callback):
    """After each training step: what `read` takes of the module (by default the classifier's weight)."""

    def __init__(self, into: list, read=_classifier_weight):
        self.into, self.read = into, read

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.into.append(self.read(pl_module))


def test_lookahead_moves_the_model_to_the_running_average(tmp_path):
    model, dm = _model(tmp_path, [{"type": "GAP"}, {"type": "T"}], reg=0.0)
    before, after = [], []
    averaging = lookahead(every=1, decay=0.5, power=0)  # constant decay 0.5, every step
    trainer = bare_trainer(
        max_steps=4,
        limit_val_batches=0,
        callbacks=[_Record(before), averaging, _Record(after)],
    )
    trainer.fit(model, datamodule=dm)
    assert torch.equal(after[0], before[0])  # the first update starts the average at the model
    for k in range(1, 4):  # then: average <- (average + model) / 2, and the model takes the average
        assert torch.allclose(after[k], (after[k - 1] + before[k]) / 2)
        assert not torch.allclose(after[k], before[k])
    with pytest.raises(ConfigError, match="lookahead.decay = 1"):
        lookahead(decay=1)


def _norm_state(module):
    norm = next(m for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d))
    return norm.running_mean.clone(), norm.weight.detach().clone()


@pytest.mark.parametrize("buffers", [True, False])
def test_lookahead_averages_batch_norm_statistics_only_where_asked(tmp_path, buffers):
    layers = [{"type": "C", "num_output": 4, "kernel_size": 3, "batch_norm": True}, {"type": "GAP"}, {"type": "T"}]
    model, dm = _model(tmp_path, layers, reg=0.0)
    before, after = [], []
    averaging = lookahead(every=1, decay=0.5, power=0, buffers=buffers)
    recorders = _Record(before, _norm_state), _Record(after, _norm_state)
    trainer = bare_trainer(max_steps=3, limit_val_batches=0, callbacks=[recorders[0], averaging, recorders[1]])
    trainer.fit(model, datamodule=dm)
    for k in range(1, 3):
        assert torch.allclose(after[k][1], (after[k - 1][1] + before[k][1]) / 2)  # the weights: averaged
        statistics = (after[k - 1][0] + before[k][0]) / 2 if buffers else before[k][0]  # false: the model's own
        assert torch.allclose(after[k][0], statistics) and not torch.allclose(before[k][0], after[k - 1][0])


def test_tta_views_vote_as_airbench_weights_them():
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3), torch.nn.Flatten(), torch.nn.LazyLinear(4))
    x = torch.randn(2, 1, 6, 6)
    net(x)
    assert torch.allclose(vote(net, x, ()), net(x))
    mirror = (net(x) + net(x.flip(3))) / 2
    assert torch.allclose(vote(net, x, ("flip",)), mirror)
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
    shifted = [padded[..., :6, :6], padded[..., 2:, 2:]]
    six = 0.5 * mirror + 0.25 * sum((net(s) + net(s.flip(3))) / 2 for s in shifted)
    assert torch.allclose(vote(net, x, ("flip", "translate")), six, atol=1e-6)
    assert ModelOptions.read({"tta": "flip"}).tta == ("flip",)
    with pytest.raises(ConfigError, match="model.tta"):
        ModelOptions.read({"tta": ["flip", "rotate"]})


def test_tta_applies_to_the_test_split_only(tmp_path):
    model, dm = _model(tmp_path, [{"type": "GAP"}, {"type": "T"}], tta=["flip"])
    dm.setup()
    x, y = dm.on_after_batch_transfer(next(iter(dm.val_dataloader())), 0)
    model.eval()
    with torch.no_grad():
        mirror = F.cross_entropy((model(x) + model(x.flip(3))) / 2, y)
        plain = F.cross_entropy(model(x), y)
        model._step((x, y), "test")
        model._step((x, y), "val")
    assert model.stats["test_"].compute()[0] == pytest.approx(mirror.item(), rel=1e-5)
    assert model.stats["val_"].compute()[0] == pytest.approx(plain.item(), rel=1e-5)


def test_alternating_flip_mirrors_each_image_every_other_epoch():
    x = torch.arange(4 * 3, dtype=torch.float32).view(4, 1, 1, 3)
    parity = torch.tensor([0, 1, 1, 0])
    even, odd = alternating_flip(x, parity, 0), alternating_flip(x, parity, 1)
    for i in range(4):
        seen = {tuple(even[i].flatten().tolist()), tuple(odd[i].flatten().tolist())}
        assert seen == {tuple(x[i].flatten().tolist()), tuple(x[i].flip(2).flatten().tolist())}
    assert torch.equal(even[1], x[1].flip(2)) and torch.equal(even[0], x[0])  # parity 1 starts mirrored


def test_reflect_padding_translates_without_black_borders():
    torch.manual_seed(0)
    x = torch.ones(64, 3, 8, 8)
    assert torch.equal(random_crop(x, 2, "reflect"), x)
    assert (random_crop(x, 2, "zeros") == 0).any()


def test_data_options_train_eval_sample_and_alternating_flip_through_the_module(tmp_path):
    dm = make_datamodule(
        {
            "family": "digits",
            "batch_size": 32,
            "test_size": 360,
            "val_size": 180,
            "train_eval_size": 100,
            "augment": {"flip": "alternate"},
        },
        tmp_path,
    )
    dm.setup()
    evaluated = torch.cat([b[0] for b in dm.test_dataloader()[1]])
    assert len(evaluated) == 100 and dm.source.splits.train_eval is not dm.splits["train"]
    assert len(dm.train_sample(7)) == 7 and dm.train_sample(7).dtype == torch.float32
    for options, message in [
        ({"augment": {"flip": "sometimes"}}, "data.augment.flip"),
        ({"augment": {"padding_mode": "wrap"}}, "data.augment.padding_mode"),
        ({"augment": {"crop_padding": -1}}, "data.augment.crop_padding"),
        ({"train_eval_size": 0}, "data.train_eval_size"),
    ]:
        with pytest.raises(ConfigError, match=message):
            make_datamodule({"family": "digits", **options}, tmp_path)


def test_cutout_fills_one_square_per_image_with_the_mean():
    from cnnlab.data.augment import cutout

    torch.manual_seed(0)
    x = torch.rand(200, 3, 10, 10) + 2  # no pixel equals the fill below
    fill = torch.tensor([0.1, 0.2, 0.3]).view(1, 3, 1, 1)
    out = cutout(x, 4, fill)
    filled = (out == fill).all(1)  # per pixel: all three channels at the mean
    counts = filled.flatten(1).sum(1)
    assert counts.max() == 16 and counts.min() >= 4  # a 4x4 square, clipped at the border
    assert torch.equal(out[~filled.unsqueeze(1).expand_as(out)], x[~filled.unsqueeze(1).expand_as(x)])
    with pytest.raises(ConfigError, match="data.augment.cutout"):
        make_datamodule({"family": "digits", "augment": {"cutout": -2}}, "unused")
