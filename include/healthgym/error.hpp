#pragma once
// Error types thrown by the library. The CLI maps each kind to an exit code;
// the library itself never prints or exits.
#include <stdexcept>
#include <string>

namespace healthgym {

enum class ErrorKind {
  kUsage = 2,         // a configuration or argument that cannot work
  kInput = 3,         // the data, schema or checkpoint given is malformed
  kIo = 4,            // a file cannot be read or written
  kRuntime = 5,       // the computation failed (e.g. the guardrail never accepted enough)
  kInterrupted = 130  // stopped by SIGINT/SIGTERM after saving what can be resumed
};

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& what) : std::runtime_error(what), kind_(kind) {}
  ErrorKind kind() const { return kind_; }
  int exit_code() const { return static_cast<int>(kind_); }

 private:
  ErrorKind kind_;
};

struct UsageError : Error {
  explicit UsageError(const std::string& w) : Error(ErrorKind::kUsage, w) {}
};
struct InputError : Error {
  explicit InputError(const std::string& w) : Error(ErrorKind::kInput, w) {}
};
struct IoError : Error {
  explicit IoError(const std::string& w) : Error(ErrorKind::kIo, w) {}
};
struct RuntimeError : Error {
  explicit RuntimeError(const std::string& w) : Error(ErrorKind::kRuntime, w) {}
};
struct Interrupted : Error {
  explicit Interrupted(const std::string& w) : Error(ErrorKind::kInterrupted, w) {}
};

// "file:line:col: message (value 'v')": the one format every input error uses.
std::string located(const std::string& file, long line, long col, const std::string& message,
                    const std::string& value);

// The first line of a message: LibTorch's and c10d's carry a C++ stack trace after it.
std::string first_line(const std::string& message);

}  // namespace healthgym
