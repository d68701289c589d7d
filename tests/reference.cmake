# The reference forward pass (the oracle), its CLI, and its tests against the numpy reference
# (scripts/numpy_forward.py output checked in under tests/data/reference/).
add_library(qpref STATIC
  ${CMAKE_CURRENT_SOURCE_DIR}/reference/qwen2_ref.c
  ${CMAKE_CURRENT_SOURCE_DIR}/reference/ref_expected.c)
target_compile_options(qpref PRIVATE ${QP_C_WARNINGS})
target_include_directories(qpref PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/reference)
target_link_libraries(qpref PUBLIC qpcore qpkernels ${MATH_LIB})

add_executable(qpref_cli ${CMAKE_CURRENT_SOURCE_DIR}/reference/qpref_main.c)
set_target_properties(qpref_cli PROPERTIES OUTPUT_NAME qpref)
target_compile_options(qpref_cli PRIVATE ${QP_C_WARNINGS})
target_link_libraries(qpref_cli PRIVATE qpref)
