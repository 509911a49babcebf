"""Everyday use as a new user meets it: short runs that are short, evaluation that shows progress, Ctrl-C that saves
and says how to go on, one epoch numbering, start-up timed from the program's start, reports sized for 100 classes,
and a table of runs from any day."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import pytorch_lightning as pl
import torch

from cnnlab.progress import EpochsFromOne, LineProgress
from tests.conftest import ROOT, bare_trainer, compose_train, run_script, train_in_process
from tests.test_train_cli import read_confusion


def test_debug_fast_bounds_every_phase_and_says_so(fit, caplog):
    with caplog.at_level(logging.INFO, logger="cnnlab"):
        run = fit("debug=fast", "data.eval_batch_size=100")  # digits: 360 test and 1,257 training images
    assert read_confusion(run.dir / "confusion_matrix.csv").sum() == 100  # one test batch
    with open(run.dir / "metrics.csv") as f:
        assert sum(1 for row in f if row.strip()) >= 2
    assert "shortened run (trainer.limit_*_batches): training batches per epoch 3" in caplog.text
    composed = compose_train("debug=fast").trainer
    assert (composed.limit_train_batches, composed.limit_val_batches, composed.limit_test_batches) == (3, 1, 1)


def test_evaluation_reports_progress_without_a_terminal(tmp_path, caplog):
    from tests.test_airbench_pieces import _model

    model, dm = _model(tmp_path, [{"type": "GAP"}, {"type": "T"}])
    dm.options = type(dm.options).read({**dm.options.to_dict(), "eval_batch_size": 100})
    progress = LineProgress(every_s=0)
    trainer = bare_trainer(
        max_epochs=1,
        limit_train_batches=2,
        callbacks=[progress],
    )
    with caplog.at_level(logging.INFO, logger="cnnlab"):
        trainer.fit(model, datamodule=dm)
        progress._last_eval_s = 1.0  # a validation that took longer than every_s: the next one announces itself
        trainer.validate(model, datamodule=dm, verbose=False)
        trainer.test(model, datamodule=dm, verbose=False)
    lines = [r.getMessage() for r in caplog.records if r.name == "cnnlab"]
    assert "testing: 360 test images, then 1,257 training images (unaugmented, for the training error)" in lines
    assert any(line.startswith("testing  batch 2/4") for line in lines)
    assert any(line.startswith("the training-set report  batch 13/13") for line in lines)
    assert any("validating 180 images (the last validation took" in line for line in lines)
    assert any(re.match(r"epoch 1/1  validating  batch 2/2", line) for line in lines)


KILL = ("arch=small", "trainer.max_epochs=2", "data.batch_size=64")  # 19 steps per epoch on digits


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_writes_a_checkpoint_says_how_to_go_on_and_the_continued_run_is_exact(tmp_path, signum, code):
    """Not deterministic mode: the CPU's arithmetic is; the RNG, the loader's position and the epoch's running
    metrics come back from the checkpoint."""
    env = {"PYTHONPATH": str(ROOT)}
    signalled = run_script(
        "train.py",
        tmp_path / "stopped",
        *KILL,
        "+callbacks.stop._target_=tests.faults.SignalAtStep",
        "+callbacks.stop.step=25",
        f"+callbacks.stop.signum={int(signum)}",
        env=env,
    )
    assert signalled.returncode == code, signalled.output[-3000:]
    last = tmp_path / "stopped" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 25
    message = signalled.stderr.strip().splitlines()
    assert "stopped by" in message[-2] and "after step 25" in message[-2] and str(last) in message[-2]
    command = message[-1].strip().split()
    assert command[:2] == ["python", "src/train.py"] and command[-1] == f"ckpt_path={last}"
    assert "Traceback" not in signalled.output
    if signum != signal.SIGINT:
        return  # how a run goes on does not depend on what stopped it: continued once, after Ctrl-C
    whole = train_in_process(tmp_path / "whole", *KILL)  # the signal itself needs a process of its own
    # the printed command's own overrides, in this process: all but the signal, which would reach pytest itself
    continued = train_in_process(tmp_path / "continued", *[o for o in command[2:] if "callbacks.stop" not in o])
    for key in ("train/loss", "val/acc", "test/acc", "test/loss", "train_eval/loss"):
        assert continued.results()[key] == pytest.approx(whole.results()[key], abs=1e-6), key


class _Trainer:
    """What LineProgress reads of a trainer, resumed 5 batches into its only epoch of 19."""

    class fit_loop:  # noqa: N801 - Lightning's attribute names
        class epoch_loop:  # noqa: N801
            class batch_progress:  # noqa: N801
                class current:  # noqa: N801
                    ready = 5

    current_epoch, max_epochs, num_training_batches, is_global_zero, should_stop = 0, 1, 19, True, False


def test_progress_after_a_resume_counts_only_what_this_run_did(caplog):
    line = LineProgress(every_s=0)
    with caplog.at_level(logging.INFO, logger="cnnlab"):
        line.on_train_start(_Trainer(), None)
        line._epoch_start -= 10.0  # 10 s into the resumed epoch, one batch of 64 images done by this process
        line.on_train_batch_end(_Trainer(), None, None, (torch.zeros(64), torch.zeros(64)), 5)
    text = [r.getMessage() for r in caplog.records if "batch 6/19" in r.getMessage()][0]
    speed = int(re.search(r"([\d,]+) img/s", text).group(1).replace(",", ""))
    left = re.search(r"epoch left ~(\S+)", text).group(1)
    assert 5 <= speed <= 7 and left.startswith("2m")  # 64 images in 10 s; 13 batches of 10 s left, not hours


def test_time_left_in_a_later_epoch_counts_that_epochs_batches(tmp_path, caplog, monkeypatch):
    """Every training batch takes 10 s of a fake clock: in the second epoch, 10 s per batch still to run (the
    estimate once divided by Lightning's batch counter of the epoch before and read hours)."""
    import cnnlab.progress
    from tests.test_airbench_pieces import _model

    now = [0.0]
    monkeypatch.setattr(cnnlab.progress.time, "perf_counter", lambda: now[0])

    class TenSeconds(pl.Callback):
        def on_train_batch_start(self, *args):
            now[0] += 10.0

    model, dm = _model(tmp_path, [{"type": "GAP"}, {"type": "T"}])
    trainer = bare_trainer(max_epochs=2, limit_train_batches=6, limit_val_batches=1,
                           callbacks=[TenSeconds(), LineProgress(every_s=0)])
    with caplog.at_level(logging.INFO, logger="cnnlab"):
        trainer.fit(model, datamodule=dm)
    second = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch 2/2  batch")]
    assert [re.search(r"batch (\d)/6", t).group(1) for t in second] == list("123456")
    assert [re.search(r"epoch left ~(\S+)", t).group(1) for t in second] == ["50s", "40s", "30s", "20s", "10s", "0s"]


def test_one_epoch_numbering_in_the_bar_and_the_lines(tmp_path):
    from cnnlab.progress import epoch_label
    from tests.test_airbench_pieces import _model

    seen = []

    class Look(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            seen.append(bar._get_train_description(trainer.current_epoch))

    bar = EpochsFromOne()
    model, dm = _model(tmp_path, [{"type": "GAP"}, {"type": "T"}])
    trainer = pl.Trainer(
        max_epochs=2,
        limit_train_batches=1,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        callbacks=[bar, Look()],
    )
    trainer.fit(model, datamodule=dm)
    assert [d.strip() for d in seen] == ["Epoch 1/2", "Epoch 2/2"]  # Lightning's own: Epoch 0/1, Epoch 1/1
    assert epoch_label(trainer, 0) == "epoch 1/2"


def test_start_up_is_timed_from_the_programs_own_start(tmp_path):
    """A shell that runs something first and then execs Python lends it its start time in /proc: not counted."""
    env = {**os.environ, "CNNLAB_DATA_DIR": str(tmp_path / "data"), "PYTHONWARNINGS": "ignore"}
    cmd = f"sleep 2 && exec {sys.executable} src/train.py debug=fast hydra.run.dir={tmp_path}/run"
    began = time.monotonic()
    proc = subprocess.run(["bash", "-c", cmd], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    wall = time.monotonic() - began
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert 0.3 < results["time/startup_s"] < results["time/total_s"] < wall - 1.5  # the 2 s sleep is not counted


def test_the_summary_fits_a_screen_at_100_classes_and_the_files_hold_everything():
    import numpy as np

    from cnnlab.data.families.cifar100 import CIFAR100_CLASSES
    from cnnlab.report.console import summary
    from cnnlab.report.figures import confusion_png
    from cnnlab.report.value import make_report

    rng = np.random.default_rng(0)
    cm = rng.integers(0, 3, (100, 100)) + np.diag(rng.integers(20, 40, 100))
    report = make_report({"test/acc": 0.5, "test/err": 0.5}, torch.tensor(cm), list(CIFAR100_CLASSES), {}, "run")
    text = summary(report)
    lines = text.splitlines()
    assert len(lines) <= 40 and max(len(line) for line in lines) <= 110, (len(lines), max(map(len, lines)))
    worst = min(CIFAR100_CLASSES, key=lambda n: (report.per_class[n]["recall"], report.per_class[n]["f1-score"]))
    below = text.split("lowest recall")[1].splitlines()
    assert below[2].strip().startswith(worst) and "largest confusions" in text
    small = make_report({}, torch.eye(3, dtype=torch.long) * 5, ["a", "b", "c"], {}, "")
    assert "confusion matrix (rows: true" in summary(small)  # a few classes: the whole matrix, as the seed printed
    png = confusion_png(report)
    import io

    from PIL import Image

    assert Image.open(io.BytesIO(png)).size[0] >= 2000  # every class named, in a figure large enough to read


def test_eval_draws_the_training_curves_the_checkpoint_holds_or_none(trained_run, tmp_path):
    import torch

    from tests.test_train_cli import eval_in_process

    alone = tmp_path / "alone" / "checkpoints"
    alone.mkdir(parents=True)
    checkpoint = torch.load(trained_run.dir / "checkpoints" / "best.ckpt", weights_only=True)
    epochs = sorted(checkpoint["history"]["val/acc"])  # the curves travel in the checkpoint, up to its epoch
    assert epochs == list(range(checkpoint["epoch"] + 1)) == sorted(checkpoint["history"]["train/loss"])
    torch.save(checkpoint, alone / "best.ckpt")  # no metrics.csv beside it
    eval_in_process(tmp_path / "eval", f"ckpt_path={alone / 'best.ckpt'}")
    assert (tmp_path / "eval" / "curves.png").is_file()
    del checkpoint["history"]  # a checkpoint of an older cnnlab: no curves, rather than empty ones
    torch.save(checkpoint, alone / "old.ckpt")
    eval_in_process(tmp_path / "old", f"ckpt_path={alone / 'old.ckpt'}")
    assert not (tmp_path / "old" / "curves.png").exists() and (tmp_path / "old" / "confusion_matrix.png").is_file()


def test_any_lightning_trainer_argument_without_a_plus():
    cfg = compose_train("trainer.limit_train_batches=20", "trainer.gradient_clip_val=1.0", "trainer.benchmark=true")
    assert (cfg.trainer.limit_train_batches, cfg.trainer.gradient_clip_val, cfg.trainer.benchmark) == (20, 1.0, True)


def test_shortened_evaluations_of_a_folder_see_every_class(tmp_path):
    from cnnlab.data import make_datamodule
    from tests.test_folder import write_images

    write_images(tmp_path / "pets", n_per_class=20)
    dm = make_datamodule({"family": "folder", "root": str(tmp_path / "pets"), "workers": 1, "cache": False}, tmp_path)
    dm.setup()
    for split in ("val", "test"):
        first = dm.splits[split].y[:6].tolist()
        assert len(set(first)) >= 2, (split, first)  # not all of one class (the folder order is by class)


def test_qlearning_says_when_its_budget_is_too_small_for_its_schedule():
    from cnnlab.search.agents.qlearning import schedule_warning

    warning = schedule_warning(10)
    assert "n_trials=10" in warning and "no trial at epsilon 0.9" in warning and "from n_trials=11" in warning
    assert schedule_warning(20) is None and schedule_warning(100) is None


def test_compare_tables_each_data_sets_runs_apart(fit, tmp_path, capsys):
    from cnnlab.compare import compare

    a = fit("arch=small", "trainer.max_epochs=1")
    b = fit("arch=small", "trainer.max_epochs=2")
    rows = compare([a.dir, b.dir], "test/acc", tmp_path / "table")
    accuracies = [a.results()["test/acc"], b.results()["test/acc"]]
    assert [float(r["test/acc"]) for r in rows] == sorted(accuracies, reverse=True)
    assert (tmp_path / "table" / "summary.csv").is_file() and (tmp_path / "table" / "summary.png").is_file()
    losses = compare([a.dir, b.dir], "test/loss", tmp_path / "by_loss")
    assert float(losses[0]["test/loss"]) <= float(losses[1]["test/loss"])  # lower is better for a loss
    other = fit("arch=small", "data.classes=[0,1,2,3,4,5]", "debug=fast")
    capsys.readouterr()
    mixed = compare([a.dir, other.dir, b.dir], "test/acc", tmp_path / "mixed")
    out = capsys.readouterr().out
    assert [r["data"] for r in mixed] == ["digits", "digits", "digits classes [0, 1, 2, 3, 4, 5]"]
    assert "digits: 2 runs, by test/acc" in out and "digits classes [0, 1, 2, 3, 4, 5]: 1 runs" in out
    proc = subprocess.run(
        [sys.executable, "src/compare.py", str(a.dir), str(tmp_path / "nowhere")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and proc.stderr.startswith("error:") and "Traceback" not in proc.stderr


def test_the_readme_gives_a_cpu_only_install_within_the_projects_pins():
    readme = (ROOT / "README.md").read_text()
    line = next(ln for ln in readme.splitlines() if "download.pytorch.org/whl/cpu" in ln)
    pins = dict(re.findall(r"'(torch|torchvision)<=([\d.]+)'", line))
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert pins and all(f'"{name}>=' in pyproject and f"<={version}" in pyproject for name, version in pins.items())
