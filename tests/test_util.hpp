#pragma once
// Small helpers shared by the tests: temporary directories, files, commands.
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "healthgym/train.hpp"

namespace healthgym::testing {

class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() /
            ("healthgym_test_" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::string write(const std::string& name, const std::string& content) const {
    std::ofstream(file(name), std::ios::binary) << content;
    return file(name);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

struct CommandResult {
  int exit_code;
  std::string output;  // stdout and stderr together
};

inline CommandResult run_command(const std::string& cmd) {
  CommandResult r{-1, ""};
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.output.append(buf.data(), n);
  const int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

inline std::string source_path(const std::string& rel) {
  return std::string(HEALTHGYM_SOURCE_DIR) + "/" + rel;
}

// The first `patients` patients of a bundled dataset, as a new file.
inline std::string head_patients(const TempDir& dir, const std::string& src, int patients,
                                 const std::string& name) {
  std::ifstream in(src);
  std::string header, line, out, last_id;
  std::getline(in, header);
  out = header + "\n";
  int seen = 0;
  while (std::getline(in, line)) {
    const std::string id = line.substr(0, line.find(','));
    if (id != last_id) {
      if (++seen > patients) break;
      last_id = id;
    }
    out += line + "\n";
  }
  return dir.write(name, out);
}

// A small, fast training configuration from `base` (a preset) on the first
// `patients` of a bundled dataset, "pbcseq" or "physionet": width 16, T 20, one
// epoch, the checkpoint at dir/model.hg.
inline TrainConfig small_config(const TempDir& dir, TrainConfig base, const std::string& dataset,
                                int patients) {
  const bool pbc = dataset == "pbcseq";
  base.data_path =
      head_patients(dir, source_path(pbc ? "data/pbcseq.csv" : "data/physionet2012_set_a.csv"),
                    patients, dataset + ".csv");
  base.id_column = pbc ? "id" : "stay_id";
  base.time_column = pbc ? "day" : "hour";
  base.out_path = dir.file("model.hg");
  base.hidden = 16;
  base.diffusion.n_steps = 20;
  base.epochs = 1;
  return base;
}

}  // namespace healthgym::testing
