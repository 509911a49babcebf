"""What a model needs to know of its data set, and what every checkpoint carries: the input shape, the class names and
the normalisation. A frozen value; stored in checkpoints as plain data (read with `weights_only`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class DataInfo:
    name: str
    input_shape: tuple[int, int, int]
    class_names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    shards: str | None = None  # the shards folder of a streamed data set

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_dict(self) -> dict[str, Any]:
        """As checkpoints have always held it: lists, and no `shards` key unless streamed."""
        out = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
        if out["shards"] is None:
            del out["shards"]
        return out

    @classmethod
    def from_dict(cls, saved: dict[str, Any]) -> DataInfo:
        """From a checkpoint's `data_info` of any cnnlab version (extra keys, such as the data config, are ignored)."""
        shape = tuple(saved["input_shape"])
        channels = shape[0]
        return cls(name=saved.get("name", ""), input_shape=shape, class_names=tuple(saved["class_names"]),
                   mean=tuple(saved.get("mean") or [0.5] * channels), std=tuple(saved.get("std") or [0.25] * channels),
                   shards=saved.get("shards"))
