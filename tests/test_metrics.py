"""Tests of sonotype.training.metrics against slow, obvious references written here.

Each reference loops over the samples one at a time in plain Python: a window is predicted
positive when ``score >= threshold``; precision = tp / (tp + fp) (0 when nothing is predicted),
recall = tp / (tp + fn), F1 = 2pr / (p + r) (0 when both are 0).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from sonotype.errors import DataError
from sonotype.training.metrics import Confusion, average_precision, choose_threshold, confusion, pr_curve, summary

# ------------------------------------------------------------------------------- the reference


def ref_counts(scores, labels, threshold) -> tuple[int, int, int, int]:
    """(tp, fn, fp, tn) by a loop over samples."""
    tp = fn = fp = tn = 0
    for s, y in zip(scores, labels):
        pred = float(s) >= threshold
        if y == 1 and pred:
            tp += 1
        elif y == 1:
            fn += 1
        elif pred:
            fp += 1
        else:
            tn += 1
    return tp, fn, fp, tn


def ref_prf(scores, labels, threshold) -> tuple[float, float, float]:
    tp, fn, fp, _ = ref_counts(scores, labels, threshold)
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def ref_average_precision(scores, labels) -> float:
    """Mean over positives of the precision at the threshold equal to that positive's score.

    With ties, every sample scoring at least the positive's score counts as predicted (the
    implementation's step rule: one PR point per distinct score, at the end of its tie group).
    """
    pos = [float(s) for s, y in zip(scores, labels) if y == 1]
    if not pos:
        return 0.0
    total = 0.0
    for sp in pos:
        above = [y for s, y in zip(scores, labels) if float(s) >= sp]
        total += sum(above) / len(above)
    return total / len(pos)


def random_data(seed: int, n: int, *, ties: bool = False, p_pos: float = 0.3):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 12, n) / 11.0 if ties else rng.random(n)
    labels = (rng.random(n) < p_pos).astype(np.int64)
    return scores, labels


SEEDS = list(range(8))


# ------------------------------------------------------------------------------- confusion


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", SEEDS)
def test_confusion_matches_loop(seed, ties):
    scores, labels = random_data(seed, 200, ties=ties)
    rng = np.random.default_rng(1000 + seed)
    thresholds = list(rng.uniform(-0.1, 1.1, 10)) + [float(scores[3]), float(scores.min()), float(scores.max()) + 1]
    for t in thresholds:
        cm = confusion(scores, labels, threshold=t)
        assert (cm.tp, cm.fn, cm.fp, cm.tn) == ref_counts(scores, labels, t)
        p, r, f = ref_prf(scores, labels, t)
        assert cm.precision == pytest.approx(p)
        assert cm.recall == pytest.approx(r)
        assert cm.f1 == pytest.approx(f)
        assert cm.accuracy == pytest.approx((cm.tp + cm.tn) / len(scores))
        assert cm.threshold == t


def test_confusion_accepts_float_and_bool_labels_and_2d():
    scores, labels = random_data(3, 60)
    ref = ref_counts(scores, labels, 0.5)
    for lab in (labels.astype(float), labels.astype(bool), labels.reshape(6, 10)):
        cm = confusion(scores.reshape(6, 10) if lab.ndim == 2 else scores, lab, threshold=0.5)
        assert (cm.tp, cm.fn, cm.fp, cm.tn) == ref


def test_confusion_zero_division_is_zero():
    cm = confusion(np.array([0.1, 0.2]), np.array([0, 0]), threshold=0.5)
    assert (cm.tp, cm.fn, cm.fp, cm.tn) == (0, 0, 0, 2)
    assert cm.precision == 0.0 and cm.recall == 0.0 and cm.f1 == 0.0 and cm.accuracy == 1.0
    empty = Confusion(0, 0, 0, 0, 0.5)
    assert empty.accuracy == 0.0 and empty.f1 == 0.0


def test_confusion_table_and_dict():
    cm = confusion(np.array([0.9, 0.8, 0.3, 0.1, 0.7]), np.array([1, 0, 1, 0, 0]), threshold=0.5)
    assert (cm.tp, cm.fn, cm.fp, cm.tn) == (1, 1, 2, 1)
    table = cm.table()
    assert "| vocalisation | 1 | 1 |" in table and "| noise | 2 | 1 |" in table
    d = cm.to_dict()
    assert d["tp"] == 1 and d["fn"] == 1 and d["fp"] == 2 and d["tn"] == 1 and d["threshold"] == 0.5
    assert d["precision"] == pytest.approx(1 / 3) and d["recall"] == pytest.approx(0.5)
    assert d["f1"] == pytest.approx(2 * (1 / 3) * 0.5 / (1 / 3 + 0.5)) and d["accuracy"] == pytest.approx(0.4)


# ------------------------------------------------------------------------------- pr_curve


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", SEEDS)
def test_pr_curve_matches_brute_force(seed, ties):
    scores, labels = random_data(seed, 150, ties=ties)
    c = pr_curve(scores, labels)
    distinct = sorted({float(s) for s in scores}, reverse=True)
    assert list(c["threshold"]) == distinct
    n = len(distinct)
    for k in ("precision", "recall", "tp", "fp"):
        assert c[k].shape == (n,)
    npos = int(sum(labels))
    for i, t in enumerate(distinct):
        tp, fn, fp, _ = ref_counts(scores, labels, t)
        assert c["tp"][i] == tp and c["fp"][i] == fp
        assert c["precision"][i] == pytest.approx(tp / (tp + fp))
        assert c["recall"][i] == pytest.approx(tp / npos)
    assert c["recall"][-1] == pytest.approx(1.0)  # lowest threshold predicts everything


def test_pr_curve_ties_by_hand():
    # scores 0.9 (pos), 0.5 x3 (pos, neg, pos), 0.2 (neg)
    scores = np.array([0.5, 0.9, 0.2, 0.5, 0.5])
    labels = np.array([1, 1, 0, 0, 1])
    c = pr_curve(scores, labels)
    assert list(c["threshold"]) == [0.9, 0.5, 0.2]
    assert list(c["tp"]) == [1, 3, 3]
    assert list(c["fp"]) == [0, 1, 2]
    np.testing.assert_allclose(c["precision"], [1.0, 0.75, 0.6])
    np.testing.assert_allclose(c["recall"], [1 / 3, 1.0, 1.0])


def test_pr_curve_empty_and_no_positives():
    c = pr_curve(np.zeros(0), np.zeros(0, int))
    assert all(c[k].size == 0 for k in ("threshold", "precision", "recall", "tp", "fp"))
    c = pr_curve(np.array([0.3, 0.1]), np.array([0, 0]))
    np.testing.assert_array_equal(c["recall"], [0.0, 0.0])
    np.testing.assert_array_equal(c["fp"], [1, 2])


# ------------------------------------------------------------------------------- average_precision


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", SEEDS)
def test_average_precision_matches_brute_force(seed, ties):
    scores, labels = random_data(seed, 120, ties=ties)
    assert average_precision(scores, labels) == pytest.approx(ref_average_precision(scores, labels), abs=1e-12)


def test_average_precision_by_hand():
    # tie-free: ranks of positives 1, 3, 4 -> precisions 1, 2/3, 3/4
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    labels = np.array([1, 0, 1, 1, 0])
    assert average_precision(scores, labels) == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)
    # tie: one positive at 0.9, then {pos, neg, pos} tied at 0.5 -> the two tied positives both
    # get the precision of the whole tie group, 3/4
    scores = np.array([0.5, 0.9, 0.2, 0.5, 0.5])
    labels = np.array([1, 1, 0, 0, 1])
    assert average_precision(scores, labels) == pytest.approx((1 + 0.75 + 0.75) / 3)
    # perfect ranking, worst ranking, no positives
    assert average_precision(np.array([0.9, 0.8, 0.1]), np.array([1, 1, 0])) == pytest.approx(1.0)
    assert average_precision(np.array([0.1, 0.2, 0.9]), np.array([1, 0, 0])) == pytest.approx(1 / 3)
    assert average_precision(np.array([0.1, 0.2]), np.array([0, 0])) == 0.0
    assert average_precision(np.zeros(0), np.zeros(0, int)) == 0.0


def test_average_precision_invariant_to_order_and_monotone_transform():
    scores, labels = random_data(11, 80)
    perm = np.random.default_rng(5).permutation(80)
    ap = average_precision(scores, labels)
    assert average_precision(scores[perm], labels[perm]) == pytest.approx(ap)
    assert average_precision(np.exp(3 * scores) - 7, labels) == pytest.approx(ap)


# ------------------------------------------------------------------------------- choose_threshold


def candidate_thresholds(scores):
    s = sorted({float(x) for x in scores})
    return s + [s[-1] + 1.0]  # every distinct prediction set, including "predict nothing"


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", SEEDS)
def test_choose_threshold_max_f1(seed, ties):
    scores, labels = random_data(seed, 150, ties=ties)
    t = choose_threshold(scores, labels)
    best = max(ref_prf(scores, labels, c)[2] for c in candidate_thresholds(scores))
    assert ref_prf(scores, labels, t)[2] == pytest.approx(best, abs=1e-12)
    assert confusion(scores, labels, threshold=t).f1 == pytest.approx(best, abs=1e-12)
    # halfway to the next lower score: strictly between two distinct scores unless it is the lowest
    s = np.unique(scores)
    if t > s.min():
        assert not np.any(np.isclose(s, t)), "threshold should sit between scores, not on one"


@pytest.mark.parametrize("target", [0.3, 0.5, 0.7, 0.9])
@pytest.mark.parametrize("seed", SEEDS)
def test_choose_threshold_target_precision(seed, target):
    scores, labels = random_data(seed, 150, p_pos=0.4)
    # make the scores informative so that high precisions are reachable
    scores = scores + 0.6 * labels
    t = choose_threshold(scores, labels, target_precision=target)
    reachable = [c for c in candidate_thresholds(scores)
                 if ref_prf(scores, labels, c)[0] >= target and ref_counts(scores, labels, c)[0] > 0]
    p, r, f = ref_prf(scores, labels, t)
    if reachable:
        assert p >= target
        assert r == pytest.approx(max(ref_prf(scores, labels, c)[1] for c in reachable))
    else:  # falls back to max F1
        best = max(ref_prf(scores, labels, c)[2] for c in candidate_thresholds(scores))
        assert f == pytest.approx(best)


def test_choose_threshold_target_unreachable_falls_back_to_max_f1():
    scores, labels = random_data(4, 100, p_pos=0.3)  # uninformative scores
    t_f1 = choose_threshold(scores, labels)
    best_p = max(ref_prf(scores, labels, c)[0] for c in candidate_thresholds(scores))
    if best_p < 1.0:
        assert choose_threshold(scores, labels, target_precision=1.0) == t_f1
    assert choose_threshold(scores, labels, target_precision=1.01) == t_f1


def test_choose_threshold_by_hand():
    scores = np.array([0.9, 0.8, 0.7, 0.4, 0.2])
    labels = np.array([1, 1, 0, 1, 0])
    # F1 at >=0.9: 0.5; >=0.8: 0.8; >=0.7: 2/3; >=0.4: 6/7; >=0.2: 0.75 -> best at 0.4, halfway to 0.2
    assert choose_threshold(scores, labels) == pytest.approx(0.3)
    # precision 1 reached down to 0.8 -> halfway to 0.7
    assert choose_threshold(scores, labels, target_precision=1.0) == pytest.approx(0.75)
    # precision >= 0.75 also at 0.4 (3/4) with full recall
    assert choose_threshold(scores, labels, target_precision=0.75) == pytest.approx(0.3)
    # best threshold is the lowest score: returned as it is
    assert choose_threshold(np.array([0.9, 0.1]), np.array([1, 1])) == pytest.approx(0.1)


def test_choose_threshold_no_positives():
    with pytest.raises(DataError, match="no vocalisation"):
        choose_threshold(np.array([0.1, 0.5, 0.9]), np.array([0, 0, 0]))
    with pytest.raises(DataError):
        choose_threshold(np.zeros(0), np.zeros(0, int))
    with pytest.raises(DataError):
        choose_threshold(np.array([0.1, 0.5]), np.array([0, 0]), target_precision=0.5)


# ------------------------------------------------------------------------------- bad input


BAD = [
    pytest.param(np.array([0.1, 0.2, 0.3]), np.array([0, 1]), "length", id="length"),
    pytest.param(np.array([0.1, 0.2, 0.3]), np.array([0, 1, 2]), "0/1", id="label-2"),
    pytest.param(np.array([0.1, 0.2, 0.3]), np.array([0, 1, -1]), "0/1", id="label-ignore"),
    pytest.param(np.array([0.1, 0.2, 0.3]), np.array([0, 1, 0.5]), "0/1", id="label-half"),
    pytest.param(np.array([0.1, np.nan, 0.3]), np.array([0, 1, 0]), "NaN", id="nan"),
    pytest.param(np.array([0.1, np.inf, 0.3]), np.array([0, 1, 0]), "NaN", id="inf"),
]


@pytest.mark.parametrize("scores, labels, words", BAD)
@pytest.mark.parametrize("fn", ["confusion", "pr_curve", "average_precision", "choose_threshold", "summary"])
def test_bad_input_raises_data_error(fn, scores, labels, words):
    call = {
        "confusion": lambda: confusion(scores, labels, threshold=0.5),
        "pr_curve": lambda: pr_curve(scores, labels),
        "average_precision": lambda: average_precision(scores, labels),
        "choose_threshold": lambda: choose_threshold(scores, labels),
        "summary": lambda: summary(scores, labels, threshold=0.5),
    }[fn]
    with pytest.raises(DataError, match=words):
        call()


# ------------------------------------------------------------------------------- summary


@pytest.mark.parametrize("points", [5, 200])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_summary_is_json_and_consistent(seed, points):
    scores, labels = random_data(seed, 90, ties=seed == 2)
    scores32 = scores.astype(np.float32)  # numpy scalars in the input must not leak into the output
    s = summary(scores32, labels, threshold=0.5, curve_points=points)
    back = json.loads(json.dumps(s))
    assert back == s
    tp, fn, fp, tn = ref_counts(scores32, labels, 0.5)
    cm = s["confusion"]
    assert (cm["tp"], cm["fn"], cm["fp"], cm["tn"]) == (tp, fn, fp, tn)
    assert s["n_windows"] == len(labels) == tp + fn + fp + tn
    assert s["n_positive"] == int(labels.sum()) == tp + fn
    assert s["average_precision"] == pytest.approx(ref_average_precision(scores32, labels))
    curve = s["pr_curve"]
    n_distinct = len(set(scores32.tolist()))
    n = len(curve["threshold"])
    assert n == min(points, n_distinct)
    assert len(curve["precision"]) == n and len(curve["recall"]) == n
    # every kept point is a true PR point, thresholds descending, ends kept
    assert all(a > b for a, b in zip(curve["threshold"], curve["threshold"][1:]))
    assert curve["threshold"][0] == float(scores32.max()) and curve["threshold"][-1] == float(scores32.min())
    for t, p, r in zip(curve["threshold"], curve["precision"], curve["recall"]):
        rp, rr, _ = ref_prf(scores32, labels, t)
        assert p == pytest.approx(rp) and r == pytest.approx(rr)
    assert all(math.isfinite(v) for k in curve for v in curve[k])


def test_summary_empty_is_json():
    s = summary(np.zeros(0), np.zeros(0, int), threshold=0.5)
    assert json.loads(json.dumps(s)) == s
    assert s["n_windows"] == 0 and s["n_positive"] == 0
    assert s["pr_curve"] == {"threshold": [], "precision": [], "recall": []}


# ------------------------------------------------------------------------------- against scikit-learn


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", SEEDS)
def test_counts_and_scores_match_scikit_learn(seed, ties):
    from sklearn import metrics as sk

    scores, labels = random_data(seed, 300, ties=ties)
    for t in (0.0, 0.3, 0.5, 0.91, 1.1):
        cm = confusion(scores, labels, threshold=t)
        pred = (scores >= t).astype(int)
        (tn, fp), (fn, tp) = sk.confusion_matrix(labels, pred, labels=[0, 1])
        assert (cm.tp, cm.fn, cm.fp, cm.tn) == (tp, fn, fp, tn)
        assert cm.precision == pytest.approx(sk.precision_score(labels, pred, zero_division=0), abs=1e-12)
        assert cm.recall == pytest.approx(sk.recall_score(labels, pred, zero_division=0), abs=1e-12)
        assert cm.f1 == pytest.approx(sk.f1_score(labels, pred, zero_division=0), abs=1e-12)
        assert cm.accuracy == pytest.approx(sk.accuracy_score(labels, pred), abs=1e-12)


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", SEEDS)
def test_pr_curve_and_average_precision_match_scikit_learn(seed, ties):
    from sklearn import metrics as sk

    scores, labels = random_data(seed, 400, ties=ties)
    c = pr_curve(scores, labels)
    p, r, t = sk.precision_recall_curve(labels, scores)  # thresholds ascending; p[i], r[i] at t[i]
    ours = {float(th): (pp, rr) for th, pp, rr in zip(c["threshold"], c["precision"], c["recall"])}
    assert len(t) > 5 and set(map(float, t)) <= set(ours)
    for th, pp, rr in zip(t, p[:-1], r[:-1]):
        assert ours[float(th)] == pytest.approx((pp, rr), abs=1e-12)
    assert average_precision(scores, labels) == pytest.approx(sk.average_precision_score(labels, scores), abs=1e-12)
