"""The search agents on the layer-by-layer space: MetaQNN's Q-update, masking, epsilon schedules, resuming, and
`src/search.py agent=qlearning|random` end to end."""

from __future__ import annotations

import shutil

import optuna
import pytest

from cnnlab.checks.errors import ConfigError
from cnnlab.layers import build_network
from cnnlab.search.agents.qlearning import Path, QLearningSampler, check_schedule, epsilon_at, update
from cnnlab.search.spaces.sequential import Sequential, SequentialOptions
from tests.test_search import search, trials


def sequential(space: dict, shape, classes: int) -> Sequential:
    return Sequential(SequentialOptions.read(space), shape, classes)


SPACE = {
    "kind": "sequential",
    "max_depth": 5,
    "max_fc": 2,
    "fc_max_size": 4,
    "conv": {"num_output": [4, 8], "kernel_size": [3, 5], "stride": [1], "padding": ["valid"]},
    "pool": {"kernel_size": [2], "stride": [2]},
    "fc": {"num_output": [16, 32]},
    "drop_out": [20],
    "activation": "relu",
    "lr": 1e-3,
    "reg": 0.0,
    "batch_size": 32,
    "epochs": 1,
}
SHAPE = (1, 12, 12)


def test_q_update_on_a_hand_built_replay():
    q: dict = {}
    good = Path((("s0", "a", ("a", "b")), ("s1", "T", ("T",))), reward=0.9)
    update(q, good, alpha=0.5, gamma=1.0, initial=0.5)
    assert q == pytest.approx({("s1", "T"): 0.7, ("s0", "a"): 0.6})  # 0.5*0.5 + 0.5*0.9; then 0.5*0.5 + 0.5*0.7
    update(q, good, alpha=0.5, gamma=1.0, initial=0.5)
    assert q == pytest.approx({("s1", "T"): 0.8, ("s0", "a"): 0.7})
    bad = Path((("s0", "b", ("a", "b")), ("s2", "T", ("T", "c"))), reward=0.2)
    update(q, bad, alpha=0.5, gamma=1.0, initial=0.5)
    # the next state's best action is the untried c (initial 0.5), not T (0.35)
    assert q[("s2", "T")] == pytest.approx(0.35) and q[("s0", "b")] == pytest.approx(0.5)
    update(q, bad, alpha=0.5, gamma=0.5, initial=0.5)  # a discount scales the bootstrapped value
    assert q[("s0", "b")] == pytest.approx(0.5 * 0.5 + 0.5 * 0.5 * 0.5)


def _reward(layers) -> float:
    """A made-up objective the agent can learn: lists with an FC of 32 and few layers score high."""
    return (
        0.5
        + 0.3 * any(layer.get("num_output") == 32 and layer["type"] == "FC" for layer in layers)
        - 0.02 * len(layers)
    )


def _search(sampler, storage=None, n=40, name="s"):
    space = sequential(SPACE, SHAPE, 10)
    study = optuna.create_study(sampler=sampler, storage=storage, study_name=name, load_if_exists=True)
    drawn = []

    def objective(trial):
        layers, _ = space.walk(lambda key, legal: trial.suggest_categorical(key, legal))
        trial.set_user_attr("layers", layers)
        drawn.append(layers)
        return 1 - _reward(layers)

    study.optimize(objective, n_trials=n)
    return study, drawn


def test_agent_draws_only_legal_lists_and_learns_the_reward():
    stages = check_schedule([[1.0, 25], [0.0, 15]], 40)
    study, drawn = _search(QLearningSampler(stages, learning_rate=0.2, replay=20, seed=3))
    for layers in drawn:
        net = build_network(layers, SHAPE, 10)  # builds: no size ever collapsed
        kinds = [layer["type"] for layer in layers]
        assert len(layers) - 1 <= SPACE["max_depth"] and kinds[-1] == "T"
        assert "PP" not in "".join(k[0] for k in kinds) and kinds.count("FC") <= 2
        widths = [layer["num_output"] for layer in layers if layer["type"] == "FC"]
        assert widths == sorted(widths, reverse=True)  # FC widths never grow
        for row, layer in zip(net.rows, layers):
            if layer["type"] == "FC":  # FC only on small maps: the layer before it is at most 4x4 or flat
                before = net.rows[row.index - 1].shape if row.index else SHAPE
                assert len(before) == 1 or max(before[1:]) <= 4
    explored = sum(_reward(layers) for layers in drawn[:25]) / 25
    exploited = sum(_reward(layers) for layers in drawn[25:]) / 15
    assert exploited > explored + 0.1  # greedy on the learnt Q-values beats random walks


def test_masking_removes_what_does_not_fit():
    space = sequential(SPACE, SHAPE, 10)
    start = space.start()
    first = space.legal(start)
    assert "T" not in first and "DO20" not in first and "FC16" not in first  # nothing to end or drop; 12x12 map
    after = space.step(space.step(start, "C8k5s1-valid"), "C8k5s1-valid")  # 12 -> 8 -> 4 (valid padding)
    legal = space.legal(after)
    assert "C8k5s1-valid" not in legal and "C8k3s1-valid" in legal  # a 5x5 kernel no longer fits a 4x4 map
    assert "FC32" in legal and "T" in legal
    fc = space.step(after, "FC16")
    assert set(space.legal(fc)) == {"FC16", "DO20", "T"}  # after FC: no conv or pool, no wider FC


def test_resumed_study_continues_the_same_agent(tmp_path):
    stages = check_schedule([[1.0, 6], [0.0, 6]], 12)
    url = f"sqlite:///{tmp_path / 'a.db'}"
    first, _ = _search(QLearningSampler(stages, seed=1, replay=10), storage=url, n=8)
    shutil.copy(tmp_path / "a.db", tmp_path / "b.db")
    continuing = QLearningSampler(stages, seed=1, replay=10)
    continuing.replayed(first.get_trials())
    resumed = QLearningSampler(stages, seed=1, replay=10)  # a new process: nothing but the study
    _, more_a = _search(continuing, storage=url, n=4)
    _, more_b = _search(resumed, storage=f"sqlite:///{tmp_path / 'b.db'}", n=4)
    assert more_a == more_b  # the same lists drawn after the resume
    # the running agent (updated incrementally) and one rebuilt from the other study alone hold the same Q-values
    q_a = dict(continuing.replayed(optuna.load_study(study_name="s", storage=url).get_trials()))
    q_b = resumed.replayed(optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'b.db'}").get_trials())
    assert q_a == pytest.approx(q_b) and len(q_a) > 5


def test_schedules_and_spaces_are_checked_before_any_trial():
    assert check_schedule(None, 20)[0] == (1.0, 10) and sum(n for _, n in check_schedule(None, 7)) == 7
    assert epsilon_at([(1.0, 2), (0.5, 2)], 0) == 1.0 and epsilon_at([(1.0, 2), (0.5, 2)], 3) == 0.5
    from cnnlab.search.agents.qlearning import QLearning, QLearningOptions

    with pytest.raises(ConfigError, match="covers 9 trials but n_trials = 10"):
        QLearning.check(QLearningOptions.read({"name": "qlearning", "epsilon": [[1.0, 5], [0.1, 4]]}), Sequential, 10)

    with pytest.raises(ConfigError, match="0 <= epsilon <= 1"):
        QLearningOptions.read({"name": "qlearning", "epsilon": [[1.5, 10]]})
    with pytest.raises(ConfigError, match="agent.replay = 0"):
        QLearningOptions.read({"name": "qlearning", "replay": 0})
    with pytest.raises(ConfigError, match="max_depth = 1"):
        sequential({**SPACE, "max_depth": 1}, SHAPE, 10)
    with pytest.raises(ConfigError, match="T cannot be reached"):
        sequential(
            {
                **SPACE,
                "conv": {"num_output": [4], "kernel_size": [13], "padding": ["valid"]},
                "pool": {"kernel_size": [13], "padding": ["valid"]},
            },
            SHAPE,
            10,
        )
    with pytest.raises(ConfigError, match="field 'num_output' = 0"):
        sequential({**SPACE, "fc": {"num_output": [0]}}, SHAPE, 10)


FAST = ("search.epochs=1", "trainer.limit_train_batches=3", "trainer.limit_val_batches=1")


def test_qlearning_search_runs_and_writes_what_it_learnt(tmp_path, fit):
    out = tmp_path / "study"
    search(out, "agent=qlearning", "n_trials=5", "study_name=mine", *FAST)
    rows = trials(out)
    assert len(rows) == 5 and all(r["layers"].endswith("T") for r in rows)
    for name in ("best_arch.yaml", "epsilon_rewards.png", "top_layer_lists.txt", "optimization_history.png"):
        assert (out / name).is_file(), name
    fit("arch=file", f"arch.path={out / 'best_arch.yaml'}", "debug=fast")
    with pytest.raises(ConfigError, match="was searched with agent=qlearning"):
        search(out, "agent=random", "search=metaqnn", "n_trials=6", "study_name=mine", *FAST)
    for overrides, fragment in (
        (("agent=qlearning", "n_trials=4", "agent.epsilon=[[1.0,3]]"), "covers 3 trials"),
        (("agent=qlearning", "search=cnn_small"), "needs a sequential space"),
        (("agent=qlearning", "search.max_depth=1"), "max_depth = 1"),
    ):
        with pytest.raises(ConfigError, match=fragment):
            search(tmp_path / "bad", *overrides)
