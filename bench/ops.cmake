# CPU op benchmarks (kernels/cpu/): an executable, never a test.
add_executable(bench_ops ${CMAKE_CURRENT_SOURCE_DIR}/bench_ops.c)
target_compile_options(bench_ops PRIVATE ${QP_C_WARNINGS})
target_link_libraries(bench_ops PRIVATE qpkernels)
