"""`src/search.py`: a real Optuna search on digits writes its outputs, its best arch trains, a study resumes,
two workers share one SQLite study, and a bad space is refused before any trial."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, run_script

FAST = ("search.epochs=2", "+trainer.limit_train_batches=3", "+trainer.limit_val_batches=1")


def trials(folder):
    with open(folder / "trials.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_search_writes_outputs_and_its_best_arch_trains(tmp_path):
    run = run_script("search.py", tmp_path / "study", "n_trials=4", *FAST)
    assert run.returncode == 0, run.output[-3000:]
    rows = trials(run.dir)
    assert [int(r["number"]) for r in rows] == [0, 1, 2, 3]
    assert all(r["state"] in ("COMPLETE", "PRUNED") for r in rows)
    for name in ("best_arch.yaml", "optimization_history.png", "study.db"):
        assert (run.dir / name).is_file(), name
    assert "pruned" in run.stdout and "best: trial" in run.stdout
    trained = run_script("train.py", tmp_path / "train", "arch=file", f"arch.path={run.dir / 'best_arch.yaml'}",
                         "debug=fast")
    assert trained.returncode == 0, trained.output[-3000:]


def test_a_trial_trains_through_train_pys_path_and_a_nan_trial_fails_with_its_reason(tmp_path):
    """optim=, model.* and the NaN stop reach every trial, as they reach `train.py`; a diverging trial is recorded as
    failed with the reason, and the study goes on."""
    run = run_script("search.py", tmp_path / "study", "n_trials=2", "optim=gd", "~search.lr", "+search.lr=[1.0e12]",
                     "~search.reg", "+search.reg=[0.0]", "search.batch_norm=[false]",  # batch norm could tame it
                     "model.label_smoothing=0.1", "sampler_seed=0", *FAST)
    assert run.returncode == 0, run.output[-3000:]
    rows = trials(run.dir)
    assert [r["state"] for r in rows] == ["FAIL", "FAIL"]
    assert all("NonFiniteLoss: the training loss became" in r["reason"] for r in rows)
    trial = (run.dir / "trials" / "0" / "config.yaml").read_text()
    assert "_target_: torch.optim.SGD" in trial and "label_smoothing: 0.1" in trial and "lr: 1000000000000.0" in trial
    assert (run.dir / "trials" / "0" / "arch_table.txt").is_file()


def test_study_resumes_its_trial_count(tmp_path):
    first = run_script("search.py", tmp_path / "study", "n_trials=2", *FAST)
    assert first.returncode == 0, first.output[-3000:]
    again = run_script("search.py", tmp_path / "study", "n_trials=3", *FAST)
    assert again.returncode == 0, again.output[-3000:]
    assert [int(r["number"]) for r in trials(again.dir)] == [0, 1, 2]


def test_multi_objective_writes_a_pareto_front(tmp_path):
    run = run_script("search.py", tmp_path / "study", "n_trials=3", "objectives=[val_err,params]", *FAST)
    assert run.returncode == 0, run.output[-3000:]
    assert (run.dir / "pareto_front.png").is_file()
    assert all(len(r["values"].split()) == 2 for r in trials(run.dir))


def test_two_workers_share_one_sqlite_study(tmp_path):
    db = tmp_path / "shared.db"
    env = {**os.environ, "CNNLAB_DATA_DIR": str(tmp_path / "data")}
    cmd = [sys.executable, "src/search.py", "n_trials=4", "study_name=shared", f"storage=sqlite:///{db}", *FAST]
    workers = [subprocess.Popen([*cmd, f"hydra.run.dir={tmp_path}/w{i}"], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    assert all(w.returncode == 0 for w in workers), outputs
    import optuna

    study = optuna.load_study(study_name="shared", storage=f"sqlite:///{db}")
    numbers = [t.number for t in study.trials]
    # each worker stops once the study holds 4 trials; a trial the other started meanwhile may add one
    assert 4 <= len(numbers) <= 5 and numbers == list(range(len(numbers)))
    assert all(t.state.is_finished() for t in study.trials)


def _search_config(out_dir, *overrides):
    """The search config as src/search.py composes it, writing into out_dir (for checks that need no process)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict

    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("search", list(overrides))
    with open_dict(cfg):
        cfg.paths.output_dir = str(out_dir)
    return cfg


def test_bad_space_is_refused(train, tmp_path):
    from cnnlab.errors import ConfigError
    from cnnlab.search.study import run_search

    for k, (overrides, fragment) in enumerate((
        (("search.blocks.low=5",), "search.blocks: low 5 must be <= high 3"),
        (("+search.depth=3",), "unknown keys ['depth']"),
        (("search.width=[]",), "search.width = []"),
        (("objectives=[params]",), "objectives = ['params']"),
    )):
        with pytest.raises(ConfigError) as info:
            run_search(_search_config(tmp_path / str(k), *overrides))
        assert fragment in str(info.value)
        assert not (tmp_path / str(k) / "study.db").exists()
    run = train("n_trials=0", script="search.py")  # and through the command line: exit 2, one line
    assert run.returncode == 2 and "n_trials = 0" in run.stderr and "Traceback" not in run.output, run.stderr
    assert not (run.dir / "study.db").exists()


def test_a_storage_that_cannot_be_opened_is_one_sentence(tmp_path):
    from omegaconf import open_dict

    from cnnlab.errors import ConfigError
    from cnnlab.search.study import Search

    cfg = _search_config(tmp_path, "n_trials=1")
    for url, fragments in (
        ("sqlite:////no/such/dir/x.db", ["storage=sqlite:////no/such/dir/x.db cannot be opened",
                                         "check that the folder exists"]),
        ("postgresql://me:secret@127.0.0.1:1/x", ["storage=postgresql://me:***@127.0.0.1:1/x cannot be opened"]),
    ):
        with open_dict(cfg):
            cfg.storage = url
        with pytest.raises(ConfigError) as info:
            Search(cfg).study()
        message = str(info.value)
        assert all(f in message for f in fragments) and "secret" not in message and "\n" not in message, message
