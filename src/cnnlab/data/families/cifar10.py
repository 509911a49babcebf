"""CIFAR-10 in torchvision's layout (`cifar-10-batches-py/`), read without running pickled code."""

from pathlib import Path

import numpy as np

from cnnlab.checks.errors import DataError
from cnnlab.data.family import DownloadOptions, Family
from cnnlab.data.files import check_labels, missing, read_pickle


class CIFAR10(Family):
    name = "cifar10"
    input_shape = (3, 32, 32)
    all_class_names = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
    folder = "cifar-10-batches-py"
    files = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
    label_key = "labels"
    torchvision_class = "CIFAR10"
    Options = DownloadOptions

    @property
    def root(self) -> Path:
        return self.data_dir / self.folder

    def _missing(self) -> list[str]:
        return [n for names in self.files.values() for n in names if not (self.root / n).is_file()]

    def prepare(self) -> None:
        """Download through torchvision (rank 0 only) when files are missing and `download` is on."""
        if self._missing() and self.options.download:
            import torchvision.datasets

            try:
                getattr(torchvision.datasets, self.torchvision_class)(str(self.data_dir), download=True)
            except Exception as err:  # noqa: BLE001 - offline, proxy, mirror down: one message for all
                raise missing(self.name, self.root, self._missing(),
                              f"The download failed ({type(err).__name__}: {err}). Unpack the python version "
                              "of the data set there by hand, or set CNNLAB_DATA_DIR.") from None

    def _read(self, path: Path):
        import torch

        from cnnlab.data.splits import Split

        batch = read_pickle(path)
        if "data" not in batch or self.label_key not in batch:
            raise DataError(f"{path}: keys {sorted(batch)}; expected 'data' and '{self.label_key}'.")
        data, labels = np.asarray(batch["data"]), np.asarray(batch[self.label_key], dtype=np.int64)
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
            raise DataError(f"{path}: 'data' is {data.dtype} {data.shape} with {len(labels)} labels; "
                            "expected uint8 N x 3072 and N labels.")
        check_labels(labels, len(self.all_class_names), path, what="image")
        return Split(torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()), torch.from_numpy(labels))

    def read(self):
        from cnnlab.data.splits import Split

        if self._missing():
            raise missing(self.name, self.root, self._missing(),
                          "Run with data.download=true on a machine with network, or copy the files there.")
        return {split: Split.concat([self._read(self.root / n) for n in names]) for split, names in self.files.items()}

