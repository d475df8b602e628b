// RAII owners of the library's resources: packed model handles, cached sysmem, tasks.
#pragma once
#include <memory>
#include <string>
#include <utility>

#include "ucp_api.h"

namespace hbm::ucp {

// hbDNNInitializeFromFiles / hbDNNRelease.
class Packed {
 public:
  Packed() = default;
  Packed(std::shared_ptr<const UcpApi> api, PackedHandle h) : api_(std::move(api)), h_(h) {}
  Packed(Packed&& o) noexcept : api_(std::move(o.api_)), h_(std::exchange(o.h_, nullptr)) {}
  Packed& operator=(Packed&& o) noexcept {
    std::swap(api_, o.api_);
    std::swap(h_, o.h_);
    return *this;
  }
  ~Packed() {
    // Nothing to do if it fails: the handle is not used again either way.
    if (h_) (void)api_->hbDNNRelease(h_);
  }
  PackedHandle get() const { return h_; }

 private:
  std::shared_ptr<const UcpApi> api_;
  PackedHandle h_ = nullptr;
};

// hbUCPMallocCached / hbUCPFree. The api outlives the memory.
class SysMemBuffer {
 public:
  SysMemBuffer() = default;
  SysMemBuffer(std::shared_ptr<const UcpApi> api, uint64_t bytes, int32_t device_id,
               std::string_view context)
      : api_(std::move(api)) {
    api_->check_ucp(api_->hbUCPMallocCached(&mem_, bytes, device_id), context,
                    "hbUCPMallocCached(" + std::to_string(bytes) + " bytes)");
    live_ = true;
  }
  SysMemBuffer(SysMemBuffer&& o) noexcept
      : api_(std::move(o.api_)), mem_(o.mem_), live_(std::exchange(o.live_, false)) {}
  SysMemBuffer& operator=(SysMemBuffer&& o) noexcept {
    std::swap(api_, o.api_);
    std::swap(mem_, o.mem_);
    std::swap(live_, o.live_);
    return *this;
  }
  ~SysMemBuffer() {
    // A failed free leaves the memory to the library: nothing of ours refers to it.
    if (live_) (void)api_->hbUCPFree(&mem_);
  }
  // Gives up the memory without freeing it (the BPU may still write it).
  void leak() noexcept { live_ = false; }
  const SysMem& mem() const { return mem_; }
  std::byte* data() const { return static_cast<std::byte*>(mem_.virAddr); }
  uint64_t size() const { return mem_.memSize; }
  void flush(int32_t flag, std::string_view context) const {
    api_->check_ucp(api_->hbUCPMemFlush(&mem_, flag), context,
                    flag == kFlushClean ? "hbUCPMemFlush(CLEAN)" : "hbUCPMemFlush(INVALIDATE)");
  }

 private:
  std::shared_ptr<const UcpApi> api_;
  SysMem mem_{};
  bool live_ = false;
};

}  // namespace hbm::ucp
