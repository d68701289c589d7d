# CUDA backend end to end (runtime/cuda/): CUDA logits vs the CPU backend at every
# position of a greedy run, graph replay vs eager, a cuBLAS-path prefill. Label gpu: skips
# (exit 77) without a GPU. Needs libqrun's public API (include/qrun.h) and qplan (synth, compile).
if(QP_HAVE_CUDA AND TARGET qrunlib AND TARGET qplan AND EXISTS ${CMAKE_SOURCE_DIR}/include/qrun.h)
  qp_add_test(test_cuda_backend SOURCES test_cuda_backend.c LIBS qrunlib CUDA::cudart LABELS gpu)
  add_dependencies(test_cuda_backend qplan)
endif()
