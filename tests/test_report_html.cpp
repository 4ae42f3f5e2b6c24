#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>

#include "healthgym/evaluate.hpp"

using healthgym::eval::render_html;
using nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;

namespace {

const char* kOddName = "a<b&\"c\"";  // must come out escaped, never as markup

// A small report as evaluate() writes it: two numeric variables (one with an awkward name), a
// categorical one, and optionally a holdout and an outcome. NaN stands where nothing could be
// computed, as in memory before report.json turns it into null.
json fake_report(bool holdout, bool outcome) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  json hist = {{"kind", "histogram"},
               {"edges", {0.0, 1.0, 2.0, 3.0}},
               {"real", {0.2, 0.5, 0.3}},
               {"synthetic", {0.25, 0.45, nullptr}}};
  json bars = {{"kind", "bars"},
               {"labels", {"mild", "severe"}},
               {"real", {0.7, 0.3}},
               {"synthetic", {0.6, 0.4}}};
  json variables = json::array({{{"name", "HR"},
                                 {"type", "real"},
                                 {"static", false},
                                 {"ks", 0.08},
                                 {"wasserstein", 2.0},
                                 {"iqr", 10.0},
                                 {"wasserstein_iqr", 0.2},
                                 {"missing_rate_real", 0.1},
                                 {"missing_rate_synthetic", 0.12},
                                 {"missing_rate_diff", 0.02},
                                 {"plot", hist}},
                                {{"name", kOddName},
                                 {"type", "real"},
                                 {"static", true},
                                 {"ks", nan},
                                 {"wasserstein", nullptr},
                                 {"iqr", nullptr},
                                 {"wasserstein_iqr", nullptr},
                                 {"missing_rate_real", 1.0},
                                 {"missing_rate_synthetic", 1.0},
                                 {"missing_rate_diff", 0.0},
                                 {"plot", nullptr}},
                                {{"name", "stage"},
                                 {"type", "categorical"},
                                 {"static", true},
                                 {"tvd", 0.1},
                                 {"missing_rate_real", 0.0},
                                 {"missing_rate_synthetic", 0.0},
                                 {"missing_rate_diff", 0.0},
                                 {"plot", bars}}});
  json corr = {{"columns", {"HR", kOddName, "stage=mild"}},
               {"real", {{1.0, nan, 0.3}, {nan, 1.0, nan}, {0.3, nan, 1.0}}},
               {"synthetic", {{1.0, nan, 0.2}, {nan, 1.0, nan}, {0.2, nan, 1.0}}},
               {"mad", 0.1}};
  json trend = {{"variables", {"HR", kOddName}},
                {"real", {{1.0, 0.5}, {0.5, 1.0}}},
                {"synthetic", {{1.0, 0.4}, {0.4, 1.0}}},
                {"mad", 0.1}};
  json fidelity = {{"variables", variables},
                   {"lengths",
                    {{"ks", 0.05},
                     {"real_mean", 2.5},
                     {"synthetic_mean", 2.4},
                     {"plot",
                      {{"kind", "bars"},
                       {"labels", {"1", "2", "3"}},
                       {"real", {0.2, 0.3, 0.5}},
                       {"synthetic", {0.25, 0.3, 0.45}}}}}},
                   {"correlation", corr},
                   {"trend_correlation", trend},
                   {"cycle_correlation", trend},
                   {"autocorrelation",
                    {{"lags", {1, 2, 3, 4, 5}},
                     {"variables",
                      {{{"name", "HR"},
                        {"real", {0.9, 0.8, 0.7, 0.6, 0.5}},
                        {"synthetic", {0.85, 0.7, nan, 0.5, 0.4}}}}},
                     {"mad", 0.05}}},
                   {"static_violation", {{"rate", 0.01}, {"variables", {{"stage", 0.01}}}}},
                   {"trajectories",
                    {{{"name", "HR"},
                      {"time", {0, 1, 2}},
                      {"real_mean", {80.0, 82.0, nullptr}},
                      {"real_q25", {70.0, 72.0, nullptr}},
                      {"real_q75", {90.0, 91.0, nullptr}},
                      {"synthetic_mean", {81.0, 83.0, 84.0}},
                      {"synthetic_q25", {71.0, 73.0, 74.0}},
                      {"synthetic_q75", {89.0, 92.0, 95.0}}}}},
                   {"missingness",
                    {{"variables", {"HR", kOddName, "stage"}},
                     {"real", {0.1, 1.0, 0.0}},
                     {"synthetic", {0.12, 1.0, 0.0}}}}};
  json outcome_part = outcome ? json{{"variable", "stage"},
                                     {"positive_label", "severe"},
                                     {"steps", 2},
                                     {"tstr", 0.71},
                                     {"trtr", 0.74}}
                              : json(nullptr);
  json utility = {
      {"discriminative",
       {{"scores", {0.1, 0.12, 0.08}},
        {"mean", 0.1},
        {"ci95", 0.05},
        {"hidden", 32},
        {"epochs", 20}}},
      {"predictive",
       {{"synthetic_mae", 0.3}, {"real_mae", 0.25}, {"test_set", holdout ? "holdout" : "real"}}},
      {"outcome", outcome_part}};
  json privacy = {{"exact_copies", 0},
                  {"exact_copies_share", 0.0},
                  {"dcr",
                   {{"train", {0.5, 1.0, 1.5, 2.0}},
                    {"holdout", holdout ? json{0.6, 1.1, 1.4, 2.2} : json(nullptr)},
                    {"share_closer_to_train", holdout ? json(0.5) : json(nullptr)},
                    {"train_median", 1.25},
                    {"holdout_median", holdout ? json(1.25) : json(nullptr)}}},
                  {"mia_auc", holdout ? json(0.52) : json(nullptr)}};
  json summary = {{"mean_ks", 0.08},
                  {"mean_wasserstein", 0.2},
                  {"mean_tvd", 0.1},
                  {"missing_rate_mad", 0.01},
                  {"corr_mad", 0.1},
                  {"trend_corr_mad", 0.1},
                  {"cycle_corr_mad", nan},
                  {"acf_mad", 0.05},
                  {"static_violation_rate", 0.01},
                  {"discriminative", {{"mean", 0.1}, {"ci95", 0.05}}},
                  {"predictive", {{"synthetic_mae", 0.3}, {"real_mae", 0.25}}},
                  {"exact_copies", 0},
                  {"dcr_share_train", holdout ? json(0.5) : json(nullptr)},
                  {"mia_auc", holdout ? json(0.52) : json(nullptr)}};
  if (outcome) summary["outcome_auroc"] = {{"tstr", 0.71}, {"trtr", 0.74}};
  json notes = json::array({"cycle correlation: too few steps per patient"});
  if (!holdout) notes.push_back("no holdout: membership inference not computed");
  return {{"format", "healthgym-evaluation"},
          {"version", 1},
          {"inputs",
           {{"real", "real.csv"},
            {"synthetic", "synthetic.csv"},
            {"holdout", holdout ? json("holdout.csv") : json(nullptr)},
            {"n_real", 100},
            {"n_synthetic", 100},
            {"n_holdout", holdout ? json(50) : json(nullptr)},
            {"outcome", outcome ? json("stage") : json(nullptr)},
            {"seed", 7}}},
          {"summary", summary},
          {"notes", notes},
          {"fidelity", fidelity},
          {"utility", utility},
          {"privacy", privacy}};
}

size_t count(const std::string& haystack, const std::string& needle) {
  size_t n = 0;
  for (size_t pos = haystack.find(needle); pos != std::string::npos;
       pos = haystack.find(needle, pos + needle.size()))
    ++n;
  return n;
}

// The chart specs: the JSON in the last <script> element, between "var charts = " and ";".
json chart_specs(const std::string& html) {
  const std::string start = "var charts = ";
  size_t from = html.rfind(start);
  EXPECT_NE(from, std::string::npos);
  from += start.size();
  size_t to = html.find(";\n", from);
  return json::parse(html.substr(from, to - from));
}

// The page without the inlined libraries.
std::string markup(const std::string& html) { return html.substr(0, html.find("<script>")); }

}  // namespace

TEST(ReportHtml, HasSummaryTableFirstAndEverySection) {
  std::string html = render_html(fake_report(true, true));
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  size_t summary = html.find("<table class=\"summary\">");
  ASSERT_NE(summary, std::string::npos);
  for (const char* id :
       {"fidelity", "correlations", "temporal", "missingness", "utility", "privacy", "notes"}) {
    size_t at = html.find(std::string("<section id=\"") + id + "\">");
    ASSERT_NE(at, std::string::npos) << id;
    EXPECT_LT(summary, at) << id;
  }
  EXPECT_THAT(html, HasSubstr("Discriminative score"));
  EXPECT_THAT(html, HasSubstr("0 is indistinguishable, 0.5 fully distinguishable"));
  EXPECT_THAT(html, HasSubstr("Outcome AUROC"));
  EXPECT_THAT(html, HasSubstr("0.71 vs 0.74"));
  EXPECT_THAT(html, HasSubstr("cycle correlation: too few steps per patient"));
  EXPECT_THAT(html, HasSubstr("holdout.csv"));
}

TEST(ReportHtml, LoadsNothingFromOutside) {
  std::string html = render_html(fake_report(true, true));
  for (const char* bad : {"src=\"http", "href=\"http", "src='http", "href='http", "src=\"//",
                          "<link", "@import", "<script src"})
    EXPECT_EQ(html.find(bad), std::string::npos) << bad;
  // The three libraries are inlined, followed by the script that draws the charts.
  EXPECT_EQ(count(html, "<script>"), 4u);
  EXPECT_THAT(html, HasSubstr("vegaEmbed"));
  EXPECT_EQ(html.find("sourceMappingURL"), std::string::npos);
}

TEST(ReportHtml, EscapesVariableNames) {
  std::string html = render_html(fake_report(true, true));
  EXPECT_EQ(html.find(kOddName), std::string::npos);
  EXPECT_THAT(markup(html), HasSubstr("a&lt;b&amp;&quot;c&quot;"));
  // In the chart data the name survives intact, as JSON.
  EXPECT_THAT(chart_specs(html).dump(), HasSubstr("a<b&\\\"c\\\""));
}

TEST(ReportHtml, ScriptContentCannotCloseTheScriptElement) {
  json report = fake_report(true, true);
  const std::string evil = "</script><script>alert(1)</script><!--";
  report["fidelity"]["variables"][0]["name"] = evil;
  report["fidelity"]["missingness"]["variables"][0] = evil;
  report["notes"].push_back(evil);
  std::string html = render_html(report);
  // Only the four real script elements open and close.
  EXPECT_EQ(count(html, "<script"), 4u);
  EXPECT_EQ(count(html, "</script"), 4u);
  EXPECT_EQ(count(html, "<!--"), 0u);
  std::string specs = chart_specs(html).dump();
  EXPECT_THAT(specs, HasSubstr(evil));  // the data still holds the real name
}

TEST(ReportHtml, ChartSpecsCarryTheirData) {
  std::string html = render_html(fake_report(true, true));
  json charts = chart_specs(html);
  // 2 distributions (the third variable has nothing to plot) + lengths, 3 correlation kinds,
  // 1 trajectory, autocorrelation, missingness, discriminative scores, utility bars, DCR.
  EXPECT_EQ(charts.size(), 12u);
  for (const auto& c : charts) {
    ASSERT_TRUE(c["spec"].contains("data")) << c["id"];
    EXPECT_FALSE(c["spec"]["data"]["values"].empty()) << c["id"];
    EXPECT_NE(html.find("id=\"" + c["id"].get<std::string>() + "\""), std::string::npos);
  }
  // NaN never reaches the page: it becomes null (and a dash in tables).
  EXPECT_EQ(count(html.substr(html.rfind("var charts = ")), "NaN"), 0u);
  EXPECT_EQ(count(markup(html), "NaN"), 0u);
  EXPECT_THAT(markup(html), HasSubstr("&mdash;"));
}

TEST(ReportHtml, WithoutHoldoutOrOutcomeSaysSo) {
  std::string html = markup(render_html(fake_report(false, false)));
  EXPECT_THAT(html, HasSubstr("No holdout data was given"));
  EXPECT_THAT(html, HasSubstr("No outcome model"));
  EXPECT_THAT(html, Not(HasSubstr("Outcome AUROC")));
  EXPECT_THAT(html, HasSubstr("no holdout: membership inference not computed"));
}

TEST(ReportHtml, SurvivesAnEmptyOrMalformedReport) {
  for (const json& report :
       {json::object(), json(nullptr), json{{"summary", 3}, {"fidelity", {{"variables", 5}}}}}) {
    std::string html;
    ASSERT_NO_THROW(html = render_html(report));
    EXPECT_THAT(html, HasSubstr("<table class=\"summary\">"));
    EXPECT_THAT(html, HasSubstr("<section id=\"privacy\">"));
    EXPECT_NO_THROW(chart_specs(html));
  }
}
