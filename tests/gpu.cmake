# GPU op tests: every CUDA op against its CPU op (tests/test_gpu_ops.c). Built wherever the
# CUDA backend is built; skips (exit 77) where no GPU is present. Label gpu.
if(TARGET qpcuda)
  qp_add_test(test_gpu_ops SOURCES test_gpu_ops.c LIBS qpcuda qpkernels CUDA::cudart CUDA::cublas LABELS gpu)
  # The same checks through the one-warp-per-row matvec (kernels/cuda/matvec.cu) instead of the
  # streamed one (matvec_stream.cu, QP_CUDA_MMV_STREAM=0), and again with its grid capped at one
  # block per SM (QP_CUDA_MMV_BPS): every warp then takes several units with the grid stride.
  add_test(NAME test_gpu_ops_mmv_classic COMMAND test_gpu_ops)
  set_tests_properties(test_gpu_ops_mmv_classic PROPERTIES LABELS gpu SKIP_RETURN_CODE 77 TIMEOUT 900
                       ENVIRONMENT "QP_CUDA_MMV_STREAM=0")
  add_test(NAME test_gpu_ops_mmv_bps1 COMMAND test_gpu_ops)
  set_tests_properties(test_gpu_ops_mmv_bps1 PROPERTIES LABELS gpu SKIP_RETURN_CODE 77 TIMEOUT 900
                       ENVIRONMENT "QP_CUDA_MMV_STREAM=0;QP_CUDA_MMV_BPS=1")
  # Every kernel launched without Programmatic Dependent Launch (QP_CUDA_PDL=0; the default launches
  # with it, and the streamed matvec then issues its weight copies before it waits).
  add_test(NAME test_gpu_ops_nopdl COMMAND test_gpu_ops)
  set_tests_properties(test_gpu_ops_nopdl PROPERTIES LABELS gpu SKIP_RETURN_CODE 77 TIMEOUT 900
                       ENVIRONMENT "QP_CUDA_PDL=0")
endif()
