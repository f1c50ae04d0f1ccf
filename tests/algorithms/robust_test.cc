// Robust aggregators against straightforward float64 references written here, on random inputs
// of several layouts, plus planted attackers, hand cases, preconditions and refused updates.
// Why one file of this size: every rule is checked against the same references and input
// generators, which would otherwise be repeated per rule.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "fedml/algorithms/fedavg.h"
#include "fedml/algorithms/robust.h"
#include "fedml/core/model_state.h"
#include "fedml/core/random.h"

namespace fedml::algorithms {
namespace {

using core::ModelState;
using Shapes = std::vector<std::vector<std::int64_t>>;
using Vec = std::vector<double>;

// Small tensors of awkward sizes and an empty one; and a layout longer than every block size in
// robust.cc (256 / 1024 / 2048 coordinates), with tails, so block edges are crossed.
const Shapes kSmall = {{3, 5}, {257}, {0}, {2, 3, 7}, {1}};
const Shapes kLong = {{4100}, {3, 700}, {1}};

ModelState RandomState(core::Rng& rng, const Shapes& shapes, double scale, bool integers = false) {
  ModelState s;
  for (std::size_t t = 0; t < shapes.size(); ++t) {
    std::size_t n = 1;
    for (auto d : shapes[t]) n *= static_cast<std::size_t>(d);
    std::vector<float> v(n);
    for (float& x : v) {
      const double r = scale * rng.Normal();
      // Small integers: many equal values per coordinate and exactly representable distances.
      x = static_cast<float>(integers ? std::round(r) : r);
    }
    REQUIRE(s.Add("t" + std::to_string(t), shapes[t], v.data()).ok());
  }
  return s;
}

ClientUpdate MakeUpdate(std::int64_t id, std::int64_t samples, ModelState state) {
  ClientUpdate u;
  u.client_id = id;
  u.num_samples = samples;
  u.state = std::move(state);
  return u;
}

// n updates around `center` (a shared offset, so the rules see a cluster, not noise around 0),
// with arbitrary sample counts; `duplicates` of them repeat an earlier one exactly.
std::vector<ClientUpdate> RandomUpdates(core::Rng& rng, const Shapes& shapes, int n,
                                        bool integers = false, int duplicates = 0) {
  const ModelState center = RandomState(rng, shapes, integers ? 2.0 : 3.0, integers);
  std::vector<ClientUpdate> out;
  for (int i = 0; i < n; ++i) {
    ModelState s;
    if (i > 0 && i >= n - duplicates) {
      s = out[rng.UniformInt(static_cast<std::uint64_t>(n - duplicates))].state;
    } else {
      s = RandomState(rng, shapes, 1.0 + rng.Uniform(), integers);
      for (std::size_t c = 0; c < s.numel(); ++c) s.data()[c] += center.data()[c];
    }
    out.push_back(MakeUpdate(i, 1 + static_cast<std::int64_t>(rng.UniformInt(1000)), s));
  }
  return out;
}

std::unique_ptr<Aggregator> Make(RobustOptions options) {
  Result<std::unique_ptr<Aggregator>> a = CreateRobustAggregator(options);
  INFO(a.status().ToString());
  REQUIRE(a.ok());
  return std::move(a).value();
}

RobustOptions Rule(const std::string& name, int f = 0) {
  RobustOptions o;
  o.defense_type = name;
  o.byzantine_client_num = f;
  return o;
}

Result<ModelState> RunRound(Aggregator& agg, const ModelState& global,
                            const std::vector<ClientUpdate>& ups) {
  FEDML_RETURN_IF_ERROR(agg.Begin(global, {}));
  for (const ClientUpdate& u : ups) FEDML_RETURN_IF_ERROR(agg.Accumulate(u));
  return agg.Finalize();
}

std::vector<Vec> AsDouble(const std::vector<ClientUpdate>& ups) {
  std::vector<Vec> xs;
  for (const ClientUpdate& u : ups) xs.emplace_back(u.state.flat().begin(), u.state.flat().end());
  return xs;
}

// Largest |value| per coordinate over the inputs (and `extra`): the scale of float32 rounding.
Vec Scale(const std::vector<Vec>& xs, const Vec* extra = nullptr) {
  Vec m(xs[0].size(), 0.0);
  for (const Vec& x : xs) {
    for (std::size_t c = 0; c < m.size(); ++c) m[c] = std::max(m[c], std::fabs(x[c]));
  }
  if (extra) {
    for (std::size_t c = 0; c < m.size(); ++c) m[c] = std::max(m[c], std::fabs((*extra)[c]));
  }
  return m;
}

// |got - ref| <= ulps float32 epsilons of the coordinate's scale, and the layout is `like`'s.
void RequireClose(const ModelState& got, const ModelState& like, const Vec& ref, const Vec& scale,
                  double ulps) {
  REQUIRE(got.CheckSameLayout(like).ok());
  REQUIRE(got.numel() == ref.size());
  for (std::size_t c = 0; c < ref.size(); ++c) {
    const double err = std::fabs(static_cast<double>(got.data()[c]) - ref[c]);
    INFO("coordinate " << c << " got " << got.data()[c] << " want " << ref[c]);
    REQUIRE(err <= ulps * FLT_EPSILON * std::max(scale[c], static_cast<double>(FLT_MIN)));
  }
}

// ---- float64 references --------------------------------------------------------------------

Vec Column(const std::vector<Vec>& xs, std::size_t c) {
  Vec v;
  for (const Vec& x : xs) v.push_back(x[c]);
  return v;
}

Vec RefMedian(const std::vector<Vec>& xs) {
  Vec out(xs[0].size());
  for (std::size_t c = 0; c < out.size(); ++c) {
    Vec v = Column(xs, c);
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    out[c] = n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
  }
  return out;
}

Vec RefTrimmedMean(const std::vector<Vec>& xs, std::size_t trim) {
  Vec out(xs[0].size());
  for (std::size_t c = 0; c < out.size(); ++c) {
    Vec v = Column(xs, c);
    std::sort(v.begin(), v.end());
    double s = 0.0;
    for (std::size_t i = trim; i < v.size() - trim; ++i) s += v[i];
    out[c] = s / static_cast<double>(v.size() - 2 * trim);
  }
  return out;
}

Vec RefMean(const std::vector<Vec>& xs) {
  Vec out(xs[0].size(), 0.0);
  for (const Vec& x : xs) {
    for (std::size_t c = 0; c < out.size(); ++c) out[c] += x[c];
  }
  for (double& o : out) o /= static_cast<double>(xs.size());
  return out;
}

double RefSquaredDistance(const Vec& a, const Vec& b) {
  double s = 0.0;
  for (std::size_t c = 0; c < a.size(); ++c) s += (a[c] - b[c]) * (a[c] - b[c]);
  return s;
}

// Krum scores of xs[members] among themselves with `neighbours` nearest.
Vec RefScores(const std::vector<Vec>& xs, const std::vector<std::size_t>& members,
              std::size_t neighbours) {
  Vec scores;
  for (std::size_t a : members) {
    Vec d;
    for (std::size_t b : members) {
      if (b != a) d.push_back(RefSquaredDistance(xs[a], xs[b]));
    }
    std::sort(d.begin(), d.end());
    double s = 0.0;
    for (std::size_t i = 0; i < std::min(neighbours, d.size()); ++i) s += d[i];
    scores.push_back(s);
  }
  return scores;
}

Vec RefKrumScores(const std::vector<Vec>& xs, int f) {
  std::vector<std::size_t> all(xs.size());
  std::iota(all.begin(), all.end(), std::size_t{0});
  return RefScores(xs, all, xs.size() - static_cast<std::size_t>(f) - 2);
}

std::size_t FirstMin(const Vec& v) {
  return static_cast<std::size_t>(std::min_element(v.begin(), v.end()) - v.begin());
}

// Indices of the m best-scored, in arrival order.
std::vector<std::size_t> RefMultiKrumChoice(const std::vector<Vec>& xs, int f, std::size_t m) {
  const Vec scores = RefKrumScores(xs, f);
  std::vector<std::size_t> order(xs.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return scores[a] < scores[b]; });
  order.resize(m);
  std::sort(order.begin(), order.end());
  return order;
}

Vec RefBulyan(const std::vector<Vec>& xs, int f_int) {
  const std::size_t n = xs.size(), f = static_cast<std::size_t>(f_int);
  const std::size_t theta = n - 2 * f, keep = theta - 2 * f;
  std::vector<std::size_t> remaining(n);
  std::iota(remaining.begin(), remaining.end(), std::size_t{0});
  std::vector<Vec> selected;
  while (selected.size() < theta) {
    const std::size_t r = remaining.size();
    const std::size_t best = FirstMin(RefScores(xs, remaining, r > f + 2 ? r - f - 2 : 0));
    selected.push_back(xs[remaining[best]]);
    remaining.erase(remaining.begin() + static_cast<std::ptrdiff_t>(best));
  }
  Vec out(xs[0].size());
  for (std::size_t c = 0; c < out.size(); ++c) {
    Vec v = Column(selected, c);
    std::sort(v.begin(), v.end());
    const double med = theta % 2 == 1 ? v[theta / 2] : 0.5 * (v[theta / 2 - 1] + v[theta / 2]);
    // Closest to the median first; equally close: the smaller value (stable on sorted values).
    std::stable_sort(v.begin(), v.end(),
                     [&](double a, double b) { return std::fabs(a - med) < std::fabs(b - med); });
    double s = 0.0;
    for (std::size_t i = 0; i < keep; ++i) s += v[i];
    out[c] = s / static_cast<double>(keep);
  }
  return out;
}

// Smoothed Weiszfeld on the deltas from their mean; returns g + z and the step count.
Vec RefGeoMedian(const std::vector<Vec>& xs, const Vec& g, int max_iterations, double tol,
                 double nu, int* iterations) {
  std::vector<Vec> d = xs;
  for (Vec& x : d) {
    for (std::size_t c = 0; c < x.size(); ++c) x[c] -= g[c];
  }
  Vec z = RefMean(d);
  int it = 0;
  while (it < max_iterations) {
    Vec w;
    for (const Vec& x : d) w.push_back(1.0 / std::max(nu, std::sqrt(RefSquaredDistance(z, x))));
    const double total = std::accumulate(w.begin(), w.end(), 0.0);
    Vec next(z.size(), 0.0);
    for (std::size_t i = 0; i < d.size(); ++i) {
      for (std::size_t c = 0; c < z.size(); ++c) next[c] += w[i] * d[i][c];
    }
    for (double& v : next) v /= total;
    ++it;
    const double change = std::sqrt(RefSquaredDistance(next, z));
    const double norm = std::sqrt(RefSquaredDistance(next, Vec(z.size(), 0.0)));
    z = next;
    if (change <= tol * norm) break;
  }
  *iterations = it;
  for (std::size_t c = 0; c < z.size(); ++c) z[c] += g[c];
  return z;
}

Vec RefNormDiff(const std::vector<ClientUpdate>& ups, const Vec& g, double bound) {
  const std::vector<Vec> xs = AsDouble(ups);
  Vec acc(g.size(), 0.0);
  double total = 0.0;
  for (std::size_t i = 0; i < xs.size(); ++i) {
    Vec d = xs[i];
    for (std::size_t c = 0; c < g.size(); ++c) d[c] -= g[c];
    const double norm = std::sqrt(RefSquaredDistance(d, Vec(g.size(), 0.0)));
    const double coef = static_cast<double>(ups[i].num_samples) / std::max(1.0, norm / bound);
    for (std::size_t c = 0; c < g.size(); ++c) acc[c] += coef * d[c];
    total += static_cast<double>(ups[i].num_samples);
  }
  for (std::size_t c = 0; c < g.size(); ++c) acc[c] = g[c] + acc[c] / total;
  return acc;
}

Vec Flat(const ModelState& s) { return Vec(s.flat().begin(), s.flat().end()); }

// ---- names and options ---------------------------------------------------------------------

const char* const kAllowed =
    "allowed: wise_median, trimmed_mean, krum, multikrum, bulyan, geo_median, norm_diff_clipping";

TEST_CASE("Robust rules are created by FedML's defense_type names", "[robust]") {
  CHECK(DefenseTypeNames() == std::vector<std::string>{"wise_median", "trimmed_mean", "krum",
                                                       "multikrum", "bulyan", "geo_median",
                                                       "norm_diff_clipping"});
  for (const std::string& name : DefenseTypeNames()) {
    std::unique_ptr<Aggregator> a = Make(Rule(name));
    CHECK(a->name() == name);
    CHECK_FALSE(a->is_linear());
    CHECK(a->needs_all_updates() == (name != "norm_diff_clipping"));
  }
  for (const char* bad : {"Krum", "median", "", "fedavg"}) {
    Result<std::unique_ptr<Aggregator>> r = CreateRobustAggregator(Rule(bad));
    CHECK(r.status().code() == StatusCode::kInvalidArgument);
    CHECK_THAT(r.status().message(),
               Catch::Contains("unknown defense_type '" + std::string(bad) + "'") &&
                   Catch::Contains(kAllowed));
  }
}

TEST_CASE("Robust options out of range are refused with the option and its range", "[robust]") {
  struct Case {
    RobustOptions options;
    std::vector<std::string> in_message;
  };
  std::vector<Case> cases;
  for (const char* rule : {"krum", "multikrum", "bulyan"}) {
    cases.push_back({Rule(rule, -1), {rule, "byzantine_client_num is -1", ">= 0"}});
  }
  for (double beta : {0.5, 0.7, -0.1, std::numeric_limits<double>::quiet_NaN()}) {
    RobustOptions o = Rule("trimmed_mean");
    o.beta = beta;
    cases.push_back({o, {"trimmed_mean", "beta is", "[0, 0.5)"}});
  }
  for (double bound : {0.0, -1.0, std::numeric_limits<double>::infinity(),
                       std::numeric_limits<double>::quiet_NaN()}) {
    RobustOptions o = Rule("norm_diff_clipping");
    o.norm_bound = bound;
    cases.push_back({o, {"norm_diff_clipping", "norm_bound is", "> 0"}});
  }
  {
    RobustOptions o = Rule("multikrum");
    o.krum_param_m = -2;
    cases.push_back({o, {"multikrum", "krum_param_m is -2"}});
  }
  {
    RobustOptions o = Rule("geo_median");
    o.geo_median_max_iterations = 0;
    cases.push_back({o, {"geo_median_max_iterations is 0", ">= 1"}});
    o = Rule("geo_median");
    o.geo_median_nu = 0.0;
    cases.push_back({o, {"geo_median_nu is 0", "> 0"}});
    o = Rule("geo_median");
    o.geo_median_tolerance = -1e-7;
    cases.push_back({o, {"geo_median_tolerance is -1e-07", ">= 0"}});
  }
  for (const Case& c : cases) {
    Result<std::unique_ptr<Aggregator>> r = CreateRobustAggregator(c.options);
    INFO(c.options.defense_type << ": " << r.status().ToString());
    REQUIRE(r.status().code() == StatusCode::kInvalidArgument);
    for (const std::string& s : c.in_message) CHECK_THAT(r.status().message(), Catch::Contains(s));
  }
  // Each rule reads only its own fields.
  RobustOptions o = Rule("wise_median", -5);
  o.beta = 3.0;
  o.norm_bound = -1.0;
  CHECK(CreateRobustAggregator(o).ok());
}

// ---- coordinate-wise rules -----------------------------------------------------------------

TEST_CASE("wise_median matches a float64 median, odd and even n, with ties", "[robust]") {
  core::Rng rng(101);
  std::unique_ptr<Aggregator> agg = Make(Rule("wise_median"));  // one across rounds and sizes
  for (const Shapes* shapes : {&kSmall, &kLong}) {
    for (int n : {1, 2, 3, 4, 5, 8, 11, 16, 33, 50}) {
      for (int variant = 0; variant < 3; ++variant) {
        // variant 1: integer values (ties inside columns); 2: duplicated updates.
        const std::vector<ClientUpdate> ups =
            RandomUpdates(rng, *shapes, n, variant == 1, variant == 2 ? n / 3 : 0);
        const ModelState global = RandomState(rng, *shapes, 1.0);
        Result<ModelState> got = RunRound(*agg, global, ups);
        REQUIRE(got.ok());
        CHECK(agg->accepted() == n);
        const Vec ref = RefMedian(AsDouble(ups));
        INFO("n " << n << " variant " << variant);
        // Exact: the median is an input value, or the float64 mean of two rounded once.
        for (std::size_t c = 0; c < ref.size(); ++c) {
          INFO("coordinate " << c);
          REQUIRE(got->data()[c] == static_cast<float>(ref[c]));
        }
        REQUIRE(got->CheckSameLayout(global).ok());
      }
    }
  }
}

TEST_CASE("wise_median ignores a minority of far outliers", "[robust]") {
  core::Rng rng(5);
  std::vector<ClientUpdate> ups = RandomUpdates(rng, kSmall, 9);
  for (int i = 5; i < 9; ++i) {
    for (std::size_t c = 0; c < ups[i].state.numel(); ++c) ups[i].state.data()[c] = 1e30f;
  }
  Result<ModelState> got = RunRound(*Make(Rule("wise_median")), ups[0].state, ups);
  REQUIRE(got.ok());
  // 4 of 9 at 1e30: the median is the largest honest value of each coordinate.
  const std::vector<Vec> xs = AsDouble(ups);
  for (std::size_t c = 0; c < got->numel(); ++c) {
    double top = -1e300;
    for (int i = 0; i < 5; ++i) top = std::max(top, xs[i][c]);
    REQUIRE(got->data()[c] == static_cast<float>(top));
  }
}

TEST_CASE("trimmed_mean matches a float64 reference, from nothing to nearly half trimmed",
          "[robust]") {
  core::Rng rng(202);
  for (const Shapes* shapes : {&kSmall, &kLong}) {
    for (int n : {1, 2, 3, 4, 7, 10, 20, 21, 50}) {
      for (double beta : {0.0, 0.05, 0.1, 0.25, 0.3, 0.49}) {
        for (int variant = 0; variant < 2; ++variant) {
          const std::vector<ClientUpdate> ups =
              RandomUpdates(rng, *shapes, n, variant == 1, variant == 1 ? n / 4 : 0);
          RobustOptions o = Rule("trimmed_mean");
          o.beta = beta;
          std::unique_ptr<Aggregator> agg = Make(o);
          Result<ModelState> got = RunRound(*agg, RandomState(rng, *shapes, 1.0), ups);
          REQUIRE(got.ok());
          const std::size_t trim =
              static_cast<std::size_t>(std::floor(beta * static_cast<double>(n)));
          INFO("n " << n << " beta " << beta << " trim " << trim << " variant " << variant);
          REQUIRE(2 * trim < static_cast<std::size_t>(n));
          CHECK(agg->RoundFigures().at("trimmed_mean_trimmed_per_side") ==
                static_cast<double>(trim));
          const std::vector<Vec> xs = AsDouble(ups);
          RequireClose(*got, ups[0].state, RefTrimmedMean(xs, trim), Scale(xs), 1.0);
          if (trim == 0) RequireClose(*got, ups[0].state, RefMean(xs), Scale(xs), 1.0);
        }
      }
    }
  }
}

// ---- Krum family ---------------------------------------------------------------------------

std::vector<const float*> Pointers(const std::vector<ClientUpdate>& ups) {
  std::vector<const float*> p;
  for (const ClientUpdate& u : ups) p.push_back(u.state.data());
  return p;
}

TEST_CASE("KrumScores match float64 sums of the n - f - 2 nearest squared distances", "[robust]") {
  core::Rng rng(303);
  for (const Shapes* shapes : {&kSmall, &kLong}) {
    for (int n : {3, 4, 7, 12, 25}) {
      for (int f = 0; 2 * f + 3 <= n; f += 2) {
        for (bool integers : {false, true}) {
          const std::vector<ClientUpdate> ups = RandomUpdates(rng, *shapes, n, integers, n / 4);
          Result<Vec> got = KrumScores(Pointers(ups), ups[0].state.numel(), f);
          REQUIRE(got.ok());
          const Vec ref = RefKrumScores(AsDouble(ups), f);
          REQUIRE(got->size() == ref.size());
          for (std::size_t i = 0; i < ref.size(); ++i) {
            INFO("n " << n << " f " << f << " update " << i);
            // Float partial sums of 16 squares each: a few float32 ulps of the total; exact for
            // small integers.
            REQUIRE(std::fabs((*got)[i] - ref[i]) <= (integers ? 0.0 : 4.0 * FLT_EPSILON * ref[i]));
          }
          // Duplicated updates have bit-identical scores.
          for (std::size_t i = 0; i < ups.size(); ++i) {
            for (std::size_t j = 0; j < i; ++j) {
              if (ups[i].state == ups[j].state) REQUIRE((*got)[i] == (*got)[j]);
            }
          }
        }
      }
    }
  }
}

TEST_CASE("KrumScores needs n >= 2f + 3 and f >= 0", "[robust]") {
  core::Rng rng(3);
  const std::vector<ClientUpdate> ups = RandomUpdates(rng, kSmall, 5);
  Result<Vec> r = KrumScores(Pointers(ups), ups[0].state.numel(), 2);
  CHECK(r.status().code() == StatusCode::kFailedPrecondition);
  CHECK(r.status().message() == "krum needs n >= 2f + 3 updates (f = 2: at least 7), got 5");
  CHECK(KrumScores(Pointers(ups), ups[0].state.numel(), 1).ok());
  CHECK(KrumScores(Pointers(ups), ups[0].state.numel(), -1).status().code() ==
        StatusCode::kInvalidArgument);
}

TEST_CASE("krum returns exactly the update a float64 Krum picks", "[robust]") {
  core::Rng rng(404);
  std::unique_ptr<Aggregator> agg;
  for (const Shapes* shapes : {&kSmall, &kLong}) {
    for (int n : {3, 4, 5, 8, 13, 30}) {
      for (int f = 0; 2 * f + 3 <= n; ++f) {
        const std::vector<ClientUpdate> ups = RandomUpdates(rng, *shapes, n);
        agg = Make(Rule("krum", f));
        Result<ModelState> got = RunRound(*agg, RandomState(rng, *shapes, 1.0), ups);
        REQUIRE(got.ok());
        const std::size_t want = FirstMin(RefKrumScores(AsDouble(ups), f));
        INFO("n " << n << " f " << f << " want " << want);
        CHECK(agg->RoundFigures().at("krum_selected_client") == static_cast<double>(want));
        REQUIRE(*got == ups[want].state);
      }
    }
  }
}

TEST_CASE("krum breaks a tie by arrival order", "[robust]") {
  core::Rng rng(9);
  std::vector<ClientUpdate> ups = RandomUpdates(rng, kSmall, 7);
  // Twins at the others' mean: at distance 0 from each other and central, so they tie for the
  // best score.
  const Vec mean = RefMean(AsDouble(ups));
  for (std::size_t c = 0; c < mean.size(); ++c) {
    ups[2].state.data()[c] = static_cast<float>(mean[c]);
  }
  ups[5].state = ups[2].state;
  const Vec ref = RefKrumScores(AsDouble(ups), 1);
  REQUIRE(ref[2] == ref[5]);
  REQUIRE(FirstMin(ref) == 2);
  std::unique_ptr<Aggregator> agg = Make(Rule("krum", 1));
  REQUIRE(RunRound(*agg, ups[0].state, ups).ok());
  CHECK(agg->RoundFigures().at("krum_selected_client") == 2.0);
  // Swapped, the twin that arrives first is client 5.
  std::swap(ups[2], ups[5]);
  REQUIRE(RunRound(*agg, ups[0].state, ups).ok());
  CHECK(agg->RoundFigures().at("krum_selected_client") == 5.0);
}

// n - f honest updates near a point and f attackers far away (and near one another, the
// strongest case for them: they are each other's nearest neighbours).
std::vector<ClientUpdate> Planted(core::Rng& rng, const Shapes& shapes, int n, int f,
                                  std::vector<int>* attackers) {
  std::vector<ClientUpdate> ups = RandomUpdates(rng, shapes, n);
  attackers->clear();
  while (static_cast<int>(attackers->size()) < f) {
    const int a = static_cast<int>(rng.UniformInt(static_cast<std::uint64_t>(n)));
    if (std::find(attackers->begin(), attackers->end(), a) == attackers->end()) {
      attackers->push_back(a);
    }
  }
  for (int a : *attackers) {
    ModelState& s = ups[static_cast<std::size_t>(a)].state;
    for (std::size_t c = 0; c < s.numel(); ++c) s.data()[c] = 50.0f + 0.1f * s.data()[c];
  }
  return ups;
}

std::vector<ClientUpdate> Without(const std::vector<ClientUpdate>& ups,
                                  const std::vector<int>& drop) {
  std::vector<ClientUpdate> out;
  for (std::size_t i = 0; i < ups.size(); ++i) {
    if (std::find(drop.begin(), drop.end(), static_cast<int>(i)) == drop.end()) {
      out.push_back(ups[i]);
    }
  }
  return out;
}

TEST_CASE("krum and multikrum keep only honest updates when f attackers are planted", "[robust]") {
  core::Rng rng(505);
  for (const Shapes* shapes : {&kSmall, &kLong}) {
    for (auto [n, f] : {std::pair{7, 2}, {11, 3}, {12, 4}, {25, 10}}) {
      std::vector<int> attackers;
      const std::vector<ClientUpdate> ups = Planted(rng, *shapes, n, f, &attackers);
      const std::vector<ClientUpdate> honest = Without(ups, attackers);
      const ModelState global = RandomState(rng, *shapes, 1.0);
      INFO("n " << n << " f " << f);

      std::unique_ptr<Aggregator> krum = Make(Rule("krum", f));
      Result<ModelState> k = RunRound(*krum, global, ups);
      REQUIRE(k.ok());
      const double chosen = krum->RoundFigures().at("krum_selected_client");
      CHECK(std::find(attackers.begin(), attackers.end(), static_cast<int>(chosen)) ==
            attackers.end());
      REQUIRE(*k == ups[static_cast<std::size_t>(chosen)].state);

      // m = 0 means n - f: exactly the honest ones, so their plain mean.
      std::unique_ptr<Aggregator> multi = Make(Rule("multikrum", f));
      Result<ModelState> m = RunRound(*multi, global, ups);
      REQUIRE(m.ok());
      CHECK(multi->RoundFigures().at("multikrum_selected") == n - f);
      const std::vector<Vec> hx = AsDouble(honest);
      RequireClose(*m, global, RefMean(hx), Scale(hx), 1.0);
    }
  }
}

TEST_CASE("multikrum matches a float64 Multi-Krum for m from 1 to n", "[robust]") {
  core::Rng rng(606);
  for (const Shapes* shapes : {&kSmall, &kLong}) {
    for (int n : {3, 6, 9, 20}) {
      for (int f = 0; 2 * f + 3 <= n; f += 1 + n / 8) {
        for (int m : {0, 1, 2, n - f, n}) {
          const std::vector<ClientUpdate> ups = RandomUpdates(rng, *shapes, n, false, n / 5);
          RobustOptions o = Rule("multikrum", f);
          o.krum_param_m = m;
          Result<ModelState> got = RunRound(*Make(o), RandomState(rng, *shapes, 1.0), ups);
          REQUIRE(got.ok());
          const std::vector<Vec> xs = AsDouble(ups);
          std::vector<Vec> chosen;
          for (std::size_t i : RefMultiKrumChoice(xs, f, m == 0 ? n - f : m)) {
            chosen.push_back(xs[i]);
          }
          INFO("n " << n << " f " << f << " m " << m);
          RequireClose(*got, ups[0].state, RefMean(chosen), Scale(xs), 1.0);
        }
      }
    }
  }
}

TEST_CASE("krum, multikrum and bulyan refuse too few updates, naming the bound", "[robust]") {
  core::Rng rng(707);
  const std::vector<ClientUpdate> ups = RandomUpdates(rng, kSmall, 12);
  const ModelState global = RandomState(rng, kSmall, 1.0);
  struct Case {
    RobustOptions options;
    int given;
    std::string message;
    int enough;  // updates after which Finalize succeeds
  };
  RobustOptions multi_m = Rule("multikrum", 1);
  multi_m.krum_param_m = 8;
  const std::vector<Case> cases = {
      {Rule("krum", 2), 5, "krum needs n >= 2f + 3 updates (f = 2: at least 7), got 5", 7},
      {Rule("multikrum", 3), 8, "multikrum needs n >= 2f + 3 updates (f = 3: at least 9), got 8",
       9},
      {Rule("bulyan", 2), 10, "bulyan needs n >= 4f + 3 updates (f = 2: at least 11), got 10", 11},
      {Rule("bulyan", 0), 2, "bulyan needs n >= 4f + 3 updates (f = 0: at least 3), got 2", 3},
      {multi_m, 5, "multikrum needs krum_param_m <= n (m = 8), got 5 updates", 8},
  };
  for (const Case& c : cases) {
    INFO(c.message);
    std::unique_ptr<Aggregator> agg = Make(c.options);
    REQUIRE(agg->Begin(global, {}).ok());
    for (int i = 0; i < c.given; ++i) REQUIRE(agg->Accumulate(ups[i]).ok());
    Result<ModelState> r = agg->Finalize();
    CHECK(r.status().code() == StatusCode::kFailedPrecondition);
    CHECK(r.status().message() == c.message);
    // The round stays open: more updates, then it aggregates.
    for (int i = c.given; i < c.enough; ++i) REQUIRE(agg->Accumulate(ups[i]).ok());
    CHECK(agg->Finalize().ok());
  }
}

// ---- Bulyan --------------------------------------------------------------------------------

TEST_CASE("bulyan matches a float64 Bulyan, with ties between values and updates", "[robust]") {
  core::Rng rng(808);
  for (const Shapes* shapes : {&kSmall, &kLong}) {
    for (int n : {3, 4, 7, 8, 11, 12, 16, 23}) {
      for (int f = 0; 4 * f + 3 <= n; ++f) {
        for (int variant = 0; variant < 3; ++variant) {
          // variant 1: integer values, so columns tie at equal distances from their median.
          const std::vector<ClientUpdate> ups =
              RandomUpdates(rng, *shapes, n, variant == 1, variant == 2 ? n / 3 : 0);
          Result<ModelState> got = RunRound(*Make(Rule("bulyan", f)), ups[1].state, ups);
          REQUIRE(got.ok());
          const std::vector<Vec> xs = AsDouble(ups);
          INFO("n " << n << " f " << f << " variant " << variant);
          RequireClose(*got, ups[0].state, RefBulyan(xs, f), Scale(xs), 1.0);
        }
      }
    }
  }
}

TEST_CASE("bulyan keeps attackers out of the result", "[robust]") {
  core::Rng rng(909);
  for (auto [n, f] : {std::pair{11, 2}, {15, 3}, {23, 5}}) {
    std::vector<int> attackers;
    const std::vector<ClientUpdate> ups = Planted(rng, kLong, n, f, &attackers);
    Result<ModelState> got = RunRound(*Make(Rule("bulyan", f)), ups[0].state, ups);
    REQUIRE(got.ok());
    const std::vector<Vec> xs = AsDouble(ups);
    RequireClose(*got, ups[0].state, RefBulyan(xs, f), Scale(xs), 1.0);
    // Every coordinate lies within the honest updates' range (the attackers sit near 50).
    const std::vector<Vec> hx = AsDouble(Without(ups, attackers));
    for (std::size_t c = 0; c < got->numel(); ++c) {
      double lo = 1e300, hi = -1e300;
      for (const Vec& x : hx) {
        lo = std::min(lo, x[c]);
        hi = std::max(hi, x[c]);
      }
      INFO("n " << n << " coordinate " << c);
      REQUIRE(got->data()[c] >= lo);
      REQUIRE(got->data()[c] <= hi);
    }
  }
}

// ---- geometric median ----------------------------------------------------------------------

TEST_CASE("geo_median matches a float64 Weiszfeld step for step", "[robust]") {
  core::Rng rng(1001);
  for (const Shapes* shapes : {&kSmall, &kLong}) {
    // Not n = 2: every point between two is a geometric median, and the mean is a fixed point
    // that float rounding may or may not reach exactly, which the step count would show.
    for (int n : {1, 3, 6, 15}) {
      for (int steps : {1, 2, 5}) {
        const std::vector<ClientUpdate> ups = RandomUpdates(rng, *shapes, n, false, n / 3);
        const ModelState global = RandomState(rng, *shapes, 2.0);
        RobustOptions o = Rule("geo_median");
        o.geo_median_max_iterations = steps;
        o.geo_median_tolerance = 0.0;  // run every step
        std::unique_ptr<Aggregator> agg = Make(o);
        Result<ModelState> got = RunRound(*agg, global, ups);
        REQUIRE(got.ok());
        int ref_steps = 0;
        const std::vector<Vec> xs = AsDouble(ups);
        const Vec g = Flat(global);
        const Vec ref = RefGeoMedian(xs, g, steps, 0.0, o.geo_median_nu, &ref_steps);
        INFO("n " << n << " steps " << steps);
        CHECK(agg->RoundFigures().at("geo_median_iterations") == ref_steps);
        RequireClose(*got, global, ref, Scale(xs, &g), 2.0);
      }
    }
  }
}

TEST_CASE("geo_median converges to the float64 fixed point and stops on the tolerance",
          "[robust]") {
  core::Rng rng(1002);
  for (int n : {4, 9, 20}) {
    std::vector<int> attackers;
    const std::vector<ClientUpdate> ups = Planted(rng, kLong, n, n / 4, &attackers);
    const ModelState global = RandomState(rng, kLong, 1.0);
    const std::vector<Vec> xs = AsDouble(ups);
    const Vec g = Flat(global);
    RobustOptions o = Rule("geo_median");
    o.geo_median_max_iterations = 1000;
    o.geo_median_tolerance = 1e-10;
    std::unique_ptr<Aggregator> agg = Make(o);
    Result<ModelState> got = RunRound(*agg, global, ups);
    REQUIRE(got.ok());
    const double steps = agg->RoundFigures().at("geo_median_iterations");
    CHECK(steps > 1);
    CHECK(steps < 1000);  // stopped by the tolerance, not the cap
    int ref_steps = 0;
    const Vec fixed_point = RefGeoMedian(xs, g, 10000, 1e-14, o.geo_median_nu, &ref_steps);
    RequireClose(*got, global, fixed_point, Scale(xs, &g), 2.0);

    // The default tolerance stops sooner, and the step count is what the reference needs.
    std::unique_ptr<Aggregator> loose = Make(Rule("geo_median"));
    REQUIRE(RunRound(*loose, global, ups).ok());
    const double loose_steps = loose->RoundFigures().at("geo_median_iterations");
    CHECK(loose_steps <= steps);
    RefGeoMedian(xs, g, 100, 1e-6, RobustOptions{}.geo_median_nu, &ref_steps);
    CHECK(std::fabs(loose_steps - ref_steps) <= 1.0);  // the last step may sit on the threshold
  }
}

ModelState PointUpdates(const std::vector<std::vector<float>>& points,
                        std::vector<ClientUpdate>* ups) {
  ups->clear();
  for (const std::vector<float>& p : points) {
    ModelState s;
    REQUIRE(s.Add("w", {static_cast<std::int64_t>(p.size())}, p.data()).ok());
    ups->push_back(MakeUpdate(static_cast<std::int64_t>(ups->size()), 1, s));
  }
  return ModelState::ZerosLike((*ups)[0].state);
}

TEST_CASE("geo_median hand cases: collinear points and a symmetric configuration", "[robust]") {
  RobustOptions o = Rule("geo_median");
  o.geo_median_max_iterations = 1000;
  o.geo_median_tolerance = 1e-12;
  std::vector<ClientUpdate> ups;
  {
    // Three collinear points: the middle one, whatever the outer ones' distances (the mean is
    // 33.67).
    const ModelState g = PointUpdates({{0.0f}, {1.0f}, {100.0f}}, &ups);
    Result<ModelState> got = RunRound(*Make(o), g, ups);
    REQUIRE(got.ok());
    CHECK(got->data()[0] == Approx(1.0f).margin(1e-5));
  }
  {
    // The same on a line in 3-D, the points given out of order, the global model elsewhere.
    ModelState g =
        PointUpdates({{3.0f, -1.0f, 2.0f}, {-7.0f, 4.0f, -8.0f}, {1.0f, 0.0f, 0.0f}}, &ups);
    // Points: a = (1,0,0) + 2 u, b = (1,0,0) - 8 u, c = (1,0,0), with u = (1, -0.5, 1).
    g.data()[0] = 10.0f;
    Result<ModelState> got = RunRound(*Make(o), g, ups);
    REQUIRE(got.ok());
    CHECK(got->data()[0] == Approx(1.0f).margin(1e-5));
    CHECK(got->data()[1] == Approx(0.0f).margin(1e-5));
    CHECK(got->data()[2] == Approx(0.0f).margin(1e-5));
  }
  {
    // Corners of a square and one far point on its diagonal: the configuration is symmetric
    // about the diagonal, so the median lies on it, between the centre and the corner (1, 1)
    // (the mean, (20, 20), is far outside the square).
    ModelState g = PointUpdates({{1, 1}, {-1, 1}, {-1, -1}, {1, -1}, {100, 100}}, &ups);
    Result<ModelState> got = RunRound(*Make(o), g, ups);
    REQUIRE(got.ok());
    CHECK(got->data()[0] == Approx(got->data()[1]).epsilon(1e-6));
    CHECK(got->data()[0] > 0.0f);
    CHECK(got->data()[0] < 1.0f);
    int steps = 0;
    const Vec ref = RefGeoMedian(AsDouble(ups), Flat(g), 100000, 1e-14, o.geo_median_nu, &steps);
    CHECK(got->data()[0] == Approx(ref[0]).epsilon(1e-6));
  }
  {
    // Symmetric about the origin (pairs x, -x): the origin, which is also the starting mean.
    ModelState g = PointUpdates({{3, 1}, {-3, -1}, {0.5f, -2}, {-0.5f, 2}, {0, 0}}, &ups);
    Result<ModelState> got = RunRound(*Make(o), g, ups);
    REQUIRE(got.ok());
    CHECK(std::fabs(got->data()[0]) <= 1e-6f);
    CHECK(std::fabs(got->data()[1]) <= 1e-6f);
  }
  {
    // All updates equal: that point, after one step.
    ModelState g = PointUpdates({{2, 5}, {2, 5}, {2, 5}}, &ups);
    std::unique_ptr<Aggregator> agg = Make(o);
    Result<ModelState> got = RunRound(*agg, g, ups);
    REQUIRE(got.ok());
    CHECK(*got == ups[0].state);
    CHECK(agg->RoundFigures().at("geo_median_iterations") == 1.0);
  }
}

// ---- norm-difference clipping --------------------------------------------------------------

TEST_CASE("norm_diff_clipping matches a float64 clip-then-FedAvg", "[robust]") {
  core::Rng rng(1101);
  for (const Shapes* shapes : {&kSmall, &kLong}) {
    for (int n : {1, 2, 7, 8, 9, 17, 40}) {
      for (double bound : {0.5, 30.0, 1e9}) {
        const std::vector<ClientUpdate> ups = RandomUpdates(rng, *shapes, n);
        const ModelState global = RandomState(rng, *shapes, 3.0);
        RobustOptions o = Rule("norm_diff_clipping");
        o.norm_bound = bound;
        std::unique_ptr<Aggregator> agg = Make(o);
        Result<ModelState> got = RunRound(*agg, global, ups);
        REQUIRE(got.ok());
        const Vec g = Flat(global);
        const std::vector<Vec> xs = AsDouble(ups);
        INFO("n " << n << " bound " << bound);
        RequireClose(*got, global, RefNormDiff(ups, g, bound), Scale(xs, &g), 2.0);
        int clipped = 0;
        for (const Vec& x : xs) clipped += std::sqrt(RefSquaredDistance(x, g)) > bound;
        CHECK(agg->RoundFigures().at("norm_diff_clipped") == clipped);
      }
    }
  }
}

TEST_CASE("norm_diff_clipping bounds each delta and passes small ones unchanged", "[robust]") {
  core::Rng rng(1102);
  const ModelState global = RandomState(rng, kLong, 1.0);
  const Vec g = Flat(global);
  RobustOptions o = Rule("norm_diff_clipping");
  o.norm_bound = 5.0;
  std::unique_ptr<Aggregator> agg = Make(o);
  for (double norm : {0.1, 4.9, 5.0, 5.1, 1e3, 1e30}) {
    // One update at distance `norm` from g, in a random direction.
    ModelState x = RandomState(rng, kLong, 1.0);
    Vec dir = Flat(x);
    const double len = std::sqrt(RefSquaredDistance(dir, Vec(dir.size(), 0.0)));
    for (std::size_t c = 0; c < dir.size(); ++c) {
      x.data()[c] = static_cast<float>(g[c] + norm * dir[c] / len);
    }
    Result<ModelState> got = RunRound(*agg, global, {MakeUpdate(0, 3, x)});
    REQUIRE(got.ok());
    const Vec xd = Flat(x);
    const double in = std::sqrt(RefSquaredDistance(xd, g));
    const double out = std::sqrt(RefSquaredDistance(Flat(*got), g));
    INFO("norm " << norm << " delta in " << in << " out " << out);
    if (in <= 5.0) {
      CHECK(*got == x);  // g + (x - g) in float64 is x again
    } else {
      CHECK(out == Approx(5.0).epsilon(1e-5));  // float32 rounding of g + clipped delta
      RequireClose(*got, global, RefNormDiff({MakeUpdate(0, 3, x)}, g, 5.0), Scale({xd}, &g), 2.0);
    }
  }
  // Several small updates: exactly FedAvg's weighted mean, up to rounding.
  std::vector<ClientUpdate> small;
  for (int i = 0; i < 10; ++i) {
    ModelState x = global;
    for (std::size_t c = 0; c < x.numel(); ++c)
      x.data()[c] += 0.01f * static_cast<float>(rng.Normal());
    small.push_back(MakeUpdate(i, 1 + static_cast<std::int64_t>(rng.UniformInt(100)), x));
  }
  Result<ModelState> got = RunRound(*agg, global, small);
  FedAvg fedavg;
  REQUIRE(fedavg.Begin(global, {}).ok());
  for (const ClientUpdate& u : small) REQUIRE(fedavg.Accumulate(u).ok());
  Result<ModelState> plain = fedavg.Finalize();
  REQUIRE(got.ok());
  REQUIRE(plain.ok());
  CHECK(agg->RoundFigures().at("norm_diff_clipped") == 0.0);
  // FedAvg rounds once per fold of 8, this once.
  RequireClose(*got, global, Flat(*plain), Scale(AsDouble(small), &g), 3.0);
}

// ---- refused updates and the lifecycle -----------------------------------------------------

TEST_CASE("Robust rules give the same bits for any thread count", "[robust][threads]") {
  // 300007 coordinates: parameter ranges of at least 64K give up to 4 threads work, and the
  // pairwise distances have 5 chunks of 64K; 15 updates with 2 duplicates (f = 2 fits bulyan's
  // n >= 4f + 3).
  const Shapes shapes = {{300000}, {7}};
  core::Rng rng(123);
  const std::vector<ClientUpdate> ups = RandomUpdates(rng, shapes, 15, false, 2);
  const ModelState global = ModelState::ZerosLike(ups[0].state);
  for (const std::string& rule : DefenseTypeNames()) {
    RobustOptions options;
    options.defense_type = rule;
    options.byzantine_client_num = 2;
    options.threads = 1;
    Result<ModelState> want = RunRound(*Make(options), global, ups);
    REQUIRE(want.ok());
    for (int threads : {2, 3, 4, 0}) {
      INFO(rule << " on " << threads << " threads");
      options.threads = threads;
      Result<ModelState> got = RunRound(*Make(options), global, ups);
      REQUIRE(got.ok());
      CHECK(*got == *want);
    }
  }
  std::vector<const float*> rows;
  for (const ClientUpdate& u : ups) rows.push_back(u.state.data());
  Result<std::vector<double>> one = KrumScores(rows, ups[0].state.numel(), 2, 1);
  REQUIRE(one.ok());
  for (int threads : {2, 5}) {
    Result<std::vector<double>> many = KrumScores(rows, ups[0].state.numel(), 2, threads);
    REQUIRE(many.ok());
    CHECK(*many == *one);
  }
}

TEST_CASE("Every rule refuses a bad update, leaves the round as it was and goes on", "[robust]") {
  core::Rng rng(1201);
  const std::vector<ClientUpdate> good = RandomUpdates(rng, kSmall, 11);
  const ModelState global = RandomState(rng, kSmall, 1.0);
  for (const std::string& name : DefenseTypeNames()) {
    std::unique_ptr<Aggregator> agg = Make(Rule(name, 2));
    Result<ModelState> expected = RunRound(*agg, global, good);
    REQUIRE(expected.ok());
    for (int kind = 0; kind < 5; ++kind) {
      ClientUpdate bad = MakeUpdate(99, 10, good[0].state);
      std::string expect;
      if (kind == 0) {
        ModelState s;
        REQUIRE(s.Add("t0", kSmall[0], good[0].state.data()).ok());
        bad.state = s;
        expect = "tensors, expected";
      } else if (kind == 1) {
        bad.num_samples = 0;
        expect = "num_samples 0";
      } else if (kind == 2) {
        bad.num_samples = -4;
        expect = "num_samples -4";
      } else {
        bad.state.TensorData("t3")[17] = kind == 3 ? std::numeric_limits<float>::quiet_NaN()
                                                   : -std::numeric_limits<float>::infinity();
        expect = "non-finite value";
      }
      INFO(name << " kind " << kind);
      REQUIRE(agg->Begin(global, {}).ok());
      for (int i = 0; i < 11; ++i) {
        if (i == 6) {
          Status st = agg->Accumulate(bad);
          CHECK(st.code() == StatusCode::kInvalidArgument);
          CHECK_THAT(st.message(), Catch::Contains(name) && Catch::Contains("client 99") &&
                                       Catch::Contains(expect));
          CHECK(agg->accepted() == 6);
        }
        REQUIRE(agg->Accumulate(good[i]).ok());
      }
      Result<ModelState> got = agg->Finalize();
      REQUIRE(got.ok());
      CHECK(*got == *expected);  // bitwise: the same computation on the same inputs
    }
  }
}

TEST_CASE("Robust rules follow FedAvg's lifecycle", "[robust]") {
  core::Rng rng(1301);
  const std::vector<ClientUpdate> first = RandomUpdates(rng, kSmall, 9);
  const std::vector<ClientUpdate> second = RandomUpdates(rng, kSmall, 7);
  const ModelState global = RandomState(rng, kSmall, 1.0);
  for (const std::string& name : DefenseTypeNames()) {
    INFO(name);
    const RobustOptions o = Rule(name, 1);
    Result<ModelState> expected = RunRound(*Make(o), global, second);
    REQUIRE(expected.ok());

    std::unique_ptr<Aggregator> agg = Make(o);
    CHECK(agg->Accumulate(first[0]).code() == StatusCode::kFailedPrecondition);
    CHECK(agg->Finalize().status().code() == StatusCode::kFailedPrecondition);
    REQUIRE(agg->Begin(global, {}).ok());
    Result<ModelState> empty = agg->Finalize();
    CHECK(empty.status().code() == StatusCode::kFailedPrecondition);
    CHECK_THAT(empty.status().message(), Catch::Contains(name + ": no update"));
    // A finished round, then an abandoned one, then the real one.
    REQUIRE(RunRound(*agg, global, first).ok());
    CHECK(agg->Accumulate(first[0]).code() == StatusCode::kFailedPrecondition);
    CHECK(agg->Finalize().status().code() == StatusCode::kFailedPrecondition);
    REQUIRE(agg->Begin(global, {}).ok());
    for (int i = 0; i < 4; ++i) REQUIRE(agg->Accumulate(first[i]).ok());
    Result<ModelState> got = RunRound(*agg, global, second);
    REQUIRE(got.ok());
    CHECK(agg->accepted() == 7);
    CHECK(*got == *expected);
  }
}

TEST_CASE("Robust rules refuse an empty or non-finite global model", "[robust]") {
  core::Rng rng(1401);
  ModelState bad = RandomState(rng, kSmall, 1.0);
  bad.TensorData("t1")[3] = std::numeric_limits<float>::infinity();
  for (const std::string& name : DefenseTypeNames()) {
    std::unique_ptr<Aggregator> agg = Make(Rule(name));
    CHECK(agg->Begin(ModelState(), {}).code() == StatusCode::kInvalidArgument);
    Status st = agg->Begin(bad, {});
    CHECK(st.code() == StatusCode::kInvalidArgument);
    CHECK_THAT(st.message(), Catch::Contains(name) && Catch::Contains("tensor 't1'"));
  }
}

}  // namespace
}  // namespace fedml::algorithms
