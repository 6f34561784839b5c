#!/usr/bin/env python3
"""NaN and inf through every CPU kernel, judged by onnxruntime.

For every ONNX backend node test (Debian's libonnx-testdata, upgraded to
opset 13 the way tests/conformance/prepare.py does) that has float inputs,
and a few single-node models for float ops that have no such test,
the sweep makes new inputs from the originals with some elements (never all)
replaced by NaN, +inf and -inf (a fixed seed per test; integer, bool, scalar
and shape-like inputs stay as they are), computes the expected outputs with
onnxruntime (no graph optimizations), writes them in ONNX's test-data layout
and runs `amp-run --suite` over them. amp-run's comparison treats NaN as equal
to NaN and inf as equal to an inf of the same sign, at the same position, so
a kernel that turns NaN into a number (or a number into NaN) fails.

Swept are the tests amp passes on their original data (the others are
unsupported, or the conformance test's business) and whose original data
onnxruntime itself gets right. Where onnxruntime is not IEEE in a way that
can be corrected exactly (ieee_outputs), its outputs are corrected; other
legitimate differences are listed, with their reasons, in
tests/nan_sweep_expected.txt, and amp-run reports a listed test that passes
(XPASS), so the list cannot go stale.

Also: an all-NaN batch through models/mlp's FP32 SGD step gives a NaN loss,
not a finite one with every weight silently NaN afterwards.
"""
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
import zlib

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper, version_converter

AMP_RUN = os.environ["AMP_RUN"]
AMP_COMPILE = os.environ["AMP_COMPILE"]
AMP_TRAIN = os.environ["AMP_TRAIN"]
MODELS = os.environ["AMP_MODELS"]
SANITIZED = os.environ.get("AMP_SANITIZED", "0") not in ("", "0")

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
NODE_DATA = "/usr/share/libonnx-testdata/data/node"
EXPECTED = os.path.join(TESTS, "nan_sweep_expected.txt")
sys.path.insert(0, os.path.join(TESTS, "conformance"))
import prepare  # noqa: E402  (MIN_OPSET, default_opset: the conformance upgrade rule)

# Float inputs that are not data but sizes, scales or counts: NaN there asks
# for a shape, not for NaN propagation. (op, input index)
NOT_DATA = {
    ("Resize", 1), ("Resize", 2), ("Upsample", 1),
    ("Range", 0), ("Range", 1), ("Range", 2),
    ("Dropout", 1),
}
FLOAT_TYPES = (np.float16, np.float32, np.float64)
SPECIALS = (math.nan, math.inf, -math.inf)
# The sweep must reach at least this many tests and ops; fewer means it has
# stopped testing (lost its data, its model support or its inputs).
MIN_TESTS, MIN_OPS = (40, 25) if SANITIZED else (250, 80)
# Under AddressSanitizer amp-run is several times slower: one test in three.
SAMPLE = 3 if SANITIZED else 1


def run(cmd, ok=True, timeout=300):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if ok and r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def load_upgraded(path):
    """The model as tests/conformance/prepare.py leaves it: upgraded to
    opset 13 where ONNX's converter can, unchanged otherwise."""
    model = onnx.load(path)
    opset = prepare.default_opset(model)
    if opset is not None and opset < prepare.MIN_OPSET:
        try:
            up = version_converter.convert_version(model, prepare.MIN_OPSET)
            up.ir_version = max(up.ir_version, 7)
            onnx.checker.check_model(up)
            return up
        except Exception:  # noqa: BLE001 - the converter raises many kinds
            return onnx.load(path)
    return model


def data_inputs(model):
    """Names of graph inputs that feed only data positions of their nodes."""
    not_data = set()
    for node in model.graph.node:
        for i, name in enumerate(node.input):
            if (node.op_type, i) in NOT_DATA:
                not_data.add(name)
    return {v.name for v in model.graph.input} - not_data


def poison(name, arrays, candidates):
    """Copies of `arrays` with NaN/+inf/-inf in about a quarter of the
    elements of each float input in `candidates` (at least one, never all;
    the first chosen element is NaN). None when no input could be changed."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    out, changed = [], False
    for (iname, a) in arrays:
        if iname in candidates and a.dtype.type in FLOAT_TYPES and a.size >= 2:
            a = a.copy()
            flat = a.reshape(-1)
            k = min(max(1, a.size // 4), a.size - 1)
            pos = rng.choice(a.size, size=k, replace=False)
            flat[pos] = rng.choice(SPECIALS, size=k)
            flat[pos[0]] = math.nan
            changed = True
        out.append((iname, a))
    return out if changed else None


def ort_outputs(model, feeds):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    with np.errstate(all="ignore"):
        return names, sess.run(names, feeds)


def ieee_outputs(model, feeds, outs):
    """onnxruntime's outputs, corrected where onnxruntime 1.32 is not IEEE
    (single-node tests only). Its ReduceMax/ReduceMin, MaxPool and
    GlobalMaxPool drop a NaN unless it comes first: NaN goes wherever the
    window or reduction holds one, found by running the same model on a NaN
    indicator (its pools also give -FLT_MAX for a window of -inf: -inf goes
    there). Its LayerNormalization gives NaN as the Mean of a row that holds
    an infinity but no NaN, where the mean is that infinity."""
    if len(model.graph.node) != 1:
        return outs
    node = model.graph.node[0]
    if node.op_type in ("ReduceMax", "ReduceMin", "MaxPool", "GlobalMaxPool"):
        mark = -1 if node.op_type == "ReduceMin" else 1
        x = feeds[node.input[0]]

        def where_any(pred):  # per output: does pred hold in its window?
            marked = dict(feeds)
            marked[node.input[0]] = np.where(pred, mark, 0).astype(x.dtype)
            return ort_outputs(model, marked)[1][0] == mark

        if node.op_type in ("MaxPool", "GlobalMaxPool"):
            outs[0] = np.where(where_any(x != -np.inf), outs[0], -np.inf).astype(outs[0].dtype)
        outs[0] = np.where(where_any(np.isnan(x)), np.nan, outs[0]).astype(outs[0].dtype)
    elif node.op_type == "LayerNormalization" and len(outs) > 1:
        x = feeds[node.input[0]].astype(np.float64)
        axis = next((a.i for a in node.attribute if a.name == "axis"), -1) % x.ndim
        with np.errstate(all="ignore"):
            mean = x.mean(axis=tuple(range(axis, x.ndim)), keepdims=True)
        outs[1] = mean.astype(outs[1].dtype)
    return outs


def extra_tests():
    """Single-node models for float ops amp runs that have no node test with
    float data in libonnx-testdata 1.12: (name, model, [(input, array)])."""
    rng = np.random.default_rng(0)
    f32 = onnx.TensorProto.FLOAT
    cases = [
        ("Gelu", 20, {}, [("x", [3, 5])]),
        ("Gelu", 20, {"approximate": "tanh"}, [("x", [3, 5])]),
        ("Mish", 18, {}, [("x", [3, 5])]),
        ("GroupNormalization", 21, {"num_groups": 2},
         [("x", [2, 4, 3, 3]), ("scale", [4]), ("bias", [4])]),
        ("LpPool", 18, {"kernel_shape": [2, 2], "p": 2}, [("x", [1, 2, 4, 4])]),
        ("LpPool", 18, {"kernel_shape": [3], "p": 1, "pads": [1, 1]}, [("x", [1, 2, 6])]),
        ("Trilu", 14, {"upper": 1}, [("x", [4, 5])]),
    ]
    for k, (op, opset, attrs, inputs) in enumerate(cases):
        node = onnx.helper.make_node(op, [n for n, _ in inputs], ["y"], **attrs)
        graph = onnx.helper.make_graph(
            [node], f"{op}_{k}", [onnx.helper.make_tensor_value_info(n, f32, d) for n, d in inputs],
            [onnx.helper.make_tensor_value_info("y", f32, None)])
        model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)])
        model.ir_version = 10
        arrays = [(n, rng.standard_normal(d).astype(np.float32)) for n, d in inputs]
        yield f"extra_{op.lower()}_{k}", model, arrays


def write_set(folder, named_arrays):
    """Writes input_N.pb (or output_N.pb) files: named_arrays is
    [("input" or "output", name, array)]."""
    os.makedirs(folder, exist_ok=True)
    counts = {}
    for kind, name, a in named_arrays:
        i = counts.get(kind, 0)
        counts[kind] = i + 1
        onnx.save_tensor(numpy_helper.from_array(np.asarray(a), name),
                         os.path.join(folder, f"{kind}_{i}.pb"))


def same(got, want):
    """amp-run's comparison: rtol 1e-3, atol 1e-7, NaN equal to NaN."""
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape or got.dtype != want.dtype:
        return False
    if got.dtype.kind not in "fc":
        return np.array_equal(got, want)
    return bool(np.allclose(got, want, rtol=1e-3, atol=1e-7, equal_nan=True))


def build_sweep(work):
    """Writes each candidate test twice: under work/original with its own data
    set and under work/nan with poisoned inputs and onnxruntime's outputs.
    Returns {test: op types} and the counts of what was left out, and why."""
    tests, left_out = {}, {}

    def leave_out(why):
        left_out[why] = left_out.get(why, 0) + 1

    def cases():
        names = sorted(n for n in os.listdir(NODE_DATA)
                       if os.path.isfile(os.path.join(NODE_DATA, n, "model.onnx")))
        for index, name in enumerate(names):
            if index % SAMPLE == 0:
                yield name, None
        for name, model, arrays in extra_tests():
            yield name, (model, arrays)

    for name, extra in cases():
        if extra is None:
            set0 = os.path.join(NODE_DATA, name, "test_data_set_0")
            model = load_upgraded(os.path.join(NODE_DATA, name, "model.onnx"))
            graph_inputs = [v for v in model.graph.input
                            if v.name not in {t.name for t in model.graph.initializer}]
            files = sorted((f for f in os.listdir(set0) if f.startswith("input_")),
                           key=lambda f: int(f[6:-3])) if os.path.isdir(set0) else []
            if not files or not all(v.type.HasField("tensor_type") for v in graph_inputs) or \
                    not all(v.type.HasField("tensor_type") for v in model.graph.output):
                leave_out("not plain tensors")
                continue
            tensors = [onnx.load_tensor(os.path.join(set0, f)) for f in files]
            if any(t.data_type == onnx.TensorProto.BFLOAT16 for t in tensors):
                leave_out("bfloat16 inputs")
                continue
            arrays = [(v.name, numpy_helper.to_array(t)) for v, t in zip(graph_inputs, tensors)]
        else:
            set0 = None
            model, arrays = extra
        poisoned = poison(name, arrays, data_inputs(model))
        if poisoned is None:
            leave_out("no float data input")
            continue
        try:
            out_names, finite_outs = ort_outputs(model, dict(arrays))
            agrees = set0 is None or all(
                same(a, numpy_helper.to_array(onnx.load_tensor(
                    os.path.join(set0, f"output_{i}.pb")))) for i, a in enumerate(finite_outs))
            out_names, outs = ort_outputs(model, dict(poisoned))
            outs = ieee_outputs(model, dict(poisoned), list(outs))
        except Exception:  # noqa: BLE001 - ORT refuses some models (types, ops)
            leave_out("onnxruntime cannot run it")
            continue
        if not agrees:
            # onnxruntime is no judge of a test whose finite data it gets wrong.
            leave_out("onnxruntime disagrees with the test's own expected outputs")
            print(f"nan sweep: left out {name}: onnxruntime disagrees with its expected outputs",
                  file=sys.stderr)
            continue
        orig = os.path.join(work, "original", name)
        os.makedirs(orig)
        onnx.save(model, os.path.join(orig, "model.onnx"))
        if set0 is not None:
            os.symlink(set0, os.path.join(orig, "test_data_set_0"))
        else:  # an extra test: onnxruntime's outputs on the finite data
            write_set(os.path.join(orig, "test_data_set_0"),
                      [("input", n, a) for n, a in arrays] +
                      [("output", n, a) for n, a in zip(out_names, finite_outs)])
        dst = os.path.join(work, "nan", name)
        os.makedirs(dst)
        onnx.save(model, os.path.join(dst, "model.onnx"))
        write_set(os.path.join(dst, "test_data_set_0"),
                  [("input", n, a) for n, a in poisoned] +
                  [("output", n, a) for n, a in zip(out_names, outs)])
        tests[name] = {n.op_type for n in model.graph.node}
    return tests, left_out


def outcomes(stdout):
    """amp-run's verdict per test: PASS, FAIL, XFAIL, SKIP or XPASS."""
    out = {}
    for line in stdout.splitlines():
        m = re.match(r"(PASS|FAIL|XFAIL|SKIP|XPASS) (\S+?):?(?: |$)", line)
        if m:
            out[m.group(2)] = m.group(1)
    return out


class NanSweep(unittest.TestCase):
    def test_every_kernel_propagates_nan_and_inf_like_onnxruntime(self):
        self.assertTrue(os.path.isdir(NODE_DATA),
                        "libonnx-testdata is not installed (tools/setup.sh installs it)")
        with tempfile.TemporaryDirectory() as work:
            tests, left_out = build_sweep(work)
            # Only tests amp passes on their original data: the rest are
            # unsupported (skipped) or the conformance test's business.
            original = outcomes(run([AMP_RUN, "--suite", os.path.join(work, "original"), "-v"],
                                    ok=False).stdout)
            self.assertEqual(set(original), set(tests), "amp-run did not report every test")
            for name, verdict in original.items():
                if verdict != "PASS":
                    shutil.rmtree(os.path.join(work, "nan", name))
                    why = ("unsupported by amp" if verdict == "SKIP"
                           else "amp fails it on its original data (see conformance.node)")
                    left_out[why] = left_out.get(why, 0) + 1
            r = run([AMP_RUN, "--suite", os.path.join(work, "nan"), "--expect-fail", EXPECTED, "-v"],
                    ok=False)
        outcome = outcomes(r.stdout)
        swept = {n for n, o in outcome.items() if o in ("PASS", "FAIL", "XFAIL", "XPASS")}
        ops = set().union(*(tests.get(n, set()) for n in swept)) if swept else set()
        # Every op amp runs that some poisoned test uses is swept.
        amp_ops = set(run([AMP_COMPILE, "--list-ops"]).stdout.split())
        offered = set().union(*(tests[n] for n in original if original[n] != "SKIP")) & amp_ops
        print(f"nan sweep: {len(swept)} tests over {len(ops)} ops swept "
              f"({sum(o == 'XFAIL' for o in outcome.values())} listed differences); "
              f"left out: {json.dumps(left_out)}", file=sys.stderr)
        print(f"nan sweep: ops: {' '.join(sorted(ops))}", file=sys.stderr)
        failures = [line for line in r.stdout.splitlines() if line.startswith(("FAIL", "XPASS"))]
        self.assertEqual(r.returncode, 0, "amp-run:\n" + "\n".join(failures) + "\n" + r.stderr[-2000:])
        self.assertEqual(swept, {n for n, o in original.items() if o == "PASS"},
                         "a test amp runs on its original data was not swept")
        self.assertGreaterEqual(len(swept), MIN_TESTS, "the sweep has (nearly) stopped testing")
        self.assertGreaterEqual(len(ops), MIN_OPS, "the sweep has (nearly) stopped testing")
        if not SANITIZED:
            self.assertEqual(offered - ops, set(), "ops amp runs but the sweep did not reach")

    def test_all_nan_batch_gives_nan_loss(self):
        with tempfile.TemporaryDirectory() as work:
            # The forward model: NaN in, NaN out (no Relu turning it into 0).
            model = onnx.load(os.path.join(MODELS, "mlp", "model.onnx"))
            x = np.full((4, 64), np.nan, np.float32)
            logits = ort_outputs(model, {model.graph.input[0].name: x})[1][0]
            self.assertTrue(np.isnan(logits).all(), logits)
            case = os.path.join(work, "mlp")
            os.makedirs(os.path.join(case, "test_data_set_0"))
            onnx.save_tensor(numpy_helper.from_array(x, model.graph.input[0].name),
                             os.path.join(case, "test_data_set_0", "input_0.pb"))
            onnx.save_tensor(numpy_helper.from_array(logits, model.graph.output[0].name),
                             os.path.join(case, "test_data_set_0", "output_0.pb"))
            run([AMP_RUN, os.path.join(MODELS, "mlp", "model.onnx"), "--test-dir", case])

            # The FP32 SGD step on an all-NaN batch: the loss is NaN, so the
            # step is skipped (--skip-nonfinite) and logged with a null loss.
            # (With the old Relu it was a finite 2.306 and the step applied.)
            step = os.path.join(work, "step.onnx")
            run([AMP_COMPILE, os.path.join(MODELS, "mlp", "model.onnx"), "--loss", "cross_entropy",
                 "--optimizer", "sgd", "--lr", "0.05", "--opt-level", "O0", "-o", step])
            d = dict(np.load(os.path.join(MODELS, "mlp", "train.npz")))
            d["input"] = np.full_like(d["input"], np.nan)
            data = os.path.join(work, "nan.npz")
            np.savez(data, **d)
            log = os.path.join(work, "log.jsonl")
            r = run([AMP_TRAIN, step, "--data", data, "--batch-size", "16", "--steps", "1",
                     "--skip-nonfinite", "--log", log], ok=False)
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(log) as f:
                rows = [json.loads(line) for line in f if line.strip()]
            self.assertEqual(len(rows), 1, r.stderr)
            self.assertIsNone(rows[0]["loss"], f"all-NaN batch gave loss {rows[0]['loss']}")
            self.assertTrue(rows[0]["skipped"], rows[0])


if __name__ == "__main__":
    unittest.main()
