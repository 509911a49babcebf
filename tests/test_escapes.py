"""The bad or odd inputs that once escaped the front door, each now one sentence before work starts (or, for a legal
input, a sensible result): networks larger than the machine, numbers that reached a library unchecked, hostile
files, resuming the wrong thing, compare.py's places and files, a class subset on the default data set."""

from __future__ import annotations

import json

import pytest

from cnnlab.checks.errors import ArchError, CnnlabError, ConfigError
from cnnlab.checks.fields import OptionError
from cnnlab.run.build import build
from tests.conftest import train_plan


@pytest.mark.parametrize("overrides", [
    ("arch.width=100000",),
    ("arch.layers=[{type:FC,num_output:2000000000},{type:T}]",),
    ("arch.layers.0.num_output=1000000000",),
])
def test_a_network_larger_than_the_machine_is_refused_before_anything_is_allocated(tmp_path, overrides):
    plan = train_plan(tmp_path / "run", *overrides)
    with pytest.raises(ConfigError, match=r"the network needs about [\d,]+ GiB to train .* this machine has"):
        build(plan)


def test_a_list_that_unrolls_past_what_could_train_is_refused_at_once(tmp_path):
    repeat = "arch.layers=[{type:REPEAT,times:100000,layers:[{type:C,num_output:8,kernel_size:3}]},{type:T}]"
    with pytest.raises(ArchError, match="unrolls to 100,001 layers"):
        train_plan(tmp_path / "run", repeat)


def test_a_file_nested_thousands_deep_is_one_sentence(tmp_path):
    conv = '{"type": "C", "num_output": 8, "kernel_size": 3}'
    path = tmp_path / "deep.json"  # written as text: json.dumps itself recurses once per level
    path.write_text("[" + '{"type": "R", "layers": [' * 3000 + conv + "]}" * 3000 + ', {"type": "T"}]')
    with pytest.raises(ArchError, match="nested"):
        train_plan(tmp_path / "run", "arch=file", f"arch.path={path}")
    shallow = {"type": "R", "layers": [{"type": "C", "num_output": 8, "kernel_size": 3}]}
    for _ in range(60):
        shallow = {"type": "R", "layers": [shallow]}
    path.write_text(json.dumps([shallow, {"type": "T"}]))
    with pytest.raises(ArchError, match="blocks nested more than 50 deep"):
        train_plan(tmp_path / "run", "arch=file", f"arch.path={path}")


def test_crops_shifted_past_the_image_are_refused_before_training(tmp_path):
    plan = train_plan(tmp_path / "run", "model.tta=[crops]", "model.tta_shift=100")
    with pytest.raises(OptionError, match="model.tta_shift = 100: .* 8x8 test images .* <= 7"):
        build(plan)


def test_a_class_subset_of_the_default_data_set_trains(fit):
    run = fit("data.classes=[0,1]", "trainer.max_epochs=1")
    report = json.loads((run.dir / "classification_report.json").read_text())
    assert set(report) == {"0", "1", "accuracy", "macro avg", "weighted avg"}
    assert report["macro avg"]["support"] == round(360 * 360 / 1797)  # the subset's share of data.test_size


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished one-epoch run with optim=muon, for the resume checks."""
    from cnnlab.run.tasks import train

    out = tmp_path_factory.mktemp("muon") / "run"
    train(train_plan(out, "optim=muon", "trainer.max_epochs=1", "debug=fast"))
    return out / "checkpoints" / "last.ckpt"


def test_resuming_with_another_optimizer_is_refused(tmp_path, finished):
    with pytest.raises(OptionError, match=r"trained with the optimizer cnnlab\.optim\.muon.*this command's is torch"):
        train_plan(tmp_path / "run", f"ckpt_path={finished}", "debug=fast", "trainer.max_epochs=2")


def test_resuming_a_run_that_finished_its_epochs_is_refused(tmp_path, finished):
    with pytest.raises(OptionError, match="has finished its 1 epochs.*raise trainer.max_epochs"):
        train_plan(tmp_path / "run", f"ckpt_path={finished}", "debug=fast", "optim=muon", "trainer.max_epochs=1")
    longer = train_plan(tmp_path / "run", f"ckpt_path={finished}", "debug=fast", "optim=muon", "trainer.max_epochs=2")
    assert longer.resume_epoch == 0


def test_compare_refuses_a_damaged_run_and_an_unwritable_out(tmp_path, trained_run):
    from cnnlab.compare import compare

    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "results.json").write_text("{not json")
    with pytest.raises(CnnlabError, match="damaged: its results.json or config.yaml cannot be read"):
        compare([damaged], "test/acc", tmp_path / "out")
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    with pytest.raises(CnnlabError, match="--out=.*a_file is a file"):
        compare([trained_run.dir], "test/acc", a_file)
    with pytest.raises(CnnlabError, match="cannot be written"):
        compare([trained_run.dir], "test/acc", a_file / "under")


