// Checkpoints: every piece of a training session's state (parameters,
// optimizer moments, step counts, loss scale) plus the session's step and the
// caller's metadata (JSON), in one .npz file written atomically (temporary
// file, fsync, rename): a crash or a full disk while writing leaves the last
// good checkpoint in place. NumPy reads it: np.load(path).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "compiler/status.h"
#include "runtime/session.h"

namespace amp {

// DIR/checkpoint.npz
std::string CheckpointPath(const std::string& dir);
// Creates `dir` if needed and writes the checkpoint there.
Status SaveCheckpoint(const Session& session, const std::string& dir, const nlohmann::json& meta);
// Restores the state and step; returns the metadata that was saved with them.
StatusOr<nlohmann::json> LoadCheckpoint(Session& session, const std::string& dir);

}  // namespace amp
