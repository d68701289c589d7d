# Tokenizer: known answers, round trips and specials on the real Qwen2 vocabulary
# (skips without it), and synthetic vocabularies built in memory (BPE order, specials, streaming
# detokenizer, CLI helpers, malformed vocabularies) that always run.
qp_add_test(test_tokenizer SOURCES test_tokenizer.c LIBS qrunlib LABELS cpu)
qp_add_test(test_tokenizer_synth SOURCES test_tokenizer_synth.c LIBS qrunlib LABELS cpu)
