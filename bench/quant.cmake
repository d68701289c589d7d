# CPU matvec per GGML type: bench_matvec [--reps N] [type ...]; results in RESULTS.md.
add_executable(bench_matvec ${CMAKE_CURRENT_SOURCE_DIR}/bench_matvec.c)
target_compile_options(bench_matvec PRIVATE ${QP_C_WARNINGS})
target_link_libraries(bench_matvec PRIVATE qpkernels)
