from __future__ import annotations

import numpy as np
import pytest

from qnas.cost.agreement import kendall_tau, mape


def test_kendall_tau_extremes_and_a_hand_example() -> None:
    assert kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # pairs: (1,2)+ (1,3)+ (2,3)- -> (2 - 1) / 3
    assert kendall_tau([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3)


def test_kendall_tau_b_with_ties() -> None:
    # x has one tie: n_a = 5 non-tied pairs of 6; all non-tied pairs concordant
    assert kendall_tau([1, 1, 2, 3], [1, 2, 3, 4]) == pytest.approx(5 / np.sqrt(5 * 6))


def test_mape() -> None:
    assert mape([1.1, 1.8], [1.0, 2.0]) == pytest.approx(0.1)
    with pytest.raises(ValueError):
        mape([1.0], [0.0])
