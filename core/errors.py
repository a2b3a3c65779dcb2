"""Every error a user can cause, under one base class.

:class:`FusionError` is what the CLI and the dashboard catch: its ``str()`` is one line a
user can act on, and ``details`` (optional) holds a longer listing (every bad row of a
manifest, say) shown below it. Anything else that escapes is a bug: the CLI prints its
traceback with ``FUSION_DEBUG=1`` and the dashboard inside a collapsed "details" element.
"""

from __future__ import annotations


class FusionError(Exception):
    """Base of every error a user can cause.

    Args:
        message: one line saying what is wrong and what to do about it.
        details: optional longer text (a list of problems), shown after the message.
    """

    def __init__(self, message: str, details: str | None = None) -> None:
        super().__init__(message)
        self.details = details


# --------------------------------------------------------------------------- inputs


class InputError(FusionError):
    """An uploaded or given file or text that cannot be used as it is."""


class EmptyInputError(InputError):
    pass


class InputTooLargeError(InputError):
    pass


class UnreadableImageError(InputError):
    pass


class ImageTooLargeError(InputError):
    pass


class UnreadableAudioError(InputError):
    pass


class AudioTooLongError(InputError):
    pass


class InvalidAudioError(InputError):
    pass


class InvalidTextError(InputError):
    pass


class TextTooLongError(InputError):
    pass


class SampleDecodeError(InputError):
    """Some inputs of a sample did not decode.

    Attributes:
        errors: modality -> the message of its :class:`InputError`.
        decoded: the sample made of the inputs that did decode (it may have no modality).
    """

    def __init__(self, errors: dict[str, str], decoded: object) -> None:
        super().__init__("; ".join(f"{modality.capitalize()}: {message}" for modality, message in errors.items()))
        self.errors = errors
        self.decoded = decoded


# --------------------------------------------------------------------------- the rest


class SettingsError(FusionError):
    """A ``FUSION_*`` setting with a value the program cannot use."""


class AccessError(FusionError):
    """A path outside the folders this server was given, or a write in read-only mode.

    The message never says what exists on the server's disk.
    """


class DatasetError(FusionError):
    """A dataset that cannot be loaded as it is; ``report`` lists every problem."""

    def __init__(self, message: str, report: object, details: str | None = None) -> None:
        super().__init__(message, details)
        self.report = report


class CheckpointError(FusionError):
    """A checkpoint that cannot be loaded or written."""


class EncoderLoadError(FusionError):
    """An encoder that cannot be built: unknown choice, wrong modality, missing package or weights."""


class TrainingError(FusionError):
    """A training run that cannot be done as asked (no rows to train on, an unknown model name)."""


class CompressionError(FusionError):
    """A compression that cannot be done as asked (an unknown method, a bad parameter, a parent
    that cannot be compressed that way)."""


class EvaluationError(FusionError):
    """An evaluation that cannot be done as asked."""


class ExplanationError(FusionError):
    """An explanation that cannot be done as asked (unknown class, method or modality)."""


class NotDifferentiableError(ExplanationError):
    """A modality whose input gradients cannot reach (an encoder that reads token ids only,
    an unknown audio feature layout); gradient methods hold it fixed and say why."""


class MethodNotApplicableError(ExplanationError):
    """An explanation method that does not apply to this model or sample (Grad-CAM without a
    convolutional image encoder, gradients with nothing differentiable); the result says why."""
class ExploreError(FusionError):
    """An exploration that cannot be done as asked (an unknown space, too few rows to project or search)."""


class UsageError(FusionError):
    """A command-line or option value the program does not accept."""


class Cancelled(FusionError):
    """A job was cancelled by its user (or its browser session ended) before it finished."""


def user_message(err: FusionError) -> str:
    """The one line the CLI prints after ``error:`` and the dashboard shows in its error box."""
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
