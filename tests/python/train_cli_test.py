#!/usr/bin/env python3
"""amp-train on the CPU runtime: the shipped models reproduce PyTorch's
trajectories (reference.json), a resumed run matches an uninterrupted one
bit for bit, a checkpoint write killed midway leaves the last good
checkpoint loadable, overflow skips exactly the step it happens in, and bad
input gets one clear error line."""
import json
import re
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import numpy as np
import onnx
import onnxruntime as ort

AMP_COMPILE = os.environ["AMP_COMPILE"]
AMP_TRAIN = os.environ["AMP_TRAIN"]
MODELS = os.environ["AMP_MODELS"]
# Under AddressSanitizer every run is several times slower: the sanitizer
# build checks the runtime's memory safety on the MLP, the normal build
# checks every model's numbers.
SANITIZED = os.environ.get("AMP_SANITIZED", "0") not in ("", "0")
MODEL_SET = ("mlp",) if SANITIZED else ("mlp", "cnn", "tfm")


def run(cmd, ok=True, timeout=300):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if ok and r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{r.stderr}")
    return r


def reference(model):
    with open(os.path.join(MODELS, model, "reference.json")) as f:
        return json.load(f)


def batch_size(model):
    return str(np.load(os.path.join(MODELS, model, "data.npz"))["x0"].shape[0])


def compile_args(model, traj):
    hp = reference(model)["optimizers"]["sgd" if traj.startswith("sgd") else "adam"]
    if traj.startswith("sgd"):
        args = ["--optimizer", "sgd", "--lr", str(hp["lr"]), "--momentum", str(hp["momentum"]),
                "--dampening", str(hp["dampening"]), "--weight-decay", str(hp["weight_decay"])]
    else:
        args = ["--optimizer", "adam", "--lr", str(hp["lr"]),
                "--betas", f"{hp['betas'][0]},{hp['betas'][1]}", "--eps", str(hp["eps"]),
                "--weight-decay", str(hp["weight_decay"])]
    # fp32 trajectories: no precision change; AMP: the default O1 + dynamic scaling.
    return args + (["--opt-level", "O0"] if traj.endswith("fp32") else [])


def read_log(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


class TrainCli(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def compile(self, model, traj, name="step.onnx"):
        out = os.path.join(self.dir, name)
        run([AMP_COMPILE, os.path.join(MODELS, model, "model.onnx"), "--loss", "cross_entropy",
             "-o", out, *compile_args(model, traj)])
        return out

    def train(self, step, model, *extra, ok=True, data=None):
        data = data or os.path.join(MODELS, model, "train.npz")
        return run([AMP_TRAIN, step, "--data", data, "--batch-size", batch_size(model), *extra], ok=ok)

    def check_trajectory(self, model, traj, tol):
        ref = reference(model)
        step = self.compile(model, traj)
        log = os.path.join(self.dir, "log.jsonl")
        self.train(step, model, "--steps", str(ref["steps"]), "--log", log)
        got = read_log(log)
        exp = ref["trajectories"][traj]
        self.assertEqual([g["step"] for g in got], list(range(ref["steps"])))
        rel = max(abs(g["loss"] - e) / abs(e) for g, e in zip(got, exp["losses"]))
        self.assertLessEqual(rel, tol, f"{model} {traj}: {[g['loss'] for g in got]} vs {exp['losses']}")
        self.assertEqual([g["loss_scale"] for g in got], exp["scales"])
        self.assertFalse(any(g["skipped"] for g in got))
        return rel

    def test_trajectories(self):
        worst = {}
        for model in MODEL_SET:
            for traj, tol in (("sgd_fp32", 1e-4), ("adam_fp32", 1e-4), ("adam_amp", 2e-3)):
                with self.subTest(model=model, traj=traj):
                    worst[f"{model}/{traj}"] = self.check_trajectory(model, traj, tol)
        print("largest relative loss difference:", json.dumps(worst, indent=1), file=sys.stderr)

    def test_resume_is_bit_identical(self):
        for model in ("cnn",) if SANITIZED else ("cnn", "tfm"):
            with self.subTest(model=model):
                step = self.compile(model, "adam_amp", f"{model}.onnx")
                full, half = os.path.join(self.dir, f"{model}_full"), os.path.join(self.dir, f"{model}_half")
                log_full, log_half = os.path.join(self.dir, "full.jsonl"), os.path.join(self.dir, "half.jsonl")
                self.train(step, model, "--steps", "10", "--checkpoint", full, "--log", log_full,
                           "--shuffle", "--seed", "7")
                self.train(step, model, "--steps", "4", "--checkpoint", half, "--log", log_half,
                           "--shuffle", "--seed", "7")
                self.train(step, model, "--steps", "6", "--resume", half, "--checkpoint", half,
                           "--log", log_half, "--shuffle", "--seed", "7")
                a = np.load(os.path.join(full, "checkpoint.npz"))
                b = np.load(os.path.join(half, "checkpoint.npz"))
                self.assertEqual(sorted(a.files), sorted(b.files))
                for k in a.files:
                    if k != "__amp__.meta":
                        self.assertTrue(np.array_equal(a[k], b[k]), f"{model}: {k} differs after resume")
                self.assertEqual(int(a["__amp__.step"]), 10)
                self.assertEqual([r["loss"] for r in read_log(log_full)],
                                 [r["loss"] for r in read_log(log_half)])

    def test_killed_checkpoint_write_leaves_the_last_one_loadable(self):
        step = self.compile("cnn", "adam_amp")
        ckpt = os.path.join(self.dir, "ckpt")
        self.train(step, "cnn", "--steps", "1", "--checkpoint", ckpt)
        path = os.path.join(ckpt, "checkpoint.npz")
        kills = 0
        delays = (0.3, 0.6, 0.9) if SANITIZED else (0.05, 0.1, 0.15, 0.2, 0.3, 0.4)
        for delay in delays:
            p = subprocess.Popen([AMP_TRAIN, step, "--data", os.path.join(MODELS, "cnn", "train.npz"),
                                  "--batch-size", batch_size("cnn"), "--steps", "100000", "--quiet",
                                  "--checkpoint", ckpt, "--save-every", "1"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(delay)
            p.send_signal(signal.SIGKILL)
            p.wait()
            kills += 1
            with np.load(path) as z:  # the last complete checkpoint
                self.assertIn("__amp__.step", z.files)
                for k in z.files:
                    z[k]  # every member reads (CRC checked)
            self.train(step, "cnn", "--steps", "1", "--resume", ckpt)
        # A torn temporary file from a killed write is ignored and replaced.
        with open(path + ".tmp", "wb") as f:
            f.write(b"PK\x03\x04 torn")
        self.train(step, "cnn", "--steps", "1", "--resume", ckpt, "--checkpoint", ckpt)
        self.assertFalse(os.path.exists(path + ".tmp"))
        self.assertEqual(kills, len(delays))

    def test_overflow_skips_that_step_and_halves_the_scale(self):
        step = self.compile("mlp", "adam_amp")
        d = dict(np.load(os.path.join(MODELS, "mlp", "train.npz")))
        b = int(batch_size("mlp"))
        d["input"] = d["input"].copy()
        d["input"][b:2 * b] *= 1e6  # batch 1 overflows fp16 in the first half-precision GEMM
        data = os.path.join(self.dir, "overflow.npz")
        np.savez(data, **d)
        log = os.path.join(self.dir, "log.jsonl")
        self.train(step, "mlp", "--steps", "4", "--log", log, data=data)
        got = read_log(log)
        self.assertEqual([g["skipped"] for g in got], [False, True, False, False])
        self.assertEqual([g["loss_scale"] for g in got], [65536.0, 65536.0, 32768.0, 32768.0])

    def test_fused_optimizer_is_bit_identical(self):
        # fuse-optimizer's one multi-tensor kernel against the ~20 standard ops
        # per parameter it replaces: every state array equal, bit for bit,
        # through a skipped (overflowing) step too.
        d = dict(np.load(os.path.join(MODELS, "tfm", "train.npz")))
        d["input"] = d["input"].copy()
        d["input"][4:8] *= 1e6
        data = os.path.join(self.dir, "overflow.npz")
        np.savez(data, **d)
        for kind in ("adamw",) if SANITIZED else ("adam", "adamw"):
            with self.subTest(kind=kind):
                step = os.path.join(self.dir, f"{kind}.onnx")
                run([AMP_COMPILE, os.path.join(MODELS, "tfm", "model.onnx"), "--loss", "cross_entropy",
                     "--optimizer", kind, "--lr", "1e-3", "--weight-decay", "0.01", "-o", step])
                states, nodes = {}, {}
                for fuse in ("off", "on"):
                    ckpt = os.path.join(self.dir, f"{kind}_{fuse}")
                    log = os.path.join(self.dir, f"{kind}_{fuse}.jsonl")
                    # (--fuse-elementwise off: the node counts are fuse-optimizer's alone)
                    r = self.train(step, "tfm", "--steps", "8", "--fuse-optimizer", fuse, "--checkpoint", ckpt,
                                   "--log", log, "--fuse-elementwise", "off", data=data)
                    nodes[fuse] = int(re.search(r"(\d+) nodes;", r.stderr).group(1))
                    self.assertTrue(read_log(log)[1]["skipped"])
                    with np.load(os.path.join(ckpt, "checkpoint.npz")) as z:
                        states[fuse] = {k: z[k] for k in z.files if k != "__amp__.meta"}
                # The fused nodes really replaced the per-parameter ops (tfm has
                # 30 parameters, each with ~20 optimizer and 4 unscale ops).
                self.assertLess(nodes["on"], nodes["off"] - 500, nodes)
                self.assertEqual(sorted(states["on"]), sorted(states["off"]))
                for k in states["off"]:
                    self.assertTrue(np.array_equal(states["on"][k], states["off"][k]), f"{kind}: {k}")

    def test_cost_report(self):
        # --target specializes the step and puts its cost in the report; the
        # CPU backend has every kernel, the CUDA one not yet cnn's Conv.
        src = os.path.join(MODELS, "cnn", "model.onnx")
        name = onnx.load(src).graph.input[0].type.tensor_type.shape.dim[0].dim_param
        costs = {}
        for target in ("cpu", "cuda"):
            rep = os.path.join(self.dir, f"cost_{target}.json")
            r = run([AMP_COMPILE, src, "--loss", "cross_entropy", "--optimizer", "adam",
                     "--bind-dim", f"{name}=4", "--target", target, "--report-json", rep])
            self.assertIn(f"amp-compile: {target} step: ", r.stderr)
            costs[target] = json.load(open(rep))["cost"]
        cpu, cuda = costs["cpu"], costs["cuda"]
        self.assertEqual(cpu["ops_without_kernel"], [])
        # A build without the CUDA toolkit (the sanitizer build) cannot read
        # the CUDA kernel table, and says so; the cost is there either way.
        if cuda["ops_without_kernel"] is None:
            self.assertIn("no CUDA support", cuda["kernel_table"])
        else:
            self.assertIn("Conv", cuda["ops_without_kernel"])
        for c in (cpu, cuda):
            self.assertGreater(c["launches"], 10)
            self.assertGreater(c["flops"], 0)
            self.assertEqual(c["peak_bytes"], c["arena_bytes"] + c["state_bytes"] + c["input_bytes"])
            self.assertAlmostEqual(sum(k["predicted_ms"] for k in c["top_kernels"][:1]),
                                   c["top_kernels"][0]["predicted_ms"])
            self.assertLessEqual(len(c["top_kernels"]), 10)
        # CUDA fuses the optimizer (as amp-train does there): fewer launches.
        self.assertLess(cuda["launches"], cpu["launches"])
        # Without every dim bound there is no cost to give.
        r = run([AMP_COMPILE, src, "--loss", "cross_entropy", "--lr", "0.01", "--target", "cpu", "--report"],
                ok=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("--target needs every input dim fixed", r.stderr)

    def test_eval_and_export_inference(self):
        step = self.compile("cnn", "adam_amp")
        out = os.path.join(self.dir, "trained.onnx")
        r = self.train(step, "cnn", "--steps", "12", "--eval", "--export-inference", out)
        self.assertRegex(r.stdout, r"eval: \d+ samples, loss [0-9.]+, accuracy [0-9.]+")
        onnx.checker.check_model(out, full_check=True)
        m = onnx.load(out)
        self.assertEqual(len(m.training_info), 0)
        d = np.load(os.path.join(MODELS, "cnn", "data.npz"))
        sess = ort.InferenceSession(out, providers=["CPUExecutionProvider"])
        logits = sess.run(None, {sess.get_inputs()[0].name: d["x0"]})[0]
        self.assertEqual(logits.shape[0], d["x0"].shape[0])
        self.assertTrue(np.all(np.isfinite(logits)))
        # The weights are the trained ones, not the initial ones.
        init = {t.name: onnx.numpy_helper.to_array(t) for t in onnx.load(step).graph.initializer}
        trained = {t.name: onnx.numpy_helper.to_array(t) for t in m.graph.initializer}
        changed = [k for k in trained if k in init and trained[k].dtype.kind == "f"
                   and not np.array_equal(trained[k], init[k])]
        self.assertTrue(changed)

    def test_amp_run_errors(self):
        amp_run = os.path.join(os.path.dirname(AMP_TRAIN), "amp-run")
        cases = [([], "give MODEL.onnx --test-dir DIR, or --suite DIR"),
                 (["--suite", os.path.join(self.dir, "missing")], "no test suite folder"),
                 (["--suite", self.dir, "--expect-fail", os.path.join(self.dir, "x.txt")], "cannot open")]
        for args, fragment in cases:
            with self.subTest(fragment=fragment):
                r = run([amp_run, *args], ok=False)
                self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
                self.assertIn(fragment, r.stderr)
        # A model without data sets is a skip, not a pass; one that does not parse is a failure.
        bad = os.path.join(self.dir, "suite", "test_bad")
        os.makedirs(os.path.join(bad, "test_data_set_0"))
        with open(os.path.join(bad, "model.onnx"), "wb") as f:
            f.write(b"not a model")
        empty = os.path.join(self.dir, "suite", "test_empty")
        os.makedirs(empty)
        with open(os.path.join(empty, "model.onnx"), "wb") as f:
            f.write(b"x")
        r = run([amp_run, "--suite", os.path.join(self.dir, "suite")], ok=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("FAIL test_bad:", r.stdout)
        self.assertIn("SKIP test_empty: no test_data_set_* folders", r.stdout)
        self.assertIn("0 passed, 1 failed, 0 expected failures, 1 skipped (of 2)", r.stdout)

    @unittest.skipUnless(shutil.which("script"), "util-linux's script (a pseudo-terminal) is not installed")
    def test_progress_bar_on_a_terminal(self):
        step = self.compile("mlp", "sgd_fp32")
        cmd = " ".join([AMP_TRAIN, step, "--data", os.path.join(MODELS, "mlp", "train.npz"),
                        "--batch-size", "16", "--steps", "5"])
        r = subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True, timeout=120)
        out = r.stdout.decode(errors="replace")  # bytes: text mode would turn \r into \n
        self.assertEqual(r.returncode, 0, out)
        self.assertIn("\r[", out)
        self.assertRegex(out, r"5/5 +[0-9.]+ steps/s +loss [0-9.]+ +scale 1 +skipped 0")

    def test_progress_bar_only_on_a_terminal(self):
        step = self.compile("mlp", "sgd_fp32")
        r = self.train(step, "mlp", "--steps", "3")
        self.assertNotIn("\r", r.stderr)
        self.assertIn("3 steps on cpu", r.stderr)
        self.assertIn("memory plan: arena", r.stderr)

    def test_errors(self):
        step = self.compile("mlp", "sgd_fp32")
        d = dict(np.load(os.path.join(MODELS, "mlp", "train.npz")))
        cases = []
        bad = os.path.join(self.dir, "nolabels.npz")
        np.savez(bad, input=d["input"])
        cases.append(([step, "--data", bad], "has no array 'labels'"))
        bad = os.path.join(self.dir, "int32.npz")
        np.savez(bad, input=d["input"], labels=d["labels"].astype(np.int32))
        cases.append(([step, "--data", bad, "--batch-size", "16"], "input 'labels' is int32; the model expects int64"))
        train = os.path.join(MODELS, "mlp", "train.npz")
        cases.append(([step, "--data", train, "--batch-size", "100000"], "larger than"))
        cases.append(([os.path.join(MODELS, "mlp", "model.onnx"), "--data", train], "not a training step"))
        cases.append(([step, "--data", train, "--batch-size", "16", "--resume", self.dir], "no checkpoint"))
        cases.append(([step, "--data", os.path.join(self.dir, "missing.npz")], "missing.npz"))
        cases.append(([step, "--data", train, "--batch-size", "16", "--device", "cuda"], "cuda"))
        # A checkpoint of another model names what it lacks.
        other = os.path.join(self.dir, "other")
        tfm_step = os.path.join(self.dir, "tfm.onnx")
        run([AMP_COMPILE, os.path.join(MODELS, "tfm", "model.onnx"), "--loss", "cross_entropy",
             "--optimizer", "adam", "-o", tfm_step])
        self.train(tfm_step, "tfm", "--steps", "1", "--checkpoint", other)
        cases.append(([step, "--data", train, "--batch-size", "16", "--resume", other],
                      "it was saved from another model"))
        # A checkpoint with one flipped byte is refused, not loaded.
        ckpt = os.path.join(self.dir, "ckpt")
        self.train(step, "mlp", "--steps", "1", "--checkpoint", ckpt)
        path = os.path.join(ckpt, "checkpoint.npz")
        with open(path, "rb") as f:
            data = bytearray(f.read())
        data[len(data) // 2] ^= 0xFF
        with open(path, "wb") as f:
            f.write(data)
        cases.append(([step, "--data", train, "--batch-size", "16", "--resume", ckpt], "fails its CRC check"))
        for args, fragment in cases:
            with self.subTest(fragment=fragment):
                r = run([AMP_TRAIN, *args], ok=False)
                self.assertEqual(r.returncode, 1, r.stderr)
                self.assertIn(fragment, r.stderr)
                self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
                self.assertTrue(r.stderr.startswith("amp-train: error:"), r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
