"""Image inputs for prediction: PNG/JPEG files, a folder of them, or a .npy array, brought to the model's
channel count and size."""

from pathlib import Path

import numpy as np
import torch

from cnnlab.checks.errors import CnnlabError

SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}


def _image(path: Path, shape: tuple[int, int, int]) -> torch.Tensor:
    """As data=folder decodes its images (any Pillow mode, resized to the model's input)."""
    from PIL import UnidentifiedImageError

    from cnnlab.data.image_cache import decode

    try:
        array = decode(path, shape)
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise CnnlabError(f"{path}: not a readable image ({type(err).__name__}: {err}).") from None
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


def _array(path: Path, shape: tuple[int, int, int]) -> torch.Tensor:
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise CnnlabError(f"{path}: not a readable .npy array ({err}).") from None
    c, h, w = shape
    given = array.shape
    if array.ndim == 3 and c == 1:
        array = array[:, None]
    elif array.ndim == 4 and array.shape[-1] == c and array.shape[1] != c:
        array = array.transpose(0, 3, 1, 2)
    if array.ndim != 4 or array.shape[1:] != (c, h, w):
        grey = f", or N x {h} x {w}" if c == 1 else ""
        raise CnnlabError(f"{path}: array of shape {given}; the model takes N x {c} x {h} x {w} "
                          f"(or N x {h} x {w} x {c}{grey}), uint8 0..255 or float 0..1.")
    if array.dtype == np.uint8:
        return torch.from_numpy(array.copy())
    if np.issubdtype(array.dtype, np.floating):
        low, high = float(np.nanmin(array)), float(np.nanmax(array))
        if not np.isfinite(array).all() or low < 0 or high > 1:  # a float copy of 0..255 pixels is not guessed at
            raise CnnlabError(f"{path}: float values from {low:g} to {high:g}; floats are read as 0..1 (no NaN or "
                              "infinity): divide 0..255 pixels by 255 first, or save them as uint8.")
        return torch.from_numpy(array.astype(np.float32))
    raise CnnlabError(f"{path}: array of {array.dtype}; expected uint8 (0..255) or float (0..1).")


def read_inputs(path: str | Path, shape: tuple[int, int, int]) -> tuple[list[str], torch.Tensor]:
    """(names, images N x C x H x W) from an image file, a folder of images, or a .npy array."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in SUFFIXES)
        if not files:
            raise CnnlabError(f"{path}: no images ({', '.join(sorted(SUFFIXES))}) in this folder.")
        return [str(f) for f in files], torch.stack([_image(f, shape) for f in files])
    if not path.exists():
        raise CnnlabError(f"input={path} does not exist; give an image, a folder of images or a .npy file.")
    if path.suffix.lower() == ".npy":
        images = _array(path, shape)
        return [f"{path}[{i}]" for i in range(len(images))], images
    return [str(path)], _image(path, shape).unsqueeze(0)
