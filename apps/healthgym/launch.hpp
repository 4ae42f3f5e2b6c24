#pragma once
// `--nproc N`: start N local ranks of this same command, the way torchrun
// would (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR,
// MASTER_PORT), forward SIGINT/SIGTERM to them once, and wait.
#include <string>
#include <vector>

namespace healthgym::cli {

// main() records its arguments so a command can start copies of itself.
void set_program_args(int argc, char** argv);

struct LaunchResult {
  int world_size = 0;
  double seconds = 0;
};

// Starts the ranks with this process's arguments minus --nproc. Throws the
// first failing rank's error kind (its message was printed by the rank) or
// Interrupted when they stopped on a signal.
LaunchResult launch_local(int nproc);

// Set in a rank started by launch_local: ranks above 0 leave the messages
// every rank would print alike (bad input, usage) to rank 0.
bool is_launched_secondary_rank();
bool is_launched_rank();

}  // namespace healthgym::cli
