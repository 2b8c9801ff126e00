"""What crosses into C: integers and floats that C cannot hold raise
InvalidArgument instead of wrapping; every failure is an llm.LLMError; texts
and paths take only what they can mean."""
import os

import pytest

import llm
from llm import layers as L

try:
    import numpy as np
except ImportError:
    np = None
needs_numpy = pytest.mark.skipif(np is None, reason="numpy not installed (python3-numpy)")

XOR_X = [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]
XOR_Y = [0.0, 1.0, 1.0, 0.0]


def xor_model():
    m = llm.Model([L.dense(4, "tanh"), L.dense(1, "sigmoid")], seed=3)
    return m.compile("binary_crossentropy", "adam", learning_rate=0.05)


@needs_numpy
def test_numpy_ids_that_int32_cannot_hold_are_refused():
    with pytest.raises(llm.InvalidArgument) as e:
        llm.Tensor(np.array([2 ** 32 + 3, 1], dtype=np.int64))
    assert "4294967299" in str(e.value)
    with pytest.raises(llm.InvalidArgument):
        llm.Tensor(np.array([-2 ** 31 - 1], dtype=np.int64))
    with pytest.raises(llm.InvalidArgument):
        llm.Tensor(np.array([2 ** 63], dtype=np.uint64))
    for bad in ([2.0 ** 40 + 7, 1.0], [1.5, 2.0], [float("nan")], [float("inf")]):
        with pytest.raises(llm.InvalidArgument):
            llm.Tensor(np.array(bad), dtype="int32")
    with pytest.raises(llm.InvalidArgument):  # float64 beyond float32 would be inf
        llm.Tensor(np.array([1e39]))
    with pytest.raises(llm.ArgumentTypeError):
        llm.Tensor(np.array(["a", "b"]))
    # what int32 and float32 hold passes, exactly
    ok = np.array([2 ** 31 - 1, -2 ** 31, 0], dtype=np.int64)
    with llm.Tensor(ok) as t:
        assert t.to_list() == ok.tolist()
    with llm.Tensor(np.array([3.0, -7.0]), dtype="int32") as t:
        assert t.to_list() == [3, -7]
    with llm.Tensor(np.array([np.nan, np.inf, 1e38])) as t:  # NaN/inf are values, not overflow
        v = t.to_list()
        assert v[0] != v[0] and v[1] == float("inf")


@needs_numpy
def test_token_ids_do_not_wrap_in_training():
    x = np.array([[1, 2, 3], [4, 5, 2 ** 32 + 3]], dtype=np.int64)
    m = llm.Model([L.embedding(10, 4), L.global_pool(), L.dense(1, "sigmoid")])
    m.compile("binary_crossentropy", "adam")
    with pytest.raises(llm.InvalidArgument) as e:
        m.fit(x, np.array([0.0, 1.0]), epochs=1)
    assert "4294967299" in str(e.value)
    m.close()


def test_list_values_are_checked():
    with pytest.raises(llm.InvalidArgument):
        llm.Tensor([2 ** 40, 1])
    with pytest.raises(llm.InvalidArgument):
        llm.Tensor([1.5, float("nan")], dtype="int32")
    with pytest.raises(llm.InvalidArgument):
        llm.Tensor([1e300])
    with pytest.raises(llm.ArgumentTypeError):
        llm.Tensor([[1, "2"]])
    with pytest.raises(llm.ShapeError):
        llm.Tensor([[1, 2], 3])
    with pytest.raises(llm.ArgumentTypeError):
        llm.Tensor("12")
    with llm.Tensor([4.0, -2.0], dtype="int32") as t:  # integral floats are integers
        assert t.to_list() == [4, -2]


def test_integer_options_do_not_wrap():
    m = xor_model()
    for kw in ({"batch_size": 2 ** 32 + 8}, {"batch_size": 2 ** 40}, {"epochs": 2 ** 31},
               {"seed": -1}, {"seed": 2 ** 64}, {"patience": 2 ** 33}, {"initial_epoch": -2 ** 31 - 1}):
        with pytest.raises(llm.InvalidArgument) as e:
            m.fit(XOR_X, XOR_Y, **kw)
        name = next(iter(kw))
        assert name in str(e.value) and "does not fit" in str(e.value), str(e.value)
    with pytest.raises(llm.InvalidArgument) as e:  # the library's own range check still speaks
        m.fit(XOR_X, XOR_Y, batch_size=0)
    assert "batch_size" in str(e.value)
    for kw in ({"batch_size": 2.0}, {"epochs": "3"}, {"seed": None}):
        with pytest.raises(llm.ArgumentTypeError):
            m.fit(XOR_X, XOR_Y, **kw)
    with pytest.raises(llm.InvalidArgument):
        m.fit(XOR_X, XOR_Y, validation_split=1e39)
    with pytest.raises(llm.InvalidArgument):
        m.evaluate(XOR_X, XOR_Y, batch_size=2 ** 31)
    with pytest.raises(llm.InvalidArgument):
        m.set_seed(-5)
    with pytest.raises(llm.InvalidArgument):
        llm.Tensor.zeros([2 ** 63, 1])
    with pytest.raises(llm.InvalidArgument):
        m.build([2 ** 64], "int32")
    with pytest.raises(llm.InvalidArgument):
        L.dense(2 ** 63)
    with pytest.raises(llm.InvalidArgument):
        L.lstm(-2 ** 64)
    with pytest.raises(llm.InvalidArgument):
        L.transformer_embedding(2 ** 64, 8, 8)
    with pytest.raises(llm.InvalidArgument):
        llm.Optimizer("adam", learning_rate=1e39)
    with pytest.raises(llm.InvalidArgument):
        llm.Optimizer("adam", warmup_steps=2 ** 63)
    with pytest.raises(llm.InvalidArgument):
        llm.Backend("cpu", threads=2 ** 32 + 1)
    corpus = llm.TextCorpus(["a", "b"])
    with pytest.raises(llm.InvalidArgument):
        corpus.add("text", 2 ** 32 + 1)
    with pytest.raises(llm.InvalidArgument):
        corpus.text(2 ** 64)
    corpus.add("some words here", 1)
    corpus.add("other words", 0)
    vocab = llm.Vocab.from_corpus(corpus)
    with pytest.raises(llm.InvalidArgument):
        vocab.vectorize("x", seq_len=2 ** 31)
    with pytest.raises(llm.InvalidArgument):
        vocab.token(2 ** 32)
    with pytest.raises(llm.InvalidArgument):
        llm.Vocab.from_corpus(corpus, max_tokens=2 ** 31)
    with pytest.raises(llm.InvalidArgument):
        llm.BPE.train("abc abc", vocab_size=2 ** 32 + 300)
    with pytest.raises(llm.InvalidArgument):
        llm.BPE.byte_level().decode([2 ** 32 + 65])
    gpt = llm.Model(L.gpt(16, context=8, dim=8, layers=1, heads=2)).build([8], "int32")
    for kw in ({"max_tokens": 2 ** 63}, {"top_k": 2 ** 31}, {"seed": -1}, {"temperature": 1e40}):
        with pytest.raises(llm.InvalidArgument):
            gpt.generate([1, 2], **kw)
    with pytest.raises(llm.InvalidArgument):
        gpt.generate([1, 2 ** 32 + 2])
    for h in (m, corpus, vocab, gpt):
        h.close()


def test_every_failure_is_an_llm_error(tmp_path):
    m = xor_model()
    cases = [
        lambda: m.compile("no_such_loss"),
        lambda: m.compile("mse", "adam", metrics=("f1",)),
        lambda: m.compile("mse", llm.Optimizer("sgd"), learning_rate=0.1),
        lambda: m.fit(XOR_X, XOR_Y, early_stopping="f1"),
        lambda: m.fit(XOR_X, XOR_Y, validation_data=[1, 2, 3]),
        lambda: m.fit(XOR_X, XOR_Y, on_epoch="not callable"),
        lambda: m.add("dense"),
        lambda: m.add(None),
        lambda: llm.Model(L.dense(1)),
        lambda: llm.Model(backend="cpu"),
        lambda: llm.Optimizer("rmsprop"),
        lambda: llm.Optimizer("adam", momentum_x=1),
        lambda: llm.Optimizer("adam", schedule="linear"),
        lambda: llm.Backend("tpu"),
        lambda: llm.Backend.is_available("tpu"),
        lambda: L.dense(1, "swish"),
        lambda: L.global_pool("median"),
        lambda: L.transformer_embedding(10, positional="rotary"),
        lambda: L.bidirectional("lstm"),
        lambda: llm.Tensor([1.0], dtype="float64"),
        lambda: llm.Tensor.zeros([2], dtype="complex"),
        lambda: llm.Dataset([[1.0]], None),
        lambda: llm.TextCorpus.from_directory(tmp_path, format="mbox"),
        lambda: llm.TextCorpus("ham,spam"),
        lambda: llm.Vocab.from_corpus(llm.TextCorpus(["a"]), lowercase_x=True),
        lambda: llm.tokenize(42),
        lambda: llm.Dataset.from_corpus(llm.TextCorpus(["a"]), "vocab"),
        lambda: m.set_text_pipeline("vocab"),
        lambda: m.set_text_pipeline(None, email="yes"),
        lambda: m.set_metadata("k\x00", "v"),
        lambda: m.set_metadata(3, "v"),
        lambda: m.get_metadata("absent"),
        lambda: llm.Decoder("model"),
        lambda: llm.next_token_windows("text", 4),
        lambda: llm.next_token_windows([1, 2], 4),
        lambda: llm.sample_token(["a"]),
        lambda: m.train_on_batch(XOR_X, "y"),
    ]
    for i, call in enumerate(cases):
        with pytest.raises(llm.LLMError) as e:
            call()
        assert e.value.message, "case %d gave no message" % i
        assert e.value.status is not None and e.value.status < 0
    # and still the built-in classes a Python caller expects
    with pytest.raises(ValueError):
        m.compile("no_such_loss")
    with pytest.raises(TypeError):
        m.add("dense")
    with pytest.raises(ValueError):
        m.fit(XOR_X, XOR_Y, early_stopping="f1")
    m.close()


def test_predict_text_takes_text_only():
    corpus = llm.TextCorpus(["neg", "pos"])
    corpus.add("bad awful", 0)
    corpus.add("good great", 1)
    vocab = llm.Vocab.from_corpus(corpus)
    m = llm.Model([L.embedding(len(vocab), 4), L.global_pool(), L.dense(1, "sigmoid")], seed=1)
    m.set_text_pipeline(vocab, seq_len=4)
    want = m.predict_text("good great")
    assert m.predict_text(b"good great") == want
    assert m.predict_text(bytearray(b"good great")) == want
    assert m.predict_text(memoryview(b"good great")) == want
    for bad in (42, None, 3.5, ["good"], {"text": "good"}):
        with pytest.raises(llm.ArgumentTypeError) as e:
            m.predict_text(bad)
        assert isinstance(e.value, TypeError) and "str, bytes" in str(e.value)
    for h in (m, vocab, corpus):
        h.close()


def test_paths(tmp_path):
    m = xor_model()
    m.fit(XOR_X, XOR_Y, epochs=2, batch_size=4)
    want = m.predict(XOR_X)
    p = tmp_path / "model.safetensors"
    m.save(p)                                   # os.PathLike
    assert llm.Model.load(str(p)).predict(XOR_X) == want
    assert llm.Model.load(os.fsencode(str(p))).predict(XOR_X) == want   # bytes: the path itself
    raw = tmp_path / "caf\xe9-\udcff.safetensors"  # a name that is not UTF-8 on disk
    m.save(raw)
    assert os.path.exists(os.fsencode(str(raw)))
    assert llm.Model.load(raw).predict(XOR_X) == want
    with pytest.raises(llm.ArgumentTypeError):
        llm.Model.load(None)
    with pytest.raises(llm.ArgumentTypeError):
        m.save(42)
    with pytest.raises(llm.InvalidArgument) as e:  # not silently the file before the NUL
        llm.Model.load(str(p) + "\x00junk")
    assert "NUL" in str(e.value)
    with pytest.raises(llm.InvalidArgument):
        llm.Model.load(os.fsencode(str(p)) + b"\x00junk")
    with pytest.raises(llm.IOError_) as e:      # b"/p" is the path /p, not "b'/p'"
        llm.Model.load(b"/nonexistent/p")
    assert "b'" not in str(e.value)
    with pytest.raises(llm.InvalidArgument):
        m.fit(XOR_X, XOR_Y, checkpoint_path="a\x00b")
    with pytest.raises(llm.InvalidArgument):
        llm.TextCorpus.from_directory(str(tmp_path) + "\x00")
    m.close()


BAD_VALUES = [None, "x", b"\0", 2 ** 70, -2 ** 70, -1, 1.5, float("nan"), object(), [1, "a"], {}]


def test_bad_values_raise_llm_errors_only(tmp_path, monkeypatch):
    """Every public function and method, each parameter in turn given values
    of the wrong type or out of range (the others their default, or 1):
    whatever fails must fail with an llm.LLMError."""
    import inspect
    monkeypatch.chdir(tmp_path)  # save("x") and the like write here
    corpus = llm.TextCorpus(["a", "b"])
    corpus.add("some words", 0)
    corpus.add("more words", 1)
    vocab = llm.Vocab.from_corpus(corpus)
    bpe = llm.BPE.train(b"abc abc abd abd", vocab_size=260)
    gpt = llm.Model(L.gpt(16, context=8, dim=8, layers=1, heads=2))
    gpt.build([8], "int32")

    def classifier():
        m = llm.Model([L.embedding(len(vocab), 4), L.global_pool(), L.dense(1, "sigmoid")])
        m.build([4], "int32")
        m.set_text_pipeline(vocab, seq_len=4)
        return m.compile()
    fresh = {"Model": classifier, "Tensor": lambda: llm.Tensor([1.0, 2.0]),
             "Dataset": lambda: llm.Dataset([[1.0]], [1.0]), "Decoder": gpt.decoder,
             "Optimizer": lambda: llm.Optimizer("adam"), "Backend": lambda: llm.Backend("cpu", threads=1)}
    shared = {"Vocab": vocab, "BPE": bpe, "TextCorpus": corpus, "GPT": gpt}
    calls, wrong = 0, []

    def probe(fn, label, make=None):
        nonlocal calls
        try:
            params = [p for p in inspect.signature(fn).parameters.values()
                      if p.kind == p.POSITIONAL_OR_KEYWORD and p.name not in ("self", "cls")
                      and not p.name.startswith("_")]
        except (TypeError, ValueError):
            return
        for i, p in enumerate(params):
            for bad in BAD_VALUES:
                args = [q.default if q.default is not q.empty else 1 for q in params[:i]] + [bad] + \
                    [1 for q in params[i + 1:] if q.default is q.empty]
                calls += 1
                try:
                    (getattr(make(), fn.__name__) if make else fn)(*args)
                except llm.LLMError:
                    pass
                except Exception as e:  # reported below
                    wrong.append("%s(%s=%r): %s: %s" % (label, p.name, bad, type(e).__name__, e))

    for name in ("tokenize", "email_options", "tokenizer_options", "next_token_windows", "sample_token"):
        probe(getattr(llm, name), "llm." + name)
    for name in dir(L):
        fn = getattr(L, name)
        if inspect.isfunction(fn) and fn.__module__ == L.__name__ and not name.startswith("_"):
            probe(fn, "layers." + name)
    for name in ("Tensor", "Dataset", "Model", "TextCorpus", "Backend", "Optimizer", "Decoder"):
        probe(getattr(llm, name), "llm." + name)
    for cname, obj in list(fresh.items()) + list(shared.items()):
        inst = obj() if callable(obj) and cname in fresh else obj
        for name in dir(type(inst)):
            member = getattr(type(inst), name)
            if name.startswith("_") or name == "close" or isinstance(member, property):
                continue
            if inspect.isfunction(member):
                probe(member, "%s.%s" % (cname, name), make=obj if cname in fresh else (lambda o=inst: o))
            elif inspect.ismethod(getattr(inst, name)):  # classmethods
                probe(getattr(inst, name), "%s.%s" % (cname, name))
    assert calls > 1000
    assert not wrong, "%d of %d calls raised something else:\n%s" % (len(wrong), calls, "\n".join(wrong[:30]))
    for h in (gpt, bpe, vocab, corpus):
        h.close()
