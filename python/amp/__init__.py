"""amp: mixed-precision training of ONNX models, from Python.

    import amp
    step = amp.compile("model.onnx", loss="cross_entropy", optimizer="adam", lr=1e-3)
    sess = amp.Session(step, device="cpu")          # or "cuda"
    for x, y in loader:                             # numpy arrays or DLPack tensors (torch)
        out = sess.step(input=x, labels=y)          # {"loss", "loss_scale", "skipped"}
    sess.save_checkpoint("ckpt")                    # amp-train --resume ckpt continues it
    sess.export_inference("trained.onnx")

`compile` takes amp-compile's options under the same names (--opt-level is
opt_level, --loss-scale is loss_scale, ...). Bad input raises
amp.InvalidInputError (a ValueError) with amp's message; a fault of the
runtime raises amp.AmpRuntimeError (a RuntimeError).
"""

import json
import os

from . import _amp
from ._amp import AmpRuntimeError, InvalidInputError

__all__ = ["compile", "Session", "TrainingStep", "ProcessGroup", "InvalidInputError", "AmpRuntimeError",
           "__version__"]
__version__ = _amp.version()

_DTYPES = {1: "float32", 2: "uint8", 3: "int8", 5: "int16", 6: "int32", 7: "int64", 9: "bool",
           10: "float16", 11: "float64", 16: "bfloat16"}


class TrainingStep:
    """A compiled model (a training step, or an inference model without a loss)."""

    def __init__(self, compiled):
        self._compiled = compiled

    @property
    def onnx_bytes(self):
        """The compiled model as serialized ONNX (what amp-compile -o writes)."""
        return self._compiled.onnx

    @property
    def log(self):
        """What amp-compile prints while compiling, one line per stage."""
        return self._compiled.log

    def report(self):
        """The precision report (amp-compile --report-json) as a dict."""
        return json.loads(self._compiled.report_json)

    def save(self, path):
        """Writes the compiled model to `path` (atomically), for amp-train or amp.Session."""
        self._compiled.save(os.fspath(path))


def _model_source(model):
    if isinstance(model, (str, os.PathLike)):
        return os.fspath(model), None
    if isinstance(model, (bytes, bytearray, memoryview)):
        return None, bytes(model)
    if hasattr(model, "SerializeToString"):  # an onnx.ModelProto
        return None, model.SerializeToString()
    raise TypeError(f"amp.compile takes a path, bytes or an onnx.ModelProto, not {type(model).__name__}")


def compile(model, *, loss=None, label="labels", label_dtype="int64", output="", freeze="", trainable="",
            train_mode=False,
            seed=0, optimizer="sgd", lr=None, momentum=0.0, dampening=0.0, nesterov=False,
            weight_decay=0.0, betas=(0.9, 0.999), eps=1e-8, opt_level="O1", dtype="fp16",
            fp32_ops=(), half_ops=(), fp32_nodes="", policy=None, keep_batchnorm_fp32=False,
            loss_scale="auto", init_scale=65536.0, growth_factor=2.0, backoff_factor=0.5,
            growth_interval=2000, min_scale=0.0, max_scale=0.0, emit="training_info",
            bind_dims=None):
    """Compiles an ONNX model (a path, bytes or an onnx.ModelProto) as amp-compile does.

    With `loss` (cross_entropy, mse, bce_with_logits, l1, or model for a model
    that returns its loss) the result is a training step: the loss, the
    backward graph, the optimizer (sgd, adam, adamw) on FP32 master weights
    (`lr` defaults as in torch.optim: 1e-3 for adam and adamw; sgd needs it),
    mixed precision at `opt_level` in `dtype`, and loss scaling ("auto" is
    dynamic except at O0, "dynamic", "none" or a number). Without it, an
    inference model with the precision passes applied.
    """
    o = _amp.CompileOptions()
    o.loss = loss or ""
    o.label, o.label_dtype, o.output, o.freeze, o.seed = label, label_dtype, output, freeze, seed
    o.trainable = trainable
    o.train_mode = train_mode
    o.optimizer, o.momentum, o.dampening = optimizer, momentum, dampening
    if lr is not None:
        o.lr = lr
    o.nesterov, o.weight_decay = nesterov, weight_decay
    if len(betas) != 2:
        raise InvalidInputError(f"betas must be two numbers, not {betas!r}")
    o.beta1, o.beta2 = betas
    o.eps = eps
    o.opt_level, o.dtype = opt_level, dtype
    o.fp32_ops, o.half_ops, o.fp32_nodes = list(fp32_ops), list(half_ops), fp32_nodes
    o.policy_file = os.fspath(policy) if policy is not None else ""
    o.keep_batchnorm_fp32 = keep_batchnorm_fp32
    o.loss_scale = str(loss_scale)
    o.init_scale, o.growth_factor, o.backoff_factor = init_scale, growth_factor, backoff_factor
    o.growth_interval, o.min_scale, o.max_scale = growth_interval, min_scale, max_scale
    o.emit = emit
    o.bind_dims = dict(bind_dims or {})
    path, data = _model_source(model)
    compiled = _amp.compile_path(path, o) if path is not None else _amp.compile_bytes(data, o)
    return TrainingStep(compiled)


class ProcessGroup:
    """The ranks of a data-parallel job, for a step compiled with data_parallel=True.

    Start one process per rank with mpirun, or with torchrun's variables
    (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT, LOCAL_RANK) as torchrun or a
    script sets them; alone, this is rank 0 of 1. Pass it to Session: the
    state starts as rank 0's, and every step averages the gradients over the
    ranks, each rank feeding its own slice of the global batch. Joining and
    every collective raise after `timeout` seconds if a rank stops. For
    sessions on device="cuda" the gradients move over NCCL (each rank on the
    GPU of its local rank); the group's device must be the session's. One
    group per process.

        pg = amp.ProcessGroup.from_env()
        s = amp.Session(step, process_group=pg)
        s.step(input=x[pg.rank::pg.size], labels=y[pg.rank::pg.size])
    """

    def __init__(self, group):
        self._g = group

    @classmethod
    def from_env(cls, timeout=300.0, device="cpu"):
        return cls(_amp.ProcessGroup.from_env(float(timeout), device))

    @property
    def rank(self):
        return self._g.rank

    @property
    def size(self):
        return self._g.size

    @property
    def local_rank(self):
        """This rank's index on its machine (the GPU it uses)."""
        return self._g.local_rank

    @property
    def device(self):
        return self._g.device

    @property
    def launcher(self):
        """"mpirun", "torchrun-style variables" or "none"."""
        return self._g.launcher

    def all_reduce_mean(self, values):
        """The mean over the ranks of a list (or 1-D array) of floats, as a list."""
        return self._g.all_reduce_mean([float(v) for v in values])


class Session:
    """Runs a compiled step (or inference model) on "cpu" or "cuda".

    `step` is a TrainingStep, a path to a compiled model, or its bytes.
    `non_finite` decides what an FP32 step (no loss scaling) does when its
    loss or gradients are not finite: "error" (raise; the state is as before),
    "skip" or "apply". `fetch` names intermediates to keep for `fetch()`.
    `process_group` (a ProcessGroup) makes the steps of a data-parallel step
    average their gradients over its ranks.
    """

    def __init__(self, step, device="cpu", *, fuse_optimizer=True, non_finite="error", fetch=(),
                 process_group=None):
        o = _amp.SessionOptions()
        if process_group is not None:
            if not isinstance(process_group, ProcessGroup):
                raise TypeError(f"process_group must be an amp.ProcessGroup, not "
                                f"{type(process_group).__name__}")
            o.process_group = process_group._g
        o.device = device
        o.fuse_optimizer = fuse_optimizer
        o.fetch = list(fetch)
        o.set_non_finite(non_finite)
        self._options = (device, fuse_optimizer, non_finite)
        if isinstance(step, TrainingStep):
            self._source = step.onnx_bytes
            self._s = _amp.Session.create(step._compiled, o)
        elif isinstance(step, (str, os.PathLike)):
            self._source = os.fspath(step)
            self._s = _amp.Session.open(self._source, o)
        elif isinstance(step, (bytes, bytearray, memoryview)):
            self._source = bytes(step)
            self._s = _amp.Session.from_bytes(self._source, o)
        else:
            raise TypeError(f"amp.Session takes a TrainingStep, a path or bytes, not {type(step).__name__}")
        self._eval = None

    @property
    def device(self):
        return self._s.device

    @property
    def is_training(self):
        return self._s.is_training

    @property
    def step_count(self):
        """Steps run so far (a checkpoint keeps it)."""
        return self._s.step_count

    @property
    def lr(self):
        return self._s.lr

    def set_lr(self, lr):
        """The learning rate of the next steps (default: the compiled one)."""
        self._s.set_lr(float(lr))

    def inputs(self):
        """[{"name", "dtype", "shape"}]: the inputs a step binds (lr is bound by the session)."""
        return [dict(i, dtype=_DTYPES.get(i["dtype"], i["dtype"])) for i in self._s.inputs()]

    def outputs(self):
        """The loss (for a step) and the model's own outputs."""
        return [dict(i, dtype=_DTYPES.get(i["dtype"], i["dtype"])) for i in self._s.outputs()]

    def _bind(self, session, inputs, kwargs):
        values = dict(inputs or {}, **kwargs)
        for name, value in values.items():
            session.set_input(name, _as_array(value))

    def step(self, inputs=None, **kwargs):
        """One training step on these inputs (names as the model's; numpy or DLPack).

        Returns {"loss", "loss_scale" (the scale this step used), "skipped"}.
        """
        if not self._s.is_training:
            raise InvalidInputError("this session runs an inference model; use run() or eval()")
        self._bind(self._s, inputs, kwargs)
        scale = self._s.loss_scale()
        self._s.run()
        return {"loss": self._s.loss(), "loss_scale": scale, "skipped": self._s.skipped()}

    def run(self, inputs=None, **kwargs):
        """Runs the model once (a step for a training session) and returns its outputs."""
        self._bind(self._s, inputs, kwargs)
        self._s.run()
        return {o["name"]: self._s.fetch(o["name"]) for o in self._s.outputs()}

    def eval(self, inputs=None, **kwargs):
        """The forward outputs on these inputs with the current weights (no update)."""
        if not self._s.is_training:
            return self.run(inputs, **kwargs)
        if self._eval is None:
            o = _amp.SessionOptions()
            o.device = self._options[0]
            o.inference = True
            self._eval = (_amp.Session.open(self._source, o) if isinstance(self._source, str)
                          else _amp.Session.from_bytes(self._source, o))
        for name in self._s.state_names():
            try:
                self._eval.set_parameter(name, self._s.fetch(name))
            except InvalidInputError:
                pass  # optimizer state: not in the forward model
        self._bind(self._eval, inputs, kwargs)
        self._eval.run()
        return {o["name"]: self._eval.fetch(o["name"]) for o in self._eval.outputs()}

    def fetch(self, name):
        """An output after a step or run, a parameter or a piece of state, as numpy."""
        return self._s.fetch(name)

    def parameters(self):
        """{name: numpy array} of the trained FP32 master weights (read-only copies)."""
        out = {}
        for name in self._s.parameter_names():
            a = self._s.fetch(name)
            a.flags.writeable = False
            out[name] = a
        return out

    def load_parameters(self, params):
        """Replaces parameters (or any state) by name: same dtype and shape."""
        for name, value in params.items():
            self._s.set_parameter(name, _as_array(value))

    def save_checkpoint(self, path, metadata=None):
        """Every piece of state and the step in PATH/checkpoint.npz (amp-train's format)."""
        self._s.save_checkpoint(os.fspath(path), json.dumps(metadata or {}))

    def load_checkpoint(self, path):
        """Restores a checkpoint (amp-train's or save_checkpoint's); returns its metadata."""
        return json.loads(self._s.load_checkpoint(os.fspath(path)))

    def export_inference(self, path):
        """Writes the forward model with the trained weights as ONNX."""
        self._s.export_inference(os.fspath(path))


def _as_array(value):
    # DLPack tensors (torch, jax, cupy) pass as they are; anything else numpy
    # can read becomes a C-contiguous array.
    if hasattr(value, "__dlpack__") and not _is_numpy(value):
        if hasattr(value, "is_contiguous") and not value.is_contiguous():
            value = value.contiguous()
        return value
    import numpy as np
    return np.ascontiguousarray(value)


def _is_numpy(value):
    return type(value).__module__ == "numpy"
