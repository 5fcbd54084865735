// Runs fn(i) for i in [0, n) on `threads` std::threads pulling indices in order. Results must be
// stored by index, which keeps outputs independent of scheduling. The first exception thrown
// stops further work and is rethrown.
#pragma once

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace sparseplan {

template <class Fn>
void parallel_for(int n, int threads, Fn&& fn) {
  std::atomic<int> next{0};
  std::exception_ptr error;
  std::mutex error_mutex;
  const auto work = [&] {
    while (true) {
      const int i = next.fetch_add(1);
      if (i >= n) return;
      try {
        fn(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
        next = n;
        return;
      }
    }
  };
  const int count = std::max(1, std::min(threads, n));
  std::vector<std::thread> pool;
  for (int t = 1; t < count; ++t) pool.emplace_back(work);
  work();
  for (std::thread& t : pool) t.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace sparseplan
