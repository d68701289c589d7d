# Tokenizer: MB/s tokenizing ~1 MB of generated mixed UTF-8 text.
add_executable(bench_tokenizer ${CMAKE_CURRENT_LIST_DIR}/bench_tokenizer.c)
target_compile_options(bench_tokenizer PRIVATE ${QP_C_WARNINGS})
target_link_libraries(bench_tokenizer PRIVATE qrunlib)
