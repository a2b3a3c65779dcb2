"""The catalogue of hostile and broken inputs, shared by the reliability tests and benchmark.

Each :class:`HostileInput` builds its bytes (or text) deterministically and says how
:mod:`core.io` must answer: the :class:`~core.errors.InputError` subclass and a pattern of
its message, or ``expected=None`` for odd inputs that must decode and predict (an
8-channel WAV, a 7919 Hz recording). Builders are cached: the decompression bomb takes a
fraction of a second to compress and every surface (decoders, CLI, dashboard) reuses it.

>>> case = CASES["image-bomb-20000px"]           # doctest: +SKIP
>>> decode_image(case.payload(), case.limits)    # raises errors.ImageTooLargeError
"""

from __future__ import annotations

import functools
import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from core import errors
from core.errors import InputError
from core.io import decode_audio, decode_image, decode_text
from core.settings import DEFAULT_LIMITS, Limits

ARGV_MAX_BYTES = 128 * 1024
"""Linux's limit on one command-line argument (MAX_ARG_STRLEN): longer text cannot reach the CLI."""

_SMALL_UPLOAD = Limits(max_bytes=4096)

Payload = bytes | str


@dataclass(frozen=True)
class HostileInput:
    """One bad or odd input and the answer it must get.

    Attributes:
        name: short unique id (used in test ids and the benchmark report).
        modality: ``image``, ``audio`` or ``text``.
        description: what the input is, for people reading the report.
        filename: the name it is saved and uploaded under (the extension may lie on purpose).
        build: returns the bytes (files, or text that is not valid UTF-8) or the text.
        expected: the error it must raise, or ``None`` when it must be accepted.
        message: regular expression the error message must match (``""`` when accepted).
        limits: limits in force (non-default ones reach the CLI and dashboard via :meth:`env`).
        cli: whether the input can be given on a command line at all.
        ui: whether a browser user can send it (the text box only sends valid text).
    """

    name: str
    modality: str
    description: str
    filename: str
    build: Callable[[], Payload]
    expected: type[InputError] | None
    message: str = ""
    limits: Limits = DEFAULT_LIMITS
    cli: bool = True
    ui: bool = True

    def payload(self) -> Payload:
        return self.build()

    def env(self) -> dict[str, str]:
        """``FUSION_MAX_*`` variables that make the configured limits equal :attr:`limits`."""
        names = {
            "max_bytes": "FUSION_MAX_BYTES",
            "max_image_pixels": "FUSION_MAX_IMAGE_PIXELS",
            "max_audio_seconds": "FUSION_MAX_AUDIO_SECONDS",
            "max_text_chars": "FUSION_MAX_TEXT_CHARS",
        }
        return {
            env: str(getattr(self.limits, attr))
            for attr, env in names.items()
            if getattr(self.limits, attr) != getattr(DEFAULT_LIMITS, attr)
        }

    def decode(self) -> object:
        """Decode the payload with :mod:`core.io` under :attr:`limits` (raises what it raises)."""
        data = self.payload()
        if self.modality == "image":
            return decode_image(data, self.limits)  # type: ignore[arg-type]
        if self.modality == "audio":
            return decode_audio(data, self.limits)  # type: ignore[arg-type]
        return decode_text(data, self.limits)


# ----------------------------------------------------------------------------- builders
def png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def wav_bytes(samples: np.ndarray, rate: int, subtype: str = "PCM_16", container: str = "WAV") -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, samples, rate, format=container, subtype=subtype)
    return buf.getvalue()


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


@functools.cache
def png_bomb(width: int = 20_000, height: int = 20_000) -> bytes:
    """A valid 1-bit PNG of ``width`` x ``height`` zero pixels: tens of KB that decode to gigabytes."""
    compressor = zlib.compressobj(9)
    row = b"\0" * (1 + (width + 7) // 8)  # filter byte + packed bits
    pixels = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", pixels) + _png_chunk(b"IEND", b"")


@functools.cache
def sample_png() -> bytes:
    """A 48x40 RGB noise image, the valid image every mutation starts from."""
    return png_bytes(np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8))


@functools.cache
def sample_wav() -> bytes:
    """Half a second of a 440 Hz tone, 16 kHz 16-bit mono."""
    t = np.arange(8000) / 16_000
    return wav_bytes((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16_000)


@functools.cache
def sample_flac() -> bytes:
    t = np.arange(8000) / 16_000
    return wav_bytes((0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), 16_000, container="FLAC")


def flac_with_streaminfo(rate: int, total_frames: int) -> bytes:
    """:func:`sample_flac` whose STREAMINFO header claims ``rate`` Hz and ``total_frames`` frames."""
    data = bytearray(sample_flac())
    # "fLaC", a 4-byte block header, then STREAMINFO; bytes 10..17 of it pack
    # rate (20 bits), channels-1 (3), bits per sample-1 (5) and total frames (36).
    start = 8 + 10
    packed = int.from_bytes(data[start : start + 8], "big")
    channels_and_bits = (packed >> 36) & 0xFF
    packed = (rate << 44) | (channels_and_bits << 36) | total_frames
    data[start : start + 8] = packed.to_bytes(8, "big")
    return bytes(data)


def wav_with_rate(rate: int, frames: int = 100) -> bytes:
    """A WAV of ``frames`` silent frames whose header declares ``rate`` Hz."""
    data = bytearray(wav_bytes(np.zeros(frames, np.float32), 16_000))
    fmt = data.find(b"fmt ")
    channels = struct.unpack("<H", data[fmt + 10 : fmt + 12])[0]
    data[fmt + 12 : fmt + 20] = struct.pack("<II", rate, rate * 2 * channels)
    return bytes(data)


@functools.cache
def _long_low_rate_wav() -> bytes:
    """Two hours of real audio at 1 kHz, 8-bit: 7 MB, under the upload limit, over the duration limit."""
    return wav_bytes(np.zeros(2 * 3600 * 1000, np.float32), 1000, subtype="PCM_U8")


def _tone(rate: int, seconds: float, channels: int = 1) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    wave = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    return np.repeat(wave[:, None], channels, axis=1) if channels > 1 else wave


def _eps() -> bytes:
    return b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n(pwned) print showpage\n%%EOF\n"


def _tiff() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 10, 10)).save(buf, format="TIFF")
    return buf.getvalue()


# ----------------------------------------------------------------------------- catalogue
_NOT_IMAGE = "not an image we can read"
_NOT_AUDIO = "not an audio file we can read"

HOSTILE_INPUTS: tuple[HostileInput, ...] = (
    # images
    HostileInput(
        "image-empty", "image", "zero-byte file", "empty.png", lambda: b"", errors.EmptyInputError, r"empty \(0 bytes\)"
    ),
    HostileInput(
        "image-truncated-png",
        "image",
        "a valid PNG cut in half",
        "cut.png",
        lambda: sample_png()[: len(sample_png()) // 2],
        errors.UnreadableImageError,
        "corrupt or truncated",
    ),
    HostileInput(
        "image-garbage-after-signature",
        "image",
        "PNG signature followed by noise",
        "noise.png",
        lambda: b"\x89PNG\r\n\x1a\n" + np.random.default_rng(1).bytes(2000),
        errors.UnreadableImageError,
        f"{_NOT_IMAGE}|corrupt or truncated",
    ),
    HostileInput(
        "image-wav-named-png",
        "image",
        "a WAV file named .png",
        "sound.png",
        sample_wav,
        errors.UnreadableImageError,
        _NOT_IMAGE,
    ),
    HostileInput(
        "image-bomb-20000px",
        "image",
        "20000x20000 PNG of ~48 KB (decompression bomb)",
        "bomb.png",
        png_bomb,
        errors.ImageTooLargeError,
        "too many pixels|over the .* MP limit",
    ),
    HostileInput(
        "image-over-pixel-limit",
        "image",
        "8000x8000 PNG of ~8 KB: 64 MP, over the 40 MP limit",
        "big.png",
        lambda: png_bomb(8000, 8000),
        errors.ImageTooLargeError,
        "8000x8000 pixels .* over the 40 MP limit",
    ),
    HostileInput(
        "image-tiff",
        "image",
        "a TIFF (a format we do not decode)",
        "scan.tiff",
        _tiff,
        errors.UnreadableImageError,
        _NOT_IMAGE,
    ),
    HostileInput(
        "image-postscript",
        "image",
        "EPS named .png (PIL would hand it to Ghostscript)",
        "page.png",
        _eps,
        errors.UnreadableImageError,
        _NOT_IMAGE,
    ),
    HostileInput(
        "image-over-upload-size",
        "image",
        "a valid PNG over a 4 KiB upload limit",
        "photo.png",
        sample_png,
        errors.InputTooLargeError,
        r"over the 4\.0 KiB limit",
        limits=_SMALL_UPLOAD,
    ),
    HostileInput(
        "image-1x30000px",
        "image",
        "a 1x30000 sliver (odd but valid)",
        "sliver.png",
        lambda: png_bytes(np.full((30000, 1, 3), 128, np.uint8)),
        None,
    ),
    HostileInput(
        "image-1px",
        "image",
        "a single pixel (odd but valid)",
        "dot.png",
        lambda: png_bytes(np.zeros((1, 1, 3), np.uint8)),
        None,
    ),
    # audio
    HostileInput(
        "audio-empty", "audio", "zero-byte file", "empty.wav", lambda: b"", errors.EmptyInputError, r"empty \(0 bytes\)"
    ),
    HostileInput(
        "audio-truncated-header",
        "audio",
        "the first 20 bytes of a WAV",
        "cut.wav",
        lambda: sample_wav()[:20],
        errors.UnreadableAudioError,
        _NOT_AUDIO,
    ),
    HostileInput(
        "audio-png-named-wav", "audio", "a PNG named .wav", "picture.wav", sample_png, errors.UnreadableAudioError, _NOT_AUDIO
    ),
    HostileInput(
        "audio-mp3-junk",
        "audio",
        "MPEG frame sync followed by junk",
        "junk.mp3",
        lambda: b"\xff\xfb\x90\x00" + np.random.default_rng(2).bytes(3000),
        errors.UnreadableAudioError,
        f"{_NOT_AUDIO}|could not be decoded|corrupt or truncated",
    ),
    HostileInput(
        "audio-header-claims-hours",
        "audio",
        "FLAC whose header claims 3 hours (the file holds 0.5 s)",
        "long.flac",
        lambda: flac_with_streaminfo(16_000, 3 * 3600 * 16_000),
        errors.AudioTooLongError,
        r"10800\.0 s long, over the 60 s limit",
    ),
    HostileInput(
        "audio-two-hours",
        "audio",
        "two real hours at 1 kHz, 8-bit (7 MB)",
        "lecture.wav",
        _long_low_rate_wav,
        errors.AudioTooLongError,
        r"7200\.0 s long, over the 60 s limit",
    ),
    HostileInput(
        "audio-header-lies-384khz",
        "audio",
        "FLAC claiming 59 s at 384 kHz (22M samples) in 3 KB",
        "lie.flac",
        lambda: flac_with_streaminfo(384_000, 59 * 384_000),
        errors.UnreadableAudioError,
        "corrupt or truncated",
    ),
    HostileInput(
        "audio-rate-2147483647hz",
        "audio",
        "WAV header declaring a 2^31-1 Hz sample rate",
        "fast.wav",
        lambda: wav_with_rate(2**31 - 1),
        errors.InvalidAudioError,
        "sample rate is 2,147,483,647 Hz",
    ),
    HostileInput(
        "audio-rate-1hz",
        "audio",
        "30 frames declared at 1 Hz",
        "slow.wav",
        lambda: wav_with_rate(1, frames=30),
        errors.InvalidAudioError,
        "sample rate is 1 Hz",
    ),
    HostileInput(
        "audio-100-channels",
        "audio",
        "100-channel WAV",
        "array.wav",
        lambda: wav_bytes(np.zeros((200, 100), np.float32), 16_000),
        errors.InvalidAudioError,
        "100 channels",
    ),
    HostileInput(
        "audio-nan-samples",
        "audio",
        "32-bit float WAV full of NaN",
        "nan.wav",
        lambda: wav_bytes(np.full(1600, np.nan, np.float32), 16_000, "FLOAT"),
        errors.InvalidAudioError,
        "NaN or infinite",
    ),
    HostileInput(
        "audio-inf-samples",
        "audio",
        "32-bit float WAV with +/-inf",
        "inf.wav",
        lambda: wav_bytes(np.tile(np.array([np.inf, -np.inf, 0.0], np.float32), 600), 16_000, "FLOAT"),
        errors.InvalidAudioError,
        "NaN or infinite",
    ),
    HostileInput(
        "audio-one-sample-44khz",
        "audio",
        "one sample at 44.1 kHz (cannot be resampled)",
        "click.wav",
        lambda: wav_bytes(np.zeros(1, np.float32), 44_100),
        errors.InvalidAudioError,
        "too short to resample",
    ),
    HostileInput(
        "audio-over-upload-size",
        "audio",
        "a valid WAV over a 4 KiB upload limit",
        "voice.wav",
        sample_wav,
        errors.InputTooLargeError,
        r"over the 4\.0 KiB limit",
        limits=_SMALL_UPLOAD,
    ),
    HostileInput(
        "audio-one-sample-16khz",
        "audio",
        "one sample at 16 kHz (odd but valid)",
        "tick.wav",
        lambda: wav_bytes(np.full(1, 0.5, np.float32), 16_000),
        None,
    ),
    HostileInput(
        "audio-8-channels",
        "audio",
        "8-channel WAV",
        "surround.wav",
        lambda: wav_bytes(_tone(16_000, 0.5, 8), 16_000),
        None,
    ),
    HostileInput(
        "audio-7919hz",
        "audio",
        "a prime sample rate, 7919 Hz",
        "prime.wav",
        lambda: wav_bytes(_tone(7919, 0.5), 7919),
        None,
    ),
    HostileInput(
        "audio-192khz",
        "audio",
        "192 kHz, 24-bit",
        "studio.wav",
        lambda: wav_bytes(_tone(192_000, 0.5), 192_000, "PCM_24"),
        None,
    ),
    HostileInput(
        "audio-truncated-data",
        "audio",
        "a WAV cut mid-sample (decodes the whole samples it has)",
        "cut-data.wav",
        lambda: sample_wav()[:1001],
        None,
    ),
    # text
    HostileInput(
        "text-megabytes",
        "text",
        "1.2 MB of text",
        "",
        lambda: "lorem ipsum " * 100_000,
        errors.TextTooLongError,
        r"1,200,000 characters, over the 10,000 limit",
        cli=False,
    ),
    HostileInput(
        "text-100k-chars",
        "text",
        "100,000 characters (fits in one command-line argument)",
        "",
        lambda: "x" * 100_000,
        errors.TextTooLongError,
        r"100,000 characters, over the 10,000 limit",
    ),
    HostileInput(
        "text-binary",
        "text",
        "control characters and an ANSI escape",
        "",
        lambda: "abc\x01\x02\x1b[31mred",
        errors.InvalidTextError,
        "binary control characters",
    ),
    HostileInput(
        "text-invalid-utf8",
        "text",
        "bytes that are not UTF-8",
        "",
        lambda: b"caf\xe9 \xff\xfe",
        errors.InvalidTextError,
        "not valid UTF-8",
        ui=False,
    ),
    HostileInput(
        "text-only-whitespace",
        "text",
        "spaces and newlines only",
        "",
        lambda: " \n\t ",
        errors.EmptyInputError,
        # decode_text alone: "The text is empty"; a whole sample (CLI, dashboard): blank text is no text.
        "text is empty|at least one input",
        ui=False,  # the dashboard treats blank text as no text
    ),
)

CASES: dict[str, HostileInput] = {case.name: case for case in HOSTILE_INPUTS}


def cli_text_argument(case: HostileInput) -> str:
    """The text as ``sys.argv`` would hold it: bytes that are not UTF-8 arrive surrogate-escaped."""
    import os

    payload = case.payload()
    return os.fsdecode(payload) if isinstance(payload, bytes) else payload


def seed_files() -> dict[str, bytes]:
    """Valid files the structured fuzzers mutate."""
    return {"png": sample_png(), "wav": sample_wav(), "flac": sample_flac()}


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """A random bit flip, byte overwrite, truncation or splice of ``data`` (never empty)."""
    buf = bytearray(data)
    kind = int(rng.integers(4))
    if kind == 0:
        for _ in range(int(rng.integers(1, 9))):
            i = int(rng.integers(len(buf)))
            buf[i] ^= 1 << int(rng.integers(8))
    elif kind == 1:
        for _ in range(int(rng.integers(1, 5))):
            buf[int(rng.integers(len(buf)))] = int(rng.integers(256))
    elif kind == 2:
        buf = buf[: int(rng.integers(len(buf)))]  # may empty it: replaced by one NUL below
    else:
        start = int(rng.integers(len(buf)))
        buf[start : start + int(rng.integers(1, 64))] = rng.bytes(int(rng.integers(0, 64)))
    return bytes(buf) or b"\0"
