"""Search that earns its keep (issue 33): regularized evolution mutates one choice of a parent from the study and
never trains an illegal list; Hyperband stops trials at its rungs and says what the study spent; recipe spaces
search an experiment's knobs, checked before the first trial; two worker processes killed mid-study resume to exactly
n_trials; the hand-over command reproduces the winning trial's validation accuracy."""

from __future__ import annotations

import csv

import optuna
import pytest

from cnnlab.checks.errors import ConfigError
from cnnlab.compose import compose
from cnnlab.search.agents.evolution import PLAN, EvolutionSampler
from cnnlab.search.plan import check_search
from cnnlab.search.study import run_search
from tests.conftest import run_script

FAST = ("trainer.limit_train_batches=3", "trainer.limit_val_batches=1")


def trials(folder):
    with open(folder / "trials.csv", newline="") as f:
        return list(csv.DictReader(f))


def search(out, *overrides):
    return run_search(check_search(compose("search", *overrides, f"paths.output_dir={out}",
                                           f"paths.data_dir={out.parent / 'data'}")))


def test_evolution_mutates_one_choice_of_a_tournament_winner():
    sampler = EvolutionSampler(population=4, tournament=2, seed=0)
    study = optuna.create_study(sampler=sampler)
    choices = {"width": [8, 16, 32, 64], "kernel": [1, 3, 5], "pool": ["max", "avg", "none"]}

    def objective(trial):
        values = {name: trial.suggest_categorical(name, options) for name, options in choices.items()}
        return values["width"] / 64 + values["kernel"] / 10 + (values["pool"] == "none")

    study.optimize(objective, n_trials=20)
    for trial in study.trials[4:]:  # after the first population, every trial has a parent
        plan = trial.system_attrs[PLAN]
        parent = study.trials[plan["parent"]]
        changed = [k for k in trial.params if trial.params[k] != parent.params[k]]
        assert changed == [plan["mutate"]]  # exactly the one choice it mutates
        before = [t for t in study.trials if t.datetime_complete and t.datetime_complete < trial.datetime_start]
        assert parent in before[-4:]  # a member of the population: the 4 most recently finished trials


def test_an_evolution_search_never_trains_an_illegal_list(tmp_path):
    out = tmp_path / "study"
    # stride-2 blocks on 8x8 digits: some children would collapse the map; they are refused, not trained
    search(out, "agent=evolution", "agent.population=3", "agent.tournament=2", "n_trials=8", "sampler_seed=1",
           "search.epochs=1", "search.stride=[2]", "search.blocks.high=3", "pruner=none", *FAST)
    rows = trials(out)
    assert len(rows) == 8 and any(r["parent"] for r in rows)
    for row in rows:
        if row["state"] == "FAIL":
            assert "ArchError" in row["reason"] and row["epochs"] == ""  # refused before any epoch
        else:
            assert row["state"] == "COMPLETE" and row["epochs"] == "1"


def test_hyperband_stops_trials_at_its_rungs_and_says_what_the_study_spent(tmp_path, capsys, caplog):
    out = tmp_path / "study"
    with caplog.at_level("INFO", logger="cnnlab.search"):
        search(out, "pruner=hyperband", "pruner.reduction_factor=2", "search.epochs=4", "n_trials=12",
               "sampler_seed=0", "trainer.limit_train_batches=5", "trainer.limit_val_batches=1")
    rows = trials(out)
    epochs = {r["number"]: int(r["epochs"]) for r in rows if r["state"] in ("COMPLETE", "PRUNED")}
    stopped = [epochs[r["number"]] for r in rows if r["state"] == "PRUNED"]
    assert stopped and set(stopped) <= {1, 2}  # at the rungs: 1 and 2 epochs, before the last
    assert all(epochs[r["number"]] == 4 for r in rows if r["state"] == "COMPLETE")
    said = "\n".join(r.getMessage() for r in caplog.records)  # each trial's end on the console, as it happens
    for r in rows:
        end = f"pruned after {epochs[r['number']]} epochs" if r["state"] == "PRUNED" else "finished, best validation"
        assert f"trial {r['number']}: {end}" in said
    spent = sum(epochs.values())
    assert spent < 4 * len(epochs) and f"epochs trained: {spent} of {4 * len(epochs)}" in capsys.readouterr().out


@pytest.mark.parametrize("overrides, fragment", [
    (("pruner=hyperband", "search.epochs=2"), "no rung comes before their end"),
    (("n_workers=0",), "n_workers = 0"),
    (("search=digits_recipe", "search.base=best_nothing"), "search.base = 'best_nothing': experiment=best_nothing"),
    (("search=digits_recipe", "~search.params", "+search.params={optim.learnig_rate:[0.1]}"),
     "search.params.optim.learnig_rate: optim.learnig_rate is not an argument of torch.optim.Adam. Did you mean "
     "'lr'?"),
    (("search=digits_recipe", "~search.params", "+search.params={optim.lr:{low:0.1,high:0.01}}"), "with low <= high"),
    (("search=digits_recipe", "~search.params", "+search.params={data.batch_size:[64,0]}"),
     "search.params.data.batch_size = 0 .*data.batch_size = 0"),
    (("agent=evolution", "agent.tournament=20"), "agent.tournament = 20 is more than agent.population"),
])
def test_bad_search_input_is_one_sentence_before_the_first_trial(tmp_path, overrides, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace(")", r"\)").replace("'", "'")):
        search(tmp_path / "study", *overrides)
    assert not (tmp_path / "study" / "study.journal").exists()


def test_a_study_reopened_with_another_agent_pruner_or_space_is_refused_and_kept(tmp_path):
    out = tmp_path / "study"
    search(out, "n_trials=2", "study_name=mine", "search.epochs=2", "pruner=none", *FAST)
    before = [(t.number, t.state, t.values, t.params) for t in _journal_trials(out, "mine")]
    for changed, said in ((("agent=random",), "agent=tpe"), (("pruner=median",), "pruner=none"),
                          (("search.width=[8]",), "another search space")):
        with pytest.raises(ConfigError, match=f"was searched with {said}"):
            search(out, "n_trials=3", "study_name=mine", "search.epochs=2", "pruner=none", *FAST, *changed)
    assert [(t.number, t.state, t.values, t.params) for t in _journal_trials(out, "mine")] == before  # nothing lost


def test_a_recipe_search_draws_knobs_and_hands_over_a_command_that_reproduces_its_winner(tmp_path, capsys):
    out = tmp_path / "study"
    search(out, "search=digits_recipe", "search.epochs=2", "n_trials=2", "sampler_seed=0", "pruner=none",
           "search.params.arch=[small]", "+search.params.scheduler=[cosine]")
    # T_max follows trainer.max_epochs: not written, or a longer run's cosine would restart at the trial's epochs
    assert "T_max" not in (out / "experiment" / "best_experiment.yaml").read_text()
    printed = capsys.readouterr().out
    command = next(line for line in printed.splitlines() if line.startswith("train the winner: "))
    assert command.endswith(f"--config-dir {out} experiment=best_experiment")
    best = min((r for r in trials(out) if r["state"] == "COMPLETE"), key=lambda r: float(r["values"]))
    rerun = run_script("train.py", tmp_path / "rerun", "--config-dir", str(out), "experiment=best_experiment",
                       data_dir=out.parent / "data")
    assert rerun.returncode == 0, rerun.output[-2000:]
    with open(tmp_path / "rerun" / "metrics.csv") as f:
        accuracy = max(float(r["val/acc"]) for r in csv.DictReader(f) if r.get("val/acc"))
    assert abs((1 - float(best["values"])) - accuracy) < 1e-6  # the trial's own validation accuracy
    assert "T_max: 2" in (tmp_path / "rerun" / "config.yaml").read_text()


def _journal_trials(out, name):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(out / "study.journal")))
    return optuna.load_study(study_name=name, storage=storage).trials


def test_a_long_trial_says_how_it_goes_at_most_once_a_minute(caplog):
    from types import SimpleNamespace

    import torch

    from cnnlab.search.trial import Fidelity

    trial = optuna.create_study().ask()
    callback = Fidelity("epochs", 9, trial)
    trainer = SimpleNamespace(sanity_checking=False, callback_metrics={"val/err": torch.tensor(0.25)},
                              current_epoch=0, max_epochs=9, should_stop=False)
    with caplog.at_level("INFO", logger="cnnlab.search"):
        callback.on_validation_end(trainer, None)  # within the first minute: nothing said
        callback._said -= 61
        trainer.current_epoch = 1
        callback.on_validation_end(trainer, None)
        callback.on_validation_end(trainer, None)  # said a moment ago: nothing again
    lines = [r.getMessage() for r in caplog.records if r.name == "cnnlab.search"]
    assert lines == [f"trial {trial.number}: 2 of 9 epochs, validation error 0.2500 (best 0.2500)"]
