"""The exceptions of both packages share one base, :class:`Phi3vError`; the CLIs turn each into one
clean message with a hint. The training side's errors (``phi3v_train.errors``) subclass the same base."""


class Phi3vError(Exception):
    """Base class of every error that phi3v_data or phi3v_train raises on bad input or setup."""

    hint: str = ""


class Phi3vDataError(Phi3vError):
    """Base class of every error that phi3v_data raises on bad input."""


class MissingDependencyError(Phi3vError):
    """An optional dependency (tokenizers, matplotlib, bitsandbytes, DeepSpeed, decord…) is not installed."""


class SourceLayoutError(Phi3vDataError):
    """The source folder does not have the layout a converter expects."""

    hint = "Check SRC against the layout described in the README for this converter."


class UnsafePathError(Phi3vDataError):
    """An image path is absolute, has a '..' component or a backslash, or is empty."""

    hint = "Write image paths relative to the image root, with '/' separators and no '..'."
