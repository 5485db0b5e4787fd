"""Named errors: every way an input can be bad ends in one of these, with a message for people."""
from __future__ import annotations


class UnlearnError(Exception):
    """Base class: a problem the user can act on. ``str(err)`` is the message to show."""


class BadImage(UnlearnError):
    """The file is not a usable image."""


class NotAnImage(BadImage):
    """The bytes do not decode as an image."""


class ImageTooLarge(BadImage):
    """The image (file size or pixel count) exceeds the accepted limits."""


class ImageTooSmall(BadImage):
    """The image is too small to hold a detectable face."""


class NoFaceFound(BadImage):
    """The detector found no face."""


class MultipleFaces(BadImage):
    """The detector found several faces where one was required."""

    def __init__(self, count: int, message: str | None = None):
        self.count = count
        super().__init__(message or f"Found {count} faces in the image; please upload a portrait with exactly one face.")


class InvalidParameter(UnlearnError, ValueError):
    """A parameter is outside the allowed range or of the wrong kind."""


class DataUnavailable(UnlearnError):
    """A dataset or gallery cannot be found or read."""


class WeightsUnavailable(UnlearnError):
    """Pretrained weights cannot be loaded (missing, corrupt, or not downloadable offline)."""


def whole_number(name: str, value: object, low: int, high: int) -> int:
    """``value`` as an int if it is a whole number (an int or an integral float, not a bool) in
    ``[low, high]``; otherwise ``InvalidParameter`` naming ``name`` and the range."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (isinstance(value, float) and not value.is_integer()) \
            or not low <= value <= high:  # NaN and infinities are not integers
        raise InvalidParameter(f"{name} must be a whole number between {low} and {high}, got {value!r}")
    return int(value)
