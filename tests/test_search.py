"""`src/search.py`: a real Optuna search on digits writes its outputs, its best arch trains, a study resumes, two
workers share one SQLite study, and a bad space is refused before any trial. Searches run in-process through the
front door (`check_search`); the command line itself is run where workers are separate processes."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import pytest
import yaml

from cnnlab.checks.errors import ConfigError
from cnnlab.compose import compose
from cnnlab.search.plan import check_search
from cnnlab.search.study import run_search
from tests.conftest import ROOT

FAST = ("search.epochs=2", "trainer.limit_train_batches=3", "trainer.limit_val_batches=1")


def trials(folder):
    with open(folder / "trials.csv", newline="") as f:
        return list(csv.DictReader(f))


def search(out, *overrides):
    """What `python src/search.py <overrides> hydra.run.dir=<out>` does, in this process."""
    return run_search(
        check_search(compose("search", *overrides, f"paths.output_dir={out}", f"paths.data_dir={out.parent / 'data'}"))
    )


def test_search_writes_outputs_and_its_best_arch_trains(tmp_path, fit, capsys):
    out = tmp_path / "study"
    search(out, "n_trials=4", *FAST)
    printed = capsys.readouterr().out
    rows = trials(out)
    assert [int(r["number"]) for r in rows] == [0, 1, 2, 3]
    assert all(r["state"] in ("COMPLETE", "PRUNED") for r in rows)
    for name in ("best_arch.yaml", "optimization_history.png", "study.journal", "experiment/best_experiment.yaml"):
        assert (out / name).is_file(), name
    assert "pruned" in printed and "best: trial" in printed
    trained = fit("arch=file", f"arch.path={out / 'best_arch.yaml'}", "debug=fast")
    best = yaml.safe_load((out / "best_arch.yaml").read_text())["layers"]
    table = (trained.dir / "arch_table.txt").read_text()
    assert f"{len(best)} layers" in table  # the winner's own list was built and trained
    assert "test/acc" in trained.results() and "train/loss" in trained.results()


def test_a_trial_trains_through_train_pys_path_and_a_nan_trial_fails_with_its_reason(tmp_path):
    """optim=, model.*, callbacks and the NaN stop reach every trial, as they reach `train.py`; a diverging trial is
    recorded as failed with the reason, and the study goes on."""
    out = tmp_path / "study"
    with pytest.raises(ConfigError, match=r"every trial of study .* failed \(2; trial 0: NonFiniteLoss"):
        search(
            out,
            "n_trials=2",
            "optim=gd",
            "trainer.gradient_clip_val=null",  # clipping would tame it
            "~search.lr",
            "+search.lr=[1.0e12]",
            "~search.reg",
            "+search.reg=[0.0]",
            "search.batch_norm=[false]",
            "model.label_smoothing=0.1",
            "+callbacks.probe._target_=tests.probes.RecordVisibleDevices",
            f"+callbacks.probe.folder={tmp_path}",
            "sampler_seed=0",
            *FAST,
        )  # BN could tame it
    rows = trials(out)
    assert [r["state"] for r in rows] == ["FAIL", "FAIL"]
    assert all("NonFiniteLoss: the training loss became" in r["reason"] for r in rows)
    trial = (out / "trials" / "0" / "config.yaml").read_text()
    assert "_target_: torch.optim.SGD" in trial and "label_smoothing: 0.1" in trial and "lr: 1000000000000.0" in trial
    assert (out / "trials" / "0" / "arch_table.txt").is_file() and (tmp_path / "devices.txt").is_file()


def test_study_resumes_its_trial_count_and_a_pareto_front(tmp_path):
    out = tmp_path / "study"
    search(out, "n_trials=2", "sampler_seed=0", *FAST)
    search(out, "n_trials=4", "sampler_seed=0", *FAST)
    rows = trials(out)
    assert [int(r["number"]) for r in rows] == [0, 1, 2, 3]
    drawn = [{k: v for k, v in r.items() if k.startswith("p_")} for r in rows]
    assert drawn[2:] != drawn[:2]  # a seeded sampler continuing a study does not draw its first trials again
    pareto = tmp_path / "pareto"
    search(pareto, "n_trials=3", "objectives=[val_err,params]", *FAST)
    assert (pareto / "pareto_front.png").is_file()
    assert all(len(r["values"].split()) == 2 for r in trials(pareto))


def test_two_workers_share_one_sqlite_study(tmp_path):
    db = tmp_path / "shared.db"
    env = {**os.environ, "CNNLAB_DATA_DIR": str(tmp_path / "data")}
    cmd = [sys.executable, "src/search.py", "n_trials=3", "study_name=shared", f"storage=sqlite:///{db}", *FAST]
    workers = [
        subprocess.Popen(
            [*cmd, f"hydra.run.dir={tmp_path}/w{i}"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    assert all(w.returncode == 0 for w in workers), outputs
    import optuna

    study = optuna.load_study(study_name="shared", storage=f"sqlite:///{db}")
    # exactly n_trials trained; a trial asked beside the other worker past the budget is failed, never trained
    trained = [t for t in study.trials if t.state.name == "COMPLETE"]
    extra = [t for t in study.trials if t.state.name != "COMPLETE"]
    assert len(trained) == 3 and all("asked beyond n_trials" in t.user_attrs["fail_reason"] for t in extra)


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        (
            ("search.blocks.low=5",),
            "search.blocks = {'low': 5, 'high': 3}; expected a non-empty list of choices, or a range",
        ),
        (("+search.depth=3",), "search.depth is not an option here"),
        (("search.width=[]",), "search.width = []"),
        (("search.epochs=0",), "search.epochs = 0"),
        (("objectives=[params]",), "objectives = ['params']"),
        (("n_trials=0",), "n_trials = 0"),
        (("agent.name=sarsa",), "agent.name = 'sarsa'; expected one of evolution, qlearning, random, tpe"),
        (("sampler_seed=-1",), "sampler_seed = -1"),
    ],
)
def test_bad_space_is_refused_before_any_trial(tmp_path, overrides, fragment):
    with pytest.raises(ConfigError) as info:
        search(tmp_path, *overrides)
    assert fragment in str(info.value)
    assert not (tmp_path / "study.journal").exists() and not (tmp_path / "study.db").exists()


def test_a_storage_that_cannot_be_opened_is_one_sentence(tmp_path):
    from cnnlab.search.study import Search

    for url, fragments in (
        (
            "sqlite:////no/such/dir/x.db",
            ["storage=sqlite:////no/such/dir/x.db cannot be opened", "check that the folder exists"],
        ),
        ("postgresql://me:secret@127.0.0.1:1/x", ["storage=postgresql://me:***@127.0.0.1:1/x cannot be opened"]),
    ):
        plan = check_search(compose("search", "n_trials=1", f"storage={url}", f"paths.output_dir={tmp_path}"))
        with pytest.raises(ConfigError) as info:
            Search(plan).study()
        message = str(info.value)
        assert all(f in message for f in fragments) and "secret" not in message and "\n" not in message, message
