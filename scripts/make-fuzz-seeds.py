#!/usr/bin/env python3
"""Writes the GGUF fuzz seed corpus (tests/fuzz/corpus/gguf/) with the `gguf` PyPI package's
writer — an implementation independent of ours. Small files: a tiny qwen2-shaped model with
several tensor types, a metadata-only file with every value type, and truncations of both."""
import os
import sys

import numpy as np
import gguf

out = sys.argv[1] if len(sys.argv) > 1 else "tests/fuzz/corpus/gguf"
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(7)


def tiny_model(path):
    w = gguf.GGUFWriter(path, "qwen2")
    w.add_block_count(1)
    w.add_context_length(64)
    w.add_embedding_length(32)
    w.add_feed_forward_length(64)
    w.add_head_count(2)
    w.add_head_count_kv(1)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_tokenizer_model("gpt2")
    w.add_token_list(["a", "b", "ab", "<|endoftext|>"])
    w.add_token_types([1, 1, 1, 3])
    w.add_token_merges(["a b"])
    w.add_tensor("token_embd.weight", rng.standard_normal((4, 32), dtype=np.float32))
    w.add_tensor("blk.0.attn_norm.weight", np.ones(32, dtype=np.float32))
    q = rng.integers(0, 255, size=(2, 34), dtype=np.uint8)
    q[:, 1] = 0x3C  # f16 scale ~ 1.0
    w.add_tensor("blk.0.attn_q.weight", q, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    w.add_tensor("blk.0.attn_k.weight", rng.standard_normal((2, 32)).astype(np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def all_types(path):
    w = gguf.GGUFWriter(path, "test")
    w.add_uint8("t.u8", 1)
    w.add_int8("t.i8", -1)
    w.add_uint16("t.u16", 2)
    w.add_int16("t.i16", -2)
    w.add_uint32("t.u32", 3)
    w.add_int32("t.i32", -3)
    w.add_float32("t.f32", 0.25)
    w.add_bool("t.bool", True)
    w.add_string("t.str", "héllo")
    w.add_uint64("t.u64", 2**40)
    w.add_int64("t.i64", -(2**40))
    w.add_float64("t.f64", 0.125)
    w.add_array("t.arr_i32", [1, 2, 3])
    w.add_array("t.arr_str", ["x", "yy", ""])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


tiny_model(os.path.join(out, "tiny_model.gguf"))
all_types(os.path.join(out, "all_types.gguf"))
for name in ("tiny_model.gguf", "all_types.gguf"):
    data = open(os.path.join(out, name), "rb").read()
    for cut in (len(data) // 3, len(data) // 2, len(data) - 1):
        open(os.path.join(out, f"{name[:-5]}_cut{cut}.gguf"), "wb").write(data[:cut])
print("seeds written to", out)
