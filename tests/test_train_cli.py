"""Real `src/train.py` runs: the run directory, consistent metrics, eval, resume, the default run. The command line
itself runs once (a session fixture); the rest runs the same task in-process."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from cnnlab.checks.errors import CnnlabError
from cnnlab.compose import compose
from cnnlab.run.plans import check_eval
from cnnlab.run.tasks import evaluate
from tests.conftest import train_plan

RUN_FILES = [
    ".hydra/config.yaml",
    "config.yaml",
    "arch_table.txt",
    "checkpoints/best.ckpt",
    "checkpoints/last.ckpt",
    "metrics.csv",
    "curves.png",
    "confusion_matrix.png",
    "confusion_matrix.csv",
    "classification_report.txt",
    "classification_report.json",
    "results.json",
]


def read_confusion(path) -> torch.Tensor:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))[1:]
    return torch.tensor([[int(v) for v in row[1:]] for row in rows])


def test_run_directory_holds_every_report_file(trained_run):
    missing = [f for f in RUN_FILES if not (trained_run.dir / f).is_file()]
    assert not missing, missing
    assert "MFLOPs per image" in (trained_run.dir / "arch_table.txt").read_text()
    # the console ends with the seed's summary
    for fragment in ("training error rate:", "test error rate:", "confusion matrix", "classification report"):
        assert fragment in trained_run.stdout


def test_metrics_are_consistent(trained_run):
    cm = read_confusion(trained_run.dir / "confusion_matrix.csv")
    results = trained_run.results()
    assert cm.shape == (10, 10)
    assert cm.sum() == 360  # digits: data.test_size test images, each counted once
    assert results["test/acc"] == pytest.approx(cm.trace().item() / cm.sum().item(), abs=1e-6)
    assert results["test/err"] == pytest.approx(1 - results["test/acc"], abs=1e-6)
    report = json.loads((trained_run.dir / "classification_report.json").read_text())
    assert report["accuracy"] == pytest.approx(results["test/acc"], abs=1e-6)
    assert [report[str(c)]["support"] for c in range(10)] == cm.sum(1).tolist()
    # metrics.csv has a train and a validation row for each of the two epochs
    with open(trained_run.dir / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted({int(r["epoch"]) for r in rows if r["val/err"]}) == [0, 1]
    assert sorted({int(r["epoch"]) for r in rows if r["train/loss"]}) == [0, 1]


def test_results_say_where_the_wall_time_went(trained_run):
    """time/startup_s (process start to the first step), fit and test time, all within the whole process."""
    results = trained_run.results()
    startup, fit, test, total = (results[f"time/{k}_s"] for k in ("startup", "fit", "test", "total"))
    assert 0.5 < startup < total and 0 < fit < total and 0 < test < total  # Python + torch imports take > 0.5 s
    assert startup + fit + test <= total + 1.0  # the parts do not overlap (startup ends inside fit)


def eval_in_process(out, *overrides):
    return evaluate(check_eval(compose("eval", *overrides, f"paths.output_dir={out}")))


def test_eval_reproduces_the_test_metrics(trained_run, tmp_path):
    results = eval_in_process(tmp_path / "eval", f"ckpt_path={trained_run.dir}/checkpoints/best.ckpt")
    for key in ("test/acc", "test/loss", "train_eval/acc"):
        assert results[key] == pytest.approx(trained_run.results()[key], abs=1e-6), key
    assert (
        read_confusion(tmp_path / "eval" / "confusion_matrix.csv").tolist()
        == read_confusion(trained_run.dir / "confusion_matrix.csv").tolist()
    )
    assert (tmp_path / "eval" / "classification_report.txt").is_file()
    assert (tmp_path / "eval" / "curves.png").is_file()  # the training run's curves, from its metrics.csv


def test_eval_votes_with_the_views_it_is_given(trained_run, tmp_path):
    """`tta=[flip]` tests a checkpoint trained without test-time views with the mirror image voting (another loss
    than the run's own test); views that cannot be are refused before anything is read."""
    ckpt = f"ckpt_path={trained_run.dir}/checkpoints/best.ckpt"
    flipped = eval_in_process(tmp_path / "flip", ckpt, "tta=[flip]")
    assert flipped["test/loss"] != pytest.approx(trained_run.results()["test/loss"], abs=1e-6)
    with pytest.raises(CnnlabError, match=r"tta = \['translate', 'crops'\]; expected .* one kind of shift at most"):
        eval_in_process(tmp_path / "both", ckpt, "tta=[translate,crops]")


def test_resume_continues_at_the_next_epoch(trained_run, tmp_path, fit):
    last = trained_run.dir / "checkpoints/last.ckpt"
    assert torch.load(last, weights_only=True)["epoch"] == 1
    run = fit("trainer.max_epochs=3", "data.batch_size=256", f"ckpt_path={last}")
    resumed = torch.load(run.dir / "checkpoints/last.ckpt", weights_only=True)
    assert resumed["epoch"] == 2  # exactly one more epoch was trained
    assert resumed["global_step"] == 3 * torch.load(last, weights_only=True)["global_step"] // 2
    with open(run.dir / "metrics.csv", newline="") as f:
        epochs = sorted({int(r["epoch"]) for r in csv.DictReader(f) if r["val/err"]})
    assert epochs == [0, 1, 2]  # the history before the checkpoint is carried over


def test_resume_with_another_arch_is_refused(trained_run, tmp_path):
    with pytest.raises(CnnlabError, match="different arch or data config"):
        train_plan(tmp_path / "other", "arch=small", f"ckpt_path={trained_run.dir}/checkpoints/last.ckpt")


@pytest.mark.slow  # a whole default run: 40 s alone, 85 s beside the other worker
def test_default_experiment_reaches_95_percent(fit):
    """The README's quick start: `python src/train.py` with no arguments (the seed arch on digits). The floor sits
    1.9 points below the lowest of seeds 0-2 x 1-2 threads (bench/floors.json: 0.969-0.992)."""
    assert fit().results()["test/acc"] >= 0.95


@pytest.mark.parametrize(
    "overrides",
    [
        ("optim=sgd", "scheduler=cosine"),
        ("optim=rmsprop", "callbacks=early_stop"),
        ("optim=gd", "arch=seed_deep"),
        ("scheduler=onecycle", "model.label_smoothing=0.1"),
        ("scheduler=warmup_linear", "arch=resnet_small"),
        ("optim=muon", "arch=resnet_small"),
        ("callbacks=ema", "model.mixup.share=0.5", "model.cutmix.share=0.5"),
    ],
)
def test_optimizers_schedulers_and_archs_run(fit, overrides):
    """Each combination trains with what it names: the optimizer and schedule in its checkpoint are the ones asked
    for, and its loss is a number."""
    import math

    import torch

    has_arch = any(o.startswith("arch=") for o in overrides)
    run = fit(*overrides, "model.reg=0" if has_arch else "arch=small", "debug=fast")
    checkpoint = torch.load(run.dir / "checkpoints" / "last.ckpt", weights_only=True)
    optim = next((o.split("=")[1] for o in overrides if o.startswith("optim=")), "adam")
    names = {"adam": "torch.optim.adam.Adam", "sgd": "torch.optim.sgd.SGD", "gd": "torch.optim.sgd.SGD",
             "rmsprop": "torch.optim.rmsprop.RMSprop", "muon": "cnnlab.optim.muon(torch.optim.sgd.SGD)"}
    assert checkpoint["optimizer"] == names[optim]
    assert bool(checkpoint["lr_schedulers"]) == any(o.startswith("scheduler=") for o in overrides)
    assert math.isfinite(run.results()["train/loss"]) and (run.dir / "curves.png").is_file()
