"""Near-duplicate radiographs across patient ids become one patient group."""

from __future__ import annotations

import csv
import io
import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import SHARED

from harness.cli.main import main
from harness.config.suite import load_suite
from harness.data.duplicates import close_pairs
from harness.data.prepare import prepare
from harness.plugin.check import check_data_options
from harness.plugin.registry import build_registry

MINI = SHARED / "data" / "ieee8023-mini"

#: The same radiograph under two patient ids in the real subset (June 2020 metadata).
KNOWN = {("ieee8023/97", "ieee8023/178"): 4, ("ieee8023/78", "ieee8023/201"): 1,
         ("ieee8023/137", "ieee8023/202"): 1, ("ieee8023/192", "ieee8023/196"): 2}


def test_close_pairs_finds_every_pair_within_the_threshold():
    rng = np.random.default_rng(0)
    base = [int(x) for x in rng.integers(0, 2**63, size=300, dtype=np.int64)]
    hashes = {f"u{i}": v for i, v in enumerate(base)}
    hashes["near"] = base[7] ^ 0b1011_0000_0000_0000_0000_0000_0000_1011_0000_0001  # 7 bits
    hashes["far"] = base[9] ^ (2**12 - 1)                                             # 12 bits
    pairs = close_pairs(hashes, 8)
    brute = sorted((a, b, (hashes[a] ^ hashes[b]).bit_count())
                   for i, a in enumerate(hashes) for b in list(hashes)[i + 1:]
                   if (hashes[a] ^ hashes[b]).bit_count() <= 8)
    assert sorted(pairs) == brute
    assert ("u7", "near", 7) in pairs and not any("far" in p for p in pairs)


@pytest.mark.skipif(not MINI.is_dir(), reason="ieee8023-mini not present")
def test_real_duplicates_and_a_copied_image_under_a_new_patient_are_grouped(tmp_path):
    root = tmp_path / "ieee8023"
    shutil.copytree(MINI, root)
    text = (root / "metadata.csv").read_text()
    rows = list(csv.reader(io.StringIO(text)))
    row = next(r for r in rows[1:] if r[0] == "2")  # patient 2's first image
    name = row[rows[0].index("filename")]
    shutil.copy(root / "images" / name, root / "images" / f"copy-{name}")
    row = ["9999"] + [f"copy-{name}" if v == name else v for v in row[1:]]
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(row)
    (root / "metadata.csv").write_text(text.rstrip("\n") + "\n" + out.getvalue())
    suite_file = tmp_path / "suite.yaml"
    suite_file.write_text("name: dup\nimage_size: 64\ncache_dir: cache\n"
                          "datasets: [{name: ieee8023, options: {root: ieee8023, "
                          "mapping: current}}]\n"
                          "split: {kind: grouped-kfold, folds: 3, seed: 0}\n")
    before = CliRunner().invoke(main, ["data", "summary", str(suite_file)])
    assert "not checked: the images are not decoded yet" in before.output

    suite, registry = load_suite(suite_file), build_registry()
    prepared = prepare(suite, registry, check_data_options(suite, registry),
                       show_progress=False)
    records = prepared.records
    found: dict[tuple, int] = {}
    for pair in records.attrs["near_duplicates"]:
        key = tuple(sorted(pair["patients"], key=lambda p: int(p.split("/")[1])))
        found[key] = found.get(key, 0) + 1
    assert found == {**KNOWN, ("ieee8023/2", "ieee8023/9999"): 1}
    ids = records.set_index("uid")["patient_id"]
    assert ids[f"ieee8023/copy-{name}"] == ids[f"ieee8023/{name}"] == "ieee8023/2+ieee8023/9999"
    side = {}
    for k, fold in enumerate(prepared.folds):
        for part in ("train", "select", "test"):
            for pid in records["original_patient_id"].to_numpy()[getattr(fold, part)]:
                side.setdefault((k, pid), set()).add(part)
        for a, b in [("97", "178"), ("2", "9999"), ("192", "196")]:
            assert side[(k, a)] == side[(k, b)] and len(side[(k, a)]) == 1

    after = CliRunner().invoke(main, ["data", "summary", str(suite_file), "--json"])
    listed = json.loads(after.output)["near_duplicates"]
    assert len(listed) == sum(found.values()) == 9
    text = CliRunner().invoke(main, ["data", "summary", str(suite_file)]).output
    assert "9 pair(s) of images filed under different patients" in text
