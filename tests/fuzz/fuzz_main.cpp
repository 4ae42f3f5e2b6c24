// libFuzzer entry point; HEALTHGYM_FUZZ_ENTRY names the fuzz_entries function.
#include "fuzz_entries.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  healthgym::fuzz::HEALTHGYM_FUZZ_ENTRY(data, size);
  return 0;
}
