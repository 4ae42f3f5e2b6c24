#include "launch.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "healthgym/error.hpp"

extern char** environ;

namespace healthgym::cli {

namespace {

std::vector<std::string> g_args;
volatile sig_atomic_t g_signal = 0;
void remember_signal(int sig) { g_signal = sig; }

// A port the kernel just handed out on loopback: free unless raced for.
int free_loopback_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw IoError(std::string("cannot open a socket: ") + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    close(fd);
    throw IoError(std::string("cannot find a free loopback port: ") + std::strerror(errno));
  }
  close(fd);
  return ntohs(addr.sin_port);
}

std::vector<std::string> args_without_nproc() {
  std::vector<std::string> out;
  for (size_t i = 0; i < g_args.size(); ++i) {
    if (g_args[i] == "--nproc") {
      ++i;
      continue;
    }
    if (g_args[i].rfind("--nproc=", 0) == 0) continue;
    out.push_back(g_args[i]);
  }
  return out;
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

void set_program_args(int argc, char** argv) { g_args.assign(argv, argv + argc); }

bool is_launched_secondary_rank() {
  const char* l = std::getenv("HEALTHGYM_LAUNCHED");
  const char* r = std::getenv("RANK");
  return l != nullptr && r != nullptr && std::strcmp(r, "0") != 0;
}

bool is_launched_rank() { return std::getenv("HEALTHGYM_LAUNCHED") != nullptr; }

LaunchResult launch_local(int nproc) {
  if (const char* ws = std::getenv("WORLD_SIZE"); ws != nullptr && *ws != '\0')
    throw UsageError("--nproc starts its own ranks; it cannot be combined with WORLD_SIZE=" +
                     std::string(ws) + " in the environment");
  if (nproc < 2 || nproc > 1024) throw UsageError("--nproc must be in [1, 1024]");
  const auto args = args_without_nproc();
  const int port = free_loopback_port();
  const double t0 = now_s();

  // Ranks get their own process group: a terminal's Ctrl-C reaches only this
  // launcher, which passes it on once (a second SIGINT would kill a rank at once).
  struct sigaction sa {
  }, old_int{}, old_term{};
  sa.sa_handler = remember_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);

  std::vector<pid_t> pids;
  auto kill_all = [&](int sig) {
    for (pid_t p : pids)
      if (p > 0) kill(p, sig);
  };
  for (int r = 0; r < nproc; ++r) {
    std::vector<std::string> env;
    const auto ours = [](const std::string& kv) {
      for (const char* k : {"RANK=", "WORLD_SIZE=", "LOCAL_RANK=", "LOCAL_WORLD_SIZE=",
                            "MASTER_ADDR=", "MASTER_PORT=", "HEALTHGYM_LAUNCHED="})
        if (kv.rfind(k, 0) == 0) return true;
      return false;
    };
    for (char** e = environ; *e != nullptr; ++e)
      if (!ours(*e)) env.emplace_back(*e);
    env.push_back("RANK=" + std::to_string(r));
    env.push_back("LOCAL_RANK=" + std::to_string(r));
    env.push_back("WORLD_SIZE=" + std::to_string(nproc));
    env.push_back("LOCAL_WORLD_SIZE=" + std::to_string(nproc));
    env.push_back("MASTER_ADDR=127.0.0.1");
    env.push_back("MASTER_PORT=" + std::to_string(port));
    env.push_back("HEALTHGYM_LAUNCHED=1");
    std::vector<char*> argv, envp;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);

    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&attr, 0);
    pid_t pid = 0;
    const int rc = posix_spawn(&pid, "/proc/self/exe", nullptr, &attr, argv.data(), envp.data());
    posix_spawnattr_destroy(&attr);
    if (rc != 0) {
      kill_all(SIGKILL);
      for (pid_t p : pids) waitpid(p, nullptr, 0);
      throw IoError("cannot start rank " + std::to_string(r) + ": " + std::strerror(rc));
    }
    pids.push_back(pid);
  }

  std::vector<int> codes(static_cast<size_t>(nproc), -1);
  int running = nproc, first_failed = -1;
  double failed_at = 0;
  bool forwarded = false;
  while (running > 0) {
    if (g_signal != 0 && !forwarded) {
      kill_all(g_signal);
      forwarded = true;
    }
    int status = 0;
    const pid_t p = waitpid(-1, &status, WNOHANG);
    if (p > 0) {
      for (int r = 0; r < nproc; ++r)
        if (pids[static_cast<size_t>(r)] == p) {
          codes[static_cast<size_t>(r)] = WIFEXITED(status)     ? WEXITSTATUS(status)
                                          : WIFSIGNALED(status) ? 128 + WTERMSIG(status)
                                                                : 1;
          pids[static_cast<size_t>(r)] = -1;
          --running;
          if (codes[static_cast<size_t>(r)] != 0 && first_failed < 0) {
            first_failed = r;
            failed_at = now_s();
          }
        }
      continue;
    }
    // The others notice a lost rank through the group and exit; any still
    // running well after that are stopped.
    if (first_failed >= 0 && now_s() - failed_at > 15.0) kill_all(SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);

  if (first_failed >= 0) {
    const int code = codes[static_cast<size_t>(first_failed)];
    const std::string msg = "rank " + std::to_string(first_failed) + " of " +
                            std::to_string(nproc) + " exited with code " + std::to_string(code);
    if (code == static_cast<int>(ErrorKind::kInterrupted) || forwarded)
      throw Interrupted("ranks stopped on a signal (" + msg + ")");
    if (code >= 2 && code <= 5) throw Error(static_cast<ErrorKind>(code), msg);
    throw RuntimeError(msg);
  }
  LaunchResult res;
  res.world_size = nproc;
  res.seconds = now_s() - t0;
  return res;
}

}  // namespace healthgym::cli
