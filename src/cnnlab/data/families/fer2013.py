"""FER2013 from Kaggle, which cannot be downloaded automatically. Reads, from `<data_dir>/fer2013/`, the first of:

- `fer2013.csv` (`emotion,pixels,Usage`; also gzipped),
- `icml_face_data.csv` (`emotion, Usage, pixels`: column names with leading spaces),
- `train.csv` (`emotion,pixels`) with `test.csv` (labelled: first half PublicTest, second PrivateTest, unless it
  has a `Usage` column; unlabelled, as in Kaggle's challenge: ignored, and the test split is held out of train).

Usage Training / PublicTest / PrivateTest become the train / val / test splits.
"""

import csv
import gzip
import io
import logging
import warnings
from pathlib import Path

import numpy as np

from cnnlab.checks.errors import DataError
from cnnlab.data.family import Family
from cnnlab.data.files import check_labels, missing

log = logging.getLogger(__name__)

USAGE = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
PIXELS = 48 * 48
WHERE = ("FER2013 is not downloadable automatically: get it from Kaggle (the 'Challenges in Representation "
         "Learning: Facial Expression Recognition Challenge' data: fer2013.csv, or icml_face_data.csv, or "
         "train.csv with test.csv) and put the file there, or set CNNLAB_DATA_DIR to a folder holding fer2013/.")


def _open_text(path: Path) -> io.TextIOBase:
    return gzip.open(path, "rt", newline="") if path.suffix == ".gz" else open(path, newline="")


def read_csv(path: Path, need: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray | None, list[str] | None]:
    """(images N x 48 x 48 uint8, labels or None, usages or None); every row checked, errors name the line."""
    try:
        with _open_text(path) as f:
            reader = csv.reader(f)
            header = [c.strip() for c in next(reader, [])]
            absent = [c for c in need if c not in header]
            if absent:
                raise DataError(f"{path}: columns {header}; expected {list(need)} (missing {absent}).")
            rows = list(reader)
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"{path}: cannot be read ({type(err).__name__}: {err}); is the file complete?") from None
    col = {name: header.index(name) for name in header}
    images = np.empty((len(rows), 48, 48), dtype=np.uint8)
    labels = np.empty(len(rows), dtype=np.int64) if "emotion" in col else None
    usages = [] if "Usage" in col else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fromstring on a malformed row: caught below
        for i, row in enumerate(rows):
            line = i + 2  # the header is line 1
            if len(row) != len(header):
                raise DataError(f"{path}: line {line} has {len(row)} fields; expected {len(header)} ({header}).")
            values = np.fromstring(row[col["pixels"]], dtype=np.int32, sep=" ")
            if values.size != PIXELS:
                raise DataError(f"{path}: line {line} has {values.size} pixel values; expected 48*48 = {PIXELS}.")
            if values.min() < 0 or values.max() > 255:
                raise DataError(f"{path}: line {line} has pixel values outside 0..255.")
            images[i] = values.reshape(48, 48)
            if labels is not None:
                try:
                    labels[i] = int(row[col["emotion"]])
                except ValueError:
                    raise DataError(f"{path}: line {line}: emotion {row[col['emotion']]!r} is not an integer "
                                    "0..6.") from None
            if usages is not None:
                usage = row[col["Usage"]].strip()
                if usage not in USAGE:
                    raise DataError(f"{path}: line {line}: Usage {usage!r}; expected one of {', '.join(USAGE)}.")
                usages.append(usage)
    if labels is not None:
        check_labels(labels, 7, path, row_offset=2, what="line")
    return images, labels, usages


def _split(images: np.ndarray, labels: np.ndarray):
    import torch

    from cnnlab.data.splits import Split

    return Split(torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels))


class FER2013(Family):
    name = "fer2013"
    input_shape = (1, 48, 48)
    all_class_names = ("Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral")

    @property
    def folder(self) -> Path:
        return self.data_dir / "fer2013"

    def _source(self) -> list[Path]:
        for names in (["fer2013.csv"], ["fer2013.csv.gz"], ["icml_face_data.csv"], ["train.csv", "test.csv"]):
            if all((self.folder / n).is_file() for n in names):
                return [self.folder / n for n in names]
        raise missing("FER2013", self.folder, ["fer2013.csv  (or icml_face_data.csv, or train.csv + test.csv)"], WHERE)

    def prepare(self) -> None:
        self._source()  # fail on rank 0 before anything else happens, with the path expected

    def read(self):
        from cnnlab.data.splits import Split

        sources = self._source()
        if len(sources) == 1:
            images, labels, usages = read_csv(sources[0], ("emotion", "pixels", "Usage"))
            return self._by_usage(images, labels, usages)
        train_path, test_path = sources
        images, labels, _ = read_csv(train_path, ("emotion", "pixels"))
        splits = {"train": _split(images, labels)}
        test_images, test_labels, usages = read_csv(test_path, ("pixels",))
        if test_labels is None:
            log.warning("%s has no labels (Kaggle's challenge test set); holding data.test_size and data.val_size "
                        "images out of %s instead.", test_path, train_path)
            return splits
        if usages is None:
            half = len(test_labels) // 2
            usages = ["PublicTest"] * half + ["PrivateTest"] * (len(test_labels) - half)
        for name, split in self._by_usage(test_images, test_labels, usages).items():
            splits[name] = split if name != "train" else Split.concat([splits["train"], split])
        return splits

    @staticmethod
    def _by_usage(images: np.ndarray, labels: np.ndarray, usages: list[str]) -> dict:
        usage = np.array([USAGE[u] for u in usages])
        return {name: _split(images[usage == name], labels[usage == name])
                for name in ("train", "val", "test") if (usage == name).any()}
