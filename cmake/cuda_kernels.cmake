# healthgym's own CUDA kernels (src/cuda/*.cu): a small static library that sees
# only the CUDA runtime, linked into healthgym_core, which then defines
# HEALTHGYM_CUDA_KERNELS. Included at file scope (enable_language must be) and
# only for a LibTorch with CUDA; without a CUDA compiler the library kernels serve.
include(CheckLanguage)
if(NOT CMAKE_CUDA_COMPILER AND CUDAToolkit_NVCC_EXECUTABLE)
  set(CMAKE_CUDA_COMPILER "${CUDAToolkit_NVCC_EXECUTABLE}")  # the toolkit LibTorch found
endif()
check_language(CUDA)
if(CMAKE_CUDA_COMPILER)
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    # Ampere and Hopper natively; newer cards compile the Hopper PTX at load.
    set(CMAKE_CUDA_ARCHITECTURES 80-real 90-real 90-virtual)
  endif()
  # The shared runtime, as LibTorch's: one CUDA runtime in the process (this
  # sets it for every target's link, the executables' included).
  set(CMAKE_CUDA_RUNTIME_LIBRARY Shared)
  enable_language(CUDA)
  add_library(healthgym_cuda_kernels STATIC src/cuda/group_norm_silu.cu)
  set_target_properties(healthgym_cuda_kernels PROPERTIES CUDA_STANDARD 17
    CUDA_STANDARD_REQUIRED ON POSITION_INDEPENDENT_CODE ON)
  target_link_libraries(healthgym_core PRIVATE healthgym_cuda_kernels)
  target_compile_definitions(healthgym_core PRIVATE HEALTHGYM_CUDA_KERNELS)
  message(STATUS "healthgym: CUDA kernels built with ${CMAKE_CUDA_COMPILER}")
else()
  message(STATUS "healthgym: no CUDA compiler found: library kernels only")
endif()
