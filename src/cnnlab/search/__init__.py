"""Learning the layer list (the seed's planned next step): a space (`template.py`, `sequential.py`), the agents that
sample it (Optuna's TPE and random samplers, and MetaQNN's Q-learning agent in `qlearning.py`), the study that
trains every sample (`study.py`), and what it leaves behind (`outputs.py`)."""

from cnnlab.search.study import run_search

__all__ = ["run_search"]
