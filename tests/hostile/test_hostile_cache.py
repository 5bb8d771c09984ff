"""Family "cache": a damaged image cache is rebuilt (or refused) and never costs a run."""

from __future__ import annotations

import numpy as np
import pytest

from harness.data.cache import CacheDamaged, open_cache


def _pending_one(space):
    """Make one of the two finished runs pending again (as if it had never finished)."""
    first, second = space.folders()
    second.status_path.unlink()
    return first


@pytest.mark.parametrize("damage", ["truncated", "index", "blanked"])
def test_a_damaged_cache_is_rebuilt_and_no_finished_run_is_lost(space, damage):
    done = _pending_one(space)
    started = done.status().started
    cache = space.cache_dir()
    if damage == "truncated":
        with open(cache / "images.u8", "r+b") as fh:
            fh.truncate(1000)
    elif damage == "index":
        (cache / "index.json").write_text('{"n": 9')
    else:
        images = np.memmap(cache / "images.u8", dtype=np.uint8, mode="r+")
        images[:] = 0
        images.flush()
        del images
    result = space.run("--no-report")
    assert result.code == 0, result.err
    assert any("image cache is damaged" in w and "rebuilding it" in w
               for w in result.warnings), result.err
    assert "Traceback" not in result.err
    assert len(space.finished()) == 2
    assert done.status().started == started  # the finished run was neither erased nor redone
    assert open_cache(cache).images.any()  # rebuilt with real pixels


def test_rerun_all_with_a_damaged_cache_erases_nothing_before_the_data_is_good(space,
                                                                               monkeypatch):
    before = space.finished()
    with open(space.cache_dir() / "images.u8", "r+b") as fh:
        fh.truncate(1000)
    monkeypatch.setenv("HARNESS_HOSTILE", "records-raises")  # data unreadable on top
    result = space.run("--no-report", "--rerun", "all")
    from hostile.hostile_kit import refused

    refused(result, "dataset 'hostile'", "records", "Permission denied")
    assert space.finished() == before  # --rerun all erased nothing: the data never got good


def test_a_run_refuses_a_cache_changed_under_it(space):
    cache = space.cache_dir()
    view = open_cache(cache)
    uids = view.uids[:3]
    images = np.memmap(cache / "images.u8", dtype=np.uint8, mode="r+")
    images[5] = 255 - images[5]
    images.flush()
    del images
    import os
    import time

    os.utime(cache / "images.u8", ns=(time.time_ns(), time.time_ns() + 10**9))
    with pytest.raises(CacheDamaged, match="differ from their digest"):
        open_cache(cache, rows_of=uids)


def test_a_file_where_the_cache_folder_goes_is_refused(space):
    from hostile.hostile_kit import refused

    _pending_one(space)
    before = space.finished()
    (space.root / "blocked").write_text("not a folder")
    space.write_suite(cache_dir="blocked/cache")
    refused(space.run("--no-report"), "cache")
    assert space.finished() == before
