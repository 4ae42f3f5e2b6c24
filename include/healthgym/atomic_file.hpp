#pragma once
// Every output is written beside its destination and renamed into place, so a
// failure never leaves a partial file and never clobbers an earlier good one.
#include <functional>
#include <string>

namespace healthgym {

// Calls write(tmp_path), then renames tmp_path to path. On any exception the
// temporary file is removed and the exception propagates; path is untouched.
void write_atomically(const std::string& path,
                      const std::function<void(const std::string&)>& write);

// Convenience for text content.
void write_text_atomically(const std::string& path, const std::string& content);

// Throws IoError if the directory that would hold path does not exist or is not writable.
void check_writable(const std::string& path);

// mkdir -p: creates dir and its missing parents; throws IoError naming the part
// that could not be made. (POSIX calls, not std::filesystem: PyTorch's wheels
// export their own copy of libstdc++'s filesystem code, pytorch#133437, and
// programs linking them crashed in std::filesystem's directory walks.)
void make_directories(const std::string& dir);

}  // namespace healthgym
