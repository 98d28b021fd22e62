"""Errors that say whether trying again can help. Retry only those with ``retryable`` true."""

from __future__ import annotations


class IvrError(Exception):
    """Base of every error the hotline raises on purpose. ``str(err)`` is a one-line message."""

    retryable: bool = False


class ConfigError(IvrError):
    """A setting is missing or has a value the hotline cannot use."""


class ModelMissingError(IvrError):
    """A speech model is not installed; the message says what to run or set."""


class ModelDownloadError(IvrError):
    """Fetching or verifying a model failed; a network failure may pass, so it is retryable."""

    retryable = True


class AudioFormatError(IvrError):
    """Audio that cannot be decoded: not a WAV, truncated, wrong codec."""


class ShopDataError(IvrError):
    """The shop snapshot is malformed; the message names the path of the bad field."""


class NotFoundError(IvrError):
    """An order, customer or product the caller named does not exist."""


class ConflictError(IvrError):
    """Someone else got there first (another agent claimed the callback): nothing was changed."""


class TransientError(IvrError):
    """A dependency (Redis, a shop system) is briefly unavailable."""

    retryable = True


class ProtocolError(IvrError):
    """A peer broke a wire protocol: "expected X, got Y"."""
