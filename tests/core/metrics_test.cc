#include "core/metrics.h"

#include <gtest/gtest.h>

#include <thread>

namespace sigil {
namespace {

TEST(MetricsTest, RendersThePrometheusTextFormat) {
  MetricsRegistry registry;
  registry.GetCounter("svid_issued_total", "SVIDs issued", {{"type", "x509"}}).Add(3);
  registry.GetCounter("svid_issued_total", "SVIDs issued", {{"type", "jwt"}}).Add();
  registry.GetGauge("signing_queue_depth", "jobs waiting").Set(7);
  auto& latency = registry.GetHistogram("signing_latency_seconds", "per item", {0.001, 0.01});
  latency.Observe(0.0005);
  latency.Observe(0.005);
  latency.Observe(1);

  const std::string text = registry.Render();
  EXPECT_NE(text.find("# TYPE svid_issued_total counter\n"), std::string::npos) << text;
  EXPECT_NE(text.find("svid_issued_total{type=\"x509\"} 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("svid_issued_total{type=\"jwt\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("signing_queue_depth 7\n"), std::string::npos) << text;
  EXPECT_NE(text.find("signing_latency_seconds_bucket{le=\"0.001\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("signing_latency_seconds_bucket{le=\"0.01\"} 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("signing_latency_seconds_bucket{le=\"+Inf\"} 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("signing_latency_seconds_count 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("signing_latency_seconds_sum 1.0055"), std::string::npos) << text;
}

// Bounds and sums in their shortest exact form: le="0.1", not le="0.10000000000000001".
TEST(MetricsTest, NumbersAreWrittenInTheirShortestExactForm) {
  MetricsRegistry registry;
  auto& latency = registry.GetHistogram("latency_milliseconds", "per call", Histogram::ExponentialBounds(0.1, 1));
  latency.Observe(0.3);
  latency.Observe(3);
  const std::string text = registry.Render();
  EXPECT_NE(text.find("latency_milliseconds_bucket{le=\"0.1\"} 0\n"), std::string::npos) << text;
  EXPECT_NE(text.find("latency_milliseconds_bucket{le=\"0.2\"} 0\n"), std::string::npos) << text;
  EXPECT_NE(text.find("latency_milliseconds_bucket{le=\"0.5\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("latency_milliseconds_sum 3.3\n"), std::string::npos) << text;
}

TEST(MetricsTest, SameNameAndLabelsIsTheSameMetric) {
  MetricsRegistry registry;
  Counter& a = registry.GetCounter("c", "h", {{"k", "v"}});
  Counter& b = registry.GetCounter("c", "h", {{"k", "v"}});
  EXPECT_EQ(&a, &b);
  EXPECT_NE(&a, &registry.GetCounter("c", "h", {{"k", "w"}}));
}

TEST(MetricsTest, LabelValuesAreEscaped) {
  MetricsRegistry registry;
  registry.GetCounter("c", "h", {{"path", "a\"b\\c\nd"}}).Add();
  EXPECT_NE(registry.Render().find("c{path=\"a\\\"b\\\\c\\nd\"} 1"), std::string::npos) << registry.Render();
}

TEST(MetricsTest, HistogramQuantilesAndBounds) {
  Histogram histogram(Histogram::ExponentialBounds(1, 1000));
  EXPECT_EQ(Histogram::ExponentialBounds(1, 100), (std::vector<double>{1, 2, 5, 10, 20, 50, 100}));
  for (int i = 0; i < 90; ++i) histogram.Observe(3);
  for (int i = 0; i < 10; ++i) histogram.Observe(300);
  const auto snapshot = histogram.Read();
  EXPECT_EQ(snapshot.count, 100u);
  EXPECT_EQ(snapshot.Quantile(0.5), 5);
  EXPECT_EQ(snapshot.Quantile(0.99), 500);
}

TEST(MetricsTest, ConcurrentUpdatesAreAllCounted) {
  MetricsRegistry registry;
  Counter& counter = registry.GetCounter("c", "h");
  Histogram& histogram = registry.GetHistogram("h", "h", {1, 10});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        counter.Add();
        histogram.Observe(i % 20);
        if (i % 1000 == 0) (void)registry.Render();
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(counter.value(), 40000u);
  EXPECT_EQ(histogram.Read().count, 40000u);
}

}  // namespace
}  // namespace sigil
