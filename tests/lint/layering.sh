#!/bin/bash
# The architecture's layering rules, checked on the sources:
#  - the runtime runs Executables and links no training builder: runtime/
#    includes no header of attach-loss, autodiff, loss-scaling, optimizer,
#    expand-gradient, the training pipelines or the pass registry;
#  - the public headers (include/amp/) include only the standard library and
#    each other: no internal, protobuf, onnx or json header reaches a user;
#  - the runtime does not include the compile front end (passes/compile.h);
#  - amp's own pipelines are typed values (passes/pipelines.h): outside
#    passes/, only amp-opt (a user's list of names) and the tests that
#    exercise that path build a pipeline from a string.
# usage: layering.sh SOURCE_DIR
set -uo pipefail
cd "$1"
status=0
if grep -nE '#include "passes/(attach_loss|autodiff|loss_scaling|optimizer|expand_gradient|pipelines|registry)\.h"' runtime/*; then
  echo "FAIL: runtime/ includes a training builder or a pipeline header (see above)"
  status=1
fi
if grep -nE '#include' include/amp/*.h | grep -vE '#include (<[a-z_]+>|"amp/[a-z_]+\.h")'; then
  echo "FAIL: a public header includes something other than the standard library or amp/ (above)"
  status=1
fi
if grep -n '#include "passes/compile.h"' runtime/*; then
  echo "FAIL: runtime/ includes the compile front end (see above)"
  status=1
fi
if grep -rn "BuildPipeline(" --include='*.cc' --include='*.h' . | grep -vE '^\./(passes/|tests/|tools/amp_opt\.cc|build)'; then
  echo "FAIL: a pipeline is built from a string outside passes/ and amp-opt (see above)"
  status=1
fi
[ $status -eq 0 ] && echo "layering: ok"
exit $status
