"""A data set family: what it is (name, input shape, class names) and how its files are read into uint8 splits.

To add one: subclass `Family` in `data/<name>.py` (set `name`, `input_shape`, `all_class_names`; implement `read`,
and `prepare` if it can be downloaded), declare its options in `checks/data.py` (a `DataOptions` subclass) and
register both in `cnnlab.data.FAMILIES` and `checks.data.FAMILY_OPTIONS`; add `conf/data/<name>.yaml` with
`family: <name>`. Splits, class subsets, batching, normalisation and augmentation come from the rest of `data/`.
"""

from __future__ import annotations

from pathlib import Path

from cnnlab.checks.data import DataOptions
from cnnlab.data.splits import Split


class Family:
    name: str = ""
    input_shape: tuple[int, int, int] = (1, 1, 1)
    all_class_names: tuple[str, ...] = ()
    needs_statistics = False  # whether mean and std come from the training images once read

    def __init__(self, options: DataOptions, data_dir: str | Path):
        self.options, self.data_dir = options, Path(data_dir)

    def prepare(self) -> None:
        """Rank 0, before any rank reads: download what is missing (where the family can)."""

    def read(self) -> dict[str, Split]:
        """The family's own splits: `train` always, `val` and `test` where the data set defines them."""
        raise NotImplementedError

    def statistics(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel mean and std on the 0..1 scale: the config's (or 0.5 and 0.25 when it gives none)."""
        c = self.input_shape[0]
        return (self.options.mean or (0.5,) * c), (self.options.std or (0.25,) * c)
