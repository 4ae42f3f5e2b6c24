#pragma once
// What the fuzzers feed: each entry takes arbitrary bytes and must either
// accept them or throw a healthgym::Error (a one-line message and an exit
// code); it catches only those, so a crash or any other exception is a finding.
// tests/test_fuzz_regressions.cpp runs every kept input through the same
// entries in the normal build.
#include <cstddef>
#include <cstdint>

namespace healthgym::fuzz {

// CSV reader, then schema inference, cohort parsing and the transforms' fit
// (first column as id, second as time).
void csv_input(const uint8_t* data, size_t size);
// Schema file parser, and the round trip of what it accepts.
void schema_input(const uint8_t* data, size_t size);
// Checkpoint loader: a whole file, or (input starting with '{') the metadata
// JSON it holds.
void checkpoint_input(const uint8_t* data, size_t size);

}  // namespace healthgym::fuzz
