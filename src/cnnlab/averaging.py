"""Weight averaging, as the config declares it: an exponential moving average (`callbacks=ema`) and airbench's
lookahead (`callbacks=lookahead`), the same average that the model jumps to every `every` steps. Their options and
the two targets live here, without Lightning (a command's checks and `--help` stay fast); the callbacks themselves,
on Lightning's `WeightAveraging`, in `run/averaging.py`."""

from dataclasses import dataclass

from cnnlab.checks.fields import boolean, non_negative, number, positive_int
from cnnlab.checks.options import Options, option


@dataclass(frozen=True, kw_only=True)
class AveragingOptions(Options):
    """callbacks.ema and callbacks.lookahead."""

    every: int = option(positive_int, 5, "steps between updates of the average")
    decay: float = option(number(0, 1, high_open=True), 0.9, "the average's share at each update")
    power: float = option(non_negative, 0.0, "the decay grows as progress ** power (0: constant)")
    jump: bool = option(boolean, False, "the model jumps to the average at each update (lookahead)")
    buffers: bool = option(boolean, True, "average batch-norm statistics too (false: the average takes the model's "
                                          "own at each update, as the CIFAR-100 speedrun's lookahead does)")


@dataclass(frozen=True, kw_only=True)
class LookaheadOptions(AveragingOptions):
    """callbacks.lookahead: airbench's numbers, the decay growing as 0.95^5 x progress^3, and the jump."""

    decay: float = option(number(0, 1, high_open=True), 0.95**5, "the average's share at each update")
    power: float = option(non_negative, 3.0, "the decay grows as progress ** power (0: constant)")
    jump: bool = option(boolean, True, "the model jumps to the average at each update (lookahead)")


def ema(**values):
    """`callbacks.ema`'s target: its options checked, then the callback."""
    from cnnlab.run.averaging import EMA

    return EMA(AveragingOptions.read(values, "callbacks.ema."))


def lookahead(**values):
    """`callbacks.lookahead`'s target: its options checked, then the callback."""
    from cnnlab.run.averaging import Lookahead

    return Lookahead(LookaheadOptions.read(values, "callbacks.lookahead."))


ema.Options, lookahead.Options = AveragingOptions, LookaheadOptions  # what the schemas and --help read
