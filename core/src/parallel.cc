#include "fedml/core/parallel.h"

#include <algorithm>
#include <system_error>
#include <thread>
#include <vector>

namespace fedml::core {

Status ParallelRanges(std::size_t len, int max_threads, std::size_t min_len, std::size_t align,
                      const std::function<Status(std::size_t begin, std::size_t end)>& slice) {
  if (len == 0) return Status::Ok();
  align = std::max<std::size_t>(align, 1);
  std::size_t threads = static_cast<std::size_t>(std::max(max_threads, 1));
  threads = std::min(threads, std::max<std::size_t>(1, len / std::max<std::size_t>(min_len, 1)));
  if (threads <= 1) return slice(std::size_t{0}, len);
  std::vector<std::size_t> cut(threads + 1, len);
  cut[0] = 0;
  for (std::size_t i = 1; i < threads; ++i) cut[i] = (len * i / threads) / align * align;
  std::vector<Status> status(threads);
  std::vector<std::thread> pool;
  pool.reserve(threads - 1);
  for (std::size_t i = 1; i < threads; ++i) {
    auto run = [&, i] { status[i] = slice(cut[i], cut[i + 1]); };
    try {
      pool.emplace_back(run);
    } catch (const std::system_error&) {
      run();  // no thread to be had: do the range here
    }
  }
  status[0] = slice(cut[0], cut[1]);
  for (auto& t : pool) t.join();
  for (const Status& st : status) FEDML_RETURN_IF_ERROR(st);
  return Status::Ok();
}

}  // namespace fedml::core
