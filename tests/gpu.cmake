# GPU op tests: every CUDA op against its CPU op (tests/test_gpu_ops.c). Built wherever the
# CUDA backend is built; skips (exit 77) where no GPU is present. Label gpu.
#
# test_gpu_ops's configurations beyond the default, "name|VAR=value,...[|gpu]": the same checks
# with other kernels chosen by the environment. tests/kemu.cmake runs them on the CPU emulator
# too, except those marked gpu (nothing for the emulator to tell apart).
#   mmv_classic  the one-warp-per-row matvec (kernels/cuda/matvec.cu) instead of the streamed one
#                (matvec_stream.cu)
#   mmv_bps1     the same with its grid capped at one block per SM (QP_CUDA_MMV_BPS): every warp
#                then takes several units with the grid stride
#   nopdl        every kernel launched without Programmatic Dependent Launch (the default launches
#                with it, and the streamed matvec then issues its weight copies before it waits)
set(QP_GPU_OPS_VARIANTS
    "mmv_classic|QP_CUDA_MMV_STREAM=0"
    "mmv_bps1|QP_CUDA_MMV_STREAM=0,QP_CUDA_MMV_BPS=1"
    "nopdl|QP_CUDA_PDL=0|gpu")

# qp_add_gpu_ops_variants(EXE LABELS [EMULATED]): a test EXE_<name> per variant, labelled LABELS;
# EMULATED leaves out the variants marked gpu.
function(qp_add_gpu_ops_variants exe label)
  foreach(v ${QP_GPU_OPS_VARIANTS})
    string(REPLACE "|" ";" parts "${v}")
    list(GET parts 0 name)
    list(GET parts 1 env)
    list(LENGTH parts n)
    if(ARGN AND n GREATER 2)
      continue()
    endif()
    string(REPLACE "," ";" env "${env}")
    add_test(NAME ${exe}_${name} COMMAND ${exe})
    set_tests_properties(${exe}_${name} PROPERTIES LABELS "${label}" SKIP_RETURN_CODE 77 TIMEOUT 900
                         ENVIRONMENT "${env}")
  endforeach()
endfunction()

if(TARGET qpcuda)
  qp_add_test(test_gpu_ops SOURCES test_gpu_ops.c LIBS qpcuda qpkernels CUDA::cudart CUDA::cublas LABELS gpu)
  qp_add_gpu_ops_variants(test_gpu_ops gpu)
endif()
