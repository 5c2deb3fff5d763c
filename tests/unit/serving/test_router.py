"""The router's rule: rows by arm, and a failing model fails only its own rows."""

import numpy as np

from fraud.serving.router import failed_rows, score_by_arm


def _rows(arms: list[int]) -> np.ndarray:
    features = np.arange(len(arms) * 2, dtype=np.float64).reshape(len(arms), 2)
    return np.column_stack([np.array(arms, dtype=np.float64), features])


def champion(x: np.ndarray) -> np.ndarray:
    return x[:, 0] / 100.0


def broken(x: np.ndarray) -> np.ndarray:
    raise RuntimeError("the challenger's model is broken")


def test_each_row_is_scored_by_its_arm() -> None:
    rows = _rows([0, 1, 1, 0])
    out = score_by_arm([champion, lambda x: np.full(len(x), 0.5)], rows)
    assert out.tolist() == [0.0, 0.5, 0.5, 0.06]
    assert failed_rows(out) == []


def test_a_failing_challenger_does_not_fail_the_champions_rows(caplog) -> None:
    rows = _rows([0, 1, 0, 1, 1])
    out = score_by_arm([champion, broken], rows)
    assert failed_rows(out) == [1, 3, 4]
    assert out[[0, 2]].tolist() == [0.0, 0.04]
    assert "model_b failed to score 3 rows" in caplog.text


def test_non_finite_scores_count_as_failures() -> None:
    out = score_by_arm([champion, lambda x: np.full(len(x), np.nan)], _rows([1, 0]))
    assert failed_rows(out) == [0]


def test_one_arm_only() -> None:
    out = score_by_arm([champion, broken], _rows([0, 0]))
    assert failed_rows(out) == [] and len(out) == 2
