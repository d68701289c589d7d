# GPU op tests: every CUDA op against its CPU op (tests/test_gpu_ops.c). Built wherever the
# CUDA backend is built; skips (exit 77) where no GPU is present. Label gpu.
if(TARGET qpcuda)
  qp_add_test(test_gpu_ops SOURCES test_gpu_ops.c LIBS qpcuda qpkernels CUDA::cudart CUDA::cublas LABELS gpu)
endif()
