"""Reading the on-disk formats safely: IDX (gzip or raw), CIFAR pickles (no code runs), and missing-file advice."""

import gzip
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.checks.errors import DataError


def find(folder: Path, name: str) -> Path | None:
    """`folder/name`, or its `.gz` twin (torchvision keeps both after a download; some copies only the .gz)."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def missing(dataset: str, folder: Path, names: list[str], how: str) -> DataError:
    listed = "\n".join(f"  {folder / n}" for n in names)
    return DataError(f"{dataset} files not found; expected:\n{listed}\n{how}")


def read_bytes(path: Path) -> bytes:
    try:
        return gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as err:
        raise DataError(f"{path}: cannot be read ({err}); the file is damaged or incomplete: "
                        "delete it and download it again.") from None


_IDX_TYPES = {0x08: np.uint8}


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """An IDX file (MNIST's format): magic 0x0000 <type> <ndim>, big-endian int32 sizes, then the data."""
    raw = read_bytes(path)
    if len(raw) < 4 or raw[0:2] != b"\0\0" or raw[2] not in _IDX_TYPES or raw[3] != ndim:
        raise DataError(f"{path}: not an IDX file of unsigned bytes with {ndim} dimension(s) "
                        f"(header {raw[:4].hex() or 'empty'}); expected MNIST's original files.")
    dims = np.frombuffer(raw, dtype=">i4", count=ndim, offset=4).tolist() if len(raw) >= 4 + 4 * ndim else []
    expected = 4 + 4 * ndim + int(np.prod(dims)) if dims else None
    if expected is None or len(raw) != expected:
        raise DataError(f"{path}: truncated or padded: the header says {dims} ({expected} bytes) "
                        f"but the file holds {len(raw)} bytes; delete it and download it again.")
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


class _ArraysOnly(pickle.Unpickler):
    """Unpickles dicts, lists and NumPy arrays only: a CIFAR file can never run code on load."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def read_pickle(path: Path) -> dict[str, Any]:
    """A CIFAR batch file: a dict with byte (or str) keys, returned with str keys."""
    try:
        data = _ArraysOnly(io.BytesIO(read_bytes(path)), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as err:
        raise DataError(f"{path}: not a readable CIFAR pickle ({err}); the file is damaged or incomplete: "
                        "delete it and download it again.") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a dict of arrays, got {type(data).__name__}.")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in data.items()}


def check_labels(labels: np.ndarray, num_classes: int, path: Path, row_offset: int = 0, what: str = "row") -> None:
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        i = int(bad[0])
        raise DataError(f"{path}: {what} {i + row_offset} has label {int(labels[i])}, outside 0..{num_classes - 1} "
                        f"({bad.size} such {what}s).")
