#!/usr/bin/env python3
"""make-tokenizer-vectors.py — known-answer vectors for the tokenizer tests.

Builds an independent Qwen2 tokenizer with the Hugging Face `tokenizers` library from the
vocabulary GGUF's tokens and merges (read with the `gguf` package), configured the way
Qwen2's tokenizer.json is: a Split pre-tokenizer with the Qwen2 regex (behavior "isolated"),
then ByteLevel (no prefix space, no regex of its own), a BPE model from the merges, and the
control (type 3) and user-defined (type 4) tokens as added tokens (control ones "special").
Qwen2's tokenizer.json also has an NFC normalizer; it is left out here on purpose, because
the C tokenizer (like llama.cpp) does not normalize, so that text -> ids -> text is exact.
Every string below is already NFC except the one marked, whose ids therefore show the
un-normalized behaviour.

Writes tests/data/tokenizer/vectors.txt, one vector per line:
    <mode> TAB <text as hex bytes> TAB <ids separated by spaces>
mode is "special" (control tokens matched as whole strings) or "plain" (control-token text
tokenized as ordinary text; HF encode_special_tokens=True). Lines starting with '#' are
comments (the text, escaped, for people reading the file).

Usage: pip install numpy gguf tokenizers
       python3 scripts/make-tokenizer-vectors.py [vocab.gguf] [out.txt]
"""
import os
import sys

import gguf
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

QWEN2_PATTERN = (
    r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+"
    r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read_vocab(path):
    r = gguf.GGUFReader(path)

    def strings(key):
        f = r.fields[key]
        return [bytes(f.parts[i]).decode("utf-8") for i in f.data]

    tokens = strings("tokenizer.ggml.tokens")
    merges = strings("tokenizer.ggml.merges")
    tf = r.fields["tokenizer.ggml.token_type"]
    types = [int(tf.parts[i][0]) for i in tf.data]
    pre = bytes(r.fields["tokenizer.ggml.pre"].parts[-1]).decode()
    assert pre == "qwen2", pre
    return tokens, types, merges


def build(tokens, types, merges):
    vocab = {t: i for i, t in enumerate(tokens) if types[i] == 1}
    pairs = [tuple(m.split(" ")) for m in merges]
    tk = Tokenizer(models.BPE(vocab=vocab, merges=pairs, fuse_unk=False, byte_fallback=False))
    tk.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tk.decoder = decoders.ByteLevel()
    added = []
    for i, t in enumerate(tokens):
        if types[i] in (3, 4):
            added.append((i, AddedToken(t, special=(types[i] == 3), normalized=False,
                                        lstrip=False, rstrip=False, single_word=False)))
    for i, a in added:  # ids are consecutive after the BPE vocabulary
        n = tk.add_special_tokens([a]) if a.special else tk.add_tokens([a])
        assert n == 1 and tk.token_to_id(a.content) == i, (i, a.content)
    return tk


STRINGS = [
    # ASCII and contractions
    "Hello world",
    "Hello, world! How are you today?",
    "I'm sure you've heard: they'll say it's what we'd DO, isn't it? YOU'RE RIGHT, I'LL go.",
    "don't DON'T Don'T can't",
    " leading space",
    "trailing space ",
    "a",
    "",
    "The quick brown fox jumps over the lazy dog.",
    # numbers: digits split one by one
    "12345 67 8.90 1,000,000 3.14159e-10",
    "In 2024, 99% of 1024x768 pixels cost $4.50.",
    "\u0661\u0662\u0663 \u0968\u0969 \uff11\uff12",  # Arabic-Indic, Devanagari, fullwidth digits
    # CJK
    "\u4f60\u597d\uff0c\u4e16\u754c\uff01\u8fd9\u662f\u4e00\u4e2a\u6d4b\u8bd5\u3002",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3068\u30ab\u30bf\u30ab\u30ca",
    "\ud55c\uad6d\uc5b4 \ubb38\uc7a5\uc785\ub2c8\ub2e4.",
    # emoji, including ZWJ sequences, flags, skin tones, keycaps
    "I \u2764\ufe0f emoji \U0001F600\U0001F680\U0001F389",
    "family: \U0001F468\u200d\U0001F469\u200d\U0001F467\u200d\U0001F466 ok",
    "\U0001F44D\U0001F3FD \U0001F1EF\U0001F1F5 1\ufe0f\u20e3 \U0001F3F3\ufe0f\u200d\U0001F308",
    # other scripts
    "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440! \u041a\u0430\u043a \u0434\u0435\u043b\u0430?",
    "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645",
    "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e",
    "\u0393\u03b5\u03b9\u03ac \u03c3\u03bf\u03c5 \u039a\u03cc\u03c3\u03bc\u03b5",
    "\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd",
    "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35\u0e04\u0e23\u0e31\u0e1a",
    "mixed: English \u4e2d\u6587 \u0420\u0443\u0441\u0441\u043a\u0438\u0439 \u0627\u0644\u0639\u0631\u0628\u064a\u0629 \U0001F30D",
    "caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00fcber stra\u00dfe",
    "cafe\u0301 (decomposed, not NFC)",
    # code, tabs, runs of spaces
    "def f(x):\n    return x * 2\n",
    "int main(void) {\n\tprintf(\"%d\\n\", 42);\n\treturn 0;\n}\n",
    "if (a  &&   b)\t\t{ c = a->b[i++]; }",
    "    indented four\n        indented eight\n",
    "#include <stdio.h>\r\n#define MAX(a, b) ((a) > (b) ? (a) : (b))\r\n",
    "x = [1, 2, 3]  # comment\n\n\n",
    "<html><body><p class=\"x\">Hi &amp; bye</p></body></html>",
    # whitespace
    " ",
    "          ",
    "a                                                                b",
    "\n",
    "\n\n\n\n",
    "line one\nline two\r\nline three\r\n\r\n",
    " \t \n \t\n\t\t  word",
    "trailing spaces then newline   \n   next",
    "\u3000\u00a0\u2003 unicode spaces\u2028sep",
    "edge spaces:\x0b\x0c|\x1c\x1d\x1e\x1f|\x85|\u180e|\u200b|\ufeff|\u2029|\u202f|\u205f end",
    "a\x00b\x01\x7f c",
    # punctuation runs
    "!!!??? ... --- === *** /// \\\\\\",
    "'quoted' \"double\" `back`",
    "'s's 's'S'T'LL'D'M'VE'RE",
    # special-token text (checked in both modes)
    "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|>",
    "text<|endoftext|>more<|im_end|>",
    "<|fim_prefix|>def f():\n<|fim_suffix|>\n    pass<|fim_middle|>",
    "<tool_call>\n{\"name\": \"f\"}\n</tool_call>",
    "<|im_start|<|im_end|>|> partial <|im_en d|>",
    "<|repo_name|>proj\n<|file_sep|>main.c\n",
]

SPECIAL_MARKERS = ("<|", "<tool_call>", "</tool_call>")


def main():
    vocab_path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        ROOT, "..", "shared", "data", "qwen2-vocab.gguf")
    out_path = sys.argv[2] if len(sys.argv) > 2 else os.path.join(
        ROOT, "tests", "data", "tokenizer", "vectors.txt")
    tokens, types, merges = read_vocab(vocab_path)
    tk = build(tokens, types, merges)
    lines = [
        "# Tokenizer known answers made by scripts/make-tokenizer-vectors.py with Hugging Face",
        "# tokenizers %s from %s (do not edit by hand)." % (
            __import__("tokenizers").__version__, os.path.basename(vocab_path)),
        "# mode TAB text-as-hex TAB ids",
    ]
    n = 0
    for s in STRINGS:
        modes = ["special", "plain"] if any(m in s for m in SPECIAL_MARKERS) else ["special"]
        for mode in modes:
            tk.encode_special_tokens = (mode == "plain")
            ids = tk.encode(s, add_special_tokens=False).ids
            assert tk.decode(ids, skip_special_tokens=False) == s, (s, ids)
            lines.append("# %s %r" % (mode, s))
            lines.append("%s\t%s\t%s" % (mode, s.encode("utf-8").hex(), " ".join(map(str, ids))))
            n += 1
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with open(out_path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote %d vectors to %s" % (n, out_path))


if __name__ == "__main__":
    main()
