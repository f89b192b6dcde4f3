"""SRC given as a hub dataset id: fetched with huggingface_hub (mocked here; tests never download)."""

from __future__ import annotations

from pathlib import Path

import huggingface_hub
from convert_helpers import read_jsonl
from typer.testing import CliRunner

from phi3v_data.cli.main import app
from phi3v_data.samples.docvqa import write_docvqa_sample

runner = CliRunner()


def test_hub_id_is_fetched_then_converted_like_the_local_copy(tmp_path: Path, monkeypatch) -> None:
    local = tmp_path / "DocumentVQA"
    write_docvqa_sample(local)
    calls = []

    def snapshot_download(repo_id: str, repo_type: str, allow_patterns: list[str]) -> str:
        calls.append((repo_id, repo_type, allow_patterns))
        return str(local)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    monkeypatch.chdir(tmp_path)
    assert runner.invoke(app, ["convert", "docvqa", "HuggingFaceM4/DocumentVQA", "from_hub"]).exit_code == 0
    assert runner.invoke(app, ["convert", "docvqa", str(local), "from_disk"]).exit_code == 0
    assert calls == [("HuggingFaceM4/DocumentVQA", "dataset", ["*.parquet"])]
    written = sorted(p.name for p in (tmp_path / "from_disk").glob("*.jsonl"))
    assert written == sorted(p.name for p in (tmp_path / "from_hub").glob("*.jsonl"))
    assert written
    for name in written:
        assert read_jsonl(tmp_path / "from_hub" / name) == read_jsonl(tmp_path / "from_disk" / name)


def test_the_cauldron_fetches_only_the_converters_config(tmp_path: Path, monkeypatch) -> None:
    calls = []

    def snapshot_download(repo_id: str, repo_type: str, allow_patterns: list[str]) -> str:
        calls.append(allow_patterns)
        (tmp_path / "cache" / "hateful_memes").mkdir(parents=True)
        return str(tmp_path / "cache")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["convert", "hateful-memes", "HuggingFaceM4/the_cauldron", "out"])
    assert calls == [["hateful_memes/*.parquet"]]
    assert result.exit_code == 1
    assert str(result.exception).startswith(f"{tmp_path / 'cache' / 'hateful_memes'} has neither the official files")


def test_offline_hub_id_gives_the_download_command(tmp_path: Path, monkeypatch) -> None:
    def snapshot_download(repo_id: str, repo_type: str, allow_patterns: list[str]) -> str:
        raise OSError("network is unreachable")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["convert", "nlvr2", "HuggingFaceM4/the_cauldron", "out"])
    assert result.exit_code == 1
    message = str(result.exception)
    assert "network is unreachable" in message
    assert "hf download --repo-type dataset HuggingFaceM4/the_cauldron --local-dir raw/the_cauldron" in message
