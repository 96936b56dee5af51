#include "core/status.h"

#include <gtest/gtest.h>

#include <memory>

namespace sigil {
namespace {

TEST(Status, DefaultIsOkAndPrintsOk) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.code(), Code::kOk);
  EXPECT_EQ(s.ToString(), "OK");
}

TEST(Status, ErrorCarriesCodeMessageAndContextInnermostFirst) {
  Status s = InvalidArgumentError("path segment is empty");
  s.AddContext("while parsing -spiffeID").AddContext("while creating entry");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_EQ(s.ToString(),
            "INVALID_ARGUMENT: path segment is empty (while parsing -spiffeID; while creating entry)");
}

TEST(Status, ContextIsIgnoredOnOk) {
  Status s;
  s.AddContext("while nothing");
  EXPECT_TRUE(s.context().empty());
}

TEST(Status, CodesAreNumberedAsGrpc) {
  EXPECT_EQ(static_cast<int>(Code::kPermissionDenied), 7);
  EXPECT_EQ(static_cast<int>(Code::kResourceExhausted), 8);
  EXPECT_EQ(static_cast<int>(Code::kUnavailable), 14);
  EXPECT_EQ(static_cast<int>(Code::kUnauthenticated), 16);
  EXPECT_EQ(CodeName(Code::kDeadlineExceeded), "DEADLINE_EXCEEDED");
}

Result<int> Half(int n) {
  if (n % 2 != 0) return InvalidArgumentError(std::to_string(n) + " is odd");
  return n / 2;
}

Result<int> Quarter(int n) {
  SIGIL_ASSIGN_OR_RETURN(int half, Half(n));
  SIGIL_ASSIGN_OR_RETURN(int quarter, Half(half));
  return quarter;
}

Status CheckEven(int n) {
  SIGIL_RETURN_IF_ERROR(Half(n).status());
  return Status::Ok();
}

TEST(Result, PropagatesTheFirstError) {
  EXPECT_EQ(*Quarter(8), 2);
  Result<int> r = Quarter(6);  // 6/2 = 3 is odd
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "3 is odd");
  EXPECT_TRUE(CheckEven(4).ok());
  EXPECT_EQ(CheckEven(5).code(), Code::kInvalidArgument);
}

TEST(Result, OkStatusWithoutValueBecomesInternalError) {
  Result<int> r{Status::Ok()};
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInternal);
}

TEST(Result, HoldsMoveOnlyValues) {
  Result<std::unique_ptr<int>> r(std::make_unique<int>(7));
  ASSERT_TRUE(r.ok());
  std::unique_ptr<int> p = std::move(r).value();
  EXPECT_EQ(*p, 7);
  EXPECT_EQ(Result<int>(NotFoundError("x")).value_or(3), 3);
}

}  // namespace
}  // namespace sigil
