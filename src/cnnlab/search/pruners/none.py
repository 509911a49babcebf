"""`pruner=none`: every trial trains its whole budget."""

from cnnlab.search.pruners import Pruner


class NoPruning(Pruner):
    name = "none"
