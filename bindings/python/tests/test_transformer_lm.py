"""The Transformer side of the binding: the BPE tokenizer, a Transformer
text classifier, a small GPT trained on a text and sampled (Model.generate,
Decoder, sample_token), the text pipeline's plain-text default, and
data-parallel training options."""
import os
import shutil
import subprocess
import sys

import pytest

import llm
from llm import layers as L

HERE = os.path.dirname(os.path.abspath(__file__))
PKG = os.path.abspath(os.path.join(HERE, ".."))

TEXT = ("the cat sat on the mat. the dog sat on the log. " * 40).encode()


def test_bpe_train_encode_decode_serialize():
    bpe = llm.BPE.train(TEXT, vocab_size=300)
    assert 258 < len(bpe) <= 300 and bpe.vocab_size == len(bpe)
    ids = bpe.encode("the cat sat on the log.")
    assert len(ids) < len(b"the cat sat on the log.")  # merges learned from the text
    assert bpe.decode(ids) == b"the cat sat on the log."
    assert b"".join(bpe.token(i) for i in ids) == b"the cat sat on the log."
    assert bpe.decode([llm.BPE.PAD, llm.BPE.EOT]) == b""
    assert llm.BPE.train(TEXT, vocab_size=300).serialize() == bpe.serialize()  # deterministic
    back = llm.BPE.deserialize(bpe.serialize())
    assert back.encode("the dog") == bpe.encode("the dog")
    row = bpe.vectorize("the cat", seq_len=8)
    assert len(row) == 8 and row[-len(bpe.encode("the cat")):] == bpe.encode("the cat") and row[0] == 0
    byte = llm.BPE.byte_level()
    assert len(byte) == 258 and byte.encode("A") == [2 + 65]
    with pytest.raises(llm.InvalidArgument):
        bpe.decode([len(bpe)])
    with pytest.raises(llm.FormatError):
        llm.BPE.deserialize(b"llm-bpe 1 1\n9999 3\n")
    for h in (bpe, back, byte):
        h.close()


def _corpus():
    c = llm.TextCorpus(["ham", "spam"])
    ham = ["meeting notes for monday", "lunch at noon tomorrow", "the build is green again",
           "notes from the review", "see you at the standup", "patch applied, thanks"]
    spam = ["cheap pills buy now", "win money now click", "free prize claim now",
            "buy cheap watches now", "click here for free money", "cheap loans approved now"]
    for k in range(4):
        for t in ham:
            c.add("%s %d" % (t, k), 0)
        for t in spam:
            c.add("%s %d" % (t, k), 1)
    return c, ham, spam


def test_transformer_classifier(tmp_path):
    corpus, ham, spam = _corpus()
    bpe = llm.BPE.train(b" ".join(corpus.text(i) for i in range(len(corpus))), vocab_size=320)
    seq = 16
    m = llm.Model([L.transformer_embedding(len(bpe), seq, 16),
                   L.transformer_block(2, causal=False),
                   L.layernorm(), L.global_pool("average"), L.dense(1, "sigmoid")], seed=1)
    m.set_text_pipeline(bpe, seq_len=seq)          # a BPE: attached as the tokenizer
    m.compile("binary_crossentropy", "adam", learning_rate=3e-3)
    with corpus.to_dataset(bpe, seq_len=seq) as ds:
        hist = m.fit(ds, epochs=30, batch_size=8)
        assert hist["loss"][-1] < hist["loss"][0] / 4
        assert m.evaluate(ds)["accuracy"] == 1.0
    assert m.predict_text("cheap pills now")[0] > 0.5 > m.predict_text("notes for the meeting")[0]
    assert "transformer_block" in m.summary() and "attention" not in m.params()
    path = tmp_path / "tf.safetensors"
    m.save(path)
    with llm.Model.load(path) as back:
        assert back.predict_text("cheap pills now") == m.predict_text("cheap pills now")
        assert back.tokenizer.serialize() == bpe.serialize()
    # the attention layer on its own, in an encoder of the same shape
    a = llm.Model([L.transformer_embedding(len(bpe), seq, 16), L.attention(4, causal=False),
                   L.global_pool("max"), L.dense(1, "sigmoid")], seed=2)
    a.build([seq], "int32")
    assert any(k.startswith("attention_0.") for k in a.params())
    assert len(a.predict([bpe.vectorize("cheap pills", seq_len=seq)])) == 1
    for h in (m, a, bpe, corpus):
        h.close()


@pytest.fixture(scope="module")
def gpt():
    """A small GPT trained on TEXT (byte pairs of it): returns (model, bpe)."""
    bpe = llm.BPE.train(TEXT, vocab_size=280)
    ids = bpe.encode(TEXT)
    x, y = llm.next_token_windows(ids, context=16, stride=4)
    assert len(x) == len(y) and list(x[1][:12]) == list(ids[4:16]) and list(y[0]) == list(ids[1:17])
    m = llm.Model(L.gpt(len(bpe), context=16, dim=32, layers=1, heads=2), seed=1)
    m.set_tokenizer(bpe)
    m.compile("sparse_categorical_crossentropy_logits", "adam", metrics=(), learning_rate=1e-2)
    hist = m.fit(x, y, epochs=25, batch_size=16, shuffle=True, seed=1)
    assert hist["loss"][-1] < hist["loss"][0] / 3, hist["loss"]
    yield m, bpe
    m.close()
    bpe.close()


def test_gpt_generates_what_it_learned(gpt):
    m, bpe = gpt
    greedy = m.generate("the cat sat on the", max_tokens=6, temperature=0)
    assert isinstance(greedy, str) and greedy.startswith(" mat."), greedy
    assert m.generate(b"the cat sat on the mat. the dog sat on the", max_tokens=6,
                      temperature=0).startswith(b" log.")
    prompt = bpe.encode("the dog sat")
    ids = m.generate(prompt, max_tokens=12, temperature=0.8, top_k=5, seed=7)
    assert isinstance(ids, list) and len(ids) == 12 and all(0 <= t < len(bpe) for t in ids)
    assert m.generate(prompt, max_tokens=12, temperature=0.8, top_k=5, seed=7) == ids  # seeded
    assert m.generate(prompt, max_tokens=12, top_k=1, seed=3) == m.generate(prompt, max_tokens=12, temperature=0)
    seen = []
    out = m.generate(prompt, max_tokens=10, temperature=0, on_token=lambda t: seen.append(t) or len(seen) == 3)
    assert out == seen and len(seen) == 3
    stop = out[1]
    assert m.generate(prompt, max_tokens=10, temperature=0, stop_token=stop) == out[:2]

    def boom(t):
        raise KeyError("from on_token")
    with pytest.raises(KeyError):
        m.generate(prompt, max_tokens=5, on_token=boom)


def test_decoder_and_sampling(gpt):
    m, bpe = gpt
    prompt = bpe.encode("the cat sat on the")
    with m.decoder() as d:
        assert d.vocab_size == len(bpe)
        logits = d.feed(prompt)
        assert len(d) == len(prompt) and len(logits) == len(bpe)
        best = max(range(len(logits)), key=lambda i: logits[i])
        assert best == m.generate(prompt, max_tokens=1, temperature=0)[0]
        tok, counter = llm.sample_token(list(logits), temperature=0)
        assert tok == best and counter == 1
        assert llm.sample_token(list(logits), temperature=1.0, seed=5, counter=9) == \
            llm.sample_token(list(logits), temperature=1.0, seed=5, counter=9)
        nxt = d.feed(best)                   # one more token: the KV cache goes on
        assert len(d) == len(prompt) + 1 and len(nxt) == len(bpe)
        d.reset()
        assert len(d) == 0
        again = d.feed(prompt)
        assert list(again) == list(logits)
    with pytest.raises(llm.NotSupported):   # a classifier cannot generate
        llm.Model([L.dense(1)]).build([2]).decoder()


def test_gpt_save_load_generates_the_same(gpt, tmp_path):
    m, _ = gpt
    path = tmp_path / "gpt.safetensors"
    m.save(path)
    with llm.Model.load(path) as back:
        assert back.generate("the cat", max_tokens=8, temperature=0.7, seed=2) == \
            m.generate("the cat", max_tokens=8, temperature=0.7, seed=2)


def test_text_pipeline_reads_plain_text_by_default():
    # as in C, set_text_pipeline reads plain text unless email says otherwise:
    # a passage that starts like a mail header ("Word: ...") keeps its words
    c = llm.TextCorpus(["a", "b"])
    c.add("fellow citizens of the senate", 0)
    c.add("other words", 1)
    vocab = llm.Vocab.from_corpus(c)
    text = "Fellow-Citizens: of the Senate, fellow citizens"
    plain = llm.Model([L.embedding(len(vocab), 4), L.global_pool(), L.dense(1, "sigmoid")], seed=1)
    plain.set_text_pipeline(vocab, seq_len=8)
    mail = llm.Model([L.embedding(len(vocab), 4), L.global_pool(), L.dense(1, "sigmoid")], seed=1)
    mail.set_text_pipeline(vocab, seq_len=8, email=True)
    empty = mail.predict_text("")
    assert plain.predict_text(text) != empty      # the words are read
    assert mail.predict_text(text) == empty       # a header line, no body: nothing is read
    assert mail.predict_text("\n" + text) == plain.predict_text(text)  # as a body: read
    for h in (plain, mail, vocab, c):
        h.close()


def test_distributed_options():
    assert llm.dist_launched() == 0               # pytest is not under mpirun
    m = llm.Model([L.dense(1)])
    with pytest.raises(llm.ArgumentTypeError):
        m.compile("mse", "sgd").fit([[1.0]], [1.0], dist="mpi")
    m.close()


DIST_RUN = """
import sys; sys.path.insert(0, %r)
import llm
from llm import layers as L
x = [[i / 8.0, (i %% 3) / 3.0] for i in range(16)]
y = [float(i %% 2) for i in range(16)]
def run(dist):
    m = llm.Model([L.dense(4, "tanh"), L.dense(1, "sigmoid")], seed=3)
    m.compile("binary_crossentropy", "sgd", learning_rate=0.5)
    h = m.fit(x, y, epochs=3, batch_size=8, shuffle=False, dist=dist)
    return h["loss"][-1], list(m.get_param("dense_1.weight").ravel())
d = llm.Dist(timeout=60)
loss, w = run(d)
alone = run(None) if d.rank == 0 else None
with open(sys.argv[1] + ".%%d" %% d.rank, "w") as f:  # one file per rank: stdout interleaves
    f.write("rank %%d of %%d %%r %%s\\n" %% (d.rank, d.size, loss, " ".join("%%.6f" %% v for v in w)))
    if alone:
        f.write("alone %%r %%s\\n" %% (alone[0], " ".join("%%.6f" %% v for v in alone[1])))
d.close()
"""


def test_fit_over_mpi_matches_one_process(tmp_path):
    mpirun = shutil.which("mpirun")
    if mpirun is None:
        pytest.skip("no mpirun on PATH (Debian: openmpi-bin)")
    script = tmp_path / "dist_run.py"
    script.write_text(DIST_RUN % PKG)
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", OMPI_MCA_rmaps_base_oversubscribe="1")
    r = subprocess.run([mpirun, "--oversubscribe", "--allow-run-as-root", "--mca",
                        "btl_vader_single_copy_mechanism", "none", "-np", "2", sys.executable, str(script),
                        str(tmp_path / "out")], env=env, capture_output=True, text=True, timeout=180)
    if r.returncode != 0 and "module" in r.stdout + r.stderr and "not found" in r.stdout + r.stderr:
        pytest.skip("libllm-mpi.so not built: %s" % (r.stdout + r.stderr)[-300:])
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    lines = [line.split() for k in range(2) for line in open(str(tmp_path / ("out.%d" % k)))]
    ranks = sorted(line for line in lines if line[0] == "rank")
    alone = [line for line in lines if line[0] == "alone"]
    assert len(ranks) == 2 and ranks[0][3] == "2" and len(alone) == 1, lines
    w0, w1, wa = ranks[0][5:], ranks[1][5:], alone[0][2:]
    assert w0 == w1                            # the ranks hold the same weights
    for a, b in zip(w0, wa):                   # = one process with the same batch
        assert abs(float(a) - float(b)) < 1e-4
