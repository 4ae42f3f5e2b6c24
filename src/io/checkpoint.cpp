#include "healthgym/checkpoint.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "healthgym/atomic_file.hpp"
#include "healthgym/compat.hpp"
#include "healthgym/error.hpp"

namespace healthgym {

using nlohmann::json;

DiffusionModel DiffusionModel::create(const Encoder& encoder, const UNetConfig& unet,
                                      const DiffusionConfig& diffusion,
                                      const ConditionSpec& conditions) {
  DiffusionModel m;
  m.encoder = encoder;
  m.conditions = conditions;
  m.unet_config = unet;
  m.unet_config.cond_sizes = conditions.embedding_sizes();
  m.unet_config.features = encoder.channels();
  m.unet_config.n_steps = diffusion.n_steps;
  m.diffusion = diffusion;
  m.net = UNet(m.unet_config);
  m.schedule = NoiseSchedule(diffusion);
  return m;
}

void DiffusionModel::to(const torch::Device& device) {
  net->to(device);
  if (ema) ema->to(device);
  schedule->to(device);
  if (x0_mean.defined()) {
    x0_mean = x0_mean.to(device);
    x0_std = x0_std.to(device);
  }
  if (start.basis.defined()) {
    start.basis = start.basis.to(device);
    start.resid_std = start.resid_std.to(device);
  }
}

torch::Tensor cpu_rng_state() {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}

void set_cpu_rng_state(const torch::Tensor& state) {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

std::string rng_state_to_hex(const torch::Tensor& state) {
  auto bytes = state.to(torch::kCPU).contiguous();
  const auto* p = bytes.data_ptr<uint8_t>();
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(static_cast<size_t>(bytes.numel()) * 2);
  for (int64_t i = 0; i < bytes.numel(); ++i) {
    out += digits[p[i] >> 4];
    out += digits[p[i] & 15];
  }
  return out;
}

torch::Tensor rng_state_from_hex(const std::string& hex) {
  if (hex.size() % 2 != 0) throw InputError("checkpoint: a generator state is malformed");
  auto out = torch::empty({static_cast<int64_t>(hex.size() / 2)}, torch::kUInt8);
  auto* p = out.data_ptr<uint8_t>();
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    throw InputError("checkpoint: a generator state is malformed");
  };
  for (size_t i = 0; i < hex.size() / 2; ++i)
    p[i] = static_cast<uint8_t>(nibble(hex[2 * i]) * 16 + nibble(hex[2 * i + 1]));
  return out;
}

namespace {

// The file: "HGCK", format version (u32), payload length (u64), CRC-32 of the
// payload (u32), all little-endian, then LibTorch's zip archive. The checksum
// catches truncation and corruption before LibTorch's reader sees the bytes
// (fuzzing found inputs that crash it).
constexpr char kMagic[4] = {'H', 'G', 'C', 'K'};
constexpr size_t kHeaderBytes = 20;

void put_le(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out += static_cast<char>((v >> (8 * i)) & 0xFF);
}
uint64_t get_le(const std::string& in, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i)
    v |= static_cast<uint64_t>(static_cast<unsigned char>(in[at + static_cast<size_t>(i)]))
         << (8 * i);
  return v;
}
uint32_t crc_of(const char* data, size_t size) {
  uLong crc = crc32(0L, Z_NULL, 0);
  while (size > 0) {
    const uInt chunk = static_cast<uInt>(std::min<size_t>(size, 1u << 30));
    crc = crc32(crc, reinterpret_cast<const Bytef*>(data), chunk);
    data += chunk;
    size -= chunk;
  }
  return static_cast<uint32_t>(crc);
}

std::string container_header(const std::string& payload) {
  std::string h(kMagic, 4);
  put_le(h, static_cast<uint64_t>(kCheckpointFormatVersion), 4);
  put_le(h, payload.size(), 8);
  put_le(h, crc_of(payload.data(), payload.size()), 4);
  return h;
}

}  // namespace

void save_checkpoint(const std::string& path, DiffusionModel& model, json meta,
                     torch::optim::Optimizer* optimizer, const torch::Tensor& rng_state) {
  meta["format"] = "healthgym-checkpoint";
  meta["format_version"] = kCheckpointFormatVersion;
  meta["healthgym_version"] = kHealthgymVersion;
  meta["torch_version"] = compat::torch_version();
  meta["encoder"] = model.encoder.to_json();
  meta["unet"] = model.unet_config.to_json();
  meta["diffusion"] = model.diffusion.to_json();
  if (!model.conditions.empty()) meta["conditions"] = model.conditions.to_json();
  meta["training_fingerprints"] = model.training_fingerprints;
  if (!model.observations.empty()) meta["observations"] = model.observations.to_json();
  if (!model.repeats.empty()) meta["value_repeats"] = model.repeats.to_json();
  if (!model.schedules.empty()) meta["schedule_model"] = model.schedules.to_json();

  torch::serialize::OutputArchive archive;
  archive.write("meta", c10::IValue(meta.dump()));
  torch::serialize::OutputArchive weights;
  // Weights are saved from CPU copies so a CUDA run's checkpoint loads anywhere.
  auto device = model.net->parameters().empty() ? torch::Device(torch::kCPU)
                                                : model.net->parameters().front().device();
  model.net->to(torch::kCPU);
  model.net->save(weights);
  archive.write("weights", weights);
  if (model.ema) {
    torch::serialize::OutputArchive ema;
    model.ema->to(torch::kCPU);
    model.ema->save(ema);
    model.ema->to(device);
    archive.write("ema", ema);
  }
  if (optimizer) {
    torch::serialize::OutputArchive opt;
    optimizer->save(opt);
    archive.write("optimizer", opt);
  }
  if (model.x0_mean.defined()) {
    archive.write("x0_mean", model.x0_mean.to(torch::kCPU));
    archive.write("x0_std", model.x0_std.to(torch::kCPU));
  }
  if (model.start.basis.defined()) {
    archive.write("start_basis", model.start.basis.to(torch::kCPU));
    archive.write("start_resid_std", model.start.resid_std.to(torch::kCPU));
  }
  if (!model.schedules.empty()) {
    torch::serialize::OutputArchive schedules;
    model.schedules.save(schedules);
    archive.write("schedule_net", schedules);
  }
  archive.write("rng", rng_state.defined() ? rng_state : cpu_rng_state());
  std::ostringstream zip;
  archive.save_to(zip);
  const std::string payload = zip.str();
  write_text_atomically(path, container_header(payload) + payload);
  model.net->to(device);
}

DiffusionModel model_from_meta(const json& meta, const std::string& path) {
  try {
    if (!meta.is_object() || meta.value("format", "") != "healthgym-checkpoint")
      throw InputError(path + ": not a healthgym checkpoint");
    const int version = meta.value("format_version", -1);
    if (version != kCheckpointFormatVersion)
      throw InputError(path + ": checkpoint format version " + std::to_string(version) +
                       " is not supported (this build reads version " +
                       std::to_string(kCheckpointFormatVersion) + "); retrain or use healthgym " +
                       meta.value("healthgym_version", std::string("?")));
    auto encoder = Encoder::from_json(meta.at("encoder"));
    auto unet = UNetConfig::from_json(meta.at("unet"));
    auto diffusion = DiffusionConfig::from_json(meta.at("diffusion"));
    // The weights must match these shapes anyway; refuse sizes no real
    // checkpoint has before allocating them.
    const double width = static_cast<double>(unet.hidden);
    const double approx_params = width * width * 24.0 * static_cast<double>(unet.levels + 1) +
                                 width * static_cast<double>(encoder.channels()) * 4.0;
    if (unet.hidden > 65536 || unet.levels > 16 || approx_params > 5e8 ||
        encoder.working_length() > (int64_t{1} << 20))
      throw InputError(path + ": checkpoint declares an implausible network (hidden " +
                       std::to_string(unet.hidden) + ", levels " + std::to_string(unet.levels) +
                       ", length " + std::to_string(encoder.working_length()) + ")");
    ConditionSpec conditions;
    if (meta.contains("conditions"))
      conditions = ConditionSpec::from_json(meta.at("conditions"), encoder.schema());
    try {
      conditions.check_lengths(encoder.length_counts());
    } catch (const InputError& e) {
      throw InputError(path + ": checkpoint conditions: " + e.what());
    }
    DiffusionModel model = DiffusionModel::create(encoder, unet, diffusion, conditions);
    if (model.unet_config.features != unet.features ||
        model.unet_config.cond_sizes != unet.cond_sizes)
      throw InputError(path + ": checkpoint's network width does not match its schema");
    if (meta.contains("training_fingerprints"))
      model.training_fingerprints = meta.at("training_fingerprints").get<std::vector<uint64_t>>();
    if (meta.contains("observations"))
      model.observations = ObservationModel::from_json(meta.at("observations"), encoder.channels(),
                                                       encoder.working_length());
    if (meta.contains("value_repeats"))
      model.repeats = ValueRepeats::from_json(meta.at("value_repeats"), encoder.schema());
    return model;
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw InputError(path +
                     ": checkpoint metadata is incomplete or corrupt: " + first_line(e.what()));
  }
}

CheckpointContents load_checkpoint(const std::string& path, const torch::Device& device) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(path, ec)) throw IoError("cannot open checkpoint " + path + ": no such file");
  if (fs::is_directory(path, ec))
    throw IoError("cannot open checkpoint " + path + ": is a directory");
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw IoError("cannot open checkpoint " + path);
    std::ostringstream ss;
    ss << in.rdbuf();
    bytes = ss.str();
  }
  if (bytes.size() >= 2 && bytes[0] == 'P' && bytes[1] == 'K')
    throw InputError(path + ": checkpoint format version 1 is not supported (this build reads " +
                     "version " + std::to_string(kCheckpointFormatVersion) +
                     "); retrain with this healthgym");
  if (bytes.size() < 4 || bytes.compare(0, 4, kMagic, 4) != 0)
    throw InputError(path + ": not a healthgym checkpoint");
  if (bytes.size() < kHeaderBytes)
    throw InputError(path + ": cannot read checkpoint (truncated or corrupt): " +
                     std::to_string(bytes.size()) + " bytes, shorter than its header");
  const auto version = static_cast<int64_t>(get_le(bytes, 4, 4));
  if (version != kCheckpointFormatVersion)
    throw InputError(path + ": checkpoint format version " + std::to_string(version) +
                     " is not supported (this build reads version " +
                     std::to_string(kCheckpointFormatVersion) + ")");
  const uint64_t length = get_le(bytes, 8, 8);
  if (length != bytes.size() - kHeaderBytes)
    throw InputError(path + ": cannot read checkpoint (truncated or corrupt): " +
                     std::to_string(bytes.size() - kHeaderBytes) + " bytes of data where " +
                     std::to_string(length) + " were written");
  if (crc_of(bytes.data() + kHeaderBytes, bytes.size() - kHeaderBytes) != get_le(bytes, 16, 4))
    throw InputError(path + ": cannot read checkpoint (truncated or corrupt): checksum mismatch");
  std::istringstream payload(bytes.substr(kHeaderBytes));
  bytes.clear();
  CheckpointContents out;
  torch::serialize::InputArchive archive;
  json meta;
  try {
    // Tensors land on the CPU whatever device wrote them, then move as asked.
    archive.load_from(payload, torch::Device(torch::kCPU));
    c10::IValue v;
    if (!archive.try_read("meta", v) || !v.isString())
      throw InputError(path + ": not a healthgym checkpoint (no metadata)");
    meta = json::parse(v.toStringRef());
  } catch (const InputError&) {
    throw;
  } catch (const std::exception& e) {
    throw InputError(path +
                     ": cannot read checkpoint (truncated or corrupt): " + first_line(e.what()));
  }
  try {
    out.model = model_from_meta(meta, path);
    torch::serialize::InputArchive weights;
    archive.read("weights", weights);
    out.model.net->load(weights);
    torch::serialize::InputArchive ema;
    if (archive.try_read("ema", ema)) {
      out.model.ema = UNet(out.model.unet_config);
      out.model.ema->load(ema);
      out.model.ema->eval();
    }
    torch::Tensor mean, std;
    if (archive.try_read("x0_mean", mean) && archive.try_read("x0_std", std)) {
      const std::vector<int64_t> want{out.model.encoder.channels(),
                                      out.model.encoder.working_length()};
      if (mean.sizes().vec() != want || std.sizes().vec() != want)
        throw InputError(path + ": checkpoint's start statistics do not match its design tensor");
      out.model.x0_mean = mean.to(device);
      out.model.x0_std = std.to(device);
    }
    torch::Tensor basis, resid;
    if (archive.try_read("start_basis", basis) && archive.try_read("start_resid_std", resid)) {
      const int64_t c = out.model.encoder.channels(), len = out.model.encoder.working_length();
      if (!out.model.x0_mean.defined() || basis.dim() != 3 || basis.size(1) != c ||
          basis.size(2) != len || resid.sizes().vec() != std::vector<int64_t>{c, len})
        throw InputError(path + ": checkpoint's start basis does not match its design tensor");
      out.model.start.basis = basis.to(torch::kFloat).to(device);
      out.model.start.resid_std = resid.to(torch::kFloat).to(device);
    }
    if (meta.contains("schedule_model")) {
      torch::serialize::InputArchive schedules;
      if (!archive.try_read("schedule_net", schedules))
        throw InputError(path + ": checkpoint names a schedule model but holds no weights for it");
      try {
        out.model.schedules = ScheduleModel::load(
            meta.at("schedule_model"), schedules, out.model.encoder.channels(),
            out.model.encoder.working_length(), out.model.conditions.label_sizes());
      } catch (const InputError& e) {
        throw InputError(path + ": " + e.what());
      }
      // It draws the observation model's channels, no others (a value channel
      // set to +-1 would be a corrupt value).
      std::vector<int64_t> units;
      for (const auto& u : out.model.observations.units()) units.push_back(u.channel);
      if (out.model.schedules.channels() != units)
        throw InputError(path +
                         ": checkpoint schedule model: its channels are not the observation "
                         "model's units");
      ScheduleModel::load(meta.at("schedule_model"), schedules, out.model.encoder.channels(),
                          out.model.encoder.working_length(), out.model.conditions.label_sizes());
    }
    torch::Tensor rng;
    archive.read("rng", rng);
    out.rng_state = rng;
    auto opt = std::make_shared<torch::serialize::InputArchive>();
    if (archive.try_read("optimizer", *opt)) out.optimizer_archive = opt;
  } catch (const InputError&) {
    throw;
  } catch (const std::exception& e) {
    throw InputError(path + ": checkpoint is incomplete or corrupt: " + first_line(e.what()));
  }
  out.epoch = meta.value("epoch", int64_t{0});
  out.meta = std::move(meta);
  out.model.to(device);
  return out;
}

void restore_optimizer(const CheckpointContents& ckpt, torch::optim::Optimizer& optimizer) {
  if (!ckpt.optimizer_archive) throw InputError("checkpoint holds no optimizer state to resume");
  optimizer.load(*ckpt.optimizer_archive);
  // The saved moments were read onto the CPU; keep them beside their parameters.
  torch::Device device(torch::kCPU);
  for (const auto& group : optimizer.param_groups())
    for (const auto& p : group.params()) device = p.device();
  if (device.is_cpu()) return;
  for (auto& kv : optimizer.state()) {
    if (auto* s = dynamic_cast<torch::optim::AdamParamState*>(kv.second.get())) {
      s->exp_avg(s->exp_avg().to(device));
      s->exp_avg_sq(s->exp_avg_sq().to(device));
      if (s->max_exp_avg_sq().defined()) s->max_exp_avg_sq(s->max_exp_avg_sq().to(device));
    }
  }
}

}  // namespace healthgym
