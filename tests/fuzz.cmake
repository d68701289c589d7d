# libFuzzer targets (QP_FUZZ=ON, clang). scripts/fuzz.sh builds them and runs each for a
# bounded time over its checked-in seed corpus (tests/fuzz/corpus/<target>/); a crash found is
# kept as a regression input in that corpus, which the normal build replays (label fuzz).
#   gguf       GGUF reader (both modes)                         qpcore
#   plan       plan YAML loader ▸ validator ▸ writer round trip  qpcore
#   tokenizer  encode (both special modes) ▸ decode / stream     qrunlib (tokenizer)
set(QP_FUZZ_TARGETS gguf plan)
set(QP_FUZZ_LIBS_gguf qpcore)
set(QP_FUZZ_LIBS_plan qpcore)
if(TARGET qrunlib)
  list(APPEND QP_FUZZ_TARGETS tokenizer)
  set(QP_FUZZ_LIBS_tokenizer qrunlib)
endif()
if(QP_FUZZ)
  foreach(t ${QP_FUZZ_TARGETS})
    add_executable(fuzz_${t} fuzz/fuzz_${t}.c)
    target_compile_options(fuzz_${t} PRIVATE -fsanitize=fuzzer)
    target_link_options(fuzz_${t} PRIVATE -fsanitize=fuzzer)
    target_compile_definitions(fuzz_${t} PRIVATE QP_SHARED_DATA="${QP_SHARED_DATA}")
    target_link_libraries(fuzz_${t} PRIVATE ${QP_FUZZ_LIBS_${t}})
  endforeach()
else()
  # Without libFuzzer, replay every corpus input through the same entry point.
  foreach(t ${QP_FUZZ_TARGETS})
    qp_add_test(fuzz_replay_${t} SOURCES fuzz/fuzz_${t}.c fuzz/replay_main.c
                LIBS ${QP_FUZZ_LIBS_${t}} LABELS fuzz ARGS ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/${t})
  endforeach()
endif()
