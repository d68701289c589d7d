# GPU op tests: every CUDA op against its CPU op (tests/test_gpu_ops.c). Built wherever the
# CUDA backend is built; skips (exit 77) where no GPU is present. Label gpu.
#
# test_gpu_ops's configurations beyond the default (the kernels the compiler's defaults give each
# case, with their default launches), "name|args[|gpu]": the same checks with other kernels and
# launches. tests/kemu.cmake runs them on the CPU emulator too, except those marked gpu (too slow
# there: hours on 2 cores).
#   all  every kernel that can run a case, with every launch shape qplan tune times
#        (qp_kernel_candidates), each with and without PDL
set(QP_GPU_OPS_VARIANTS "all|--all|gpu")

# qp_add_gpu_ops_variants(EXE LABELS [EMULATED]): a test EXE_<name> per variant, labelled LABELS;
# EMULATED leaves out the variants marked gpu.
function(qp_add_gpu_ops_variants exe label)
  foreach(v ${QP_GPU_OPS_VARIANTS})
    string(REPLACE "|" ";" parts "${v}")
    list(GET parts 0 name)
    list(GET parts 1 args)
    list(LENGTH parts n)
    if(ARGN AND n GREATER 2)
      continue()
    endif()
    separate_arguments(args)
    add_test(NAME ${exe}_${name} COMMAND ${exe} ${args})
    set_tests_properties(${exe}_${name} PROPERTIES LABELS "${label}" SKIP_RETURN_CODE 77 TIMEOUT 900)
  endforeach()
endfunction()

if(TARGET qpcuda)
  qp_add_test(test_gpu_ops SOURCES test_gpu_ops.c LIBS qpcuda qpkernels CUDA::cudart CUDA::cublas LABELS gpu)
  qp_add_gpu_ops_variants(test_gpu_ops gpu)
endif()

# The waits between blocks of a persistent kernel (kernels/cuda/grid_sync.cuh): barriers,
# dependencies against the launch order, the watch that names a stuck wait, the cooperative
# launch's refusal of a grid too large (tests/test_grid_sync.cu). tests/kemu.cmake builds the
# same source on the CPU emulator as test_grid_sync_emu.
if(TARGET qpcuda)
  add_executable(test_grid_sync test_grid_sync.cu)
  target_include_directories(test_grid_sync PRIVATE ${CMAKE_CURRENT_SOURCE_DIR} ${CMAKE_SOURCE_DIR}/kernels/cuda)
  target_link_libraries(test_grid_sync PRIVATE qpkernels CUDA::cudart)
  add_test(NAME test_grid_sync COMMAND test_grid_sync)
  set_tests_properties(test_grid_sync PROPERTIES LABELS gpu SKIP_RETURN_CODE 77 TIMEOUT 120)
endif()
