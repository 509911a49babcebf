"""A short real training run per data set (train.py's task, in-process), on tiny files in the real layouts."""

from __future__ import annotations

import json

import pytest

from cnnlab.checks.errors import ArchError, DataError
from cnnlab.run.build import build
from tests import data_files
from tests.conftest import compose_train, train_plan

CASES = {
    "mnist": (data_files.write_mnist, ["data.val_size=10", "data.download=false"], 20, None),
    "cifar10": (data_files.write_cifar10, ["data.val_size=10", "data.download=false"], 20, "airplane"),
    "cifar100": (data_files.write_cifar100, ["data.val_size=20", "data.download=false"], 200, "apple"),
    "fer2013": (data_files.write_fer, [], 14, "Neutral"),
    "fer2013_binary": (data_files.write_fer, [], 4, "Angry"),
}


@pytest.mark.parametrize("data", list(CASES))
def test_train_runs_on_each_data_set(fit, tmp_path, data):
    write, overrides, n_test, class_name = CASES[data]
    data_dir = tmp_path / "data"
    write(data_dir)
    run = fit(f"data={data}", "arch=small", "debug=fast", "data.batch_size=8", *overrides, data_dir=data_dir)
    report = json.loads((run.dir / "classification_report.json").read_text())
    assert report["macro avg"]["support"] == n_test  # every test image counted once
    if class_name:
        assert class_name in report  # class names, not numbers, reach the report
    if data == "fer2013_binary":
        assert set(report) == {"Angry", "Happy", "accuracy", "macro avg", "weighted avg"}


def test_missing_data_is_a_clear_error(fit, tmp_path):
    with pytest.raises(DataError) as caught:
        fit("data=fer2013", "arch=small", data_dir=tmp_path / "empty")
    assert str(tmp_path / "empty" / "fer2013" / "fer2013.csv") in str(caught.value) and "Kaggle" in str(caught.value)


def test_arch_errors_come_before_data_errors(tmp_path):
    """A collapsing arch on MNIST is reported although the data set is missing: nothing was read."""
    plan = train_plan(
        tmp_path / "run",
        "data=mnist",
        "data.download=false",
        "+arch.layers.5.padding=valid",
        "arch.layers.5.kernel_size=15",
        data_dir=tmp_path / "empty",
    )
    with pytest.raises(ArchError) as caught:
        build(plan)
    message = str(caught.value)
    assert "layer 5 (P)" in message and "input 14x14" in message and "1x28x28" in message


@pytest.mark.parametrize(
    "experiment", ["seed_fer2013_binary", "seed_fer2013", "seed_mnist", "seed_cifar10", "seed_cifar100", "mnist_fast"]
)
def test_experiments_compose(experiment):
    cfg = compose_train(f"experiment={experiment}")
    if experiment.startswith("seed_"):
        assert cfg.arch.name == "seed" and cfg.data.protocol == "seed" and cfg.data.batch_size == 1500
        assert cfg.optim.lr == 1e-3 and cfg.model.reg == 1e-3 and cfg.trainer.max_epochs == 30
        assert cfg.data.family == experiment.removeprefix("seed_").removesuffix("_binary")
    else:
        assert cfg.arch.name == "mnist_fast" and cfg.data.family == "mnist"


def test_mnist_fast_runs_on_tiny_mnist(fit, tmp_path):
    data_files.write_mnist(tmp_path / "data")
    run = fit("experiment=mnist_fast", "data.val_size=10", "data.download=false", data_dir=tmp_path / "data")
    report = json.loads((run.dir / "classification_report.json").read_text())
    assert report["macro avg"]["support"] == 20  # the 20 test images, all counted
    assert "input 1x28x28, 10 classes" in (run.dir / "arch_table.txt").read_text()
    counted = run.results()["train_eval/acc"] * 50  # the training-set report ran on the 50 images left for training
    assert abs(counted - round(counted)) < 1e-3
