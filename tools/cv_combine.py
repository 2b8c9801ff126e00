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
import csv
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cvmetrics import line, metrics, summary  # noqa: E402

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
        m = metrics(labels, [x >= a.threshold for x in scores], scores)
        per.append(m)
        print(f"fold {f + 1}/{len({x for _, x in folds})} {line(m)} (scored {len(ks)})")
    print(f"cv {summary(per)} ({len(per)} folds, {len(runs)} models)")


if __name__ == "__main__":
    main()
