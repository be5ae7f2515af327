"""Confusion matrix, IoU, mIoU and pixel accuracy on hand-computed examples."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from qnas.data.metrics import ConfusionMeter, confusion_matrix, iou_from_confusion, miou, pixel_accuracy

TARGET = np.array([[0, 0, 1, 1], [2, 2, 255, 1]])
PRED = np.array([[0, 1, 1, 1], [2, 0, 2, 0]])
# rows = target, cols = prediction; the ignored pixel (predicted 2) is dropped
EXPECTED = np.array([[1, 1, 0], [1, 2, 0], [1, 0, 1]])


def test_hand_computed_confusion_and_metrics() -> None:
    cm = confusion_matrix(PRED, TARGET, 3)
    assert cm.dtype == np.int64
    assert np.array_equal(cm, EXPECTED)
    # IoU_c = correct / (seen + predicted - correct)
    iou = iou_from_confusion(cm)
    assert iou == pytest.approx([1 / (2 + 3 - 1), 2 / (3 + 3 - 2), 1 / (2 + 1 - 1)])
    assert miou(cm) == pytest.approx((1 / 4 + 1 / 2 + 1 / 2) / 3)
    assert pixel_accuracy(cm) == pytest.approx(4 / 7)


def test_torch_and_numpy_agree_and_scores_are_argmaxed() -> None:
    cm_t = confusion_matrix(torch.from_numpy(PRED), torch.from_numpy(TARGET), 3)
    assert np.array_equal(cm_t, EXPECTED)
    scores = torch.nn.functional.one_hot(torch.from_numpy(PRED), 3).permute(2, 0, 1)[None].float()
    assert np.array_equal(confusion_matrix(scores, torch.from_numpy(TARGET)[None], 3), EXPECTED)
    assert np.array_equal(confusion_matrix(scores.numpy(), TARGET[None], 3), EXPECTED)
    assert np.array_equal(confusion_matrix(torch.from_numpy(PRED), TARGET, 3), EXPECTED)


def test_ignore_index_is_configurable() -> None:
    target = np.array([0, 1, 7, 7])
    pred = np.array([0, 1, 1, 0])
    assert confusion_matrix(pred, target, 2, ignore_index=7).sum() == 2


def test_absent_class_is_nan_and_excluded_from_mean() -> None:
    cm = confusion_matrix(np.array([0, 0, 2]), np.array([0, 0, 2]), 4)
    iou = iou_from_confusion(cm)
    assert math.isnan(iou[1]) and math.isnan(iou[3])
    assert iou[0] == 1.0 and iou[2] == 1.0
    assert miou(cm) == 1.0
    # a class that is only predicted counts, with IoU 0
    cm = confusion_matrix(np.array([1, 0]), np.array([0, 0]), 2)
    assert iou_from_confusion(cm)[1] == 0.0 and miou(cm) == pytest.approx(0.25)


def test_empty_matrix_gives_nan() -> None:
    cm = confusion_matrix(np.array([0]), np.array([255]), 3)
    assert cm.sum() == 0
    assert math.isnan(miou(cm)) and math.isnan(pixel_accuracy(cm))


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(np.zeros((2, 2)), np.zeros((2, 3)), 3)
    with pytest.raises(ValueError, match="target"):
        confusion_matrix(np.zeros(2), np.array([0, 5]), 3)
    with pytest.raises(ValueError, match="predictions"):
        confusion_matrix(torch.tensor([0, 3]), torch.tensor([0, 1]), 3)


def test_meter_accumulates_and_resets() -> None:
    meter = ConfusionMeter(3)
    meter.update(PRED, TARGET)
    meter.update(torch.from_numpy(PRED), torch.from_numpy(TARGET))
    assert np.array_equal(meter.matrix, 2 * EXPECTED)
    assert meter.miou() == pytest.approx(miou(EXPECTED))
    assert meter.pixel_accuracy() == pytest.approx(4 / 7)
    assert np.allclose(meter.per_class_iou(), iou_from_confusion(EXPECTED))
    meter.reset()
    assert meter.matrix.sum() == 0


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=1, max_size=60))
def test_confusion_matches_pair_counts(pairs: list[tuple[int, int]]) -> None:
    target, pred = np.array(pairs).T
    cm = confusion_matrix(pred, target, 5)
    expected = np.zeros((5, 5), dtype=np.int64)
    for t, p in pairs:
        expected[t, p] += 1
    assert np.array_equal(cm, expected)
    iou = iou_from_confusion(cm)
    valid = ~np.isnan(iou)
    assert np.all((iou[valid] >= 0) & (iou[valid] <= 1))
    assert 0.0 <= miou(cm) <= 1.0


def test_predicted_classes_is_argmax_with_ties_to_the_first() -> None:
    from qnas.data.metrics import predicted_classes

    g = torch.Generator().manual_seed(0)
    logits = torch.randint(0, 3, (4, 11, 9, 7), generator=g).float()  # many ties
    assert torch.equal(predicted_classes(logits), logits.argmax(1))
    logits[0, :, 0, 0] = 1.0
    assert predicted_classes(logits)[0, 0, 0] == 0
