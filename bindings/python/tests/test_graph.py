"""The functional API in Python (include/llm/graph.h): a two-branch model
with a shared embedding, several inputs, and files."""
import os
import random

import pytest

import llm
from llm import layers as L


@pytest.fixture(scope="module")
def cpu():
    with llm.Backend("cpu", threads=2) as b:
        yield b


def contains5(n, seq=8, seed=0):
    rng = random.Random(seed)
    xs, ys = [], []
    for i in range(n):
        row = [rng.randrange(2, 10) for _ in range(seq)]
        if i % 2:
            row[rng.randrange(seq)] = 5
        else:
            row = [t if t != 5 else 6 for t in row]
        xs.append(row)
        ys.append([float(5 in row)])
    return xs, ys


def two_branch(cpu, seq=8):
    m = llm.Model.functional(backend=cpu, seed=2)
    ids = m.input([seq], "int32")
    emb = L.embedding(12, 8)
    e1 = m.apply(emb, ids)
    e2 = m.apply(emb, ids)  # the same layer again: shared weights
    both = m.merge(L.concatenate(), [m.apply(L.lstm(8), e1), m.apply(L.global_pool("max"), e2)])
    m.set_outputs([m.apply(L.dense(1, "sigmoid"), both)])
    return m


def test_two_branch_learns_saves_loads(cpu, tmp_path):
    m = two_branch(cpu)
    m.compile("binary_crossentropy", "adam", learning_rate=0.05)
    x, y = contains5(64)
    before = m.evaluate(x, y, x_dtype="int32")["loss"]
    m.fit(x, y, epochs=20, batch_size=16, x_dtype="int32")
    after = m.evaluate(x, y, x_dtype="int32")
    assert after["loss"] < before and after["accuracy"] > 0.8
    assert "functional" in m.summary() and m.num_inputs == 1
    path = str(tmp_path / "two.safetensors")
    m.save(path)
    back = llm.Model.load(path, backend=cpu)
    assert back.predict(x[:5], dtype="int32") == m.predict(x[:5], dtype="int32")


def test_several_inputs(cpu):
    m = llm.Model.functional(backend=cpu, seed=1)
    ids = m.input([8], "int32")
    feat = m.input([2], "float32")
    a = m.apply(L.global_pool(), m.apply(L.embedding(12, 4), ids))
    b = m.apply(L.dense(4, "tanh"), feat)
    m.set_outputs([m.apply(L.dense(1, "sigmoid"), m.merge(L.concatenate(), [a, b]))])
    m.compile("binary_crossentropy", "adam", learning_rate=0.05)
    x, y = contains5(64)
    rng = random.Random(3)
    f = [[rng.uniform(-1, 1), rng.uniform(-1, 1)] for _ in x]
    ds = m.dataset_inputs([x, f], y, dtypes=["int32", "float32"])
    m.fit(ds, epochs=5, batch_size=16)
    p = m.predict_inputs([x[:3], f[:3]], dtypes=["int32", "float32"])
    assert len(p) == 3 and all(0.0 < r[0] < 1.0 for r in p)
    with pytest.raises(llm.InvalidArgument):
        m.predict(x[:3], dtype="int32")  # two inputs need predict_inputs


def test_bad_graphs(cpu):
    m = llm.Model.functional(backend=cpu)
    other = llm.Model.functional(backend=cpu)
    x = m.input([3])
    ox = other.input([3])
    with pytest.raises(llm.InvalidArgument, match="another model"):
        m.apply(L.dense(2), ox)
    d = L.dense(2)
    other.apply(d, ox)
    with pytest.raises(llm.InvalidArgument):
        m.apply(d, x)  # a layer of another model
    with pytest.raises(llm.InvalidArgument, match="merge"):
        m.apply(L.add(), x)
    with pytest.raises(llm.StateError):
        m.add(L.dense(1))  # llm_model_add is for Sequential models
