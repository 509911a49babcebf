"""`data=stream data.root=SHARDS`: images streamed from prepare.py's shards, never held in memory. litdata's loader
shuffles per epoch, shards across workers, ranks and nodes, and keeps its position in every checkpoint (a resumed
run continues mid-epoch); decoding happens in its workers, the batching side is every source's."""

import functools
import logging
from pathlib import Path

import torch
from litdata import StreamingDataset

from cnnlab.checks.errors import DataError
from cnnlab.data.info import DataInfo
from cnnlab.data.options import DataOptions
from cnnlab.data.shards import Decoder, read_meta

log = logging.getLogger("cnnlab")
# what data=stream ignores because the shards fixed it, when an experiment written for the in-memory data set sets it
FIXED_BY_PREPARE = ("protocol", "val_size", "test_size", "classes", "train_size", "train_eval_size")
logging.getLogger("litdata").setLevel(logging.WARNING)  # its INFO lines (cache sizes) say nothing about the run
# evaluation under DDP reads with drop_last off on purpose (every image once); litdata warns about it per loader
logging.getLogger("litdata.streaming.dataset").addFilter(lambda record: "disabled the `drop_last`" not in
                                                         record.getMessage())


class Checked(StreamingDataset):
    """litdata's dataset, whose reading of a damaged chunk (bytes changed at the same size) is one sentence naming the
    shards, wherever litdata finds it: opening the chunks for an epoch, or reading an item."""

    def __iter__(self):
        try:
            return super().__iter__()
        except Exception as err:  # noqa: BLE001 - whatever litdata raises on damaged bytes
            raise self._damaged(err) from None

    def __next__(self):
        try:
            return super().__next__()
        except (StopIteration, DataError):
            raise
        except Exception as err:  # noqa: BLE001
            raise self._damaged(err) from None

    def __getitem__(self, index):
        try:
            return super().__getitem__(index)
        except DataError:
            raise
        except Exception as err:  # noqa: BLE001
            raise self._damaged(err, getattr(index, "chunk_index", None)) from None

    def _damaged(self, err: Exception, chunk: int | None = None) -> DataError:
        name = f"chunk {chunk} of " if chunk is not None else ""
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return DataError(f"{name}{self.input_dir.path} cannot be read ({type(err).__name__}: {detail[:240]}): the "
                         "shards are damaged; copy them again, or write them again with prepare.py.")


class StreamSource:
    """Where images come from when they are streamed from shards."""

    streamed = True

    def __init__(self, options: DataOptions, data_dir: str | Path | None = None):
        self.options, self.root = options, Path(options.root).expanduser()
        self.meta = read_meta(self.root)  # the shards checked, before anything else
        self.name = self.meta["name"]
        self.input_shape = tuple(self.meta["input_shape"])
        self.class_names = list(self.meta["class_names"])
        self._expect(options)
        set_here = [f"{k}={getattr(options, k)}" for k in FIXED_BY_PREPARE
                    if getattr(options, k) != type(options).fields()[k].check(type(options).fields()[k].default)]
        if set_here:  # an experiment written for the in-memory data set may set them; the shards already decided
            log.info("data=stream: %s were fixed when the shards were written (prepare.py); ignored here",
                     ", ".join(set_here))
        self._decoder = Decoder(self.input_shape, self.meta["store"] == "encoded", len(self.class_names),
                                str(self.root))
        self.world, self.workers = 1, max(options.workers, 1)  # the ranks are known when the loaders are made

    def _expect(self, options: DataOptions) -> None:
        """The config's own statement of the classes and image size, when it makes one, must be the shards'."""
        where = self.root / "cnnlab.json"
        if options.class_names is not None and list(options.class_names) != self.class_names:
            raise DataError(f"{where}: the shards hold classes {self.class_names}, the config expects "
                            f"{list(options.class_names)} (data.class_names); write shards of those classes or fix "
                            "the config.")
        if options.image_size is not None and tuple(options.image_size) != self.input_shape[1:]:
            h, w = options.image_size
            raise DataError(f"{where}: the shards hold {self.input_shape[1]}x{self.input_shape[2]} images, the config "
                            f"expects {h}x{w} (data.image_size); write the shards again with data.image_size set, or "
                            "fix the config.")

    def prepare(self) -> None:
        """Nothing to download: the shards were checked when the source was made."""

    def open(self) -> None:
        """Nothing to read ahead: the images stay in the chunk files."""

    @property
    def info(self) -> DataInfo:
        mean = self.options.mean or tuple(self.meta["mean"])  # the training split's, computed when written
        std = self.options.std or tuple(self.meta["std"])
        return DataInfo(self.meta["name"], self.input_shape, tuple(self.class_names), tuple(mean), tuple(std),
                        shards=str(self.root))

    @functools.cached_property
    def flip_parity(self) -> torch.Tensor:
        """`flip: alternate` needs one bit per training position."""
        positions = self.meta["splits"]["train"]["positions"]
        return torch.randint(0, 2, (positions,), generator=torch.Generator().manual_seed(self.options.seed))

    def count(self, split: str) -> int:
        return self.meta["splits"][split]["images"]

    def sample(self, n: int) -> torch.Tensor:
        """The first `n` training images as stored (uint8), read from the chunks directly (for `init: whiten`)."""
        dataset = Checked(str(self.root / "train"), transform=self._decoder)
        return torch.stack([dataset[i][0] for i in range(min(n, len(dataset)))])

    def loader(self, split: str, batch_size: int, shuffle: bool, rank: int, world: int, device: torch.device):
        from litdata import StreamingDataLoader

        self.world = world
        size = self._train_batch_size(batch_size) if shuffle else self._eval_batch_size(split, batch_size)
        # made here, in the process that trains (after DDP has started): litdata shards by the ranks it sees then
        dataset = Checked(str(self.root / split), shuffle=shuffle, drop_last=shuffle, seed=self.options.seed,
                          transform=self._decoder)
        # its own generator: starting the workers would otherwise draw their seeds from the global RNG, so a resumed
        # run would see other dropout masks than the uninterrupted one
        return StreamingDataLoader(dataset, batch_size=size, num_workers=self.options.workers,
                                   pin_memory=device.type == "cuda", generator=torch.Generator())

    def _train_batch_size(self, batch_size: int) -> int:
        """Training drops the last partial batch (litdata's drop_last: equal steps on every rank)."""
        images = self.count("train")
        if images < batch_size * self.world * self.workers:
            raise DataError(f"{self.root / 'train'} has {images:,} images, fewer than one batch for each rank's "
                            f"loader workers ({batch_size} x {self.world} x {self.workers}); lower data.batch_size or "
                            "data.workers.")
        return batch_size

    def _eval_batch_size(self, split: str, batch_size: int) -> int:
        """litdata gives each rank's loader workers whole batches and the remainder to the last: with batches of at most
        a share of the split, every rank has one (Lightning needs that) and every image is evaluated exactly once."""
        images = self.count(split)
        if images < self.world * self.workers:
            raise DataError(f"{self.root / split} has {images} images, fewer than ranks x loader workers "
                            f"({self.world} x {self.workers}); use fewer data.workers or ranks, or write more images "
                            "into it.")
        return min(batch_size, images // (self.world * self.workers))
