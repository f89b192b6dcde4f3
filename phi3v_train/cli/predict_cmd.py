"""`phi3v-train predict`: the model's answer to a prompt with images, or to every record of a file."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from phi3v_train.errors import ConfigError


def predict_command(
    model: str = typer.Option(..., "--model", help="Run output folder, checkpoint folder, hub id or preset name."),
    image: list[Path] = typer.Option(
        [], "--image", exists=True, dir_okay=False, help="An image of the prompt; repeat for several, in tag order."
    ),
    prompt: str | None = typer.Option(None, "--prompt", help="The user message; tags are added before it if absent."),
    jsonl: Path | None = typer.Option(
        None, "--jsonl", exists=True, dir_okay=False, help="Answer the last turn of every record of this file."
    ),
    image_root: Path | None = typer.Option(
        None, "--image-root", file_okay=False, help="With --jsonl: image folder (default: the file's images/)."
    ),
    num_crops: int | None = typer.Option(
        None, "--num-crops", min=1, help="Image crops; must match training (default: the saved processor's)."
    ),
    max_new_tokens: int = typer.Option(64, "--max-new-tokens", min=1, help="Longest answer generated."),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="With --jsonl: prompts generated together."),
) -> None:
    """Prints the model's answer. With --jsonl, prints one JSON line {"id", "prediction"} per record.

    Examples:

      phi3v-train predict --model runs/demo --image frame0.jpg --image frame1.jpg --prompt "What happens?"

      phi3v-train predict --model merged --jsonl data/ucf101_test.jsonl --num-crops 4 > answers.jsonl
    """
    if (prompt is None) == (jsonl is None):
        raise ConfigError("give either --prompt (with its --image files) or --jsonl FILE")
    if jsonl is not None and image:
        raise ConfigError("--image goes with --prompt; the records of --jsonl name their own images")
    from phi3v_data.io import progress_bar
    from phi3v_data.paths import default_image_root
    from phi3v_train.data.records import load_records
    from phi3v_train.evaluation.predict import answer_prompt, open_images, predict_records
    from phi3v_train.loading import load_model_and_processor

    loaded_model, processor = load_model_and_processor(model, num_crops=num_crops)
    if prompt is not None:
        images = open_images(image)
        loaded_model.eval()
        answer = answer_prompt(loaded_model, processor, prompt, images, max_new_tokens=max_new_tokens)
        typer.echo(answer)
        return
    records = load_records(jsonl)
    with progress_bar(len(records), "predicting") as advance:
        answers = predict_records(
            loaded_model,
            processor,
            records,
            image_root=image_root or default_image_root(jsonl),
            batch_size=batch_size,
            max_new_tokens=max_new_tokens,
            on_progress=advance,
        )
    for record, answer in zip(records, answers, strict=True):
        typer.echo(json.dumps({"id": record.id, "prediction": answer}, ensure_ascii=False))


def register(app: typer.Typer) -> None:
    """Adds `predict` to `app`."""
    app.command("predict")(predict_command)
