#!/usr/bin/env python3
"""numpy_forward.py — an independent Qwen2 forward pass in numpy (float64), the second opinion
the C oracle (tests/reference/qwen2_ref.c) is checked against.

It shares nothing with the project's C code: the `gguf` PyPI package reads the file and
dequantizes every tensor (to f32, which is then widened to f64); all math is float64 and runs
over the whole token sequence at once with a causal mask (the C oracle steps one token at a
time with a KV cache). Developer tool: its outputs are checked in under tests/data/reference/
and CI never runs it.

Usage:
  scripts/numpy_forward.py MODEL.gguf --tokens 1,2,3 -o OUT.logits [--all | --top K --sample N]
      [--meta 'LINE' ...]
  scripts/numpy_forward.py MODEL.gguf --prompt "text" --print-ids   (ids from the GGUF vocab,
      via the `tokenizers` package: Qwen2's byte-level BPE with its pre-tokenizer regex)

Output (text, one record a line, '#' lines are comments):
  model BASENAME
  bytes N                size of the model file
  fnv1a64 HEX            64-bit FNV-1a of the whole model file, for files up to 64 MiB
  meta LINE              free text the caller passed with --meta (e.g. the synth command)
  tokens N id...
  vocab V
  top1 POS ID            argmax at every position
  L POS ID LOGIT         logits: all of them (--all) or the top K plus N sampled ids per position
"""
import argparse
import os
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize


def fnv1a64(path):
    h = 0xCBF29CE484222325
    prime = 0x100000001B3
    data = np.fromfile(path, dtype=np.uint8)
    # Byte-serial FNV in Python is slow; fine for synthetic models, skip for big files.
    if data.size > 64 << 20:
        return None
    for b in data.tobytes():
        h ^= b
        h = (h * prime) & 0xFFFFFFFFFFFFFFFF
    return h


class Model:
    def __init__(self, path):
        self.r = GGUFReader(path)
        self.t = {t.name: t for t in self.r.tensors}
        arch = self.field("general.architecture")
        if arch != "qwen2":
            sys.exit(f"{path}: architecture '{arch}', expected qwen2")
        p = "qwen2."
        self.n_layer = int(self.field(p + "block_count"))
        self.n_embd = int(self.field(p + "embedding_length"))
        self.n_head = int(self.field(p + "attention.head_count"))
        self.n_head_kv = int(self.field(p + "attention.head_count_kv"))
        self.eps = float(self.field(p + "attention.layer_norm_rms_epsilon"))
        self.rope_base = float(self.field(p + "rope.freq_base", 10000.0))
        self.head_dim = self.n_embd // self.n_head
        self.n_vocab = int(self.t["token_embd.weight"].shape[1])

    def field(self, key, default=None):
        f = self.r.fields.get(key)
        if f is None:
            if default is None:
                sys.exit(f"missing metadata key {key}")
            return default
        return f.contents()

    def w(self, name):
        """Dequantized tensor as float64, shape [rows][cols] (numpy order: ne reversed)."""
        t = self.t[name]
        return dequantize(t.data, t.tensor_type).astype(np.float64).reshape(
            tuple(int(x) for x in reversed(t.shape)))

    def rows(self, name, ids):
        """Selected rows of a 2-D tensor, dequantized (the embedding gather)."""
        t = self.t[name]
        raw = np.asarray(t.data)
        return dequantize(raw[ids], t.tensor_type).astype(np.float64)

    def has(self, name):
        return name in self.t


def rmsnorm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rope_neox(x, pos, base):
    """x [T][H][hd]; pairs (i, i + hd/2) rotate by pos * base^(-2i/hd)."""
    hd = x.shape[-1]
    half = hd // 2
    inv = base ** (-2.0 * np.arange(half, dtype=np.float64) / hd)
    ang = pos[:, None] * inv[None, :]                      # [T][half]
    c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    a, b = x[..., :half], x[..., half:]
    return np.concatenate([a * c - b * s, a * s + b * c], axis=-1)


def forward(m, tokens):
    """Logits [T][V] for every position of the token sequence (float64)."""
    T = len(tokens)
    D, H, K, hd = m.n_embd, m.n_head, m.n_head_kv, m.head_dim
    pos = np.arange(T, dtype=np.float64)
    x = m.rows("token_embd.weight", np.array(tokens))          # [T][D]
    mask = np.triu(np.full((T, T), -np.inf), k=1)               # causal
    for l in range(m.n_layer):
        b = f"blk.{l}."
        h = rmsnorm(x, m.w(b + "attn_norm.weight"), m.eps)
        q = h @ m.w(b + "attn_q.weight").T + m.w(b + "attn_q.bias")
        k = h @ m.w(b + "attn_k.weight").T + m.w(b + "attn_k.bias")
        v = h @ m.w(b + "attn_v.weight").T + m.w(b + "attn_v.bias")
        q = rope_neox(q.reshape(T, H, hd), pos, m.rope_base)
        k = rope_neox(k.reshape(T, K, hd), pos, m.rope_base)
        v = v.reshape(T, K, hd)
        att = np.empty((T, H, hd))
        for hh in range(H):
            kv = hh // (H // K)                                    # GQA
            s = q[:, hh, :] @ k[:, kv, :].T / np.sqrt(hd) + mask  # [T][T]
            s = np.exp(s - s.max(axis=1, keepdims=True))
            s /= s.sum(axis=1, keepdims=True)
            att[:, hh, :] = s @ v[:, kv, :]
        wo = m.w(b + "attn_output.weight")
        x = x + att.reshape(T, H * hd) @ wo.T
        if m.has(b + "attn_output.bias"):
            x = x + m.w(b + "attn_output.bias")
        n = rmsnorm(x, m.w(b + "ffn_norm.weight"), m.eps)
        g = n @ m.w(b + "ffn_gate.weight").T
        u = n @ m.w(b + "ffn_up.weight").T
        x = x + (g / (1.0 + np.exp(-g)) * u) @ m.w(b + "ffn_down.weight").T
    xn = rmsnorm(x, m.w("output_norm.weight"), m.eps)
    out = "output.weight" if m.has("output.weight") else "token_embd.weight"  # tied
    logits = np.empty((T, m.n_vocab))
    step = 16384                                    # bound memory for a 150k vocabulary
    for r0 in range(0, m.n_vocab, step):
        rows = np.arange(r0, min(r0 + step, m.n_vocab))
        logits[:, rows] = xn @ m.rows(out, rows).T
    return logits


def prompt_ids(m, text):
    """Token ids of text from the model's own vocabulary (Qwen2 byte-level BPE)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    toks = m.field("tokenizer.ggml.tokens")
    merges = [tuple(s.split(" ", 1)) for s in m.field("tokenizer.ggml.merges")]
    vocab = {t: i for i, t in enumerate(toks)}
    tk = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    pat = (r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
           r"|\s*[\r\n]+|\s+(?!\S)|\s+")
    tk.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(pat), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tk.decoder = decoders.ByteLevel()
    return tk, tk.encode(text).ids


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("--tokens", help="comma-separated token ids")
    ap.add_argument("--prompt", help="text to tokenize with the model's vocabulary")
    ap.add_argument("--print-ids", action="store_true", help="print the prompt's ids and exit")
    ap.add_argument("--decode", help="comma-separated ids to decode to text, then exit")
    ap.add_argument("-o", "--out")
    ap.add_argument("--all", action="store_true", help="write every logit")
    ap.add_argument("--top", type=int, default=16)
    ap.add_argument("--sample", type=int, default=256)
    ap.add_argument("--meta", action="append", default=[])
    a = ap.parse_args()

    m = Model(a.model)
    if a.decode is not None:
        tk, _ = prompt_ids(m, "")
        print(tk.decode([int(s) for s in a.decode.split(",")]))
        return
    if a.prompt is not None:
        _, ids = prompt_ids(m, a.prompt)
        if a.print_ids:
            print(",".join(str(i) for i in ids))
            return
        tokens = ids
    elif a.tokens:
        tokens = [int(s) for s in a.tokens.split(",")]
    else:
        sys.exit("give --tokens or --prompt")
    for t in tokens:
        if not 0 <= t < m.n_vocab:
            sys.exit(f"token id {t} out of range [0, {m.n_vocab})")

    logits = forward(m, tokens)
    T, V = logits.shape
    lines = ["# qp reference logits v1: scripts/numpy_forward.py (gguf dequantization, float64)",
             f"model {os.path.basename(a.model)}"]
    lines.append(f"bytes {os.path.getsize(a.model)}")
    h = fnv1a64(a.model)
    if h is not None:
        lines.append(f"fnv1a64 {h:016x}")
    lines += [f"meta {s}" for s in a.meta]
    lines.append("tokens %d %s" % (T, " ".join(str(t) for t in tokens)))
    lines.append(f"vocab {V}")
    for p in range(T):
        lines.append(f"top1 {p} {int(np.argmax(logits[p]))}")
    # Sampled ids: a fixed spread over the vocabulary, the same at every position.
    rng = np.random.default_rng(12345)
    sampled = np.sort(rng.choice(V, size=min(a.sample, V), replace=False))
    for p in range(T):
        if a.all:
            ids = np.arange(V)
        else:
            top = np.argsort(-logits[p], kind="stable")[:a.top]
            ids = np.unique(np.concatenate([top, sampled]))
        for i in ids:
            lines.append(f"L {p} {int(i)} {logits[p, i]:.8e}")
    text = "\n".join(lines) + "\n"
    if a.out:
        tmp = a.out + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, a.out)
    else:
        sys.stdout.write(text)
    for p in range(T):
        print(f"pos {p}: top1 {int(np.argmax(logits[p]))} max {logits[p].max():.4f} "
              f"min {logits[p].min():.4f} mean {logits[p].mean():.4f}", file=sys.stderr)


if __name__ == "__main__":
    main()
