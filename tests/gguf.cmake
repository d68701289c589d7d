# The GGUF reader's suite (valid files, malformed files, truncation everywhere) and qplan inspect.
qp_add_test(test_gguf_read SOURCES test_gguf_read.c LIBS qpcore ${MATH_LIB})
