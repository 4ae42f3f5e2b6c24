# HEALTHGYM_SANITIZE=address,undefined builds everything with those sanitizers
# (the CI runs the suite so). HEALTHGYM_FUZZ builds the libFuzzer targets
# (clang only) with ASan and UBSan; see scripts/fuzz.sh.
set(HEALTHGYM_SANITIZE "" CACHE STRING "Sanitizers for every target, e.g. address,undefined")
option(HEALTHGYM_FUZZ "Build the libFuzzer targets (needs clang)" OFF)

if(HEALTHGYM_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "HEALTHGYM_FUZZ needs clang (CXX=clang++)")
  endif()
  if(NOT HEALTHGYM_SANITIZE)
    set(HEALTHGYM_SANITIZE "address,undefined")
  endif()
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()

if(HEALTHGYM_SANITIZE)
  # Errors stop the run instead of printing and going on, so CI fails on them.
  add_compile_options(-fsanitize=${HEALTHGYM_SANITIZE} -fno-omit-frame-pointer
                      -fno-sanitize-recover=all)
  add_link_options(-fsanitize=${HEALTHGYM_SANITIZE})
  message(STATUS "healthgym: sanitizers ${HEALTHGYM_SANITIZE}")
endif()
