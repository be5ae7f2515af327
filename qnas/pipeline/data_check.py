"""``qnas data-check``: read every item of a config's dataset once, list its defects, count its classes.

A defect is one line naming the file: an image without a mask or a mask without an image, a file that
cannot be read, a mask of another size than its image, ids that are neither a class nor the ignore
index. Datasets with a ``survey`` hook (folder) list every unpaired file; the others are built as
training builds them, so a malformed tree is its first error. Nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from qnas.data.registry import SPLITS, build_split, check_data_config, dataset_kind
from qnas.errors import DataError
from qnas.pipeline.progress import SILENT, Reporter

__all__ = ["DataCheck", "SplitCount", "check_data"]


@dataclass(frozen=True)
class SplitCount:
    """One split: how many items it lists, how many were read, and their labelled pixels per class."""

    name: str
    items: int
    read: int
    pixels: tuple[int, ...]  # per class id
    ignored: int  # pixels at the ignore index

    def shares(self) -> list[float]:
        """Each class's share of all pixels read, then the ignored pixels' share (summing to 1)."""
        total = sum(self.pixels) + self.ignored
        return [n / total if total else 0.0 for n in (*self.pixels, self.ignored)]


@dataclass(frozen=True)
class DataCheck:
    dataset: str
    class_names: tuple[str, ...]
    ignore_index: int
    splits: tuple[SplitCount, ...]
    defects: tuple[str, ...]

    @property
    def clean(self) -> bool:
        return not self.defects

    def absent(self, split: str = "train") -> list[str]:
        """Classes without a pixel in ``split`` (a network cannot learn them from it)."""
        counts = {s.name: s for s in self.splits}.get(split)
        if counts is None or not counts.read:
            return []
        return [name for name, n in zip(self.class_names, counts.pixels) if n == 0]


def check_data(config: Any, *, reporter: Reporter = SILENT) -> DataCheck:
    """Every split of ``config.data`` read item by item: its defects (one line each, naming the file) and
    its pixels per class. A config error (a missing key, a class count unlike space.num_classes) raises."""
    check_data_config(config)
    data = config.data
    kind = dataset_kind(data.dataset)
    classes, ignore = tuple(kind.class_names(data)), int(kind.ignore_index(data))
    defects: list[str] = []
    splits = []
    for split in SPLITS:
        try:
            dataset, found = kind.survey(data, split) if kind.survey else (build_split(data, split), [])
        except DataError as exc:
            defects.append(str(exc))
            continue
        defects.extend(found)
        counts = np.zeros(len(classes) + 1, dtype=np.int64)  # the last bin: ignored pixels
        read = 0
        with reporter.steps(f"reading {split}") as progress:
            for i in range(len(dataset)):
                progress(split, i, len(dataset))
                try:
                    label = np.asarray(dataset[i][1]).ravel()
                except DataError as exc:
                    defects.append(str(exc))
                    continue
                outside = (label < 0) | ((label >= len(classes)) & (label != ignore))
                if outside.any():  # a survey-less dataset whose items do not say which file they are
                    ids = sorted(set(label[outside].tolist()))[:8]
                    defects.append(f"{data.dataset} {split} item {i}: label ids {ids} are neither a class "
                                   f"(0 to {len(classes) - 1}) nor the ignore index {ignore}")
                    continue
                counts += np.bincount(np.where(label == ignore, len(classes), label), minlength=len(classes) + 1)
                read += 1
            progress(split, len(dataset), len(dataset))
        splits.append(SplitCount(split, len(dataset), read, tuple(int(n) for n in counts[:-1]), int(counts[-1])))
    return DataCheck(data.dataset, classes, ignore, tuple(splits), tuple(dict.fromkeys(defects)))
