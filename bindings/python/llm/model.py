"""Optimizers and the Sequential model."""
import math
import re
from ctypes import byref, c_char_p, c_double, c_float, c_int, c_int64, c_void_p

from . import _ffi
from .core import (Handle, Tensor, Dataset, default_backend, as_tensor, dtype_code,
                   _snprintf, _np)
from .errors import check, error_for, InvalidArgument

LOSSES = {"binary_crossentropy": 0, "bce": 0, "binary_crossentropy_logits": 1,
          "sparse_categorical_crossentropy": 2, "sparse_categorical_crossentropy_logits": 3,
          "mse": 4, "mean_squared_error": 4}
OPTIMIZERS = {"sgd": 0, "adam": 1, "adamw": 2}
SCHEDULES = {"constant": 0, "step": 1, "cosine": 2}
MONITORS = {None: 0, "loss": 1, "accuracy": 2, "val_loss": 3, "val_accuracy": 4}
HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate")


class Optimizer(Handle):
    """Optimizer("adam", learning_rate=1e-3, clip_norm=1.0, schedule="cosine",
    decay_steps=100, ...): any llm_optimizer_options field by name; the rest
    keep the kind's defaults."""
    _free = staticmethod(_ffi.optimizer_free)

    def __init__(self, kind="adam", **options):
        if kind not in OPTIMIZERS:
            raise ValueError("unknown optimizer %r (%s)" % (kind, ", ".join(OPTIMIZERS)))
        o = _ffi.init(_ffi.OptimizerOptions, _ffi.optimizer_options_init, OPTIMIZERS[kind])
        names = {f[0] for f in _ffi.OptimizerOptions._fields_} - {"size", "kind"}
        for k, v in options.items():
            if k not in names:
                raise TypeError("unknown optimizer option %r" % (k,))
            if k == "schedule":
                v = SCHEDULES[v] if isinstance(v, str) else v
            setattr(o, k, v)
        out = c_void_p()
        check(_ffi.optimizer_create(byref(out), byref(o)))
        self._ptr = out.value
        self.kind = kind

    def options(self):
        o = _ffi.init(_ffi.OptimizerOptions, _ffi.optimizer_options_init, 0)
        check(_ffi.optimizer_get_options(self._handle(), byref(o)))
        return {f[0]: getattr(o, f[0]) for f in o._fields_ if f[0] != "size"}

    def learning_rate(self, step=0):
        lr = c_float()
        check(_ffi.optimizer_learning_rate(self._handle(), step, byref(lr)))
        return lr.value


def _metrics_dict(m):
    d = {f[0]: getattr(m, f[0]) for f in m._fields_ if f[0] != "size"}
    return {k: v for k, v in d.items() if not (isinstance(v, float) and math.isnan(v))}


def _dataset(x, y, x_dtype=None, y_dtype=None):
    """(dataset, owned): x a Dataset (y None) or arrays."""
    if isinstance(x, Dataset):
        if y is not None:
            raise InvalidArgument(-1, "y must be None when x is a Dataset")
        return x, False
    if y is None:
        raise InvalidArgument(-1, "y is required unless x is a Dataset")
    return Dataset(x, y, x_dtype, y_dtype), True


class Model(Handle):
    """A Sequential model on a backend (the default CPU one if None)::

        m = llm.Model([llm.layers.dense(8, "tanh"), llm.layers.dense(1, "sigmoid")])
        m.compile("binary_crossentropy", "adam", learning_rate=0.05)
        history = m.fit(x, y, epochs=100, batch_size=4)
    """
    _free = staticmethod(_ffi.model_free)
    _OUT_RE = re.compile(r"gives (\d+) output")

    def __init__(self, layers=(), backend=None, seed=None, _ptr=None):
        self.backend = backend or default_backend()
        if _ptr is None:
            out = c_void_p()
            check(_ffi.model_sequential(byref(out), self.backend._handle()))
            _ptr = out.value
        self._ptr = _ptr
        self._text_outputs = None
        self.backend._adopt(self)
        if seed is not None:
            self.set_seed(seed)
        for layer in layers:
            self.add(layer)

    sequential = classmethod(lambda cls, backend=None, seed=None: cls(backend=backend, seed=seed))

    # ---- building
    def add(self, layer):
        """Appends a layer; the model takes it (also when this raises)."""
        ptr = layer._take()
        check(_ffi.model_add(self._handle(), ptr))
        return self

    def set_seed(self, seed):
        check(_ffi.model_set_seed(self._handle(), seed))

    def build(self, sample_shape, dtype="float32"):
        """Builds for a per-sample input shape (no batch dimension), e.g.
        build([200], "int32") for token ids."""
        shape = [sample_shape] if isinstance(sample_shape, int) else list(sample_shape)
        check(_ffi.model_build(self._handle(), dtype_code(dtype), len(shape),
                               _ffi.shape_array(shape)))
        return self

    def summary(self):
        return _snprintf(lambda b, n, need: _ffi.model_summary(self._handle(), b, n, need))

    @property
    def param_count(self):
        n = c_int64()
        check(_ffi.model_param_count(self._handle(), byref(n)))
        return n.value

    # ---- training
    def compile(self, loss="binary_crossentropy", optimizer="adam", metrics=("accuracy",),
                **optimizer_options):
        """loss: a name (binary_crossentropy, binary_crossentropy_logits,
        sparse_categorical_crossentropy[_logits], mse); optimizer: a name
        (adam, adamw, sgd; optimizer_options such as learning_rate go to it)
        or an Optimizer; metrics: () or ("accuracy",)."""
        if loss not in LOSSES:
            raise ValueError("unknown loss %r (%s)" % (loss, ", ".join(LOSSES)))
        flags = 0
        for m in metrics or ():
            if m in ("accuracy", "acc"):
                flags |= 1
            else:
                raise ValueError("unknown metric %r (accuracy)" % (m,))
        own = not isinstance(optimizer, Optimizer)
        opt = Optimizer(optimizer, **optimizer_options) if own else optimizer
        try:
            check(_ffi.model_compile(self._handle(), LOSSES[loss], opt._handle(), flags))
        finally:
            if own:
                opt.close()  # compile copied it
        return self

    def fit(self, x, y=None, epochs=1, batch_size=32, validation_split=0.0,
            validation_data=None, shuffle=True, seed=1, on_epoch=None, on_batch=None,
            early_stopping=None, patience=0, min_delta=0.0, restore_best=True,
            initial_epoch=0, checkpoint_path=None, x_dtype=None, y_dtype=None):
        """Trains; x, y arrays or lists (or x a Dataset). validation_data: a
        Dataset or an (x, y) pair. on_epoch/on_batch(progress: dict) may
        return True to stop. Returns a dict: per-epoch lists under "loss",
        "accuracy", "val_loss", "val_accuracy", "learning_rate" (those
        recorded), plus "epochs", "stopped_early" and "best_epoch"."""
        train, own_train = _dataset(x, y, x_dtype, y_dtype)
        val, own_val = None, False
        if validation_data is not None:
            if isinstance(validation_data, Dataset):
                val = validation_data
            else:
                val, own_val = _dataset(validation_data[0], validation_data[1], x_dtype, y_dtype)
        o = _ffi.init(_ffi.FitOptions, _ffi.fit_options_init)
        o.epochs, o.batch_size, o.shuffle, o.seed = epochs, batch_size, int(bool(shuffle)), seed
        o.validation = val._handle() if val is not None else None
        o.validation_split = validation_split
        o.early_stopping = MONITORS[early_stopping]
        o.patience, o.min_delta = patience, min_delta
        o.restore_best, o.initial_epoch = int(bool(restore_best)), initial_epoch
        if checkpoint_path is not None:
            o.checkpoint_path = str(checkpoint_path).encode()
        raised = []

        def wrap(fn):
            if fn is None:
                return _ffi.PROGRESS_FN()

            def cb(progress, user):
                try:
                    d = {f[0]: getattr(progress.contents, f[0])
                         for f in _ffi.Progress._fields_ if f[0] != "size"}
                    return 1 if fn(d) else 0
                except BaseException as e:  # stop training; re-raised after fit
                    raised.append(e)
                    return 1
            return _ffi.PROGRESS_FN(cb)

        o.on_epoch, o.on_batch = wrap(on_epoch), wrap(on_batch)
        keep = (o.on_epoch, o.on_batch)  # the callbacks must outlive the call
        hist = c_void_p()
        try:
            status = _ffi.model_fit(self._handle(), train._handle(), byref(o), byref(hist))
            if raised:
                raise raised[0]
            check(status)
            return self._history(hist.value)
        finally:
            del keep
            if hist.value:
                _ffi.history_free(hist.value)
            if own_train:
                train.close()
            if own_val:
                val.close()

    @staticmethod
    def _history(h):
        n = c_int()
        check(_ffi.history_epochs(h, byref(n)))
        out = {}
        v = c_double()
        for key in HISTORY_KEYS:
            vals = []
            for e in range(n.value):
                check(_ffi.history_get(h, key.encode(), e, byref(v)))
                vals.append(v.value)
            if any(not math.isnan(x) for x in vals):
                out[key] = vals
        stopped, best = c_int(), c_int()
        check(_ffi.history_stopped_early(h, byref(stopped)))
        check(_ffi.history_best_epoch(h, byref(best)))
        out["epochs"] = n.value
        out["stopped_early"] = bool(stopped.value)
        out["best_epoch"] = best.value
        return out

    def train_on_batch(self, x, y):
        """One optimizer step; returns (loss, accuracy)."""
        tx, ty = as_tensor(x, backend=self.backend), as_tensor(y, backend=self.backend)
        loss, acc = c_float(), c_float()
        try:
            check(_ffi.model_train_on_batch(self._handle(), tx._handle(), ty._handle(),
                                            byref(loss), byref(acc)))
        finally:
            if tx is not x:
                tx.close()
            if ty is not y:
                ty.close()
        return loss.value, acc.value

    def evaluate(self, x, y=None, batch_size=32, x_dtype=None, y_dtype=None):
        """Loss and metrics (accuracy; for a binary model also precision,
        recall, f1, auc, tp/fp/tn/fn) as a dict; undefined ones are left out."""
        ds, own = _dataset(x, y, x_dtype, y_dtype)
        m = _ffi.init(_ffi.Metrics, _ffi.metrics_init)
        try:
            check(_ffi.model_evaluate(self._handle(), ds._handle(), batch_size, byref(m)))
        finally:
            if own:
                ds.close()
        return _metrics_dict(m)

    def predict_tensor(self, x, dtype=None):
        """Runs the model on x [N, ...]; returns a new Tensor (caller closes)."""
        tx = as_tensor(x, dtype=dtype, backend=self.backend)
        out = c_void_p()
        try:
            check(_ffi.model_predict(self._handle(), tx._handle(), byref(out)))
        finally:
            if tx is not x:
                tx.close()
        return Tensor(backend=self.backend, _ptr=out.value)

    def predict(self, x, dtype=None):
        """Runs the model on x [N, ...]: a numpy array when x is one (or
        numpy is importable and x is a Tensor), else nested lists."""
        with self.predict_tensor(x, dtype) as t:
            if _np is not None and (isinstance(x, (_np.ndarray, Tensor))):
                return t.to_numpy()
            return t.to_list()

    # ---- text pipeline
    def set_text_pipeline(self, vocab, seq_len=200, padding="pre", truncation="post",
                          email=True):
        """Attaches vocab (copied) and the vectorizer settings; email True
        reads inputs as raw e-mail with the default reader settings, a dict
        of email_options() arguments or an EmailOptions changes them, and
        False/None takes plain text."""
        from .text import vectorize_options, email_options
        vo = vectorize_options(seq_len, padding, truncation)
        if email is True:
            em = email_options()
        elif isinstance(email, dict):
            em = email_options(**email)
        elif isinstance(email, _ffi.EmailOptions):
            em = email
        else:
            em = None
        check(_ffi.model_set_text_pipeline(self._handle(), vocab._handle(), byref(vo),
                                           byref(em) if em is not None else None))
        self._text_outputs = None

    def predict_text(self, text):
        """The model's outputs for one raw text (str or bytes) as a list of
        floats; for a binary classifier [probability of class 1]."""
        data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        n = self._text_outputs or 1
        while True:
            out = (c_float * n)()
            status = _ffi.model_predict_text(self._handle(), data, len(data), out, n)
            if status == 0:
                self._text_outputs = n
                return list(out)
            err = error_for(status)
            m = self._OUT_RE.search(err.message)
            if status == InvalidArgument.status and m and int(m.group(1)) != n:
                n = int(m.group(1))  # learn the per-text output size once
                continue
            raise err

    # ---- metadata and files
    def set_metadata(self, key, value):
        """value None removes the key."""
        check(_ffi.model_set_metadata(self._handle(), key.encode(),
                                      None if value is None else str(value).encode()))

    _MISSING = object()

    def get_metadata(self, key, default=_MISSING):
        """The value of key; default (if given) when absent, else InvalidArgument."""
        v = c_char_p()
        status = _ffi.model_get_metadata(self._handle(), key.encode(), byref(v))
        if status != 0:
            if status == InvalidArgument.status and default is not Model._MISSING:
                return default
            check(status)
        return v.value.decode("utf-8", "replace")

    def save(self, path):
        check(_ffi.model_save(self._handle(), str(path).encode()))

    def save_checkpoint(self, path):
        check(_ffi.model_save_checkpoint(self._handle(), str(path).encode()))

    def export_onnx(self, path, opset=17, batch=None, text_pipeline=True):
        """Writes the built model as an ONNX file (docs/ONNX.md): input 'ids',
        int64 [batch, seq]; output 'probabilities' for a classifier, what
        predict() gives. batch None keeps the batch dimension dynamic;
        text_pipeline puts the vocabulary or tokenizer into its metadata."""
        o = _ffi.init(_ffi.OnnxOptions, _ffi.onnx_options_init)
        o.opset = opset
        o.batch = batch or 0
        o.text_pipeline = 1 if text_pipeline else 0
        check(_ffi.model_export_onnx(self._handle(), str(path).encode(), byref(o)))

    @classmethod
    def load(cls, path, backend=None):
        """A model saved with save() (uncompiled), on backend (default CPU)."""
        backend = backend or default_backend()
        out = c_void_p()
        check(_ffi.model_load(byref(out), backend._handle(), str(path).encode()))
        return cls(backend=backend, _ptr=out.value)

    @classmethod
    def load_checkpoint(cls, path, backend=None):
        """A compiled model from save_checkpoint(), ready to fit with
        initial_epoch=model.epochs_done."""
        backend = backend or default_backend()
        out = c_void_p()
        check(_ffi.model_load_checkpoint(byref(out), backend._handle(), str(path).encode()))
        return cls(backend=backend, _ptr=out.value)

    @classmethod
    def ensemble(cls, members, backend=None):
        """A model whose outputs for a text are the mean of the members'
        (trained models with text pipelines, each read through its own).
        The ensemble takes the members: they are closed here and live on
        inside it. Save and load it like any model."""
        backend = backend or default_backend()
        out = c_void_p()
        check(_ffi.model_ensemble(byref(out), backend._handle()))
        e = cls(backend=backend, _ptr=out.value)
        try:
            for m in members:
                check(_ffi.model_ensemble_add(e._handle(), m._handle()))
                m._ptr = None  # owned by the ensemble now
        except Exception:
            e.close()
            raise
        return e

    @property
    def members(self):
        """The number of members of an ensemble, 0 for other models."""
        n = c_int()
        check(_ffi.model_ensemble_size(self._handle(), byref(n)))
        return n.value

    @property
    def epochs_done(self):
        n = c_int()
        check(_ffi.model_epochs_done(self._handle(), byref(n)))
        return n.value

    def __repr__(self):
        return "<llm.Model%s>" % (" closed" if not self._ptr else "")
