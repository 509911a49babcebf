"""scikit-learn's 1,797 handwritten digits (8x8, 17 grey levels): real data that ships with the package."""

from pathlib import Path

from cnnlab.data.family import Family


class Digits(Family):
    """No official split: `test_size` and `val_size` images are held out at random (seeded)."""

    name = "digits"
    input_shape = (1, 8, 8)
    all_class_names = tuple(str(d) for d in range(10))

    def read(self):
        """scikit-learn's own file, read as `sklearn.datasets.load_digits` reads it, without importing that module
        (it pulls in pandas and most of SciPy: a second of the default run's start-up)."""
        import gzip
        import importlib.util

        import numpy as np
        import torch

        from cnnlab.data.splits import Split

        package = Path(importlib.util.find_spec("sklearn").submodule_search_locations[0])
        with gzip.open(package / "datasets" / "data" / "digits.csv.gz", "rt") as f:
            data = np.loadtxt(f, delimiter=",")
        images, target = data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(np.int64)
        pixels = np.round(images * (255 / 16)).astype(np.uint8)  # 0..16 -> 0..255
        return {"train": Split(torch.from_numpy(pixels).unsqueeze(1), torch.from_numpy(target))}
