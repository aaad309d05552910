"""Errors of the adapter operations; each message says which file, tensor, shape or rule.

They are `TailorError`s, so the API renders them as problem+json with the status and
stable type below; the stage itself knows nothing of HTTP.
"""

from __future__ import annotations

from tailor.errors import Conflict, InvalidInput, NotFound, TailorError


class AdapterError(TailorError):
    """Base class: an adapter operation refused its input; the message says what to change."""

    status = 422
    type_slug = "adapter-error"
    title = "Adapter operation refused"


class InvalidAdapterError(AdapterError, InvalidInput):
    """An adapter directory or upload is not a valid LoRA PEFT adapter."""

    status = 422
    type_slug = "adapter-invalid"
    title = "Invalid adapter"


class UnsafeFileError(InvalidAdapterError):
    """A file would run code when loaded (a pickle) or is not the safetensors it claims."""

    type_slug = "adapter-unsafe-file"
    title = "Unsafe file in adapter"


class TruncatedFileError(InvalidAdapterError):
    """A safetensors file is shorter than its own header says: the upload was cut off."""

    type_slug = "adapter-truncated"
    title = "Truncated adapter file"


class UnsafeArchiveError(InvalidAdapterError):
    """An archive member would land outside the extraction directory or is a link."""

    type_slug = "adapter-unsafe-archive"
    title = "Unsafe archive"


class ShapeMismatchError(InvalidAdapterError):
    """A LoRA tensor does not fit the base model module it targets."""

    type_slug = "adapter-shape-mismatch"
    title = "Adapter does not fit the base model"


class BaseMismatchError(AdapterError, InvalidInput):
    """Adapters to combine were trained on different base models."""

    status = 422
    type_slug = "adapter-base-mismatch"
    title = "Adapters have different base models"


class RankRuleError(AdapterError, InvalidInput):
    """The ranks of the inputs break the rule of the chosen combination type."""

    status = 422
    type_slug = "adapter-rank-rule"
    title = "Ranks do not allow this combination"


class IncompatibleBaseError(AdapterError, InvalidInput):
    """A transfer target differs from the adapter's base in architecture or shapes."""

    status = 422
    type_slug = "adapter-incompatible-base"
    title = "Target base model is incompatible"


class VersionExistsError(AdapterError, Conflict):
    """Versions are immutable: one already stored is never overwritten."""

    status = 409
    type_slug = "adapter-version-exists"
    title = "Adapter version exists"


class VersionNotFoundError(AdapterError, NotFound):
    """No complete adapter version (or export) is stored under the key asked for."""

    status = 404
    type_slug = "adapter-version-not-found"
    title = "Adapter version not found"


class ChecksumMismatchError(AdapterError):
    """Stored files do not hash to the checksum recorded when the version was saved."""

    status = 500
    type_slug = "adapter-checksum-mismatch"
    title = "Stored adapter is corrupted"


class ExportError(AdapterError, InvalidInput):
    """A merged export cannot be produced from the given base and adapter."""

    status = 422
    type_slug = "adapter-export-failed"
    title = "Export failed"


class UploadTooLargeError(InvalidAdapterError):
    """An upload, or what its archive unpacks to, is over the platform's size limit."""

    status = 413
    type_slug = "adapter-upload-too-large"
    title = "Upload too large"
