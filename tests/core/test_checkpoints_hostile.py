"""Hostile checkpoints: nothing is ever unpickled (proved by a payload that would leave a
marker), malformed safetensors and cards are refused with a message naming the problem, and a
card cannot make the loader allocate more than the weights file holds."""

from __future__ import annotations

import json
import pickle
import shutil
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from core.card import list_checkpoints
from core.checkpoints import load_checkpoint
from core.errors import CheckpointError
from core.hashing import sha256_file


class RunsCodeWhenUnpickled:
    """Unpickling this creates ``marker``: if the marker exists, code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def copy_of(checkpoint: Path, folder: Path) -> Path:
    target = folder / "ckpt"
    shutil.copytree(checkpoint, target)
    return target


def rewrite(ckpt: Path, weights: bytes | None = None, edit: Callable[[dict], None] | None = None) -> None:
    """Replace the weights and/or edit the card, re-signing the weights hash as an attacker would."""
    if weights is not None:
        (ckpt / "model.safetensors").write_bytes(weights)
    card = json.loads((ckpt / "card.json").read_text())
    card["weights"]["sha256"] = sha256_file(ckpt / "model.safetensors")
    if edit is not None:
        edit(card)
    (ckpt / "card.json").write_text(json.dumps(card))


@pytest.mark.parametrize("filename", ["model.pt", "pytorch_model.bin", "weights.ckpt", "model.pth", "state.pkl"])
def test_pickle_only_folders_are_refused_without_unpickling(tmp_path, filename):
    ckpt = tmp_path / "evil"
    ckpt.mkdir()
    marker = tmp_path / "code-ran"
    payload = pickle.dumps(RunsCodeWhenUnpickled(marker))
    (ckpt / filename).write_bytes(payload)
    with pytest.raises(CheckpointError, match=f"{filename}: pickle-based checkpoints are refused"):
        load_checkpoint(ckpt)
    assert [i.error for i in list_checkpoints(tmp_path)][0].startswith("evil holds")
    assert not marker.exists()


def test_pickle_payload_as_weights_with_a_matching_hash_never_runs(small_checkpoints, tmp_path):
    ckpt = copy_of(small_checkpoints["early"], tmp_path)
    marker = tmp_path / "code-ran"
    payload = pickle.dumps(RunsCodeWhenUnpickled(marker))
    # Padded to the real file's size (pickle ignores trailing bytes) so it reaches the safetensors parser.
    size = (ckpt / "model.safetensors").stat().st_size
    rewrite(ckpt, weights=payload + b"\0" * (size - len(payload)))
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        load_checkpoint(ckpt)
    assert not marker.exists()


def test_pickle_hidden_in_safetensors_metadata_stays_a_string(small_checkpoints, tmp_path):
    ckpt = copy_of(small_checkpoints["early"], tmp_path)
    marker = tmp_path / "code-ran"
    tensors = load_file(str(ckpt / "model.safetensors"))
    payload = pickle.dumps(RunsCodeWhenUnpickled(marker)).hex()
    save_file(tensors, str(tmp_path / "w.safetensors"), metadata={"format": "fusion-checkpoint", "pickle": payload})
    rewrite(ckpt, weights=(tmp_path / "w.safetensors").read_bytes())
    load_checkpoint(ckpt)  # valid weights: loads, and the metadata is never interpreted
    assert not marker.exists()


def safetensors_header(data: bytes) -> tuple[dict, bytes]:
    (length,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + length]), data[8 + length :]


def with_header(header: dict, body: bytes) -> bytes:
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + body


def _overlapping(data: bytes) -> bytes:
    header, body = safetensors_header(data)
    names = [k for k in header if k != "__metadata__"]
    header[names[1]] = {**header[names[1]], "data_offsets": header[names[0]]["data_offsets"]}
    return with_header(header, body)


def _past_the_end(data: bytes) -> bytes:
    header, body = safetensors_header(data)
    name = next(k for k in header if k != "__metadata__")
    header[name] = {**header[name], "data_offsets": [len(body) - 4, len(body) + 10**12]}
    return with_header(header, body)


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda data: struct.pack("<Q", 2**62) + data[8:], id="header-length-2^62"),
        pytest.param(lambda data: struct.pack("<Q", len(data)) + data[8:], id="header-length-past-the-end"),
        pytest.param(lambda data: data[:8] + b"{" * 200 + data[208:], id="header-not-json"),
        pytest.param(_overlapping, id="overlapping-offsets"),
        pytest.param(_past_the_end, id="offsets-past-the-end"),
        pytest.param(lambda data: data[: len(data) - 1000], id="truncated"),
    ],
)
def test_malicious_safetensors_headers_are_refused(small_checkpoints, tmp_path, forge):
    ckpt = copy_of(small_checkpoints["early"], tmp_path)
    rewrite(ckpt, weights=forge((ckpt / "model.safetensors").read_bytes()))
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        load_checkpoint(ckpt)


def test_tensor_dtype_mismatch_is_named(small_checkpoints, tmp_path):
    ckpt = copy_of(small_checkpoints["early"], tmp_path)
    tensors = load_file(str(ckpt / "model.safetensors"))
    name = next(k for k, v in tensors.items() if v.is_floating_point())
    tensors[name] = tensors[name].double()  # same shape, twice the bytes: passes the size check
    save_file(tensors, str(tmp_path / "w.safetensors"), metadata={"format": "fusion-checkpoint"})
    rewrite(ckpt, weights=(tmp_path / "w.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match=f"tensor {name} is torch.float64 but .* needs torch.float32"):
        load_checkpoint(ckpt)


@pytest.mark.parametrize(
    "card_text, message",
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"a":' * 100_000 + "1" + "}" * 100_000, "nested too deeply"),
        ('["a", "list"]', "the card is not a JSON object"),
        ('"a string"', "the card is not a JSON object"),
        (" " * (5 * 1024 * 1024 + 1) + "{}", "larger than 5 MiB"),
        ("\ufeff{}", "not valid JSON"),
    ],
    ids=["deep-array", "deep-object", "array", "string", "huge", "bom"],
)
def test_malformed_cards_are_refused(small_checkpoints, tmp_path, card_text, message):
    ckpt = copy_of(small_checkpoints["early"], tmp_path)
    (ckpt / "card.json").write_text(card_text, encoding="utf-8")
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(ckpt)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c["fusion_config"].update(hidden=2**16), r"describes [\d,]+ bytes of trained weights but"),
        (lambda c: c["fusion_config"].update(hidden=2**40), "invalid model"),
        (lambda c: c["fusion_config"].update(hidden=-5), "invalid model"),
        (lambda c: c["encoders"]["image"].update(out_dim="large"), "invalid model"),
        (lambda c: c["encoders"]["image"].update(kind="magic"), "Unknown encoder 'magic'"),
    ],
    ids=["hidden-65536", "hidden-2^40", "hidden-negative", "out-dim-string", "unknown-encoder"],
)
def test_cards_that_would_allocate_or_crash_are_refused_first(small_checkpoints, tmp_path, edit, message):
    """The card is re-signed, so only the architecture check stands between it and the allocator."""
    ckpt = copy_of(small_checkpoints["early"], tmp_path)
    rewrite(ckpt, edit=edit)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(ckpt)


def test_card_weights_mismatch_names_the_tensor(small_checkpoints, tmp_path):
    ckpt = copy_of(small_checkpoints["early"], tmp_path)
    tensors = load_file(str(ckpt / "model.safetensors"))
    dropped = sorted(tensors)[-1]
    del tensors[dropped]
    tensors["backdoor.weight"] = torch.zeros(4)
    save_file(tensors, str(tmp_path / "w.safetensors"), metadata={"format": "fusion-checkpoint"})
    rewrite(ckpt, weights=(tmp_path / "w.safetensors").read_bytes())
    with pytest.raises(
        CheckpointError,
        match=f"missing 1 tensors \\(e.g. {dropped}\\); 1 unexpected tensors \\(e.g. backdoor.weight\\)",
    ):
        load_checkpoint(ckpt)


def test_one_flipped_bit_is_caught_by_the_content_hash(small_checkpoints, tmp_path):
    ckpt = copy_of(small_checkpoints["early"], tmp_path)
    data = bytearray((ckpt / "model.safetensors").read_bytes())
    data[len(data) // 2] ^= 0x01
    (ckpt / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="modified after it was saved"):
        load_checkpoint(ckpt)
