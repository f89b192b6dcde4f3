"""`phi3v-data convert NAME SRC OUT` (one subcommand per dataset) and `phi3v-data sample NAME OUT`."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from phi3v_data.converters import (
    Converter,
    CustomConverter,
    DocVQAConverter,
    HatefulMemesConverter,
    Nlvr2Converter,
    Ucf101Converter,
    run_conversion,
)
from phi3v_data.converters.hub import CAULDRON_CONFIGS, fetch_hub_dataset, is_hub_id
from phi3v_data.samples import SAMPLES

SHOWN_SKIPS = 10
stderr = Console(stderr=True, highlight=False, soft_wrap=True)

convert_app = typer.Typer(
    help=(
        "Convert a raw dataset into `conversations` JSONL plus images: OUT/<name>_<split>.jsonl, OUT/images/<split>/, "
        "OUT/convert_report.json. Re-running resumes and skips finished items.\n\n"
        "Examples:\n\n"
        "  phi3v-data convert ucf101 raw/UCF-101 data/ucf101 --num-classes 10 --val-groups 2\n\n"
        "  phi3v-data convert docvqa raw/DocumentVQA data/docvqa --prompt-suffix $'\\nAnswer briefly.'\n\n"
        "  phi3v-data convert custom table.csv data/mine --image-column path --user '{question}' --assistant '{answer}'"
    ),
    no_args_is_help=True,
)

SrcArg = typer.Argument(
    ...,
    help="The raw dataset: a folder in one of the converter's layouts (see --help), or a hub dataset id "
    "(docvqa, hateful-memes, nlvr2; fetched when online).",
)
OutArg = typer.Argument(..., help="Output folder: gets <name>_<split>.jsonl, images/ and convert_report.json.")
WorkersOpt = typer.Option(1, "--workers", min=1, help="Worker processes.")
StrictOpt = typer.Option(False, "--strict", help="Exit 1 when any item was skipped (corrupt, missing, unreadable).")


class Sampling(str, Enum):
    uniform = "uniform"
    center = "center"
    random = "random"
    fps = "fps"


class Decoder(str, Enum):
    auto = "auto"
    pyav = "pyav"
    decord = "decord"


class SampleName(str, Enum):
    ucf101 = "ucf101"
    docvqa = "docvqa"
    hateful_memes = "hateful-memes"
    nlvr2 = "nlvr2"


def _convert(make: type[Converter], out: Path, workers: int, strict: bool, timeout: float | None = None, **kw) -> None:
    if make.name in CAULDRON_CONFIGS and is_hub_id(kw["src"]):
        stderr.print(f"{escape(str(kw['src']))}: a hub dataset; fetching its parquet shards into the HF cache")
        kw["src"] = fetch_hub_dataset(kw["src"].as_posix(), make.name)
    try:
        converter = make(**kw)
        summary = run_conversion(converter, out, workers=workers, timeout=timeout, progress=True)
    except ValueError as exc:
        # Options that contradict each other or the source (e.g. --val-groups larger than train's groups).
        raise typer.BadParameter(str(exc)) from exc
    counts = ", ".join(f"{n:,} {split}" for split, n in summary.records.items()) or "no"
    stderr.print(
        f"{converter.name}: {counts} records in {escape(str(out))} "
        f"({summary.processed:,} items converted, {summary.reused:,} already done)"
    )
    for reason, count in summary.excluded.items():
        stderr.print(f"left out: {count:,} {reason}")
    if summary.skipped:
        stderr.print(f"[yellow]skipped {len(summary.skipped):,} bad items[/] (all in {escape(str(summary.report))}):")
        for entry in summary.skipped[:SHOWN_SKIPS]:
            stderr.print(f"  {escape(entry['item'])}: {escape(entry['reason'])}")
        if strict:
            raise typer.Exit(code=1)


@convert_app.command("ucf101")
def ucf101(
    src: Path = SrcArg,
    out: Path = OutArg,
    frames: int = typer.Option(8, "--frames", min=1, help="Frames sampled per clip."),
    sampling: Sampling = typer.Option(
        Sampling.uniform,
        "--sampling",
        help="uniform: floor(i*T/N) (the recipe); center: segment centres; random: seeded offset in each segment; "
        "fps: every video_fps/F frames from the start, up to --frames.",
    ),
    fps: float | None = typer.Option(None, "--fps", help="Frames per second for --sampling fps."),
    split_list: int = typer.Option(1, "--split-list", min=1, max=3, help="Official split list 1, 2 or 3."),
    splits_dir: Path | None = typer.Option(
        None, "--splits-dir", help="The ucfTrainTestlist folder, when it is not inside SRC or beside it."
    ),
    classes: str | None = typer.Option(
        None, "--classes", help="Comma-separated classes to keep, e.g. Archery,Basketball."
    ),
    num_classes: int | None = typer.Option(
        None, "--num-classes", min=1, help="Keep the first K classes of classInd.txt."
    ),
    val_groups: int = typer.Option(
        0,
        "--val-groups",
        min=0,
        help="Move the K highest train group numbers (the same for every class) to a val split.",
    ),
    decoder: Decoder = typer.Option(
        Decoder.auto, "--decoder", help="auto: PyAV with seeks, decord when PyAV fails; or force one backend."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of --sampling random."),
    timeout: float = typer.Option(120.0, "--timeout", min=1, help="Seconds per clip before its decoder is killed."),
    quality: int = typer.Option(95, "--quality", min=1, max=100, help="JPEG quality of the frames."),
    workers: int = WorkersOpt,
    strict: bool = StrictOpt,
) -> None:
    """Sample frames of UCF-101 clips: official layout (SRC/<Class>/*.avi + ucfTrainTestlist/) or pre-split
    (SRC/{train,val,test}/<Class>/*.avi). Frames go to OUT/images/<split>/<Class>/<stem>.<k>.jpg.

    Examples:

      phi3v-data convert ucf101 raw/UCF-101 data/ucf101 --num-classes 10 --val-groups 2 --workers 2

      phi3v-data convert ucf101 raw/UCF101_subset data/ucf101 --frames 8
    """
    _convert(
        Ucf101Converter,
        out,
        workers,
        strict,
        timeout=timeout,
        src=src,
        frames=frames,
        sampling=sampling.value,
        fps=fps,
        split_list=split_list,
        splits_dir=splits_dir,
        classes=tuple(c.strip() for c in classes.split(",") if c.strip()) if classes else (),
        num_classes=num_classes,
        val_groups=val_groups,
        decoder=decoder.value,
        seed=seed,
        quality=quality,
    )


@convert_app.command("docvqa")
def docvqa(
    src: Path = SrcArg,
    out: Path = OutArg,
    prompt_suffix: str = typer.Option(
        "", "--prompt-suffix", help="Appended to each question, e.g. $'\\nAnswer briefly.' as in the recipe."
    ),
    workers: int = WorkersOpt,
    strict: bool = StrictOpt,
) -> None:
    """One record per question, one image per document. SRC: HuggingFaceM4/DocumentVQA parquet (data/*.parquet),
    nielsr/docvqa_1200_examples parquet, the_cauldron docvqa parquet, or SP-DocVQA *_v1.0.json + documents/.

    Examples:

      phi3v-data convert docvqa raw/DocumentVQA data/docvqa

      phi3v-data convert docvqa raw/spdocvqa data/docvqa --prompt-suffix $'\\nAnswer briefly.'
    """
    _convert(DocVQAConverter, out, workers, strict, src=src, prompt_suffix=prompt_suffix)


@convert_app.command("hateful-memes")
def hateful_memes(src: Path = SrcArg, out: Path = OutArg, workers: int = WorkersOpt, strict: bool = StrictOpt) -> None:
    """Yes/no hatefulness per meme. SRC: the official folder (img/ + train/dev_seen/dev_unseen/test_seen/test_unseen
    .jsonl) or the_cauldron hateful_memes parquet. Unlabeled memes are left out and counted.

    Examples:

      phi3v-data convert hateful-memes raw/hateful_memes data/memes
    """
    _convert(HatefulMemesConverter, out, workers, strict, src=src)


@convert_app.command("nlvr2")
def nlvr2(src: Path = SrcArg, out: Path = OutArg, workers: int = WorkersOpt, strict: bool = StrictOpt) -> None:
    """True/False per sentence over a left and a right image. SRC: the official folder (data/{train,dev,test1}.json +
    images/) or the_cauldron nlvr2 parquet.

    Examples:

      phi3v-data convert nlvr2 raw/nlvr2 data/nlvr2
    """
    _convert(Nlvr2Converter, out, workers, strict, src=src)


@convert_app.command("custom")
def custom(
    src: Path = typer.Argument(..., help="A .csv, .jsonl or .parquet file, one record per row."),
    out: Path = OutArg,
    user: str = typer.Option(..., "--user", help="User text template over the row's columns, e.g. '{question}'."),
    assistant: str = typer.Option(..., "--assistant", help="Answer template over the row's columns, e.g. '{answer}'."),
    image_column: list[str] = typer.Option(
        [], "--image-column", help="Column of image paths (relative to SRC's folder) or bytes; repeat for more."
    ),
    id_column: str | None = typer.Option(None, "--id-column", help="Column holding record ids (default: <split>-N)."),
    source: str = typer.Option("custom", "--source", help="The records' `source`, also the output file prefix."),
    split: str = typer.Option("train", "--split", help="Split name of the output file."),
    workers: int = WorkersOpt,
    strict: bool = StrictOpt,
) -> None:
    """Your own table: templates fill user and assistant texts; rows missing a template field are reported.

    Examples:

      phi3v-data convert custom table.csv data/mine --image-column path --user '{question}' --assistant '{answer}'

      phi3v-data convert custom rows.parquet data/mine --image-column image --user 'Describe.' --assistant '{caption}'
    """
    _convert(
        CustomConverter,
        out,
        workers,
        strict,
        src=src,
        user=user,
        assistant=assistant,
        image_columns=tuple(image_column),
        id_column=id_column,
        source=source,
        split=split,
    )


def sample(
    name: SampleName = typer.Argument(..., help="Which dataset layout to imitate."),
    out: Path = typer.Argument(..., help="Folder to write the raw sample into."),
) -> None:
    """Write a small synthetic dataset in NAME's official raw layout, to try a converter without downloads.

    Examples:

      phi3v-data sample ucf101 raw/UCF-101 && phi3v-data convert ucf101 raw/UCF-101 data/ucf101 --val-groups 1

      phi3v-data sample nlvr2 raw/nlvr2
    """
    SAMPLES[name.value](out)
    stderr.print(f"{name.value} sample written to {escape(str(out))}")


def register(app: typer.Typer) -> None:
    """Adds `convert <dataset>` and `sample` to `app`."""
    app.add_typer(convert_app, name="convert")
    app.command("sample")(sample)
