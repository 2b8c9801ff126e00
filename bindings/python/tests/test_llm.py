"""pytest suite of the Python binding: `make pytest`, or
/usr/bin/python3 -m pytest bindings/python/tests -q (with LIBLLM_PATH set or
build/lib/libllm.so.1 built)."""
import math
import os
import random

import pytest

import llm
from llm import layers as L

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
EMAILS = os.path.join(REPO, "tests", "data", "emails")

try:
    import numpy as np
except ImportError:
    np = None
needs_numpy = pytest.mark.skipif(np is None, reason="numpy not installed (python3-numpy)")


@pytest.fixture(scope="module")
def cpu():
    with llm.Backend("cpu", threads=2) as b:
        yield b


def xor_model(cpu):
    m = llm.Model([L.dense(8, "tanh"), L.dense(1, "sigmoid")], backend=cpu, seed=3)
    m.compile("binary_crossentropy", "adam", learning_rate=0.05)
    return m


XOR_X = [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]
XOR_Y = [0.0, 1.0, 1.0, 0.0]


def contains5_data(n, seq=8, seed=0):
    rng = random.Random(seed)
    xs, ys = [], []
    for i in range(n):
        row = [rng.randrange(2, 10) for _ in range(seq)]
        if i % 2:
            row[rng.randrange(seq)] = 5
        else:
            row = [t if t != 5 else 6 for t in row]
        xs.append(row)
        ys.append(float(5 in row))
    return xs, ys


def test_version():
    # plain values, one style: version (str), version_number (int), library_path (str)
    n = llm.version_number
    assert isinstance(llm.version, str) and isinstance(n, int) and isinstance(llm.library_path, str)
    assert llm.version == llm.__version__ == "%d.%d.%d" % (n // 10000, n // 100 % 100, n % 100)
    assert os.path.exists(llm.library_path)
    # 1.2's calls still work
    assert llm.version() == llm.version and llm.version_number() == n


def test_backend(cpu):
    assert cpu.threads == 2
    assert cpu.describe().startswith("cpu threads=2")
    assert llm.Backend.is_available("cpu")
    with pytest.raises(ValueError):
        llm.Backend("tpu")


def test_tensor_lists_roundtrip(cpu):
    t = llm.Tensor([[1.5, 2.0, -3.25], [4.0, 5.0, 6.0]], backend=cpu)
    assert t.shape == (2, 3) and t.dtype == "float32" and t.numel == 6
    assert t.to_list() == [[1.5, 2.0, -3.25], [4.0, 5.0, 6.0]]
    i = llm.Tensor([[1, 2], [3, 4]], backend=cpu)
    assert i.dtype == "int32" and i.to_list() == [[1, 2], [3, 4]]
    i.reshape(4)
    assert i.shape == (4,) and i.to_list() == [1, 2, 3, 4]
    z = llm.Tensor.zeros([2, 2], backend=cpu).fill(2.5)
    assert z.to_list() == [[2.5, 2.5], [2.5, 2.5]]
    z.copy_from([[1.0, 2.0], [3.0, 4.0]])
    assert z.to_list() == [[1.0, 2.0], [3.0, 4.0]]
    for x in (t, i, z):
        x.close()
        x.close()  # idempotent
    with pytest.raises(ValueError):
        t.shape


@needs_numpy
def test_tensor_numpy_roundtrip(cpu):
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 7
    with llm.Tensor(a, backend=cpu) as t:
        assert t.shape == (2, 3, 4) and t.dtype == "float32"
        np.testing.assert_array_equal(t.to_numpy(), a)
        np.testing.assert_array_equal(np.asarray(t), a)
    b = np.arange(6, dtype=np.int64).reshape(3, 2)
    with llm.Tensor(b, backend=cpu) as t:
        assert t.dtype == "int32"
        np.testing.assert_array_equal(t.to_numpy(), b)
    # a non-contiguous view is copied correctly
    with llm.Tensor(a[:, 1, ::2], backend=cpu) as t:
        np.testing.assert_array_equal(t.to_numpy(), a[:, 1, ::2])


def test_tensor_errors(cpu):
    with pytest.raises(llm.InvalidArgument) as e:
        llm.Tensor.zeros([2, 0], backend=cpu)
    assert e.value.status == -1 and "shape" in str(e.value)
    t = llm.Tensor([1.0, 2.0, 3.0, 4.0], backend=cpu)
    with pytest.raises(llm.LLMError) as e:
        t.reshape(3)
    assert e.value.message
    with pytest.raises(ValueError):
        llm.Tensor([[1, 2], [3]], backend=cpu)  # ragged
    t.close()


def test_xor_train_save_load_predict(cpu, tmp_path):
    m = xor_model(cpu)
    hist = m.fit(XOR_X, XOR_Y, epochs=300, batch_size=4)
    assert hist["epochs"] == 300 and len(hist["loss"]) == 300
    assert hist["loss"][-1] < hist["loss"][0]
    metrics = m.evaluate(XOR_X, XOR_Y)
    assert metrics["accuracy"] == 1.0 and metrics["count"] == 4
    pred = m.predict(XOR_X)
    assert [round(p[0]) for p in pred] == [0, 1, 1, 0]
    assert "dense" in m.summary() and m.param_count == 2 * 8 + 8 + 8 + 1
    m.set_metadata("class_names", "no,yes")
    path = tmp_path / "xor.safetensors"
    m.save(path)
    with llm.Model.load(path, backend=cpu) as m2:
        assert m2.predict(XOR_X) == pred
        assert m2.get_metadata("class_names") == "no,yes"
        assert m2.get_metadata("absent", None) is None
        with pytest.raises(llm.InvalidArgument):
            m2.get_metadata("absent")
    m.close()


@needs_numpy
def test_contains5_lstm(cpu, tmp_path):
    xs, ys = contains5_data(256)
    x, y = np.array(xs, dtype=np.int32), np.array(ys, dtype=np.float32)
    m = llm.Model(backend=cpu, seed=7)
    m.add(L.embedding(10, 8)).add(L.lstm(16)).add(L.dense(1, "sigmoid"))
    m.compile("binary_crossentropy", llm.Optimizer("adam", learning_rate=0.02))
    seen = []
    hist = m.fit(x, y, epochs=12, batch_size=32, validation_split=0.25,
                 on_epoch=lambda p: seen.append(p["epoch"]))
    assert seen == list(range(12))
    assert "val_loss" in hist and len(hist["val_accuracy"]) == 12
    tx, ty = contains5_data(128, seed=99)
    metrics = m.evaluate(np.array(tx, dtype=np.int32), np.array(ty, dtype=np.float32))
    assert metrics["accuracy"] >= 0.9, metrics
    assert {"precision", "recall", "f1", "auc", "loss"} <= set(metrics)
    pred = m.predict(np.array(tx, dtype=np.int32))
    assert pred.shape == (128, 1)
    path = str(tmp_path / "c5.safetensors")
    m.save(path)
    with llm.Model.load(path, backend=cpu) as m2:
        np.testing.assert_array_equal(m2.predict(np.array(tx, dtype=np.int32)), pred)
    m.close()


def test_callback_stops_and_exceptions_propagate(cpu):
    m = xor_model(cpu)
    hist = m.fit(XOR_X, XOR_Y, epochs=50, batch_size=4, on_epoch=lambda p: p["epoch"] == 2)
    assert hist["epochs"] == 3 and hist["stopped_early"]

    def boom(p):
        raise KeyError("from the callback")
    with pytest.raises(KeyError):
        m.fit(XOR_X, XOR_Y, epochs=5, batch_size=4, on_batch=boom)
    m.close()


def test_error_mapping(cpu, tmp_path):
    m = llm.Model([L.dense(4), L.dense(1, "sigmoid")], backend=cpu)
    with pytest.raises(llm.StateError) as e:  # fit before compile
        m.fit(XOR_X, XOR_Y, epochs=1)
    assert e.value.status == -8 and "compile" in e.value.message
    with pytest.raises(llm.StateError):  # summary before build
        m.summary()
    m.compile("binary_crossentropy", "sgd", learning_rate=0.1)
    m.fit(XOR_X, XOR_Y, epochs=1)  # builds for 2 features
    with pytest.raises(llm.ShapeError) as e:  # 3 features into a model built for 2
        m.predict([[1.0, 2.0, 3.0]])
    assert e.value.status == -3 and e.value.message
    with pytest.raises(llm.StateError):  # adding after build
        m.add(L.dense(1))
    with pytest.raises(llm.ShapeError):  # x and y disagree in N
        m.fit(XOR_X, XOR_Y[:3], epochs=1)
    with pytest.raises(llm.NumericError):
        m.fit([[float("nan"), 0.0]], [1.0], epochs=1)
    m.close()

    with pytest.raises(llm.IOError_) as e:
        llm.Model.load(tmp_path / "missing.safetensors", backend=cpu)
    assert isinstance(e.value, OSError) and "missing.safetensors" in str(e.value)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(llm.FormatError) as e:
        llm.Model.load(bad, backend=cpu)
    assert e.value.status == -7 and e.value.message
    with pytest.raises(llm.InvalidArgument) as e:  # a bad layer raises at construction
        L.dense(0)
    assert e.value.message
    with pytest.raises(llm.InvalidArgument):
        L.dropout(1.5)
    with pytest.raises(llm.InvalidArgument):
        llm.Optimizer("adam", learning_rate=-1.0)
    with pytest.raises(llm.IOError_):
        llm.TextCorpus.from_directory(tmp_path / "nope")
    assert issubclass(llm.ShapeError, llm.LLMError) and issubclass(llm.ShapeError, ValueError)


def test_layers_construct_and_ownership(cpu):
    m = llm.Model(backend=cpu)
    layer = L.bidirectional(L.gru(4, return_sequences=True))
    assert layer.kind
    for lay in (L.embedding(20, 4), layer, L.layernorm(), L.dropout(0.1),
                L.global_pool("max"), L.activation("relu"), L.dense(1, "sigmoid")):
        m.add(lay)
        assert lay.closed  # the model took it
    m.build([6], "int32")
    assert "bidirectional" in m.summary().lower() or "gru" in m.summary().lower()
    # a refused layer is still taken: no double free
    lone = L.lstm(3)
    with pytest.raises(llm.StateError):
        m.add(lone)
    assert lone.closed
    m.close()
    unused = L.dense(3)
    unused.close()


def test_backend_close_leaves_children_usable():
    # tensors and models hold their backend (in C too): closing the Backend
    # first gives up its handle only
    b = llm.Backend("cpu", threads=1)
    t = llm.Tensor([1.0, 2.0], backend=b)
    m = llm.Model([L.dense(1, "sigmoid")], backend=b, seed=1)
    b.close()
    assert b.closed and not t.closed and not m.closed
    assert t.to_list() == [1.0, 2.0]
    m.compile("binary_crossentropy", "sgd", learning_rate=0.1)
    m.fit([[0.0], [1.0]], [0.0, 1.0], epochs=2, batch_size=2)
    assert len(m.predict([[0.5]])) == 1
    with pytest.raises(llm.ClosedError):
        b.threads
    t.close()
    m.close()


def test_spam_pipeline(cpu, tmp_path):
    corpus = llm.TextCorpus.from_directory(EMAILS)
    assert corpus.class_names == ["ham", "spam"]
    assert len(corpus) == corpus.class_count(0) + corpus.class_count(1)
    train, val = corpus.split(0.25, seed=1)
    assert len(train) + len(val) == len(corpus)
    vocab = llm.Vocab.from_corpus(train, max_tokens=2000)
    assert len(vocab) > 2 and vocab.token(1) == "[UNK]"
    assert vocab.lookup("zzzz-not-a-token") == llm.Vocab.OOV
    ids = vocab.vectorize("Subject: hello", seq_len=8)
    assert len(ids) == 8 and ids[:6] == [0] * 6
    seq = 64
    with train.to_dataset(vocab, seq_len=seq) as tr, \
            llm.Dataset.from_corpus(val, vocab, seq_len=seq) as va:
        assert len(tr) == len(train)
        m = llm.Model([L.embedding(len(vocab), 16), L.lstm(16), L.dense(1, "sigmoid")],
                      backend=cpu, seed=1)
        m.set_text_pipeline(vocab, seq_len=seq, email=True)
        m.set_metadata("class_names", ",".join(corpus.class_names))
        m.compile("binary_crossentropy", "adam", learning_rate=0.01)
        hist = m.fit(tr, epochs=4, batch_size=8, validation_data=va)
        assert len(hist["loss"]) == 4 and "val_loss" in hist
        metrics = m.evaluate(va)
        assert 0.0 <= metrics["accuracy"] <= 1.0
    msg = corpus.text(0)
    p = m.predict_text(msg)
    assert len(p) == 1 and 0.0 <= p[0] <= 1.0
    path = tmp_path / "spam.safetensors"
    m.save(path)
    with llm.Model.load(path, backend=cpu) as m2:
        assert m2.predict_text(msg) == p
        assert m2.get_metadata("class_names") == "ham,spam"
    m.close()
    for h in (corpus, train, val, vocab):
        h.close()


def test_export_onnx(cpu, tmp_path):
    m = llm.Model([L.embedding(10, 8), L.gru(6), L.dense(1, "sigmoid")], backend=cpu, seed=3)
    m.build([12], dtype="int32")
    m.set_metadata("class_names", "no5,has5")
    path = tmp_path / "c5.onnx"
    m.export_onnx(path)
    onnx = pytest.importorskip("onnx")  # Debian's python3-onnx, for reading it back
    mp = onnx.load(str(path))
    onnx.checker.check_model(mp)
    assert [i.name for i in mp.graph.input] == ["ids"]
    assert [o.name for o in mp.graph.output] == ["probabilities"]
    assert any(n.op_type == "GRU" for n in mp.graph.node)
    meta = {e.key: e.value for e in mp.metadata_props}
    assert meta["class_names"] == "no5,has5" and meta["seq_len"] == "12"
    m.export_onnx(path, opset=21, batch=4)
    assert onnx.load(str(path)).opset_import[0].version == 21
    with pytest.raises(llm.InvalidArgument):
        m.export_onnx(path, opset=16)
    m.close()


def test_ensemble(cpu, tmp_path):
    corpus = llm.TextCorpus.from_directory(EMAILS)
    vocab = llm.Vocab.from_corpus(corpus, max_tokens=500)
    a = llm.Model([L.embedding(len(vocab), 4), L.lstm(3), L.dense(1, "sigmoid")], backend=cpu, seed=1)
    a.build([12], "int32").set_text_pipeline(vocab, seq_len=12)
    b = llm.Model([L.embedding(len(vocab), 4), L.global_pool("average"), L.dense(1, "sigmoid")],
                  backend=cpu, seed=2)
    b.build([40], "int32").set_text_pipeline(vocab, seq_len=40)
    msg = corpus.text(0)
    pa, pb = a.predict_text(msg)[0], b.predict_text(msg)[0]
    assert pa != pb and a.members == 0
    e = llm.Model.ensemble([a, b], backend=cpu)
    assert a.closed and b.closed and e.members == 2
    assert e.predict_text(msg)[0] == pytest.approx((pa + pb) / 2, abs=1e-7)
    with pytest.raises(llm.StateError):
        e.compile("binary_crossentropy", "adam")
    path = tmp_path / "ensemble.safetensors"
    e.save(path)
    with llm.Model.load(path, backend=cpu) as e2:
        assert e2.members == 2 and e2.predict_text(msg) == e.predict_text(msg)
    # a member that cannot join is not taken: the caller still owns it
    c = llm.Model([L.dense(1)], backend=cpu)
    with pytest.raises(llm.StateError):
        llm.Model.ensemble([c], backend=cpu)
    assert not c.closed
    c.close()
    e.close()
    for h in (corpus, vocab):
        h.close()


def test_text_helpers(cpu):
    assert llm.tokenize("Hello, World 42!") == ["hello", "world", "42"]
    assert llm.tokenize("Call 555", fold_numbers=True) == ["call", "<num>"]
    c = llm.TextCorpus(["neg", "pos"])
    c.add("bad awful", 0)
    c.add("good great", 1)
    assert len(c) == 2 and c.label(1) == 1 and c.text(0) == b"bad awful"
    c.close()
    m = llm.Model([L.dense(1)], backend=cpu)
    with pytest.raises(llm.StateError):
        m.predict_text("no pipeline")
    m.close()


def test_vectorize_features(cpu, tmp_path):
    corpus = llm.TextCorpus(["ham", "spam"])
    corpus.add("a b c", 0)
    corpus.add("c b a", 1)
    vocab = llm.Vocab.from_corpus(corpus)
    a, b, c = (vocab.lookup(t) for t in "abc")
    text = "a b zzz a c b"
    assert vocab.vectorize(text, seq_len=6, padding="post") == [a, b, llm.Vocab.OOV, a, c, b]
    assert vocab.vectorize(text, seq_len=6, padding="post", skip_unknown=True, unique=True) == [a, b, c, 0, 0, 0]
    assert vocab.vectorize(text, seq_len=2, truncation="pre", unique=True, skip_unknown=True) == [b, c]
    assert vocab.vectorize(text, seq_len=4, unique=True, skip_unknown=True, reverse=True) == [0, c, b, a]
    with pytest.raises(llm.ArgumentTypeError):
        vocab.vectorize(text, seq_len=6, no_such_feature=1)
    # "<a>" has the 3-grams "<a>" only; "<zzz>" has "<zz", "zzz" and "zz>" (the OOV word's too)
    sub = vocab.vectorize("a zzz", seq_len=7, padding="post", char_ngram_buckets=100, char_ngram_max=3)
    assert sub[0] == a and sub[2] == llm.Vocab.OOV and sub[-1] == 0
    assert all(len(vocab) <= i < len(vocab) + 100 for i in sub[1:2] + sub[3:6])
    with pytest.raises(llm.InvalidArgument):
        vocab.vectorize(text, seq_len=6, char_ngram_buckets=100, char_ngram_min=4, char_ngram_max=3)
    m = llm.Model([L.embedding(len(vocab), 4), L.lstm(8), L.dense(1, "sigmoid")], backend=cpu, seed=3)
    m.set_text_pipeline(vocab, seq_len=6, skip_unknown=True, unique=True, reverse=True)
    p = m.predict_text(text)[0]
    path = str(tmp_path / "features.safetensors")
    m.save(path)
    with llm.Model.load(path, backend=cpu) as back:
        assert back.predict_text(text)[0] == p
        back.set_text_pipeline(vocab, seq_len=6)
        assert back.predict_text(text)[0] != p
    m.close()
