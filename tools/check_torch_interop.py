#!/usr/bin/python3
"""Checks that a libllm model file is usable from PyTorch as documented.

A model saved by libllm (spam_train or llm_model_save) is read with a plain
safetensors reader written here (8-byte little-endian header size, JSON
header, raw little-endian data; no safetensors package needed), its weights
are loaded by their documented names into torch.nn.Embedding, torch.nn.LSTM
(or GRU) with batch_first=True and torch.nn.Linear, and the predictions of
that torch model on random rows of token ids are compared with libllm's own,
from build/bin/predict_ids on the same file.

libllm's Embedding masks id 0 (mask_zero): a recurrent layer carries its
state over masked steps, so a row's result is that of the recurrent layer
run over its non-zero ids only. The torch side does exactly that, row by
row; rows are pre-padded as libllm's vectorizer makes them, and a few also
have zeros inside, plus one all-padding row.

The other way round, the same model with random weights drawn here (both
LSTM biases non-zero, as PyTorch has them) is written by the plain writer
below, loaded by libllm and compared the same way: the briefly trained model
gives probabilities near 0.5, the random one spreads them over (0, 1).

With no --model, a small model is trained first with build/bin/spam_train on
tests/data/emails. Exit status 0 when every probability agrees within
--tol (default 1e-5), else 1; 2 for usage errors.

    make interop-check                       # builds, trains, checks
    /usr/bin/python3 tools/check_torch_interop.py --model M.safetensors
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
except ImportError as e:  # pragma: no cover - reported, not tested
    print(f"check_torch_interop: needs numpy and torch ({e}); Debian: python3-torch", file=sys.stderr)
    sys.exit(2)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class FormatError(Exception):
    pass


def read_safetensors(path):
    """Returns ({name: np.ndarray}, {metadata}) with the format's checks."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise FormatError("shorter than the 8-byte header size")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > len(blob) - 8:
        raise FormatError(f"header size {n} runs past the file ({len(blob)} bytes)")
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    data = memoryview(blob)[8 + n:]
    meta = header.pop("__metadata__", {}) or {}
    if (8 + n) % 8:
        raise FormatError(f"the data starts at byte {8 + n}, not 8-byte aligned")
    dtypes = {"F32": np.float32, "I32": np.int32}
    tensors, ranges = {}, []
    for name, t in header.items():
        if t["dtype"] not in dtypes:
            raise FormatError(f"{name}: dtype {t['dtype']} (libllm writes F32 and I32)")
        begin, end = t["data_offsets"]
        shape = tuple(int(d) for d in t["shape"])
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if not (0 <= begin <= end <= len(data)) or end - begin != 4 * count:
            raise FormatError(f"{name}: data_offsets {begin}..{end} do not fit shape {shape}")
        if begin % 4:
            raise FormatError(f"{name}: data not 4-byte aligned")
        arr = np.frombuffer(data[begin:end], dtype=np.dtype(dtypes[t["dtype"]]).newbyteorder("<"))
        tensors[name] = arr.reshape(shape).copy()
        ranges.append((begin, end, name))
    ranges.sort()
    for (b0, e0, n0), (b1, _, n1) in zip(ranges, ranges[1:]):
        if b1 != e0:
            raise FormatError(f"{n0} and {n1} {'overlap' if b1 < e0 else 'leave a hole between them'}")
    if ranges and (ranges[0][0] != 0 or ranges[-1][1] != len(data)):
        raise FormatError("the tensors do not cover the data section exactly")
    return tensors, meta


def write_safetensors(path, tensors, meta):
    """A plain safetensors writer: contiguous little-endian F32 data, the
    header padded with spaces so that the data starts 8-byte aligned."""
    header, blobs, off = {"__metadata__": meta}, [], 0
    for name, arr in tensors.items():
        b = np.ascontiguousarray(arr, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-(8 + len(h)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def random_weights(tensors, rng):
    """The same names and shapes with weights large enough to spread the outputs."""
    out = {}
    for name, arr in tensors.items():
        if name.startswith("embedding_"):
            out[name] = rng.normal(0.0, 1.0, arr.shape)
        elif name.startswith("dense_"):
            out[name] = rng.uniform(-3.0, 3.0, arr.shape)
        else:  # recurrent weights and both biases
            out[name] = rng.uniform(-0.8, 0.8, arr.shape)
        out[name] = out[name].astype(np.float32)
    return out


ACTS = {
    "none": lambda x: x,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": torch.relu,
    "softmax": lambda x: torch.softmax(x, dim=-1),
    "gelu": lambda x: torch.nn.functional.gelu(x, approximate="tanh"),
}


class TorchModel:
    """Embedding -> LSTM/GRU (last state; forwards, backwards or
    bidirectional) -> Dense (and Dropout) layers, from the file."""

    def __init__(self, tensors, meta, dtype):
        if meta.get("format") != "libllm" or meta.get("libllm.format_version") != "1":
            raise FormatError("not a libllm model file of format version 1")
        arch = json.loads(meta["libllm.architecture"])
        layers = arch["layers"]
        self.seq_len = arch["input"]["shape"][0]
        if arch["input"]["dtype"] != "int32" or len(arch["input"]["shape"]) != 1:
            raise FormatError(f"input {arch['input']}: this check needs int32 [seq_len] ids")
        kinds = [l["kind"] for l in layers]
        bidir = len(kinds) > 1 and kinds[1] == "bidirectional"
        rnn = layers[1]["layer"] if bidir else layers[1] if len(layers) > 1 else {}
        if len(kinds) < 3 or kinds[0] != "embedding" or rnn.get("kind") not in ("lstm", "gru") or \
                any(k not in ("dense", "dropout") for k in kinds[2:]):
            raise FormatError(f"architecture {kinds}: this check handles embedding, "
                              "lstm|gru|bidirectional, then dense and dropout layers")
        emb = layers[0]
        if rnn["return_sequences"]:
            raise FormatError("the recurrent layer must return its last state")
        self.backwards = bool(rnn["go_backwards"])
        used = set()

        def take(name):
            used.add(name)
            return torch.from_numpy(tensors[name]).to(dtype)

        self.vocab, self.mask_zero = emb["vocab"], emb["mask_zero"]
        self.embedding = torch.nn.Embedding(emb["vocab"], emb["dim"]).to(dtype)
        self.embedding.weight.data.copy_(take("embedding_0.weight"))
        cls = torch.nn.LSTM if rnn["kind"] == "lstm" else torch.nn.GRU
        self.rnn = cls(emb["dim"], rnn["units"], batch_first=True, bidirectional=bidir).to(dtype)
        # torch's reverse direction runs over the same real steps backwards,
        # as libllm's backward copy does
        prefixes = [("bidirectional_0.forward", ""), ("bidirectional_0.backward", "_reverse")] if bidir \
            else [(f"{rnn['kind']}_0", "")]
        for p, suffix in prefixes:
            for ours in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(self.rnn, f"{ours}_l0{suffix}").data.copy_(take(f"{p}.{ours}"))
        self.bidir = bidir
        self.units = rnn["units"]
        self.dense = []
        k = 0
        for l in layers[2:]:
            if l["kind"] == "dropout":
                continue  # identity in inference
            lin = torch.nn.Linear(1, 1, bias=l["use_bias"]).to(dtype)
            lin.weight = torch.nn.Parameter(take(f"dense_{k}.weight"))
            if l["use_bias"]:
                lin.bias = torch.nn.Parameter(take(f"dense_{k}.bias"))
            self.dense.append((lin, ACTS[l["activation"]]))
            k += 1
        if used != set(tensors):
            raise FormatError(f"tensors the architecture does not use: {sorted(set(tensors) - used)}")
        self.dtype = dtype

    @torch.no_grad()
    def predict(self, rows):
        out = []
        for row in rows:
            ids = [i for i in row if i != 0] if self.mask_zero else list(row)
            if self.backwards:
                ids = ids[::-1]
            if ids:
                x = self.embedding(torch.tensor([ids], dtype=torch.long))
                _, state = self.rnn(x)
                state = state[0] if isinstance(state, tuple) else state  # h_n: [dirs, 1, H]
                h = torch.cat(list(state), dim=-1)  # [1, dirs * H]: forward, then backward
            else:  # every step masked: the initial state
                h = torch.zeros(1, self.units * (2 if self.bidir else 1), dtype=self.dtype)
            for lin, act in self.dense:
                h = act(lin(h))
            out.append(h[0].double().numpy())
        return np.stack(out)


def make_rows(rng, n, seq_len, vocab):
    rows = []
    for r in range(n):
        if r == 0:
            length = seq_len  # no padding
        elif r == 1:
            length = 1
        elif r == 2:
            length = 0  # all padding
        else:
            length = int(rng.integers(1, seq_len + 1))
        ids = rng.integers(1, vocab, size=length)
        if r % 5 == 4 and length > 2:  # zeros inside the text: masked as well
            ids[rng.integers(0, length, size=max(1, length // 4))] = 0
        rows.append([0] * (seq_len - length) + [int(i) for i in ids])
    return rows


def run_libllm(predict_ids, model, rows):
    text = "".join(" ".join(map(str, r)) + "\n" for r in rows)
    p = subprocess.run([predict_ids, model], input=text, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"predict_ids failed: {p.stderr.strip()}")
    return np.array([[float(v) for v in line.split()] for line in p.stdout.splitlines()])


def train(build, workdir):
    exe = os.path.join(build, "bin", "spam_train")
    if not os.access(exe, os.X_OK):
        raise RuntimeError(f"{exe} is missing; run `make` first or pass --model")
    model = os.path.join(workdir, "interop.safetensors")
    cmd = [exe, "--data", os.path.join(ROOT, "tests", "data", "emails"), "--model", model,
           "--epochs", "1", "--seq", "50", "--vocab", "300", "--embed", "8", "--hidden", "8",
           "--threads", "1", "--quiet"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0 or not os.path.exists(model):
        raise RuntimeError(f"spam_train failed ({p.returncode}): {(p.stderr or p.stdout).strip()[-500:]}")
    return model


def compare(label, model, tensors, meta, predict_ids, args):
    """Prints one report block; returns the largest float32 difference."""
    ref32 = TorchModel(tensors, meta, torch.float32)
    ref64 = TorchModel(tensors, meta, torch.float64)
    rows = make_rows(np.random.default_rng(args.seed), args.rows, ref32.seq_len, ref32.vocab)
    ours = run_libllm(predict_ids, model, rows)
    t32, t64 = ref32.predict(rows), ref64.predict(rows)
    if ours.shape != t32.shape:
        raise RuntimeError(f"libllm gave outputs of shape {ours.shape}, torch {t32.shape}")
    if not np.all(np.isfinite(ours)):
        raise RuntimeError("libllm gave non-finite outputs")
    d32, d64 = np.abs(ours - t32), np.abs(ours - t64)
    worst = int(np.argmax(d32.max(axis=1)))
    print(f"  {label}: {len(rows)} rows, outputs {ours.min():.4g} .. {ours.max():.4g}; "
          f"max |libllm - torch f32| = {d32.max():.3g}, |libllm - torch f64| = {d64.max():.3g} "
          f"(worst row {worst}: libllm {ours[worst][0]:.9g}, torch {t32[worst][0]:.9g})")
    return float(d32.max())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="a libllm model file (default: train a small one)")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"), help="libllm build folder [build]")
    ap.add_argument("--rows", type=int, default=200, help="random rows to compare [200]")
    ap.add_argument("--seed", type=int, default=1, help="seed for the rows and random weights [1]")
    ap.add_argument("--tol", type=float, default=1e-5, help="largest allowed difference [1e-5]")
    args = ap.parse_args()
    if args.rows < 3:
        ap.error("--rows must be at least 3")
    build = os.path.abspath(args.build)
    predict_ids = os.path.join(build, "bin", "predict_ids")
    if not os.access(predict_ids, os.X_OK):
        print(f"check_torch_interop: {predict_ids} is missing; run `make tools`", file=sys.stderr)
        return 1
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="llm_interop_") as workdir:
        try:
            model = args.model or train(build, workdir)
            tensors, meta = read_safetensors(model)
            print(f"check_torch_interop: torch {torch.__version__}; "
                  f"{model if args.model else 'a model trained by spam_train (1 epoch)'}: "
                  f"{', '.join(f'{k} {list(v.shape)}' for k, v in tensors.items())}")
            print(f"  architecture {meta.get('libllm.architecture')}")
            worst = compare("libllm's file in torch", model, tensors, meta, predict_ids, args)
            rnd = random_weights(tensors, np.random.default_rng(args.seed + 1))
            rnd_path = os.path.join(workdir, "random.safetensors")
            write_safetensors(rnd_path, rnd, meta)
            worst = max(worst, compare("random weights written here, in libllm", rnd_path, rnd, meta,
                                       predict_ids, args))
        except (FormatError, RuntimeError, KeyError, ValueError, OSError) as e:
            print(f"check_torch_interop: FAIL: {type(e).__name__}: {e}")
            return 1
    if worst > args.tol:
        print(f"check_torch_interop: FAIL: max difference {worst:.3g} > {args.tol:g}")
        return 1
    print(f"check_torch_interop: OK: max difference {worst:.3g} <= {args.tol:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
