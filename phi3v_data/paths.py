"""Where a record's images live: the default image root and the rules for safe relative image paths.

Shared by the validator and the training side; pure standard library.
"""

from __future__ import annotations

from pathlib import Path

from phi3v_data.errors import UnsafePathError


def default_image_root(jsonl_path: Path) -> Path:
    """``<folder of the jsonl>/images``: ``data/ucf101_val.jsonl`` reads ``data/images/val/<Class>/x.jpg``."""
    return Path(jsonl_path).parent / "images"


def image_root_for(jsonl_path: Path, image_root: Path | None) -> Path:
    """The explicit ``image_root``, else :func:`default_image_root` of the JSONL file."""
    return Path(image_root) if image_root is not None else default_image_root(jsonl_path)


def unsafe_path_reason(relative: str) -> str | None:
    """Why ``relative`` is not a safe relative POSIX image path, or None when it is."""
    if (
        relative
        and relative[0] != "/"
        and "\\" not in relative
        and ".." not in relative
        and ":" not in relative[:2]
        and "\x00" not in relative
    ):
        return None
    if not relative.strip():
        return "the path is empty"
    if relative.startswith("/"):
        return "the path is absolute"
    if len(relative) > 1 and relative[1] == ":":
        return "the path starts with a drive letter"
    if "\\" in relative:
        return "the path contains a backslash (use '/')"
    if ".." in relative.split("/"):
        return "the path has a '..' component"
    if "\x00" in relative:
        return "the path contains a NUL character"
    return None


def resolve_image_path(root: Path, relative: str) -> Path:
    """``root / relative`` after checking ``relative``; raises :class:`UnsafePathError` for unsafe paths.

    Symlinks are not resolved here; opening the path follows them, so image folders may link elsewhere.
    """
    reason = unsafe_path_reason(relative)
    if reason is not None:
        raise UnsafePathError(f"unsafe image path {relative!r}: {reason}")
    return Path(root) / relative
