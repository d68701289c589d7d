# Smoke test of the reader/writer pair that the foundation's full GGUF suite builds on.
qp_add_test(test_gguf_roundtrip SOURCES test_gguf_roundtrip.c LIBS qpcore)
