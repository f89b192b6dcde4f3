"""Image file checks for the validator: header-only (size and format) by default, full decode on request.

A header check never decodes pixel data, so a decompression bomb (a small file whose header claims,
say, 30000x30000 pixels) is rejected in microseconds from the size its header states. It also reads
the last bytes of PNG and JPEG files: a file cut short by an interrupted copy lacks the end marker.

:class:`ImageChecker` caches one result per distinct path (records often share images) and spreads
the checks over worker processes.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from typing import NamedTuple

from PIL import Image

from phi3v_data.errors import Phi3vDataError
from phi3v_data.image_tokens import MAX_ASPECT_RATIO
from phi3v_data.processes import THREAD_SAFE_START_METHOD

MISSING = "missing_image"
CORRUPT = "corrupt_image"

PNG_END = b"IEND\xaeB`\x82"
JPEG_END = b"\xff\xd9"
# JPEG writers may append metadata after the end marker; look for it in this many trailing bytes.
JPEG_TAIL_BYTES = 4096
BATCH_SIZE = 256


class ImageInfo(NamedTuple):
    """The outcome of checking one image: ``problem`` is None, MISSING or CORRUPT."""

    problem: str | None
    width: int = 0
    height: int = 0
    message: str = ""


def pixel_limit() -> int | None:
    """Pillow's decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``), None when disabled."""
    return Image.MAX_IMAGE_PIXELS


def _has_end_marker(handle, image_format: str | None) -> bool:
    if image_format == "PNG":
        handle.seek(-len(PNG_END), os.SEEK_END)
        return handle.read(len(PNG_END)) == PNG_END
    if image_format in ("JPEG", "MPO"):
        size = handle.seek(0, os.SEEK_END)
        handle.seek(max(0, size - JPEG_TAIL_BYTES))
        return JPEG_END in handle.read()
    return True


def check_image(path: str, deep: bool = False) -> ImageInfo:
    """Checks one image file. Call it under :func:`check_images`'s warning filter, or use that function."""
    try:
        with open(path, "rb") as handle:
            try:
                with Image.open(handle) as image:
                    width, height = image.size
                    image_format = image.format
                    limit = pixel_limit()
                    if limit is not None and width * height > limit:
                        return ImageInfo(CORRUPT, width, height, _bomb_message(width, height, limit))
                    if deep:
                        image.load()
                    elif not _has_end_marker(handle, image_format):
                        return ImageInfo(CORRUPT, width, height, f"truncated {image_format} file (no end marker)")
            except Image.DecompressionBombError as exc:
                return ImageInfo(CORRUPT, 0, 0, f"decompression bomb: {exc}")
            except Image.UnidentifiedImageError:
                return ImageInfo(CORRUPT, 0, 0, "not an image Pillow can read")
            except Exception as exc:  # Pillow's plugins raise many types (struct.error, IndexError...) on bad files
                return ImageInfo(CORRUPT, 0, 0, f"cannot decode image: {str(exc) or type(exc).__name__}")
    except FileNotFoundError:
        if os.path.islink(path):
            return ImageInfo(MISSING, message=f"broken symlink: {path} -> {os.readlink(path)}")
        return ImageInfo(MISSING, message=f"no such file: {path}")
    except IsADirectoryError:
        return ImageInfo(MISSING, message=f"is a folder, not an image file: {path}")
    except OSError as exc:
        return ImageInfo(CORRUPT, message=f"cannot read {path}: {exc.strerror or exc}")
    except ValueError as exc:  # a path the OS cannot take: an embedded NUL, a lone surrogate
        return ImageInfo(MISSING, message=f"cannot open {path!r}: {exc}")
    if width <= 0 or height <= 0:
        return ImageInfo(CORRUPT, width, height, f"image has an empty size {width}x{height}")
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        return ImageInfo(
            CORRUPT, width, height, f"{width}x{height} is too elongated (aspect ratio over {MAX_ASPECT_RATIO}:1)"
        )
    return ImageInfo(None, width, height)


def _bomb_message(width: int, height: int, limit: int) -> str:
    return (
        f"{width}x{height} = {width * height:,} pixels is over Pillow's decompression-bomb limit "
        f"of {limit:,} (judged from the header, not decoded)"
    )


def check_images(paths: Sequence[str], deep: bool = False) -> list[ImageInfo]:
    """Checks a batch of images; Pillow's DecompressionBombWarning is handled as a result, not a warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return [check_image(path, deep) for path in paths]


class ImageChecker:
    """Checks each distinct path once, in ``workers`` processes (in this process when ``workers`` is 1).

    The processes start when a submission first brings BATCH_SIZE new paths; until then (a file that
    references a few shared images, say) checking in this process is faster than starting them.

    ``submit`` starts checks for paths not seen before; ``get`` returns a result, waiting for it if
    needed. Results stay cached for the checker's lifetime.
    """

    def __init__(self, *, deep: bool = False, workers: int = 1) -> None:
        self.deep = deep
        self.workers = max(1, workers)
        self._results: dict[str, ImageInfo] = {}
        self._pending: dict[str, Future[list[ImageInfo]]] = {}
        self._batches: dict[Future[list[ImageInfo]], list[str]] = {}
        self._executor: ProcessPoolExecutor | None = None

    def __enter__(self) -> ImageChecker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def submit(self, paths: Iterable[str]) -> None:
        new = [p for p in dict.fromkeys(paths) if p not in self._results and p not in self._pending]
        if not new:
            return
        if self.workers == 1 or (self._executor is None and len(new) < BATCH_SIZE):
            self._results.update(zip(new, check_images(new, self.deep), strict=True))
            return
        if self._executor is None:
            self._executor = ProcessPoolExecutor(self.workers, mp_context=get_context(THREAD_SAFE_START_METHOD))
        size = max(1, min(BATCH_SIZE, -(-len(new) // self.workers)))
        for start in range(0, len(new), size):
            batch = new[start : start + size]
            future = self._executor.submit(check_images, batch, self.deep)
            self._batches[future] = batch
            for path in batch:
                self._pending[path] = future

    def known(self, path: str) -> bool:
        """Whether the result for ``path`` is at hand (``get`` will not wait)."""
        return path in self._results

    @property
    def busy(self) -> bool:
        """Whether submitted checks are still running."""
        return any(not future.done() for future in self._batches)

    def get(self, path: str) -> ImageInfo:
        if path not in self._results:
            if path not in self._pending:
                self.submit([path])
            if path in self._pending:
                self._collect(self._pending[path])
        return self._results[path]

    def _collect(self, future: Future[list[ImageInfo]]) -> None:
        batch = self._batches.pop(future)
        try:
            results = future.result()
        except BrokenProcessPool as exc:
            raise Phi3vDataError(
                f"an image-check worker process died ({exc}); rerun with --workers 1 to check images in one process"
            ) from exc
        for path, result in zip(batch, results, strict=True):
            self._results[path] = result
            del self._pending[path]
