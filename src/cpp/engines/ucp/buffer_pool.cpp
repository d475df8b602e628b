#include "buffer_pool.h"

#include <algorithm>
#include <cstring>

namespace hbm::ucp {

void leak_forever(std::shared_ptr<const void> what) noexcept {
  static auto* mu = new std::mutex;  // never destroyed: used until the process ends
  static auto* kept = new std::vector<std::shared_ptr<const void>>;
  std::lock_guard lock(*mu);
  try {
    kept->push_back(std::move(what));
  } catch (...) {
    // No memory for the list: a raw leak (never dropped) is still safe.
    (void)new (std::nothrow) std::shared_ptr<const void>(std::move(what));
  }
}

BufferPool::BufferPool(std::shared_ptr<const UcpApi> api, std::shared_ptr<const ModelPlan> plan)
    : api_(std::move(api)), plan_(std::move(plan)) {}

std::unique_ptr<BufferSet> BufferPool::create(int32_t device_id, bool pooled) const {
  const ModelPlan& p = *plan_;
  const PropsLayout& l = *p.layout;
  auto set = std::make_unique<BufferSet>();
  set->device_id = device_id;
  set->pooled = pooled;
  auto build = [&](const std::vector<TensorPlan>& plans, std::vector<SysMemBuffer>& mems,
                   std::vector<uint64_t>& tensors) {
    tensors.assign(plans.size() * l.tensor_size() / sizeof(uint64_t), 0);
    auto* base = reinterpret_cast<std::byte*>(tensors.data());
    for (size_t i = 0; i < plans.size(); ++i) {
      const TensorPlan& t = plans[i];
      mems.emplace_back(api_, std::max<uint64_t>(t.bytes, 64), device_id,
                        p.context + ", tensor '" + t.name + "'");
      std::byte* tensor = base + i * l.tensor_size();
      std::memcpy(tensor, &mems.back().mem(), sizeof(SysMem));
      std::memcpy(tensor + sizeof(SysMem), t.props.data(), l.size);
    }
  };
  build(p.inputs, set->in, set->in_tensors);
  build(p.outputs, set->out, set->out_tensors);
  return set;
}

BufferSet* BufferPool::take_free(int32_t device_id) {
  for (auto it = free_.rbegin(); it != free_.rend(); ++it) {
    if ((*it)->device_id != device_id) continue;
    BufferSet* s = *it;
    free_.erase(std::next(it).base());
    return s;
  }
  return nullptr;
}

BufferSet* BufferPool::add_new(std::unique_lock<std::mutex>& lock, int32_t device_id) {
  const bool pooled = pooled_ < plan_->pool_sets;
  if (pooled) ++pooled_;  // reserved now, so that concurrent callers respect the cap
  lock.unlock();
  std::unique_ptr<BufferSet> fresh;
  try {
    fresh = create(device_id, pooled);  // outside the lock: allocation talks to the driver
  } catch (...) {
    lock.lock();
    if (pooled) --pooled_;
    throw;
  }
  lock.lock();
  free_.reserve(sets_.size() + 1);
  sets_.push_back(std::move(fresh));
  return sets_.back().get();
}

BufferPool::CallLease BufferPool::acquire(std::span<const InputView> inputs, int32_t device_id) {
  std::vector<bool> from_held(inputs.size(), false);
  std::unique_lock lock(mu_);
  for (const auto& s : sets_) {
    if (!s->held_by_user) continue;
    bool all = s->in.size() == inputs.size() && !inputs.empty();
    for (size_t i = 0; i < inputs.size() && i < s->in.size(); ++i) {
      const bool same = inputs[i].data == s->in[i].data();
      all = all && same;
      if (same) from_held[i] = true;
    }
    if (all && !s->in_call && s->device_id == device_id) {
      s->in_call = true;
      return CallLease(shared_from_this(), s.get(), true, std::move(from_held));
    }
  }
  BufferSet* s = take_free(device_id);
  if (!s) s = add_new(lock, device_id);
  s->in_call = true;
  return CallLease(shared_from_this(), s, false, std::move(from_held));
}

std::vector<OutputTensor> BufferPool::hold_inputs() {
  BufferSet* s = nullptr;
  {
    std::unique_lock lock(mu_);
    s = take_free(0);
    if (!s) s = add_new(lock, 0);
    s->held_by_user = true;
  }
  // From here on the set is ours until the token dies (its deleter gives it back).
  std::shared_ptr<void> token(s, [pool = shared_from_this()](void* p) {
    pool->end_hold(static_cast<BufferSet*>(p));
  });
  std::vector<OutputTensor> out;
  out.reserve(plan_->inputs.size());
  for (size_t i = 0; i < plan_->inputs.size(); ++i) {
    const TensorPlan& t = plan_->inputs[i];
    out.push_back({s->in[i].data(), t.dtype, t.dims, t.strides, token});
  }
  return out;
}

std::shared_ptr<void> BufferPool::CallLease::share() && {
  BufferSet* set = std::exchange(set_, nullptr);
  // If allocating the control block throws, the deleter runs: the set still goes back.
  return std::shared_ptr<void>(set, [pool = std::move(pool_)](void* p) {
    pool->end_call(static_cast<BufferSet*>(p));
  });
}

void BufferPool::end_call(BufferSet* set) noexcept {
  std::unique_ptr<BufferSet> dead;
  {
    std::lock_guard lock(mu_);
    set->in_call = false;
    dead = give_back(set);
  }
}  // a temporary set is freed here, outside the lock

void BufferPool::end_hold(BufferSet* set) noexcept {
  std::unique_ptr<BufferSet> dead;
  {
    std::lock_guard lock(mu_);
    set->held_by_user = false;
    dead = give_back(set);
  }
}

std::unique_ptr<BufferSet> BufferPool::give_back(BufferSet* set) noexcept {
  if (set->in_call || set->held_by_user || set->leaked) return nullptr;
  if (set->pooled) {
    free_.push_back(set);
    return nullptr;
  }
  return detach(set);
}

std::unique_ptr<BufferSet> BufferPool::detach(BufferSet* set) noexcept {
  auto it = std::find_if(sets_.begin(), sets_.end(), [&](const auto& p) { return p.get() == set; });
  if (it == sets_.end()) return nullptr;
  std::unique_ptr<BufferSet> out = std::move(*it);
  sets_.erase(it);
  std::erase(free_, set);
  if (out->pooled) --pooled_;
  return out;
}

void BufferPool::leak(BufferSet* set) noexcept {
  std::unique_ptr<BufferSet> gone;
  {
    std::lock_guard lock(mu_);
    set->leaked = true;  // input_buffers() arrays may still point at it: never back to free_
    gone = detach(set);  // out of the pool: a replacement may be allocated
  }
  if (!gone) return;
  for (auto& m : gone->in) m.leak();
  for (auto& m : gone->out) m.leak();
  // The arrays (hbDNNTensor) may be read by the library too: keep the whole set.
  BufferSet* raw = gone.release();
  try {
    leak_forever(std::shared_ptr<const void>(raw, [](const void*) {}));
  } catch (...) {
  }
}

}  // namespace hbm::ucp
