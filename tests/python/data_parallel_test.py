#!/usr/bin/env python3
"""Data-parallel training, 2 ranks on this machine (loopback only), launched
both ways amp-train joins a job: under mpirun (MPI), and as torchrun starts
ranks (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT; amp's TCP communicator).
For each: a 2-rank run with batch B per rank follows the 1-rank run with
batch 2B within 1e-6 relative per step for SGD and Adam, through
overflow-skipped steps with dynamic loss scaling (the same steps skipped, the
same scale); a checkpoint written by 2 ranks resumes on 1; a step compiled
without --data-parallel is refused; killing one rank ends the job with an
error instead of a hang. And the Python package's Session with a
ProcessGroup follows the 1-rank run the same way."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
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


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rank_env(rank, ranks, port):
    return dict(ENV, RANK=str(rank), WORLD_SIZE=str(ranks), LOCAL_RANK=str(rank),
                MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))


def start_ranks(ranks, cmd):
    """One process per rank with torchrun's variables, as torchrun starts them."""
    port = free_port()
    return [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=rank_env(r, ranks, port)) for r in range(ranks)]


def torchrun(ranks, args, ok=True, timeout=300, cmd=None):
    procs = start_ranks(ranks, cmd or [AMP_TRAIN, *args])
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=timeout))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    rc = next((p.returncode for p in procs if p.returncode != 0), 0)
    r = subprocess.CompletedProcess(cmd or args, rc, "".join(o for o, _ in outs),
                                    "".join(e for _, e in outs))
    if ok and rc != 0:
        raise AssertionError(f"{' '.join(args)} on {ranks} ranks failed ({rc}):\n{r.stdout}\n"
                             f"{r.stderr}")
    return r


def log(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def read(path):
    with open(path, "rb") as f:
        return f.read()


def prepare(folder):
    """The data and the SGD and Adam steps every test trains, in `folder`."""
    d = np.load(os.path.join(MODELS, "mlp", "train.npz"))
    # Inputs x100: the gradients are large enough that a scale near the
    # float maximum overflows, so the first step is skipped and the scale
    # backs off (by 1000x, well clear of the edge where a rank's local
    # gradient overflows and the global one would not).
    data = os.path.join(folder, "big.npz")
    np.savez(data, input=d["input"] * np.float32(100), labels=d["labels"])
    steps = {}
    for name, flags in {"sgd": ["--optimizer", "sgd", "--lr", "0.001", "--momentum", "0.9"],
                        "adam": ["--optimizer", "adam", "--lr", "0.001"]}.items():
        path = os.path.join(folder, f"{name}.onnx")
        run([AMP_COMPILE, os.path.join(MODELS, "mlp", "model.onnx"), "--loss", "cross_entropy",
             *flags, "--opt-level", "O0", "--loss-scale", "dynamic", "--init-scale", "3e38",
             "--backoff-factor", "0.001", "--data-parallel", "-o", path])
        steps[name] = path
    return data, steps


class DataParallelBase:
    """The tests, for a way of starting the ranks (`launch`, `start_two`)."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="amp_dp_")
        cls.data, cls.steps = prepare(cls.dir)

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
            self.launch(ranks, args)
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
        r = self.launch(2, [plain, "--data", self.data, "--batch-size", "8", "--steps", "2", "-q"],
                        ok=False, timeout=120)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("was not compiled with --data-parallel", r.stderr)

    def test_killing_a_rank_ends_the_job(self):
        log_path = os.path.join(self.dir, "long.jsonl")
        args = [self.steps["sgd"], "--data", self.data, "--batch-size", "8", "--steps",
                "100000000", "--log", log_path, "-q", "--collective-timeout", "20"]
        procs, victim = self.start_two(args)
        try:
            deadline = time.time() + 60
            while time.time() < deadline and (not os.path.exists(log_path) or
                                              os.path.getsize(log_path) < 1000):
                time.sleep(0.1)
            self.assertLess(time.time(), deadline, "the 2-rank run did not start")
            pid = victim()
            self.assertIsNotNone(pid, "rank 1's process not found")
            start = time.time()
            os.kill(pid, signal.SIGKILL)
            for p in procs:
                p.communicate(timeout=90)
            self.assertNotEqual(procs[0].returncode, 0)
            self.assertLess(time.time() - start, 60, "the job did not end after a rank died")
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.communicate()


@unittest.skipUnless(MPIRUN and HAVE_MPI, "needs Open MPI (mpirun, libopenmpi-dev) in the build")
class UnderMpirun(DataParallelBase, unittest.TestCase):
    def launch(self, ranks, args, **kw):
        return mpirun(ranks, args, **kw)

    def start_two(self, args):
        p = subprocess.Popen([MPIRUN, "-np", "2", *LOOPBACK, AMP_TRAIN, *args],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)

        def victim():
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    environ = read(f"/proc/{pid}/environ").split(b"\0")
                    cmdline = read(f"/proc/{pid}/cmdline")
                except OSError:
                    continue
                if b"amp-train" in cmdline and b"OMPI_COMM_WORLD_RANK=1" in environ:
                    return int(pid)
            return None
        return [p], victim


class TorchrunStyle(DataParallelBase, unittest.TestCase):
    def launch(self, ranks, args, **kw):
        return torchrun(ranks, args, **kw)

    def start_two(self, args):
        procs = start_ranks(2, [AMP_TRAIN, *args])
        return procs, lambda: procs[1].pid

    def test_a_rank_that_never_starts_is_an_error(self):
        r = subprocess.run([AMP_TRAIN, self.steps["sgd"], "--data", self.data, "--batch-size", "8",
                            "--steps", "2", "-q", "--collective-timeout", "1"],
                           capture_output=True, text=True, timeout=60,
                           env=rank_env(0, 2, free_port()))
        self.assertEqual(r.returncode, 1)
        self.assertIn("rank 1 did not connect", r.stderr)


SESSION_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import amp
    step, data, batch, steps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    pg = amp.ProcessGroup.from_env(timeout=60)
    d = np.load(data)
    s = amp.Session(step, process_group=pg)
    out = []
    for k in range(steps):
        lo = k * batch * pg.size + pg.rank * batch
        out.append(s.step(input=d["input"][lo:lo + batch], labels=d["labels"][lo:lo + batch]))
    print(json.dumps({"rank": pg.rank, "size": pg.size, "launcher": pg.launcher,
                      "mean": pg.all_reduce_mean([pg.rank + 1.0]), "steps": out}))
""")


def have_package():
    return subprocess.run([sys.executable, "-c", "import amp"], capture_output=True).returncode == 0


@unittest.skipUnless(have_package(), "the Python package is not built (needs nanobind)")
class SessionWithProcessGroup(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="amp_dp_py_")
        cls.data, cls.steps = prepare(cls.dir)
        cls.script = os.path.join(cls.dir, "session.py")
        with open(cls.script, "w") as f:
            f.write(SESSION_SCRIPT)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def test_two_sessions_follow_one_with_twice_the_batch(self):
        for name, step in self.steps.items():
            with self.subTest(name):
                one = json.loads(run([sys.executable, self.script, step, self.data, "16", "4"])
                                 .stdout)
                r = torchrun(2, [], cmd=[sys.executable, self.script, step, self.data, "8", "4"])
                two = [json.loads(line) for line in r.stdout.splitlines()]
                self.assertEqual((one["size"], one["launcher"]), (1, "none"))
                self.assertEqual(sorted(t["rank"] for t in two), [0, 1])
                self.assertTrue(one["steps"][0]["skipped"])  # the overflow-skipped step
                for t in two:
                    self.assertEqual(t["mean"], [1.5])
                    self.assertEqual(len(t["steps"]), 4)
                    for k, (a, b) in enumerate(zip(one["steps"], t["steps"])):
                        self.assertEqual(a["skipped"], b["skipped"], k)
                        self.assertEqual(a["loss_scale"], b["loss_scale"], k)
                        self.assertLessEqual(abs(a["loss"] - b["loss"]), 1e-6 * abs(a["loss"]),
                                             f"step {k}: {a['loss']} vs {b['loss']}")

    def test_a_step_without_data_parallel_is_refused(self):
        plain = os.path.join(self.dir, "plain.onnx")
        run([AMP_COMPILE, os.path.join(MODELS, "mlp", "model.onnx"), "--loss", "cross_entropy",
             "--optimizer", "sgd", "--lr", "0.01", "-o", plain])
        r = torchrun(2, [], ok=False, timeout=120,
                     cmd=[sys.executable, self.script, plain, self.data, "8", "1"])
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("was not compiled with data_parallel", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
