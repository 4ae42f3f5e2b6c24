#include "common.hpp"

#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <thread>

#include "healthgym/error.hpp"
#include "launch.hpp"

namespace healthgym::cli {

int run_guarded(const std::function<void()>& body) {
  try {
    body();
    return 0;
  } catch (const Error& e) {
    // Every rank reads the same input: rank 0 alone reports what they all hit.
    const bool shared_kind = e.kind() == ErrorKind::kUsage || e.kind() == ErrorKind::kInput ||
                             e.kind() == ErrorKind::kIo || e.kind() == ErrorKind::kInterrupted;
    if (shared_kind && is_launched_secondary_rank()) return e.exit_code();
    std::cerr << (e.kind() == ErrorKind::kInterrupted ? "healthgym: " : "healthgym: error: ")
              << e.what() << "\n";
    return e.exit_code();
  } catch (const c10::Error& e) {
    std::cerr << "healthgym: error: " << first_line(e.what()) << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "healthgym: error: " << e.what() << "\n";
    return 1;
  }
}

void add_threads_option(CLI::App* app, int* threads) {
  app->add_option("--threads", *threads,
                  "CPU threads for LibTorch (0 = all cores; LibTorch alone would use 1 here)")
      ->check(CLI::NonNegativeNumber);
}

void apply_threads(int threads) {
  int n =
      threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  // Ranks sharing a machine share its cores (torchrun's LOCAL_WORLD_SIZE).
  if (const char* lws = std::getenv("LOCAL_WORLD_SIZE"); threads == 0 && lws != nullptr)
    n = std::max(1, n / std::max(1, std::atoi(lws)));
  torch::set_num_threads(n);
}

bool stderr_is_tty() { return isatty(fileno(stderr)) != 0; }

std::string format_duration(double s) {
  if (!(s >= 0) || s > 1e7) return "?";
  const long t = static_cast<long>(s + 0.5);
  char buf[32];
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, (t / 60) % 60);
  else if (t >= 60)
    std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  else
    std::snprintf(buf, sizeof buf, "%lds", t);
  return buf;
}

void StatusLine::update(const std::string& text, bool final_line) {
  const double now =
      std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  if (tty_) {
    // Redraw at most 10 times a second, always for final lines.
    if (!final_line && now - last_draw_ < 0.1) return;
    last_draw_ = now;
    std::string pad(last_width_ > text.size() ? last_width_ - text.size() : 0, ' ');
    std::cerr << '\r' << text << pad << (final_line ? "\n" : "") << std::flush;
    last_width_ = final_line ? 0 : text.size();
  } else if (final_line || now - last_draw_ >= 30.0) {
    // Logs get a line per final event, and one every 30 s of long work.
    if (!final_line) last_draw_ = now;
    std::cerr << text << "\n" << std::flush;
  }
}

void StatusLine::finish() {
  if (tty_ && last_width_ > 0) std::cerr << "\n";
  last_width_ = 0;
}

}  // namespace healthgym::cli
