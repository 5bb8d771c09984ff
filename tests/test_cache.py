"""The image cache: decode once, resume, record unreadable images, key by content and size."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pandas as pd
from filelock import FileLock

from harness.data.cache import cache_key, chunk_size, fill_cache, open_cache, to_square_uint8

CALLS = "calls.txt"


def read_gradient(record, options):
    """Module-level so worker processes can pickle it; logs each call to count decodes."""
    with open(options["log"], "a") as fh:
        fh.write(record["uid"] + "\n")
    if record["uid"] == "broken":
        raise ValueError("not an image")
    i = int(record["i"])
    return np.full((40, 60), i * 10, dtype=np.uint8)


def frame(n, broken=False):
    rows = [{"uid": f"img{i}", "path": f"/x/{i}.png", "i": i, "_dataset": "d"} for i in range(n)]
    if broken:
        rows.append({"uid": "broken", "path": "/x/broken.dcm", "i": 0, "_dataset": "d"})
    return pd.DataFrame(rows)


def fill(tmp_path, records, size=16, fingerprint="v1"):
    options = {"d": {"log": str(tmp_path / CALLS)}}
    return fill_cache(tmp_path / "cache", records, {"d": read_gradient}, options, [fingerprint],
                      size, workers=2, chunk=3, show_progress=False)


def decodes(tmp_path):
    path = tmp_path / CALLS
    return path.read_text().split() if path.exists() else []


def test_fills_resizes_and_decodes_once(tmp_path):
    cache, errors = fill(tmp_path, frame(7))
    assert errors == {}
    assert cache.images.shape == (7, 16, 16) and cache.images.dtype == np.uint8
    assert [int(cache.images[i].mean()) for i in range(7)] == [i * 10 for i in range(7)]
    assert len(decodes(tmp_path)) == 7
    again, _ = fill(tmp_path, frame(7))
    assert again.path == cache.path
    assert len(decodes(tmp_path)) == 7  # nothing decoded twice
    reopened = open_cache(cache.path)
    assert reopened.uids == [f"img{i}" for i in range(7)]
    assert list(reopened.rows(["img3", "img0"])) == [3, 0]


def test_key_changes_with_size_and_content(tmp_path):
    a, _ = fill(tmp_path, frame(3), size=16)
    b, _ = fill(tmp_path, frame(3), size=20)
    c, _ = fill(tmp_path, frame(3), size=16, fingerprint="v2")
    assert len({a.path, b.path, c.path}) == 3
    assert b.images.shape == (3, 20, 20)


def test_unreadable_image_is_recorded_not_fatal(tmp_path):
    cache, errors = fill(tmp_path, frame(4, broken=True))
    assert list(errors) == ["broken"]
    assert "/x/broken.dcm: ValueError: not an image" == errors["broken"]
    assert int(cache.images[3].mean()) == 30
    fill(tmp_path, frame(4, broken=True))
    assert decodes(tmp_path).count("broken") == 1  # known-bad images are not retried


def test_resumes_an_interrupted_fill(tmp_path):
    cache, _ = fill(tmp_path, frame(6))
    filled = np.load(cache.path / "filled.npy")
    filled[3:] = False  # as if the process died after three images
    np.save(cache.path / "filled.npy", filled)
    fill(tmp_path, frame(6))
    assert sorted(decodes(tmp_path)[6:]) == ["img3", "img4", "img5"]  # only the missing ones


def test_square_resize_keeps_uint8_and_values():
    image = np.zeros((100, 50), np.uint8)
    image[:, 25:] = 200
    out = to_square_uint8(image, 10)
    assert out.shape == (10, 10) and out.dtype == np.uint8
    assert out[:, :4].max() == 0 and out[:, 6:].min() == 200


def read_or_die(record, options):
    """Kills its own process on one row, as a segfaulting C decoder would."""
    if record["uid"] == "crash":
        os._exit(1)
    return read_gradient(record, options)


def test_a_decoder_that_kills_its_worker_is_recorded_and_the_rest_filled(tmp_path):
    records = frame(10)
    records = pd.concat([records.iloc[:4], pd.DataFrame([{"uid": "crash", "path": "/x/c.dcm",
                                                          "i": 0, "_dataset": "d"}]),
                         records.iloc[4:]], ignore_index=True)
    options = {"d": {"log": str(tmp_path / CALLS)}}
    cache, errors = fill_cache(tmp_path / "cache", records, {"d": read_or_die}, options, ["v"],
                               16, workers=2, chunk=2, show_progress=False)
    assert list(errors) == ["crash"]
    assert errors["crash"].startswith("/x/c.dcm: the decoder crashed its process")
    rows = [i for i, u in enumerate(cache.uids) if u != "crash"]
    assert [int(cache.images[r].mean()) for r in rows] == [i * 10 for i in range(10)]
    assert sorted(set(decodes(tmp_path))) == [f"img{i}" for i in range(10)]
    before = len(decodes(tmp_path))
    fill_cache(tmp_path / "cache", records, {"d": read_or_die}, options, ["v"], 16,
               workers=2, show_progress=False)
    assert len(decodes(tmp_path)) == before  # the crashing image is not tried again


def test_a_second_filler_waits_for_the_first(tmp_path):
    records = frame(4)
    path = tmp_path / "cache" / cache_key(["v1"], list(records["uid"]), 16)
    path.mkdir(parents=True)
    holder = FileLock(str(path / "fill.lock"))
    holder.acquire()
    result = {}
    thread = threading.Thread(target=lambda: result.update(view=fill(tmp_path, records)[0]))
    thread.start()
    time.sleep(1.0)
    assert decodes(tmp_path) == [] and thread.is_alive()  # waiting, not decoding
    holder.release()
    thread.join(timeout=60)
    assert len(decodes(tmp_path)) == 4 and result["view"].path == path


def test_chunks_keep_every_worker_busy_to_the_end():
    assert chunk_size(7, 2) == 1  # small fills: one image per task
    assert chunk_size(200, 2) == 4  # 50 tasks: the last one is 4 images, not 64
    assert chunk_size(26_684, 2) == 16  # large fills: capped, progress stays frequent
    for todo in (10, 200, 1000, 26_684):
        for workers in (2, 4, 8):
            tasks = -(-todo // chunk_size(todo, workers))
            assert tasks >= min(todo, 8 * workers)


def test_a_cache_larger_than_the_free_disk_is_refused_before_it_starts(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    import pytest

    from harness.errors import HarnessError

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**12, 10**12 - 5000, 5000))
    with pytest.raises(HarnessError, match=r"needs 0\.01 MB more on .* has 0\.01 MB free: lower "
                                           r"image_size, or point cache_dir to a larger disk"):
        fill(tmp_path, frame(7), size=32)  # 7 x 32 x 32 = 7168 bytes
    assert decodes(tmp_path) == []
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**12, 0, 8000))
    cache, errors = fill(tmp_path, frame(7), size=32)
    assert errors == {} and int(cache.images[6].mean()) == 60
