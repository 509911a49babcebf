"""scikit-learn's 1,797 handwritten digits (8x8, 17 grey levels): real data that ships with the package."""

from __future__ import annotations

import numpy as np
import torch

from cnnlab.data.family import Family
from cnnlab.data.splits import Split


class Digits(Family):
    """No official split: `test_size` and `val_size` images are held out at random (seeded)."""

    name = "digits"
    input_shape = (1, 8, 8)
    all_class_names = tuple(str(d) for d in range(10))

    def read(self) -> dict[str, Split]:
        from sklearn.datasets import load_digits

        digits = load_digits()
        pixels = np.round(digits.images * (255 / 16)).astype(np.uint8)  # 0..16 -> 0..255
        return {"train": Split(torch.from_numpy(pixels).unsqueeze(1), torch.from_numpy(digits.target).long())}
