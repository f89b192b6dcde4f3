"""One error hierarchy: a shared base, one MissingDependencyError, one CLI reporter for both CLIs."""

from __future__ import annotations

import pytest

from phi3v_data.cli.reporter import DEBUG_ENV, run_with_error_mapping
from phi3v_data.errors import MissingDependencyError, Phi3vDataError, Phi3vError, SourceLayoutError
from phi3v_train import errors as train_errors
from phi3v_train.errors import ConfigError, DataError, Phi3vTrainError


def test_every_error_shares_the_base_and_there_is_one_missing_dependency_error() -> None:
    assert train_errors.MissingDependencyError is MissingDependencyError
    for error in (Phi3vDataError, Phi3vTrainError, MissingDependencyError, SourceLayoutError, ConfigError, DataError):
        assert issubclass(error, Phi3vError)
    assert not issubclass(MissingDependencyError, Phi3vDataError | Phi3vTrainError)


def _raising(exc: Exception):
    def app() -> None:
        raise exc

    return app


@pytest.mark.parametrize(
    ("exc", "lines"),
    [
        (ConfigError("bad --batch-size"), ["Error: bad --batch-size", f"Hint: {ConfigError.hint}"]),
        (MissingDependencyError("QLoRA needs bitsandbytes"), ["Error: QLoRA needs bitsandbytes"]),
        (SourceLayoutError("no videos"), ["Error: no videos", f"Hint: {SourceLayoutError.hint}"]),
    ],
)
def test_reporter_prints_message_and_hint_and_exits_1(exc, lines, capsys, monkeypatch) -> None:
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    with pytest.raises(SystemExit) as exit_info:
        run_with_error_mapping(_raising(exc))
    assert exit_info.value.code == 1
    assert " ".join(capsys.readouterr().err.split()) == " ".join(lines)  # rich wraps long lines


def test_reporter_lets_unknown_errors_and_debug_mode_through(monkeypatch) -> None:
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    with pytest.raises(KeyError):
        run_with_error_mapping(_raising(KeyError("bug")))
    monkeypatch.setenv(DEBUG_ENV, "1")
    with pytest.raises(DataError, match="bad data"):
        run_with_error_mapping(_raising(DataError("bad data")))
