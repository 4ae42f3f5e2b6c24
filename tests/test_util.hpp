#pragma once
// Small helpers shared by the tests: temporary directories, files, commands.
#include <dirent.h>
#include <ftw.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "healthgym/error.hpp"
#include "healthgym/sample.hpp"
#include "healthgym/train.hpp"

namespace healthgym::testing {

// Directory walks through POSIX, not std::filesystem: PyTorch's wheels export
// their own copy of libstdc++'s filesystem code (pytorch#133437), and
// std::filesystem::remove_all crashed in tests linked against them.
inline void remove_tree(const std::string& path) {
  nftw(
      path.c_str(),
      [](const char* p, const struct stat*, int, struct FTW*) {
        ::remove(p);  // best effort, as remove_all with an error_code was
        return 0;
      },
      16, FTW_DEPTH | FTW_PHYS);
}

inline std::vector<std::string> list_directory(const std::string& path) {
  std::vector<std::string> names;
  if (DIR* d = opendir(path.c_str())) {
    while (const dirent* e = readdir(d)) {
      const std::string n = e->d_name;
      if (n != "." && n != "..") names.push_back(n);
    }
    closedir(d);
  }
  std::sort(names.begin(), names.end());
  return names;
}

class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/healthgym_test_XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed: " + tmpl);
    path_ = tmpl;
  }
  ~TempDir() { remove_tree(path_.string()); }
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

// The message of the healthgym::Error that f throws, or "(no error)".
inline std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

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
  // The default preset's auto precision depends on the CPU; tests pin fp32.
  if (base.precision == Precision::kAuto) base.precision = Precision::kFp32;
  return base;
}

// The smallest run worth training: width 16, one level, T 10, one epoch, on
// data_path (columns id and time), the checkpoint at out_path.
inline TrainConfig tiny_run_config(TrainConfig base, const std::string& data_path,
                                   const std::string& id, const std::string& time,
                                   const std::string& out_path) {
  base.data_path = data_path;
  base.id_column = id;
  base.time_column = time;
  base.out_path = out_path;
  base.hidden = 16;
  base.levels = 1;
  base.diffusion.n_steps = 10;
  base.epochs = 1;
  if (base.precision == Precision::kAuto) base.precision = Precision::kFp32;
  return base;
}

// Sampling from model_path to out_path: n patients by DDIM in `steps` steps,
// everything else as SampleConfig has it.
inline SampleConfig ddim_config(const std::string& model_path, const std::string& out_path,
                                int64_t n, int64_t steps) {
  SampleConfig s;
  s.model_path = model_path;
  s.out_path = out_path;
  s.n = n;
  s.sampler = SamplerKind::kDdim;
  s.sample_steps = steps;
  return s;
}

// 80 patients of 8 steps: a and b measured together at even steps (Jaccard 1:
// one missing group at any threshold), b missing on every other of them.
inline std::string grouped_csv(const TempDir& dir) {
  std::string s = "id,t,a,b\n";
  for (int p = 0; p < 80; ++p)
    for (int t = 0; t < 8; ++t) {
      s += std::to_string(p) + "," + std::to_string(t) + ",";
      if (t % 2 == 0)
        s += std::to_string(p % 7 + t) + "," +
             (t % 4 == 0 ? std::to_string(p % 5 + t) + "." + std::to_string(p % 3) : "");
      else
        s += ",";
      s += "\n";
    }
  return dir.write("grouped.csv", s);
}

}  // namespace healthgym::testing
