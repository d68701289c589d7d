# Kernel boundary vs grid barrier vs read ceiling on the device (bench_boundary.cu): the numbers
# that decide the persistent decode kernel (docs/performance.md). An executable, never a test.
if(TARGET qpcuda)
  add_executable(bench_boundary ${CMAKE_CURRENT_SOURCE_DIR}/bench_boundary.cu)
  set_target_properties(bench_boundary PROPERTIES CUDA_STANDARD 17 CUDA_STANDARD_REQUIRED ON)
  target_include_directories(bench_boundary PRIVATE ${CMAKE_SOURCE_DIR}/kernels/cuda)
  target_link_libraries(bench_boundary PRIVATE qpkernels CUDA::cudart)
endif()
