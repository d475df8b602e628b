#include "ov_engine.h"

#include <algorithm>
#include <atomic>
#include <exception>
#include <filesystem>
#include <mutex>
#include <system_error>
#include <thread>

#include "core/errors.h"
#include "core/scheduler.h"
#include "ov_api.h"
#include "ov_model.h"

namespace hbm {
namespace {

class OvEngine final : public Engine {
 public:
  OvEngine() {
    hide_topology_from_tbb();
    ov::Core* raw = nullptr;
    ov::call([&] { return ov::api().core_create(&raw); }, [] { return std::string("ov_core_create"); });
    core_.reset(raw);
  }
  std::string_view name() const override { return "openvino"; }
  std::string version() const override { return "OpenVINO " + ov::api().version; }

  // Several files compile side by side, one per host core (OpenVINO's Core takes concurrent
  // compiles, and one compile keeps one core busy), largest file first so that a big one does
  // not start last; up to 1 GiB of files in all. Every file is attempted; the error reported
  // is the first in file order, the one a load file by file would have raised.
  std::vector<std::shared_ptr<Model>> load(const std::vector<std::string>& files) override {
    std::vector<std::shared_ptr<Model>> out(files.size());
    std::vector<std::exception_ptr> errors(files.size());
    std::vector<size_t> order(files.size());
    std::vector<uintmax_t> sizes(files.size());
    for (size_t i = 0; i < files.size(); ++i) {
      std::error_code ec;
      order[i] = i;
      sizes[i] = std::filesystem::file_size(files[i], ec);
      if (ec) sizes[i] = 0;
    }
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return sizes[a] > sizes[b]; });
    std::atomic<size_t> next{0};
    auto work = [&] {
      for (size_t k; (k = next.fetch_add(1)) < files.size();) {
        const size_t i = order[k];
        try {
          out[i] = load_ov_model(*core_, files[i]);
        } catch (...) {
          errors[i] = std::current_exception();
        }
      }
    };
    // Compiles side by side also hold their working copies of the weights at the same time:
    // a set of files larger than this compiles one file after the other, as a single load does.
    constexpr uintmax_t kSideBySideBytes = uintmax_t{1} << 30;
    uintmax_t total = 0;
    for (uintmax_t s : sizes) total += s;
    const size_t helpers =
        total > kSideBySideBytes
            ? 0
            : std::min<size_t>(files.size(), static_cast<size_t>(Scheduler::default_cores())) - 1;
    std::vector<std::jthread> threads;
    for (size_t t = 0; t < helpers; ++t) {
      try {
        threads.emplace_back(work);
      } catch (const std::system_error&) {
        break;  // no thread to be had: the calling thread does the rest
      }
    }
    work();
    threads.clear();  // joins
    for (const std::exception_ptr& e : errors)
      if (e) std::rethrow_exception(e);
    return out;
  }

 private:
  ov::Owned<ov::Core> core_;
};

}  // namespace

std::unique_ptr<Engine> make_openvino_engine() { return std::make_unique<OvEngine>(); }

}  // namespace hbm
