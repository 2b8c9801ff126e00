"""Metrics for the cross-validation tools (tools/cv_combine.py,
tools/bogofilter_cv.py), computed as libllm's llm_metrics and
llm_metrics_mean_sd compute them, so their lines compare with spam_train's.
Standard library only."""
import bisect
import math

KEYS = ("accuracy", "precision", "recall", "f1", "auc")


def auc(labels, scores):
    """ROC AUC, Mann-Whitney with ties counted 1/2; NAN without both classes."""
    neg = sorted(s for y, s in zip(labels, scores) if not y)
    pos = [s for y, s in zip(labels, scores) if y]
    if not pos or not neg:
        return float("nan")
    tot = 0.0
    for v in pos:
        lo, hi = bisect.bisect_left(neg, v), bisect.bisect_right(neg, v)
        tot += lo + 0.5 * (hi - lo)
    return tot / (len(pos) * len(neg))


def metrics(labels, pred, scores):
    """labels and pred: booleans (positive or not); scores for the AUC."""
    tp = sum(1 for y, p in zip(labels, pred) if y and p)
    fp = sum(1 for y, p in zip(labels, pred) if not y and p)
    fn = sum(1 for y, p in zip(labels, pred) if y and not p)
    tn = len(labels) - tp - fp - fn
    return {"accuracy": (tp + tn) / len(labels),
            "precision": tp / (tp + fp) if tp + fp else float("nan"),
            "recall": tp / (tp + fn) if tp + fn else float("nan"),
            "f1": 2 * tp / (2 * tp + fp + fn) if tp else 0.0,
            "auc": auc(labels, scores)}


def line(m):
    return " ".join(f"{k}={m[k]:.4f}" for k in KEYS)


def mean_sd(values):
    """Mean and sample sd, as llm_metrics_mean_sd: NAN in, NAN out."""
    if any(math.isnan(x) for x in values):
        return float("nan"), float("nan")
    m = sum(values) / len(values)
    return m, math.sqrt(sum((x - m) ** 2 for x in values) / (len(values) - 1)) if len(values) > 1 else 0.0


def summary(per_fold):
    """'mean <line> sd <line>' over a list of metrics dicts."""
    both = {k: mean_sd([m[k] for m in per_fold]) for k in KEYS}
    return f"mean {line({k: v[0] for k, v in both.items()})} sd {line({k: v[1] for k, v in both.items()})}"
