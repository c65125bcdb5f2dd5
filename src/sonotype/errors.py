"""The one exception root of sonotype and its few children.

Every message says what was wrong (the bad value), what was expected, and how to fix it.
"""

from __future__ import annotations

from pathlib import Path


class SonotypeError(Exception):
    """Root of every error sonotype raises on purpose."""


class ConfigError(SonotypeError, ValueError):
    """A parameter or configuration value is out of range or inconsistent."""


class AudioError(SonotypeError):
    """An audio file could not be read or is unusable. Always names the file."""

    def __init__(self, path: str | Path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class DecoderMissingError(AudioError):
    """The file's format needs a decoder (e.g. ffmpeg) that is not installed."""


class DataError(SonotypeError):
    """Training/evaluation data is missing, empty or inconsistent (labels, annotations, splits)."""


class CheckpointError(SonotypeError):
    """A model checkpoint is missing, corrupt, or from an incompatible version."""


class BackendMissingError(SonotypeError):
    """An optional embedding backend's package (an extra such as ``sonotype[birdnet]``) is not installed."""


class NotFound(SonotypeError, LookupError):
    """A row asked for by id or key (recording, region, run, cluster) is not in the database; the web
    application answers it with 404."""
