#!/usr/bin/python3
"""The PyTorch twin of bench/gpt2_bench.c: the same GPT-2 (124M shape by
default, random weights; pre-LayerNorm blocks, causal attention, tanh GELU,
learned positions, tied head), greedy generation at batch 1 with a key/value
cache (as transformers' GPT-2 keeps one: the new token's keys and values
appended each step), and a training step (AdamW, next-token cross-entropy).

    /usr/bin/python3 bench/gpt2_bench_torch.py [--what gen|train|both] [options as gpt2_bench]

Last lines: gen_tokens_per_s=..., train_tokens_per_s=...
"""
import argparse
import math
import os
import statistics
import sys
import time

# PyTorch's best setting on this 2-core machine (../shared/peers/README.md):
# one intra-op thread, OpenBLAS with two; set before torch loads OpenBLAS.
BLAS_THREADS = next((sys.argv[i + 1] for i in range(len(sys.argv) - 1) if sys.argv[i] == "--blas-threads"), "2")
os.environ.setdefault("OPENBLAS_NUM_THREADS", BLAS_THREADS)

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.ln_1 = nn.LayerNorm(d)
        self.c_attn = nn.Linear(d, 3 * d)
        self.c_proj = nn.Linear(d, d)
        self.ln_2 = nn.LayerNorm(d)
        self.c_fc = nn.Linear(d, 4 * d)
        self.mlp_proj = nn.Linear(4 * d, d)

    def forward(self, x, past=None):
        B, T, D = x.shape
        hd = D // self.heads
        q, k, v = self.c_attn(self.ln_1(x)).split(D, dim=2)
        q, k, v = (t.view(B, T, self.heads, hd).transpose(1, 2) for t in (q, k, v))
        if past is not None:
            k = torch.cat([past[0], k], dim=2)
            v = torch.cat([past[1], v], dim=2)
        S = k.shape[2]
        w = q @ k.transpose(-1, -2) / math.sqrt(hd)
        if T > 1:
            mask = torch.ones(T, S, dtype=torch.bool).tril(S - T)
            w = w.masked_fill(~mask, float("-inf"))
        a = (F.softmax(w, dim=-1) @ v).transpose(1, 2).reshape(B, T, D)
        x = x + self.c_proj(a)
        x = x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))
        return x, (k, v)


class GPT2(nn.Module):
    def __init__(self, layers, d, heads, vocab, ctx):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(ctx, d)
        self.h = nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d)
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, ids, past=None, start=0):
        x = self.wte(ids) + self.wpe(torch.arange(start, start + ids.shape[1]))
        new = []
        for i, b in enumerate(self.h):
            x, kv = b(x, None if past is None else past[i])
            new.append(kv)
        return self.ln_f(x) @ self.wte.weight.t(), new


def bench_generate(m, a):
    g = torch.Generator().manual_seed(99)
    prompt = torch.randint(0, a.vocab, (1, a.prompt), generator=g)

    @torch.inference_mode()
    def run(n):
        logits, past = m(prompt)
        out, pos = [], a.prompt
        for _ in range(n):
            nxt = logits[:, -1].argmax(-1, keepdim=True)
            out.append(int(nxt))
            if len(out) == n:
                break
            logits, past = m(nxt, past, pos)
            pos += 1
        return out

    run(2)  # warm-up
    t0 = time.perf_counter()
    out = run(a.gen)
    el = time.perf_counter() - t0
    print("generation: %d prompt tokens then %d generated in %.2f s (prompt included)" % (a.prompt, len(out), el))
    print("gen_tokens_per_s=%.2f" % (len(out) / el))


def bench_train(m, a):
    opt = torch.optim.AdamW(m.parameters(), lr=3e-4, weight_decay=0.1)
    g = torch.Generator().manual_seed(7)
    x = torch.randint(0, a.vocab, (a.batch, a.seq), generator=g)
    y = torch.randint(0, a.vocab, (a.batch, a.seq), generator=g)
    times = []
    for i in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        logits, _ = m(x)
        loss = F.cross_entropy(logits.reshape(-1, a.vocab), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= a.warmup:
            times.append(time.perf_counter() - t0)
    print("training: batch %d x %d tokens, step median %.0f ms (min %.0f), loss %.3f" %
          (a.batch, a.seq, statistics.median(times) * 1e3, min(times) * 1e3, float(loss)))
    print("train_tokens_per_s=%.1f" % (a.batch * a.seq * a.steps / sum(times)))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name, default in (("layers", 12), ("dim", 768), ("heads", 12), ("vocab", 50257), ("ctx", 1024),
                          ("prompt", 16), ("gen", 64), ("batch", 4), ("seq", 128), ("steps", 3), ("warmup", 1),
                          ("threads", 1), ("blas-threads", 2)):
        p.add_argument("--" + name, type=int, default=default)
    p.add_argument("--what", default="both", choices=["gen", "train", "both"])
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    m = GPT2(a.layers, a.dim, a.heads, a.vocab, a.ctx)
    print("config: layers=%d dim=%d heads=%d vocab=%d ctx=%d threads=%d blas_threads=%s torch=%s" %
          (a.layers, a.dim, a.heads, a.vocab, a.ctx, a.threads, os.environ["OPENBLAS_NUM_THREADS"], torch.__version__))
    if a.what != "train":
        bench_generate(m.eval(), a)
    if a.what != "gen":
        bench_train(m.train(), a)


if __name__ == "__main__":
    main()
