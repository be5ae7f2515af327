"""The latency table's torch-free half: block enumeration, prediction, fingerprint, file format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qnas.cost.latency import LatencyTable, LatencyTableError, network_blocks, space_blocks
from qnas.space import SearchSpace


def _table(space: SearchSpace, resolution=(64, 128)) -> LatencyTable:
    entries = {b.key: 0.1 * (i + 1) for i, b in enumerate(space_blocks(space.spec, *resolution))}
    return LatencyTable({"cpu": "x", "threads": 1}, resolution, entries, overhead_ms=0.5)


def test_space_blocks_cover_every_genome(small_space: SearchSpace, rng: np.random.Generator) -> None:
    keys = {b.key for b in space_blocks(small_space.spec, 64, 128)}
    assert len(keys) == len(space_blocks(small_space.spec, 64, 128))  # distinct
    for _ in range(30):
        g = small_space.sample(rng)
        blocks = network_blocks(small_space.spec, g, 64, 128)
        assert {b.key for b in blocks} <= keys
        assert len(blocks) == 3 + sum(small_space.depths(g).values())


def test_bits_do_not_change_blocks(small_space: SearchSpace) -> None:
    a = network_blocks(small_space.spec, small_space.uniform(8, 5, 4, 3), 64, 128)
    b = network_blocks(small_space.spec, small_space.uniform(4, 5, 4, 3), 64, 128)
    assert a == b


def test_prediction_is_the_sum_of_entries(small_space: SearchSpace, rng: np.random.Generator) -> None:
    table = _table(small_space)
    for _ in range(10):
        g = small_space.sample(rng)
        expected = 0.5 + sum(table.entries[b.key] for b in network_blocks(small_space.spec, g, 64, 128))
        assert table.predict(small_space.spec, g) == pytest.approx(expected)


def test_missing_entry_is_a_clear_error(small_space: SearchSpace) -> None:
    table = _table(small_space)
    key = next(iter(table.entries))
    del table.entries[key]
    assert table.missing(small_space.spec)
    with pytest.raises(LatencyTableError, match="no entry for block"):
        for g in (small_space.largest(), small_space.smallest(), small_space.uniform(8, 3, 6, 3)):
            table.predict(small_space.spec, g)


def test_fingerprint_is_enforced_unless_forced(small_space: SearchSpace) -> None:
    table = _table(small_space)
    table.check_device({"cpu": "x", "threads": 1})
    with pytest.raises(LatencyTableError, match="another device.*threads: table 1, here 2"):
        table.check_device({"cpu": "x", "threads": 2})
    table.check_device({"cpu": "y", "threads": 2}, force=True)


def test_file_round_trip_and_bad_files(small_space: SearchSpace, tmp_path: Path) -> None:
    table = _table(small_space)
    table.write(tmp_path / "lut.yaml")
    again = LatencyTable.read(tmp_path / "lut.yaml")
    assert again.entries == table.entries and again.fingerprint == table.fingerprint
    assert again.resolution == (64, 128) and again.overhead_ms == 0.5
    (tmp_path / "bad.yaml").write_text("a: [1\n")
    for path, match in ((tmp_path / "none.yaml", "not found"), (tmp_path / "bad.yaml", "not valid YAML")):
        with pytest.raises(LatencyTableError, match=match):
            LatencyTable.read(path)
    (tmp_path / "other.yaml").write_text("entries: {}\n")
    with pytest.raises(LatencyTableError, match="not a qnas latency table"):
        LatencyTable.read(tmp_path / "other.yaml")
