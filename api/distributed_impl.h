// What an amp::ProcessGroup holds (internal types, hidden from libamp's ABI);
// the Session reads its communicator.
#pragma once

#include <memory>
#include <string>

#include "amp/distributed.h"
#include "runtime/process_group.h"

namespace amp {

struct __attribute__((visibility("hidden"))) ProcessGroup::Impl {
  Launcher launcher = Launcher::kNone;
  int local_rank = 0;
  std::string device = "cpu";
  std::unique_ptr<Communicator> comm;  // null: alone
};

}  // namespace amp
