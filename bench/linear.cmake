# Every linear kernel x weight type x the decode shapes of Qwen2.5 0.5B / 1.5B / 7B, in us and TB/s
# against the card's measured read ceiling (bench_linear.cu), with --check against the CPU op.
# Launches through qp_cuda_ops, so it links the same kernel objects as qrun. Only where CUDA is
# built; an executable, never a test (scripts/device-linear.sh runs it on the device).
if(TARGET qpcuda)
  add_executable(bench_linear ${CMAKE_CURRENT_SOURCE_DIR}/bench_linear.cu)
  set_target_properties(bench_linear PROPERTIES CUDA_STANDARD 17 CUDA_STANDARD_REQUIRED ON)
  target_compile_options(bench_linear PRIVATE ${QP_CUDA_WARNINGS})
  target_link_libraries(bench_linear PRIVATE qpcuda qpkernels CUDA::cudart CUDA::cublas)
endif()
# The same source on the CPU emulator of the CUDA kernels (tests/kemu): a smoke run of the
# benchmark's logic and of --check at the real shapes before a device call, e.g.
#   bench_linear_emu --check --copies 1 --ceiling-mib 1 --reps 1 --models 0.5B --ntok 1 --nodes attn_output
# Its timings are the emulator's and mean nothing.
if(TARGET qpcuda_kemu)
  qp_kemu_bench(bench_linear_emu ${CMAKE_CURRENT_SOURCE_DIR}/bench_linear.cu)
endif()
