"""A data set family: what it is (name, input shape, class names), which options it takes, and how its files are read
into uint8 splits. One registry: every subclass with a `name` registers itself, and every module of
`cnnlab/data/families/` is a family. A new data set is its module there and its `conf/data/<name>.yaml`.

Family modules are imported to check a config (before anything heavy): they import torch inside their readers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from cnnlab.checks.fields import boolean
from cnnlab.checks.options import option
from cnnlab.data.options import DataOptions
from cnnlab.registry import Kind

if TYPE_CHECKING:
    from cnnlab.data.splits import Split

@dataclass(frozen=True, kw_only=True)
class DownloadOptions(DataOptions):
    """Options of a family torchvision can download."""

    download: bool = option(boolean, True, "download through torchvision (rank 0) when files are missing")


class Family(Kind):
    """Subclass it with `name`, `input_shape` and `all_class_names` (where they are known before reading), `Options`
    (a DataOptions subclass, when the family takes options of its own), `read`, and `prepare` if it downloads."""

    package, group, key = "cnnlab.data.families", "data", "family"
    _kinds: ClassVar[dict[str, type]] = {}
    input_shape: tuple[int, int, int] | None = None
    all_class_names: tuple[str, ...] = ()
    Options: type[DataOptions] = DataOptions
    needs_statistics = False  # whether mean and std come from the training images once read

    def __init_subclass__(cls, **kwargs):
        if cls.name:  # its options know its classes and channels, so that they are checked before reading
            known = {"known_classes": tuple(cls.all_class_names),
                     "known_channels": cls.input_shape[0] if cls.input_shape else None}
            cls.Options = type("Options", (cls.Options,), {**known, "__module__": cls.__module__,
                                                            "__qualname__": f"{cls.__qualname__}.Options"})
        super().__init_subclass__(**kwargs)

    def __init__(self, options: DataOptions, data_dir: str | Path):
        self.options, self.data_dir = options, Path(data_dir)

    @classmethod
    def source(cls, options: DataOptions, data_dir: str | Path):
        """Where its images come from: read into memory (a streamed family returns its own source)."""
        from cnnlab.data.memory import MemorySource

        return MemorySource(cls(options, data_dir), options)

    def prepare(self) -> None:
        """Rank 0, before any rank reads: download what is missing (where the family can)."""

    def read(self) -> dict[str, Split]:
        """The family's own splits: `train` always, `val` and `test` where the data set defines them."""
        raise NotImplementedError

    def statistics(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel mean and std on the 0..1 scale: the config's (or 0.5 and 0.25 when it gives none)."""
        c = self.input_shape[0]
        return (self.options.mean or (0.5,) * c), (self.options.std or (0.25,) * c)



def read_data(values: dict) -> DataOptions:
    """A data config as its family's options (the family's module declares them: cnnlab/data/families/)."""
    return Family.checked(values)
