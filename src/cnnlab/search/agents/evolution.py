"""`agent=evolution`: regularized evolution (Real et al., AAAI 2019) as an Optuna sampler. The parent is the best of
`tournament` members drawn from the `population` most recently finished trials (older ones retire); the child changes
one of its choices. Until the population is full, trials are random. Its memory is the study (resumes and workers
continue it); an illegal child is refused by the layer builders, never trained. Several objectives: NSGA-II."""

import random
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState

from cnnlab.checks.fields import OptionError, integer, positive_int
from cnnlab.checks.options import option
from cnnlab.search.agents import Agent, AgentOptions

PLAN = "evolution"  # the trial's system attribute: its parent and the parameter it mutates


@dataclass(frozen=True, kw_only=True)
class EvolutionOptions(AgentOptions):
    population: int = option(integer(2, example=10), 10, "the most recent finished trials that may be parents")
    tournament: int = option(positive_int, 3, "members drawn from the population; the best one is the parent")

    def validate(self) -> None:
        if self.tournament > self.population:
            raise OptionError(f"agent.tournament = {self.tournament} is more than agent.population = "
                              f"{self.population}; a tournament draws from the population.")


class Evolution(Agent):
    name, Options = "evolution", EvolutionOptions

    @classmethod
    def sampler(cls, options: EvolutionOptions, seed, n_trials, objectives):
        if objectives > 1:  # regularized evolution ranks by one value; NSGA-II is evolution for a Pareto front
            return optuna.samplers.NSGAIISampler(population_size=options.population, seed=seed)
        return EvolutionSampler(options.population, options.tournament, seed)


class EvolutionSampler(optuna.samplers.BaseSampler):
    def __init__(self, population: int = 10, tournament: int = 3, seed: int | None = None):
        self.population, self.tournament, self.seed = population, tournament, seed
        self._random = optuna.samplers.RandomSampler(seed=seed)

    def reseed_rng(self) -> None:
        self._random.reseed_rng()

    def infer_relative_search_space(self, study, trial) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(self, study, trial, search_space) -> dict[str, Any]:
        return {}

    def _plan(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, Any]:
        """The trial's parent (its number and parameters) and the one parameter it mutates; decided once per trial
        and kept in the study, where every worker reads it."""
        if PLAN in trial.system_attrs:
            return trial.system_attrs[PLAN]
        rng = random.Random(None if self.seed is None else self.seed * 100_003 + trial.number)
        finished = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
        finished.sort(key=lambda t: t.datetime_complete or t.datetime_start)
        plan: dict[str, Any] = {"parent": None, "params": {}, "mutate": None}
        if len(finished) >= self.population:
            members = rng.sample(finished[-self.population:], min(self.tournament, self.population))
            parent = min(members, key=lambda t: t.values[0])
            plan = {"parent": parent.number, "params": dict(parent.params), "mutate": rng.choice(list(parent.params))}
        study._storage.set_trial_system_attr(trial._trial_id, PLAN, plan)
        trial.system_attrs[PLAN] = plan  # the frozen copy this call holds
        return plan

    def sample_independent(self, study, trial, param_name: str, param_distribution: BaseDistribution) -> Any:
        plan = self._plan(study, trial)
        inherited = plan["params"].get(param_name, None)
        fits = param_name in plan["params"] and param_distribution._contains(
            param_distribution.to_internal_repr(inherited))
        if plan["parent"] is None or not fits:  # a parameter the parent never had (a block more): drawn at random
            return self._random.sample_independent(study, trial, param_name, param_distribution)
        if param_name != plan["mutate"]:
            return inherited
        return self._mutated(param_distribution, inherited, random.Random(f"{self.seed}-{trial.number}"))

    def _mutated(self, distribution: BaseDistribution, value: Any, rng: random.Random) -> Any:
        """Another value of the parameter: another choice, or a new draw from the range."""
        if isinstance(distribution, CategoricalDistribution):
            others = [c for c in distribution.choices if c != value]
            return rng.choice(others) if others else value
        low, high = distribution.low, distribution.high
        for _ in range(10):
            if isinstance(distribution, optuna.distributions.IntDistribution):
                drawn = rng.randrange(low, high + 1, distribution.step)
            elif getattr(distribution, "log", False):
                import math

                drawn = math.exp(rng.uniform(math.log(low), math.log(high)))
            else:
                drawn = rng.uniform(low, high)
            if drawn != value:
                return drawn
        return value


def parent_of(trial: FrozenTrial) -> int | None:
    """The number of the trial a trial was mutated from (None: drawn at random), for trials.csv."""
    return (trial.system_attrs.get(PLAN) or {}).get("parent")
