# Quantization: known answers from the gguf package, dot products, random blocks, fp16/bf16.
qp_add_test(test_quant SOURCES test_quant.c LIBS qpkernels LABELS cpu)
