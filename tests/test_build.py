"""Layer list -> network: the seed's shapes, TensorFlow SAME padding, the table, and shape errors before any data."""

from __future__ import annotations

import math

import pytest
import torch
import yaml

from cnnlab.checks.errors import ArchError
from cnnlab.layers import build_network
from tests.conftest import ROOT

SEED = yaml.safe_load((ROOT / "conf/arch/fer_arch.yaml").read_text())["layers"]
SEED_DEEP = yaml.safe_load((ROOT / "conf/arch/seed_deep.yaml").read_text())["layers"]


@pytest.mark.parametrize(
    "size, expected",
    [
        (48, [48, 48, 24, 24, 24, 8, 8]),
        (28, [28, 28, 14, 14, 14, 5, 5]),
    ],
)
def test_seed_shapes(size, expected):
    net = build_network(SEED, (1, size, size), 7)
    spatial = [row.shape[1] for row in net.rows[:7]]
    assert spatial == expected
    assert all(row.shape[1] == row.shape[2] for row in net.rows[:7])
    fc = net.layers[7]
    assert fc[1].in_features == 256 * expected[-1] ** 2  # 16,384 on 48x48
    assert net.rows[-1].shape == (7,)
    assert net(torch.zeros(3, 1, size, size)).shape == (3, 7)


def test_seed_deep_builds_and_terminal_width_comes_from_the_data():
    net = build_network(SEED_DEEP, (3, 32, 32), 100)
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 100)
    assert net.output_activation == "softmax"


@pytest.mark.parametrize("size", [5, 7, 8, 13, 28, 48])
@pytest.mark.parametrize("kernel, stride", [(1, 1), (2, 1), (2, 2), (3, 2), (4, 3), (5, 3), (3, 5)])
def test_same_padding_output_is_ceil_of_input_over_stride(size, kernel, stride):
    layers = [
        {"type": "C", "num_output": 2, "kernel_size": kernel, "stride": stride},
        {"type": "P", "kernel_size": kernel, "stride": stride},
        {"type": "P", "pool": "avg", "kernel_size": kernel, "stride": stride},
        {"type": "T"},
    ]
    net = build_network(layers, (1, size, size), 2)
    expected = [math.ceil(size / stride)]
    for _ in range(2):
        expected.append(math.ceil(expected[-1] / stride))
    assert [r.shape[1] for r in net.rows[:3]] == expected
    x = torch.randn(1, 1, size, size)
    assert net.layers[2](net.layers[1](net.layers[0](x))).shape[-1] == expected[-1]


def _single(layer, x):
    net = build_network([layer, {"type": "T"}], tuple(x.shape[1:]), 2)
    return net.layers[0](x)


X = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])


def test_same_padding_goes_after_when_uneven_like_tensorflow():
    conv = build_network(
        [{"type": "C", "num_output": 1, "kernel_size": 2, "activation": None, "bias": False}, {"type": "T"}],
        (1, 2, 2),
        2,
    ).layers[0]
    torch.nn.init.ones_(conv[1].weight)
    assert conv(X).flatten().tolist() == [10.0, 6.0, 7.0, 4.0]


def test_max_pool_same_pads_with_minus_infinity():
    out = _single({"type": "P", "pool": "max", "kernel_size": 2, "stride": 1}, -X)
    assert out.flatten().tolist() == [-1.0, -2.0, -3.0, -4.0]


def test_avg_pool_same_averages_real_pixels_only():
    out = _single({"type": "P", "pool": "avg", "kernel_size": 2, "stride": 1}, X)
    assert out.flatten().tolist() == [2.5, 3.0, 3.5, 4.0]


def test_dropout_is_a_percentage_and_batch_norm_sits_before_the_activation():
    net = build_network(
        [{"type": "C", "num_output": 4, "kernel_size": 3, "batch_norm": True, "drop_out": 8.3}, {"type": "T"}],
        (1, 8, 8),
        2,
    )
    kinds = [type(m).__name__ for m in net.layers[0]]
    assert kinds == ["Conv2d", "BatchNorm2d", "ReLU", "Dropout"]
    assert net.layers[0][3].p == pytest.approx(0.083)


def test_table_rows_and_totals():
    net = build_network(SEED, (1, 48, 48), 7)
    assert net.num_params == sum(p.numel() for p in net.parameters())
    assert net.rows[0].flops == 2 * 1 * 3 * 3 * 64 * 48 * 48
    table = net.table()
    assert "128x24x24" in table and "16,384" not in table.splitlines()[0]
    assert f"{net.num_params:,} parameters" in table and "MFLOPs per image" in table


def test_spatial_collapse_is_an_error_naming_the_layer():
    layers = [
        {"type": "C", "num_output": 4, "kernel_size": 5, "padding": "valid"},
        {"type": "P", "kernel_size": 5, "stride": 3, "padding": "valid"},
        {"type": "T"},
    ]
    with pytest.raises(ArchError) as info:
        build_network(layers, (1, 8, 8), 10)
    message = str(info.value)
    assert "layer 1 (P)" in message and "collapses" in message and "4x4" in message and "1x8x8" in message


def test_conv_after_flatten_is_an_error():
    with pytest.raises(ArchError, match=r"layer 1 \(C\): needs a spatial input"):
        build_network(
            [{"type": "FC", "num_output": 4}, {"type": "C", "num_output": 4, "kernel_size": 3}, {"type": "T"}],
            (1, 8, 8),
            10,
        )


RESNET = yaml.safe_load((ROOT / "conf/arch/resnet_small.yaml").read_text())["layers"]


def test_residual_block_adds_its_input():
    net = build_network(
        [
            {"type": "R", "layers": [{"type": "C", "num_output": 1, "kernel_size": 3, "activation": None}]},
            {"type": "T"},
        ],
        (1, 4, 4),
        2,
    )
    block = net.layers[0]
    assert isinstance(block.shortcut, torch.nn.Identity)
    torch.nn.init.zeros_(block.body[0].weight)
    torch.nn.init.zeros_(block.body[0].bias)
    x = torch.randn(2, 1, 4, 4)
    assert torch.equal(block(x), torch.relu(x))  # relu(0 + x)


def test_residual_projection_when_the_shape_changes():
    net = build_network(RESNET, (3, 32, 32), 10)
    stage = net.layers[2]  # 32 -> 64 channels, stride 2
    conv = stage.shortcut[0]
    assert (conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride) == (32, 64, (1, 1), (2, 2))
    assert isinstance(stage.shortcut[1], torch.nn.BatchNorm2d)
    assert [r.shape for r in net.rows[1:6]] == [(32, 32, 32), (64, 16, 16), (64, 16, 16), (128, 8, 8), (128, 8, 8)]
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    assert net.num_params == sum(p.numel() for p in net.parameters())


def test_residual_errors_name_the_nested_layer():
    with pytest.raises(ArchError, match=r"layer 0 \(R\): its layers turn 1x8x8 into 4"):
        build_network([{"type": "R", "layers": [{"type": "FC", "num_output": 4}]}, {"type": "T"}], (1, 8, 8), 2)
    with pytest.raises(ArchError, match=r"layer 1 \(R\) > layer 0 \(P\): the spatial size collapses"):
        build_network(
            [
                {"type": "C", "num_output": 2, "kernel_size": 3},
                {"type": "R", "layers": [{"type": "P", "kernel_size": 9, "padding": "valid"}]},
                {"type": "T"},
            ],
            (1, 8, 8),
            2,
        )
