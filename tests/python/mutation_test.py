"""Protobuf-aware mutations of the shipped models through amp-compile: each
mutant must either be refused (exit 1, one line, no internal error) or
compile to a model that onnx's checker accepts. Never a signal, a hang, an
internal error, or an exit-0 output that is not valid ONNX. The mutations are
the ones that found bugs before: attribute types and values, dims, element
types, inputs renamed, nodes' op types, external-data fields.

AMP_MUTANTS sets the number of mutants (default 120), AMP_MUTANT_SEED the seed,
AMP_MUTANTS_COLLECT=1 reports every finding before failing. The campaign in the
hardening issue ran thousands (AMP_MUTANTS=3000)."""
import copy
import os
import random
import subprocess
import tempfile
import unittest

import onnx
from onnx import AttributeProto, TensorProto

AMP_COMPILE = os.environ["AMP_COMPILE"]
MODELS = os.environ["AMP_MODELS"]
COLLECT = os.environ.get("AMP_MUTANTS_COLLECT") == "1"  # report every finding, then fail
COUNT = int(os.environ.get("AMP_MUTANTS", "40" if os.environ.get("AMP_SANITIZED") == "1" else "120"))

ATTR_TYPES = [AttributeProto.FLOAT, AttributeProto.INT, AttributeProto.STRING, AttributeProto.INTS,
              AttributeProto.FLOATS, AttributeProto.STRINGS, AttributeProto.TENSOR, AttributeProto.GRAPH]


def mutate_attribute(rng, m):
    nodes = [n for n in m.graph.node if n.attribute]
    if not nodes:
        return False
    a = rng.choice(rng.choice(nodes).attribute)
    kind = rng.randrange(6)
    if kind == 0:  # wrong type, value left in the other field
        a.type = rng.choice([t for t in ATTR_TYPES if t != a.type])
    elif kind == 1:
        a.i = rng.choice([-1, 0, 2, 3, 2**40, -(2**40)])
    elif kind == 2:
        a.f = rng.choice([float("nan"), float("inf"), -1.0, 0.0, 1e30])
    elif kind == 3:
        a.s = rng.choice([b"", b"BOGUS", b"\x00", b"SAME_UPPER", b"tanh"])
    elif kind == 4:
        del a.ints[:]
        a.ints.extend(rng.choice([[], [0], [-1, -1], [1, 2, 3, 4, 5, 6, 7, 8], [2**40]]))
    else:
        a.name = rng.choice(["", "bogus", "axis", "alpha", "perm", "to"])
    return True


def mutate_dims(rng, m):
    vis = list(m.graph.input) + list(m.graph.output) + list(m.graph.value_info)
    vis = [v for v in vis if v.type.tensor_type.shape.dim]
    if not vis:
        return False
    d = rng.choice(rng.choice(vis).type.tensor_type.shape.dim)
    choice = rng.randrange(4)
    if choice == 0:
        d.dim_value = rng.choice([0, -1, 1, 7, 2**41])
    elif choice == 1:
        d.dim_param = rng.choice(["", "N", "\x00"])
    elif choice == 2:
        v = rng.choice(vis)
        v.type.tensor_type.ClearField("shape")
    else:
        rng.choice(vis).type.tensor_type.elem_type = rng.choice([0, 2, 7, 9, 10, 11, 16, 17, 99])
    return True


def mutate_initializer(rng, m):
    if not m.graph.initializer:
        return False
    t = rng.choice(m.graph.initializer)
    kind = rng.randrange(4)
    if kind == 0 and t.dims:
        t.dims[rng.randrange(len(t.dims))] = rng.choice([0, -1, 3, 2**40])
    elif kind == 1:
        t.data_type = rng.choice([TensorProto.FLOAT16, TensorProto.INT64, TensorProto.BOOL, 0, 99])
    elif kind == 2:
        t.data_location = TensorProto.EXTERNAL
        for key, value in rng.choice([[("location", "x.bin")], [("location", "../x"), ("offset", "1e3")],
                                       [("location", "/etc/passwd")], [("offset", "-1")]]):
            e = t.external_data.add()
            e.key, e.value = key, value
    else:
        t.raw_data = t.raw_data[: len(t.raw_data) // 2]
    return True


def mutate_node(rng, m):
    if not m.graph.node:
        return False
    n = rng.choice(m.graph.node)
    kind = rng.randrange(4)
    if kind == 0:
        n.op_type = rng.choice(["Relu", "Add", "Bogus", "", "Gemm", "Softmax", "If"])
    elif kind == 1 and n.input:
        n.input[rng.randrange(len(n.input))] = rng.choice(["", "nope", m.graph.node[0].output[0]])
    elif kind == 2:
        n.domain = rng.choice(["ai.amp", "com.microsoft", "ai.onnx.preview.training"])
    elif n.input:
        del n.input[rng.randrange(len(n.input)):]
    return True


MUTATORS = [mutate_attribute, mutate_attribute, mutate_dims, mutate_initializer, mutate_node]


class Mutations(unittest.TestCase):
    def test_mutants_are_refused_or_valid(self):
        models = [onnx.load(os.path.join(MODELS, name, "model.onnx")) for name in sorted(os.listdir(MODELS))
                  if os.path.isfile(os.path.join(MODELS, name, "model.onnx"))]
        self.assertGreater(len(models), 0)
        rng = random.Random(int(os.environ.get("AMP_MUTANT_SEED", "12")))
        outcomes = {"refused": 0, "compiled": 0}
        findings = []

        def fail(msg):
            if os.environ.get("AMP_MUTANTS_KEEP"):  # a folder to keep failing mutants in
                os.makedirs(os.environ["AMP_MUTANTS_KEEP"], exist_ok=True)
                with open(src, "rb") as f_in, open(os.path.join(os.environ["AMP_MUTANTS_KEEP"], f"m{k}.onnx"), "wb") as f_out:
                    f_out.write(f_in.read())
            if not COLLECT:
                self.fail(msg)
            findings.append(msg)
        with tempfile.TemporaryDirectory() as d:
            for k in range(COUNT):
                m = copy.deepcopy(rng.choice(models))
                for _ in range(rng.randint(1, 3)):
                    rng.choice(MUTATORS)(rng, m)
                src, out = os.path.join(d, f"m{k}.onnx"), os.path.join(d, f"o{k}.onnx")
                with open(src, "wb") as f:
                    f.write(m.SerializeToString())
                args = [AMP_COMPILE, src, "-o", out]
                if rng.random() < 0.4:
                    args += ["--loss", "cross_entropy", "--optimizer", "adam", "--lr", "1e-3"]
                try:
                    r = subprocess.run(args, capture_output=True, text=True, timeout=60)
                except subprocess.TimeoutExpired:
                    fail(f"mutant {k} hangs: {' '.join(args)}")
                    continue
                if r.returncode not in (0, 1):
                    fail(f"mutant {k}: signal/rc {r.returncode}: {r.stderr[-300:]}")
                elif r.returncode == 1:
                    lines = [l for l in r.stderr.splitlines() if l.strip()]
                    if len(lines) != 1 or "internal" in lines[0].lower():
                        fail(f"mutant {k}: not one clean line: {r.stderr[-300:]}")
                    outcomes["refused"] += 1
                else:
                    try:
                        onnx.checker.check_model(out, full_check=True)
                        outcomes["compiled"] += 1
                    except Exception as e:  # noqa: BLE001
                        fail(f"mutant {k} compiled (exit 0) to an invalid model: {str(e)[:300]}")
                for p in (src, out):
                    if os.path.exists(p):
                        os.remove(p)
        print(f"mutants: {COUNT}, {outcomes}")
        for f in findings:
            print(f)
        self.assertEqual(findings, [])
        self.assertGreater(outcomes["refused"], 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
