"""Layer-list checks: the seed's lists load unchanged; each mistake names layer, type, field and what is allowed."""

from __future__ import annotations

import json

import pytest
import yaml

from cnnlab.checks.errors import ArchError
from cnnlab.layers import layer_types, load_layers, parse_layers
from tests.conftest import ROOT

SEED = yaml.safe_load((ROOT / "conf/arch/fer_arch.yaml").read_text())["layers"]
SEED_PYTHON = """[{'type':'C','activation':'relu','num_output':64,'kernel_size':(3,3),'stride':(1,1),'drop_out':0.0},
 {'type':'C','activation':'relu','num_output':128,'kernel_size':(3,3),'stride':(1,1),'drop_out':8.3},
 {'type':'P','pool':'max','kernel_size':(2,2),'stride':(2,2),'drop_out':16.7},
 {'type':'C','activation':'relu','num_output':256,'kernel_size':(3,3),'stride':(1,1),'drop_out':0.0},
 {'type':'C','activation':'relu','num_output':128,'kernel_size':(5,5),'stride':(1,1),'drop_out':16.7},
 {'type':'P','pool':'max','kernel_size':(5,5),'stride':(3,3),'drop_out':0.0},
 {'type':'C','activation':'relu','num_output':256,'kernel_size':(3,3),'stride':(1,1),'drop_out':0.0},
 {'type':'FC','activation':'relu','num_output':256,'drop_out':8.3},
 {'type':'FC','activation':'relu','num_output':128,'drop_out':0.0},
 {'type':'T','activation':None}]"""


def test_every_type_is_one_record_that_builds_or_unrolls():
    types = layer_types()
    assert set(types) == {"C", "P", "FC", "T", "DO", "A", "R", "REPEAT", "BN", "GAP", "F"}
    assert all((kind.build is None) == kind.unrolled for kind in types.values())  # REPEAT is unrolled, not built


def test_seed_list_parses_with_percent_dropout_and_pairs():
    specs = parse_layers(SEED)
    assert [s.type for s in specs] == ["C", "C", "P", "C", "C", "P", "C", "FC", "FC", "T"]
    assert specs[1]["drop_out"] == 8.3 and specs[1]["kernel_size"] == (3, 3)
    assert specs[2]["pool"] == "max" and specs[5]["stride"] == (3, 3)
    assert specs[-1]["activation"] is None


def test_defaults_are_filled():
    spec = parse_layers([{"type": "C", "num_output": 8, "kernel_size": 3}, {"type": "T"}])[0]
    assert spec.args == {
        "num_output": 8,
        "kernel_size": (3, 3),
        "stride": (1, 1),
        "padding": "same",
        "activation": "relu",
        "batch_norm": False,
        "bias": True,
        "drop_out": 0.0,
        "init": "default",
        "freeze_weights": False,
    }


@pytest.mark.parametrize(
    "name, text",
    [
        ("seed.py.json", SEED_PYTHON),  # the seed README's own Python-literal form, verbatim
        ("seed.json", json.dumps(SEED)),
        ("seed.yaml", yaml.safe_dump({"layers": SEED})),
    ],
)
def test_files_load_verbatim(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    assert [s.args for s in parse_layers(load_layers(path))] == [s.args for s in parse_layers(SEED)]


def test_file_errors_name_the_file(tmp_path):
    with pytest.raises(ArchError, match="does not exist"):
        load_layers(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("[{'type': 'C',")
    with pytest.raises(ArchError, match="bad.json: not valid JSON"):
        load_layers(bad)
    code = tmp_path / "code.json"
    code.write_text("__import__('os').system('echo hacked')")
    with pytest.raises(ArchError, match="not valid JSON"):
        load_layers(code)


C = {"type": "C", "num_output": 8, "kernel_size": 3}
T = {"type": "T"}

BAD = [
    # (layers, fragments the message must contain)
    ([{**C, "num_output": 0}, T], ["layer 0 (C)", "'num_output'", "0", "positive integer"]),
    ([{**C, "num_output": 2.5}, T], ["layer 0 (C)", "'num_output'", "2.5"]),
    ([{**C, "num_output": True}, T], ["layer 0 (C)", "'num_output'", "True"]),
    ([{"type": "C", "kernel_size": 3}, T], ["layer 0 (C)", "missing required field 'num_output'"]),
    ([{"type": "C", "num_output": 8}, T], ["layer 0 (C)", "missing required field 'kernel_size'"]),
    ([{**C, "kernel_size": [0, 3]}, T], ["layer 0 (C)", "'kernel_size'", "[0, 3]", "pair"]),
    ([{**C, "kernel_size": [3, 3, 3]}, T], ["layer 0 (C)", "'kernel_size'", "[3, 3, 3]"]),
    ([{**C, "stride": -1}, T], ["layer 0 (C)", "'stride'", "-1"]),
    ([{**C, "drop_out": 100}, T], ["layer 0 (C)", "'drop_out'", "100", "percentage"]),
    ([{**C, "drop_out": -1}, T], ["layer 0 (C)", "'drop_out'", "-1"]),
    ([{**C, "drop_out": "8.3"}, T], ["layer 0 (C)", "'drop_out'", "'8.3'"]),
    ([{**C, "activation": "relu6"}, T], ["layer 0 (C)", "'activation'", "'relu6'", "'gelu'"]),
    ([{**C, "padding": "full"}, T], ["layer 0 (C)", "'padding'", "'full'", "'valid'"]),
    ([{**C, "batch_norm": "yes"}, T], ["layer 0 (C)", "'batch_norm'", "true or false"]),
    ([{**C, "kernal_size": 3}, T], ["layer 0 (C)", "unknown field 'kernal_size'", "Did you mean 'kernel_size'"]),
    ([C, {"type": "P", "pool": "min", "kernel_size": 2}, T], ["layer 1 (P)", "'pool'", "'min'", "'avg'"]),
    ([C, {"type": "P"}, T], ["layer 1 (P)", "missing required field 'kernel_size'"]),
    ([C, {"type": "FC", "num_output": -5}, T], ["layer 1 (FC)", "'num_output'", "-5"]),
    ([C, {"type": "FC", "num_output": 4, "kernel_size": 3}, T], ["layer 1 (FC)", "unknown field 'kernel_size'"]),
    ([C, {"type": "DO"}, T], ["layer 1 (DO)", "missing required field 'drop_out'"]),
    ([C, {"type": "A", "activation": None}, T], ["layer 1 (A)", "'activation'"]),
    ([C, {"type": "T", "activation": "relu"}], ["layer 1 (T)", "'activation'", "'softmax'"]),
    ([C, {"type": "T", "num_output": 10}], ["layer 1 (T)", "unknown field 'num_output'"]),
    ([C, {"type": "GAP", "size": 1}, T], ["layer 1 (GAP)", "unknown field 'size'", "none"]),
    ([{"type": "X"}, T], ["layer 0", "unknown type 'X'", "C, P, FC, T"]),
    ([{"type": "fc", "num_output": 3}, T], ["layer 0", "unknown type 'fc'", "Did you mean 'FC'"]),
    ([{"num_output": 3}, T], ["layer 0", "missing field 'type'"]),
    (["C relu 64", T], ["layer 0", "expected a mapping"]),
    ([{**C, "_target_": "os.system"}, T], ["layer 0", "'_target_' is not allowed", "never code"]),
    ([C], ["no terminal layer", "{type: T}"]),
    ([C, T, {"type": "FC", "num_output": 4}], ["layer 1 (T)", "must be last", "layer 2 (FC)"]),
    ([], ["non-empty list"]),
    ([C, {"type": "R", "layers": [{**C, "kernel_size": 0}]}, T], ["layer 1 (R) > layer 0 (C)", "'kernel_size'", "0"]),
    ([C, {"type": "R", "layers": [C, {"type": "T"}]}, T], ["layer 1 (R) > layer 1 (T)", "cannot sit inside"]),
    ([C, {"type": "R", "layers": []}, T], ["layer 1 (R)", "'layers'", "non-empty list"]),
    ([C, {"type": "R"}, T], ["layer 1 (R)", "missing required field 'layers'"]),
    ("C relu 64", ["non-empty list"]),
]


@pytest.mark.parametrize("layers, fragments", BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_bad_specs_name_the_layer_and_field(layers, fragments):
    with pytest.raises(ArchError) as info:
        parse_layers(layers)
    for fragment in fragments:
        assert fragment in str(info.value), f"{fragment!r} not in: {info.value}"
