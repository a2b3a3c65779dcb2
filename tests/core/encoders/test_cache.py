"""The embedding store: batch lookups, shards committed atomically, corruption detected, legacy migrated, sizes."""

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
    """Committed shards (each is a .json commit over its .npy vectors and .keys.npy keys)."""
    return sorted(p.name for p in root.rglob("shard-*.json"))


def vectors_file(root: Path) -> Path:
    return next(p for p in root.rglob("shard-*.npy") if not p.name.endswith(".keys.npy"))


def age(folder: Path, seconds: float = 60.0) -> None:
    """Make every file look ``seconds`` old (stamps are only written for files that settled)."""
    import os
    import time

    for path in folder.rglob("*"):
        os.utime(path, (time.time() - seconds, time.time() - seconds))


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
    assert len(shard_files(tmp_path)) == 1
    cache.put_many("enc:1", KEYS[2:5], VECTORS[2:5])
    assert len(shard_files(tmp_path)) == 2
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
    data = vectors_file(tmp_path)
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


def test_keys_are_stored_sorted_and_lookups_span_shards_and_duplicates(tmp_path):
    cache = EmbeddingCache(tmp_path)
    cache.put_many("enc:1", [KEYS[4], KEYS[1], KEYS[1]], VECTORS[[4, 1, 1]])  # a key given twice: stored once
    cache.put_many("enc:1", [KEYS[0], KEYS[5]], VECTORS[[0, 5]])
    stored = np.load(next(tmp_path.rglob("shard-*.keys.npy")))
    assert list(stored) == sorted(stored)
    found, hit = EmbeddingCache(tmp_path).get_many("enc:1", [KEYS[5], KEYS[2], KEYS[1], KEYS[4], KEYS[0], "x" * 80], 8)
    assert hit.tolist() == [True, False, True, True, True, False]
    np.testing.assert_array_equal(found[[0, 2, 3, 4]], VECTORS[[5, 1, 4, 0]])
    assert cache.count("enc:1") == 4


def test_shards_of_the_first_sharded_format_are_read(tmp_path):
    """Shards whose JSON lists their keys in row order (unsorted), as written earlier."""
    cache = EmbeddingCache(tmp_path)
    folder = cache.encoder_dir("enc:1")
    folder.mkdir(parents=True)
    rows = [3, 0, 2]
    np.save(folder / "shard-1-aaaa.npy", VECTORS[rows])
    digest = hashlib.blake2b((folder / "shard-1-aaaa.npy").read_bytes(), digest_size=16).hexdigest()
    meta = {"keys": [KEYS[i] for i in rows], "dim": 8, "dtype": "float32", "blake2b": digest}
    (folder / "shard-1-aaaa.json").write_text(json.dumps(meta))
    found, hit = cache.get_many("enc:1", KEYS[:4], 8)
    assert hit.tolist() == [True, False, True, True]
    np.testing.assert_array_equal(found[[0, 2, 3]], VECTORS[[0, 2, 3]])


def test_a_settled_shard_is_hashed_once_then_trusted_by_its_stamp(tmp_path, monkeypatch):
    EmbeddingCache(tmp_path).put_many("enc:1", KEYS[:3], VECTORS[:3])
    hashed = []
    real = store._file_digest
    monkeypatch.setattr(store, "_file_digest", lambda path: hashed.append(path.name) or real(path))
    assert EmbeddingCache(tmp_path).get_many("enc:1", KEYS[:1], 8)[1].all()
    assert len(hashed) == 2 and not list(tmp_path.rglob("*.ok"))  # fresh files: verified, not stamped
    age(tmp_path)
    EmbeddingCache(tmp_path).get_many("enc:1", KEYS[:1], 8)
    assert len(hashed) == 4 and len(list(tmp_path.rglob("*.ok"))) == 1
    EmbeddingCache(tmp_path).get_many("enc:1", KEYS[:1], 8)
    assert len(hashed) == 4  # stamped: not hashed again
    data = vectors_file(tmp_path)
    data.write_bytes(data.read_bytes()[:-1] + b"\x01")  # changed since the stamp: hashed again, and refused
    assert not EmbeddingCache(tmp_path).get_many("enc:1", KEYS[:1], 8)[1].any()
    assert EmbeddingCache(tmp_path).verify() == []  # the damaged shard is gone


def test_compaction_merges_small_shards_and_leaves_the_big_one(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "MAX_SHARDS", 4)
    many = [f"{i:064x}" for i in range(1000)]
    cache = EmbeddingCache(tmp_path)
    cache.put_many("enc:1", many[:900], np.ones((900, 8), np.float32))
    big = shard_files(tmp_path)[0]
    for i in range(900, 910):
        cache.put_many("enc:1", many[i : i + 1], np.full((1, 8), i, np.float32))
    assert len(shard_files(tmp_path)) <= 4 and big in shard_files(tmp_path)
    found, hit = EmbeddingCache(tmp_path).get_many("enc:1", many[:910], 8)
    assert hit.all() and found[905, 0] == 905 and found[3, 0] == 1


def test_a_store_of_100000_keys_answers_a_whole_split_at_once(tmp_path):
    keys = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(100_000)]
    vectors = np.arange(100_000, dtype=np.float32)[:, None].repeat(4, axis=1)
    cache = EmbeddingCache(tmp_path)
    cache.put_many("enc:1", keys[:60_000], vectors[:60_000])
    cache.put_many("enc:1", keys[40_000:], vectors[40_000:])
    query = keys[::-7]
    found, hit = EmbeddingCache(tmp_path).get_many("enc:1", query, 4)
    assert hit.all()
    np.testing.assert_array_equal(found[:, 0], np.arange(100_000)[::-7])
    assert EmbeddingCache(tmp_path).count("enc:1") == 100_000
