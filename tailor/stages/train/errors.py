"""Why a fine-tune could not run, in words a person can act on.

Two kinds matter to whoever launched the run: a `SpecError` can never succeed as
specified (retrying is pointless: exit status 3), any other `TrainError` might (exit 1).
"""

from __future__ import annotations


class TrainError(Exception):
    """A fine-tune failed; the message says what to change (it becomes the job's `error`)."""


class SpecError(TrainError):
    """The spec cannot work as written: retrying the same spec fails the same way."""


class DatasetError(SpecError):
    """The dataset is missing, empty or malformed."""


class ModelError(SpecError):
    """The base model cannot be loaded or does not fit the spec."""


class DivergedError(SpecError):
    """The loss became NaN/infinite or blew up: the same spec diverges again."""


class OutOfMemory(TrainError):
    """Training ran out of accelerator or host memory."""


class TrainingCancelled(Exception):  # a cancellation, not an error: not a TrainError
    """The run was asked to stop; nothing was stored as an adapter (checkpoints are kept)."""
