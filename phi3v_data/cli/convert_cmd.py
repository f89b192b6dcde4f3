"""`phi3v-data convert NAME SRC OUT` (one subcommand per dataset) and `phi3v-data sample NAME OUT`."""

from __future__ import annotations

import os
from collections.abc import Callable
from enum import Enum
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from phi3v_data.cli.options import RunOptions, with_option_groups
from phi3v_data.cli.reporter import DEBUG_ENV
from phi3v_data.converters import (
    Converter,
    CustomConverter,
    DocVQAConverter,
    HatefulMemesConverter,
    Nlvr2Converter,
    Ucf101Converter,
    run_conversion,
)
from phi3v_data.converters.base import ConversionInterrupted
from phi3v_data.converters.hub import CAULDRON_CONFIGS, fetch_hub_dataset, is_hub_id
from phi3v_data.errors import SourceLayoutError
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
MaxPixelsOpt = typer.Option(
    None,
    "--max-pixels",
    min=1,
    help="Downscale images over this many pixels (noted in metadata.downscaled); without it, images over the "
    "validator's limit are skipped.",
)
SHOWN_NOT_REACHED = 10


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


def _missing_local(src: Path) -> SourceLayoutError:
    """SRC does not exist: name the nearest folder that does and what it holds."""
    parent = src.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    entries = sorted(p.name for p in parent.iterdir())[:12] if parent.is_dir() else []
    holds = f"; {parent} holds: {', '.join(entries)}" if entries else ""
    return SourceLayoutError(f"{src} does not exist{holds}")


def _source(make: type[Converter], src: Path) -> Path:
    """SRC as a local path, or a hub dataset id fetched into the HF cache. ``raw/x`` with a local ``raw/`` is a
    mistyped folder, never a hub id."""
    if src.exists() or getattr(make, "opens_hub_ids", False):
        return src
    if make.name not in CAULDRON_CONFIGS or not is_hub_id(src) or Path(src.parts[0]).is_dir():
        raise _missing_local(src)
    stderr.print(f"{escape(str(src))}: not a local folder; fetching the hub dataset's parquet shards into the HF cache")
    return fetch_hub_dataset(src.as_posix(), make.name)


def _fail(message: str, exc: BaseException, code: int = 1) -> None:
    """One clean line instead of a traceback (the traceback with PHI3V_DEBUG=1)."""
    if os.environ.get(DEBUG_ENV):
        raise exc
    stderr.print(f"[bold red]Error:[/] {escape(message)}")
    raise typer.Exit(code=code) from None


def convert_and_report(
    make: type[Converter], out: Path, run: RunOptions, timeout: float | None = None, **kw: object
) -> None:
    """Runs ``make(**kw)`` into OUT and prints the summary; bad options, a failed run or an interrupt exit cleanly."""
    try:
        kw["src"] = _source(make, kw["src"])
        converter = make(**kw)
        summary = run_conversion(
            converter,
            out,
            workers=run.workers,
            timeout=timeout,
            progress=True,
            max_skip_fraction=run.max_skip_fraction,
            strict=run.strict,
            overwrite=run.overwrite,
        )
    except ValueError as exc:
        # Options that contradict each other or the source (e.g. --val-groups larger than train's groups).
        raise typer.BadParameter(str(exc)) from exc
    except ConversionInterrupted as exc:
        _fail(str(exc), exc, code=130)
    except KeyboardInterrupt as exc:
        _fail("interrupted before any item was converted", exc, code=130)
    except OSError as exc:
        # Unreadable list files or class folders, a read-only OUT, a full disk.
        what = f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc)
        _fail(f"{what} (check that SRC is readable and OUT is writable)", exc)
    _print_summary(converter.name, out, summary)
    if summary.failure:
        stderr.print(
            f"[bold red]Error:[/] {escape(summary.failure)}; the outputs in {escape(str(out))} were left as they were "
            f"(report: {escape(str(summary.report))}). Fix the source, or raise --max-skip-fraction, and re-run: "
            "finished items are not redone."
        )
        raise typer.Exit(code=1)


def _print_summary(name: str, out: Path, summary) -> None:
    counts = ", ".join(f"{n:,} {split}" for split, n in summary.records.items()) or "no"
    stderr.print(
        f"{name}: {counts} records in {escape(str(out))} "
        f"({summary.processed:,} items converted, {summary.reused:,} already done)"
    )
    for split, stats in summary.splits.items():
        reasons = ", ".join(f"{kind} {n:,}" for kind, n in sorted(stats["skipped"].items()))
        skipped = f", {sum(stats['skipped'].values()):,} skipped ({reasons})" if reasons else ""
        stderr.print(f"  {split}: {stats['items']:,} items read, {stats['records']:,} records{escape(skipped)}")
    for reason, count in summary.excluded.items():
        stderr.print(f"left out: {count:,} {reason}")
    for entry in summary.not_reached[:SHOWN_NOT_REACHED]:
        stderr.print(f"[yellow]not read:[/] {escape(entry)}")
    if len(summary.not_reached) > SHOWN_NOT_REACHED:
        stderr.print(f"[yellow]not read:[/] {len(summary.not_reached) - SHOWN_NOT_REACHED:,} more in the report")
    for line in summary.warnings:
        stderr.print(f"[yellow]warning:[/] {escape(line)}")
    if summary.skipped:
        stderr.print(f"[yellow]skipped {len(summary.skipped):,} bad items[/] (all in {escape(str(summary.report))}):")
        for entry in summary.skipped[:SHOWN_SKIPS]:
            stderr.print(f"  {escape(entry['item'])}: {escape(entry['reason'])}")


@convert_app.command("ucf101")
@with_option_groups
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
    *,
    run: RunOptions,
) -> None:
    """Sample frames of UCF-101 clips: official layout (SRC/<Class>/*.avi + ucfTrainTestlist/) or pre-split
    (SRC/{train,val,test}/<Class>/*.avi). Frames go to OUT/images/<split>/<Class>/<stem>.<k>.jpg.

    Examples:

      phi3v-data convert ucf101 raw/UCF-101 data/ucf101 --num-classes 10 --val-groups 2 --workers 2

      phi3v-data convert ucf101 raw/UCF101_subset data/ucf101 --frames 8
    """
    convert_and_report(
        Ucf101Converter,
        out,
        run,
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
@with_option_groups
def docvqa(
    src: Path = SrcArg,
    out: Path = OutArg,
    prompt_suffix: str = typer.Option(
        "", "--prompt-suffix", help="Appended to each question, e.g. $'\\nAnswer briefly.' as in the recipe."
    ),
    max_pixels: int | None = MaxPixelsOpt,
    *,
    run: RunOptions,
) -> None:
    """One record per question, one image per document. SRC: HuggingFaceM4/DocumentVQA parquet (data/*.parquet),
    nielsr/docvqa_1200_examples parquet, the_cauldron docvqa parquet, or SP-DocVQA *_v1.0.json + documents/.

    Examples:

      phi3v-data convert docvqa raw/DocumentVQA data/docvqa

      phi3v-data convert docvqa raw/spdocvqa data/docvqa --prompt-suffix $'\\nAnswer briefly.'
    """
    convert_and_report(DocVQAConverter, out, run, src=src, prompt_suffix=prompt_suffix, max_pixels=max_pixels)


def _folder_or_cauldron_command(make: type[Converter], doc: str) -> Callable[..., None]:
    """The subcommand of a converter that reads the official folder or the_cauldron's parquet (SRC and --max-pixels)."""

    @with_option_groups
    def command(
        src: Path = SrcArg, out: Path = OutArg, max_pixels: int | None = MaxPixelsOpt, *, run: RunOptions
    ) -> None:
        convert_and_report(make, out, run, src=src, max_pixels=max_pixels)

    command.__doc__ = doc
    return command


hateful_memes = convert_app.command("hateful-memes")(
    _folder_or_cauldron_command(
        HatefulMemesConverter,
        """Yes/no hatefulness per meme. SRC: the official folder (img/ + train/dev_seen/dev_unseen/test_seen/test_unseen
    .jsonl) or the_cauldron hateful_memes parquet. Unlabeled memes are left out and counted.

    Examples:

      phi3v-data convert hateful-memes raw/hateful_memes data/memes
    """,
    )
)
nlvr2 = convert_app.command("nlvr2")(
    _folder_or_cauldron_command(
        Nlvr2Converter,
        """True/False per sentence over a left and a right image. SRC: the official folder (data/{train,dev,test1}.json
    + images/) or the_cauldron nlvr2 parquet.

    Examples:

      phi3v-data convert nlvr2 raw/nlvr2 data/nlvr2
    """,
    )
)


@convert_app.command("custom")
@with_option_groups
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
    max_pixels: int | None = MaxPixelsOpt,
    *,
    run: RunOptions,
) -> None:
    """Your own table: templates fill user and assistant texts; rows missing a template field are reported.

    Examples:

      phi3v-data convert custom table.csv data/mine --image-column path --user '{question}' --assistant '{answer}'

      phi3v-data convert custom rows.parquet data/mine --image-column image --user 'Describe.' --assistant '{caption}'
    """
    convert_and_report(
        CustomConverter,
        out,
        run,
        src=src,
        user=user,
        assistant=assistant,
        image_columns=tuple(image_column),
        id_column=id_column,
        source=source,
        split=split,
        max_pixels=max_pixels,
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
    from phi3v_data.cli import convert_interop_cmd

    convert_interop_cmd.register(convert_app)
    app.add_typer(convert_app, name="convert")
    app.command("sample")(sample)
