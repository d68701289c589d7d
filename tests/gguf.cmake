# The GGUF reader's suite (valid files, malformed files, truncation everywhere) and qplan inspect.
qp_add_test(test_gguf_read SOURCES test_gguf_read.c LIBS qpcore ${MATH_LIB})
qp_add_test(test_gguf_malformed SOURCES test_gguf_malformed.c LIBS qpcore)
