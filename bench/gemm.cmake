# cuBLAS facts for the prefill GEMM path (kernels/cuda/gemm.cu): memory and time by workspace
# size; only where CUDA is built. An executable, never a test.
if(TARGET qpcuda)
  add_executable(bench_gemm ${CMAKE_CURRENT_SOURCE_DIR}/bench_gemm.cu)
  set_target_properties(bench_gemm PROPERTIES CUDA_STANDARD 17 CUDA_STANDARD_REQUIRED ON)
  target_link_libraries(bench_gemm PRIVATE CUDA::cudart CUDA::cublas)
endif()
