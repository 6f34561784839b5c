#!/usr/bin/env python3
"""Data-parallel training under mpirun (2 ranks on this machine, loopback
only): a 2-rank run with batch B per rank follows the 1-rank run with batch 2B
within 1e-6 relative per step for SGD and Adam, through overflow-skipped steps
with dynamic loss scaling (the same steps skipped, the same scale); a
checkpoint written by 2 ranks resumes on 1; a step compiled without
--data-parallel is refused under mpirun; killing one rank ends the job with
an error instead of a hang."""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

import numpy as np

AMP_COMPILE = os.environ["AMP_COMPILE"]
AMP_TRAIN = os.environ["AMP_TRAIN"]
MODELS = os.environ["AMP_MODELS"]
MPIRUN = shutil.which("mpirun")
HAVE_MPI = os.environ.get("AMP_MPI", "") not in ("", "0", "OFF", "FALSE")
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMPI_MCA_rmaps_base_oversubscribe="1")
LOOPBACK = ["--mca", "btl", "self,tcp", "--mca", "btl_tcp_if_include", "lo",
            "--mca", "oob_tcp_if_include", "lo"]


def run(cmd, ok=True, timeout=300):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=ENV)
    if ok and r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def mpirun(ranks, args, **kw):
    return run([MPIRUN, "-np", str(ranks), *LOOPBACK, AMP_TRAIN, *args], **kw)


def log(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def read(path):
    with open(path, "rb") as f:
        return f.read()


@unittest.skipUnless(MPIRUN and HAVE_MPI, "needs Open MPI (mpirun, libopenmpi-dev) in the build")
class DataParallel(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="amp_dp_")
        d = np.load(os.path.join(MODELS, "mlp", "train.npz"))
        # Inputs x100: the gradients are large enough that a scale near the
        # float maximum overflows, so the first step is skipped and the scale
        # backs off (by 1000x, well clear of the edge where a rank's local
        # gradient overflows and the global one would not).
        cls.data = os.path.join(cls.dir, "big.npz")
        np.savez(cls.data, input=d["input"] * np.float32(100), labels=d["labels"])
        cls.steps = {}
        for name, flags in {"sgd": ["--optimizer", "sgd", "--lr", "0.001", "--momentum", "0.9"],
                            "adam": ["--optimizer", "adam", "--lr", "0.001"]}.items():
            path = os.path.join(cls.dir, f"{name}.onnx")
            run([AMP_COMPILE, os.path.join(MODELS, "mlp", "model.onnx"), "--loss", "cross_entropy",
                 *flags, "--opt-level", "O0", "--loss-scale", "dynamic", "--init-scale", "3e38",
                 "--backoff-factor", "0.001", "--data-parallel", "-o", path])
            cls.steps[name] = path

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def train(self, step, ranks, batch, steps, extra=(), name="log"):
        path = os.path.join(self.dir, f"{name}_{ranks}.jsonl")
        args = [step, "--data", self.data, "--batch-size", str(batch), "--steps", str(steps),
                "--log", path, "-q", *extra]
        if ranks == 1:
            run([AMP_TRAIN, *args])
        else:
            mpirun(ranks, args)
        return log(path)

    def assertFollows(self, one, two):
        self.assertEqual(len(one), len(two))
        for a, b in zip(one, two):
            self.assertEqual(a["step"], b["step"])
            self.assertEqual(a["skipped"], b["skipped"], a["step"])
            self.assertEqual(a["loss_scale"], b["loss_scale"], a["step"])
            self.assertLessEqual(abs(a["loss"] - b["loss"]), 1e-6 * abs(a["loss"]),
                                 f"step {a['step']}: {a['loss']} vs {b['loss']}")

    def test_two_ranks_follow_one_rank_with_twice_the_batch(self):
        for name, step in self.steps.items():
            with self.subTest(name):
                one = self.train(step, 1, 16, 8, name=name)
                two = self.train(step, 2, 8, 8, name=name)
                self.assertFollows(one, two)
                self.assertTrue(one[0]["skipped"])  # the overflow-skipped step
                self.assertGreater(sum(not r["skipped"] for r in one), 4)
                self.assertLess(one[-1]["loss"], one[1]["loss"])  # it trains

    def test_checkpoint_of_two_ranks_resumes_on_one(self):
        step = self.steps["adam"]
        straight = self.train(step, 1, 16, 8, name="straight")
        ckpt = os.path.join(self.dir, "ckpt2")
        first = self.train(step, 2, 8, 4, ["--checkpoint", ckpt], name="first")
        rest = self.train(step, 1, 16, 4, ["--resume", ckpt], name="rest")
        self.assertFollows(straight, first + rest)

    def test_step_without_data_parallel_is_refused(self):
        plain = os.path.join(self.dir, "plain.onnx")
        run([AMP_COMPILE, os.path.join(MODELS, "mlp", "model.onnx"), "--loss", "cross_entropy",
             "--optimizer", "sgd", "--lr", "0.01", "-o", plain])
        r = mpirun(2, [plain, "--data", self.data, "--batch-size", "8", "--steps", "2", "-q"],
                   ok=False, timeout=120)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("was not compiled with --data-parallel", r.stderr)

    def test_killing_a_rank_ends_the_job(self):
        log_path = os.path.join(self.dir, "long.jsonl")
        p = subprocess.Popen([MPIRUN, "-np", "2", *LOOPBACK, AMP_TRAIN, self.steps["sgd"], "--data",
                              self.data, "--batch-size", "8", "--steps", "100000000", "--log",
                              log_path, "-q", "--collective-timeout", "20"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
        try:
            deadline = time.time() + 60
            while time.time() < deadline and (not os.path.exists(log_path) or
                                              os.path.getsize(log_path) < 1000):
                time.sleep(0.1)
            self.assertLess(time.time(), deadline, "the 2-rank run did not start")
            victim = None
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    environ = read(f"/proc/{pid}/environ").split(b"\0")
                    cmdline = read(f"/proc/{pid}/cmdline")
                except OSError:
                    continue
                if b"amp-train" in cmdline and b"OMPI_COMM_WORLD_RANK=1" in environ:
                    victim = int(pid)
            self.assertIsNotNone(victim, "rank 1's process not found")
            start = time.time()
            os.kill(victim, signal.SIGKILL)
            out, err = p.communicate(timeout=90)
            self.assertNotEqual(p.returncode, 0)
            self.assertLess(time.time() - start, 60, "the job did not end after a rank died")
        finally:
            if p.poll() is None:
                p.kill()
                p.communicate()


if __name__ == "__main__":
    unittest.main(verbosity=2)
