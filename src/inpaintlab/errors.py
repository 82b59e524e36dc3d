"""User-facing errors: each message is one line saying what is wrong and what to do."""

from __future__ import annotations

import importlib.util
from typing import Any

# what each optional install adds that the code imports (pyproject.toml's extras)
EXTRAS = {
    "eval": ("cv2", "matplotlib", "torch_fidelity"),
    "wandb": ("wandb",),
    "tensorboard": ("tensorboard",),
    "cluster": ("submitit",),
    "app": ("gradio",),
    "onnx": ("onnx", "onnxscript", "onnxruntime"),
}


class InpaintlabError(Exception):
    """Base class for errors caused by user input (config, data, checkpoints)."""


class ConfigError(InpaintlabError):
    """A config value is missing, unknown or inconsistent."""


class DataError(InpaintlabError):
    """An image, mask or data folder cannot be used."""


class CheckpointError(InpaintlabError):
    """A checkpoint is missing, unreadable or was not written by inpaintlab."""


class MissingExtraError(InpaintlabError):
    """An optional dependency that this task needs is not installed."""


class TrainingError(InpaintlabError):
    """Training cannot go on (a non-finite loss); the message says what was saved."""


def one_line(error: BaseException) -> str:
    """The user-facing line of an error (its first), also when a DataLoader worker wrapped it
    (then the original error's last line); its type's name when it has no message."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    if "Original Traceback" not in str(error):
        return lines[0]
    prefix = f"{type(error).__module__}.{type(error).__qualname__}: "
    return lines[-1].removeprefix(prefix)


def flat_message(error: BaseException, limit: int | None = None) -> str:
    """A third-party error's whole message on one line (line breaks and runs of spaces become
    one space), cut to `limit` characters; its type's name when it has no message."""
    text = " ".join(str(error).split())[:limit]
    return text or type(error).__name__


def require_numbers(kind: type, **values: Any) -> None:
    """Raise a ConfigError naming the first of `values` (config key=value) that is not a
    number (`kind` float), or not a whole number (`kind` int); booleans are neither."""
    accepted = (int,) if kind is int else (int, float)
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, accepted):
            wanted = "a whole number" if kind is int else "a number"
            raise ConfigError(f"{key}={value!r} is not {wanted}: pass {wanted} for {key}")


def require_extra(extra: str, needed_for: str) -> None:
    """Stop with the pip command that adds the `extra` install when one of its modules is
    missing (checked before the task starts, not when it first imports them)."""
    missing = [name for name in EXTRAS[extra] if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingExtraError(
            f"{needed_for} needs {', '.join(missing)}, which the [{extra}] extra installs: "
            f"pip install 'inpaintlab[{extra}]'"
        )
