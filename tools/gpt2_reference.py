#!/usr/bin/env python3
"""A PyTorch GPT-2 with Hugging Face's parameter names, to check libllm's
GPT-2 import and export against (no transformers needed: the model is
written out here, as transformers' GPT2LMHeadModel computes it, Conv1D
weights [in, out] included).

    gpt2_reference.py check --build build --config small|124m
        writes a random GPT-2 as a Hugging Face folder (F32, F16 and BF16, with
        and without the "transformer." prefix) and as llm.c files (fp32 and
        bf16), has libllm (build/bin/gpt2_logits) load each and compute the
        logits of a 64-token prompt and 32 greedy tokens, compares them with
        PyTorch's (1e-4 relative), then has libllm export the model and
        reloads the export here: the same logits again.
    gpt2_reference.py fixtures --out tests/data/gpt2
        writes the small committed fixtures that `make test` uses (a tiny
        GPT-2 with the tiny tokenizer of tests/data/gpt2/, its expected
        logits and greedy tokens).

Run with Debian's /usr/bin/python3 (python3-torch, numpy).
"""
import argparse
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch

CONFIGS = {
    # GPT-2 124M, the real shape
    "124m": dict(n_layer=12, n_head=12, n_embd=768, n_positions=1024, vocab_size=50257),
    # a 2-layer GPT-2 with the real vocabulary: quick enough for CI
    "small": dict(n_layer=2, n_head=4, n_embd=128, n_positions=128, vocab_size=50257),
}


# ---------------------------------------------------------------- the model

class Conv1D(torch.nn.Module):
    """transformers' Conv1D: y = x W + b with W [in, out]."""

    def __init__(self, nx, nf):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.empty(nx, nf))
        self.bias = torch.nn.Parameter(torch.empty(nf))

    def forward(self, x):
        return x @ self.weight + self.bias


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class Attention(torch.nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.c_attn = Conv1D(d, 3 * d)
        self.c_proj = Conv1D(d, d)

    def forward(self, x):
        B, T, D = x.shape
        q, k, v = self.c_attn(x).split(D, dim=2)
        split = lambda t: t.view(B, T, self.heads, D // self.heads).transpose(1, 2)
        q, k, v = split(q), split(k), split(v)
        w = q @ k.transpose(-1, -2) / math.sqrt(D // self.heads)
        mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
        w = w.masked_fill(~mask, torch.finfo(w.dtype).min)
        a = torch.softmax(w, dim=-1) @ v
        return self.c_proj(a.transpose(1, 2).contiguous().view(B, T, D))


class MLP(torch.nn.Module):
    def __init__(self, d, inner):
        super().__init__()
        self.c_fc = Conv1D(d, inner)
        self.c_proj = Conv1D(inner, d)

    def forward(self, x):
        return self.c_proj(gelu_new(self.c_fc(x)))


class Block(torch.nn.Module):
    def __init__(self, d, heads, eps):
        super().__init__()
        self.ln_1 = torch.nn.LayerNorm(d, eps=eps)
        self.attn = Attention(d, heads)
        self.ln_2 = torch.nn.LayerNorm(d, eps=eps)
        self.mlp = MLP(d, 4 * d)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT2(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        eps = c.get("layer_norm_epsilon", 1e-5)
        self.wte = torch.nn.Embedding(c["vocab_size"], c["n_embd"])
        self.wpe = torch.nn.Embedding(c["n_positions"], c["n_embd"])
        self.h = torch.nn.ModuleList(Block(c["n_embd"], c["n_head"], eps) for _ in range(c["n_layer"]))
        self.ln_f = torch.nn.LayerNorm(c["n_embd"], eps=eps)

    def forward(self, ids):
        x = self.wte(ids) + self.wpe(torch.arange(ids.shape[1]))
        for b in self.h:
            x = b(x)
        return self.ln_f(x) @ self.wte.weight.t()  # the tied head

    def hf_state(self):
        """Hugging Face names (GPT2Model's, without "transformer.")."""
        return {k: v.detach() for k, v in self.state_dict().items()}


def random_gpt2(c, seed):
    """GPT-2's initialisation (normal, std 0.02), but with random biases and
    layer-norm parameters too, so that a tensor loaded in the wrong place shows."""
    torch.manual_seed(seed)
    m = GPT2(c)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name == "ln_f.weight":
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            elif p.dim() == 1:
                p.copy_(0.02 * torch.randn_like(p))
            else:
                p.copy_(0.02 * torch.randn_like(p))
    return m


def round_to(m, dtype):
    """The model with its weights rounded to dtype (what a F16/BF16 file holds)."""
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(p.to(dtype).to(torch.float32))
    return m


@torch.no_grad()
def logits_of(m, ids):
    return m(torch.tensor([ids], dtype=torch.long))[0].numpy()


@torch.no_grad()
def greedy(m, ids, n):
    ids = list(ids)
    out = []
    for _ in range(n):
        nxt = int(np.argmax(logits_of(m, ids)[-1]))
        out.append(nxt)
        ids.append(nxt)
    return out


# ---------------------------------------------------------------- files

ST_DTYPES = {"F32": (torch.float32, 4), "F16": (torch.float16, 2), "BF16": (torch.bfloat16, 2)}


def tensor_bytes(t, dtype):
    t = t.detach().contiguous().to(ST_DTYPES[dtype][0])
    if dtype == "BF16":
        return t.view(torch.int16).numpy().tobytes()
    return t.numpy().tobytes()


def write_safetensors(path, tensors, dtype="F32"):
    """tensors: name -> torch tensor (written in dtype)."""
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        b = tensor_bytes(t, dtype) if t.dtype.is_floating_point else t.numpy().tobytes()
        dt = dtype if t.dtype.is_floating_point else "BOOL"
        header[name] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b0, b1 = e["data_offsets"]
        raw = data[b0:b1]
        if e["dtype"] == "F32":
            a = np.frombuffer(raw, dtype=np.float32)
        elif e["dtype"] == "F16":
            a = np.frombuffer(raw, dtype=np.float16).astype(np.float32)
        elif e["dtype"] == "BF16":
            a = (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            continue
        out[name] = torch.from_numpy(a.copy().reshape(e["shape"]))
    return out


def hf_config(c):
    return {
        "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "activation_function": "gelu_new",
        "n_layer": c["n_layer"], "n_head": c["n_head"], "n_embd": c["n_embd"], "n_positions": c["n_positions"],
        "n_ctx": c["n_positions"], "vocab_size": c["vocab_size"], "layer_norm_epsilon": 1e-5, "n_inner": None,
        "resid_pdrop": 0.1, "embd_pdrop": 0.1, "attn_pdrop": 0.1, "initializer_range": 0.02,
        "bos_token_id": 50256, "eos_token_id": 50256,
    }


def write_hf(m, folder, dtype="F32", prefix="transformer.", buffers=False, lm_head=False):
    """A Hugging Face folder: config.json + model.safetensors."""
    os.makedirs(folder, exist_ok=True)
    state = m.hf_state()
    tensors = {prefix + k: v for k, v in state.items()}
    if buffers:  # what older exports carry: the causal mask buffers
        P = m.c["n_positions"]
        for i in range(m.c["n_layer"]):
            tensors[prefix + "h.%d.attn.bias" % i] = torch.tril(torch.ones(1, 1, P, P))
            tensors[prefix + "h.%d.attn.masked_bias" % i] = torch.tensor(-1e4)
    if lm_head:
        tensors["lm_head.weight"] = state["wte.weight"]
    write_safetensors(os.path.join(folder, "model.safetensors"), tensors, dtype)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(hf_config(m.c), f, indent=2)


def write_llmc(m, path, dtype="float32"):
    """llm.c's write_model: the int32 header and the tensors layer-major, nn.Linear
    layouts ([out, in]: Conv1D weights transposed), the vocabulary padded to a
    multiple of 128 (with junk rows here, which a reader must ignore)."""
    c, s = m.c, m.hf_state()
    V, C, L = c["vocab_size"], c["n_embd"], c["n_layer"]
    Vp = (V + 127) // 128 * 128
    header = np.zeros(256, dtype=np.int32)
    header[:8] = [20240326, 3 if dtype == "float32" else 5, c["n_positions"], V, L, c["n_head"], C, Vp]
    wte = torch.cat([s["wte.weight"], 7.0 * torch.ones(Vp - V, C)])
    order = [("ln_1.weight", 0), ("ln_1.bias", 0), ("attn.c_attn.weight", 1), ("attn.c_attn.bias", 0),
             ("attn.c_proj.weight", 1), ("attn.c_proj.bias", 0), ("ln_2.weight", 0), ("ln_2.bias", 0),
             ("mlp.c_fc.weight", 1), ("mlp.c_fc.bias", 0), ("mlp.c_proj.weight", 1), ("mlp.c_proj.bias", 0)]
    parts = [wte, s["wpe.weight"]]
    for name, t in order:
        for i in range(L):
            w = s["h.%d.%s" % (i, name)]
            parts.append(w.t() if t else w)
    parts += [s["ln_f.weight"], s["ln_f.bias"]]
    with open(path, "wb") as f:
        f.write(header.tobytes())
        for p in parts:
            f.write(tensor_bytes(p, "F32" if dtype == "float32" else "BF16"))


def load_hf_export(folder):
    """Reloads a folder written by llm_model_save_gpt2, as transformers would
    (names with the "transformer." prefix, Conv1D layouts, tied head)."""
    c = json.load(open(os.path.join(folder, "config.json")))
    assert c["model_type"] == "gpt2" and c["activation_function"] == "gelu_new", c
    assert c.get("n_inner") is None and c.get("tie_word_embeddings", True), c
    m = GPT2(dict(n_layer=c["n_layer"], n_head=c["n_head"], n_embd=c["n_embd"], n_positions=c["n_positions"],
                  vocab_size=c["vocab_size"], layer_norm_epsilon=c["layer_norm_epsilon"]))
    t = read_safetensors(os.path.join(folder, "model.safetensors"))
    state = {k[len("transformer."):]: v for k, v in t.items() if k.startswith("transformer.")}
    missing, unexpected = m.load_state_dict(state, strict=False)
    assert not missing and not unexpected, (missing, unexpected)
    return m


# ---------------------------------------------------------------- libllm

def run_libllm(build, model_path, ids, generate, workdir, export=None):
    """build/bin/gpt2_logits: the logits of ids and `generate` greedy tokens."""
    ids_path = os.path.join(workdir, "prompt.txt")
    with open(ids_path, "w") as f:
        f.write(" ".join(map(str, ids)))
    out = os.path.join(workdir, "logits.f32")
    cmd = [os.path.join(build, "bin", "gpt2_logits"), "--model", model_path, "--ids", ids_path,
           "--logits", out, "--generate", str(generate)]
    if export:
        cmd += ["--export", export]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit("gpt2_logits failed (%d): %s%s" % (r.returncode, r.stdout, r.stderr))
    gen = [int(x) for x in r.stdout.split()]
    return np.fromfile(out, dtype=np.float32).reshape(len(ids), -1), gen


def compare(what, got, want, tol=1e-4):
    """Largest error relative to the largest reference logit."""
    scale = float(np.abs(want).max())
    err = float(np.abs(got - want).max()) / scale
    ok = err <= tol
    print("  %-44s max |diff| / max |logit| = %.2e %s" % (what, err, "ok" if ok else "FAILED (> %g)" % tol))
    return ok


def check(a):
    c = CONFIGS[a.config]
    work = tempfile.mkdtemp(prefix="gpt2_check_")
    ok = True
    try:
        m = random_gpt2(c, seed=1234)
        rng = np.random.default_rng(5)
        prompt = [int(x) for x in rng.integers(0, c["vocab_size"], size=64)]
        want = logits_of(m, prompt)
        want_gen = greedy(m, prompt, 32)
        top2 = np.sort(want[-1])[-2:]
        print("config %s: %d layers, %d heads, width %d, %d positions, vocabulary %d; prompt 64 tokens" %
              (a.config, c["n_layer"], c["n_head"], c["n_embd"], c["n_positions"], c["vocab_size"]))
        cases = [("hf-f32-prefix", "F32", "transformer.", True, True), ("hf-f32-bare", "F32", "", False, False)]
        if not a.quick:
            cases += [("hf-f16", "F16", "transformer.", False, False), ("hf-bf16", "BF16", "", False, False)]
        for name, dt, prefix, buffers, head in cases:
            folder = os.path.join(work, name)
            write_hf(m, folder, dt, prefix, buffers, head)
            ref = m if dt == "F32" else round_to(random_gpt2(c, 1234), {"F16": torch.float16, "BF16": torch.bfloat16}[dt])
            ref_logits = want if dt == "F32" else logits_of(ref, prompt)
            export = os.path.join(work, "export-" + name) if name == "hf-f32-prefix" else None
            got, gen = run_libllm(a.build, folder, prompt, 32 if dt == "F32" else 0, work, export)
            ok &= compare("Hugging Face %s%s" % (dt, ", transformer. prefix" if prefix else ""), got, ref_logits)
            if dt == "F32":
                same = gen == want_gen
                ok &= same
                print("  %-44s %s" % ("greedy 32 tokens", "same ids" if same else "DIFFERENT: %s vs %s" % (gen, want_gen)))
            if export:
                back = load_hf_export(export)
                ok &= compare("export -> PyTorch reload", logits_of(back, prompt), want)
                got2, _ = run_libllm(a.build, export, prompt, 0, work)
                ok &= compare("export -> libllm reload", got2, want)
        for dt in (["float32"] if a.quick else ["float32", "bfloat16"]):
            path = os.path.join(work, "gpt2_%s.bin" % dt)
            write_llmc(m, path, dt)
            ref_logits = want if dt == "float32" else logits_of(round_to(random_gpt2(c, 1234), torch.bfloat16), prompt)
            got, gen = run_libllm(a.build, path, prompt, 32 if dt == "float32" else 0, work)
            ok &= compare("llm.c %s" % dt, got, ref_logits)
            if dt == "float32":
                same = gen == want_gen
                ok &= same
                print("  %-44s %s" % ("llm.c greedy 32 tokens", "same ids" if same else "DIFFERENT"))
        print("  (last position's top-2 logit margin %.3g)" % (top2[1] - top2[0]))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("gpt2 reference check (%s): %s" % (a.config, "passed" if ok else "FAILED"))
    return 0 if ok else 1


# ---------------------------------------------------------------- fixtures

def bytes_to_unicode():
    bs = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


TINY_TEXT = (
    "The tokenizer of GPT-2 cuts text into words, numbers and punctuation, then merges the bytes of each "
    "piece by the rank of the merges it learned. It's small here: the merges below were learned from this "
    "paragraph alone, so that the tests can check the rules on a vocabulary they can read. They'll see "
    "that the the the repeats, that 1234 and 56 are numbers, and that we've kept <|endoftext|> apart.\n")


def tiny_tokenizer(out, merges_wanted=60):
    """A GPT-2-style vocab.json + merges.txt: the 256 byte tokens in GPT-2's
    order, merges learned (most frequent pair first) from TINY_TEXT cut by
    GPT-2's rule (ASCII text: the classes are plain), and <|endoftext|>."""
    import re
    enc = bytes_to_unicode()
    words = re.findall(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+""", TINY_TEXT)
    seqs = [[enc[b] for b in w.encode()] for w in words]
    vocab = {enc[b]: i for i, b in enumerate(sorted(range(256), key=lambda b: list(enc).index(b)))}
    merges = []
    for _ in range(merges_wanted):
        count = {}
        for s in seqs:
            for p in zip(s, s[1:]):
                count[p] = count.get(p, 0) + 1
        if not count:
            break
        best = max(sorted(count), key=lambda p: count[p])
        merges.append(best)
        vocab[best[0] + best[1]] = len(vocab)
        for s in seqs:
            i = 0
            while i + 1 < len(s):
                if (s[i], s[i + 1]) == best:
                    s[i:i + 2] = [best[0] + best[1]]
                i += 1
    vocab["<|endoftext|>"] = len(vocab)
    with open(os.path.join(out, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(out, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "".join("%s %s\n" % m for m in merges))
    return vocab


def tiny_encode(text, vocab, merges_path):
    """GPT-2's encoder (openai/gpt-2 encoder.py's algorithm) for ASCII text."""
    import re
    enc = bytes_to_unicode()
    lines = open(merges_path, encoding="utf-8").read().split("\n")[1:]
    ranks = {tuple(l.split()): i for i, l in enumerate(l for l in lines if l)}
    ids = []
    for w in re.findall(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+""", text):
        word = [enc[b] for b in w.encode()]
        while len(word) > 1:
            pairs = [(ranks.get(p, 1e9), p) for p in zip(word, word[1:])]
            r, best = min(pairs)
            if r == 1e9:
                break
            new, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    new.append(word[i] + word[i + 1])
                    i += 2
                else:
                    new.append(word[i])
                    i += 1
            word = new
        ids += [vocab[t] for t in word]
    return ids


def fixtures(a):
    """The tiny GPT-2 of `make test` in tests/data/gpt2/: a tiny tokenizer
    (vocab.json, merges.txt), a model of its vocabulary as Hugging Face
    folders (hf/: F32 with the prefix, the mask buffers and the tokenizer;
    hf_f16/, hf_bf16/: bare names) and an llm.c bf16 file, and the logits
    and greedy tokens PyTorch computes for it (expected.json)."""
    os.makedirs(a.out, exist_ok=True)
    vocab = tiny_tokenizer(a.out)
    c = dict(n_layer=2, n_head=2, n_embd=16, n_positions=32, vocab_size=len(vocab))
    m = random_gpt2(c, seed=7)
    prompt = [int(x) for x in np.random.default_rng(3).integers(0, c["vocab_size"], size=32)]
    write_hf(m, os.path.join(a.out, "hf"), "F32", "transformer.", buffers=True)
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(os.path.join(a.out, name), os.path.join(a.out, "hf", name))
    write_hf(m, os.path.join(a.out, "hf_f16"), "F16", "")
    write_hf(m, os.path.join(a.out, "hf_bf16"), "BF16", "")
    for d in ("hf", "hf_f16", "hf_bf16"):
        cfg = json.load(open(os.path.join(a.out, d, "config.json")))
        cfg["bos_token_id"] = cfg["eos_token_id"] = len(vocab) - 1
        json.dump(cfg, open(os.path.join(a.out, d, "config.json"), "w"), indent=2)
    write_llmc(m, os.path.join(a.out, "llmc_bf16.bin"), "bfloat16")
    text = "They'll see the numbers 1234, 56 and   spaces!\n"
    expected = {
        "prompt": prompt,
        "logits_f32": logits_of(m, prompt).ravel().tolist(),
        "greedy_prompt": prompt[:8],
        "greedy": greedy(m, prompt[:8], 24),
        # the F16 and BF16 files: the last 4 positions are enough to show the conversion
        "logits_f16": logits_of(round_to(random_gpt2(c, 7), torch.float16), prompt)[-4:].ravel().tolist(),
        "logits_bf16": logits_of(round_to(random_gpt2(c, 7), torch.bfloat16), prompt)[-4:].ravel().tolist(),
        "text": text,
        "text_ids": tiny_encode(text, vocab, os.path.join(a.out, "merges.txt")),
    }
    for k in ("logits_f32", "logits_f16", "logits_bf16"):
        expected[k] = [float("%.7g" % x) for x in expected[k]]
    with open(os.path.join(a.out, "expected.json"), "w") as f:
        json.dump(expected, f, separators=(",", ":"))
    print("fixtures written to", a.out)
    if a.seeds:  # the same files in fuzz/fuzz_gpt2_load.c's framing
        os.makedirs(a.seeds, exist_ok=True)
        rd = lambda *p: open(os.path.join(a.out, *p), "rb").read()
        with open(os.path.join(a.seeds, "llmc-bf16"), "wb") as f:
            f.write(b"\0" + rd("llmc_bf16.bin"))
        for name, d in (("hf-bf16", "hf_bf16"), ("hf-f32-prefix-buffers", "hf")):
            cfg = rd(d, "config.json")
            with open(os.path.join(a.seeds, name), "wb") as f:
                f.write(b"\1" + struct.pack("<H", len(cfg)) + cfg + rd(d, "model.safetensors"))
        v = rd("vocab.json")
        with open(os.path.join(a.seeds, "tokenizer"), "wb") as f:
            f.write(b"\2" + struct.pack("<I", len(v)) + v + rd("merges.txt"))
        print("fuzz seeds written to", a.seeds)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("check")
    p.add_argument("--build", default="build")
    p.add_argument("--config", choices=sorted(CONFIGS), default="small")
    p.add_argument("--quick", action="store_true", help="F32 and llm.c fp32 only")
    p = sub.add_parser("fixtures")
    p.add_argument("--out", default="tests/data/gpt2")
    p.add_argument("--seeds", default="fuzz/corpus/gpt2_load", help="fuzz seeds ('' for none)")
    a = ap.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    return check(a) if a.cmd == "check" else fixtures(a)


if __name__ == "__main__":
    sys.exit(main())
