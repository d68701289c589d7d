# Issue 18's first experiment: the decode step's chain of linears in one resident kernel against
# a graph of one kernel per node, the same tile code in both (bench_persistent.cu). An executable;
# its numbers go to bench/RESULTS.md with card, date and commit.
if(TARGET qpcuda)
  add_executable(bench_persistent ${CMAKE_CURRENT_SOURCE_DIR}/bench_persistent.cu)
  set_target_properties(bench_persistent PROPERTIES CUDA_STANDARD 17 CUDA_STANDARD_REQUIRED ON)
  target_compile_options(bench_persistent PRIVATE ${QP_CUDA_WARNINGS})
  target_include_directories(bench_persistent PRIVATE ${CMAKE_SOURCE_DIR}/kernels/cuda)
  target_link_libraries(bench_persistent PRIVATE qpkernels CUDA::cudart)
endif()
# The same source on the CPU emulator (tests/kemu; cooperative launches run every block at once):
# the test bench_persistent_emu runs one layer (4 nodes, 132 blocks) once and checks that every
# engine gives the same output bit for bit and that it matches the CPU chain in double. It checks
# the persistent schedules (double-buffered weights, counter and flag waits, the bases that carry
# the counters across graph replays), not speed: the emulator's times mean nothing.
# bench_persistent_emu_2 runs two blocks an SM (264 blocks), twice per engine: on the emulator
# some blocks start after others have ended, which a schedule's bases must survive.
if(TARGET qpcuda_kemu)
  qp_kemu_bench(bench_persistent_emu ${CMAKE_CURRENT_SOURCE_DIR}/bench_persistent.cu)
  add_test(NAME bench_persistent_emu COMMAND bench_persistent_emu --layers 1 --reps 1 --check)
  add_test(NAME bench_persistent_emu_2 COMMAND bench_persistent_emu --layers 1 --reps 2 --blocks-per-sm 2 --check)
  set_tests_properties(bench_persistent_emu bench_persistent_emu_2 PROPERTIES LABELS "cpu;emu" TIMEOUT 600)
endif()
