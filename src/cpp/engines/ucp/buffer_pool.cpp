#include "buffer_pool.h"

#include <algorithm>
#include <cstring>

namespace hbm::ucp {

BufferPool::BufferPool(std::shared_ptr<const UcpApi> api, std::shared_ptr<const ModelPlan> plan)
    : api_(std::move(api)), plan_(std::move(plan)) {}

std::unique_ptr<BufferSet> BufferPool::create(int32_t device_id) const {
  const ModelPlan& p = *plan_;
  const PropsLayout& l = *p.layout;
  auto set = std::make_unique<BufferSet>();
  set->device_id = device_id;
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

BufferSet* BufferPool::add(std::unique_ptr<BufferSet> set) {
  // under mu_
  free_.reserve(sets_.size() + 1);
  sets_.push_back(std::move(set));
  return sets_.back().get();
}

BufferPool::CallLease BufferPool::acquire(std::span<const InputView> inputs, int32_t device_id) {
  std::vector<bool> from_held(inputs.size(), false);
  {
    std::lock_guard lock(mu_);
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
    if (BufferSet* s = take_free(device_id)) {
      s->in_call = true;
      return CallLease(shared_from_this(), s, false, std::move(from_held));
    }
  }
  auto fresh = create(device_id);  // outside the lock: allocation talks to the driver
  std::lock_guard lock(mu_);
  BufferSet* s = add(std::move(fresh));
  s->in_call = true;
  return CallLease(shared_from_this(), s, false, std::move(from_held));
}

std::vector<OutputTensor> BufferPool::hold_inputs() {
  BufferSet* s = nullptr;
  {
    std::lock_guard lock(mu_);
    if ((s = take_free(0))) s->held_by_user = true;
  }
  if (!s) {
    auto fresh = create(0);
    std::lock_guard lock(mu_);
    s = add(std::move(fresh));
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
  std::lock_guard lock(mu_);
  set->in_call = false;
  give_back(set);
}

void BufferPool::end_hold(BufferSet* set) noexcept {
  std::lock_guard lock(mu_);
  set->held_by_user = false;
  give_back(set);
}

void BufferPool::give_back(BufferSet* set) noexcept {
  if (!set->in_call && !set->held_by_user) free_.push_back(set);
}

}  // namespace hbm::ucp
