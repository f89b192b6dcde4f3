"""Exceptions of the data side. The CLI turns each into one clean message with a hint."""


class Phi3vDataError(Exception):
    """Base class of every error that phi3v_data raises on bad input."""

    hint: str = ""


class SourceLayoutError(Phi3vDataError):
    """The source folder does not have the layout a converter expects."""

    hint = "Check SRC against the layout described in the README for this converter."


class MissingDependencyError(Phi3vDataError):
    """An optional dependency is needed for this operation."""


class UnsafePathError(Phi3vDataError):
    """An image path is absolute, has a '..' component or a backslash, or is empty."""

    hint = "Write image paths relative to the image root, with '/' separators and no '..'."
