# The CUDA kernels on the CPU emulator (tests/kemu/kemu.h says what it emulates and checks):
# every kernels/cuda/*.cu compiled as C++ with QP_KEMU, linked with the emulated CUDA runtime and
# cuBLAS instead of the real ones, and test_gpu_ops run against it. It needs the CUDA Toolkit's
# headers and Boost.Context (the fibers; scripts/deps.sh installs it), not nvcc, so it runs
# wherever those are, GPU or not, and in the sanitizer build too (scripts/test.sh). Label cpu;
# the emulator's tests also carry the label emu, and the extra configurations emu_variant (the
# sanitizer stage leaves those out).
if(QP_KEMU AND CUDAToolkit_FOUND)
  find_package(Boost 1.66 CONFIG COMPONENTS context)
endif()
# BoostConfig.cmake leaves Boost_FOUND true when an optional component is missing (Boost's
# headers without libboost-context-dev, as in a plain CUDA image): the target decides.
if(QP_KEMU AND CUDAToolkit_FOUND AND NOT TARGET Boost::context)
  message(STATUS "qplan: Boost.Context not found (Debian: libboost-context-dev): the CPU emulator of the CUDA kernels (tests/kemu, test_gpu_ops_emu, test_cuda_backend_emu) is off")
elseif(QP_KEMU AND NOT CUDAToolkit_FOUND)
  message(STATUS "qplan: no CUDA Toolkit headers: the CPU emulator of the CUDA kernels (tests/kemu) is off")
elseif(NOT QP_KEMU)
  message(STATUS "qplan: the CPU emulator of the CUDA kernels is off (QP_KEMU=OFF)")
elseif(QP_KEMU AND CUDAToolkit_FOUND)
  # qp_kemu_wrap(OUT SUBDIR cu...): OUT = a .cpp per CUDA source, under kemu/SUBDIR of the build
  # folder, that includes it and is compiled with kemu.h first. The wrapper names the source by its
  # path in the checkout, found through -I<checkout>, so that its text is the same in every clone
  # (a compiler cache keyed on it then serves every checkout; scripts/test.sh).
  function(qp_kemu_wrap out subdir)
    set(wrappers)
    foreach(cu ${ARGN})
      get_filename_component(name ${cu} NAME_WE)
      file(RELATIVE_PATH rel ${CMAKE_SOURCE_DIR} ${cu})
      set(wrapper ${CMAKE_CURRENT_BINARY_DIR}/kemu/${subdir}/${name}.cpp)
      file(CONFIGURE OUTPUT ${wrapper} CONTENT "#include \"${rel}\"\n" @ONLY)
      list(APPEND wrappers ${wrapper})
    endforeach()
    set_source_files_properties(${wrappers} PROPERTIES COMPILE_OPTIONS
                                "-include;${CMAKE_SOURCE_DIR}/tests/kemu/kemu.h;-I${CMAKE_SOURCE_DIR}")
    set(${out} ${wrappers} PARENT_SCOPE)
  endfunction()

  file(GLOB QP_KEMU_KERNELS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/kernels/cuda/*.cu)
  qp_kemu_wrap(QP_KEMU_WRAPPERS kernels ${QP_KEMU_KERNELS})
  add_library(qpcuda_kemu STATIC ${CMAKE_CURRENT_SOURCE_DIR}/kemu/kemu.cpp ${QP_KEMU_WRAPPERS})
  set_target_properties(qpcuda_kemu PROPERTIES CXX_STANDARD 17 CXX_STANDARD_REQUIRED ON)
  target_include_directories(qpcuda_kemu PUBLIC ${CUDAToolkit_INCLUDE_DIRS} ${CMAKE_SOURCE_DIR}/kernels/cuda
                             ${CMAKE_CURRENT_SOURCE_DIR}/kemu)
  target_compile_definitions(qpcuda_kemu PUBLIC QP_KEMU=1 QP_HAVE_CUDA=1)
  # -O2 whatever the build type: the emulated kernels run the real shapes of test_gpu_ops.
  target_compile_options(qpcuda_kemu PRIVATE -O2)
  target_link_libraries(qpcuda_kemu PUBLIC qpkernels qpcore Boost::context Threads::Threads)

  qp_add_test(test_gpu_ops_emu SOURCES test_gpu_ops.c LIBS qpcuda_kemu qpkernels LABELS cpu emu)

  # qp_kemu_bench(TARGET CU): an executable of one CUDA source (a test or a benchmark of bench/)
  # on the emulator, -O2 whatever the build type, with its own folder on the include path.
  function(qp_kemu_bench target cu)
    get_filename_component(dir ${cu} DIRECTORY)
    get_filename_component(name ${dir} NAME)
    qp_kemu_wrap(wrapped ${name} ${cu})
    add_executable(${target} ${wrapped})
    set_target_properties(${target} PROPERTIES CXX_STANDARD 17 CXX_STANDARD_REQUIRED ON)
    target_include_directories(${target} PRIVATE ${dir})
    target_compile_options(${target} PRIVATE -O2)
    target_link_libraries(${target} PRIVATE qpcuda_kemu qpkernels)
  endfunction()

  # kernels/cuda/grid_sync.cuh's waits between blocks, with cooperative launches (tests/gpu.cmake)
  qp_kemu_bench(test_grid_sync_emu ${CMAKE_CURRENT_SOURCE_DIR}/test_grid_sync.cu)
  add_test(NAME test_grid_sync_emu COMMAND test_grid_sync_emu)
  set_tests_properties(test_grid_sync_emu PROPERTIES LABELS "cpu;emu" TIMEOUT 300)
  set_tests_properties(test_gpu_ops_emu PROPERTIES COST 150) # minutes: started before the short tests
  qp_add_gpu_ops_variants(test_gpu_ops_emu "cpu;emu;emu_variant" EMULATED) # tests/gpu.cmake's configurations

  # libqrun with its CUDA backend (runtime/cuda/*.cu, graph capture and replay included) on the
  # emulated kernels, and test_cuda_backend on it: whole-model logits against the CPU backend,
  # graph replay against eager launches.
  if(TARGET qrunlib AND TARGET qplan)
    file(GLOB QP_KEMU_RUNTIME_C CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/runtime/*.c)
    list(REMOVE_ITEM QP_KEMU_RUNTIME_C ${CMAKE_SOURCE_DIR}/runtime/main.c)
    file(GLOB QP_KEMU_RUNTIME_CU CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/runtime/cuda/*.cu)
    qp_kemu_wrap(QP_KEMU_RUNTIME_WRAPPERS runtime ${QP_KEMU_RUNTIME_CU})
    add_library(qrunlib_kemu STATIC ${QP_KEMU_RUNTIME_C} ${QP_KEMU_RUNTIME_WRAPPERS})
    set_target_properties(qrunlib_kemu PROPERTIES CXX_STANDARD 17 CXX_STANDARD_REQUIRED ON)
    target_compile_options(qrunlib_kemu PRIVATE $<$<COMPILE_LANGUAGE:C>:${QP_C_WARNINGS}>)
    target_include_directories(qrunlib_kemu PUBLIC ${CMAKE_SOURCE_DIR}/runtime)
    target_compile_definitions(qrunlib_kemu PUBLIC QP_HAVE_CUDA_BACKEND=1)
    target_link_libraries(qrunlib_kemu PUBLIC qpcuda_kemu qpcore qpkernels PkgConfig::PCRE2 Threads::Threads ${MATH_LIB})
    # Three ctest tests of one executable (test_cuda_backend --part), minutes each on the
    # emulator, so that ctest -j runs them side by side: test_cuda_backend_emu (checks 1-3: the
    # whole model, graph == eager, the cuBLAS-path prefill), _batch (check 5: sequences decoded
    # together) and _kernels (check 4: each kernel named by --kernel). COST starts them first.
    qp_add_test(test_cuda_backend_emu SOURCES test_cuda_backend.c LIBS qrunlib_kemu LABELS cpu emu
                ARGS --part model)
    add_dependencies(test_cuda_backend_emu qplan)
    foreach(part batch kernels)
      add_test(NAME test_cuda_backend_emu_${part} COMMAND test_cuda_backend_emu --part ${part})
      set_tests_properties(test_cuda_backend_emu_${part} PROPERTIES LABELS "cpu;emu" SKIP_RETURN_CODE 77)
    endforeach()
    # whole models through the emulated kernels: minutes each on 2 busy cores, so twice the usual limit
    get_test_property(test_cuda_backend_emu TIMEOUT qp_cbe_timeout)
    math(EXPR qp_cbe_timeout "${qp_cbe_timeout} * 2")
    set_tests_properties(test_cuda_backend_emu test_cuda_backend_emu_batch test_cuda_backend_emu_kernels
                         PROPERTIES TIMEOUT ${qp_cbe_timeout})
    set_tests_properties(test_cuda_backend_emu PROPERTIES COST 150)
    set_tests_properties(test_cuda_backend_emu_batch PROPERTIES COST 190)
    set_tests_properties(test_cuda_backend_emu_kernels PROPERTIES COST 60)

    # qplan with the emulated runtime: qplan tune on the emulated kernels (tests/tune/tune.sh)
    add_executable(qplan_emu ${CMAKE_SOURCE_DIR}/compiler/main.c ${CMAKE_SOURCE_DIR}/compiler/cmd_tune.c)
    target_include_directories(qplan_emu PRIVATE ${CMAKE_SOURCE_DIR}/compiler)
    target_link_libraries(qplan_emu PRIVATE qpcompiler qrunlib_kemu)
  endif()
  # Again with the threads of each block resumed in reverse and in shuffled order (kemu.cpp,
  # read_schedule): a missing barrier between one warp's write and another's read fails in some
  # order.
  foreach(order reverse shuffle)
    add_test(NAME test_gpu_ops_emu_${order} COMMAND test_gpu_ops_emu)
    set_tests_properties(test_gpu_ops_emu_${order} PROPERTIES LABELS "cpu;emu;emu_variant" TIMEOUT 900
                         ENVIRONMENT "KEMU_SCHEDULE=${order}")
  endforeach()
endif()
