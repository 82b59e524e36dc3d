"""User-facing errors: each message is one line saying what is wrong and what to do."""


class InpaintlabError(Exception):
    """Base class for errors caused by user input (config, data, checkpoints)."""


class ConfigError(InpaintlabError):
    """A config value is missing, unknown or inconsistent."""


class DataError(InpaintlabError):
    """An image, mask or data folder cannot be used."""


class CheckpointError(InpaintlabError):
    """A checkpoint is missing, unreadable or was not written by inpaintlab."""


class TrainingError(InpaintlabError):
    """Training cannot go on (a non-finite loss); the message says what was saved."""
