"""Running a task (train, eval, a command) so that a user's mistake ends in one line on stderr
and exit code 2 instead of a traceback."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import Any

import hydra
from omegaconf import DictConfig
from omegaconf import errors as omegaconf_errors

from inpaintlab.errors import ConfigError, InpaintlabError, flat_message, one_line


def as_user_error(error: Exception) -> InpaintlabError | None:
    """Translate config-library errors about user input (composition, overrides, missing or
    unknown keys) into one-line ConfigErrors; None for anything else."""
    if isinstance(error, InpaintlabError):
        return error
    if isinstance(error, hydra.errors.MissingConfigException) and error.options:
        group, _, name = error.missing_cfg_file.rpartition("/")
        options = ", ".join(error.options)
        return ConfigError(f"there is no {group} config {name!r}: choose one of {options}")
    if isinstance(error, hydra.errors.OverrideParseException):
        return ConfigError(f"cannot parse the override {error.override!r}: {one_line(error)}")
    if isinstance(error, hydra.errors.ConfigCompositionException):
        return ConfigError(flat_message(error))
    if isinstance(error, omegaconf_errors.MissingMandatoryValue):
        key = getattr(error, "full_key", "") or "a value"
        return ConfigError(f"{key} is required: pass {key}=... on the command line")
    if isinstance(error, omegaconf_errors.ConfigKeyError):
        return ConfigError(f"unknown config key: {one_line(error)}")
    if isinstance(error, hydra.errors.InstantiationException):
        return instantiation_error(error)
    return None


def instantiation_error(error: Exception) -> InpaintlabError | None:
    """The user error inside a (possibly nested) failed instantiation: ours as it is, a
    TypeError or ValueError from a value of the wrong type as a ConfigError naming the
    target that refused it."""
    cause = error.__cause__
    if isinstance(cause, hydra.errors.InstantiationException):
        return instantiation_error(cause)
    if isinstance(cause, InpaintlabError):
        return cause
    if isinstance(cause, TypeError) and "unexpected keyword" in str(cause):
        return ConfigError(f"unknown config key: {one_line(cause)}")
    if isinstance(cause, (TypeError, ValueError)):
        target = re.search(r"target '([^']+)'", str(error))
        built = target.group(1) if target else "an object of the config"
        return ConfigError(
            f"{built} refused its settings ({one_line(cause)}): check the type and range of "
            "the values you overrode"
        )
    return None


def run_task(task: Callable[[DictConfig], dict[str, Any]], cfg: DictConfig) -> dict[str, Any]:
    """Run a task; a user error ends it with one line on stderr and exit code 2."""
    try:
        return task(cfg)
    except Exception as error:
        user_error = as_user_error(error)
        if user_error is None:
            raise
        print(f"error: {one_line(user_error)}", file=sys.stderr)
        sys.exit(2)
