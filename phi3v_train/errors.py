"""Exceptions of the training side, under the shared base :class:`phi3v_data.errors.Phi3vError`.

:class:`MissingDependencyError` is the data side's own class, so catching it catches both sides'.
"""

from phi3v_data.errors import MissingDependencyError, Phi3vError

__all__ = [
    "ConfigError",
    "DataError",
    "ExportError",
    "ImageTokenMismatchError",
    "MissingDependencyError",
    "ModelConfigError",
    "Phi3vTrainError",
    "PredictionsFileError",
]


class Phi3vTrainError(Phi3vError):
    """Base class of every error that phi3v_train raises on bad input or setup."""


class ConfigError(Phi3vTrainError):
    """The run configuration is invalid; the message lists every problem."""

    hint = "Check the options (phi3v-train run --help) or the YAML given with --config."


class ImageTokenMismatchError(Phi3vTrainError):
    """Image tags do not match the images, or image positions do not match the image features."""

    hint = "Tags must run <|image_1|>..<|image_n|> over the n images given, in order."


class DataError(Phi3vTrainError):
    """The training data cannot be used as it is (validation errors, over-long or fully masked records)."""

    hint = "Run `phi3v-data validate FILE` for the full report."


class PredictionsFileError(DataError):
    """A predictions file given to `phi3v-train score` has a line that cannot be scored."""

    hint = "Lines need `id` and either `prediction` and `answers` (or `reference`), or `reference` and `label_probs`."


class ModelConfigError(Phi3vTrainError, ValueError):
    """A Phi-3(.5)-vision model config (config.json or preset) holds values the model cannot be built with."""

    hint = "Compare the config.json with the hub's microsoft/Phi-3.5-vision-instruct config."


class ExportError(Phi3vTrainError):
    """A model cannot be exported as asked, or the export does not reproduce the source model (--verify)."""

    hint = "See `phi3v-train export --help`; LoRA runs need --merge to become a standalone model."
