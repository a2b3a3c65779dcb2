"""The embedding store: batch lookups, shards committed atomically, corruption detected, legacy migrated."""

import hashlib
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from core.encoders import cache as store
from core.encoders.cache import EmbeddingCache

KEYS = [f"{i:064x}" for i in range(6)]
VECTORS = np.arange(48, dtype=np.float32).reshape(6, 8)


def shard_files(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob("shard-*"))


def test_put_then_get_many_in_any_order_with_misses(tmp_path):
    cache = EmbeddingCache(tmp_path)
    cache.put_many("enc:1", KEYS[:4], VECTORS[:4])
    found, hit = cache.get_many("enc:1", [KEYS[3], KEYS[5], KEYS[0]], 8)
    assert hit.tolist() == [True, False, True]
    np.testing.assert_array_equal(found[0], VECTORS[3])
    np.testing.assert_array_equal(found[2], VECTORS[0])
    assert not found[1].any()
    assert not EmbeddingCache(tmp_path).get_many("enc:2", KEYS[:1], 8)[1].any()  # another encoder, another namespace
    assert not cache.get_many("enc:1", KEYS[:1], 4)[1].any()  # another size is a miss


def test_one_put_is_one_shard_and_known_keys_are_not_rewritten(tmp_path):
    cache = EmbeddingCache(tmp_path)
    cache.put_many("enc:1", KEYS[:3], VECTORS[:3])
    cache.put_many("enc:1", KEYS[:3], VECTORS[:3] * 0)  # all known: nothing written
    assert len(shard_files(tmp_path)) == 2  # one .npy and its .json
    cache.put_many("enc:1", KEYS[2:5], VECTORS[2:5])
    assert len(shard_files(tmp_path)) == 4
    other = EmbeddingCache(tmp_path)  # another process sees both shards, memory-mapped
    found, hit = other.get_many("enc:1", KEYS[:5], 8)
    assert hit.all()
    np.testing.assert_array_equal(found, VECTORS[:5])
    assert other.count("enc:1") == 5
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".") and p.suffix == ".tmp"]


def test_a_second_writer_is_seen_without_reopening(tmp_path):
    reader, writer = EmbeddingCache(tmp_path), EmbeddingCache(tmp_path)
    assert not reader.get_many("enc:1", KEYS[:1], 8)[1].any()
    writer.put_many("enc:1", KEYS[:1], VECTORS[:1])
    assert reader.get_many("enc:1", KEYS[:1], 8)[1].all()


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "no-json"])
def test_a_damaged_shard_is_dropped_and_its_keys_miss(tmp_path, damage):
    EmbeddingCache(tmp_path).put_many("enc:1", KEYS[:3], VECTORS[:3])
    data = next(tmp_path.rglob("shard-*.npy"))
    raw = data.read_bytes()
    if damage == "truncate":
        data.write_bytes(raw[:-5])
    elif damage == "flip":
        data.write_bytes(raw[:-1] + bytes([raw[-1] ^ 1]))
    elif damage == "garbage":
        data.write_bytes(b"not an array")
    else:
        data.with_suffix(".json").unlink()  # never committed: invisible
    cache = EmbeddingCache(tmp_path)
    assert not cache.get_many("enc:1", KEYS[:3], 8)[1].any()
    if damage != "no-json":
        assert not list(tmp_path.rglob("shard-*"))  # removed, so the next writer starts clean
    cache.put_many("enc:1", KEYS[:3], VECTORS[:3])
    assert EmbeddingCache(tmp_path).get_many("enc:1", KEYS[:3], 8)[1].all()


def test_many_shards_are_merged(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "MAX_SHARDS", 3)
    cache = EmbeddingCache(tmp_path)
    for i in range(5):
        cache.put_many("enc:1", KEYS[i : i + 1], VECTORS[i : i + 1])
    assert len(list(tmp_path.rglob("shard-*.json"))) <= 3
    found, hit = EmbeddingCache(tmp_path).get_many("enc:1", KEYS[:5], 8)
    assert hit.all()
    np.testing.assert_array_equal(found, VECTORS[:5])


def test_entries_of_the_old_one_file_layout_are_migrated(tmp_path):
    cache = EmbeddingCache(tmp_path)
    folder = cache.encoder_dir("enc:1")
    for key, vector in zip(KEYS[:2], VECTORS[:2], strict=True):
        payload = vector.tobytes()
        header = json.dumps({"dtype": "<f4", "shape": [8], "nbytes": len(payload),
                             "blake2b": hashlib.blake2b(payload, digest_size=16).hexdigest()}).encode()
        (folder / key[:2]).mkdir(parents=True, exist_ok=True)
        (folder / key[:2] / f"{key}.emb").write_bytes(b"FEMB1\n" + struct.pack("<I", len(header)) + header + payload)
    (folder / "zz").mkdir()
    (folder / "zz" / f"{KEYS[2]}.emb").write_bytes(b"corrupt")
    found, hit = cache.get_many("enc:1", KEYS[:3], 8)
    assert hit.tolist() == [True, True, False]
    np.testing.assert_array_equal(found[:2], VECTORS[:2])
    assert not list(folder.rglob("*.emb"))


def test_store_root_comes_from_the_settings(monkeypatch, tmp_path):
    monkeypatch.setenv("FUSION_CACHE_DIR", str(tmp_path / "c"))
    assert EmbeddingCache().root == tmp_path / "c" / "embeddings"
