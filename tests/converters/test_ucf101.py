"""UCF-101: splits from the official lists, val carved by group, exact frame indices read back from pixels."""

from __future__ import annotations

import resource
import shutil
from pathlib import Path

import pytest
from convert_helpers import assert_valid, pixels, read_jsonl

from phi3v_data.converters import Ucf101Converter, run_conversion
from phi3v_data.converters.video import decode_baseline, decode_pyav, sample_indices
from phi3v_data.errors import SourceLayoutError
from phi3v_data.samples.ucf101 import CLASSES, read_index, synthetic_frame, write_avi, write_ucf101_sample

PROMPT = "Classify the video into one of the following classes: ApplyEyeMakeup, Archery, HandstandPushups."


def _indices_in_pixels(out: Path, record: dict) -> list[int]:
    return [read_index(pixels(out / "images" / rel)) for rel in record["conversations"][0]["images"]]


def test_official_layout_splits_ids_answers_and_frames(ucf_src: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary = run_conversion(Ucf101Converter(ucf_src, frames=4, val_groups=1), out)

    assert summary.records == {"train": 6, "val": 3, "test": 3}
    assert summary.skipped == []
    train, val, test = (read_jsonl(out / f"ucf101_{s}.jsonl") for s in ("train", "val", "test"))
    assert [r["id"] for r in train + val + test] == [
        f"{s}-{i:010d}" for s, i in zip(["train"] * 6 + ["val"] * 3 + ["test"] * 3, range(12), strict=True)
    ]
    # split 1 tests group 1; --val-groups 1 moves the highest train group (22) to val
    assert [r["metadata"]["video"] for r in test] == [
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi",
        "Archery/v_Archery_g01_c01.avi",
        "HandstandPushups/v_HandStandPushups_g01_c01.avi",
    ]
    assert {r["metadata"]["video"].split("_g")[1][:2] for r in val} == {"22"}
    assert {r["metadata"]["video"].split("_g")[1][:2] for r in train} == {"08", "15"}
    assert [r["conversations"][0]["assistant"] for r in test] == ["ApplyEyeMakeup", "Archery", "HandstandPushups"]
    assert all(r["conversations"][0]["user"] == PROMPT for r in train + val + test)
    assert test[2]["conversations"][0]["images"] == [
        f"test/HandstandPushups/v_HandStandPushups_g01_c01.{k}.jpg" for k in range(4)
    ]
    for record in train + val + test:
        assert record["metadata"]["frame_indices"] == [0, 12, 25, 37]
        assert record["metadata"]["total_frames"] == 50
        assert record["metadata"]["sampling"] == "uniform"
        assert _indices_in_pixels(out, record) == [0, 12, 25, 37]
    assert_valid(*summary.files)


def test_center_sampling_and_split_list_2(ucf_src: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary = run_conversion(Ucf101Converter(ucf_src, frames=4, sampling="center", split_list=2), out)

    assert summary.records == {"train": 9, "test": 3}
    test = read_jsonl(out / "ucf101_test.jsonl")
    assert all("_g08_" in r["metadata"]["video"] for r in test)
    assert [r["id"] for r in test] == ["test-0000000009", "test-0000000010", "test-0000000011"]
    assert _indices_in_pixels(out, test[0]) == [6, 18, 31, 43]
    assert not (out / "ucf101_val.jsonl").exists()


def test_class_selection_is_case_insensitive_and_keeps_folder_names(ucf_src: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_conversion(Ucf101Converter(ucf_src, frames=1, classes=("handstandpushups", "ARCHERY")), out)
    test = read_jsonl(out / "ucf101_test.jsonl")
    assert [r["conversations"][0]["assistant"] for r in test] == ["Archery", "HandstandPushups"]
    assert test[0]["conversations"][0]["user"] == (
        "Classify the video into one of the following classes: Archery, HandstandPushups."
    )

    run_conversion(Ucf101Converter(ucf_src, frames=1, num_classes=1), tmp_path / "first")
    assert {r["conversations"][0]["assistant"] for r in read_jsonl(tmp_path / "first" / "ucf101_train.jsonl")} == {
        "ApplyEyeMakeup"
    }
    with pytest.raises(SourceLayoutError, match="Basketball"):
        Ucf101Converter(ucf_src, classes=("Basketball",)).plan()


def test_class_folder_spelling_wins_over_class_ind(ucf_copy: Path, tmp_path: Path) -> None:
    (ucf_copy / "HandstandPushups").rename(ucf_copy / "HandStandPushups")
    run_conversion(Ucf101Converter(ucf_copy, frames=1), tmp_path)
    record = read_jsonl(tmp_path / "ucf101_test.jsonl")[2]
    assert record["conversations"][0]["assistant"] == "HandStandPushups"
    assert record["conversations"][0]["images"] == ["test/HandStandPushups/v_HandStandPushups_g01_c01.0.jpg"]
    assert record["conversations"][0]["user"].endswith("Archery, HandStandPushups.")


def test_sample_clips_are_byte_identical(tmp_path: Path) -> None:
    first = write_ucf101_sample(tmp_path / "a", classes=CLASSES[:1], groups=(1,), clips_per_group=1, seconds=0.4)
    second = write_ucf101_sample(tmp_path / "b", classes=CLASSES[:1], groups=(1,), clips_per_group=1, seconds=0.4)
    assert first[0].read_bytes() == second[0].read_bytes()
    assert (tmp_path / "a" / "ucfTrainTestlist" / "trainlist01.txt").read_text() == ""
    assert (tmp_path / "a" / "ucfTrainTestlist" / "testlist01.txt").read_text() == (
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\n"
    )


def test_pre_split_layout(ucf_src: Path, tmp_path: Path) -> None:
    src = tmp_path / "UCF101_subset"
    for split, group in (("train", "g08"), ("train", "g15"), ("val", "g22"), ("test", "g01")):
        for clip in ucf_src.glob(f"*/*_{group}_*.avi"):
            (src / split / clip.parent.name).mkdir(parents=True, exist_ok=True)
            shutil.copy(clip, src / split / clip.parent.name / clip.name)
    out = tmp_path / "out"
    summary = run_conversion(Ucf101Converter(src, frames=2), out)
    assert summary.records == {"train": 6, "val": 3, "test": 3}
    val = read_jsonl(out / "ucf101_val.jsonl")
    assert val[0]["id"] == "val-0000000006"
    assert val[0]["metadata"]["video"] == "val/ApplyEyeMakeup/v_ApplyEyeMakeup_g22_c01.avi"
    assert _indices_in_pixels(out, val[0]) == [0, 25]


def test_decord_gives_the_same_frames(ucf_src: Path, tmp_path: Path) -> None:
    pytest.importorskip("decord")
    run_conversion(Ucf101Converter(ucf_src, frames=3, classes=("Archery",), decoder="pyav"), tmp_path / "a")
    run_conversion(Ucf101Converter(ucf_src, frames=3, classes=("Archery",), decoder="decord"), tmp_path / "b")
    records = read_jsonl(tmp_path / "b" / "ucf101_train.jsonl")
    assert {r["metadata"]["decoder"] for r in records} == {"decord"}
    images_a = sorted((tmp_path / "a" / "images").rglob("*.jpg"))
    assert len(images_a) == 4 * 3
    for path in images_a:
        assert path.read_bytes() == (tmp_path / "b" / path.relative_to(tmp_path / "a")).read_bytes()


def test_missing_splits_dir_is_a_layout_error(ucf_copy: Path) -> None:
    shutil.rmtree(ucf_copy / "ucfTrainTestlist")
    with pytest.raises(SourceLayoutError, match="--splits-dir"):
        Ucf101Converter(ucf_copy).plan()


def test_val_groups_must_leave_training_groups(ucf_src: Path) -> None:
    with pytest.raises(ValueError, match="no training groups"):
        Ucf101Converter(ucf_src, val_groups=3).plan()


@pytest.mark.parametrize(
    ("total", "num", "policy", "extra", "expected"),
    [
        (50, 4, "uniform", {}, [0, 12, 25, 37]),
        (250, 8, "uniform", {}, [0, 31, 62, 93, 125, 156, 187, 218]),
        (3, 5, "uniform", {}, [0, 0, 1, 1, 2]),
        (50, 4, "center", {}, [6, 18, 31, 43]),
        (50, 8, "fps", {"fps": 5, "video_fps": 25}, [0, 5, 10, 15, 20, 25, 30, 35]),
        (12, 8, "fps", {"fps": 5, "video_fps": 25}, [0, 5, 10]),
        (30, 3, "fps", {"fps": 2, "video_fps": 29.97}, [0, 14, 29]),
    ],
)
def test_sample_indices(total: int, num: int, policy: str, extra: dict, expected: list[int]) -> None:
    assert sample_indices(total, num, policy, **extra) == expected


def test_random_sampling_stays_in_segments_and_follows_the_seed() -> None:
    first = sample_indices(100, 4, "random", seed=1, key="a.avi")
    assert first == sample_indices(100, 4, "random", seed=1, key="a.avi")
    assert [i // 25 for i in first] == [0, 1, 2, 3]
    draws = {tuple(sample_indices(100, 4, "random", seed=s, key="a.avi")) for s in range(5)}
    assert len(draws) > 1


def test_pyav_seeks_find_every_frame_of_a_b_frame_clip(tmp_path: Path) -> None:
    """With B-frames, decoding order differs from display order and the first frame has pts 1."""
    clip = tmp_path / "b.avi"
    write_avi(clip, (synthetic_frame(i, 0, 1) for i in range(60)), gop=12, b_frames=2)
    for wanted in ([0, 7, 15, 22, 30, 37, 45, 52], [11, 23, 35], [59], [9, 10, 11, 12, 13], list(range(0, 60, 5))):
        frames = decode_pyav(clip, wanted)
        assert {index: read_index(frame) for index, frame in frames.items()} == {i: i for i in wanted}
    assert sorted(decode_baseline(clip, [3, 58])) == [3, 58]
    assert [read_index(decode_baseline(clip, [i])[i]) for i in (3, 58)] == [3, 58]


@pytest.mark.skipif(not hasattr(resource, "RUSAGE_THREAD"), reason="per-thread CPU times are a Linux feature")
def test_pyav_decodes_on_the_calling_thread_only(tmp_path: Path) -> None:
    """Worker processes are the parallelism: a decoder or scaler thread per worker would take the other workers'
    cores (PyAV's scaler starts one thread per core by default). All the CPU time is this thread's."""
    clip = tmp_path / "a.avi"
    write_avi(clip, (synthetic_frame(i, 0, 1) for i in range(50)), gop=12)

    def cpu(who: int) -> float:
        usage = resource.getrusage(who)
        return usage.ru_utime + usage.ru_stime

    process, thread = cpu(resource.RUSAGE_SELF), cpu(resource.RUSAGE_THREAD)
    for _ in range(10):
        frames = decode_pyav(clip, list(range(50)))
    process, thread = cpu(resource.RUSAGE_SELF) - process, cpu(resource.RUSAGE_THREAD) - thread

    assert sorted(frames) == list(range(50))
    assert process - thread <= 0.05 * process, f"{process - thread:.4f} of {process:.4f} CPU-s ran on other threads"
