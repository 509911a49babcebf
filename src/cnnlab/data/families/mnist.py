"""MNIST in torchvision's layout: `<data_dir>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`."""

from cnnlab.checks.errors import DataError
from cnnlab.data.family import DownloadOptions, Family
from cnnlab.data.files import check_labels, find, missing, read_idx

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


class MNIST(Family):
    name = "mnist"
    input_shape = (1, 28, 28)
    all_class_names = tuple(str(d) for d in range(10))
    Options = DownloadOptions

    @property
    def raw_dir(self):
        return self.data_dir / "MNIST" / "raw"

    def _missing(self) -> list[str]:
        return [n for pair in FILES.values() for n in pair if find(self.raw_dir, n) is None]

    def prepare(self) -> None:
        """Download through torchvision (rank 0 only) when files are missing and `download` is on."""
        if self._missing() and self.options.download:
            from torchvision.datasets import MNIST

            try:
                for train in (True, False):
                    MNIST(str(self.data_dir), train=train, download=True)
            except Exception as err:  # noqa: BLE001 - offline, proxy, mirror down: one message for all
                raise missing("MNIST", self.raw_dir, self._missing(),
                              f"The download failed ({type(err).__name__}: {err}). Copy the four files "
                              "(gzipped or not) there by hand, or set CNNLAB_DATA_DIR to a folder that has "
                              "MNIST/raw/.") from None

    def read(self):
        import torch

        from cnnlab.data.splits import Split

        if self._missing():
            raise missing("MNIST", self.raw_dir, self._missing(),
                          "Run with data.download=true on a machine with network, or copy the files there.")
        splits = {}
        for split, (images_name, labels_name) in FILES.items():
            images_path, labels_path = find(self.raw_dir, images_name), find(self.raw_dir, labels_name)
            images, labels = read_idx(images_path, 3), read_idx(labels_path, 1)
            if images.shape[1:] != (28, 28) or len(images) != len(labels):
                raise DataError(f"{images_path} holds images of shape {images.shape} but {labels_path} holds "
                                f"{len(labels)} labels; expected N x 28 x 28 images and N labels.")
            check_labels(labels, 10, labels_path, what="item")
            x = torch.from_numpy(images.copy()).unsqueeze(1)
            splits[split] = Split(x, torch.from_numpy(labels.astype("int64")))
        return splits
