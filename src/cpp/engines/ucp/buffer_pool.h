// Per-model pool of sysmem buffer sets, so that concurrent inferences never share memory.
//
// A set is either free, used by one call (from acquire() until its outputs die), held by
// the user through input_buffers() (until the last of those arrays dies), or both: a held
// set is used without a copy by a call whose inputs point at its buffers, but never by two
// calls at once and never handed to a call that did not ask for it.
//
// Bound: at most `cap` pooled sets per model (HBM_UCP_POOL_SETS). Beyond it a call gets a
// temporary set, freed as soon as the call ends (its outputs are copied to host memory
// first), and input_buffers() a temporary set freed when its arrays die. A set whose task
// the library failed to wait for or release is leaked (never freed, never reused).
#pragma once
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "core/buffer.h"
#include "ucp_handles.h"
#include "ucp_plan.h"

namespace hbm::ucp {

struct BufferSet {
  int32_t device_id = 0;
  std::vector<SysMemBuffer> in, out;
  std::vector<uint64_t> in_tensors, out_tensors;  // hbDNNTensor arrays (8-byte aligned)
  bool held_by_user = false;
  bool in_call = false;
  bool pooled = false;     // counts against the cap and is reused; else freed when unused
  bool submitted = false;  // a task ran on it: its cache lines may be dirty (see README)
  bool leaked = false;     // its task was lost: never given back

  std::byte* in_tensor(size_t i, const PropsLayout& l) { return at(in_tensors, i, l); }
  std::byte* out_tensor(size_t i, const PropsLayout& l) { return at(out_tensors, i, l); }
  PropsView in_props(size_t i, const PropsLayout& l) { return {l, in_tensor(i, l) + sizeof(SysMem)}; }

 private:
  static std::byte* at(std::vector<uint64_t>& a, size_t i, const PropsLayout& l) {
    return reinterpret_cast<std::byte*>(a.data()) + i * l.tensor_size();
  }
};

class BufferPool : public std::enable_shared_from_this<BufferPool> {
 public:
  BufferPool(std::shared_ptr<const UcpApi> api, std::shared_ptr<const ModelPlan> plan);

  // The set of one inference; gives it back to the pool when destroyed (or, after share(),
  // when the last output that points into it dies).
  class CallLease {
   public:
    CallLease(std::shared_ptr<BufferPool> pool, BufferSet* set, bool zero_copy,
              std::vector<bool> from_held)
        : pool_(std::move(pool)), set_(set), zero_copy_(zero_copy), from_held_(std::move(from_held)) {}
    CallLease(CallLease&& o) noexcept
        : pool_(std::move(o.pool_)), set_(std::exchange(o.set_, nullptr)),
          zero_copy_(o.zero_copy_), from_held_(std::move(o.from_held_)) {}
    CallLease(const CallLease&) = delete;
    CallLease& operator=(const CallLease&) = delete;
    ~CallLease() {
      if (set_) pool_->end_call(set_);
    }
    BufferSet& set() const { return *set_; }
    // Inputs already in the set (they are the buffers of this very set).
    bool zero_copy() const { return zero_copy_; }
    // Input i points at a buffer the user holds (strided like ours): copy it bytewise.
    bool from_held(size_t i) const { return from_held_[i]; }
    // Converts into the owner of the outputs.
    std::shared_ptr<void> share() &&;
    // The BPU may still write the set: it is never freed nor reused.
    void leak() noexcept {
      if (set_) pool_->leak(std::exchange(set_, nullptr));
      pool_.reset();  // the rest of the pool is not kept alive by a leaked set
    }

   private:
    std::shared_ptr<BufferPool> pool_;
    BufferSet* set_;
    bool zero_copy_;
    std::vector<bool> from_held_;
  };

  CallLease acquire(std::span<const InputView> inputs, int32_t device_id);
  // input_buffers(): the input arrays of a set held by the user (static shapes only).
  std::vector<OutputTensor> hold_inputs();

 private:
  std::unique_ptr<BufferSet> create(int32_t device_id, bool pooled) const;
  BufferSet* take_free(int32_t device_id);  // under mu_; nullptr when none
  // Under mu_: a new set, pooled while the cap allows. Allocates outside the lock.
  BufferSet* add_new(std::unique_lock<std::mutex>& lock, int32_t device_id);
  void end_call(BufferSet* set) noexcept;
  void end_hold(BufferSet* set) noexcept;
  void leak(BufferSet* set) noexcept;
  // Under mu_: a set nobody uses goes back to free_, or (temporary) is returned to destroy.
  std::unique_ptr<BufferSet> give_back(BufferSet* set) noexcept;
  std::unique_ptr<BufferSet> detach(BufferSet* set) noexcept;  // under mu_

  std::shared_ptr<const UcpApi> api_;
  std::shared_ptr<const ModelPlan> plan_;
  std::mutex mu_;
  size_t pooled_ = 0;                            // pooled sets (live or being created)
  std::vector<std::unique_ptr<BufferSet>> sets_;  // pooled and temporary
  std::vector<BufferSet*> free_;  // capacity kept >= sets_.size(): give_back never allocates
};

// Memory the BPU may still write: kept alive (reachable) until the process ends.
void leak_forever(std::shared_ptr<const void> what) noexcept;

}  // namespace hbm::ucp
