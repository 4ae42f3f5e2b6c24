#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "healthgym/cohort.hpp"
#include "healthgym/error.hpp"
#include "healthgym/schema.hpp"
#include "test_util.hpp"

using namespace healthgym;
using healthgym::testing::TempDir;
using ::testing::HasSubstr;

namespace {

const char* kSmall =
    "pid,t,age,sex,lab,flag,stage,neg\n"
    "a,0,50,\"f\",1.5,0,1,-2.5\n"
    "a,1,50,\"f\",,1,2,-1\n"
    "b,0,61.25,\"m\",2.25,1,3,0.5\n"
    "b,2,61.25,\"m\",3,0,3,4\n"
    "c,0,70,\"m\",4.5,0,1,5\n"
    "d,0,33.5,\"f\",5,1,2,6\n"
    "e,0,45,\"f\",6.75,0,3,7\n"
    "e,1,45,\"f\",7,0,3,8\n"
    "f,0,80,\"m\",8,1,1,9\n";

CsvTable small_table() { return parse_csv(kSmall, "small.csv"); }

}  // namespace

TEST(Schema, InfersTypesLabelsStaticAndMissing) {
  Schema s = infer_schema(small_table(), "pid", "t");
  ASSERT_EQ(s.variables.size(), 6u);
  const auto& age = s.variables[0];
  EXPECT_EQ(age.type, VarType::kReal);
  EXPECT_TRUE(age.is_static);
  EXPECT_EQ(age.decimals, 2);
  EXPECT_FALSE(age.has_missing);
  const auto& sex = s.variables[1];
  EXPECT_EQ(sex.type, VarType::kCategorical);
  EXPECT_EQ(sex.labels, (std::vector<std::string>{"f", "m"}));
  EXPECT_TRUE(sex.is_static);
  const auto& lab = s.variables[2];
  EXPECT_EQ(lab.type, VarType::kReal);
  EXPECT_FALSE(lab.is_static);
  EXPECT_TRUE(lab.has_missing);
  EXPECT_EQ(s.variables[3].type, VarType::kBinary);
  EXPECT_EQ(s.variables[3].labels, (std::vector<std::string>{"0", "1"}));
  EXPECT_EQ(s.variables[4].type, VarType::kCategorical);
  EXPECT_EQ(s.variables[4].labels, (std::vector<std::string>{"1", "2", "3"}));
  // Values <= -shift cannot take Box-Cox.
  EXPECT_EQ(s.variables[5].transform, PowerKind::kYeoJohnson);
  EXPECT_EQ(s.variables[0].transform, PowerKind::kBoxCox);
  EXPECT_EQ(s.quoted_columns, std::vector<std::string>{"sex"});
}

TEST(Schema, OneHotSpansAreContiguous) {
  Schema s = infer_schema(small_table(), "pid", "t");
  // age(1) sex(2) lab(1)+observed(1) flag(2) stage(3) neg(1)
  EXPECT_EQ(s.n_channels, 11);
  int expect = 0;
  for (const auto& v : s.variables) {
    EXPECT_EQ(v.value_offset, expect) << v.name;
    expect += v.value_width;
    if (v.has_missing) EXPECT_EQ(v.observed_channel, expect++) << v.name;
  }
  EXPECT_EQ(s.variables[1].value_width, 2);
  EXPECT_EQ(s.variables[4].value_width, 3);
  EXPECT_EQ(s.variables[2].observed_channel, 4);
}

TEST(Schema, JsonRoundTrip) {
  TempDir dir;
  Schema s = infer_schema(small_table(), "pid", "t");
  s.save(dir.file("s.json"));
  Schema back = Schema::load(dir.file("s.json"));
  EXPECT_EQ(back.to_json(), s.to_json());
  EXPECT_EQ(back.n_channels, s.n_channels);
}

TEST(Schema, BadJsonNamesLineAndColumn) {
  TempDir dir;
  const auto p = dir.write("bad.json", "{\n  \"id_column\": \"a\",\n  oops\n}\n");
  try {
    Schema::load(p);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_THAT(e.what(), HasSubstr(p + ":3:"));
    EXPECT_THAT(e.what(), HasSubstr("not valid JSON"));
  }
}

TEST(Schema, ValidationErrorsNameTheVariable) {
  nlohmann::json j = {{"id_column", "pid"},
                      {"time_column", "t"},
                      {"variables", {{{"name", "x"}, {"type", "binary"}, {"labels", {"a"}}}}}};
  try {
    Schema::from_json(j, "s.json");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_THAT(e.what(), HasSubstr("s.json"));
    EXPECT_THAT(e.what(), HasSubstr("'x'"));
    EXPECT_THAT(e.what(), HasSubstr("exactly 2 labels"));
  }
  j["variables"][0]["type"] = "complex";
  EXPECT_THROW(Schema::from_json(j, "s.json"), InputError);
}

TEST(Schema, MissingIdColumnIsAnError) {
  try {
    infer_schema(small_table(), "patient", "t");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_THAT(e.what(), HasSubstr("no column named 'patient'"));
  }
}

TEST(Cohort, ParsesCellsAndFormatsBack) {
  auto table = small_table();
  Schema s = infer_schema(table, "pid", "t");
  Cohort c = load_cohort(table, s);
  ASSERT_EQ(c.n_patients(), 6);
  EXPECT_EQ(c.length[0], 2);
  EXPECT_EQ(c.patient_ids[1], "b");
  EXPECT_TRUE(is_missing(c.cell(1, 2)));
  EXPECT_EQ(c.cell(2, 1), 1.0);  // "m" is label 1
  EXPECT_EQ(format_cohort_csv(c, s), std::string(kSmall));
}

namespace {

std::string load_error(const std::string& csv) {
  auto table = parse_csv(csv, "bad.csv");
  Schema s = infer_schema(parse_csv(kSmall, "small.csv"), "pid", "t");
  try {
    load_cohort(table, s);
  } catch (const InputError& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST(Cohort, BadCellsNameFileLineColumnAndValue) {
  const std::string h = "pid,t,age,sex,lab,flag,stage,neg\n";
  EXPECT_EQ(load_error(h + "a,0,50,f,abc,0,1,1\n"),
            "bad.csv:2:5: not a number in real column 'lab' (value 'abc')");
  EXPECT_THAT(load_error(h + "a,0,50,f,NaN,0,1,1\n"), HasSubstr("bad.csv:2:5: non-finite value"));
  EXPECT_THAT(load_error(h + "a,0,50,f,inf,0,1,1\n"), HasSubstr("(value 'inf')"));
  EXPECT_THAT(load_error(h + "a,0,50,x,1,0,1,1\n"),
              HasSubstr("bad.csv:2:4: unknown label in column 'sex' (known: f, m) (value 'x')"));
  EXPECT_THAT(load_error(h + "a,0,50,f,1,0,1,1\na,0,50,f,1,0,1,1\n"),
              HasSubstr("bad.csv:3:2: duplicate time"));
  EXPECT_THAT(load_error(h + "a,1,50,f,1,0,1,1\na,0,50,f,1,0,1,1\n"),
              HasSubstr("bad.csv:3:2: time goes backwards"));
  EXPECT_THAT(load_error(h + "a,0,50,f,1,0,1,1\nb,0,50,f,1,0,1,1\na,1,50,f,1,0,1,1\n"),
              HasSubstr("bad.csv:4:1: rows of patient 'a' are not contiguous"));
  EXPECT_THAT(load_error(h + "a,0,50,f,1,0,1,1\na,1,51,f,1,0,1,1\n"),
              HasSubstr("bad.csv:3:3: static variable 'age' changes"));
  EXPECT_THAT(load_error(h + ",0,50,f,1,0,1,1\n"), HasSubstr("bad.csv:2:1: empty patient id"));
  EXPECT_THAT(load_error(h + "a,x,50,f,1,0,1,1\n"), HasSubstr("bad.csv:2:2: time in column"));
}

TEST(Cohort, MissingColumnIsNamed) {
  auto table = parse_csv("pid,t,age\na,0,1\n", "few.csv");
  Schema s = infer_schema(parse_csv(kSmall, "small.csv"), "pid", "t");
  try {
    load_cohort(table, s);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()), "few.csv:1: no column named 'sex', which the schema needs");
  }
}
