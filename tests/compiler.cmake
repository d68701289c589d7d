# The plan compiler's suite: goldens, round trip, determinism, corrupted plans, bad
# inputs through the qplan CLI (so it depends on qplan being built), large shapes.
qp_add_test(test_compiler SOURCES test_compiler.c LIBS qpcompiler LABELS cpu)
add_dependencies(test_compiler qplan)
