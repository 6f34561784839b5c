#!/usr/bin/env python3
"""models/<m>/data.npz (batches x0..x3, y0..y3, as PyTorch used them) ->
models/<m>/train.npz (one array per step input, samples first: "input",
"labels"), the layout amp-train reads. Batch k of the reference is samples
[k*B, (k+1)*B) of train.npz, so amp-train's step k uses the same batch as
PyTorch's step k."""
import sys

import numpy as np

for folder in sys.argv[1:]:
    d = np.load(f"{folder}/data.npz")
    n = len([k for k in d.files if k.startswith("x")])
    np.savez(f"{folder}/train.npz",
             input=np.concatenate([d[f"x{i}"] for i in range(n)]),
             labels=np.concatenate([d[f"y{i}"] for i in range(n)]))
    print(f"{folder}/train.npz")
