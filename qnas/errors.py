"""User-facing errors: the CLI prints these as one line and exits with code 2."""

from __future__ import annotations

__all__ = ["QnasError", "ConfigError", "GenomeError", "DataError", "CheckpointError", "FieldError"]


class QnasError(Exception):
    """An error caused by the user's input (config, policy, data, arguments)."""


class ConfigError(QnasError):
    """A configuration value is unknown, missing, of the wrong type or out of range."""


class GenomeError(QnasError):
    """A genome or policy does not fit the search space."""


class DataError(QnasError):
    """A dataset root is missing or malformed."""


class CheckpointError(QnasError):
    """A checkpoint or run folder is missing, truncated, foreign or for another config."""


class FieldError(ValueError):
    """A value rejected by a schema's own check; ``field`` names it relative to its schema.

    The config loader turns it into a ``ConfigError`` carrying the full key path.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
