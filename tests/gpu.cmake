# GPU op tests: every CUDA op against its CPU op (tests/test_gpu_ops.c). Built wherever the
# CUDA backend is built; skips (exit 77) where no GPU is present. Label gpu.
if(TARGET qpcuda)
  qp_add_test(test_gpu_ops SOURCES test_gpu_ops.c LIBS qpcuda qpkernels CUDA::cudart CUDA::cublas LABELS gpu)
  # The same checks through the matvec's other launch shapes (kernels/cuda/matvec.cu knobs):
  # R units per warp, and a grid capped at one block per SM (several unit batches per warp).
  foreach(v "r2;QP_CUDA_MMV_R=2" "r4;QP_CUDA_MMV_R=4" "r4_bps1;QP_CUDA_MMV_R=4\\;QP_CUDA_MMV_BPS=1"
            "r1_bps1;QP_CUDA_MMV_R=1\\;QP_CUDA_MMV_BPS=1")
    list(GET v 0 tag)
    list(GET v 1 envs)
    add_test(NAME test_gpu_ops_mmv_${tag} COMMAND test_gpu_ops)
    set_tests_properties(test_gpu_ops_mmv_${tag} PROPERTIES LABELS gpu SKIP_RETURN_CODE 77 TIMEOUT 900
                         ENVIRONMENT "${envs}")
  endforeach()
endif()
