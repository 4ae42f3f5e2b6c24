#include "healthgym/atomic_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

#include "healthgym/error.hpp"

namespace healthgym {

namespace fs = std::filesystem;

namespace {

// Same directory as the destination so the final rename never crosses a file system; pid and a
// counter keep concurrent writers (threads or processes) from sharing a temporary.
std::string temporary_name(const std::string& path) {
  static std::atomic<unsigned long> counter{0};
  return path + ".tmp." + std::to_string(static_cast<long>(::getpid())) + "." +
         std::to_string(counter.fetch_add(1));
}

// Best effort: flush the data to disk before the rename makes it visible, so a crash cannot
// leave a renamed but empty file. Failure here is not fatal (some file systems refuse fsync).
void sync_path(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return;
  (void)::fsync(fd);
  ::close(fd);
}

// iostreams do not promise to set errno; fall back to a plain phrase rather than "Success".
std::string stream_error_text() {
  return errno != 0 ? std::string(std::strerror(errno)) : std::string("write failed");
}

void remove_quietly(const std::string& path) {
  std::error_code ec;
  fs::remove(path, ec);
}

std::string parent_dir(const std::string& path) {
  const fs::path parent = fs::path(path).parent_path();
  return parent.empty() ? std::string(".") : parent.string();
}

}  // namespace

void write_atomically(const std::string& path,
                      const std::function<void(const std::string&)>& write) {
  const std::string tmp = temporary_name(path);
  try {
    write(tmp);
    sync_path(tmp, O_RDONLY);
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
      const int err = errno;
      throw IoError("cannot rename " + tmp + " to " + path + ": " + std::strerror(err));
    }
  } catch (...) {
    remove_quietly(tmp);
    throw;
  }
  sync_path(parent_dir(path), O_RDONLY | O_DIRECTORY);  // make the rename itself durable
}

void write_text_atomically(const std::string& path, const std::string& content) {
  write_atomically(path, [&](const std::string& tmp) {
    errno = 0;
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw IoError("cannot write " + path + ": " + stream_error_text());
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    out.close();
    if (!out) throw IoError("cannot write " + path + ": " + stream_error_text());
  });
}

void check_writable(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) throw IoError(path + " is a directory");
  const std::string dir = parent_dir(path);
  if (!fs::exists(dir, ec)) {
    throw IoError("cannot write " + path + ": directory " + dir + " does not exist");
  }
  if (!fs::is_directory(dir, ec)) {
    throw IoError("cannot write " + path + ": " + dir + " is not a directory");
  }
  if (::access(dir.c_str(), W_OK) != 0) {
    throw IoError("cannot write " + path + ": directory " + dir + " is not writable");
  }
}

void make_directories(const std::string& dir) {
  if (dir.empty()) throw IoError("cannot create a directory with an empty name");
  struct stat st {};
  std::string part;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = dir.find('/', pos + 1);
    part = dir.substr(0, pos);
    if (part.empty() || ::stat(part.c_str(), &st) == 0) {
      if (!part.empty() && !S_ISDIR(st.st_mode))
        throw IoError("cannot create directory " + dir + ": " + part + " is not a directory");
      continue;
    }
    if (::mkdir(part.c_str(), 0777) != 0 && errno != EEXIST)
      throw IoError("cannot create directory " + part + ": " + std::strerror(errno));
  }
}

}  // namespace healthgym
