// amp::ProcessGroup (amp/distributed.h) over the runtime's job discovery
// (runtime/process_group.h).
#include "amp/distributed.h"

#include "api/distributed_impl.h"

namespace amp {

ProcessGroup::ProcessGroup(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ProcessGroup::~ProcessGroup() = default;

StatusOr<std::shared_ptr<ProcessGroup>> ProcessGroup::FromEnvironment(double timeout_seconds,
                                                                      const std::string& device) {
  auto impl = std::make_unique<Impl>();
  impl->launcher = DetectLauncher();
  impl->device = device;
  AMP_ASSIGN_OR_RETURN(impl->local_rank, LocalRank(impl->launcher));
  AMP_ASSIGN_OR_RETURN(impl->comm, JoinJob(impl->launcher, timeout_seconds, device));
  return std::shared_ptr<ProcessGroup>(new ProcessGroup(std::move(impl)));
}

int ProcessGroup::rank() const { return impl_->comm ? impl_->comm->rank() : 0; }
int ProcessGroup::size() const { return impl_->comm ? impl_->comm->size() : 1; }
int ProcessGroup::local_rank() const { return impl_->local_rank; }
std::string ProcessGroup::launcher() const { return LauncherName(impl_->launcher); }
std::string ProcessGroup::device() const { return impl_->device; }

Status ProcessGroup::AllReduceMean(float* data, size_t n) {
  if (size() == 1) return Status::Ok();
  AMP_RETURN_IF_ERROR(impl_->comm->AllReduceSum(data, n));
  const float inv = 1.0f / static_cast<float>(size());
  for (size_t i = 0; i < n; ++i) data[i] *= inv;
  return Status::Ok();
}

}  // namespace amp
