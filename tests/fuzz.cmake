# libFuzzer targets (QP_FUZZ=ON, clang). scripts/fuzz.sh builds them and runs each for a
# bounded time over its checked-in seed corpus (tests/fuzz/corpus/<target>/); a crash found is
# kept as a regression input in that corpus, which the normal build replays (label fuzz).
if(QP_FUZZ)
  foreach(t gguf)
    add_executable(fuzz_${t} fuzz/fuzz_${t}.c)
    target_compile_options(fuzz_${t} PRIVATE -fsanitize=fuzzer)
    target_link_options(fuzz_${t} PRIVATE -fsanitize=fuzzer)
    target_link_libraries(fuzz_${t} PRIVATE qpcore)
  endforeach()
else()
  # Without libFuzzer, replay every corpus input through the same entry point.
  foreach(t gguf)
    qp_add_test(fuzz_replay_${t} SOURCES fuzz/fuzz_${t}.c fuzz/replay_main.c LIBS qpcore
                LABELS fuzz ARGS ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/${t})
  endforeach()
endif()
