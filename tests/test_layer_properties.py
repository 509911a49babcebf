"""Property-based: for any layer list, the checks either accept it and the network runs a forward pass with the
predicted output shape, or they raise the project's own ArchError; never anything else."""

from __future__ import annotations

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnlab.checks.errors import ArchError
from cnnlab.layers import build_network

small_int = st.integers(min_value=-1, max_value=6)
size = st.one_of(small_int, st.lists(small_int, min_size=0, max_size=3), st.just("3"), st.none())
anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 200),
    st.floats(-10, 120),
    st.just(float("nan")),
    st.sampled_from(["relu", "gelu", "softmax", "same", "valid", "max", "avg", "bogus"]),
)


@st.composite
def layer(draw):
    kind = draw(st.sampled_from(["C", "P", "FC", "T", "DO", "A", "BN", "GAP", "F", "X"]))
    spec = {"type": kind}
    for name in draw(
        st.lists(
            st.sampled_from(
                [
                    "num_output",
                    "kernel_size",
                    "stride",
                    "padding",
                    "activation",
                    "drop_out",
                    "pool",
                    "batch_norm",
                    "bias",
                    "unknown",
                ]
            ),
            max_size=4,
            unique=True,
        )
    ):
        spec[name] = draw(size if name in ("kernel_size", "stride") else anything)
    if kind in ("C", "FC"):
        spec.setdefault("num_output", draw(st.integers(1, 8)))
    if kind in ("C", "P"):
        spec.setdefault("kernel_size", draw(st.integers(1, 5)))
    if kind == "DO":
        spec.setdefault("drop_out", draw(st.floats(0, 99)))
    if kind == "A":
        spec.setdefault("activation", "relu")
    return spec


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    layers=st.lists(layer(), min_size=0, max_size=6),
    terminal=st.booleans(),
    shape=st.sampled_from([(1, 8, 8), (3, 5, 7), (1, 28, 28), (2, 1, 1)]),
    classes=st.integers(1, 12),
)
def test_layer_lists_are_accepted_and_run_or_refused_with_arch_error(layers, terminal, shape, classes):
    if terminal:
        layers = [*layers, {"type": "T"}]
    try:
        net = build_network(layers, shape, classes)
    except ArchError:
        return
    net.eval()
    out = net(torch.zeros(2, *shape))
    assert tuple(out.shape) == (2, *net.rows[-1].shape) == (2, classes)
    for row, module in zip(net.rows, net.layers):
        assert row.params == sum(p.numel() for p in module.parameters())
