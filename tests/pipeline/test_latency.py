from pathlib import Path

from qnas.pipeline.latency import default_check_plot


def test_a_check_by_default_never_lands_on_an_earlier_one(tmp_path: Path) -> None:
    lut = tmp_path / "lut.yaml"
    assert default_check_plot(lut) == tmp_path / "lut_check.png"
    (tmp_path / "lut_check.json").write_text("{}")  # a run's check (its plot may be missing)
    assert default_check_plot(lut) == tmp_path / "lut_check-2.png"
    (tmp_path / "lut_check-2.png").write_bytes(b"")
    assert default_check_plot(lut) == tmp_path / "lut_check-3.png"
    assert default_check_plot(tmp_path / "other.yaml") == tmp_path / "other_check.png"
