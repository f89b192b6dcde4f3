"""`phi3v-data convert llava|sharegpt|hf|<spec>` and `phi3v-data convert --list`: other toolkits' formats and
datasets described by a spec (the shipped ones in ``converters/``, or ``--spec FILE``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from phi3v_data.cli.convert_cmd import OutArg, convert_and_report
from phi3v_data.cli.options import RunOptions, with_option_groups
from phi3v_data.converters import HfConverter, LlavaConverter, ShareGPTConverter
from phi3v_data.converters.chat import ChatFileConverter
from phi3v_data.converters.spec import SPEC_PACKAGE, SPEC_SUFFIX, DatasetSpec, builtin_spec, load_spec

stdout = Console(highlight=False, soft_wrap=True)

SrcArg = typer.Argument(..., help="A local folder or file, or a hub dataset id (read when online).")
ImageFolderOpt = typer.Option(
    None, "--image-folder", help="Where the file's relative image paths point (default: its folder)."
)
SourceOpt = typer.Option(
    "", "--source", help="The records' `source`, also the output file prefix (default: the format)."
)
SplitOpt = typer.Option("train", "--split", help="Split name of the output file.")


@dataclass(frozen=True)
class DatasetsReadOptions:
    """How the hf reader opens SRC with `datasets`: the options of `convert hf` and of each spec's subcommand."""

    config: Annotated[
        str | None, typer.Option("--config", help="The dataset's config (subset), e.g. ai2d for the_cauldron.")
    ] = None
    split: Annotated[
        list[str],
        typer.Option("--split", help="Source split to convert; repeat for more (default: the spec's, or all)."),
    ] = field(default_factory=list)
    streaming: Annotated[
        bool, typer.Option("--streaming", help="Stream the rows instead of downloading the dataset first.")
    ] = False
    cache_dir: Annotated[
        Path | None, typer.Option("--cache-dir", help="The datasets cache folder (default: datasets' own).")
    ] = None


def _chat_file_command(make: type[ChatFileConverter], src_help: str, doc: str) -> Callable[..., None]:
    """The subcommand of a LLaVA or ShareGPT file: SRC, --image-folder, --source and --split."""

    @with_option_groups
    def command(
        src: Path = typer.Argument(..., help=src_help),
        out: Path = OutArg,
        image_folder: Path | None = ImageFolderOpt,
        source: str = SourceOpt,
        split: str = SplitOpt,
        *,
        run: RunOptions,
    ) -> None:
        convert_and_report(make, out, run, src=src, image_folder=image_folder, source=source, split=split)

    command.__doc__ = doc
    return command


llava = _chat_file_command(
    LlavaConverter,
    "A LLaVA .json array (or .jsonl) of {id, image, conversations}.",
    """LLaVA instruction data: human/gpt turns, `<image>` placeholders become image tags; records without an
    image are kept as text-only records. A placeholder/image count mismatch skips the record and is reported.

    Examples:

      phi3v-data convert llava llava_v1_5_mix665k.json data/llava --image-folder raw/llava_images
    """,
)
sharegpt = _chat_file_command(
    ShareGPTConverter,
    "An ms-swift / LLaMA-Factory .json or .jsonl of {messages, images}.",
    """ShareGPT-style messages (ms-swift, LLaMA-Factory): a leading system message goes into metadata.system;
    `<image>` placeholders must match `images` one to one.

    Examples:

      phi3v-data convert sharegpt mllm_demo.json data/demo
    """,
)


def _hf(src: str, out: Path, spec: DatasetSpec | None, read: DatasetsReadOptions, run: RunOptions) -> None:
    convert_and_report(
        HfConverter,
        out,
        run,
        src=Path(src),
        spec=spec,
        config=read.config,
        wanted_splits=tuple(read.split),
        streaming=read.streaming,
        cache_dir=str(read.cache_dir) if read.cache_dir else None,
    )


@with_option_groups
def hf(
    src: str = SrcArg,
    out: Path = OutArg,
    spec_file: Path | None = typer.Option(None, "--spec", help="A dataset spec (YAML); options below override it."),
    user: str | None = typer.Option(None, "--user", help="User text template over the columns, e.g. '{question}'."),
    assistant: str | None = typer.Option(None, "--assistant", help="Answer template, e.g. '{answers[0]}'."),
    image_column: list[str] = typer.Option([], "--image-column", help="Image column (Image, list, or {bytes, path})."),
    answers: str | None = typer.Option(None, "--answers", help="Column of reference answers for metadata.answers."),
    id_column: str | None = typer.Option(None, "--id-column", help="Column holding record ids (default: <split>-N)."),
    source: str | None = typer.Option(None, "--source", help="The records' `source` and output prefix (default: hf)."),
    *,
    read: DatasetsReadOptions,
    run: RunOptions,
) -> None:
    """Any dataset `datasets.load_dataset` opens: a folder, parquet/JSON/CSV files, a save_to_disk folder, or a
    hub id. Without templates (and without --spec) SRC must be a dataset written by `phi3v-data export --to hf`.

    Examples:

      phi3v-data convert hf raw/chartqa data/charts --user '{query}' --assistant '{label[0]}' --image-column image

      phi3v-data convert hf HuggingFaceM4/ChartQA data/charts --spec my_chartqa.yaml --split val --streaming
    """
    overrides = {
        key: value
        for key, value in {
            "user": user,
            "assistant": assistant,
            "image_columns": image_column or None,
            "answers": answers,
            "id_column": id_column,
            "source": source,
        }.items()
        if value is not None
    }
    spec = None
    if spec_file is not None:
        base = load_spec(spec_file).model_dump(by_alias=True, exclude_defaults=True)
        spec = DatasetSpec.model_validate({**base, **overrides})
    elif user is not None or assistant is not None:
        if user is None or assistant is None:
            raise typer.BadParameter("give both --user and --assistant templates (or neither, or --spec)")
        try:
            spec = DatasetSpec.model_validate(
                {"name": "hf", "description": "command line", "source": source or "hf", **overrides}
            )
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from exc
    elif overrides:
        raise typer.BadParameter("--image-column, --answers, --id-column and --source need --user and --assistant")
    _hf(src, out, spec, read, run)


def _spec_help(name: str) -> str:
    """The spec file's first comment line (read without parsing YAML, so that --help stays fast)."""
    text = (resources.files(SPEC_PACKAGE) / f"{name}{SPEC_SUFFIX}").read_text(encoding="utf-8")
    return next((line.lstrip("# ").strip() for line in text.splitlines() if line.startswith("#")), name)


def _spec_command(name: str):
    @with_option_groups
    def command(
        src: str = SrcArg,
        out: Path = OutArg,
        *,
        read: DatasetsReadOptions,
        run: RunOptions,
    ) -> None:
        _hf(src, out, builtin_spec(name), read, run)

    command.__doc__ = f"{_spec_help(name)}\n\nThe spec: converters/{name}{SPEC_SUFFIX} (`phi3v-data convert --list`)."
    return command


def list_converters() -> None:
    from phi3v_data.converters import CONVERTERS
    from phi3v_data.converters.spec import builtin_spec_names

    stdout.print("Converters:")
    for name in sorted(CONVERTERS):
        stdout.print(f"  {name}")
    stdout.print("Specs (converters/*.yaml, read by the hf reader):")
    for name in builtin_spec_names():
        spec = builtin_spec(name)
        stdout.print(
            f"  {name:<10} {escape(spec.hub or '-'):<28} metric {spec.metric or '-':<17} {escape(spec.description)}"
        )


def register(convert_app: typer.Typer) -> None:
    """Adds `llava`, `sharegpt`, `hf`, one command per shipped spec, and `--list` to `convert_app`."""
    from phi3v_data.converters.spec import builtin_spec_names

    convert_app.command("llava")(llava)
    convert_app.command("sharegpt")(sharegpt)
    convert_app.command("hf")(hf)
    for name in builtin_spec_names():
        convert_app.command(name)(_spec_command(name))

    @convert_app.callback(invoke_without_command=True)
    def convert_root(
        ctx: typer.Context,
        list_all: bool = typer.Option(False, "--list", help="List the converters and the shipped dataset specs."),
    ) -> None:
        if list_all:
            list_converters()
            raise typer.Exit()
        if ctx.invoked_subcommand is None:
            stdout.print(ctx.get_help())
            raise typer.Exit()
