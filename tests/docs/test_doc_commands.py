"""Every `phi3v-data` / `phi3v-train` command in README.md and docs/*.md parses, and every command's --help works.

Commands are parsed, never run: each is resolved to its Typer (click) command and its arguments go through
that command's option parser, so a renamed subcommand, an option that does not exist, a missing option
value, an unknown choice or a stray extra argument fails the test with the file and line.
"""

from __future__ import annotations

import functools
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer
from typer._click.exceptions import UsageError
from typer.testing import CliRunner

from phi3v_data.cli.main import app as data_app
from phi3v_train.cli.main import app as train_app

REPO_ROOT = Path(__file__).resolve().parents[2]
CLIS: dict[str, typer.Typer] = {"phi3v-data": data_app, "phi3v-train": train_app}
SHELL_OPERATORS = {"|", "||", "&&", ";", ">", ">>", "<", "2>", "&>"}
PLACEHOLDER = "..."


@dataclass(frozen=True)
class DocCommand:
    """One shell command line of a fenced code block: where it is and its words after the program name."""

    file: Path
    line: int
    program: str
    args: tuple[str, ...]

    @property
    def where(self) -> str:
        shown = self.file.relative_to(REPO_ROOT) if self.file.is_relative_to(REPO_ROOT) else self.file
        return f"{shown}:{self.line}"


def doc_files() -> list[Path]:
    return [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(1-based first line, line) for each line inside fenced code blocks, `\\` continuations joined."""
    result: list[tuple[int, str]] = []
    in_fence = False
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if raw.lstrip().startswith("```"):
            in_fence = not in_fence
            pending = []
            continue
        if not in_fence:
            continue
        if not pending:
            start = number
        if raw.rstrip().endswith("\\"):
            pending.append(raw.rstrip()[:-1])
            continue
        pending.append(raw)
        result.append((start, " ".join(pending)))
        pending = []
    return result


def _words(line: str) -> list[str]:
    line = re.sub(r"\$\(which (phi3v-\w+)\)", r"\1", line)
    try:
        words = shlex.split(line, comments=True)
    except ValueError:
        return []
    for index, word in enumerate(words):
        if word in SHELL_OPERATORS or word.startswith((">", "2>")):
            return words[:index]
    return words


def commands_in(path: Path) -> list[DocCommand]:
    """The CLI commands of one Markdown file, found anywhere in a line (after env vars, torchrun, `time`)."""
    found: list[DocCommand] = []
    for line_number, line in _logical_lines(path.read_text(encoding="utf-8")):
        words = _words(line)
        for index, word in enumerate(words):
            program = word.rsplit("/", 1)[-1]
            if program in CLIS:
                args = tuple(w for w in words[index + 1 :] if w != PLACEHOLDER)
                found.append(DocCommand(path, line_number, program, args))
                break
    return found


@functools.cache
def _command_tree(app: typer.Typer) -> Any:
    return typer.main.get_command(app)


def _choices(param: Any) -> list[str] | None:
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is None or not descriptor.is_choice or descriptor.choices is None:
        return None
    return [str(getattr(choice, "value", choice)) for choice in descriptor.choices]


def parse_problem(command: DocCommand) -> str | None:
    """Why `command` would not parse, or None when it does. Nothing is executed."""
    current = _command_tree(CLIS[command.program])
    path = [command.program]
    args = list(command.args)
    while hasattr(current, "commands"):
        if args and args[0].startswith("-") and args[0] != "--help":
            return f"`{' '.join(path)}` takes a subcommand before options, got {args[0]!r}"
        if not args or args[0] == "--help":
            return None
        name = args.pop(0)
        if name not in current.commands:
            return f"`{' '.join(path)}` has no subcommand {name!r} (it has: {', '.join(sorted(current.commands))})"
        current = current.commands[name]
        path.append(name)
    ctx = current.context_class(current, info_name=path[-1], resilient_parsing=False)
    try:
        opts, extra, _order = current.make_parser(ctx).parse_args(args=args)
    except UsageError as exc:
        return f"`{' '.join(path)}`: {exc.format_message()}"
    if extra and not ctx.allow_extra_args:
        return f"`{' '.join(path)}`: unexpected extra argument(s) {extra}"
    for param in current.get_params(ctx):
        choices = _choices(param)
        value = opts.get(param.name)
        if choices is None or value is None:
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        for item in values:
            if not str(item).startswith("$") and str(item) not in choices:
                return f"`{' '.join(path)}`: {item!r} is not a choice of {param.opts[0]} ({', '.join(choices)})"
    return None


def all_doc_commands() -> list[DocCommand]:
    return [command for path in doc_files() for command in commands_in(path)]


def command_paths() -> list[tuple[str, ...]]:
    """Every command of both CLIs, groups included, as (program, subcommand, ...)."""
    paths: list[tuple[str, ...]] = []

    def walk(command: Any, path: tuple[str, ...]) -> None:
        paths.append(path)
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            walk(sub, (*path, name))

    for program, app in CLIS.items():
        walk(_command_tree(app), (program,))
    return paths


COMMAND_PATHS = command_paths()


def test_every_documented_command_parses() -> None:
    commands = all_doc_commands()
    problems = [f"{c.where}: {c.program} {' '.join(c.args)}\n    {p}" for c in commands if (p := parse_problem(c))]
    assert problems == [], "commands in the docs that do not parse:\n" + "\n".join(problems)


def test_every_command_has_an_example_in_the_docs() -> None:
    documented: set[tuple[str, ...]] = set()
    for command in all_doc_commands():
        words = (command.program, *command.args)
        documented.update(words[:n] for n in range(1, len(words) + 1))
    missing = [" ".join(path) for path in COMMAND_PATHS if path not in documented]
    assert missing == [], f"commands without an example in a fenced block of README.md or docs/: {missing}"


@pytest.mark.parametrize("path", COMMAND_PATHS, ids=" ".join)
def test_help_exits_zero(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(CLIS[path[0]], [*path[1:], "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


@pytest.fixture
def write_doc(tmp_path: Path):
    def write(text: str) -> Path:
        path = tmp_path / "doc.md"
        path.write_text(text, encoding="utf-8")
        return path

    return write


def test_extraction_joins_continuations_and_strips_launchers_env_and_comments(write_doc) -> None:
    path = write_doc(
        "intro `phi3v-data schema` outside a fence is ignored\n"
        "```bash\n"
        "# a comment line\n"
        "PHI3V_DEBUG=1 phi3v-data validate a.jsonl --strict   # trailing comment\n"
        "torchrun --nproc_per_node 8 $(which phi3v-train) run ... \\\n"
        "  --mode full --fsdp full_shard\n"
        "phi3v-train predict --model m --jsonl d.jsonl > answers.jsonl\n"
        "```\n"
    )
    assert [(c.line, c.program, c.args) for c in commands_in(path)] == [
        (4, "phi3v-data", ("validate", "a.jsonl", "--strict")),
        (5, "phi3v-train", ("run", "--mode", "full", "--fsdp", "full_shard")),
        (7, "phi3v-train", ("predict", "--model", "m", "--jsonl", "d.jsonl")),
    ]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("phi3v-data validate a.jsonl --num-crops 4", None),
        ("phi3v-data convert ucf101 raw out --sampling center", None),
        ("phi3v-data validate a.jsonl --no-such-option", "`phi3v-data validate`: No such option: --no-such-option"),
        ("phi3v-data convrt ucf101 raw out", "`phi3v-data` has no subcommand 'convrt'"),
        ("phi3v-data convert ucf101 raw out --sampling sideways", "'sideways' is not a choice of --sampling"),
        ("phi3v-data convert ucf101 raw out extra", "unexpected extra argument(s) ['extra']"),
        (
            "phi3v-data validate a.jsonl --num-crops",
            "`phi3v-data validate`: Option '--num-crops' requires an argument.",
        ),
    ],
)
def test_parse_problem_names_what_is_wrong(write_doc, line: str, problem: str | None) -> None:
    (command,) = commands_in(write_doc(f"```bash\n{line}\n```\n"))
    found = parse_problem(command)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found, found
