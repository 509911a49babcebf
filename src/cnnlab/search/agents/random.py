"""`agent=random`: every choice uniformly at random (the baseline any agent has to beat)."""

from cnnlab.search.agents import Agent


class Random(Agent):
    name = "random"

    @classmethod
    def sampler(cls, options, seed, n_trials, objectives):
        import optuna

        return optuna.samplers.RandomSampler(seed=seed)
