"""Search by example: the cached index (per encoder, rebuilt only when its sequences change) answers as
the uncached path does, on a real SQLite file."""

from __future__ import annotations

import numpy as np
import pytest

from sonotype.detection.regions import Region
from sonotype.discovery.search import IndexCache, similar_regions
from sonotype.errors import DataError
from sonotype.store import open_store

VERSION = "enc@test/stride4"


@pytest.fixture
def store(tmp_path):
    """40 regions with random (n_i, 8) sequences under one encoder (and 5 under another)."""
    rng = np.random.default_rng(0)
    with open_store(f"sqlite:///{tmp_path / 's.db'}") as s:
        rid = s.add_recording(path="a.wav", content_hash="h" * 64, sample_rate=1000.0, channels=1, frames=10 ** 6,
                              channel_used=0, format="WAV")
        run = s.get_or_create_run(model_id=s.register_model(version="m", path=None, kind="detector"), settings={})
        s.save_result(rid, run, [Region(i * 100, i * 100 + 50, 1000.0, 0.9, 0.5, i, 3) for i in range(46)],
                      n_windows=4600, seconds=1.0)
        ids = [g.id for g in s.regions()]
        s.put_sequences(VERSION, {i: rng.normal(size=(int(rng.integers(2, 9)), 8)) for i in ids[:40]})
        s.put_sequences("other@1", {i: rng.normal(size=(3, 8)) for i in ids[40:45]})
        s.spare = ids[45]  # a region with no sequence yet
        yield s


def test_second_query_reuses_the_index_and_matches_the_uncached_path(store):
    cache = IndexCache(disk=False)
    q = min(store.sequences(VERSION))
    first = similar_regions(store, q, k=5, cache=cache)
    assert cache.builds == 1 and len(first) == 5
    for other in sorted(store.sequences(VERSION))[1:6]:  # other queries of the same encoder: no rebuild
        assert similar_regions(store, other, k=5, cache=cache) == similar_regions(store, other, k=5, cache=None)
    assert cache.builds == 1
    assert similar_regions(store, q, k=5, cache=cache) == first == similar_regions(store, q, k=5, cache=None)
    similar_regions(store, store.spare - 1, k=2, cache=cache)  # the other encoder: its own index
    assert cache.builds == 2


def test_a_changed_sequence_set_rebuilds(store):
    cache = IndexCache(disk=False)
    seqs = store.sequences(VERSION)
    q = min(seqs)
    before = similar_regions(store, q, k=3, cache=cache)
    store.put_sequences(VERSION, {store.spare: seqs[q] + 1e-3})  # a near copy of the query: the new nearest
    after = similar_regions(store, q, k=3, cache=cache)
    assert cache.builds == 2 and after[0][0] == store.spare and after != before
    assert after == similar_regions(store, q, k=3, cache=None)
    # same count and highest id, new values: rebuilt too
    store.put_sequences(VERSION, {store.spare: seqs[max(seqs)]})
    again = similar_regions(store, q, k=3, cache=cache)
    assert cache.builds == 3 and again == similar_regions(store, q, k=3, cache=None) and again[0][0] != store.spare


def test_the_index_on_disk_serves_a_new_process_until_the_sequences_change(store):
    q = min(store.sequences(VERSION))
    want = similar_regions(store, q, k=4, cache=None)
    writer = IndexCache()
    assert similar_regions(store, q, k=4, cache=writer) == want and writer.builds == 1
    assert list(store.database_file.parent.glob("s.db.search-cache/*.npz"))
    reader = IndexCache()  # as a later process: nothing in memory
    assert similar_regions(store, q, k=4, cache=reader) == want and (reader.builds, reader.loads) == (0, 1)
    store.put_sequences(VERSION, {store.spare: store.sequences(VERSION)[q]})
    later = IndexCache()
    assert similar_regions(store, q, k=4, cache=later) == similar_regions(store, q, k=4, cache=None)
    assert (later.builds, later.loads) == (1, 0)


def test_errors_name_the_region(store):
    with pytest.raises(DataError, match="no stored embedding"):
        similar_regions(store, store.spare, cache=IndexCache(disk=False))
    with pytest.raises(DataError, match="under encoder"):
        similar_regions(store, min(store.sequences(VERSION)), model_version="other@1", cache=IndexCache(disk=False))
