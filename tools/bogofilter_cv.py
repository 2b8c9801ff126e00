#!/usr/bin/env python3
"""bogofilter under spam_train's cross-validation folds, so that the two
compare like with like.

    spam_train --data DIR --cv 5 --cv-out folds.csv ...   # any configuration
    tools/bogofilter_cv.py folds.csv [--out bogofilter_oof.csv]

folds.csv (repeat,fold,path,label,probability) says which fold every message
was scored in; this trains a fresh bogofilter 1.2 (Debian's `bogofilter`,
built-in defaults: -c /dev/null) on the other folds' messages and scores the
fold's, for every fold of every repeat. The headline metrics call a message
spam when bogofilter's score is >= 0.5 (the threshold libllm's models use);
a second line counts bogofilter's own three-state answer (Unsure as ham, as
its default cutoffs 0.45/0.99 would file it). Prints one line per fold and
`cv mean ... sd ...` in spam_train's format. Python standard library only.
"""
import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cvmetrics import line, metrics, summary  # noqa: E402


def run_bogofilter(db, flag, paths):
    """Registers (-s/-n) or scores (-T) the messages named on stdin (-b)."""
    cmd = ["bogofilter", "-d", db, "-c", "/dev/null", flag, "-b"]
    res = subprocess.run(cmd, input="".join(p + "\n" for p in paths), capture_output=True, text=True)
    # scoring exits 0 (spam), 1 (ham) or 2 (unsure) for the last message; 3 is an error
    if res.returncode not in (0, 1, 2) or (flag != "-T" and res.returncode != 0):
        sys.exit(f"bogofilter_cv: {' '.join(cmd)} failed ({res.returncode}): {res.stderr.strip()}")
    return res.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folds", help="spam_train --cv-out CSV: repeat,fold,path,label,probability")
    ap.add_argument("--positive", default="spam", help="the positive class's label [spam]")
    ap.add_argument("--out", help="write bogofilter's out-of-fold scores here (same columns)")
    a = ap.parse_args()
    rows = list(csv.DictReader(open(a.folds, newline="")))
    if not rows or not {"repeat", "fold", "path", "label"} <= set(rows[0]):
        sys.exit(f"bogofilter_cv: {a.folds} is not a spam_train --cv-out file")
    for r in rows:
        if not os.path.isfile(r["path"]):
            sys.exit(f"bogofilter_cv: {r['path']} is missing (run from the folder spam_train ran in)")
    runs = sorted({(int(r["repeat"]), int(r["fold"])) for r in rows})
    folds = max(k for _, k in runs) + 1
    per, per3, out = [], [], []
    t_all = time.time()
    for rep, k in runs:
        t0 = time.time()
        part = [r for r in rows if int(r["repeat"]) == rep]
        train = [r for r in part if int(r["fold"]) != k]
        test = [r for r in part if int(r["fold"]) == k]
        with tempfile.TemporaryDirectory() as db:
            run_bogofilter(db, "-s", [r["path"] for r in train if r["label"] == a.positive])
            run_bogofilter(db, "-n", [r["path"] for r in train if r["label"] != a.positive])
            answer = {}
            for ln in run_bogofilter(db, "-T", [r["path"] for r in test]).splitlines():
                path, verdict, score = ln.rsplit(" ", 2)  # -T -b: "<file> <S|H|U> <score>"
                answer[path] = (verdict, float(score))
        labels = [r["label"] == a.positive for r in test]
        scores = [answer[r["path"]][1] for r in test]
        m = metrics(labels, [s >= 0.5 for s in scores], scores)
        m3 = metrics(labels, [answer[r["path"]][0] == "S" for r in test], scores)
        per.append(m)
        per3.append(m3)
        out += [(rep, k, r["path"], r["label"], s) for r, s in zip(test, scores)]
        head = f"repeat {rep + 1} " if len({x for x, _ in runs}) > 1 else ""
        print(f"{head}fold {k + 1}/{folds} {line(m)} (train {len(train)}, scored {len(test)}, "
              f"{time.time() - t0:.1f}s)", flush=True)

    print(f"three-state (Unsure as ham) {summary(per3)}")
    print(f"cv {summary(per)} ({len(runs)} folds, {time.time() - t_all:.1f}s)")
    if a.out:
        with open(a.out, "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["repeat", "fold", "path", "label", "probability"])
            w.writerows(out)


if __name__ == "__main__":
    main()
