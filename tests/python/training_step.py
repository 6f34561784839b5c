"""Runs a compiled training step (functional form) for several steps in
onnxruntime, feeding each step's updated state back in. Shared by the
training tests."""
import json

import numpy as np
import onnx
import onnxruntime as ort


class StepRunner:
    def __init__(self, path):
        model = onnx.load(path)
        meta = {p.key: p.value for p in model.metadata_props}
        self.info = json.loads(meta["amp.training"])
        self.lr = float(meta.get("amp.lr", "0.01"))
        self.state = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer
                      if t.name in {s for s, _ in self.info["updates"]}}
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        so.log_severity_level = 3  # state inputs with initializers are intended
        self.sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        self.outputs = [o.name for o in self.sess.get_outputs()]

    def step(self, feeds, lr=None):
        all_feeds = dict(feeds)
        all_feeds["lr"] = np.array(self.lr if lr is None else lr, np.float32)
        all_feeds.update(self.state)
        results = dict(zip(self.outputs, self.sess.run(None, all_feeds)))
        for state, update in self.info["updates"]:
            self.state[state] = results[update]
        return float(results[self.info["loss"]]), results
