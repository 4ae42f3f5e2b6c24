# c10d's Gloo backend: LibTorch builds it in, but its header is guarded by
# USE_C10D_GLOO and includes gloo's own headers (Debian: libgloo-dev; PyTorch's
# LibTorch ships them under include/). Found: distributed training is built.
option(HEALTHGYM_DISTRIBUTED "Build distributed training with c10d/Gloo when available" ON)

function(healthgym_enable_gloo target source)
  if(NOT HEALTHGYM_DISTRIBUTED)
    message(STATUS "healthgym: distributed training off (HEALTHGYM_DISTRIBUTED=OFF)")
    return()
  endif()
  find_path(HEALTHGYM_C10D_GLOO_HEADER torch/csrc/distributed/c10d/ProcessGroupGloo.hpp
            HINTS ${TORCH_INCLUDE_DIRS})
  find_path(HEALTHGYM_GLOO_HEADER gloo/config.h HINTS ${TORCH_INCLUDE_DIRS})
  if(HEALTHGYM_C10D_GLOO_HEADER AND HEALTHGYM_GLOO_HEADER)
    # Only the file that includes c10d's headers sees these: switching a backend
    # rebuilds that file alone.
    set_property(SOURCE ${source} APPEND PROPERTY COMPILE_DEFINITIONS HEALTHGYM_GLOO)
    set_property(SOURCE ${source} APPEND PROPERTY INCLUDE_DIRECTORIES ${HEALTHGYM_GLOO_HEADER})
    message(STATUS "healthgym: distributed training with c10d/Gloo (${HEALTHGYM_GLOO_HEADER})")
  else()
    message(WARNING "healthgym: gloo headers not found (Debian: libgloo-dev); "
                    "multi-process training will report that it is not built")
  endif()
endfunction()

# c10d's NCCL backend, for data-parallel training on CUDA: needs a LibTorch with
# CUDA, its ProcessGroupNCCL header and nccl.h
# (PyTorch's wheels bring it in nvidia/nccl/include beside torch/).
function(healthgym_enable_nccl target source)
  if(NOT HEALTHGYM_DISTRIBUTED OR NOT TORCH_CUDA_LIBRARIES)
    return()
  endif()
  find_path(HEALTHGYM_C10D_NCCL_HEADER torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp
            HINTS ${TORCH_INCLUDE_DIRS})
  find_path(HEALTHGYM_NCCL_HEADER nccl.h
            HINTS ${TORCH_INSTALL_PREFIX}/../nvidia/nccl/include ${TORCH_INCLUDE_DIRS})
  if(HEALTHGYM_C10D_NCCL_HEADER AND HEALTHGYM_NCCL_HEADER)
    set_property(SOURCE ${source} APPEND PROPERTY COMPILE_DEFINITIONS HEALTHGYM_NCCL)
    set_property(SOURCE ${source} APPEND PROPERTY INCLUDE_DIRECTORIES ${HEALTHGYM_NCCL_HEADER})
    message(STATUS "healthgym: distributed training on CUDA with c10d/NCCL (${HEALTHGYM_NCCL_HEADER})")
  else()
    message(WARNING "healthgym: nccl.h not found: CUDA ranks reduce through Gloo, if built")
  endif()
endfunction()
