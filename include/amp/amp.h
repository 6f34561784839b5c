// amp's public C++ API: compile an ONNX model to a mixed-precision training
// step (amp/compile.h) and run it (amp/session.h). Link amp::runtime:
//
//   find_package(amp CONFIG REQUIRED)
//   target_link_libraries(app PRIVATE amp::runtime)
//
// docs/API.md walks through a complete program.
#pragma once

#include "amp/compile.h"
#include "amp/distributed.h"
#include "amp/dtype.h"
#include "amp/export.h"
#include "amp/session.h"
#include "amp/status.h"
#include "amp/tensor.h"
#include "amp/version.h"
