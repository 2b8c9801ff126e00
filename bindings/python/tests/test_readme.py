"""README.md's Python spam-classifier snippet runs as shown and prints what
README says it prints (labels exactly, probabilities and metrics to the
printed digits)."""
import os
import re
import subprocess
import sys

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def _snippet_and_output():
    text = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    m = re.search(r"The spam classifier from Python.*?```python\n(.*?)```\s*\nprints\s*\n\s*```\n(.*?)```",
                  text, re.S)
    assert m, "README.md: no Python spam snippet followed by a 'prints' block"
    return m.group(1), m.group(2)


def test_readme_python_snippet_prints_what_readme_shows(tmp_path):
    code, shown = _snippet_and_output()
    assert "email=True" in code  # raw e-mail in: the pipeline reads plain text by default
    # run from a folder that has the tree's data and package, so the model
    # file lands in tmp_path
    for name in ("data", "bindings"):
        os.symlink(os.path.join(REPO, name), str(tmp_path / name))
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    r = subprocess.run([sys.executable, "-c", code], cwd=str(tmp_path), env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.splitlines() == shown.splitlines(), "README shows:\n%s\nthe snippet printed:\n%s" % (
        shown, r.stdout)
    got = r.stdout.splitlines()
    assert got[1].split()[1] == "ham" and got[2].split()[1] == "spam"
