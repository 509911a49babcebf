"""`data=stream data.root=SHARDS`: shards written once by `prepare.py`, streamed (`cnnlab.data.stream`). The shards
fix the splits, classes and statistics; the config may state the classes and size it expects."""

from dataclasses import dataclass
from pathlib import Path

from cnnlab.checks.fields import OptionError, non_negative_int, optional, sequence, text
from cnnlab.checks.options import option
from cnnlab.data.family import Family
from cnnlab.data.options import DataOptions, folder_path, image_size


@dataclass(frozen=True, kw_only=True)
class StreamOptions(DataOptions):
    """`data=stream`: shards written by prepare.py; they fix the splits, classes and statistics."""

    root: str = option(folder_path, "???", "the shards folder written by prepare.py")
    workers: int = option(non_negative_int, 2, "decoding processes per rank (0: in the training process)")
    class_names: tuple[str, ...] | None = option(optional(sequence(text, "class names")), None,
                                                 "the classes this config expects, checked against the shards'")
    image_size: tuple[int, int] | None = option(image_size, None, "the image size this config expects, checked")

    def validate(self) -> None:
        super().validate()
        if self.root == "???":
            raise OptionError("data=stream needs data.root=SHARDS: a folder written by python src/prepare.py "
                              "data=<data set> out=SHARDS.")
        if not Path(self.root).expanduser().is_dir():
            raise OptionError(f"data.root={self.root} does not exist; a shards folder is made by prepare.py (write it "
                              f"with: python src/prepare.py data=<data set> out={self.root}).")


class Stream(Family):
    name = "stream"
    Options = StreamOptions

    @classmethod
    def source(cls, options: StreamOptions, data_dir: str | Path):
        from cnnlab.data.stream import StreamSource

        return StreamSource(options, data_dir)
