# The reference forward pass (the oracle), its CLI, and its tests against the numpy reference
# (scripts/numpy_forward.py output checked in under tests/data/reference/).
add_library(qpref STATIC
  ${CMAKE_CURRENT_SOURCE_DIR}/reference/qwen2_ref.c
  ${CMAKE_CURRENT_SOURCE_DIR}/reference/ref_expected.c)
target_compile_options(qpref PRIVATE ${QP_C_WARNINGS})
target_include_directories(qpref PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/reference)
target_link_libraries(qpref PUBLIC qpcompiler Threads::Threads ${MATH_LIB})

add_executable(qpref_cli ${CMAKE_CURRENT_SOURCE_DIR}/reference/qpref_main.c)
set_target_properties(qpref_cli PROPERTIES OUTPUT_NAME qpref)
target_compile_options(qpref_cli PRIVATE ${QP_C_WARNINGS})
target_link_libraries(qpref_cli PRIVATE qpref)
if(TARGET qrunlib)
  target_link_libraries(qpref_cli PRIVATE qrunlib) # the C tokenizer, for --prompt
endif()

# The oracle vs numpy on synthetic models regenerated at test time (>= 2 shapes).
qp_add_test(test_reference_synth
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/reference/test_reference_synth.c
  LIBS qpref
  ARGS ${QP_TEST_DATA}/reference/synth-a.logits ${QP_TEST_DATA}/reference/synth-b.logits
       ${QP_TEST_DATA}/reference/synth-c.logits)
target_include_directories(test_reference_synth PRIVATE ${CMAKE_SOURCE_DIR}/compiler)

# The oracle vs numpy on the real default model (skips without it).
qp_add_test(test_reference_model
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/reference/test_reference_model.c
  LIBS qpref LABELS model
  ARGS ${QP_TEST_DATA}/reference/qwen2.5-coder-0.5b-q4_k_m.logits)

# The synthetic generator and header extraction: read back exactly, deterministic, well scaled.
qp_add_test(test_synth
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/reference/test_synth.c
  LIBS qpcompiler)
target_include_directories(test_synth PRIVATE ${CMAKE_SOURCE_DIR}/compiler)
qp_add_test(test_synth_model
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/reference/test_synth.c
  LIBS qpcompiler LABELS model ARGS --real)
target_include_directories(test_synth_model PRIVATE ${CMAKE_SOURCE_DIR}/compiler)
