// report.html: one self-contained page from the report JSON. Tables are plain HTML (readable
// without JavaScript); plots are Vega-Lite specs built here with their data inlined and drawn by
// the vendored Vega/Vega-Lite/vega-embed, which are inlined too, so the page opens offline.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "embedded_assets.hpp"  // beside this file
#include "healthgym/evaluate.hpp"

namespace healthgym::eval {
namespace {

using nlohmann::json;

// Real vs synthetic colours (blue/orange: distinguishable with the common colour blindnesses).
constexpr const char* kRealColor = "#2f6db5";
constexpr const char* kSynthColor = "#e0782f";
// Distance to training vs holdout patients.
constexpr const char* kTrainColor = "#7b3fa0";
constexpr const char* kHoldoutColor = "#2a9d6f";

// ---- reading the report: any part may be missing or null ----

const json& null_json() {
  static const json kNull;
  return kNull;
}

const json& get(const json& j, const std::string& key) {
  if (!j.is_object()) return null_json();
  auto it = j.find(key);
  return it == j.end() ? null_json() : *it;
}

// A finite number, or nothing (null, NaN, missing, not a number).
std::optional<double> num(const json& v) {
  if (!v.is_number()) return std::nullopt;
  double d = v.get<double>();
  if (!std::isfinite(d)) return std::nullopt;
  return d;
}

// Plot data keeps 5 significant digits: plenty for the eye, and the page stays a third of the
// size it would be with every double's 17.
double round_sig(double x) {
  if (x == 0 || !std::isfinite(x)) return x;
  const double scale = std::pow(10.0, 4 - std::floor(std::log10(std::fabs(x))));
  return std::isfinite(scale) && scale > 0 ? std::round(x * scale) / scale : x;
}

// A number for a plot's data: finite, else null (Vega-Lite leaves such points out).
json plot_num(std::optional<double> d) { return d ? json(round_sig(*d)) : json(nullptr); }
json plot_num(const json& v) { return plot_num(num(v)); }

const json& arr(const json& v) {
  static const json kEmpty = json::array();
  return v.is_array() ? v : kEmpty;
}

bool any_finite(const json& a) {
  for (const auto& v : arr(a))
    if (num(v)) return true;
  return false;
}

// Element i of an array, null when absent (arrays may be shorter than expected).
const json& elem(const json& a, size_t i) {
  return a.is_array() && i < a.size() ? a[i] : null_json();
}

std::string str(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "";
  return v.dump();
}

// ---- text ----

std::string esc(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// JSON to place inside <script>: '<', '>' and '&' only ever occur inside JSON strings, where
// \u escapes mean the same, so no "</script" or "<!--" can end or confuse the script element.
std::string script_json(const json& j) {
  std::string s = j.dump(-1, ' ', false, json::error_handler_t::replace);
  std::string out;
  out.reserve(s.size() + 64);
  for (char c : s) {
    if (c == '<')
      out += "\\u003c";
    else if (c == '>')
      out += "\\u003e";
    else if (c == '&')
      out += "\\u0026";
    else
      out += c;
  }
  return out;
}

// A library's source for a <script> element; the vendored builds hold no "</script" (checked
// by the tests) and their source-map comment would only point at a file that is not there.
std::string script_source(std::string_view js) {
  auto pos = js.rfind("//# sourceMappingURL=");
  if (pos != std::string_view::npos) js = js.substr(0, pos);
  return std::string(js);
}

std::string fmt(std::optional<double> d) {
  if (!d) return "&mdash;";
  char buf[64];
  double a = std::fabs(*d);
  if (a >= 1000)
    std::snprintf(buf, sizeof buf, "%.0f", *d);
  else
    std::snprintf(buf, sizeof buf, "%.3g", *d);
  return buf;
}

std::string fmt(const json& v) {
  if (v.is_number_integer()) return std::to_string(v.get<long long>());
  return fmt(num(v));
}

std::string fmt_pct(const json& v) {
  auto d = num(v);
  if (!d) return "&mdash;";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1f%%", *d * 100);
  return buf;
}

// ---- the page ----

class Page {
 public:
  std::string html;

  // An empty element the chart script at the end of the page draws into.
  std::string chart(json spec, const std::string& css_class = "chart") {
    std::string id = "chart" + std::to_string(charts_.size());
    charts_.push_back({{"id", id}, {"spec", std::move(spec)}});
    return "<div class=\"" + css_class + "\" id=\"" + id + "\"></div>";
  }
  const json& charts() const { return charts_; }

 private:
  json charts_ = json::array();
};

json color_scale(const char* a, const char* b, const char* color_a, const char* color_b) {
  return {{"domain", {a, b}}, {"range", {color_a, color_b}}};
}

json source_color(bool legend = false) {
  json c = {{"field", "source"},
            {"type", "nominal"},
            {"scale", color_scale("Real", "Synthetic", kRealColor, kSynthColor)},
            {"title", nullptr}};
  if (!legend) c["legend"] = nullptr;
  return c;
}

// Settings shared by every chart.
json base_spec(int width, int height) {
  return {{"width", width},
          {"height", height},
          {"config",
           {{"font", "system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif"},
            {"axis", {{"labelFontSize", 10}, {"titleFontSize", 11}, {"titleFontWeight", "normal"}}},
            {"legend", {{"labelFontSize", 11}}},
            {"header", {{"labelFontSize", 11}, {"labelLimit", 160}}},
            {"view", {{"stroke", "#ddd"}}}}}};
}

// "Real" and "Synthetic" swatches shown once above a grid of charts without legends.
std::string legend_html() {
  return std::string("<p class=\"legend\"><span class=\"swatch\" style=\"background:") +
         kRealColor + "\"></span>Real <span class=\"swatch\" style=\"background:" + kSynthColor +
         "\"></span>Synthetic</p>\n";
}

std::string note_html(const std::string& text) {
  return "<p class=\"note\">" + esc(text) + "</p>\n";
}

// ---- plots ----

// Step-line histograms of densities over shared edges (reals), or grouped bars (categories).
// `a`/`b` name the two series.
json distribution_spec(const json& plot, int width, int height, const char* a = "Real",
                       const char* b = "Synthetic", const json& color = source_color()) {
  const std::string kind = str(get(plot, "kind"));
  json values = json::array();
  if (kind == "histogram") {
    const json& edges = arr(get(plot, "edges"));
    for (int k = 0; k < 2; ++k) {
      const char* source = k == 0 ? a : b;
      const json& dens = arr(get(plot, k == 0 ? "real" : "synthetic"));
      size_t bins = std::min(dens.size(), edges.size() > 0 ? edges.size() - 1 : 0);
      if (bins == 0) continue;
      // Closed outline: up from 0 at the first edge, across each bin, down at the last edge.
      values.push_back({{"x", plot_num(edges[0])}, {"y", 0.0}, {"source", source}});
      for (size_t i = 0; i < bins; ++i)
        values.push_back({{"x", plot_num(edges[i])}, {"y", plot_num(dens[i])}, {"source", source}});
      values.push_back(
          {{"x", plot_num(edges[bins])}, {"y", plot_num(dens[bins - 1])}, {"source", source}});
      values.push_back({{"x", plot_num(edges[bins])}, {"y", 0.0}, {"source", source}});
    }
    json spec = base_spec(width, height);
    spec["data"] = {{"values", values}};
    json enc = {{"x",
                 {{"field", "x"},
                  {"type", "quantitative"},
                  {"title", nullptr},
                  {"scale", {{"zero", false}, {"nice", false}}},
                  {"axis", {{"tickCount", 5}, {"labelOverlap", true}}}}},
                {"y",
                 {{"field", "y"},
                  {"type", "quantitative"},
                  {"title", "density"},
                  {"stack", nullptr},
                  {"axis", {{"tickCount", 4}, {"format", "~g"}}}}},
                {"color", color}};
    spec["encoding"] = enc;
    // Only the first series is filled: two translucent fills mix into a colour of neither.
    spec["layer"] = {
        {{"transform", {{{"filter", {{"field", "source"}, {"equal", a}}}}}},
         {"mark", {{"type", "area"}, {"interpolate", "step-after"}, {"opacity", 0.2}}}},
        {{"mark", {{"type", "line"}, {"interpolate", "step-after"}, {"strokeWidth", 1.6}}}}};
    return spec;
  }
  // Bars.
  const json& labels = arr(get(plot, "labels"));
  size_t longest = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    std::string label = str(labels[i]);
    longest = std::max(longest, label.size());
    values.push_back(
        {{"label", label}, {"share", plot_num(elem(get(plot, "real"), i))}, {"source", a}});
    values.push_back(
        {{"label", label}, {"share", plot_num(elem(get(plot, "synthetic"), i))}, {"source", b}});
  }
  bool upright = labels.size() * std::max<size_t>(longest, 2) * 7 <= static_cast<size_t>(width);
  json spec = base_spec(width, height);
  spec["data"] = {{"values", values}};
  spec["mark"] = {{"type", "bar"}, {"tooltip", true}};
  spec["encoding"] = {{"x",
                       {{"field", "label"},
                        {"type", "nominal"},
                        {"sort", nullptr},
                        {"title", nullptr},
                        {"axis",
                         {{"labelAngle", upright ? 0 : -40},
                          {"labelLimit", 90},
                          {"labelOverlap", labels.size() > 12}}}}},
                      {"xOffset", {{"field", "source"}, {"sort", {a, b}}}},
                      {"y",
                       {{"field", "share"},
                        {"type", "quantitative"},
                        {"title", "share"},
                        {"axis", {{"format", "~%"}, {"tickCount", 4}}}}},
                      {"color", color}};
  return spec;
}

// Pixels per heatmap cell: the three panels fit the page side by side.
int heatmap_step(size_t n) { return std::clamp(n ? 380 / static_cast<int>(n) : 20, 5, 24); }
constexpr int kMinLabelledStep = 8;  // smaller cells leave no room for readable labels

// Real, synthetic and their difference side by side on one fixed -1..1 diverging scale.
json heatmap_spec(const json& names, const json& real, const json& synth) {
  const size_t n = names.size();
  json values = json::array();
  std::vector<std::string> order;
  for (const auto& name : names) order.push_back(str(name));
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = 0; j < n; ++j) {
      auto r = num(elem(elem(real, i), j));
      auto s = num(elem(elem(synth, i), j));
      auto cell = [&](const char* panel, std::optional<double> v) {
        values.push_back(
            {{"row", order[i]}, {"col", order[j]}, {"panel", panel}, {"r", plot_num(v)}});
      };
      cell("Real", r);
      cell("Synthetic", s);
      cell("Synthetic \u2212 Real", r && s ? std::optional<double>(*s - *r) : std::nullopt);
    }
  }
  // Cells shrink with many columns; labels go when they could no longer be read.
  const int step = heatmap_step(n);
  const bool labels = step >= kMinLabelledStep;
  json axis = {{"labels", labels},
               {"labelFontSize", std::min(10, step)},
               {"labelLimit", 110},
               {"ticks", false},
               {"domain", false}};
  json spec = base_spec(step * static_cast<int>(n), step * static_cast<int>(n));
  spec["data"] = {{"values", values}};
  spec["facet"] = {{"column",
                    {{"field", "panel"},
                     {"type", "nominal"},
                     {"sort", {"Real", "Synthetic", "Synthetic \u2212 Real"}},
                     {"title", nullptr},
                     {"header", {{"labelFontSize", 12}, {"labelFontWeight", "bold"}}}}}};
  spec["spacing"] = 14;
  json inner = {{"width", spec["width"]}, {"height", spec["height"]}};
  spec.erase("width");
  spec.erase("height");
  inner["mark"] = {{"type", "rect"}, {"tooltip", true}};
  inner["encoding"] = {
      {"x",
       {{"field", "col"},
        {"type", "nominal"},
        {"sort", order},
        {"title", nullptr},
        {"axis", axis}}},
      {"y",
       {{"field", "row"},
        {"type", "nominal"},
        {"sort", order},
        {"title", nullptr},
        {"axis", axis}}},
      {"color",
       {{"field", "r"},
        {"type", "quantitative"},
        {"title", "r"},
        {"scale", {{"scheme", "redblue"}, {"reverse", true}, {"domain", {-1, 1}}, {"clamp", true}}},
        {"legend", {{"gradientLength", 120}}}}}};
  spec["spec"] = inner;
  // Cells that could not be computed show as mid grey, which no colour of the scale resembles.
  spec["config"]["view"] = {{"fill", "#a9a9a9"}, {"stroke", nullptr}};
  return spec;
}

json trajectory_spec(const json& t, int width, int height) {
  json values = json::array();
  const json& time = arr(get(t, "time"));
  for (const char* source : {"Real", "Synthetic"}) {
    std::string prefix = source[0] == 'R' ? "real_" : "synthetic_";
    for (size_t i = 0; i < time.size(); ++i) {
      values.push_back({{"t", plot_num(time[i])},
                        {"source", source},
                        {"mean", plot_num(elem(get(t, prefix + "mean"), i))},
                        {"q25", plot_num(elem(get(t, prefix + "q25"), i))},
                        {"q75", plot_num(elem(get(t, prefix + "q75"), i))}});
    }
  }
  json spec = base_spec(width, height);
  spec["data"] = {{"values", values}};
  json x = {{"field", "t"},
            {"type", "quantitative"},
            {"title", "time step"},
            {"scale", {{"zero", false}, {"nice", false}}},
            {"axis", {{"tickCount", 5}}}};
  spec["encoding"] = {{"x", x}, {"color", source_color()}};
  // Real: shaded 25-75% band; synthetic: dashed band edges, so neither hides the other.
  json y = {{"type", "quantitative"}, {"title", nullptr}, {"scale", {{"zero", false}}}};
  auto with_field = [&](const char* field) {
    json e = y;
    e["field"] = field;
    return e;
  };
  auto only = [](const char* source) {
    return json::array({{{"filter", {{"field", "source"}, {"equal", source}}}}});
  };
  spec["layer"] = {{{"transform", only("Real")},
                    {"mark", {{"type", "area"}, {"opacity", 0.2}}},
                    {"encoding", {{"y", with_field("q25")}, {"y2", {{"field", "q75"}}}}}},
                   {{"transform", only("Synthetic")},
                    {"mark", {{"type", "line"}, {"strokeWidth", 1}, {"strokeDash", {4, 3}}}},
                    {"encoding", {{"y", with_field("q25")}}}},
                   {{"transform", only("Synthetic")},
                    {"mark", {{"type", "line"}, {"strokeWidth", 1}, {"strokeDash", {4, 3}}}},
                    {"encoding", {{"y", with_field("q75")}}}},
                   {{"mark", {{"type", "line"}, {"strokeWidth", 2}}},
                    {"encoding", {{"y", with_field("mean")}}}}};
  return spec;
}

// Autocorrelation of one variable by lag, real vs synthetic, on the full -1..1 range.
json acf_spec(const json& v, const json& lags, int width, int height) {
  json values = json::array();
  for (const char* source : {"Real", "Synthetic"}) {
    const json& ys = arr(get(v, source[0] == 'R' ? "real" : "synthetic"));
    for (size_t i = 0; i < lags.size(); ++i)
      values.push_back(
          {{"source", source}, {"lag", plot_num(lags[i])}, {"acf", plot_num(elem(ys, i))}});
  }
  json spec = base_spec(width, height);
  spec["data"] = {{"values", values}};
  spec["mark"] = {{"type", "line"}, {"point", true}, {"tooltip", true}};
  spec["encoding"] = {{"x",
                       {{"field", "lag"},
                        {"type", "quantitative"},
                        {"title", "lag (steps)"},
                        {"axis", {{"tickMinStep", 1}, {"format", "d"}}}}},
                      {"y",
                       {{"field", "acf"},
                        {"type", "quantitative"},
                        {"title", nullptr},
                        {"scale", {{"domain", {-1, 1}}}},
                        {"axis", {{"tickCount", 5}}}}},
                      {"color", source_color()}};
  return spec;
}

// Shares of `x` in equal bins over [0, max]: DCR histograms, binned here so the page stays
// small for large cohorts.
json dcr_histogram(const json& train, const json& holdout) {
  std::vector<double> a, b;
  for (const auto& v : arr(train))
    if (auto d = num(v)) a.push_back(*d);
  for (const auto& v : arr(holdout))
    if (auto d = num(v)) b.push_back(*d);
  double hi = 0;
  for (double v : a) hi = std::max(hi, v);
  for (double v : b) hi = std::max(hi, v);
  if (hi <= 0) hi = 1;
  const int bins = 30;
  json edges = json::array();
  for (int i = 0; i <= bins; ++i) edges.push_back(hi * i / bins);
  auto shares = [&](const std::vector<double>& x) {
    std::vector<double> counts(bins, 0.0);
    for (double v : x) counts[std::clamp(static_cast<int>(v / hi * bins), 0, bins - 1)] += 1;
    json out = json::array();
    for (double c : counts) out.push_back(x.empty() ? 0.0 : c / x.size());
    return out;
  };
  json plot = {{"kind", "histogram"}, {"edges", edges}, {"real", shares(a)}};
  plot["synthetic"] = b.empty() ? json::array() : shares(b);
  return plot;
}

// ---- sections ----

struct SummaryRow {
  std::string metric, value, ideal, meaning;
};

void summary_section(Page& page, const json& report) {
  const json& s = get(report, "summary");
  std::vector<SummaryRow> rows;
  // Beside the ideal, what two random halves of the real cohort differ by.
  const json halves = s.contains("real_halves") ? s.at("real_halves") : json();
  auto row = [&](const char* key, const char* metric, const char* ideal, const char* meaning) {
    std::string best = ideal;
    if (halves.is_object() && halves.contains(key))
      best += " (real halves: " + fmt(get(halves, key)) + ")";
    rows.push_back({metric, fmt(get(s, key)), best, meaning});
  };
  row("mean_ks", "Distribution distance (KS), numeric variables", "0",
      "Kolmogorov-Smirnov statistic averaged over numeric variables: 0 is identical "
      "distributions, 1 is no overlap.");
  row("mean_wasserstein", "Value shift (Wasserstein / IQR), numeric variables", "0",
      "How far synthetic values sit from real ones, in units of the real interquartile range.");
  row("mean_tvd", "Category mismatch (TVD), categorical variables", "0",
      "Total variation distance between category shares: 0 is the same shares, 1 is disjoint.");
  row("missing_rate_mad", "Missing-rate difference", "0",
      "Average absolute difference in the share of missing values per variable.");
  row("corr_mad", "Correlation difference", "0",
      "Average absolute difference between the real and synthetic correlation matrices.");
  row("trend_corr_mad", "Trend correlation difference", "0",
      "The same for each patient's slow, linear trend over the stay, over the pairs of "
      "variables enough patients (20) share in both cohorts.");
  row("cycle_corr_mad", "Fluctuation correlation difference", "0",
      "The same for the fluctuations around each patient's trend, over the same pairs.");
  row("acf_mad", "Autocorrelation difference", "0",
      "How differently values depend on the previous steps (lags 1-5) in a patient's series.");
  rows.push_back({"Static variables that change", fmt_pct(get(s, "static_violation_rate")), "0%",
                  "Share of synthetic patients whose static (per-patient constant) value changes "
                  "over time."});
  const json& disc = get(s, "discriminative");
  {
    std::string v = fmt(get(disc, "mean"));
    if (num(get(disc, "ci95"))) v += " &plusmn; " + fmt(get(disc, "ci95"));
    rows.push_back({"Discriminative score", v, "0",
                    "How well a classifier tells synthetic from real patients: 0 is "
                    "indistinguishable, 0.5 fully distinguishable (|accuracy - 0.5|)."});
  }
  const json& pred = get(s, "predictive");
  rows.push_back({"Predictive error (MAE), trained on synthetic vs real",
                  fmt(get(pred, "synthetic_mae")) + " vs " + fmt(get(pred, "real_mae")),
                  "synthetic &asymp; real",
                  "Next-step prediction error of a model trained on synthetic data against one "
                  "trained on real data, both tested on real patients."});
  const json& auroc = get(s, "outcome_auroc");
  if (auroc.is_object()) {
    rows.push_back({"Outcome AUROC, trained on synthetic vs real",
                    fmt(get(auroc, "tstr")) + " vs " + fmt(get(auroc, "trtr")),
                    "synthetic &asymp; real",
                    "How well an outcome model trained on synthetic data ranks real patients, "
                    "against one trained on real data (0.5 is chance, 1 perfect)."});
  }
  row("exact_copies", "Exact copies of training patients", "0",
      "Synthetic patients whose whole record equals a training patient's.");
  std::string dcr_share = fmt_pct(get(s, "dcr_share_train"));
  if (num(get(s, "dcr_share_train_ci95")))
    dcr_share += " &plusmn; " + fmt_pct(get(s, "dcr_share_train_ci95"));
  rows.push_back({"Share closer to training than holdout", dcr_share, "&le; 50%",
                  "Synthetic patients nearer to a training patient than to any holdout patient; "
                  "well above 50% suggests memorised training records."});
  {
    std::string v = fmt(get(s, "mia_auc"));
    if (num(get(s, "mia_auc_ci95"))) v += " &plusmn; " + fmt(get(s, "mia_auc_ci95"));
    if (num(get(s, "mia_p_value"))) v += " (p = " + fmt(get(s, "mia_p_value")) + ")";
    rows.push_back({"Membership inference AUC", v, "0.5",
                    "How well an attacker holding the synthetic data tells training patients "
                    "from unseen ones: 0.5 is chance, 1 certain. &plusmn; is the 95% interval "
                    "(DeLong); p is the chance of an AUC this high if training patients sat no "
                    "nearer the synthetic ones than unseen patients do (small p: leakage)."});
  }

  std::string& h = page.html;
  h += "<section id=\"summary\"><h2>Summary</h2>\n<table class=\"summary\"><thead><tr><th>Metric"
       "</th><th>Value</th><th>Ideal</th><th>What it means</th></tr></thead><tbody>\n";
  // Row values are already HTML (numbers and entities); the labels are fixed text.
  for (const auto& r : rows)
    h += "<tr><td>" + r.metric + "</td><td class=\"num\">" + r.value + "</td><td class=\"num\">" +
         r.ideal + "</td><td class=\"meaning\">" + r.meaning + "</td></tr>\n";
  h += "</tbody></table>\n<p class=\"hint\">&mdash; means not computed; see the notes at the "
       "end.</p></section>\n";
}

void header_section(Page& page, const json& report) {
  const json& in = get(report, "inputs");
  std::string& h = page.html;
  h += "<header><h1>healthgym evaluation report</h1>\n<table class=\"inputs\">";
  auto row = [&](const char* label, const std::string& value) {
    h += "<tr><th>" + std::string(label) + "</th><td>" + value + "</td></tr>";
  };
  auto path = [&](const char* key) {
    const json& v = get(in, key);
    return v.is_string() ? "<code>" + esc(v.get<std::string>()) + "</code>"
                         : std::string("<span class=\"muted\">none</span>");
  };
  row("Real (training) data", path("real") + " &middot; " + fmt(get(in, "n_real")) + " patients");
  row("Synthetic data",
      path("synthetic") + " &middot; " + fmt(get(in, "n_synthetic")) + " patients");
  std::string holdout = path("holdout");
  if (get(in, "holdout").is_string())
    holdout += " &middot; " + fmt(get(in, "n_holdout")) + " patients";
  row("Holdout (unseen real) data", holdout);
  row("Outcome", get(in, "outcome").is_string() ? esc(str(get(in, "outcome")))
                                                : "<span class=\"muted\">none</span>");
  row("Seed", fmt(get(in, "seed")));
  h += "</table>\n<nav><a href=\"#summary\">Summary</a> <a href=\"#fidelity\">Fidelity</a> "
       "<a href=\"#correlations\">Correlations</a> <a href=\"#temporal\">Temporal</a> "
       "<a href=\"#missingness\">Missingness</a> <a href=\"#utility\">Utility</a> "
       "<a href=\"#privacy\">Privacy</a> <a href=\"#notes\">Notes</a></nav></header>\n";
}

void fidelity_section(Page& page, const json& fid) {
  std::string& h = page.html;
  h += "<section id=\"fidelity\"><h2>Fidelity: distributions per variable</h2>\n";
  const json& vars = arr(get(fid, "variables"));
  if (vars.empty()) {
    h += note_html("No per-variable fidelity results.") + "</section>\n";
    return;
  }
  h += "<p class=\"hint\">KS and W1/IQR compare numeric variables, TVD categorical ones; 0 is a "
       "perfect match for all three.</p>\n";
  h += "<table class=\"vars\"><thead><tr><th>Variable</th><th>Type</th><th>KS</th>"
       "<th>W1 / IQR</th><th>TVD</th><th>Missing, real</th><th>Missing, synthetic</th>"
       "<th>Missing, difference</th></tr></thead><tbody>\n";
  for (const auto& v : vars) {
    std::string type = esc(str(get(v, "type")));
    if (get(v, "static").is_boolean() && get(v, "static").get<bool>()) type += ", static";
    h += "<tr><td>" + esc(str(get(v, "name"))) + "</td><td>" + type + "</td><td class=\"num\">" +
         fmt(get(v, "ks")) + "</td><td class=\"num\">" + fmt(get(v, "wasserstein_iqr")) +
         "</td><td class=\"num\">" + fmt(get(v, "tvd")) + "</td><td class=\"num\">" +
         fmt_pct(get(v, "missing_rate_real")) + "</td><td class=\"num\">" +
         fmt_pct(get(v, "missing_rate_synthetic")) + "</td><td class=\"num\">" +
         fmt_pct(get(v, "missing_rate_diff")) + "</td></tr>\n";
  }
  h += "</tbody></table>\n";

  h += "<h3>Real vs synthetic distributions</h3>\n" + legend_html() + "<div class=\"grid\">\n";
  for (const auto& v : vars) {
    const json& plot = get(v, "plot");
    std::string metrics;
    for (auto [key, label] :
         {std::pair{"ks", "KS "}, {"wasserstein_iqr", "W1/IQR "}, {"tvd", "TVD "}})
      if (num(get(v, key)))
        metrics += (metrics.empty() ? "" : " &middot; ") + std::string(label) + fmt(get(v, key));
    // Say so when a cohort has nothing to plot, rather than leave its line silently absent.
    for (auto [key, what] :
         {std::pair{"real", "no real values"}, {"synthetic", "no synthetic values"}})
      if (plot.is_object() && !any_finite(get(plot, key)))
        metrics += (metrics.empty() ? "" : " &middot; ") + std::string("<b>") + what + "</b>";
    h += "<div class=\"card\"><div class=\"card-title\">" + esc(str(get(v, "name"))) +
         " <span class=\"tag\">" + esc(str(get(v, "type"))) +
         "</span></div><div class=\"metrics\">" + (metrics.empty() ? "&nbsp;" : metrics) + "</div>";
    if (plot.is_object())
      h += page.chart(distribution_spec(plot, 230, 120));
    else
      h += note_html("No values to plot.");
    h += "</div>\n";
  }
  h += "</div>\n";

  const json& lengths = get(fid, "lengths");
  if (lengths.is_object()) {
    h += "<h3>Stay length (time steps per patient)</h3>\n<p>Mean " +
         fmt(get(lengths, "real_mean")) + " real vs " + fmt(get(lengths, "synthetic_mean")) +
         " synthetic; KS " + fmt(get(lengths, "ks")) + ".</p>\n" + legend_html();
    if (get(lengths, "plot").is_object()) {
      json spec = distribution_spec(get(lengths, "plot"), 760, 150);
      spec["encoding"]["x"]["title"] = "time steps";
      spec["encoding"]["x"]["axis"]["labelAngle"] = 0;
      h += page.chart(spec);
    }
  }

  const json& sv = get(fid, "static_violation");
  const json& sv_vars = get(sv, "variables");
  if (sv_vars.is_object() && !sv_vars.empty()) {
    h += "<h3>Static variables</h3>\n<p>Share of synthetic patients whose value of a static "
         "variable changes over the stay (ideally 0%): overall " +
         fmt_pct(get(sv, "rate")) +
         ".</p>\n<table class=\"vars\"><thead><tr><th>Variable</th>"
         "<th>Patients with changes</th></tr></thead><tbody>\n";
    for (auto it = sv_vars.begin(); it != sv_vars.end(); ++it)
      h += "<tr><td>" + esc(it.key()) + "</td><td class=\"num\">" + fmt_pct(it.value()) +
           "</td></tr>\n";
    h += "</tbody></table>\n";
  }
  h += "</section>\n";
}

void correlation_section(Page& page, const json& fid) {
  std::string& h = page.html;
  h += "<section id=\"correlations\"><h2>Correlations</h2>\n<p class=\"hint\">Pearson "
       "correlations, red positive and blue negative on a fixed scale from -1 to 1; grey cells "
       "could not be computed (a constant or too rarely observed variable). The third panel is "
       "the difference: the paler, the closer.</p>\n";
  struct Kind {
    const char* key;
    const char* names_key;
    const char* title;
    const char* meaning;
  };
  const Kind kinds[] = {
      {"correlation", "columns", "Static correlation",
       "Between all values pooled over patients and time (categories as one column per label)."},
      {"trend_correlation", "variables", "Trend correlation",
       "Between each patient's linear trends of the numeric variables over the stay."},
      {"cycle_correlation", "variables", "Cycle correlation",
       "Between the fluctuations around each patient's trend."}};
  for (const auto& k : kinds) {
    const json& c = get(fid, k.key);
    h += std::string("<h3>") + k.title + "</h3>\n<p>" + k.meaning +
         " Mean absolute difference: " + fmt(get(c, "mad")) + ".</p>\n";
    const json& names = arr(get(c, k.names_key));
    if (names.empty() || !get(c, "real").is_array() || !get(c, "synthetic").is_array()) {
      h += note_html("Not computed.");
      continue;
    }
    if (heatmap_step(names.size()) < kMinLabelledStep)
      h += "<p class=\"hint\">Too many columns to label: point at a cell to see its pair.</p>\n";
    h += page.chart(heatmap_spec(names, get(c, "real"), get(c, "synthetic")), "chart wide");
  }
  h += "</section>\n";
}

void temporal_section(Page& page, const json& fid) {
  std::string& h = page.html;
  h += "<section id=\"temporal\"><h2>Temporal behaviour</h2>\n";
  const json& traj = arr(get(fid, "trajectories"));
  h += "<h3>Mean trajectories</h3>\n<p class=\"hint\">Mean over the patients observed at each "
       "step (solid line); the 25th to 75th percentile is shaded for real and dashed for "
       "synthetic patients.</p>\n" +
       legend_html();
  if (traj.empty()) {
    h += note_html("No numeric variables to follow over time.");
  } else {
    h += "<div class=\"grid\">\n";
    for (const auto& t : traj)
      h += "<div class=\"card\"><div class=\"card-title\">" + esc(str(get(t, "name"))) + "</div>" +
           page.chart(trajectory_spec(t, 230, 130)) + "</div>\n";
    h += "</div>\n";
  }

  const json& acf = get(fid, "autocorrelation");
  const json& acf_vars = arr(get(acf, "variables"));
  h += "<h3>Autocorrelation by lag</h3>\n<p class=\"hint\">Correlation of each value with the "
       "value k steps earlier in the same patient. Mean absolute difference: " +
       fmt(get(acf, "mad")) + ".</p>\n";
  if (acf_vars.empty()) {
    h += note_html("Not computed.");
  } else {
    // Small multiples in cards, like the trajectories above.
    h += legend_html() + "<div class=\"grid\">\n";
    for (const auto& v : acf_vars)
      h += "<div class=\"card\"><div class=\"card-title\">" + esc(str(get(v, "name"))) + "</div>" +
           page.chart(acf_spec(v, arr(get(acf, "lags")), 230, 90)) + "</div>\n";
    h += "</div>\n";
  }
  h += "</section>\n";
}

void missingness_section(Page& page, const json& fid) {
  std::string& h = page.html;
  h += "<section id=\"missingness\"><h2>Missingness by variable</h2>\n";
  const json& m = get(fid, "missingness");
  const json& names = arr(get(m, "variables"));
  if (names.empty()) {
    h += note_html("Not computed.") + "</section>\n";
    return;
  }
  h += "<p class=\"hint\">Share of patient-steps where the variable is not recorded; no bar "
       "means nothing is missing.</p>\n";
  json values = json::array();
  for (size_t i = 0; i < names.size(); ++i) {
    values.push_back({{"variable", str(names[i])},
                      {"source", "Real"},
                      {"rate", plot_num(elem(get(m, "real"), i))}});
    values.push_back({{"variable", str(names[i])},
                      {"source", "Synthetic"},
                      {"rate", plot_num(elem(get(m, "synthetic"), i))}});
  }
  // Scaled to the largest rate (at least 5%), so that small differences can be seen.
  double top = 0.05;
  for (const auto& v : values)
    if (auto r = num(v["rate"])) top = std::max(top, std::min(*r, 1.0));
  json spec = base_spec(520, 0);
  spec["height"] = {{"step", 9}};
  spec["data"] = {{"values", values}};
  spec["mark"] = {{"type", "bar"}, {"tooltip", true}};
  spec["encoding"] = {{"y",
                       {{"field", "variable"},
                        {"type", "nominal"},
                        {"sort", nullptr},
                        {"title", nullptr},
                        {"axis", {{"labelLimit", 160}, {"labelFontSize", 11}}}}},
                      {"yOffset", {{"field", "source"}, {"sort", {"Real", "Synthetic"}}}},
                      {"x",
                       {{"field", "rate"},
                        {"type", "quantitative"},
                        {"title", "missing"},
                        {"scale", {{"domain", {0, top}}, {"nice", true}}},
                        {"axis", {{"format", "%"}}}}},
                      {"color", source_color(true)}};
  spec["config"]["legend"]["orient"] = "top";
  h += page.chart(spec) + "</section>\n";
}

void utility_section(Page& page, const json& report) {
  const json& u = get(report, "utility");
  std::string& h = page.html;
  h += "<section id=\"utility\"><h2>Utility</h2>\n";
  if (!u.is_object()) {
    h += note_html("Not computed.") + "</section>\n";
    return;
  }
  h += "<div class=\"row\">\n";
  const json& d = get(u, "discriminative");
  h += "<div class=\"panel\"><h3>Discriminative score</h3><p>A recurrent classifier (hidden " +
       fmt(get(d, "hidden")) + ", " + fmt(get(d, "epochs")) +
       " epochs) is trained to tell synthetic from real patients; the score is |accuracy - "
       "0.5| on held-out patients. 0 is indistinguishable, 0.5 fully distinguishable. Mean " +
       fmt(get(d, "mean")) + " &plusmn; " + fmt(get(d, "ci95")) + " (95% CI).</p>\n";
  const json& scores = arr(get(d, "scores"));
  if (!scores.empty()) {
    json values = json::array();
    for (size_t i = 0; i < scores.size(); ++i)
      values.push_back({{"repeat", i + 1}, {"score", plot_num(scores[i])}});
    json spec = base_spec(std::max<int>(120, 40 * static_cast<int>(scores.size())), 140);
    spec["data"] = {{"values", values}};
    json y = {{"field", "score"},
              {"type", "quantitative"},
              {"title", "score"},
              {"scale", {{"domain", {0, 0.5}}}}};
    spec["layer"] = {{{"mark", {{"type", "bar"}, {"color", "#777"}, {"tooltip", true}}},
                      {"encoding",
                       {{"x",
                         {{"field", "repeat"},
                          {"type", "ordinal"},
                          {"title", "repeat"},
                          {"axis", {{"labelAngle", 0}}}}},
                        {"y", y}}}},
                     {{"mark", {{"type", "rule"}, {"color", "#c0392b"}, {"strokeDash", {4, 3}}}},
                      {"encoding", {{"y", {{"aggregate", "mean"}, {"field", "score"}}}}}}};
    h += page.chart(spec);
  }
  h += "</div>\n";

  // Train-on-synthetic vs train-on-real, both tested on real patients.
  const json& p = get(u, "predictive");
  const json& o = get(u, "outcome");
  json values = json::array();
  auto add = [&](const std::string& metric, const char* source, const json& v) {
    values.push_back({{"metric", metric}, {"source", source}, {"value", plot_num(v)}});
  };
  add("Next-step MAE", "Synthetic", get(p, "synthetic_mae"));
  add("Next-step MAE", "Real", get(p, "real_mae"));
  std::string test_set = str(get(p, "test_set"));
  h += "<div class=\"panel\"><h3>Train on synthetic, test on real</h3><p>Each model is trained "
       "on one cohort and tested on the " +
       std::string(test_set == "holdout" ? "holdout patients"
                                         : "real patients of the training file") +
       ". Similar values mean the synthetic data supports the same analyses.</p>\n"
       "<table class=\"vars\"><thead><tr><th>Task</th><th>Trained on synthetic</th>"
       "<th>Trained on real</th></tr></thead><tbody>\n<tr><td>Next-step prediction, MAE "
       "(lower is better)</td><td class=\"num\">" +
       fmt(get(p, "synthetic_mae")) + "</td><td class=\"num\">" + fmt(get(p, "real_mae")) +
       "</td></tr>\n";
  if (o.is_object()) {
    std::string what = "Outcome " + str(get(o, "variable")) + " = " +
                       str(get(o, "positive_label")) + " from the first " + str(get(o, "steps")) +
                       " steps, AUROC (higher is better)";
    h += "<tr><td>" + esc(what) + "</td><td class=\"num\">" + fmt(get(o, "tstr")) +
         "</td><td class=\"num\">" + fmt(get(o, "trtr")) + "</td></tr>\n";
    add("Outcome AUROC", "Synthetic", get(o, "tstr"));
    add("Outcome AUROC", "Real", get(o, "trtr"));
  }
  h += "</tbody></table>\n";
  if (!o.is_object()) h += note_html("No outcome model: no outcome variable was given.");
  json spec = base_spec(150, 120);
  spec.erase("width");
  spec.erase("height");
  spec["data"] = {{"values", values}};
  spec["facet"] = {{"field", "metric"}, {"type", "nominal"}, {"title", nullptr}, {"sort", nullptr}};
  spec["resolve"] = {{"scale", {{"y", "independent"}}}};
  spec["spec"] = {{"width", 150},
                  {"height", 120},
                  {"mark", {{"type", "bar"}, {"tooltip", true}}},
                  {"encoding",
                   {{"x",
                     {{"field", "source"},
                      {"type", "nominal"},
                      {"title", "trained on"},
                      {"sort", {"Synthetic", "Real"}},
                      {"axis", {{"labelAngle", 0}}}}},
                    {"y", {{"field", "value"}, {"type", "quantitative"}, {"title", nullptr}}},
                    {"color", source_color()}}}};
  h += page.chart(spec) + "</div>\n</div>\n</section>\n";
}

void privacy_section(Page& page, const json& report) {
  const json& p = get(report, "privacy");
  std::string& h = page.html;
  h += "<section id=\"privacy\"><h2>Privacy</h2>\n";
  if (!p.is_object()) {
    h += note_html("Not computed.") + "</section>\n";
    return;
  }
  const json& dcr = get(p, "dcr");
  const bool has_holdout = !arr(get(dcr, "holdout")).empty();
  h += "<table class=\"vars\"><thead><tr><th>Measure</th><th>Value</th><th>Ideal</th></tr></thead>"
       "<tbody>\n";
  h += "<tr><td>Exact copies of training patients</td><td class=\"num\">" +
       fmt(get(p, "exact_copies")) + " (" + fmt_pct(get(p, "exact_copies_share")) +
       ")</td><td class=\"num\">0</td></tr>\n";
  h += "<tr><td>Median distance to closest training patient</td><td class=\"num\">" +
       fmt(get(dcr, "train_median")) + "</td><td class=\"num\">&asymp; holdout median</td></tr>\n";
  h += "<tr><td>Median distance to closest holdout patient</td><td class=\"num\">" +
       fmt(get(dcr, "holdout_median")) + "</td><td></td></tr>\n";
  h += "<tr><td>Share of synthetic patients closer to training than to holdout</td>"
       "<td class=\"num\">" +
       fmt_pct(get(dcr, "share_closer_to_train")) + "</td><td class=\"num\">&le; 50%</td></tr>\n";
  std::string mia = fmt(get(p, "mia_auc"));
  if (num(get(p, "mia_auc_ci95"))) mia += " &plusmn; " + fmt(get(p, "mia_auc_ci95"));
  h += "<tr><td>Membership inference AUC (95% interval)</td><td class=\"num\">" + mia +
       "</td><td class=\"num\">0.5</td></tr>\n";
  h += "<tr><td>p-value: training patients no nearer than unseen ones</td><td class=\"num\">" +
       fmt(get(p, "mia_p_value")) +
       "</td><td class=\"num\">&gt; 0.05</td></tr>\n</tbody></table>\n";

  h += "<h3>Distance to closest record</h3>\n<p class=\"hint\">For each synthetic patient, the "
       "distance to the most similar real patient (whole encoded record). Mass at zero means "
       "copies; if synthetic patients sit much closer to training than to holdout patients, the "
       "model has memorised its training data.</p>\n";
  if (arr(get(dcr, "train")).empty()) {
    h += note_html("Not computed.");
  } else {
    if (!has_holdout)
      h += note_html(
          "No holdout data was given, so distances to training patients cannot be "
          "compared with distances to unseen patients (pass --holdout).");
    json plot = dcr_histogram(get(dcr, "train"), get(dcr, "holdout"));
    json color = {{"field", "source"},
                  {"type", "nominal"},
                  {"title", nullptr},
                  {"scale", color_scale("to training", "to holdout", kTrainColor, kHoldoutColor)},
                  {"legend",
                   {{"orient", "top"},
                    {"symbolType", "stroke"},
                    {"symbolStrokeWidth", 2},
                    {"symbolOpacity", 1}}}};
    if (!has_holdout) color["scale"] = {{"domain", {"to training"}}, {"range", {kTrainColor}}};
    json spec = distribution_spec(plot, 520, 160, "to training", "to holdout", color);
    spec["encoding"]["x"]["title"] = "distance to closest record";
    spec["encoding"]["y"]["title"] = "share of synthetic patients";
    spec["encoding"]["y"]["axis"]["format"] = "~%";
    h += page.chart(spec);
  }
  h += "</section>\n";
}

void notes_section(Page& page, const json& report) {
  std::string& h = page.html;
  h += "<section id=\"notes\"><h2>Notes</h2>\n";
  const json& notes = arr(get(report, "notes"));
  if (notes.empty()) {
    h += "<p>None: every measure was computed.</p>\n";
  } else {
    h += "<ul>\n";
    for (const auto& n : notes) h += "<li>" + esc(str(n)) + "</li>\n";
    h += "</ul>\n";
  }
  h += "</section>\n";
}

constexpr const char* kStyle = R"css(
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
       color: #222; margin: 0; background: #fafafa; }
main { max-width: 1320px; margin: 0 auto; padding: 16px 24px 48px; }
h1 { font-size: 24px; margin: 8px 0 12px; }
h2 { font-size: 20px; margin: 32px 0 8px; padding-top: 8px; border-top: 2px solid #ccc; }
h3 { font-size: 16px; margin: 20px 0 6px; }
table { border-collapse: collapse; background: #fff; margin: 6px 0 12px; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
thead th { background: #eef1f5; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.summary td.meaning { color: #444; max-width: 640px; }
table.inputs th { background: #eef1f5; font-weight: 600; }
nav { margin: 10px 0; }
nav a { margin-right: 14px; color: #2f6db5; }
code { font-size: 13px; }
.muted, .hint { color: #666; }
.note { background: #fff6e0; border-left: 4px solid #e0a82f; padding: 6px 10px; }
.legend { margin: 4px 0 8px; }
.swatch { display: inline-block; width: 14px; height: 14px; vertical-align: -2px;
          margin: 0 4px 0 10px; border-radius: 2px; }
.swatch:first-child { margin-left: 0; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr)); gap: 10px; }
.card { background: #fff; border: 1px solid #ddd; border-radius: 4px; padding: 6px 8px;
        overflow: hidden; }
.card-title { font-weight: 600; overflow-wrap: anywhere; }
.tag { font-weight: normal; font-size: 11px; color: #666; background: #eef1f5;
       border-radius: 3px; padding: 0 4px; }
.metrics { font-size: 12px; color: #555; }
.chart { min-height: 40px; }
.chart.wide { overflow-x: auto; }
.chart-error { color: #b00; }
.row { display: flex; flex-wrap: wrap; gap: 24px; }
.panel { flex: 1 1 480px; }
)css";

}  // namespace

std::string render_html(const nlohmann::json& report) {
  Page page;
  const json& fid = get(report, "fidelity");
  header_section(page, report);
  summary_section(page, report);
  fidelity_section(page, fid);
  correlation_section(page, fid);
  temporal_section(page, fid);
  missingness_section(page, fid);
  utility_section(page, report);
  privacy_section(page, report);
  notes_section(page, report);

  std::string out;
  out.reserve(page.html.size() + 900000);
  out +=
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
      "<title>healthgym evaluation report</title>\n<style>";
  out += kStyle;
  out +=
      "</style>\n</head>\n<body>\n<main>\n<noscript><p class=\"note\">JavaScript is off: the "
      "tables are complete, but the plots need it.</p></noscript>\n";
  out += page.html;
  out += "</main>\n";
  // Vega, Vega-Lite and vega-embed (third_party/vega, BSD-3-Clause), inlined for offline use.
  for (std::string_view js :
       {assets::vega_min_js(), assets::vega_lite_min_js(), assets::vega_embed_min_js()})
    out += "<script>" + script_source(js) + "</script>\n";
  out += "<script>\n(function () {\n  var charts = ";
  out += script_json(page.charts());
  out += R"js(;
  charts.forEach(function (c) {
    var el = document.getElementById(c.id);
    vegaEmbed(el, c.spec, {actions: false, renderer: 'svg', mode: 'vega-lite'})
      .catch(function (e) {
        console.error('chart ' + c.id + ': ' + e);
        el.className += ' chart-error';
        el.textContent = 'This plot could not be drawn: ' + e;
      });
  });
})();
</script>
</body>
</html>
)js";
  return out;
}

}  // namespace healthgym::eval
