// Checkpoints: every piece of a training session's state (parameters,
// optimizer moments, step counts, loss scale) plus the session's step and the
// caller's metadata (JSON), in one .npz file written atomically (temporary
// file, fsync, rename): a crash or a full disk while writing leaves the last
// good checkpoint in place. NumPy reads it: np.load(path).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "compiler/status.h"
#include "runtime/executor.h"

namespace amp {

// DIR/checkpoint.npz
std::string CheckpointPath(const std::string& dir);
// Creates `dir` if needed and writes the checkpoint there.
Status SaveCheckpoint(const Executor& session, const std::string& dir, const nlohmann::json& meta);
// The largest step a checkpoint (and amp-train's --steps) may hold: counts up
// to 2^53 are exact in the float state that optimizers keep them in.
inline constexpr int64_t kMaxStep = int64_t{1} << 53;
// Restores the state and step; returns the metadata that was saved with them.
// The checkpoint is validated first, and nothing is changed when it is
// refused: every state entry present with this step's dtype and shape and no
// other entries, every value finite, the step 0 to kMaxStep, a positive
// loss scale, whole non-negative counters (the optimizer's step at most the
// checkpoint's), non-negative second moments. The error names the entry.
StatusOr<nlohmann::json> LoadCheckpoint(Executor& session, const std::string& dir);

}  // namespace amp
