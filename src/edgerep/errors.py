"""Typed, user-facing errors.

Every error a user can cause (bad path, malformed file, bad option, a model that fails
validation) is an :class:`EdgerepError`. The CLI turns it into one line on stderr and exit
code 1; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class EdgerepError(Exception):
    """Base class of the errors a user can fix; the message says what and where."""


class DataError(EdgerepError):
    """A data file or directory is missing or malformed; the message names the file and line."""


class ConfigError(EdgerepError):
    """An option or a combination of options is invalid; the message lists the valid ones."""


class ModelLoadError(EdgerepError):
    """A model, checkpoint or tokenizer could not be loaded (missing, offline hub id, wrong files)."""


class BundleError(EdgerepError):
    """A bundle directory is incomplete, corrupted or inconsistent with its manifest."""


class InputTextError(EdgerepError):
    """A text to classify is unusable (empty after normalization, undecodable bytes)."""


class ExportValidationError(EdgerepError):
    """A converted model disagrees with its PyTorch source beyond the recipe's tolerance."""


class RecordError(EdgerepError):
    """A JSON result record is missing, not JSON, of another kind, or of a newer schema."""


class RemoteError(EdgerepError):
    """An SSH device could not be reached, authenticated, or ran the worker with an error."""
