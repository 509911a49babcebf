"""`agent=tpe` (the default): Optuna's tree-structured Parzen estimator draws every choice of the space."""

from cnnlab.search.agents import Agent


class TPE(Agent):
    name = "tpe"

    @classmethod
    def sampler(cls, options, seed, n_trials, objectives):
        import optuna

        return optuna.samplers.TPESampler(seed=seed)
