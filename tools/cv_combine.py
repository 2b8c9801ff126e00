#!/usr/bin/env python3
"""Scores the mean of several models' out-of-fold probabilities, fold by fold,
as an ensemble of them would score (llm_model_ensemble averages its members).

    tools/cv_combine.py a.csv b.csv [c.csv ...] [--threshold 0.5]

Each CSV comes from `spam_train --cv K --cv-out` (or tools/bogofilter_cv.py)
with the same data, K and seed, so every message sits in the same fold in all
of them. Nothing is fitted: the weights are equal and the threshold fixed, so
the per-fold figures are as honest as the inputs'. Prints spam_train's
`fold` lines and the `cv mean ... sd ...` line. Standard library only.
"""
import argparse
import bisect
import csv
import math
import sys

KEYS = ("accuracy", "precision", "recall", "f1", "auc")


def auc(labels, scores):
    neg = sorted(s for y, s in zip(labels, scores) if not y)
    pos = [s for y, s in zip(labels, scores) if y]
    if not pos or not neg:
        return float("nan")
    tot = 0.0
    for v in pos:
        lo, hi = bisect.bisect_left(neg, v), bisect.bisect_right(neg, v)
        tot += lo + 0.5 * (hi - lo)
    return tot / (len(pos) * len(neg))


def metrics(labels, scores, t):
    pred = [s >= t for s in scores]
    tp = sum(1 for y, p in zip(labels, pred) if y and p)
    fp = sum(1 for y, p in zip(labels, pred) if not y and p)
    fn = sum(1 for y, p in zip(labels, pred) if y and not p)
    tn = len(labels) - tp - fp - fn
    return {"accuracy": (tp + tn) / len(labels),
            "precision": tp / (tp + fp) if tp + fp else float("nan"),
            "recall": tp / (tp + fn) if tp + fn else float("nan"),
            "f1": 2 * tp / (2 * tp + fp + fn) if tp else 0.0, "auc": auc(labels, scores)}


def line(m):
    return " ".join(f"{k}={m[k]:.4f}" for k in KEYS)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("csv", nargs="+")
    ap.add_argument("--threshold", type=float, default=0.5)
    ap.add_argument("--positive", default="spam")
    a = ap.parse_args()
    runs = []
    for path in a.csv:
        rows = {(int(r["repeat"]), r["path"]): r for r in csv.DictReader(open(path, newline=""))}
        runs.append(rows)
    keys = sorted(runs[0])
    for path, rows in zip(a.csv, runs):
        if sorted(rows) != keys or any(rows[k]["fold"] != runs[0][k]["fold"] for k in keys):
            sys.exit(f"cv_combine: {path} has other messages or folds than {a.csv[0]}")
    folds = sorted({(k[0], int(runs[0][k]["fold"])) for k in keys})
    per = []
    for rep, f in folds:
        ks = [k for k in keys if k[0] == rep and int(runs[0][k]["fold"]) == f]
        labels = [runs[0][k]["label"] == a.positive for k in ks]
        scores = [sum(float(r[k]["probability"]) for r in runs) / len(runs) for k in ks]
        m = metrics(labels, scores, a.threshold)
        per.append(m)
        print(f"fold {f + 1}/{len({x for _, x in folds})} {line(m)} (scored {len(ks)})")
    mean = {k: sum(m[k] for m in per) / len(per) for k in KEYS}
    sd = {k: math.sqrt(sum((m[k] - mean[k]) ** 2 for m in per) / (len(per) - 1)) if len(per) > 1 else 0.0
          for k in KEYS}
    print(f"cv mean {line(mean)} sd {line(sd)} ({len(per)} folds, {len(runs)} models)")


if __name__ == "__main__":
    main()
