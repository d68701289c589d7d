# CPU op library tests (kernels/cpu/, kernels/op_table.c): each op vs double math, fused vs
# unfused bit for bit, shape errors. Label cpu.
set(QP_OPS_TEST_UTIL ${CMAKE_CURRENT_SOURCE_DIR}/ops_util.c)
qp_add_test(test_ops SOURCES test_ops.c ${QP_OPS_TEST_UTIL} LIBS qpkernels LABELS cpu)
qp_add_test(test_ops_fused SOURCES test_ops_fused.c ${QP_OPS_TEST_UTIL} LIBS qpkernels LABELS cpu)
qp_add_test(test_ops_errors SOURCES test_ops_errors.c ${QP_OPS_TEST_UTIL} LIBS qpkernels LABELS cpu)
