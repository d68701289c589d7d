# Long run: 8,000 tokens on the CPU backend, host memory flat after warm-up (RSS
# sampled from /proc/self/status). Needs libqrun's generation API (runtime/qrun.c) and qplan.
if(TARGET qrun)
  qp_add_test(test_long_run SOURCES test_long_run.c LIBS qrunlib LABELS cpu)
  add_dependencies(test_long_run qplan)
endif()
