"""Search agents (`agent=` in conf/agent/): which Optuna sampler draws each trial. One module per agent registers
an `Agent` with its options: `tpe` (Optuna's default), `random`, `evolution` (regularized evolution; NSGA-II for
several objectives), `qlearning` (MetaQNN's agent, for layer-by-layer spaces)."""

from dataclasses import dataclass
from typing import Any, ClassVar

from cnnlab.checks.fields import text
from cnnlab.checks.options import Options, option
from cnnlab.registry import Kind


@dataclass(frozen=True, kw_only=True)
class AgentOptions(Options):
    where = "agent."
    name: str = option(text, help="the agent (conf/agent/<name>.yaml)")


class Agent(Kind):
    package, group = "cnnlab.search.agents", "agent"
    _kinds: ClassVar[dict[str, type]] = {}
    Options = AgentOptions

    @classmethod
    def check(cls, options: AgentOptions, space: Any, n_trials: int) -> None:
        """Before the first trial: the agent with this space (its `Space` class) and budget."""

    @classmethod
    def sampler(cls, options: AgentOptions, seed: int | None, n_trials: int, objectives: int) -> Any:
        raise NotImplementedError
