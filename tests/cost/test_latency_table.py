"""The latency table's torch-free half: block enumeration, prediction, fingerprint, file format."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from qnas.cost.latency import (TABLE_FORMAT, TABLE_FORMAT_UNITS, UNIT_SHARE_KEPT, LatencyTable, LatencyTableError,
                               choose_fit, fit_overheads, network_blocks, space_blocks)
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
    for unit_overhead in (0.0, -0.02):
        table.unit_overhead_ms = unit_overhead
        for _ in range(10):
            g = small_space.sample(rng)
            units = network_blocks(small_space.spec, g, 64, 128)
            expected = 0.5 + sum(table.entries[b.key] + unit_overhead for b in units)
            assert table.predict(small_space.spec, g) == pytest.approx(expected)
            assert table.block_sum(small_space.spec, g) == pytest.approx(sum(table.entries[b.key] for b in units))


def test_the_fit_finds_a_per_unit_cost_and_predicts_left_out_networks_better(rng: np.random.Generator) -> None:
    """Units timed alone that each pay 0.15 ms a whole network pays once: the per-unit model recovers it."""
    units = rng.integers(9, 16, size=30)
    sums = units * rng.uniform(0.2, 0.4, size=30)
    measured = (sums - 0.15 * units + 0.4) * rng.normal(1.0, 0.01, size=30)
    fits = fit_overheads(sums, units, measured, smallest_entry=0.2)
    chosen = choose_fit(fits, 0.5)
    assert chosen is fits["per unit"] and chosen.model == "per unit"
    assert chosen.unit_overhead_ms == pytest.approx(-0.15, abs=0.03)
    assert chosen.overhead_ms == pytest.approx(0.4, abs=0.3)
    assert fits["per unit"].loo_mape < fits["constant"].loo_mape
    assert fits["constant"].unit_overhead_ms == 0.0
    assert fits["constant"].overhead_ms == pytest.approx(float(np.median(measured - sums)))


def test_without_a_per_unit_cost_the_constant_is_mostly_kept() -> None:
    """A pure constant offset: the per-unit model fits noise; it must beat the constant's leave-one-out MAPE by
    PER_UNIT_GAIN to be chosen, which chance gives it in about one draw in ten (21 of 200 seeds when written)."""
    chosen = []
    for seed in range(50):
        rng = np.random.default_rng(seed)
        units = rng.integers(9, 16, size=30)
        sums = units * rng.uniform(0.2, 0.4, size=30)
        measured = sums + 0.3 + rng.normal(0.0, 0.05, size=30)
        fits = fit_overheads(sums, units, measured, smallest_entry=0.2)
        chosen.append(choose_fit(fits, 0.5).model)
        assert abs(fits["per unit"].unit_overhead_ms) < 0.03
    assert chosen.count("constant") >= 40


def test_few_networks_or_one_size_fit_only_the_constant_and_a_floor_refuses() -> None:
    nine = list(range(9, 18))  # fewer than PER_UNIT_MIN_SAMPLES networks
    assert set(fit_overheads([1.0] * 9, nine, [0.9] * 9, 0.1)) == {"constant"}
    assert set(fit_overheads([1.0] * 12, [10] * 12, [0.9] * 12, 0.1)) == {"constant"}  # one size: no slope to fit
    assert set(fit_overheads([1.0] * 12, [10, 11] * 6, [0.9] * 12, 0.1)) == {"constant", "per unit"}
    two = fit_overheads([1.0, 2.0], [9, 10], [1.5, 2.5], 0.1)
    assert two["constant"].loo_mape is None and choose_fit(two, 0.5) is two["constant"]
    # 20x inflated entries, sizes unrelated to the unit count: no fit keeps the smallest network's prediction
    sums = np.asarray([100.0, 2.0, 80.0, 20.0, 60.0, 40.0] * 2)
    fits = fit_overheads(sums, list(range(9, 21)), sums / 20, 0.5)
    assert set(fits) == {"constant", "per unit"}
    assert all(fit.lowest < 0.5 for fit in fits.values()) and choose_fit(fits, 0.5) is None
    # where the constant is refused but the per-unit model is not, the per-unit model is used
    allowed = {"constant": replace(fits["constant"], loo_mape=0.01),
               "per unit": replace(fits["per unit"], lowest=0.9, loo_lowest=0.8)}
    assert choose_fit(allowed, 0.5) is allowed["per unit"]


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
    assert again.resolution == (64, 128) and again.overhead_ms == 0.5 and again.unit_overhead_ms == 0.0
    table.unit_overhead_ms = -0.0625
    table.write(tmp_path / "lut.yaml")
    assert LatencyTable.read(tmp_path / "lut.yaml").unit_overhead_ms == -0.0625
    text = (tmp_path / "lut.yaml").read_text()
    (tmp_path / "inf.yaml").write_text(text.replace("unit_overhead_ms: -0.0625", "unit_overhead_ms: .inf"))
    with pytest.raises(LatencyTableError, match="unit_overhead_ms is inf"):
        LatencyTable.read(tmp_path / "inf.yaml")
    (tmp_path / "old.yaml").write_text(text.replace("unit_overhead_ms: -0.0625\n", "")  # a table from before
                                       .replace("latency-table/2", "latency-table/1"))
    assert LatencyTable.read(tmp_path / "old.yaml").unit_overhead_ms == 0.0
    (tmp_path / "bad.yaml").write_text("a: [1\n")
    for path, match in ((tmp_path / "none.yaml", "not found"), (tmp_path / "bad.yaml", "not valid YAML")):
        with pytest.raises(LatencyTableError, match=match):
            LatencyTable.read(path)
    (tmp_path / "other.yaml").write_text("entries: {}\n")
    with pytest.raises(LatencyTableError, match="not a qnas latency table"):
        LatencyTable.read(tmp_path / "other.yaml")


def test_the_leave_one_out_mape_predicts_each_network_from_the_others() -> None:
    """By hand: residuals 1, 2, 3, 9; each left out is predicted with the median of the other three (3, 3, 2, 2),
    not with the median of all four (2.5), which the in-sample MAPE would use."""
    fit = fit_overheads([1.0] * 4, [10] * 4, [2.0, 3.0, 4.0, 10.0], 0.5)["constant"]
    assert fit.overhead_ms == 2.5
    assert fit.loo_mape == pytest.approx(np.mean([2 / 2, 1 / 3, 1 / 4, 7 / 10]))
    assert fit.loo_lowest == pytest.approx(3 / 10)
    # the per-unit model likewise: on an exact line every left-out network is predicted exactly
    units = np.arange(10, 22)
    sums = 0.3 * units
    perfect = fit_overheads(sums, units, sums - 0.1 * units + 0.5, 0.3)["per unit"]
    assert perfect.unit_overhead_ms == pytest.approx(-0.1) and perfect.overhead_ms == pytest.approx(0.5)
    assert perfect.loo_mape == pytest.approx(0.0, abs=1e-12)


def test_a_unit_never_costs_nothing() -> None:
    """A per-unit term steeper than the smallest entry would predict deeper networks faster: it is held at
    -(1 - UNIT_SHARE_KEPT) of that entry, and a table file that breaks this is refused."""
    units = np.arange(10, 22)
    sums = 0.3 * units
    fit = fit_overheads(sums, units, sums - 0.25 * units + 4.0, smallest_entry=0.1)["per unit"]
    assert fit.unit_overhead_ms == pytest.approx(-(1 - UNIT_SHARE_KEPT) * 0.1)


def test_a_table_with_a_unit_term_says_so_in_its_format(small_space: SearchSpace, tmp_path: Path) -> None:
    table = _table(small_space)
    table.write(tmp_path / "plain.yaml")
    assert f"qnas_latency_table: {TABLE_FORMAT}" in (tmp_path / "plain.yaml").read_text()
    table.unit_overhead_ms = -0.05
    table.write(tmp_path / "units.yaml")
    text = (tmp_path / "units.yaml").read_text()
    assert f"qnas_latency_table: {TABLE_FORMAT_UNITS}" in text  # a reader that ignores the term refuses the file
    assert LatencyTable.read(tmp_path / "units.yaml").unit_overhead_ms == -0.05
    (tmp_path / "bad.yaml").write_text(text.replace("unit_overhead_ms: -0.05", "unit_overhead_ms: -0.1"))
    with pytest.raises(LatencyTableError, match="would make its smallest entry .* cost nothing or less"):
        LatencyTable.read(tmp_path / "bad.yaml")
