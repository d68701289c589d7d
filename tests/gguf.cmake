# The GGUF reader's suite (valid files, malformed files, truncation everywhere) and qplan inspect.
qp_add_test(test_gguf_read SOURCES test_gguf_read.c LIBS qpcore ${MATH_LIB})
qp_add_test(test_gguf_malformed SOURCES test_gguf_malformed.c LIBS qpcore)
# qplan inspect, run as a user runs it (the built executable).
foreach(mode cli vocab model)
  if(mode STREQUAL "model")
    set(labels model)
  else()
    set(labels cpu)
  endif()
  qp_add_test(test_inspect_${mode} SOURCES test_inspect.c LABELS ${labels} ARGS ${mode})
  add_dependencies(test_inspect_${mode} qplan)
endforeach()
