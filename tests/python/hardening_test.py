"""Bad input of every kind is refused with one clear line and exit code 1:
attributes of the wrong type or value, loosely written external data,
special files (FIFOs, devices), unreadable test data, impossible
checkpoints, out-of-range numbers on the command line, and FP32 steps whose
loss or gradients stop being finite. Each case is a reproducer of a bug
that was found, and each asserts what amp now says. Every subprocess has a
timeout, so a hang fails the test instead of stalling it."""
import json
import os
import stat
import subprocess
import tempfile
import unittest

import numpy as np
import onnx
from onnx import AttributeProto, TensorProto, helper, numpy_helper

AMP_COMPILE = os.environ["AMP_COMPILE"]
AMP_TRAIN = os.environ["AMP_TRAIN"]
AMP_RUN = os.environ["AMP_RUN"]
AMP_OPT = os.environ["AMP_OPT"]
MODELS = os.environ["AMP_MODELS"]
MLP = os.path.join(MODELS, "mlp", "model.onnx")
MLP_DATA = os.path.join(MODELS, "mlp", "train.npz")


def run(cmd, timeout=120):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def one_node(op, inputs, attrs=(), opset=17, nin=None, shape=(2, 2), out_shape=None):
    node = helper.make_node(op, inputs, ["y"], name="n0")
    node.attribute.extend(attrs)
    ins = [helper.make_tensor_value_info(i, TensorProto.FLOAT, list(shape)) for i in inputs if i]
    g = helper.make_graph([node], "g", ins, [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


class Base(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def path(self, name):
        p = os.path.join(self.dir, name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        return p

    def write(self, name, data):
        p = self.path(name)
        with open(p, "wb") as f:
            f.write(data if isinstance(data, bytes) else data.SerializeToString())
        return p

    def fails(self, cmd, fragment, tool=None, timeout=120):
        """The command exits 1 with exactly one line on stderr containing fragment."""
        r = run(cmd, timeout)
        tool = tool or os.path.basename(cmd[0])
        self.assertEqual(r.returncode, 1, f"rc={r.returncode}\n{r.stdout}\n{r.stderr}")
        lines = [l for l in r.stderr.splitlines() if l.strip() and not l.startswith("amp-train: resumed")]
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertTrue(lines[0].startswith(f"{tool}: error: "), lines[0])
        self.assertIn(fragment, lines[0])
        return lines[0]


class WithStep(Base):
    """A class of tests sharing one compiled MLP step (STEP_FLAGS)."""
    STEP_FLAGS = ["--optimizer", "adam", "--lr", "1e-3"]

    @classmethod
    def setUpClass(cls):
        cls.shared = tempfile.TemporaryDirectory()
        cls.step = os.path.join(cls.shared.name, "step.onnx")
        r = run([AMP_COMPILE, MLP, "--loss", "cross_entropy", *cls.STEP_FLAGS, "-o", cls.step])
        assert r.returncode == 0, r.stderr

    @classmethod
    def tearDownClass(cls):
        cls.shared.cleanup()


class Attributes(Base):
    def compile_fails(self, model, fragment):
        return self.fails([AMP_COMPILE, self.write("m.onnx", model), "-o", self.path("o.onnx")], fragment)

    def test_valid_model_compiles(self):  # the baseline the cases below break
        m = one_node("Gemm", ["a", "b"], [helper.make_attribute("alpha", 3.0)])
        r = run([AMP_COMPILE, self.write("ok.onnx", m), "-o", self.path("o.onnx")])
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_wrong_attribute_type(self):
        self.compile_fails(one_node("Gemm", ["a", "b"], [helper.make_attribute("alpha", 3)]),
                           "attribute 'alpha' of Gemm-13 must be FLOAT, but the file stores INT")
        self.compile_fails(one_node("Softmax", ["a"], [helper.make_attribute("axis", "x")]),
                           "attribute 'axis' of Softmax-13 must be INT, but the file stores STRING")

    def test_unknown_attribute_and_graph_on_conv(self):
        self.compile_fails(one_node("Gemm", ["a", "b"], [helper.make_attribute("foo", 1)]),
                           "'foo' is not an attribute of Gemm-13 (it has alpha, beta, transA, transB)")
        body = helper.make_graph([], "b", [], [])
        line = self.compile_fails(one_node("Conv", ["a", "b"], [helper.make_attribute("body", body)]),
                                  "'body' is not an attribute of Conv-11")
        self.assertNotIn("control flow", line)

    def test_required_attribute(self):
        self.compile_fails(one_node("Cast", ["a"]), "Cast-13 requires attribute 'to' (INT)")

    def test_values_the_spec_allows(self):
        self.compile_fails(one_node("Conv", ["a", "b"], [helper.make_attribute("auto_pad", "BOGUS")]),
                           "attribute 'auto_pad' is 'BOGUS'; ONNX allows NOTSET, SAME_UPPER")
        self.compile_fails(one_node("Gemm", ["a", "b"], [helper.make_attribute("transA", 2)]),
                           "attribute 'transA' is 2; it must be 0 or 1")
        self.compile_fails(one_node("Conv", ["a", "b"], [helper.make_attribute("strides", [1, 0])]),
                           "attribute 'strides' holds 0; every element must be positive")
        self.compile_fails(one_node("Conv", ["a", "b"], [helper.make_attribute("group", 0)]),
                           "attribute 'group' is 0; it must be at least 1")

    def test_mutation_findings(self):
        # From tests/python/mutation_test.py's campaign: a SIGSEGV and two
        # exit-0 outputs that onnx.checker refused.
        concat = one_node("Concat", ["a", ""], [helper.make_attribute("axis", 0)])
        self.compile_fails(concat, "input 1 of Concat-13 is required, but its name is empty")
        m = one_node("Unsqueeze", ["a", "b"])  # axes must be int64
        self.compile_fails(m, "input 1 ('b') is float, but Unsqueeze-13 takes int64 there")
        perm = helper.make_attribute("perm", [], attr_type=AttributeProto.INTS)
        self.compile_fails(one_node("Transpose", ["a"], [perm]), "perm has 0 entries for rank 2")

    def test_what_valid_writers_write_is_accepted(self):
        # onnx.checker skips attribute names starting with "__"; old
        # converters write auto_pad "" for NOTSET, which onnxruntime reads.
        relu = one_node("Relu", ["a"], [helper.make_attribute("__tag", 1)], out_shape=[2, 2])
        conv = one_node("Conv", ["a", "b"], [helper.make_attribute("auto_pad", "")], shape=(1, 1, 3, 3),
                        out_shape=[1, 1, 1, 1])
        for m in (relu, conv):
            onnx.checker.check_model(m)
            r = run([AMP_COMPILE, self.write("ok.onnx", m), "-o", self.path("o.onnx")])
            self.assertEqual(r.returncode, 0, r.stderr)

    def test_inference_batchnorm_with_statistics_outputs(self):
        # mutation_test seed 2: training_mode 0 with the running statistics as
        # outputs compiled to a model onnx.checker refuses.
        ins = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4, 4])]
        inits = [numpy_helper.from_array(np.ones(3, np.float32), n) for n in ("s", "b", "m", "v")]
        node = helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y", "rm", "rv"],
                                name="bn", training_mode=0)
        outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("y", "rm", "rv")]
        g = helper.make_graph([node], "g", ins, outs, inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
        self.compile_fails(m, "has 3 outputs, but with training_mode 0 BatchNormalization has only Y")

    def test_conv_kernel_shape_must_match_the_weight(self):
        # mutation_test seed 3: a kernel_shape of the wrong length compiled.
        m = one_node("Conv", ["a", "b"], [helper.make_attribute("kernel_shape", [3, 3, 3])], shape=(1, 1, 3, 3))
        self.compile_fails(m, "kernel_shape has 3 entries for 2 spatial dims")
        empty = helper.make_attribute("kernel_shape", [], attr_type=AttributeProto.INTS)
        m = one_node("Conv", ["a", "b"], [empty], shape=(1, 1, 3, 3))
        self.compile_fails(m, "kernel_shape has 0 entries for 2 spatial dims")
        m = one_node("Conv", ["a", "b"], [helper.make_attribute("kernel_shape", [2, 2])], shape=(1, 1, 3, 3))
        self.compile_fails(m, "kernel_shape[0] is 2 but the weight's dim 2 is 3")

    def test_cast_to_complex_is_refused(self):
        # Found by the ONNX-text fuzzer: constant folding a Cast to
        # complex64 hit an internal check (an abort) instead of an error.
        m = one_node("Cast", ["a"], [helper.make_attribute("to", TensorProto.COMPLEX64)])
        self.compile_fails(m, "unsupported target type 14")

    def test_op_newer_than_the_opset(self):
        self.compile_fails(one_node("Gelu", ["a"], opset=17),
                           "Gelu first appears in opset 20 of its domain, but the model imports opset 17")

    def test_ir_and_opset_advice(self):
        m = one_node("Relu", ["a"])
        m.ir_version = 12
        line = self.compile_fails(m, "unsupported ONNX IR version 12 (amp reads IR versions 7 to 11)")
        self.assertIn("newer onnx package", line)
        self.assertNotIn("opset 13", line)
        line = self.compile_fails(one_node("Relu", ["a"], opset=11), "unsupported opset 11")
        self.assertIn("version_converter", line)

    def test_nul_byte_is_escaped(self):
        m = one_node("Relu", ["a"])
        m.graph.node[0].op_type = "Re\x00lu"
        line = self.compile_fails(m, "Re\\x00lu")
        self.assertNotIn("\x00", line)

    def test_text_parse_error_is_one_line(self):
        src = self.write("bad.onnxtxt", b"<ir_version: 8, opset_import: [\"\" : 17]>\ng (float[2] x) => (float[2] y) {\n  y = Relu(x\n}\n")
        line = self.fails([AMP_OPT, src], "cannot parse ONNX text: [ParseError at position (line: 4")
        self.assertIn("Expected character ) not found", line)

    def test_outputs_pass_the_onnx_checker(self):
        # Every exit-0 compile writes a model onnx's checker accepts.
        m = one_node("Gemm", ["a", "b"], [helper.make_attribute("alpha", 3.0), helper.make_attribute("transB", 1)])
        out = self.path("o.onnx")
        r = run([AMP_COMPILE, self.write("ok.onnx", m), "-o", out])
        self.assertEqual(r.returncode, 0, r.stderr)
        onnx.checker.check_model(out, full_check=True)
        alpha = [a for a in onnx.load(out).graph.node if a.op_type == "Gemm"][0].attribute
        self.assertIn(3.0, [a.f for a in alpha if a.name == "alpha"])


class UnknownShapes(Base):
    """Autodiff on a value of unknown rank is an error naming the node, not a
    crash (it was a SIGSEGV in the Add/ReduceSum rules and a vector of
    max_size() in GlobalAveragePool's)."""

    def model(self, op, x_shape=(4,)):
        # Reshape to a shape input of unknown length: its output's rank is
        # unknown in a valid model.
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)
        s = helper.make_tensor_value_info("s", TensorProto.INT64, ["K"])
        w = numpy_helper.from_array(np.ones((4,), np.float32), "w")
        nodes = [helper.make_node("Mul", ["x", "w"], ["m"], name="scale"),
                 helper.make_node("Reshape", ["m", "s"], ["a"], name="reshape")]
        if op == "GlobalAveragePool":
            nodes.append(helper.make_node("GlobalAveragePool", ["a"], ["a2"], name="gap"))
        else:
            nodes.append(helper.make_node("Relu", ["a"], ["a2"], name="relu"))
        nodes.append(helper.make_node("ReduceSum", ["a2"], ["y"], name="sum", keepdims=0))
        g = helper.make_graph(nodes, "g", [x, s], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])], [w])
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)

    def test_unknown_rank_is_named(self):
        for op in ["Relu", "GlobalAveragePool"]:
            with self.subTest(op):
                line = self.fails([AMP_COMPILE, self.write("m.onnx", self.model(op)), "--loss", "model",
                                   "--optimizer", "sgd", "--lr", "0.1", "-o", self.path("o.onnx")],
                                  "the gradient needs the rank of")
                self.assertIn("give the model's inputs shapes", line)

    def test_graph_input_without_shape_is_refused(self):
        m = self.model("Relu", x_shape=None)
        self.fails([AMP_COMPILE, self.write("m.onnx", m), "-o", self.path("o.onnx")],
                   "graph input 'x' has no shape; ONNX requires one for graph inputs")


class ExternalData(Base):
    def external(self, **entries):
        t = TensorProto()
        t.name, t.data_type = "w", TensorProto.FLOAT
        t.dims.extend([4])
        t.data_location = TensorProto.EXTERNAL
        for k, v in entries.items():
            e = t.external_data.add()
            e.key, e.value = k, v
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])
        g = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g", [x], [y], [t])
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
        with open(self.path("m/w.bin"), "wb") as f:
            f.write(np.arange(8, dtype=np.float32).tobytes())
        return self.write("m/model.onnx", m)

    def compile(self, path):
        return [AMP_COMPILE, path, "-o", self.path("o.onnx")]

    def test_strict_numbers(self):
        ok = run(self.compile(self.external(location="w.bin", offset="16", length="16")))
        self.assertEqual(ok.returncode, 0, ok.stderr)
        for key, value in [("offset", "1e3"), ("offset", "0x10"), ("offset", "16abc"), ("offset", " 16"),
                           ("length", "-16"), ("offset", "+16"), ("length", "")]:
            entries = {"location": "w.bin", key: value}
            self.fails(self.compile(self.external(**entries)),
                       f"external data {key} '{value}' is not a non-negative decimal number")

    def test_nul_in_location(self):
        self.fails(self.compile(self.external(location="w.bin\x00../../etc/passwd")),
                   "external data location contains a NUL byte")


class SpecialFiles(Base):
    def fifo(self, name):
        p = self.path(name)
        os.mkfifo(p)
        return p

    def test_fifo_model_data_policy(self):
        self.fails([AMP_COMPILE, self.fifo("m.onnx"), "-o", self.path("o.onnx")], "is a FIFO, not a regular file",
                   timeout=20)
        self.fails([AMP_COMPILE, MLP, "-o", self.path("o.onnx"), "--policy", self.fifo("p.json")],
                   "is a FIFO, not a regular file", timeout=20)
        self.fails([AMP_OPT, self.fifo("m.onnxtxt")], "is a FIFO", timeout=20)
        step = self.path("step.onnx")
        r = run([AMP_COMPILE, MLP, "--loss", "cross_entropy", "--optimizer", "sgd", "--lr", "0.1",
                 "--opt-level", "O0", "-o", step])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.fails([AMP_TRAIN, step, "--data", self.fifo("d.npz"), "--batch-size", "8", "--steps", "1"],
                   "is a FIFO, not a regular file", timeout=20)
        self.fails([AMP_TRAIN, self.fifo("s.onnx"), "--data", MLP_DATA], "is a FIFO", timeout=20)

    def test_devices(self):
        self.fails([AMP_COMPILE, "/dev/zero", "-o", self.path("o.onnx")], "is a character device", timeout=20)
        self.fails([AMP_COMPILE, "/dev/null", "-o", self.path("o.onnx")], "is a character device", timeout=20)

    def test_output_to_a_device_writes_it_in_place(self):
        # -o /dev/null discards the model; a rename over it would have made
        # /dev/null a regular file for every process on the machine.
        model = self.write("m.onnx", one_node("Relu", ["x"], shape=(2, 3)))
        r = subprocess.run([AMP_COMPILE, model, "-o", "/dev/null"], capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(stat.S_ISCHR(os.stat("/dev/null").st_mode), "/dev/null was replaced")


class AmpRunData(Base):
    """A test whose data cannot be read is a FAIL with the reason, never a SKIP."""

    def make_test(self, input_bytes=None, link=None):
        m = one_node("Relu", ["x"], shape=(2, 3))
        model = self.write("t/model.onnx", m)
        ds = self.path("t/test_data_set_0/x")
        ds = os.path.dirname(ds)
        x = np.arange(6, dtype=np.float32).reshape(2, 3) - 2
        with open(os.path.join(ds, "output_0.pb"), "wb") as f:
            f.write(numpy_helper.from_array(np.maximum(x, 0), "y").SerializeToString())
        inp = os.path.join(ds, "input_0.pb")
        if link:
            os.symlink(link, inp)
        else:
            with open(inp, "wb") as f:
                f.write(input_bytes if input_bytes is not None else numpy_helper.from_array(x, "x").SerializeToString())
        return model, os.path.dirname(ds)

    def amp_run(self, model, test_dir):
        return run([AMP_RUN, model, "--test-dir", test_dir], timeout=30)

    def test_good_data_passes(self):
        r = self.amp_run(*self.make_test())
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("1 passed, 0 failed", r.stdout)

    def test_unreadable_data_fails(self):
        good = numpy_helper.from_array(np.zeros((2, 3), np.float32), "x").SerializeToString()
        wrong_type = numpy_helper.from_array(np.zeros((2, 3), np.int64), "x").SerializeToString()
        rng = np.random.default_rng(3)
        cases = {"random bytes": rng.integers(0, 256, 64, dtype=np.uint8).tobytes(),
                 "truncated": good[: len(good) // 2],
                 "wrong type": wrong_type}
        for what, data in cases.items():
            with self.subTest(what):
                self.tmp.cleanup()
                self.tmp = tempfile.TemporaryDirectory()
                self.dir = self.tmp.name
                r = self.amp_run(*self.make_test(data))
                self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
                self.assertIn("FAIL", r.stdout)
                self.assertNotIn("SKIP", r.stdout)
                self.assertIn("0 passed, 1 failed", r.stdout)

    def test_link_to_dev_zero_fails_fast(self):
        r = self.amp_run(*self.make_test(link="/dev/zero"))
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("is a character device", r.stdout)


class CliNumbers(WithStep):

    def train(self, *extra):
        defaults = [f for f in (["--batch-size", "8"], ["--steps", "1"]) if f[0] not in extra]
        return [AMP_TRAIN, self.step, "--data", MLP_DATA, "-q", *sum(defaults, []), *extra]

    def test_amp_train_numbers(self):
        for flags, fragment in [
            (["--lr", "nan"], "--lr must be a finite number of 0 or more, not nan"),
            (["--lr", "inf"], "--lr must be a finite number of 0 or more, not inf"),
            (["--lr", "-1"], "--lr must be a finite number of 0 or more, not -1"),
            (["--steps", "-5"], "--steps must be 0 to 2^53, not -5"),
            (["--save-every", "0", "--checkpoint", self.path("c")], "--save-every must be at least 1, not 0"),
            (["--batch-size", "0"], "--batch-size must be at least 1, not 0"),
            (["--export-inference", os.path.join(self.dir, "missing/dir/out.onnx")], "does not exist"),
        ]:
            with self.subTest(flags=flags):
                self.fails(self.train(*flags), fragment)

    def test_export_folder_checked_before_training(self):
        log = self.path("log.jsonl")
        self.fails(self.train("--log", log, "--export-inference", os.path.join(self.dir, "nope/out.onnx")), "does not exist")
        self.assertFalse(os.path.exists(log))  # nothing ran

    def test_amp_compile_numbers(self):
        for flags, fragment in [
            (["--lr", "nan"], "--lr must be a finite number of 0 or more, not nan"),
            (["--lr", "inf"], "--lr must be a finite number of 0 or more, not inf"),
            (["--lr", "-1"], "optimizer hyperparameters out of range"),
            (["--eps", "nan"], "optimizer hyperparameters out of range"),
            (["--loss-scale", "inf"], "loss scale options out of range"),
            (["--min-scale", "nan"], "loss scale options out of range"),
            (["--external-data-threshold", "-5"], "--external-data-threshold must be 0 or more bytes, not -5"),
        ]:
            with self.subTest(flags=flags):
                self.fails([AMP_COMPILE, MLP, "--loss", "cross_entropy", "--optimizer", "adam",
                            "-o", self.path("o.onnx"), *flags], fragment)


class Checkpoints(WithStep):
    """Checkpoints whose CRCs are right but whose contents are impossible."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.good = os.path.join(cls.shared.name, "good")
        r = run([AMP_TRAIN, cls.step, "--data", MLP_DATA, "--batch-size", "8", "--steps", "2", "-q",
                 "--checkpoint", cls.good])
        assert r.returncode == 0, r.stderr
        with np.load(os.path.join(cls.good, "checkpoint.npz")) as z:
            cls.arrays = {k: z[k] for k in z.files}

    def resume_with(self, changes=None):
        arrays = dict(self.arrays)
        for k, v in (changes or {}).items():
            if v is None:
                del arrays[k]
            else:
                arrays[k] = v
        d = self.path("ckpt")
        os.makedirs(d, exist_ok=True)
        np.savez(os.path.join(d, "checkpoint.npz"), **arrays)
        return [AMP_TRAIN, self.step, "--data", MLP_DATA, "--batch-size", "8", "--steps", "1", "-q",
                "--resume", d]

    def test_good_checkpoint_resumes(self):
        r = run(self.resume_with())
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("resumed from", r.stderr)
        self.assertIn("at step 2", r.stderr)

    def test_impossible_contents(self):
        w = self.arrays["head.weight"].copy()
        w.flat[3] = np.nan
        neg = self.arrays["head.weight.exp_avg_sq"].copy()
        neg.flat[0] = -1
        cases = [
            ({"__amp__.step": np.array(-1, np.int64)}, "__amp__.step is -1; it must be 0 to 2^53"),
            ({"__amp__.step": np.array(2**63 - 1, np.int64)}, "__amp__.step is 9223372036854775807"),
            ({"__amp__.step": np.array([1, 2], np.int64)}, "__amp__.step must be one int64"),
            ({"optimizer.step": np.array(np.nan, np.float32)}, "'optimizer.step' holds nan"),
            ({"optimizer.step": np.array(7.0, np.float32)}, "'optimizer.step' is 7 but the checkpoint is at step 2"),
            ({"optimizer.step": np.array(1.5, np.float32)}, "'optimizer.step' is 1.5; it must be a whole number"),
            ({"loss_scale": np.array(np.inf, np.float32)}, "'loss_scale' holds inf"),
            ({"loss_scale": np.array(0.0, np.float32)}, "'loss_scale' is 0; a loss scale must be finite and positive"),
            ({"loss_scale": np.array(-8.0, np.float32)}, "'loss_scale' is -8"),
            ({"head.weight": w}, "'head.weight' holds nan at element 3"),
            ({"head.weight.exp_avg_sq": neg}, "a second moment cannot be negative"),
            ({"head.weight": self.arrays["head.weight"].T.copy()}, "'head.weight' is float[64,10] but this step holds it as float[10,64]"),
            ({"head.weight": self.arrays["head.weight"].astype(np.float64)}, "'head.weight' is double[10,64]"),
            ({"head.bias": None}, "it has no value for 'head.bias'"),
            ({"stray": np.zeros(3, np.float32)}, "it holds 'stray', which this step has no state for"),
            ({"__amp__.meta": np.frombuffer(b"[1, 2", np.uint8)}, "__amp__.meta is not a JSON object"),
        ]
        for changes, fragment in cases:
            with self.subTest(fragment):
                self.fails(self.resume_with(changes), fragment)

    def test_refused_checkpoint_changes_nothing(self):
        # A refused resume must not write: the log and checkpoint stay absent.
        log = self.path("log.jsonl")
        cmd = self.resume_with({"loss_scale": np.array(0.0, np.float32)}) + ["--log", log]
        self.fails(cmd, "loss scale must be finite and positive")
        self.assertFalse(os.path.exists(log))


class StateRoles(Base):
    """The runtime and checkpoint validation find the loss scale by the name
    loss-scaling gave it, which is not 'loss_scale' when the model already
    uses that name (it read a buffer named 'loss_scale' and reported 1)."""

    def test_renamed_loss_scale(self):
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])
        outs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3]),
                helper.make_tensor_value_info("loss_scale", TensorProto.FLOAT, ["N", 8])]
        w = numpy_helper.from_array(np.random.default_rng(0).normal(size=(8, 3)).astype(np.float32), "w")
        nodes = [helper.make_node("MatMul", ["x", "w"], ["logits"]),
                 helper.make_node("Identity", ["x"], ["loss_scale"])]
        m = helper.make_model(helper.make_graph(nodes, "g", [x], outs, [w]),
                              opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
        step = self.path("step.onnx")
        r = run([AMP_COMPILE, self.write("m.onnx", m), "--loss", "cross_entropy", "--output", "logits",
                 "--optimizer", "adam", "--lr", "1e-3", "-o", step])
        self.assertEqual(r.returncode, 0, r.stderr)
        meta = json.loads({p.key: p.value for p in onnx.load(step).metadata_props}["amp.training"])
        self.assertNotEqual(meta["loss_scale"], "loss_scale")
        data = self.path("d.npz")
        rng = np.random.default_rng(1)
        np.savez(data, x=rng.normal(size=(16, 8)).astype(np.float32),
                 labels=rng.integers(0, 3, 16).astype(np.int64))
        log, ckpt = self.path("log.jsonl"), self.path("ckpt")
        r = run([AMP_TRAIN, step, "--data", data, "--batch-size", "4", "--steps", "2", "-q", "--log", log,
                 "--checkpoint", ckpt])
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(log) as f:
            self.assertEqual([json.loads(l)["loss_scale"] for l in f], [65536.0, 65536.0])
        # Checkpoint validation checks the renamed scale too.
        with np.load(os.path.join(ckpt, "checkpoint.npz")) as z:
            arrays = {k: z[k] for k in z.files}
        arrays[meta["loss_scale"]] = np.array(0.0, np.float32)
        np.savez(os.path.join(ckpt, "checkpoint.npz"), **arrays)
        self.fails([AMP_TRAIN, step, "--data", data, "--batch-size", "4", "--steps", "1", "-q",
                    "--resume", ckpt], f"'{meta['loss_scale']}' is 0; a loss scale must be finite and positive")


class NonFiniteFp32Steps(WithStep):
    """An FP32 step (no loss scaling) never writes non-finite state silently."""

    STEP_FLAGS = ["--optimizer", "sgd", "--lr", "0.05", "--opt-level", "O0"]

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        with np.load(MLP_DATA) as z:
            cls.data = {k: z[k] for k in z.files}

    def data_with_nan_batch(self, batch_index):
        d = {k: v.copy() for k, v in self.data.items()}
        d["input"][batch_index * 8:(batch_index + 1) * 8] = np.nan
        p = self.path("nan.npz")
        np.savez(p, **d)
        return p

    def test_nan_batch_stops_naming_the_step(self):
        data = self.data_with_nan_batch(2)
        ckpt = self.path("ckpt")
        line = self.fails([AMP_TRAIN, self.step, "--data", data, "--batch-size", "8", "--steps", "5", "-q",
                           "--checkpoint", ckpt, "--save-every", "1"],
                          "step 2: the loss (nan) is not finite, so the step was not applied")
        self.assertIn("--skip-nonfinite", line)
        # The last checkpoint is the one after step 1, and it is finite.
        with np.load(os.path.join(ckpt, "checkpoint.npz")) as z:
            self.assertEqual(int(z["__amp__.step"]), 2)
            for k in z.files:
                if z[k].dtype.kind == "f":
                    self.assertTrue(np.isfinite(z[k]).all(), k)

    def test_inf_gradient_is_named(self):
        # Finite inputs whose gradient overflows float32: a huge activation.
        d = {k: v.copy() for k, v in self.data.items()}
        d["input"][0:8] = 3e38
        p = self.path("big.npz")
        np.savez(p, **d)
        line = self.fails([AMP_TRAIN, self.step, "--data", p, "--batch-size", "8", "--steps", "1", "-q"],
                          "step 0: the ")
        self.assertIn("is not finite", line)

    def test_skip_nonfinite(self):
        data = self.data_with_nan_batch(1)
        log, ckpt = self.path("log.jsonl"), self.path("ckpt")
        r = run([AMP_TRAIN, self.step, "--data", data, "--batch-size", "8", "--steps", "3", "-q",
                 "--skip-nonfinite", "--log", log, "--checkpoint", ckpt, "--save-every", "1"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("1 skipped", r.stderr)
        with open(log) as f:
            rows = [json.loads(l) for l in f]
        self.assertEqual([row["skipped"] for row in rows], [False, True, False])
        self.assertIsNone(rows[1]["loss"])
        with np.load(os.path.join(ckpt, "checkpoint.npz")) as z:
            for k in z.files:
                if z[k].dtype.kind == "f":
                    self.assertTrue(np.isfinite(z[k]).all(), k)


if __name__ == "__main__":
    unittest.main(verbosity=2)
