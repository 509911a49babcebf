"""MetaQNN's agent (Baker et al., ICLR 2017) as an Optuna sampler (`agent=qlearning`): a layer list one action at a
time (`spaces/sequential.py`), epsilon-greedy on Q-values. Its memory is the study: the Q-values are replayed from the
finished trials in the order they finished (each path once, then `replay` paths drawn from memory, seeded by the
trial), so a resumed study or many workers continue the same agent. MetaQNN's update, backwards along a path:
Q(s_T, a_T) += alpha (reward - Q); Q(s_i, a_i) += alpha (gamma max_a Q(s_i+1, a) - Q), reward = validation accuracy."""

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState

from cnnlab.checks.fields import Checker, OptionError, number, positive_int
from cnnlab.checks.options import option
from cnnlab.search.agents import Agent, AgentOptions
from cnnlab.search.spaces.sequential import STATE_PREFIX, depth_of

log = logging.getLogger("cnnlab.search")

# MetaQNN's schedule, as shares of the budget: half the trials explore at random, then epsilon steps down
METAQNN_SHARES = [(1.0, 0.5), (0.9, 0.05), (0.8, 0.05), (0.7, 0.05), (0.6, 0.05), (0.5, 0.05), (0.4, 0.05),
                  (0.3, 0.05), (0.2, 0.05), (0.1, 0.1)]


@dataclass(frozen=True)
class Path:
    """One trained list: the (state, action, legal actions there) steps in order, and its reward."""

    steps: tuple[tuple[str, str, tuple[str, ...]], ...]
    reward: float


def check_schedule(schedule: Any, n_trials: int) -> list[tuple[float, int]]:
    """[[epsilon, trials], ...] (checked into the plan to sum to n_trials); null: MetaQNN's shape scaled to n_trials,
    each later stage rounded to whole trials and the random stage taking the rest."""
    if schedule is None:
        counts = [max(0, round(share * n_trials)) for _, share in METAQNN_SHARES]
        counts[0] += n_trials - sum(counts)  # rounding: the random phase absorbs the difference
        return [(eps, n) for (eps, _), n in zip(METAQNN_SHARES, counts) if n > 0]
    return [(float(eps), int(n)) for eps, n in schedule]


def schedule_warning(n_trials: int) -> str | None:
    """What MetaQNN's schedule, scaled to `n_trials`, leaves out; None when every stage has a trial."""
    stages = dict(check_schedule(None, n_trials))
    skipped = [eps for eps, _ in METAQNN_SHARES if eps not in stages]
    if not skipped:
        return None
    needed = next(n for n in range(n_trials + 1, 10_000) if len(check_schedule(None, n)) == len(METAQNN_SHARES))
    shown = ", ".join(f"{eps:g}: {n}" for eps, n in stages.items())
    return (f"agent=qlearning with n_trials={n_trials}: MetaQNN's schedule gives {shown} trials (epsilon: trials), "
            f"and no trial at epsilon {', '.join(f'{e:g}' for e in skipped)}; the agent barely uses what it learns. "
            f"Every stage gets a trial from n_trials={needed}, MetaQNN's proportions need about 100; or set "
            "agent.epsilon=[[1.0, n], [0.5, n], [0.1, n]] to spend a small budget your way.")


def epsilon_at(stages: Sequence[tuple[float, int]], trial_number: int) -> float:
    end = 0
    for eps, n in stages:
        end += n
        if trial_number < end:
            return eps
    return stages[-1][0]  # trials past the budget (another worker's extra trial) keep the last epsilon


def update(q: dict[tuple[str, str], float], path: Path, alpha: float, gamma: float, initial: float) -> None:
    """MetaQNN's update of one path, from its last step back to its first."""
    last_state, last_action, _ = path.steps[-1]
    old = q.get((last_state, last_action), initial)
    q[(last_state, last_action)] = (1 - alpha) * old + alpha * path.reward
    for i in range(len(path.steps) - 2, -1, -1):
        state, action, _ = path.steps[i]
        next_state, _, next_legal = path.steps[i + 1]
        best_next = max(q.get((next_state, a), initial) for a in next_legal)
        old = q.get((state, action), initial)
        q[(state, action)] = (1 - alpha) * old + alpha * gamma * best_next


def path_of(trial: FrozenTrial) -> Path | None:
    """The path a finished trial took and its reward (validation accuracy); None if it has neither."""
    if trial.state == TrialState.COMPLETE and trial.values:
        error = trial.values[0]
    elif trial.state == TrialState.PRUNED and trial.intermediate_values:
        error = trial.intermediate_values[max(trial.intermediate_values)]  # its last report
    else:
        return None
    names = sorted((n for n in trial.params if n.startswith(STATE_PREFIX)), key=depth_of)
    steps = []
    for name in names:
        dist = trial.distributions[name]
        if not isinstance(dist, CategoricalDistribution):
            return None
        steps.append((name, trial.params[name], tuple(dist.choices)))
    return Path(tuple(steps), 1.0 - error) if steps else None


class QLearningSampler(optuna.samplers.BaseSampler):
    """Epsilon-greedy on Q-values replayed from the study. Parameters that are not layer-by-layer states (none in
    cnnlab's sequential spaces) go to a seeded random sampler."""

    def __init__(self, epsilon: Sequence[tuple[float, int]], learning_rate: float = 0.01, discount: float = 1.0,
                 initial_q: float = 0.5, replay: int = 100, seed: int | None = None):
        self.stages, self.alpha, self.gamma, self.initial = list(epsilon), learning_rate, discount, initial_q
        self.replay, self.seed = replay, 0 if seed is None else seed
        self._fallback = optuna.samplers.RandomSampler(seed=seed)
        self._seen: list[int] = []  # trial numbers replayed so far, in order
        self._memory: list[Path] = []
        self.q: dict[tuple[str, str], float] = {}

    # --- the agent's memory, rebuilt from the study ---------------------------------------------------------------
    def replayed(self, trials: Sequence[FrozenTrial]) -> dict[tuple[str, str], float]:
        """The Q-values after replaying these trials in the order they finished (incremental when the study only
        grew since the last call, else recomputed from nothing: same study, same Q-values)."""
        finished = sorted((t for t in trials if path_of(t) is not None),
                          key=lambda t: (t.datetime_complete or t.datetime_start, t.number))
        numbers = [t.number for t in finished]
        if numbers[: len(self._seen)] != self._seen:
            self._seen, self._memory, self.q = [], [], {}
        for trial in finished[len(self._seen):]:
            self._memory.append(path_of(trial))
            self._seen.append(trial.number)
            rng = random.Random(f"{self.seed}/replay/{trial.number}")
            # the newest path once, then `replay` paths drawn from the whole memory (MetaQNN's experience replay)
            for path in [self._memory[-1], *(rng.choice(self._memory) for _ in range(self.replay))]:
                update(self.q, path, self.alpha, self.gamma, self.initial)
        return self.q

    # --- Optuna's sampler interface --------------------------------------------------------------------------------
    def infer_relative_search_space(self, study, trial) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(self, study, trial, search_space) -> dict[str, Any]:
        return {}

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.replayed(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))

    def sample_independent(self, study, trial, param_name: str, param_distribution: BaseDistribution) -> Any:
        if not param_name.startswith(STATE_PREFIX) or not isinstance(param_distribution, CategoricalDistribution):
            return self._fallback.sample_independent(study, trial, param_name, param_distribution)
        choices = list(param_distribution.choices)
        rng = random.Random(f"{self.seed}/act/{trial.number}/{param_name}")
        if rng.random() < epsilon_at(self.stages, trial.number):
            return rng.choice(choices)
        values = [self.q.get((param_name, a), self.initial) for a in choices]
        best = max(values)
        return rng.choice([a for a, v in zip(choices, values) if v == best])


def _schedule(value: Any) -> tuple[tuple[float, int], ...] | None:
    if value is None:
        return None
    try:
        stages = tuple((float(eps), int(n)) for eps, n in value)
    except (TypeError, ValueError):
        stages = ()
    if stages and all(0 <= eps <= 1 and n >= 1 for eps, n in stages):
        return stages
    raise ValueError("[[epsilon, trials], ...] with 0 <= epsilon <= 1 and a positive number of trials per stage, e.g. "
                     "[[1.0, 10], [0.5, 5], [0.1, 5]]")


@dataclass(frozen=True, kw_only=True)
class QLearningOptions(AgentOptions):
    epsilon: Any = option(Checker(_schedule, ([[1.5, 10]], "often")), None,
                          "[[epsilon, trials], ...] summing to n_trials; null: MetaQNN's shape scaled to n_trials")
    learning_rate: float = option(number(0, 1, low_open=True), 0.01, "MetaQNN's alpha")
    discount: float = option(number(0, 1), 1.0, "MetaQNN's gamma")
    initial_q: float = option(number(), 0.5, "the Q-value of an action never tried")
    replay: int = option(positive_int, 100, "paths replayed from memory after each trial")


class QLearning(Agent):
    name, Options = "qlearning", QLearningOptions

    @classmethod
    def check(cls, options: QLearningOptions, space, n_trials: int) -> None:
        if not space.walks_layers:
            raise OptionError("agent=qlearning builds layer lists one layer at a time: it needs a sequential space, "
                              "e.g. search=metaqnn (conf/search/metaqnn.yaml), not a template or recipe space.")
        if options.epsilon is not None and sum(n for _, n in options.epsilon) != n_trials:
            raise OptionError(f"agent.epsilon covers {sum(n for _, n in options.epsilon)} trials but n_trials = "
                              f"{n_trials}; the stages must sum to the trial budget (or set agent.epsilon=null for "
                              f"MetaQNN's schedule scaled to {n_trials}).")

    @classmethod
    def sampler(cls, options: QLearningOptions, seed, n_trials, objectives):
        warning = schedule_warning(n_trials) if options.epsilon is None else None
        if warning:
            log.warning(warning)
        return QLearningSampler(check_schedule(options.epsilon, n_trials), seed=seed,
                                learning_rate=options.learning_rate, discount=options.discount,
                                initial_q=options.initial_q, replay=options.replay)
