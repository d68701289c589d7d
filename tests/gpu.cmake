# GPU op tests: every CUDA op against its CPU op (tests/test_gpu_ops.c). Built wherever the
# CUDA backend is built; skips (exit 77) where no GPU is present. Label gpu.
if(TARGET qpcuda)
  qp_add_test(test_gpu_ops SOURCES test_gpu_ops.c LIBS qpcuda qpkernels CUDA::cudart CUDA::cublas LABELS gpu)
  # The same checks through the matvec with its grid capped at one block per SM (kernels/cuda/
  # matvec.cu, QP_CUDA_MMV_BPS): every warp then takes several units with the grid stride.
  add_test(NAME test_gpu_ops_mmv_bps1 COMMAND test_gpu_ops)
  set_tests_properties(test_gpu_ops_mmv_bps1 PROPERTIES LABELS gpu SKIP_RETURN_CODE 77 TIMEOUT 900
                       ENVIRONMENT "QP_CUDA_MMV_BPS=1")
endif()
