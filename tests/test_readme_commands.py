"""Every train.py and eval.py command in README.md composes: its config groups, options and
keys exist (multirun commands: their first job)."""

from __future__ import annotations

import re
import shlex

import pytest
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from inpaintlab.runs.config import compose_outside_hydra
from tests.conftest import CONF, ROOT

SCRIPT = re.compile(r"python (train|eval)\.py")
# a shell prompt, an environment assignment or a launcher before `python`
PREFIX = re.compile(r"^.*?(?=python (?:train|eval)\.py)")
SHELL_VARIABLE = re.compile(r"\$\{[A-Z_]+\}")
PLACEHOLDER = re.compile(r"<[^>]+>")  # <run>: what the reader fills in


def readme_lines() -> list[str]:
    """README lines with backslash continuations joined, plus inline code spans on their own."""
    joined = re.sub(r"\\\n\s*", " ", (ROOT / "README.md").read_text())
    # the installed command takes the same overrides as the checkout's scripts
    joined = re.sub(r"\binpaintlab (train|eval)\b", r"python \1.py", joined)
    spans = re.findall(r"`([^`\n]*python (?:train|eval)\.py[^`\n]*)`", joined)
    return [*joined.splitlines(), *spans]


def readme_commands() -> list[str]:
    commands = []
    for line in readme_lines():
        if not SCRIPT.search(line) or "`" in line:
            continue  # prose and tables: their code spans are taken on their own
        command = PREFIX.sub("", line).split(" #")[0].strip().rstrip("&").strip()
        # the shell expands its variables (a SLURM job id) before Hydra sees them
        commands.append(SHELL_VARIABLE.sub("1", command))
    return sorted(set(commands))


def first_job(arguments: list[str]) -> list[str]:
    """The overrides of a command's first job: a multirun's first combination of choices; an
    optuna interval stands for its lower end."""
    words = [argument for argument in arguments if argument not in ("-m", "--multirun")]
    overrides = OverridesParser.create().parse_overrides(words)
    for i, override in enumerate(overrides):
        if override.is_interval_sweep():
            start = override.value().start
            overrides[i] = OverridesParser.create().parse_override(
                f"{override.key_or_group}={start}"
            )
    (batch, *_) = BasicSweeper.split_arguments(overrides, max_batch_size=None)
    return list(batch[0])


def test_the_readme_shows_commands_of_both_scripts():
    commands = readme_commands()
    assert len(commands) > 20
    assert {command.split()[1] for command in commands} == {"train.py", "eval.py"}


@pytest.mark.parametrize("command", readme_commands())
def test_a_readme_command_composes(command, tmp_path):
    _, script, *arguments = shlex.split(PLACEHOLDER.sub("run", command))
    cfg = compose_outside_hydra(CONF, script.removesuffix(".py"), first_job(arguments), tmp_path)
    OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
