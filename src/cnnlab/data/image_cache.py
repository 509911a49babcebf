"""Decoding image files into one uint8 array, in parallel, and caching it as an uncompressed `.npz` (read with
`allow_pickle=False`) whose header holds a key over the files, sizes, times and pixel options: a cache that does not
match, or cannot be read, is rebuilt, never trusted."""

import hashlib
import json
import logging
import os
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnlab.machine import cores

log = logging.getLogger("cnnlab")

CACHE_VERSION = 1
GREY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


@dataclass(frozen=True)
class Decoded:
    """Pixels N x C x H x W (uint8), which files were readable, and the first error met (skipped files)."""

    x: np.ndarray
    ok: np.ndarray
    first_error: str = ""


def probe(path: Path) -> tuple[tuple[int, int], int]:
    """((height, width), channels) from the file's header, without decoding the pixels."""
    from PIL import Image

    with Image.open(path) as img:
        return (img.height, img.width), 1 if img.mode in GREY_MODES else 3


def _probe_many(paths: Sequence[Path]) -> list[tuple[tuple[int, int], int] | str]:
    out = []
    for path in paths:
        try:
            out.append(probe(path))
        except Exception as err:  # noqa: BLE001 - any unreadable file is reported with its reason
            out.append(f"{type(err).__name__}: {err}")
    return out


def to_8bit(img, channels: int):
    """Any mode Pillow opens as 8-bit grey (`channels` 1) or RGB (3). Pillow's own `convert` clips 16-bit and 32-bit
    grey to 255 (a 16-bit PNG would come out white) and drops alpha: here deep grey is scaled to 0..255 (16-bit by
    /257, floats in 0..1 by x255), and transparent pixels are composited onto white, as a viewer shows them."""
    from PIL import Image

    mode = img.mode
    if mode.startswith("I") or mode == "F":
        array = np.asarray(img, dtype=np.float64)
        if mode == "F":
            top = 1.0 if array.max(initial=0) <= 1.0 else 255.0
        else:
            top = 65535.0 if mode.startswith("I;16") or array.max(initial=0) > 255 else 255.0
        img = Image.fromarray(np.clip(np.round(array * (255.0 / top)), 0, 255).astype(np.uint8), "L")
    elif mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    return img.convert("L" if channels == 1 else "RGB")


def decode(source, shape: tuple[int, int, int]) -> np.ndarray:
    """One image (a path or a file-like object) as H x W x C uint8 of the given C x H x W shape: converted to grey
    or RGB and resized as needed. Shared by the in-memory decode, the streamed loaders' workers and predict.py."""
    from PIL import Image

    c, h, w = shape
    with Image.open(source) as img:  # a GIF opens at its first frame
        img = to_8bit(img, c)
        if img.size != (w, h):
            img = img.resize((w, h), Image.BILINEAR)  # as predict.py resizes new images
        return np.asarray(img).reshape(h, w, c)


def _decode_many(paths: Sequence[Path], shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, str]:
    c, h, w = shape
    x = np.zeros((len(paths), h, w, c), dtype=np.uint8)
    ok = np.zeros(len(paths), dtype=bool)
    first_error = ""
    for i, path in enumerate(paths):
        try:
            x[i] = decode(path, shape)
            ok[i] = True
        except MemoryError:  # the size asked for, not the file: never blamed on the image
            raise
        except Exception as err:  # noqa: BLE001 - truncated, not an image, unsupported: named by the caller
            first_error = first_error or f"{path}: {type(err).__name__}: {err}"
    return x, ok, first_error


def worker_count(value: int | None, key: str = "") -> int:
    """A checked number of processes, or all the cores this process may use for null."""
    if value is None:
        return cores()
    return value


def _chunks(paths: Sequence[Path], workers: int) -> list[Sequence[Path]]:
    size = max(1, min(2000, -(-len(paths) // (4 * workers))))
    return [paths[i:i + size] for i in range(0, len(paths), size)]


def _parallel(fn, paths: Sequence[Path], workers: int, what: str, *args) -> Iterator:
    """fn over chunks of paths in `workers` processes (in this process when 1), with a progress line; the results
    come in order as they are ready, so that a caller can use each and let it go (decoded pixels are large)."""
    chunks = _chunks(paths, workers)
    start, done = time.perf_counter(), 0
    show = sys.stderr.isatty()
    if workers <= 1 or len(chunks) == 1:
        mapped = (fn(chunk, *args) for chunk in chunks)
        pool = None
    else:
        import multiprocessing

        context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
        pool = ProcessPoolExecutor(workers, mp_context=context)
        mapped = pool.map(fn, chunks, *([a] * len(chunks) for a in args))
    try:
        for chunk, result in zip(chunks, mapped):
            yield result
            done += len(chunk)
            if show:
                print(f"\r{what}: {done:,}/{len(paths):,} images", end="", file=sys.stderr, flush=True)
    finally:
        if pool is not None:
            pool.shutdown()
    if show:
        print(file=sys.stderr)
    log.info("%s: %d images in %.1f s (%d worker%s)", what, len(paths), time.perf_counter() - start, workers,
             "s" if workers > 1 else "")


def probe_all(paths: Sequence[Path], workers: int) -> list[tuple[tuple[int, int], int] | str]:
    return [r for chunk in _parallel(_probe_many, paths, workers, "reading image headers") for r in chunk]


def decode_all(paths: Sequence[Path], shape: tuple[int, int, int], workers: int) -> Decoded:
    x = np.empty((len(paths), *shape), dtype=np.uint8)  # channels-first for the network, filled part by part
    ok = np.zeros(len(paths), dtype=bool)
    first_error, start = "", 0
    for pixels, good, error in _parallel(_decode_many, paths, workers, "decoding", shape):
        # each decoded part (Pillow's channels-last) is copied in as it arrives and then freed
        x[start:start + len(good)] = pixels.transpose(0, 3, 1, 2)
        ok[start:start + len(good)] = good
        first_error, start = first_error or error, start + len(good)
    return Decoded(x, ok, first_error)


# --- the cache -----------------------------------------------------------------------------------------------
def content_key(root: Path, paths: Sequence[Path], options: dict) -> str:
    """A key that changes when any file is added, removed, renamed, resized or touched, or an option changes."""
    digest = hashlib.sha256(json.dumps({"version": CACHE_VERSION, "options": options}, sort_keys=True).encode())
    for path in paths:
        stat = path.stat()
        digest.update(f"{path.relative_to(root)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def cache_path(cache_dir: Path, options: dict) -> Path:
    """One cache file per set of pixel-changing options, so that two image sizes do not evict each other."""
    tag = hashlib.sha256(json.dumps(options, sort_keys=True).encode()).hexdigest()[:12]
    return cache_dir / f"cnnlab-images-{tag}.npz"


def load_cache(path: Path, key: str) -> tuple[Decoded, dict] | None:
    """The cached pixels if the file exists, reads cleanly and was made for exactly this key; else None."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            header = json.loads(bytes(data["header"]).decode())
            if header.get("version") != CACHE_VERSION or header.get("key") != key:
                log.info("%s: made for other files or another cnnlab version; rebuilding it.", path)
                return None
            decoded = Decoded(data["x"], data["ok"], header.get("first_error", ""))
    except Exception as err:  # noqa: BLE001 - truncated, corrupt, foreign: rebuilt, never trusted
        log.warning("%s: unreadable image cache (%s: %s); rebuilding it.", path, type(err).__name__, err)
        return None
    if decoded.x.dtype != np.uint8 or decoded.x.ndim != 4 or len(decoded.x) != len(decoded.ok):
        log.warning("%s: image cache of unexpected shape; rebuilding it.", path)
        return None
    return decoded, header


def save_cache(path: Path, key: str, decoded: Decoded, extra: dict) -> None:
    """Written to a temporary file and renamed, so that an interrupted write never leaves a half cache."""
    header = json.dumps({"version": CACHE_VERSION, "key": key, "first_error": decoded.first_error, **extra})
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            np.savez(f, x=decoded.x, ok=decoded.ok, header=np.frombuffer(header.encode(), dtype=np.uint8))
        os.replace(tmp, path)
    except OSError as err:
        log.warning("cannot write the image cache %s (%s); the next run decodes again. Set data.cache_dir to a "
                    "writable folder, or data.cache=false.", path, err.strerror or err)
