// The Gaussian start of sampling (see StartBasis).
#include <algorithm>
#include <cmath>

#include "healthgym/diffusion.hpp"
#include "healthgym/error.hpp"

namespace healthgym {

StartBasis fit_start_basis(const torch::Tensor& x_in, const torch::Tensor& mean_in,
                           int64_t max_components) {
  if (x_in.dim() != 3 || mean_in.dim() != 2 || x_in.size(1) != mean_in.size(0) ||
      x_in.size(2) != mean_in.size(1))
    throw UsageError("fit_start_basis: x must be [N, C, L] and mean [C, L]");
  if (max_components < 0) throw UsageError("fit_start_basis: max_components must be >= 0");
  torch::NoGradGuard no_grad;
  const int64_t n = x_in.size(0), c = x_in.size(1), len = x_in.size(2), cells = c * len;
  auto d = (x_in.to(torch::kCPU, torch::kDouble) - mean_in.to(torch::kCPU, torch::kDouble))
               .reshape({n, cells});
  auto var = n > 0 ? d.square().mean(0) : torch::zeros({cells}, torch::kDouble);
  const int64_t k = std::min({max_components, n / 8, cells});
  StartBasis out;
  out.basis = torch::zeros({0, c, len});
  if (k > 0) {
    // Directions from the Gram matrix of an evenly strided subset: its size is
    // bounded whatever the cohort's, and eigh of it is exact.
    const int64_t m = std::min(n, kStartFitPatients);
    auto rows =
        torch::linspace(0, static_cast<double>(n - 1), m, torch::kDouble).round().to(torch::kLong);
    auto ds = d.index_select(0, rows);
    auto eig = torch::linalg_eigh(ds.matmul(ds.t()), "L");
    auto values = std::get<0>(eig), vectors = std::get<1>(eig);  // ascending
    // Each direction's unit vector is ds' u / s, its variance s^2 / m; so
    // ds' u / sqrt(m) is the direction scaled to its standard deviation.
    std::vector<torch::Tensor> keep;
    for (int64_t i = m - 1; i >= 0 && static_cast<int64_t>(keep.size()) < k; --i) {
      if (!(values[i].item<double>() > 1e-9 * std::max(1.0, values[m - 1].item<double>()))) break;
      keep.push_back(ds.t().matmul(vectors.select(1, i)) / std::sqrt(static_cast<double>(m)));
    }
    if (!keep.empty()) {
      auto b = torch::stack(keep);  // [K, cells]
      // A subset's directions may claim more of a cell than all patients
      // hold: scaled down there so no residual variance goes negative.
      auto claimed = b.square().sum(0);
      auto scale = (var / claimed.clamp_min(1e-30)).clamp_max(1.0).sqrt();
      b = b * torch::where(claimed > var, scale, torch::ones_like(scale));
      var = (var - b.square().sum(0)).clamp_min(0.0);
      out.basis = b.view({-1, c, len}).to(torch::kFloat);
    }
  }
  out.resid_std = var.sqrt().view({c, len}).to(torch::kFloat);
  return out;
}

torch::Tensor draw_start(const StartBasis& start, const torch::Tensor& mean, double alpha_bar_T,
                         int64_t b) {
  if (!(alpha_bar_T > 0.0 && alpha_bar_T <= 1.0))
    throw UsageError("draw_start: abar_T must be in (0, 1]");
  const auto opts = mean.options();
  const int64_t c = mean.size(0), len = mean.size(1), k = start.basis.size(0);
  // The residual's draw and the forward noise are independent normals per
  // cell: one draw with their variances added.
  auto z = torch::randn({b, c, len}, opts);
  auto g = mean.unsqueeze(0).expand({b, c, len});
  if (k > 0) {
    auto zk = torch::randn({b, k}, opts);
    auto basis = start.basis.to(opts);
    g = g + zk.matmul(basis.view({k, c * len})).view({b, c, len});
  }
  auto resid = start.resid_std.to(opts);
  return std::sqrt(alpha_bar_T) * g +
         (alpha_bar_T * resid.square() + (1.0 - alpha_bar_T)).sqrt() * z;
}

}  // namespace healthgym
