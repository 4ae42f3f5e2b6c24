#pragma once
// Shared CLI helpers: thread setup, terminal progress, and mapping library
// exceptions to one-line messages and exit codes.
#include <CLI/CLI.hpp>
#include <functional>
#include <string>

namespace healthgym::cli {

// Exit codes: 0 ok, 1 unexpected, 2 usage, 3 bad input, 4 I/O, 5 runtime.
int run_guarded(const std::function<void()>& body);

// Registers --threads on a subcommand; apply_threads() sets LibTorch's pool.
void add_threads_option(CLI::App* app, int* threads);
void apply_threads(int threads);

bool stderr_is_tty();
std::string format_duration(double seconds);

// A status line that redraws in place on a terminal and otherwise prints
// only the lines marked final (so logs stay readable).
class StatusLine {
 public:
  void update(const std::string& text, bool final_line);
  void finish();

 private:
  bool tty_ = stderr_is_tty();
  size_t last_width_ = 0;
  double last_draw_ = -1e9;
};

}  // namespace healthgym::cli
