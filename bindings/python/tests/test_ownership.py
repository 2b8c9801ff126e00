"""Who owns what: the process exits cleanly whatever order the finalisers
run in, a failed ensemble takes no member, closed handles raise
ClosedError, and several threads may predict with one model."""
import os
import subprocess
import sys
import threading

import pytest

import llm
from llm import layers as L

HERE = os.path.dirname(os.path.abspath(__file__))
PKG = os.path.abspath(os.path.join(HERE, ".."))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
EMAILS = os.path.join(REPO, "tests", "data", "emails")

# issue 17's reproducer, as filed: models alive at exit, the default
# backend a module global; Python's finalisers freed the backend first
# (status 139)
ISSUE = """
import sys; sys.path.insert(0, %r)
import llm
from llm import layers as L
def f(): pass
ms = []
for s in range(2):
    m = llm.Model([L.dense(1, "sigmoid")]); m.compile(); m.fit([[0.0], [1.0]], [0, 1], epochs=1); ms.append(m)
print("ok")
"""
# more objects alive at exit: tensors, a decoder, a closed backend's models
MORE = ISSUE.replace('print("ok")', """t = llm.Tensor([1.0, 2.0])
d = llm.Model(L.gpt(16, context=8, dim=8, layers=1, heads=2)).build([8], "int32").decoder()
e = llm.Backend("cpu", threads=1)
kept = [llm.Model([L.dense(1)], backend=e), llm.Tensor([3.0], backend=e)]
e.close()
print("ok")""")


@pytest.mark.parametrize("script", [ISSUE, MORE], ids=["issue", "more"])
@pytest.mark.parametrize("flags", [[], ["-X", "dev"]], ids=["plain", "X-dev"])
def test_exit_with_live_models_is_clean(flags, script):
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    r = subprocess.run([sys.executable] + flags + ["-c", script % PKG], env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, "exit status %d\n%s" % (r.returncode, r.stderr[-3000:])
    assert r.stdout.strip() == "ok"
    assert "Fatal" not in r.stderr and "Segmentation" not in r.stderr


def test_closing_in_any_order():
    b = llm.Backend("cpu", threads=2)
    m = llm.Model([L.dense(4, "tanh"), L.dense(1, "sigmoid")], backend=b, seed=2)
    m.compile("binary_crossentropy", "adam", learning_rate=0.1)
    m.fit([[0.0, 1.0], [1.0, 0.0]], [0.0, 1.0], epochs=3, batch_size=2)
    t = m.predict_tensor([[0.0, 1.0]])
    before = t.to_list()
    b.close()
    del b
    assert m.predict([[0.0, 1.0]]) == before  # the model keeps its backend
    m.close()
    assert t.to_list() == before               # and so does the tensor
    t.close()


def _text_model(corpus, vocab, seed, pool):
    m = llm.Model([L.embedding(len(vocab), 4), pool, L.dense(1, "sigmoid")], seed=seed)
    m.build([10], "int32")
    m.set_text_pipeline(vocab, seq_len=10, email=True)
    return m


def test_failed_ensemble_takes_no_member():
    corpus = llm.TextCorpus.from_directory(EMAILS)
    vocab = llm.Vocab.from_corpus(corpus, max_tokens=300)
    good = _text_model(corpus, vocab, 1, L.global_pool("average"))
    good2 = _text_model(corpus, vocab, 2, L.lstm(3))
    bad = llm.Model([L.dense(1)])  # not built, no pipeline: cannot join
    msg = corpus.text(0)
    want, want2 = good.predict_text(msg), good2.predict_text(msg)
    with pytest.raises(llm.StateError):
        llm.Model.ensemble([good, good2, bad])
    for m in (good, good2, bad):
        assert not m.closed
    assert good.predict_text(msg) == want and good2.predict_text(msg) == want2
    assert good.members == 0
    with pytest.raises(llm.ArgumentTypeError):  # checked before anything is taken
        llm.Model.ensemble([good, "a model"])
    assert not good.closed
    # the same members then join an ensemble, which takes them
    e = llm.Model.ensemble([good, good2])
    assert good.closed and good2.closed and e.members == 2
    assert e.predict_text(msg)[0] == pytest.approx((want[0] + want2[0]) / 2, abs=1e-7)
    with pytest.raises(llm.ClosedError):
        llm.Model.ensemble([good])
    for h in (e, bad, vocab, corpus):
        h.close()


def test_closed_handles_raise_closed_error():
    t = llm.Tensor([1.0])
    t.close()
    m = llm.Model([L.dense(1)])
    m.close()
    lay = L.dense(2)
    llm.Model([lay]).close()  # the model took the layer
    for call in (lambda: t.shape, lambda: m.fit([[1.0]], [1.0]), lambda: m.predict_text("x"),
                 lambda: m.save("/tmp/x"), lambda: lay.kind, lambda: llm.Model([lay])):
        with pytest.raises(llm.ClosedError) as e:
            call()
        assert isinstance(e.value, llm.StateError) and isinstance(e.value, ValueError)
        assert "closed" in str(e.value)


def test_threads_predict_with_one_model():
    # include/llm/model.h, Threads: predict and predict_text may run at once
    # on one model; each answer bit-equal to the same call on one thread
    corpus = llm.TextCorpus.from_directory(EMAILS)
    vocab = llm.Vocab.from_corpus(corpus, max_tokens=300)
    m = llm.Model([L.transformer_embedding(len(vocab), 16, 8), L.transformer_block(2, causal=False),
                   L.layernorm(), L.global_pool(), L.dense(1, "sigmoid")], seed=4)
    m.set_text_pipeline(vocab, seq_len=16, email=True)   # built by the first calls
    twin = llm.Model([L.transformer_embedding(len(vocab), 16, 8), L.transformer_block(2, causal=False),
                      L.layernorm(), L.global_pool(), L.dense(1, "sigmoid")], seed=4)
    twin.set_text_pipeline(vocab, seq_len=16, email=True)
    texts = [corpus.text(i) for i in range(len(corpus))]
    rows = [vocab.vectorize(t, seq_len=16) for t in texts[:5]]
    want = [twin.predict_text(t) for t in texts]
    want_rows = twin.predict(rows)
    got, errors = {}, []

    def work(k):
        try:
            got[k] = ([m.predict_text(t) for t in texts], m.predict(rows))
        except BaseException as e:  # reported below
            errors.append(e)
    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    assert len(set(p[0] for p in want)) > 1  # the answers differ, so equality means something
    for k in range(4):
        assert got[k] == (want, want_rows)
    for h in (m, twin, vocab, corpus):
        h.close()
