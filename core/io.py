"""Bytes in, decoded modalities out: the one place that parses files and uploads.

Every decoder enforces :class:`~core.settings.Limits` (the configured ones by default) *before* doing expensive work (file size
before reading, pixel count before decoding, duration before resampling) and
turns every failure into an :class:`~core.errors.InputError` subclass carrying a
message a user can act on. Nothing else in the project calls PIL, soundfile or
librosa's loaders directly, and :func:`decode_sample` is the one way a sample (an
upload, a command line, a manifest row) becomes model input.
"""

from __future__ import annotations

import io
import os
import re
import stat
import warnings
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from core.errors import (
    AudioTooLongError,
    EmptyInputError,
    ImageTooLargeError,
    InputError,
    InputTooLargeError,
    InvalidAudioError,
    InvalidTextError,
    SampleDecodeError,
    TextTooLongError,
    UnreadableAudioError,
    UnreadableImageError,
)
from core.sample import MODALITIES, DecodedSample, Sample
from core.settings import Limits, settings

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif")
IMAGE_FORMATS = ("PNG", "JPEG", "BMP", "WEBP", "GIF")
"""The only PIL decoders tried: other plugins (EPS runs Ghostscript, TIFF and PSD have long CVE
histories) are attack surface for formats we never promised to read."""
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
SAMPLE_RATE = 16_000
MIN_SAMPLE_RATE = 1_000
MAX_SAMPLE_RATE = 384_000
"""Sample rates outside this range are refused: they are not real recordings, and a huge declared
rate would let a tiny compressed file decode to hundreds of megabytes within the duration limit."""
MAX_AUDIO_CHANNELS = 64
_AUDIO_BLOCK_FRAMES = 1 << 16
_CONTROL_CHARACTERS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")
"""Binary control characters: every one below 32 but tab, newline and carriage return."""


def _human_size(n: float) -> str:
    """Human size: KiB below one MiB, so a small configured limit does not read as "0.0 MiB"."""
    return f"{n / 1024:.1f} KiB" if n < 1024 * 1024 else f"{n / (1024 * 1024):.1f} MiB"


def _check_size(data: bytes, what: str, limits: Limits) -> None:
    if len(data) == 0:
        raise EmptyInputError(f"The {what} is empty (0 bytes).")
    if len(data) > limits.max_bytes:
        raise InputTooLargeError(
            f"The {what} is {_human_size(len(data))}, over the {_human_size(limits.max_bytes)} limit."
        )


def read_file(path: str | Path, limits: Limits | None = None) -> bytes:
    """Read a file's bytes, refusing empty, missing or oversized files without reading them whole."""
    limits = limits or settings().limits
    path = Path(path)
    try:
        status = os.stat(path)
    except FileNotFoundError:
        raise InputError(f"File not found: {path}") from None
    except OSError as err:
        raise InputError(f"Cannot access {path}: {err.strerror or err}") from None
    if not stat.S_ISREG(status.st_mode):
        raise InputError(f"Not a regular file: {path}")
    size = status.st_size
    if size == 0:
        raise EmptyInputError(f"The file {path.name} is empty (0 bytes).")
    if size > limits.max_bytes:
        raise InputTooLargeError(
            f"The file {path.name} is {_human_size(size)}, over the {_human_size(limits.max_bytes)} limit."
        )
    try:
        with open(path, "rb") as handle:
            # One byte more than stat() promised: a file that grew since then is refused, not read unbounded.
            data = handle.read(size + 1)
    except OSError as err:
        raise InputError(f"Cannot read {path}: {err.strerror or err}") from None
    if len(data) > size:
        raise InputError(f"The file {path.name} changed while it was being read; try again.")
    return data


def decode_image(data: bytes, limits: Limits | None = None) -> np.ndarray:
    """Decode PNG/JPEG/BMP/WebP/GIF bytes to an RGB ``uint8`` array of shape (H, W, 3).

    Animated images give their first frame. The pixel count is checked from the
    header before any pixel is decoded.
    """
    limits = limits or settings().limits
    from PIL import Image, UnidentifiedImageError

    _check_size(data, "image", limits)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
            width, height = img.size
            if width <= 0 or height <= 0:
                raise UnreadableImageError("The image has no pixels.")
            if width * height > limits.max_image_pixels:
                raise ImageTooLargeError(
                    f"The image is {width}x{height} pixels ({width * height / 1e6:.0f} MP), over the "
                    f"{limits.max_image_pixels / 1e6:.0f} MP limit."
                )
            img.seek(0)
            img.load()
            rgb = img.convert("RGB")
            return np.asarray(rgb, dtype=np.uint8).copy()
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooLargeError("The image declares too many pixels (a decompression bomb?).") from None
    except UnidentifiedImageError:
        raise UnreadableImageError(
            "This is not an image we can read (PNG, JPEG, BMP, WebP or GIF expected)."
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError, IndexError, TypeError) as err:
        raise UnreadableImageError(f"The image is corrupt or truncated ({type(err).__name__}).") from None


def decode_audio(data: bytes, limits: Limits | None = None, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode WAV/FLAC/OGG/MP3 (libsndfile, in memory) to mono ``float32`` at ``sample_rate``.

    Multi-channel audio is averaged to mono. The duration, sample rate and channel
    count are read from the header and checked before decoding any sample, and the
    samples are decoded block by block, so memory follows the samples actually
    decoded (within the limits), never a length the header merely claims.
    """
    mono, rate = _decoded_mono(data, limits or settings().limits, sample_rate)
    if rate != sample_rate:
        import librosa

        mono = librosa.resample(mono, orig_sr=rate, target_sr=sample_rate, res_type="soxr_hq")
    return np.ascontiguousarray(mono, dtype=np.float32)


def check_audio(data: bytes, limits: Limits | None = None, sample_rate: int = SAMPLE_RATE) -> None:
    """Raise what :func:`decode_audio` would raise, without resampling (validation: resampling a
    5 s clip from 44.1 kHz costs more than decoding it, and cannot fail on samples that decoded)."""
    _decoded_mono(data, limits or settings().limits, sample_rate)


def _decoded_mono(data: bytes, limits: Limits, sample_rate: int) -> tuple[np.ndarray, int]:
    """Every sample decoded, averaged to mono and checked, at the file's own rate."""
    import soundfile as sf

    _check_size(data, "audio file", limits)
    try:
        audio = sf.SoundFile(io.BytesIO(data))
    except Exception:  # soundfile raises several types for unknown formats
        _refuse_unreadable_audio(data)
    with audio:
        rate = audio.samplerate
        _check_audio_header(rate, audio.frames, audio.channels, limits)
        try:
            mono = _read_mono(audio, max_frames=int(limits.max_audio_seconds * rate) + 1)
        except InputError:
            raise
        except Exception as err:
            raise UnreadableAudioError(f"The audio file is corrupt or truncated ({type(err).__name__}).") from None
    if mono.size == 0:
        raise InvalidAudioError("The audio file contains no samples.")
    if not np.all(np.isfinite(mono)):
        raise InvalidAudioError("The audio contains NaN or infinite samples.")
    if rate != sample_rate and mono.size < 2:
        raise InvalidAudioError("The audio is too short to resample (fewer than 2 samples).")
    return mono, rate


def _check_audio_header(rate: int, frames: int, channels: int, limits: Limits) -> None:
    """Refuse what the header declares beyond the limits, before any sample is decoded."""
    if rate <= 0 or frames <= 0:
        raise InvalidAudioError("The audio file contains no samples.")
    seconds = frames / rate
    if seconds > limits.max_audio_seconds:
        raise AudioTooLongError(f"The audio is {seconds:.1f} s long, over the {limits.max_audio_seconds:.0f} s limit.")
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise InvalidAudioError(
            f"The audio's sample rate is {rate:,} Hz; rates from {MIN_SAMPLE_RATE:,} to {MAX_SAMPLE_RATE:,} Hz are accepted."
        )
    if channels > MAX_AUDIO_CHANNELS:
        raise InvalidAudioError(f"The audio declares {channels} channels; at most {MAX_AUDIO_CHANNELS} are accepted.")


def _read_mono(audio: Any, max_frames: int) -> np.ndarray:
    """An open ``soundfile.SoundFile``'s samples averaged to mono, read in bounded blocks."""
    blocks: list[np.ndarray] = []
    frames = 0
    while True:
        block = audio.read(_AUDIO_BLOCK_FRAMES, dtype="float32", always_2d=True)
        if len(block) == 0:
            break
        frames += len(block)
        if frames > max_frames:  # more samples than the header declared
            raise AudioTooLongError("The audio holds more samples than its header declares; over the limit.")
        blocks.append(block[:, 0] if block.shape[1] == 1 else block.mean(axis=1))
    if len(blocks) == 1:
        return blocks[0]
    return np.concatenate(blocks) if blocks else np.zeros(0, np.float32)


def _refuse_unreadable_audio(data: bytes) -> NoReturn:
    """What libsndfile cannot open: a clear refusal, never a detour through a file on disk.

    libsndfile (>= 1.1, bundled with soundfile) reads MP3 itself; an MP3 it cannot read is
    refused rather than written to a temporary file for another decoder, so an upload is
    never stored on the server's disk.
    """
    if data[:3] == b"ID3" or (len(data) > 1 and data[0] == 0xFF and (data[1] & 0xE0) == 0xE0):
        raise UnreadableAudioError("This MP3 could not be decoded; convert it to WAV or FLAC.")
    raise UnreadableAudioError("This is not an audio file we can read (WAV, FLAC, OGG or MP3 expected).")


def decode_text(data: bytes | str, limits: Limits | None = None) -> str:
    """Validate text: UTF-8, no binary control characters, at most ``max_text_chars``.

    Surrounding whitespace is stripped and internal runs of whitespace collapse to one space.
    """
    limits = limits or settings().limits
    if isinstance(data, bytes):
        if len(data) > limits.max_bytes:
            raise InputTooLargeError(f"The text is {_human_size(len(data))}, over the {_human_size(limits.max_bytes)} limit.")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidTextError("The text is not valid UTF-8.") from None
    else:
        text = data
    if len(text) > limits.max_text_chars:
        raise TextTooLongError(
            f"The text has {len(text):,} characters, over the {limits.max_text_chars:,} limit."
        )
    try:
        # A str can hold unpaired surrogates (e.g. invalid UTF-8 in argv, decoded with surrogateescape).
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidTextError("The text is not valid UTF-8.") from None
    if _CONTROL_CHARACTERS.search(text):
        raise InvalidTextError("The text contains binary control characters.")
    text = " ".join(text.split())
    if not text:
        raise EmptyInputError("The text is empty.")
    return text


def encode_wav(waveform: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    """16-bit PCM WAV bytes of a mono waveform (for playback and for writing datasets)."""
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.clip(waveform, -1.0, 1.0), sample_rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of an (H, W) or (H, W, 3) ``uint8`` array."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def is_blank(text: str | bytes | None) -> bool:
    """Whether a text input counts as absent: missing, or nothing but whitespace (the one rule)."""
    if text is None:
        return True
    return not (text.decode("utf-8", errors="replace") if isinstance(text, bytes) else text).strip()


def decode_modality(modality: str, data: bytes | str, limits: Limits | None = None) -> Any:
    """Decode one modality's bytes (image, audio) or text with the decoder of that modality."""
    limits = limits or settings().limits
    if modality == "image":
        return decode_image(data, limits)  # type: ignore[arg-type]
    if modality == "audio":
        return decode_audio(data, limits)  # type: ignore[arg-type]
    if modality == "text":
        return decode_text(data, limits)
    raise ValueError(f"unknown modality {modality!r}")


def decode_sample(raw: Sample, limits: Limits | None = None) -> DecodedSample:
    """Decode every given input of ``raw``; blank text counts as no text.

    Raises:
        EmptyInputError: no input at all.
        SampleDecodeError: some inputs did not decode; ``err.errors`` says why per modality
            and ``err.decoded`` holds the sample of those that did (so a page can go on with them).
    """
    limits = limits or settings().limits
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    given = [m for m in MODALITIES if not (is_blank(raw.text) if m == "text" else getattr(raw, m) is None)]
    if not given:
        raise EmptyInputError("Give at least one input: an image, a text or an audio clip.")
    for modality in given:
        try:
            values[modality] = decode_modality(modality, getattr(raw, modality), limits)
        except InputError as err:
            errors[modality] = str(err)
    decoded = DecodedSample(**values, label=raw.label, id=raw.id)
    if errors:
        raise SampleDecodeError(errors, decoded)
    return decoded
