// A test suite's own SoftHSM2 (tests/support/softhsm.h), for fixtures whose tests start real
// serverd processes.
#pragma once

#include <gtest/gtest.h>

#include "tests/support/softhsm.h"

namespace sigil::testing {

// The base of a fixture whose tests start real serverd processes: one SoftHsm for the whole
// suite (SOFTHSM2_CONF is process-wide), in which each test makes the tokens it needs.
template <typename Base = ::testing::Test>
class SoftHsmSuite : public Base {
 public:
  static void SetUpTestSuite() {
    auto hsm = SoftHsm::Create();
    ASSERT_TRUE(hsm.ok()) << hsm.status().ToString();
    hsm_ = std::move(*hsm).release();
  }
  static void TearDownTestSuite() {
    delete hsm_;
    hsm_ = nullptr;
  }

 protected:
  static inline SoftHsm* hsm_ = nullptr;
};

}  // namespace sigil::testing
