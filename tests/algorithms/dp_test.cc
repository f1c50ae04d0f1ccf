// Differential privacy: the RDP accountant against figures published by TensorFlow Privacy,
// Opacus and Abadi et al., the clipping and noise primitives (the discrete Gaussian sampler, its
// grid and keys), and the central / local DP paths.
//
// Why one file of this size: the noise, central and local tests share the fixtures (models of
// awkward shapes, updates of a given norm, the moment checks), and each part checks the others'
// assumptions (the accountant's sensitivity is what the noise plan covers).
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "fedml/algorithms/dp.h"
#include "fedml/core/model_state.h"
#include "fedml/core/random.h"
#include "fedml/core/security/crypto.h"

namespace fedml::algorithms {
namespace {

using core::ModelState;
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// ---------------------------------------------------------------------------------------------
// Test-local references for published figures that were produced with other order lists or with
// the older RDP -> (epsilon, delta) conversion. Each is the formula exactly as the cited code
// states it, minimised over the orders that code used.

// Orders of Opacus's RDPAccountant.DEFAULT_ALPHAS and of TF Privacy's MNIST tutorial
// (pytorch/opacus opacus/accountants/rdp.py; tensorflow/privacy tutorials/mnist_dpsgd_tutorial.py):
// [1 + x / 10. for x in range(1, 100)] + list(range(12, 64)).
std::vector<double> OpacusOrders() {
  std::vector<double> o;
  for (int x = 1; x < 100; ++x) o.push_back(1.0 + x / 10.0);
  for (int a = 12; a < 64; ++a) o.push_back(a);
  return o;
}

// Balle et al. 2020 Theorem 21 as Opacus's get_privacy_spent writes it (no KL special case).
double BalleEpsilon(const std::vector<double>& orders, double q, double sigma, std::int64_t steps,
                    double delta, double* best_order = nullptr) {
  double best = kInf;
  for (double a : orders) {
    const double rdp = static_cast<double>(steps) * SampledGaussianRdp(q, sigma, a);
    const double eps = rdp - (std::log(delta) + std::log(a)) / (a - 1) + std::log((a - 1) / a);
    if (eps < best) {
      best = eps;
      if (best_order) *best_order = a;
    }
  }
  return best;
}

// The conversion TF Privacy used before 2020 (Mironov 2017, Proposition 3), which is also the
// tail bound of Abadi et al.'s moments accountant: eps = rdp - log(delta) / (alpha - 1).
double OldEpsilon(const std::vector<double>& orders, double q, double sigma, std::int64_t steps,
                  double delta) {
  double best = kInf;
  for (double a : orders) {
    const double rdp = static_cast<double>(steps) * SampledGaussianRdp(q, sigma, a);
    best = std::min(best, rdp - std::log(delta) / (a - 1));
  }
  return best;
}

// log A_alpha = log E_{z ~ N(0, sigma^2)} [((1 - q) + q exp((2z - 1) / (2 sigma^2)))^alpha] by
// the trapezoid rule in log space (TF Privacy's test checks its series the same way against an
// mpmath quadrature). The integrand is smooth and decays like a Gaussian on both sides, so the
// trapezoid rule converges exponentially in the step; its peak lies between 0 and alpha.
double LogANumeric(double q, double sigma, double alpha) {
  const double s2 = sigma * sigma;
  const double h = sigma / 200.0;
  const double lo = -40.0 * sigma;
  const double hi = alpha + 40.0 * sigma;
  const double log_norm = -std::log(sigma * std::sqrt(2.0 * M_PI));
  std::vector<double> logs;
  double peak = -kInf;
  for (double z = lo; z <= hi; z += h) {
    const double a = std::log1p(-q);
    const double b = std::log(q) + (2.0 * z - 1.0) / (2.0 * s2);
    const double mix = std::max(a, b) + std::log1p(std::exp(-std::fabs(a - b)));
    const double f = log_norm - z * z / (2.0 * s2) + alpha * mix;
    logs.push_back(f);
    peak = std::max(peak, f);
  }
  double sum = 0.0;
  for (double f : logs) sum += std::exp(f - peak);
  return peak + std::log(sum * h);
}

// ---------------------------------------------------------------------------------------------
// Published figures.

TEST_CASE("DefaultRdpOrders is TF Privacy's compute_dp_sgd_privacy list", "[dp][accountant]") {
  // tensorflow/privacy tensorflow_privacy/privacy/analysis/compute_dp_sgd_privacy_lib.py:
  // orders = [1.25, 1.5, 1.75, 2., 2.25, 2.5, 3., 3.5, 4., 4.5] + list(range(5, 64)) +
  //          [128, 256, 512]
  std::vector<double> expected = {1.25, 1.5, 1.75, 2., 2.25, 2.5, 3., 3.5, 4., 4.5};
  for (int a = 5; a < 64; ++a) expected.push_back(a);
  for (double a : {128.0, 256.0, 512.0}) expected.push_back(a);
  CHECK(DefaultRdpOrders() == expected);
}

TEST_CASE("SampledGaussianRdp reproduces TF Privacy's published RDP values", "[dp][accountant]") {
  // tensorflow/privacy tensorflow_privacy/privacy/analysis/rdp_accountant_test.py (the same
  // figures are in google/differential-privacy python/dp_accounting/rdp/
  // rdp_privacy_accountant_test.py). These are RDP values, before any conversion.
  // test_compute_rdp_scalar: compute_rdp(q=0.1, noise_multiplier=2, steps=10, orders=5) =
  // 0.07737 to 5 places.
  CHECK(std::fabs(10 * SampledGaussianRdp(0.1, 2.0, 5.0) - 0.07737) < 5e-6);
  // test_compute_rdp_sequence: q=0.01, noise 2.5, 50 steps, orders [1.5, 2.5, 5, 50, 100, inf],
  // rtol 1e-4. Two fractional orders exercise the series of _compute_log_a_frac.
  const std::vector<double> orders = {1.5, 2.5, 5, 50, 100};
  const std::vector<double> published = {6.5007e-04, 1.0854e-03, 2.1808e-03, 2.3846e-02,
                                         1.6742e+02};
  for (std::size_t i = 0; i < orders.size(); ++i) {
    INFO("order " << orders[i]);
    CHECK(50 * SampledGaussianRdp(0.01, 2.5, orders[i]) == Approx(published[i]).epsilon(1e-4));
  }
  CHECK(SampledGaussianRdp(0.01, 2.5, kInf) == kInf);
  // test_compute_rdp_no_data / test_compute_rdp_no_sampling: q = 0 gives 0; q = 1, sigma 10,
  // order 20 gives 0.1.
  CHECK(SampledGaussianRdp(0.0, 10.0, 20.0) == 0.0);
  CHECK(SampledGaussianRdp(1.0, 10.0, 20.0) == Approx(0.1).epsilon(1e-15));
}

TEST_CASE("DpEpsilon reproduces TF Privacy's compute_dp_sgd_privacy figures", "[dp][accountant]") {
  // tensorflow/privacy tensorflow_privacy/privacy/analysis/compute_dp_sgd_privacy_test.py
  // (commit 943ef91e), test_compute_dp_sgd_privacy: (n, batch_size, noise_multiplier, epochs,
  // delta) -> eps, checked there with assertAlmostEqual (7 places). q = batch_size / n and
  // steps = ceil(epochs * n / batch_size); the orders are DefaultRdpOrders() and the conversion
  // the Canonne-Kamath-Steinke / Balle et al. bound (rdp_accountant._compute_eps at that time,
  // dp_accounting's _compute_epsilon since), the conversion DpEpsilon implements.
  struct Case {
    double n, batch, sigma, epochs, delta, eps;
  };
  const Case cases[] = {
      {60000, 150, 1.3, 15, 1e-5, 0.7242234026109595},
      {100000, 100, 1.0, 30, 1e-7, 1.4154988495444845},
      // Printed as 5907982.31138195 at 943ef91e and 5907982.3113978775 in a later version (a
      // difference of 3e-12 relative between scipy builds); checked to 1e-9 relative.
      {1e8, 1024, 0.1, 10, 1e-7, 5907982.31138195},
  };
  for (const Case& c : cases) {
    const double q = c.batch / c.n;
    const auto steps = static_cast<std::int64_t>(std::ceil(c.epochs * c.n / c.batch));
    INFO("n " << c.n << " batch " << c.batch << " sigma " << c.sigma);
    Result<double> eps = DpEpsilon(q, c.sigma, steps, c.delta);
    REQUIRE(eps.ok());
    if (c.eps < 100) {
      CHECK(std::fabs(*eps - c.eps) < 5e-8);
    } else {
      CHECK(*eps == Approx(c.eps).epsilon(1e-9));
    }
  }
}

TEST_CASE("The RDP values reproduce TF Privacy's figures under the older conversion",
          "[dp][accountant]") {
  // tensorflow/privacy tensorflow_privacy/privacy/analysis/compute_noise_from_budget_test.py:
  // the target epsilons 0.941870567, 1.70928734 and 5907984.81339406 are the epsilons the three
  // settings above had under the pre-2020 conversion rdp - log(delta) / (alpha - 1), over the same
  // orders (compute_noise returns the published noise 1.3, 1.0, 0.1 for them).
  struct Case {
    double n, batch, sigma, epochs, delta, eps;
  };
  const Case cases[] = {
      {60000, 150, 1.3, 15, 1e-5, 0.941870567},
      {100000, 100, 1.0, 30, 1e-7, 1.70928734},
      {1e8, 1024, 0.1, 10, 1e-7, 5907984.81339406},
  };
  for (const Case& c : cases) {
    const double q = c.batch / c.n;
    const auto steps = static_cast<std::int64_t>(std::ceil(c.epochs * c.n / c.batch));
    INFO("n " << c.n << " batch " << c.batch << " sigma " << c.sigma);
    CHECK(OldEpsilon(DefaultRdpOrders(), q, c.sigma, steps, c.delta) ==
          Approx(c.eps).epsilon(1e-8));
  }
}

TEST_CASE("The RDP values reproduce Opacus's published epsilons", "[dp][accountant]") {
  // pytorch/opacus opacus/tests/accountants_test.py, test_rdp_accountant: noise 1.5, sample rate
  // 0.04, steps int(90 / 0.04) = 2250, delta 1e-5 -> 7.32911117143 (assertAlmostEqual, 7 places),
  // with Opacus's default alphas and its Balle et al. conversion (opacus/accountants/analysis/
  // rdp.py get_privacy_spent).
  CHECK(std::fabs(BalleEpsilon(OpacusOrders(), 0.04, 1.5, 2250, 1e-5) - 7.32911117143) < 5e-8);
  // https://opacus.ai/api/compute_dp_sgd_privacy.html: --epochs=3 --delta=1e-5 --sample-rate 0.01
  // --noise-multiplier 1.0 --alphas 2 5 10 20 100 -> 300 steps, epsilon = 2.39, optimal alpha 5.
  double order = 0;
  CHECK(std::fabs(BalleEpsilon({2, 5, 10, 20, 100}, 0.01, 1.0, 300, 1e-5, &order) - 2.39) < 0.005);
  CHECK(order == 5.0);
}

TEST_CASE("The RDP values reproduce the TF Privacy MNIST tutorial and Abadi et al.",
          "[dp][accountant]") {
  // tensorflow/privacy tutorials/README.md, "Expected Output" of mnist_dpsgd_tutorial.py with its
  // defaults (noise_multiplier 1.12, batch 256 of 60000, 60000 // 256 = 234 steps per epoch,
  // delta 1e-5): epsilon 1.00 after 1 epoch, 1.04 after 2, 2.92 after 60. Printed with %.2f from
  // compute_rdp over the tutorial's orders and the pre-2020 get_privacy_spent.
  const double q = 256.0 / 60000.0;
  CHECK(std::fabs(OldEpsilon(OpacusOrders(), q, 1.12, 1 * 234, 1e-5) - 1.00) < 0.005);
  CHECK(std::fabs(OldEpsilon(OpacusOrders(), q, 1.12, 2 * 234, 1e-5) - 1.04) < 0.005);
  CHECK(std::fabs(OldEpsilon(OpacusOrders(), q, 1.12, 60 * 234, 1e-5) - 2.92) < 0.005);
  // Abadi et al. 2016, "Deep Learning with Differential Privacy" (arXiv:1607.00133), Section 3.1:
  // "with L = 0.01N, sigma = 4, delta = 1e-5, and T = 10000, we have epsilon ~ 1.26 using the
  // moments accountant". Their tail bound min_lambda (T alpha(lambda) + log(1/delta)) / lambda
  // over lambda <= 32, with alpha(lambda) = lambda * RDP(lambda + 1), is the old conversion over
  // the orders 2..33.
  std::vector<double> lambdas_plus_one;
  for (int l = 1; l <= 32; ++l) lambdas_plus_one.push_back(l + 1);
  CHECK(std::fabs(OldEpsilon(lambdas_plus_one, 0.01, 4.0, 10000, 1e-5) - 1.26) < 0.005);
}

TEST_CASE("DpNoiseMultiplierFor recovers the published noise for the published epsilon",
          "[dp][accountant]") {
  // The inverse of the first compute_dp_sgd_privacy case above: noise 1.3 gives 0.7242234026.
  Result<double> sigma = DpNoiseMultiplierFor(150.0 / 60000.0, 6000, 0.7242234026109595, 1e-5);
  REQUIRE(sigma.ok());
  CHECK(*sigma == Approx(1.3).epsilon(2e-4));
}

// ---------------------------------------------------------------------------------------------
// Properties of the accountant.

TEST_CASE("SampledGaussianRdp matches a numerical integral of A_alpha", "[dp][accountant]") {
  // The (q, sigma, order) cases of TF Privacy's test_compute_log_a_equals_mp, which compares the
  // series with an mpmath quadrature at rtol 1e-4; here against the trapezoid rule in double.
  // Integer and fractional orders, q from 1e-6 to 0.999, sigma from 0.1 to 100.
  struct Case {
    double q, sigma, alpha;
  };
  const Case cases[] = {{1e-6, 0.1, 256},   {1e-5, 0.1, 256.1}, {1e-6, 1, 27},      {1e-4, 1., 1.5},
                        {1e-3, 1., 2},      {.01, 10, 20},      {.1, 100, 20.5},    {.99, 0.1, 256},
                        {.999, 100, 256.1}, {0.3, 0.7, 7.25},   {0.05, 1.1, 2.0001}};
  for (const Case& c : cases) {
    INFO("q " << c.q << " sigma " << c.sigma << " alpha " << c.alpha);
    const double ours = SampledGaussianRdp(c.q, c.sigma, c.alpha) * (c.alpha - 1);
    CHECK(ours == Approx(LogANumeric(c.q, c.sigma, c.alpha)).epsilon(1e-4));
  }
}

TEST_CASE("SampledGaussianRdp: q = 1 is the Gaussian mechanism and q -> 1 approaches it",
          "[dp][accountant]") {
  for (double sigma : {0.5, 1.0, 3.7}) {
    for (double alpha : {1.25, 2.0, 10.0, 10.5, 63.0}) {
      INFO("sigma " << sigma << " alpha " << alpha);
      const double gaussian = alpha / (2 * sigma * sigma);
      CHECK(SampledGaussianRdp(1.0, sigma, alpha) == gaussian);
      CHECK(SampledGaussianRdp(1.0 - 1e-9, sigma, alpha) == Approx(gaussian).epsilon(1e-6));
      // Subsampling only helps.
      CHECK(SampledGaussianRdp(0.5, sigma, alpha) < gaussian);
    }
  }
}

TEST_CASE("SampledGaussianRdp is continuous across integer orders", "[dp][accountant]") {
  // Integer orders use the binomial sum, fractional ones the erfc series: the two must meet.
  // RDP is non-decreasing in the order, and over 2e-4 it is close to linear.
  for (double q : {0.001, 0.01, 0.2}) {
    for (double sigma : {0.8, 1.1, 4.0}) {
      for (double alpha : {2.0, 3.0, 5.0, 20.0}) {
        INFO("q " << q << " sigma " << sigma << " alpha " << alpha);
        const double below = SampledGaussianRdp(q, sigma, alpha - 1e-4);
        const double at = SampledGaussianRdp(q, sigma, alpha);
        const double above = SampledGaussianRdp(q, sigma, alpha + 1e-4);
        CHECK(below <= at);
        CHECK(at <= above);
        CHECK(above - below < 1e-2 * at);
        CHECK(std::fabs(at - 0.5 * (below + above)) < 1e-5 * at);
      }
    }
  }
}

TEST_CASE("DpEpsilon is monotone in steps, noise and sampling rate", "[dp][accountant]") {
  double prev = 0.0;
  for (std::int64_t steps : {1, 10, 100, 1000, 10000, 100000}) {
    const double eps = DpEpsilon(0.01, 1.1, steps, 1e-5).value();
    INFO("steps " << steps);
    CHECK(eps > prev);
    prev = eps;
  }
  prev = kInf;
  for (double sigma : {0.5, 0.7, 1.0, 1.5, 2.0, 4.0, 10.0}) {
    const double eps = DpEpsilon(0.01, sigma, 1000, 1e-5).value();
    INFO("sigma " << sigma);
    CHECK(eps < prev);
    prev = eps;
  }
  prev = 0.0;
  for (double q : {0.001, 0.01, 0.1, 0.5, 1.0}) {
    const double eps = DpEpsilon(q, 1.1, 100, 1e-5).value();
    INFO("q " << q);
    CHECK(eps > prev);
    prev = eps;
  }
  // A smaller delta costs more epsilon.
  CHECK(DpEpsilon(0.01, 1.1, 1000, 1e-8).value() > DpEpsilon(0.01, 1.1, 1000, 1e-5).value());
}

TEST_CASE("DpEpsilon edge cases and argument errors", "[dp][accountant]") {
  CHECK(DpEpsilon(0.1, 1.0, 0, 1e-5).value() == 0.0);
  CHECK(DpEpsilon(0.0, 1.0, 100, 1e-5).value() == 0.0);
  CHECK(DpEpsilon(0.1, 0.0, 100, 1e-5).value() == kInf);
  // Enormous noise: the divergence falls below delta^2 and the KL bound gives 0.
  CHECK(DpEpsilon(0.01, 1e7, 1, 1e-5).value() == 0.0);
  for (double q : {-0.1, 1.1, kNaN}) {
    INFO("q " << q);
    CHECK(DpEpsilon(q, 1.0, 10, 1e-5).status().code() == StatusCode::kInvalidArgument);
  }
  for (double sigma : {-1.0, kNaN, kInf}) {
    INFO("sigma " << sigma);
    CHECK(DpEpsilon(0.1, sigma, 10, 1e-5).status().code() == StatusCode::kInvalidArgument);
  }
  CHECK(DpEpsilon(0.1, 1.0, -1, 1e-5).status().code() == StatusCode::kInvalidArgument);
  for (double delta : {0.0, 1.0, -1e-5, kNaN}) {
    INFO("delta " << delta);
    Result<double> r = DpEpsilon(0.1, 1.0, 10, delta);
    CHECK(r.status().code() == StatusCode::kInvalidArgument);
    CHECK_THAT(r.status().message(), Catch::Contains("delta") && Catch::Contains("(0, 1)"));
  }
}

TEST_CASE("DpNoiseMultiplierFor inverts DpEpsilon", "[dp][accountant]") {
  struct Case {
    double q;
    std::int64_t steps;
    double eps, delta;
  };
  const Case cases[] = {{0.01, 1000, 1.0, 1e-5},  {0.01, 10000, 8.0, 1e-5},  {0.1, 50, 0.5, 1e-6},
                        {1.0, 1, 3.0, 1e-5},      {0.004, 14040, 2.0, 1e-5}, {0.3, 200, 20.0, 1e-3},
                        {1e-4, 100000, 0.1, 1e-7}};
  for (const Case& c : cases) {
    INFO("q " << c.q << " steps " << c.steps << " eps " << c.eps);
    Result<double> sigma = DpNoiseMultiplierFor(c.q, c.steps, c.eps, c.delta);
    REQUIRE(sigma.ok());
    // Meets the target, and 1e-4 less noise (the stated resolution) would not.
    CHECK(DpEpsilon(c.q, *sigma, c.steps, c.delta).value() <= c.eps);
    CHECK(DpEpsilon(c.q, *sigma / (1 + 1.01e-4), c.steps, c.delta).value() > c.eps);
  }
  CHECK(DpNoiseMultiplierFor(0.0, 100, 1.0, 1e-5).value() == 0.0);
  CHECK(DpNoiseMultiplierFor(0.1, 0, 1.0, 1e-5).value() == 0.0);
  for (double eps : {0.0, -1.0, kNaN}) {
    INFO("eps " << eps);
    CHECK(DpNoiseMultiplierFor(0.1, 10, eps, 1e-5).status().code() == StatusCode::kInvalidArgument);
  }
  CHECK(DpNoiseMultiplierFor(1.5, 10, 1.0, 1e-5).status().code() == StatusCode::kInvalidArgument);
  // A billion unsampled releases cannot get under 1e-3 with noise up to 1e6.
  Result<double> unreachable = DpNoiseMultiplierFor(1.0, 1000000000, 1e-3, 1e-5);
  CHECK(unreachable.status().code() == StatusCode::kInvalidArgument);
  CHECK_THAT(unreachable.status().message(), Catch::Contains("not reached"));
}

// ---------------------------------------------------------------------------------------------
// Sampling without replacement, replace one (what the round controller's fixed-size sample
// runs). The references below are written from the paper (Wang, Balle and Kasiviswanathan 2019,
// arXiv 1808.00087), not from the accountant's code: forward differences by their defining
// binomial sum in long double, binomials by products.

long double Binomial(int n, int k) {
  long double b = 1.0L;
  for (int i = 1; i <= k; ++i) b = b * (n - k + i) / i;
  return b;
}

// Delta^k h(0) = sum_l (-1)^(k-l) C(k, l) h(l), h(l) = exp((l - 1) l / (2 sigma^2)).
long double ForwardDifference(double sigma, int k) {
  long double sum = 0.0L;
  for (int l = 0; l <= k; ++l) {
    const long double h = std::exp(static_cast<long double>(l - 1) * l / (2.0L * sigma * sigma));
    sum += ((k - l) % 2 == 0 ? 1.0L : -1.0L) * Binomial(k, l) * h;
  }
  return sum;
}

// Theorem 27 (`sharp`) or Theorem 9 (general) at integer alpha for the Gaussian with RDP
// eps(l) = l / (2 sigma^2) and eps(inf) = inf:
//   1/(alpha-1) log(1 + q^2 C(alpha,2) min(4 (e^eps(2) - 1), 2 e^eps(2))
//                     + sum_{j>=3} q^j C(alpha,j) min(4 sqrt(D(2 floor(j/2)) D(2 ceil(j/2))),
//                                                     2 e^((j-1) eps(j))))
// with Theorem 9 keeping only the second term of each min.
double WorRdpReference(double q, double sigma, int alpha, bool sharp) {
  const long double e2 = 2.0L / (2.0L * sigma * sigma);
  long double a = 1.0L + static_cast<long double>(q) * q * Binomial(alpha, 2) *
                             std::min(4.0L * std::expm1(e2), 2.0L * std::exp(e2));
  for (int j = 3; j <= alpha; ++j) {
    long double t = 2.0L * std::exp(static_cast<long double>(j - 1) * j / (2.0L * sigma * sigma));
    if (sharp) {
      const long double d = std::sqrt(std::fabs(ForwardDifference(sigma, 2 * (j / 2)) *
                                                ForwardDifference(sigma, 2 * ((j + 1) / 2))));
      t = std::min(t, 4.0L * d);
    }
    a += std::pow(static_cast<long double>(q), j) * Binomial(alpha, j) * t;
  }
  return static_cast<double>(std::log(a) / (alpha - 1));
}

TEST_CASE("SampledWithoutReplacementGaussianRdp is Wang, Balle and Kasiviswanathan's bound",
          "[dp][accountant]") {
  for (double sigma : {0.5, 1.0, 2.0, 5.0}) {
    for (double q : {0.01, 0.1, 0.5}) {
      for (int alpha : {2, 3, 4, 5, 8, 11, 16}) {
        INFO("sigma " << sigma << " q " << q << " alpha " << alpha);
        const double got = SampledWithoutReplacementGaussianRdp(q, sigma, alpha);
        const double sharp = WorRdpReference(q, sigma, alpha, true);
        CHECK(got == Approx(sharp).epsilon(1e-6));
        // Theorem 27 never exceeds the general bound.
        CHECK(got <= WorRdpReference(q, sigma, alpha, false) * (1 + 1e-12));
      }
    }
  }
  // Fractional orders: the chord of the cumulant between the neighbouring integers.
  const double x = 2.0 * SampledWithoutReplacementGaussianRdp(0.1, 1.0, 3.0);
  const double y = 3.0 * SampledWithoutReplacementGaussianRdp(0.1, 1.0, 4.0);
  CHECK(SampledWithoutReplacementGaussianRdp(0.1, 1.0, 3.25) ==
        Approx((0.75 * x + 0.25 * y) / 2.25).epsilon(1e-12));
  // q = 1 is the plain Gaussian; q = 0 releases nothing; no noise, no privacy.
  CHECK(SampledWithoutReplacementGaussianRdp(1.0, 2.0, 3.0) == Approx(3.0 / 8.0));
  CHECK(SampledWithoutReplacementGaussianRdp(0.0, 2.0, 3.0) == 0.0);
  CHECK(SampledWithoutReplacementGaussianRdp(0.1, 0.0, 3.0) == kInf);
  CHECK(std::isnan(SampledWithoutReplacementGaussianRdp(0.1, 1.0, 1.0)));
  CHECK(std::isnan(SampledWithoutReplacementGaussianRdp(1.5, 1.0, 2.0)));
}

TEST_CASE("DpEpsilon without replacement accounts replace-one sensitivity 2C", "[dp][accountant]") {
  using S = DpSampling;
  // q = 1 (local DP): the Gaussian at half the noise multiplier, i.e. sensitivity 2C.
  CHECK(DpEpsilon(1.0, 2.0, 10, 1e-5, S::kWithoutReplacement).value() ==
        DpEpsilon(1.0, 1.0, 10, 1e-5, S::kPoisson).value());
  // The fixed-size sample costs more than the Poisson figure it used to be reported as.
  for (double q : {0.01, 0.1, 0.5}) {
    for (double sigma : {0.8, 1.0, 2.0, 8.0}) {
      INFO("q " << q << " sigma " << sigma);
      CHECK(DpEpsilon(q, sigma, 100, 1e-5, S::kWithoutReplacement).value() >
            DpEpsilon(q, sigma, 100, 1e-5, S::kPoisson).value());
    }
  }
  double prev = kInf;
  for (double sigma : {0.5, 1.0, 2.0, 4.0, 10.0, 50.0}) {
    const double eps = DpEpsilon(0.1, sigma, 100, 1e-5, S::kWithoutReplacement).value();
    INFO("sigma " << sigma);
    CHECK(eps < prev);
    prev = eps;
  }
  CHECK(DpEpsilon(0.0, 1.0, 100, 1e-5, S::kWithoutReplacement).value() == 0.0);
  CHECK(DpEpsilon(0.1, 0.0, 100, 1e-5, S::kWithoutReplacement).value() == kInf);
  for (double q : {0.1, 1.0}) {
    INFO("q " << q);
    Result<double> sigma = DpNoiseMultiplierFor(q, 100, 4.0, 1e-5, S::kWithoutReplacement);
    REQUIRE(sigma.ok());
    CHECK(DpEpsilon(q, *sigma, 100, 1e-5, S::kWithoutReplacement).value() <= 4.0);
    CHECK(DpEpsilon(q, *sigma / (1 + 1.01e-4), 100, 1e-5, S::kWithoutReplacement).value() > 4.0);
  }
}

// ---------------------------------------------------------------------------------------------
// Clipping and noise.

double Norm(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x * x;
  return std::sqrt(s);
}

std::vector<double> Delta(const std::vector<float>& x, const std::vector<float>& g) {
  std::vector<double> d(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) d[i] = static_cast<double>(x[i]) - g[i];
  return d;
}

TEST_CASE("ClipDeltaInPlace bounds the norm and leaves small deltas alone", "[dp][clip]") {
  core::Rng rng(3);
  for (std::size_t n : {1, 7, 1000, 100003}) {
    for (double scale : {1e-3, 0.3, 1.0, 7.0, 1e4}) {
      std::vector<float> g(n), x(n);
      for (std::size_t i = 0; i < n; ++i) {
        g[i] = static_cast<float>(rng.Normal());
        x[i] = static_cast<float>(g[i] + scale * rng.Normal() / std::sqrt(double(n)));
      }
      const double clip = 1.0;
      const std::vector<double> before = Delta(x, g);
      const std::vector<float> original = x;
      const double norm = ClipDeltaInPlace(x.data(), g.data(), n, clip);
      INFO("n " << n << " scale " << scale);
      CHECK(norm == Approx(Norm(before)).epsilon(1e-12));
      if (norm <= clip) {
        CHECK(x == original);  // bitwise
        continue;
      }
      // x is g + delta * clip / norm rounded to float32: each value is off by at most half an
      // ulp of itself, so the delta's norm is off by at most FLT_EPSILON / 2 * ||x||.
      std::vector<double> xd(x.begin(), x.end());
      const double slack = 0.5 * FLT_EPSILON * Norm(xd) + 1e-12;
      const std::vector<double> after = Delta(x, g);
      CHECK(std::fabs(Norm(after) - clip) <= slack);
      // Same direction: every coordinate scaled by the same factor.
      const double f = clip / norm;
      for (std::size_t i = 0; i < n; ++i) {
        REQUIRE(std::fabs(after[i] - f * before[i]) <=
                0.5 * FLT_EPSILON * std::fabs(xd[i]) + 1e-30);
      }
    }
  }
  // A non-finite value: reported through the norm, x untouched.
  std::vector<float> g = {0, 0, 0}, x = {1, std::numeric_limits<float>::quiet_NaN(), 100};
  CHECK(std::isnan(ClipDeltaInPlace(x.data(), g.data(), 3, 1.0)));
  CHECK(x[0] == 1.0f);
  CHECK(x[2] == 100.0f);
}

// Moments of n draws: the sample mean has standard deviation s / sqrt(n); the sample variance
// is ~ s^2 chi^2_{n-1} / (n-1), so the sample standard deviation has relative standard deviation
// ~ 1 / sqrt(2 (n-1)). Bounds at 5 of those standard deviations (a false failure once in ~1.7
// million keys; the keys are fixed).
void CheckMoments(const std::vector<double>& x, double s) {
  const double n = static_cast<double>(x.size());
  double sum = 0;
  for (double v : x) sum += v;
  const double mean = sum / n;
  double ss = 0;
  for (double v : x) ss += (v - mean) * (v - mean);
  const double sd = std::sqrt(ss / (n - 1));
  INFO("s " << s << " mean " << mean << " sd " << sd);
  CHECK(std::fabs(mean) < 5 * s / std::sqrt(n));
  CHECK(std::fabs(sd / s - 1) < 5 / std::sqrt(2.0 * (n - 1)));
}

core::Bytes Key(std::uint8_t fill) { return core::Bytes(32, fill); }

TEST_CASE("The discrete Gaussian sampler draws N_Z(0, sigma2) exactly, from its key",
          "[dp][noise]") {
  // Moments at a small, a middling and the largest sigma2 the sampler takes.
  for (std::uint64_t sigma2 : {std::uint64_t{4}, std::uint64_t{1000003}, std::uint64_t{1} << 48}) {
    auto stream = core::security::Keystream::Create(Key(static_cast<std::uint8_t>(sigma2 & 0xff)));
    REQUIRE(stream.ok());
    DiscreteGaussianSampler sampler(sigma2, stream.value());
    std::vector<double> x(200000);
    for (double& v : x) v = static_cast<double>(sampler.Next());
    REQUIRE(stream->status().ok());
    CheckMoments(x, std::sqrt(static_cast<double>(sigma2)));
  }
  // The probability masses at sigma2 = 4: P(k) = exp(-k^2 / 8) / sum_j exp(-j^2 / 8), each
  // frequency within 5 binomial standard deviations.
  auto stream = core::security::Keystream::Create(Key(3));
  REQUIRE(stream.ok());
  DiscreteGaussianSampler sampler(4, stream.value());
  const int n = 400000;
  std::vector<int> count(21, 0);
  for (int i = 0; i < n; ++i) {
    const std::int64_t z = sampler.Next();
    if (z >= -10 && z <= 10) ++count[static_cast<std::size_t>(z + 10)];
  }
  double norm = 0;
  for (int j = -40; j <= 40; ++j) norm += std::exp(-j * j / 8.0);
  for (int k = -6; k <= 6; ++k) {
    const double p = std::exp(-k * k / 8.0) / norm;
    const double f = static_cast<double>(count[static_cast<std::size_t>(k + 10)]) / n;
    INFO("k " << k << " frequency " << f << " expected " << p);
    CHECK(std::fabs(f - p) < 5 * std::sqrt(p * (1 - p) / n));
  }
  // The same key gives the same draws; another key others.
  auto s1 = core::security::Keystream::Create(Key(9));
  auto s2 = core::security::Keystream::Create(Key(9));
  auto s3 = core::security::Keystream::Create(Key(10));
  DiscreteGaussianSampler a(1000, s1.value()), b(1000, s2.value()), c(1000, s3.value());
  std::vector<std::int64_t> da, db, dc;
  for (int i = 0; i < 64; ++i) {
    da.push_back(a.Next());
    db.push_back(b.Next());
    dc.push_back(c.Next());
  }
  CHECK(da == db);
  CHECK(da != dc);
}

TEST_CASE("The noise plan's grid costs at most 0.1% more noise and covers snapping",
          "[dp][noise]") {
  for (std::size_t n : {std::size_t{1}, std::size_t{1000}, std::size_t{25000000}}) {
    for (double sigma : {0.3, 1.0, 8.0, 300.0}) {
      for (double clip : {0.01, 1.0, 50.0}) {
        const DiscreteGaussianPlan plan = PlanDiscreteGaussian(sigma, clip, n);
        INFO("n " << n << " sigma " << sigma << " clip " << clip << " gamma " << plan.granularity
                  << " sigma2 " << plan.sigma2);
        int exponent = 0;
        REQUIRE(std::frexp(plan.granularity, &exponent) == 0.5);  // a power of two
        REQUIRE(plan.sigma2 >= 1);
        REQUIRE(plan.sigma2 <= (std::uint64_t{1} << 48));
        const double snap = plan.granularity * std::sqrt(static_cast<double>(n));
        // The noise covers the snapped sensitivity 2C + gamma sqrt(n) at this multiplier.
        CHECK(plan.stddev >= sigma * (clip + snap / 2) * (1 - 1e-12));
        CHECK(plan.stddev == Approx(std::sqrt(double(plan.sigma2)) * plan.granularity));
        // Within 0.1% of sigma C unless the 2^48 cap coarsened the grid.
        if (plan.sigma2 < (std::uint64_t{1} << 46)) {
          CHECK(snap <= clip / 1024);
          CHECK(plan.stddev <= sigma * clip * 1.001 + plan.granularity);
        }
      }
    }
  }
  CHECK(PlanDiscreteGaussian(0.0, 1.0, 100).sigma2 == 0);
}

TEST_CASE(
    "Discrete Gaussian noise lands on the grid whatever the input, so its low bits say "
    "nothing",
    "[dp][noise]") {
  // The floating-point attack (Mironov 2012) reads which outputs a float sampler can produce
  // from a given input. Here every output is an integer number of grid steps for any input, and
  // the noise's support is all integers, so the outputs possible from two inputs are the same.
  const DiscreteGaussianPlan plan = PlanDiscreteGaussian(1.0, 1.0, 4096);
  for (double base : {0.0, 0.1234567, -3.75e-3, 1e-300}) {
    std::vector<double> x(4096, base);
    REQUIRE(AddDiscreteGaussianNoise(x.data(), x.size(), plan, Key(1)).ok());
    for (double& v : x) {
      const double steps = v / plan.granularity;
      REQUIRE(steps == std::nearbyint(steps));
      v -= base;  // the noise, up to the snapping (< one step)
    }
    CheckMoments(x, plan.stddev);
  }
  // Same key, same noise; the empty plan touches nothing.
  std::vector<double> a(100, 0.5), b(100, 0.5), c(100, 0.5);
  REQUIRE(AddDiscreteGaussianNoise(a.data(), a.size(), plan, Key(4)).ok());
  REQUIRE(AddDiscreteGaussianNoise(b.data(), b.size(), plan, Key(4)).ok());
  CHECK(a == b);
  REQUIRE(AddDiscreteGaussianNoise(c.data(), c.size(), DiscreteGaussianPlan{}, Key(4)).ok());
  CHECK(c == std::vector<double>(100, 0.5));
  // A key of the wrong size, a non-finite value or one beyond the grid is refused by name.
  CHECK(AddDiscreteGaussianNoise(a.data(), a.size(), plan, core::Bytes(16, 0)).code() ==
        StatusCode::kInvalidArgument);
  std::vector<double> bad = {1.0, kNaN};
  Status st = AddDiscreteGaussianNoise(bad.data(), bad.size(), plan, Key(4));
  CHECK(st.code() == StatusCode::kInvalidArgument);
  CHECK_THAT(st.message(), Catch::Contains("coordinate 1"));
  std::vector<double> huge = {1e30};
  CHECK(AddDiscreteGaussianNoise(huge.data(), 1, plan, Key(4)).code() ==
        StatusCode::kInvalidArgument);
}

TEST_CASE("DpNoiseKey separates purposes, rounds and clients, and a secret key replaces the seed",
          "[dp][noise]") {
  DpOptions o;
  o.seed = 7;
  auto k1 = DpNoiseKey(o, "central", {3});
  auto k2 = DpNoiseKey(o, "central", {4});
  auto k3 = DpNoiseKey(o, "local", {3});
  REQUIRE(k1.ok());
  REQUIRE(k2.ok());
  REQUIRE(k3.ok());
  CHECK(k1->size() == 32);
  CHECK(*k1 != *k2);
  CHECK(*k1 != *k3);
  CHECK(*DpNoiseKey(o, "central", {3}) == *k1);
  DpOptions secret = o;
  secret.noise_key = Key(0x5a);
  CHECK(*DpNoiseKey(secret, "central", {3}) != *k1);
  const core::Bytes with_secret = *DpNoiseKey(secret, "central", {3});
  secret.seed = 8;  // with a secret key, the (public) seed does not enter
  CHECK(*DpNoiseKey(secret, "central", {3}) == with_secret);
}

// ---------------------------------------------------------------------------------------------
// Central DP-FedAvg.

ModelState MakeState(const std::vector<std::vector<std::int64_t>>& shapes, core::Rng& rng,
                     double scale, double offset = 0.0) {
  ModelState s;
  for (std::size_t t = 0; t < shapes.size(); ++t) {
    std::size_t n = 1;
    for (auto d : shapes[t]) n *= static_cast<std::size_t>(d);
    std::vector<float> v(n);
    for (float& x : v) x = static_cast<float>(offset + scale * rng.Normal());
    REQUIRE(s.Add("t" + std::to_string(t), shapes[t], v.data()).ok());
  }
  return s;
}

// An update whose state is `global` plus a random delta of L2 norm `norm`.
ClientUpdate UpdateWithNorm(std::int64_t id, const ModelState& global, double norm, core::Rng& rng,
                            std::int64_t samples = 10) {
  std::vector<double> d(global.numel());
  for (double& v : d) v = rng.Normal();
  const double f = norm / Norm(d);
  ClientUpdate u;
  u.client_id = id;
  u.num_samples = samples;
  u.state = global;
  for (std::size_t i = 0; i < d.size(); ++i) {
    u.state.data()[i] = static_cast<float>(global.data()[i] + f * d[i]);
  }
  return u;
}

const std::vector<std::vector<std::int64_t>> kShapes = {{3, 5}, {257}, {0}, {2, 3, 7}, {1}};

std::unique_ptr<Aggregator> MakeDp(DpOptions o) {
  Result<std::unique_ptr<Aggregator>> r = CreateCentralDpAggregator(o);
  REQUIRE(r.ok());
  return std::move(r).value();
}

Result<ModelState> RunRound(Aggregator& agg, const ModelState& global,
                            const std::vector<ClientUpdate>& ups, std::int64_t round = 0) {
  RoundInfo info;
  info.round = round;
  FEDML_RETURN_IF_ERROR(agg.Begin(global, info));
  for (const ClientUpdate& u : ups) FEDML_RETURN_IF_ERROR(agg.Accumulate(u));
  return agg.Finalize();
}

TEST_CASE("DP-FedAvg without noise or clipping is the unweighted mean", "[dp][central]") {
  core::Rng rng(21);
  const ModelState global = MakeState(kShapes, rng, 1.0);
  std::vector<ClientUpdate> ups;
  for (int i = 0; i < 9; ++i) {
    ClientUpdate u;
    u.client_id = i;
    u.num_samples = 1 + 1000 * i;  // very different weights, which must not matter
    u.state = MakeState(kShapes, rng, 1.0 + i, 0.5 * i);
    ups.push_back(u);
  }
  DpOptions o;
  o.clipping_norm = 1e30;
  o.noise_multiplier = 0.0;
  auto agg = MakeDp(o);
  CHECK(agg->name() == "DP-FedAvg");
  CHECK(agg->is_linear());
  CHECK_FALSE(agg->needs_all_updates());
  Result<ModelState> got = RunRound(*agg, global, ups);
  REQUIRE(got.ok());
  CHECK(agg->accepted() == 9);
  REQUIRE(got->CheckSameLayout(global).ok());
  for (std::size_t i = 0; i < global.numel(); ++i) {
    double mean = 0, scale = 0;
    for (const ClientUpdate& u : ups) {
      mean += u.state.data()[i];
      scale = std::max(scale, std::fabs(double(u.state.data()[i])));
    }
    mean /= ups.size();
    // g + sum(x - g) / n in float64 (exact up to ~1e-16 relative), rounded once to float32:
    // half an ulp of the result, which is at most the largest input.
    INFO("element " << i);
    REQUIRE(std::fabs(got->data()[i] - mean) <= 0.5 * FLT_EPSILON * scale + 1e-12 * scale);
  }
  const auto figures = agg->RoundFigures();
  CHECK(figures.at("dp_noise_stddev") == 0.0);
  CHECK(figures.at("dp_epsilon") == kInf);
  CHECK(figures.at("dp_clipped_fraction") == 0.0);
  CHECK(figures.at("dp_delta") == o.delta);
}

TEST_CASE("DP-FedAvg clips each delta to C before averaging", "[dp][central]") {
  core::Rng rng(22);
  const ModelState global = MakeState(kShapes, rng, 1.0);
  DpOptions o;
  o.clipping_norm = 0.5;
  o.noise_multiplier = 0.0;
  auto agg = MakeDp(o);
  // Norms 50, 3 and 0.5005 (clipped to 0.5), 0.2 and 0.4 (kept).
  const std::vector<double> norms = {50.0, 0.2, 0.4, 3.0, 0.5005};
  std::vector<ClientUpdate> ups;
  for (std::size_t i = 0; i < norms.size(); ++i) {
    ups.push_back(UpdateWithNorm(i, global, norms[i], rng));
  }
  Result<ModelState> got = RunRound(*agg, global, ups);
  REQUIRE(got.ok());
  std::vector<double> expected(global.numel(), 0.0);
  for (const ClientUpdate& u : ups) {
    const std::vector<double> d = Delta(u.state.flat(), global.flat());
    const double f = std::min(1.0, o.clipping_norm / Norm(d));
    for (std::size_t i = 0; i < d.size(); ++i) expected[i] += f * d[i] / ups.size();
  }
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const double want = global.data()[i] + expected[i];
    REQUIRE(std::fabs(got->data()[i] - want) <= 0.5 * FLT_EPSILON * std::fabs(want) + 1e-12);
  }
  CHECK(agg->RoundFigures().at("dp_clipped_fraction") == Approx(3.0 / 5.0));
  // One client alone moves the model by exactly C.
  Result<ModelState> single = RunRound(*agg, global, {UpdateWithNorm(9, global, 1e6, rng)});
  REQUIRE(single.ok());
  std::vector<double> xd(single->flat().begin(), single->flat().end());
  CHECK(std::fabs(Norm(Delta(single->flat(), global.flat())) - o.clipping_norm) <=
        0.5 * FLT_EPSILON * Norm(xd));
}

TEST_CASE("DP-FedAvg noise has stddev sigma C / n and is deterministic per seed and round",
          "[dp][central]") {
  core::Rng rng(23);
  const std::vector<std::vector<std::int64_t>> shapes = {{400, 500}, {17}};
  const ModelState global = MakeState(shapes, rng, 1.0);
  std::vector<ClientUpdate> ups;
  for (int i = 0; i < 4; ++i) ups.push_back(UpdateWithNorm(i, global, 0.3 + i, rng));
  DpOptions clean;
  clean.clipping_norm = 1.5;
  clean.noise_multiplier = 0.0;
  DpOptions noisy = clean;
  noisy.noise_multiplier = 2.0;
  noisy.seed = 99;
  auto a = MakeDp(clean);
  auto b = MakeDp(noisy);
  Result<ModelState> ref = RunRound(*a, global, ups, 7);
  Result<ModelState> got = RunRound(*b, global, ups, 7);
  REQUIRE(ref.ok());
  REQUIRE(got.ok());
  // The discrete Gaussian's stddev on the sum, over the count: sigma C / n to within 0.1%.
  const double expected_sd =
      PlanDiscreteGaussian(noisy.noise_multiplier, noisy.clipping_norm, global.numel()).stddev /
      ups.size();
  CHECK(b->RoundFigures().at("dp_noise_stddev") == Approx(expected_sd));
  CHECK(expected_sd ==
        Approx(noisy.noise_multiplier * noisy.clipping_norm / ups.size()).epsilon(1e-3));
  // The difference is the noise (plus float32 rounding of ~1e-7, negligible next to 0.75).
  const std::size_t n = global.numel();
  double sum = 0, ss = 0;
  for (std::size_t i = 0; i < n; ++i) sum += double(got->data()[i]) - ref->data()[i];
  const double mean = sum / n;
  for (std::size_t i = 0; i < n; ++i) {
    const double e = double(got->data()[i]) - ref->data()[i] - mean;
    ss += e * e;
  }
  const double sd = std::sqrt(ss / (n - 1));
  INFO("mean " << mean << " sd " << sd << " expected " << expected_sd);
  // 5-standard-deviation bounds as in CheckMoments (n ~ 200000 coordinates).
  CHECK(std::fabs(mean) < 5 * expected_sd / std::sqrt(double(n)));
  CHECK(std::fabs(sd / expected_sd - 1) < 5 / std::sqrt(2.0 * (n - 1)));

  // Same seed and round: bitwise the same model. Another round or seed: different noise.
  auto b2 = MakeDp(noisy);
  Result<ModelState> again = RunRound(*b2, global, ups, 7);
  REQUIRE(again.ok());
  CHECK(*again == *got);
  Result<ModelState> next_round = RunRound(*b2, global, ups, 8);
  REQUIRE(next_round.ok());
  CHECK(*next_round != *got);
  DpOptions other_seed = noisy;
  other_seed.seed = 100;
  auto b3 = MakeDp(other_seed);
  Result<ModelState> other = RunRound(*b3, global, ups, 7);
  REQUIRE(other.ok());
  CHECK(*other != *got);
}

TEST_CASE("DP-FedAvg reports the accountant's epsilon over the rounds finalized", "[dp][central]") {
  core::Rng rng(24);
  const ModelState global = MakeState(kShapes, rng, 1.0);
  DpOptions o;
  o.clipping_norm = 1.0;
  o.noise_multiplier = 1.1;
  o.sampling_rate = 0.05;
  o.delta = 1e-6;
  auto agg = MakeDp(o);
  CHECK(agg->RoundFigures().empty());
  double prev = 0;
  for (int r = 1; r <= 5; ++r) {
    // An abandoned round (Begin again before Finalize) releases nothing and is not counted.
    REQUIRE(agg->Begin(global, {}).ok());
    REQUIRE(agg->Accumulate(UpdateWithNorm(0, global, 1.0, rng)).ok());
    REQUIRE(RunRound(*agg, global, {UpdateWithNorm(1, global, 2.0, rng)}, r).ok());
    const double eps = agg->RoundFigures().at("dp_epsilon");
    INFO("round " << r);
    // The default accounts the controller's fixed-size sample (replace one, sensitivity 2C).
    CHECK(eps == DpEpsilon(o.sampling_rate, o.noise_multiplier, r, o.delta,
                           DpSampling::kWithoutReplacement)
                     .value());
    CHECK(eps > prev);
    prev = eps;
    CHECK(agg->RoundFigures().at("dp_delta") == 1e-6);
    CHECK(agg->RoundFigures().at("dp_clipped_fraction") == 1.0);
  }
}

TEST_CASE("DP-FedAvg refuses bad updates and leaves the round unchanged", "[dp][central]") {
  core::Rng rng(25);
  const ModelState global = MakeState(kShapes, rng, 1.0);
  std::vector<ClientUpdate> good;
  for (int i = 0; i < 3; ++i) good.push_back(UpdateWithNorm(i, global, 0.5 + i, rng));
  DpOptions o;
  o.noise_multiplier = 0.8;
  o.seed = 4;
  auto clean_agg = MakeDp(o);
  Result<ModelState> reference = RunRound(*clean_agg, global, good, 3);
  REQUIRE(reference.ok());

  std::vector<ClientUpdate> bad;
  {
    ClientUpdate u = good[0];
    u.client_id = 90;
    u.state = ModelState();
    REQUIRE(u.state.Add("t0", {15}, global.data()).ok());  // wrong layout
    bad.push_back(u);
  }
  for (std::int64_t samples : {0, -3}) {
    ClientUpdate u = good[1];
    u.client_id = 91;
    u.num_samples = samples;
    bad.push_back(u);
  }
  for (float v :
       {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    ClientUpdate u = good[2];
    u.client_id = 92;
    u.state.data()[20] = v;
    bad.push_back(u);
  }
  auto agg = MakeDp(o);
  RoundInfo info;
  info.round = 3;
  REQUIRE(agg->Begin(global, info).ok());
  for (std::size_t i = 0; i < good.size(); ++i) {
    REQUIRE(agg->Accumulate(good[i]).ok());
    for (const ClientUpdate& u : bad) {
      Status st = agg->Accumulate(u);
      INFO("client " << u.client_id);
      CHECK(st.code() == StatusCode::kInvalidArgument);
      CHECK_THAT(st.message(), Catch::Contains("client " + std::to_string(u.client_id)));
      CHECK(agg->accepted() == static_cast<int>(i) + 1);
    }
  }
  Result<ModelState> got = agg->Finalize();
  REQUIRE(got.ok());
  CHECK(*got == *reference);  // bitwise: the refused updates left no trace

  // Lifecycle errors.
  auto fresh = MakeDp(o);
  CHECK(fresh->Accumulate(good[0]).code() == StatusCode::kFailedPrecondition);
  CHECK(fresh->Finalize().status().code() == StatusCode::kFailedPrecondition);
  REQUIRE(fresh->Begin(global, {}).ok());
  CHECK(fresh->Finalize().status().code() == StatusCode::kFailedPrecondition);  // none accepted
  REQUIRE(fresh->Accumulate(good[0]).ok());
  REQUIRE(fresh->Finalize().ok());
  CHECK(fresh->Finalize().status().code() == StatusCode::kFailedPrecondition);  // twice
  CHECK(fresh->Begin(ModelState(), {}).code() == StatusCode::kInvalidArgument);
  ModelState nan_global = global;
  nan_global.data()[0] = std::numeric_limits<float>::quiet_NaN();
  CHECK(fresh->Begin(nan_global, {}).code() == StatusCode::kInvalidArgument);
}

TEST_CASE("DP options out of range are clear errors", "[dp][options]") {
  struct Bad {
    const char* option;
    const char* allowed;
    void (*set)(DpOptions&, double);
    std::vector<double> values;
  };
  const Bad cases[] = {
      {"clipping_norm",
       "> 0",
       [](DpOptions& o, double v) { o.clipping_norm = v; },
       {0.0, -1.0, kNaN, kInf}},
      {"noise_multiplier",
       ">= 0",
       [](DpOptions& o, double v) { o.noise_multiplier = v; },
       {-0.1, kNaN, kInf}},
      {"delta", "(0, 1)", [](DpOptions& o, double v) { o.delta = v; }, {0.0, 1.0, -1e-5, kNaN}},
      {"sampling_rate",
       "(0, 1]",
       [](DpOptions& o, double v) { o.sampling_rate = v; },
       {0.0, 1.5, -0.1, kNaN}},
  };
  core::Rng rng(26);
  const ModelState global = MakeState(kShapes, rng, 1.0);
  for (const Bad& b : cases) {
    for (double v : b.values) {
      DpOptions o;
      b.set(o, v);
      INFO(b.option << " = " << v);
      Result<std::unique_ptr<Aggregator>> r = CreateCentralDpAggregator(o);
      CHECK(r.status().code() == StatusCode::kInvalidArgument);
      CHECK_THAT(r.status().message(), Catch::Contains(b.option) &&
                                           Catch::Contains(std::string("allowed: ") + b.allowed));
      ModelState update = global;
      Status st = ApplyLocalDp(update, global, o, Key(1));
      CHECK(st.code() == StatusCode::kInvalidArgument);
      CHECK_THAT(st.message(), Catch::Contains(b.option));
      CHECK(update == global);
    }
  }
  // The edges of the ranges are allowed.
  DpOptions edge;
  edge.noise_multiplier = 0.0;
  edge.sampling_rate = 1.0;
  CHECK(CreateCentralDpAggregator(edge).ok());
}

// ---------------------------------------------------------------------------------------------
// Local DP.

TEST_CASE("ApplyLocalDp clips to C and adds discrete Gaussian noise of stddev sigma C",
          "[dp][local]") {
  core::Rng rng(27);
  const std::vector<std::vector<std::int64_t>> shapes = {{500, 400}, {3}};
  const ModelState global = MakeState(shapes, rng, 1.0);
  DpOptions o;
  o.clipping_norm = 2.0;
  o.noise_multiplier = 0.0;
  // Without noise: a large delta comes back with norm C, a small one unchanged.
  ModelState big = UpdateWithNorm(0, global, 40.0, rng).state;
  REQUIRE(ApplyLocalDp(big, global, o, Key(1)).ok());
  std::vector<double> xd(big.flat().begin(), big.flat().end());
  CHECK(std::fabs(Norm(Delta(big.flat(), global.flat())) - o.clipping_norm) <=
        0.5 * FLT_EPSILON * Norm(xd));
  ModelState barely = UpdateWithNorm(3, global, 1.001 * o.clipping_norm, rng).state;
  REQUIRE(ApplyLocalDp(barely, global, o, Key(1)).ok());
  std::vector<double> bd(barely.flat().begin(), barely.flat().end());
  CHECK(std::fabs(Norm(Delta(barely.flat(), global.flat())) - o.clipping_norm) <=
        0.5 * FLT_EPSILON * Norm(bd));
  ModelState small = UpdateWithNorm(1, global, 1.0, rng).state;
  const ModelState small_before = small;
  REQUIRE(ApplyLocalDp(small, global, o, Key(1)).ok());
  CHECK(small == small_before);

  // With noise: global + (round(clipped delta / gamma) + Z) gamma, Z the sampler's draws from
  // the key in index order, rounded to float32 once; the noise has stddev sigma C (to 0.1%).
  o.noise_multiplier = 0.7;
  const ModelState raw = UpdateWithNorm(2, global, 40.0, rng).state;
  ModelState noised = raw;
  REQUIRE(ApplyLocalDp(noised, global, o, Key(8)).ok());
  ModelState again = raw;
  REQUIRE(ApplyLocalDp(again, global, o, Key(8)).ok());
  CHECK(again == noised);
  const std::size_t n = global.numel();
  const DiscreteGaussianPlan plan = PlanDiscreteGaussian(o.noise_multiplier, o.clipping_norm, n);
  const std::vector<double> d = Delta(raw.flat(), global.flat());
  const double f = std::min(1.0, o.clipping_norm / Norm(d));
  auto stream = core::security::Keystream::Create(Key(8));
  REQUIRE(stream.ok());
  DiscreteGaussianSampler sampler(plan.sigma2, stream.value());
  std::vector<double> noise(n);
  for (std::size_t i = 0; i < n; ++i) {
    const double z = static_cast<double>(sampler.Next());
    const double want = static_cast<double>(global.data()[i]) +
                        (std::nearbyint(f * d[i] / plan.granularity) + z) * plan.granularity;
    // f d[i] is formed here by another float64 path: its grid step may differ at a tie.
    REQUIRE(std::fabs(noised.data()[i] - want) <=
            0.5 * FLT_EPSILON * std::fabs(want) + plan.granularity);
    noise[i] = z * plan.granularity;
  }
  CheckMoments(noise, plan.stddev);
  CHECK(plan.stddev == Approx(o.noise_multiplier * o.clipping_norm).epsilon(1e-3));

  // Layout and finiteness errors leave the update as it was.
  ModelState wrong;
  REQUIRE(wrong.Add("t0", {3}, global.data()).ok());
  const ModelState wrong_before = wrong;
  CHECK(ApplyLocalDp(wrong, global, o, Key(9)).code() == StatusCode::kInvalidArgument);
  CHECK(wrong == wrong_before);
  ModelState nan_update = raw;
  nan_update.data()[5] = std::numeric_limits<float>::quiet_NaN();
  const float kept = nan_update.data()[0];
  CHECK(ApplyLocalDp(nan_update, global, o, Key(9)).code() == StatusCode::kInvalidArgument);
  CHECK(nan_update.data()[0] == kept);
}

}  // namespace
}  // namespace fedml::algorithms
