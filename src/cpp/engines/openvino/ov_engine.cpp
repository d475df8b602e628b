#include "ov_engine.h"

#include <filesystem>
#include <mutex>

#include "core/errors.h"
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

  std::vector<std::shared_ptr<Model>> load(const std::vector<std::string>& files) override {
    std::vector<std::shared_ptr<Model>> out;
    for (const auto& f : files) out.push_back(load_ov_model(*core_, f));
    return out;
  }

 private:
  ov::Owned<ov::Core> core_;
};

}  // namespace

std::unique_ptr<Engine> make_openvino_engine() { return std::make_unique<OvEngine>(); }

}  // namespace hbm
