#include <gtest/gtest.h>

#include <limits>

#include "healthgym/error.hpp"
#include "healthgym/grad_scaler.hpp"

using namespace healthgym;

namespace {

struct Fixture {
  torch::Tensor w = torch::ones({3}).requires_grad_();
  torch::optim::SGD opt{std::vector<torch::Tensor>{w}, torch::optim::SGDOptions(1.0)};
  void set_grad(std::vector<float> g) { w.mutable_grad() = torch::tensor(g); }
};

}  // namespace

TEST(GradScaler, ScalesLossAndUnscalesGradients) {
  GradScalerConfig c;
  c.init_scale = 8.0;
  GradScaler s(c);
  EXPECT_FLOAT_EQ(s.scale(torch::tensor(2.0f)).item<float>(), 16.f);
  Fixture f;
  f.set_grad({8, 16, -8});
  s.unscale(f.opt);
  EXPECT_TRUE(torch::allclose(f.w.grad(), torch::tensor({1.f, 2.f, -1.f})));
  EXPECT_FALSE(s.found_inf());
  EXPECT_THROW(s.unscale(f.opt), RuntimeError);  // twice before update
  EXPECT_TRUE(s.step(f.opt));
  EXPECT_TRUE(torch::allclose(f.w, torch::tensor({0.f, -1.f, 2.f})));
  s.update();
  EXPECT_EQ(s.growth_tracker(), 1);
}

TEST(GradScaler, SkipsStepAndBacksOffOnNonFinite) {
  GradScalerConfig c;
  c.init_scale = 1024.0;
  GradScaler s(c);
  for (float bad : {std::numeric_limits<float>::infinity(), std::nanf("")}) {
    Fixture f;
    f.set_grad({1, bad, 1});
    const double before = s.current_scale();
    EXPECT_FALSE(s.step(f.opt));
    EXPECT_TRUE(s.found_inf());
    EXPECT_TRUE(torch::equal(f.w.detach(), torch::ones({3})));  // untouched
    s.update();
    EXPECT_DOUBLE_EQ(s.current_scale(), before * 0.5);
    EXPECT_EQ(s.growth_tracker(), 0);
  }
}

TEST(GradScaler, GrowsAfterIntervalOfGoodSteps) {
  GradScalerConfig c;
  c.init_scale = 4.0;
  c.growth_interval = 3;
  GradScaler s(c);
  Fixture f;
  for (int i = 0; i < 3; ++i) {
    f.set_grad({1, 1, 1});
    EXPECT_TRUE(s.step(f.opt));
    s.update();
  }
  EXPECT_DOUBLE_EQ(s.current_scale(), 8.0);
  EXPECT_EQ(s.growth_tracker(), 0);
  // An overflow resets the tracker, so growth needs a fresh run of good steps.
  f.set_grad({1, 1, 1});
  s.step(f.opt);
  s.update();
  f.set_grad({std::numeric_limits<float>::infinity(), 1, 1});
  s.step(f.opt);
  s.update();
  EXPECT_DOUBLE_EQ(s.current_scale(), 4.0);
  EXPECT_EQ(s.growth_tracker(), 0);
}

TEST(GradScaler, DisabledIsPassThrough) {
  GradScalerConfig c;
  c.enabled = false;
  GradScaler s(c);
  Fixture f;
  EXPECT_FLOAT_EQ(s.scale(torch::tensor(3.0f)).item<float>(), 3.f);
  f.set_grad({1, 1, 1});
  s.unscale(f.opt);
  EXPECT_TRUE(s.step(f.opt));
  s.update();
  EXPECT_TRUE(torch::allclose(f.w, torch::zeros({3})));
}

TEST(GradScaler, StateRoundTrip) {
  GradScalerConfig c;
  c.init_scale = 16.0;
  GradScaler a(c);
  Fixture f;
  f.set_grad({1, 1, 1});
  a.step(f.opt);
  a.update();
  GradScaler b;
  b.load_state(a.state());
  EXPECT_DOUBLE_EQ(b.current_scale(), 16.0);
  EXPECT_EQ(b.growth_tracker(), 1);
  EXPECT_EQ(b.state(), a.state());
}

TEST(GradScaler, ConfigValidation) {
  GradScalerConfig c;
  c.backoff_factor = 1.5;
  EXPECT_THROW(c.validate(), UsageError);
}
