"""Optimizers and the Sequential model."""
import ctypes
import math
import re
from ctypes import byref, c_char_p, c_double, c_float, c_int, c_int64, c_uint64, c_void_p

from . import _ffi, _check
from .core import (Handle, Tensor, Dataset, default_backend, as_tensor, dtype_code,
                   _snprintf, _np, Backend)
from .errors import check, error_for, ArgumentTypeError, InvalidArgument

LOSSES = {"binary_crossentropy": 0, "bce": 0, "binary_crossentropy_logits": 1,
          "sparse_categorical_crossentropy": 2, "sparse_categorical_crossentropy_logits": 3,
          "mse": 4, "mean_squared_error": 4}
OPTIMIZERS = {"sgd": 0, "adam": 1, "adamw": 2}
SCHEDULES = {"constant": 0, "step": 1, "cosine": 2}
MONITORS = {None: 0, "loss": 1, "accuracy": 2, "val_loss": 3, "val_accuracy": 4}
METRICS = {"accuracy": 1, "acc": 1}
HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate")


class Optimizer(Handle):
    """Optimizer("adam", learning_rate=1e-3, clip_norm=1.0, schedule="cosine",
    decay_steps=100, ...): any llm_optimizer_options field by name; the rest
    keep the kind's defaults."""
    _free = staticmethod(_ffi.optimizer_free)

    def __init__(self, kind="adam", **options):
        code = _check.choice(kind, OPTIMIZERS, "optimizer")
        o = _ffi.init(_ffi.OptimizerOptions, _ffi.optimizer_options_init, code)
        names = {f[0] for f in _ffi.OptimizerOptions._fields_} - {"size", "kind"}
        for k, v in options.items():
            if k not in names:
                raise ArgumentTypeError("unknown optimizer option %r (%s)" % (k, ", ".join(sorted(names))))
            if k == "schedule" and isinstance(v, str):
                v = _check.choice(v, SCHEDULES, "schedule")
            _check.field(o, k, v, "optimizer: ")
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
        check(_ffi.optimizer_learning_rate(self._handle(), _check.integer(step, "step"), byref(lr)))
        return lr.value


def _metrics_dict(m):
    d = {f[0]: getattr(m, f[0]) for f in m._fields_ if f[0] != "size"}
    return {k: v for k, v in d.items() if not (isinstance(v, float) and math.isnan(v))}


def _dataset(x, y, x_dtype=None, y_dtype=None):
    """(dataset, owned): x a Dataset (y None) or arrays."""
    if isinstance(x, Dataset):
        if y is not None:
            raise InvalidArgument("y must be None when x is a Dataset")
        return x, False
    if y is None:
        raise InvalidArgument("y is required unless x is a Dataset")
    return Dataset(x, y, x_dtype, y_dtype), True


def _backend_arg(backend):
    if backend is None:
        return default_backend()
    if not isinstance(backend, Backend):
        raise ArgumentTypeError("backend must be an llm.Backend, not %s" % type(backend).__name__)
    return backend


def _model_arg(m, what):
    if not isinstance(m, Model):
        raise ArgumentTypeError("%s must be an llm.Model, not %s" % (what, type(m).__name__))
    return m


def _seq_arg(v, what):
    if not isinstance(v, (list, tuple)):
        raise ArgumentTypeError("%s must be a list, not %s" % (what, type(v).__name__))
    return list(v)


def _dtypes_arg(dtypes, n):
    if dtypes is None:
        return [None] * n
    dtypes = _seq_arg(dtypes, "dtypes")
    if len(dtypes) != n:
        raise InvalidArgument("dtypes has %d entries for %d inputs" % (len(dtypes), n))
    return dtypes


def _close_converted(ts, xs):
    """Closes the tensors made from xs by _input_tensors (not the caller's own)."""
    for t, x in zip(ts, xs):
        if t is not x:
            t.close()


def _input_tensors(xs, dtypes, backend):
    """One tensor per input (the caller's own Tensors as they are); on failure
    nothing converted is left open."""
    ts = []
    try:
        for x, d in zip(xs, _dtypes_arg(dtypes, len(xs))):
            ts.append(as_tensor(x, dtype=d, backend=backend))
    except BaseException:
        _close_converted(ts, xs)
        raise
    return ts


class Node:
    """A node of a functional model: an input or a layer's result. It lives
    as long as its model."""

    def __init__(self, model, ptr):
        self.model = model
        self._ptr = ptr

    def __repr__(self):
        return "<llm.Node of %r>" % (self.model,)


class Model(Handle):
    """A Sequential model on a backend (the default CPU one if None)::

        m = llm.Model([llm.layers.dense(8, "tanh"), llm.layers.dense(1, "sigmoid")])
        m.compile("binary_crossentropy", "adam", learning_rate=0.05)
        history = m.fit(x, y, epochs=100, batch_size=4)

    Threads: predict, predict_text, generate and the read-only calls may run
    at once from several threads on one model (include/llm/model.h,
    Threads); fit, evaluate and the calls that change the model need it to
    themselves.
    """
    _free = staticmethod(_ffi.model_free)
    _OUT_RE = re.compile(r"gives (\d+) output")

    def __init__(self, layers=(), backend=None, seed=None, _ptr=None):
        if not isinstance(layers, (list, tuple)):
            raise ArgumentTypeError("layers must be a list of Layers, not %s" % type(layers).__name__)
        self.backend = _backend_arg(backend)
        # the C model holds a reference to its backend, so this pointer stays
        # valid while the model lives, also after self.backend is closed
        self._be = self.backend._handle()
        if _ptr is None:
            out = c_void_p()
            check(_ffi.model_sequential(byref(out), self._be))
            _ptr = out.value
        self._ptr = _ptr
        self._text_outputs = None
        if seed is not None:
            self.set_seed(seed)
        for layer in layers:
            self.add(layer)

    def _backend_ptr(self):
        self._handle()
        return self._be

    sequential = classmethod(lambda cls, backend=None, seed=None: cls(backend=backend, seed=seed))

    # ---- the functional API (include/llm/graph.h)
    @classmethod
    def functional(cls, backend=None, seed=None):
        """An empty model built as a graph::

            m = llm.Model.functional()
            ids = m.input([200], "int32")
            emb = m.apply(L.embedding(20000, 64), ids)
            both = m.merge(L.concatenate(), [m.apply(L.lstm(64), emb),
                                             m.apply(L.global_pool(), emb)])
            m.set_outputs([m.apply(L.dense(1, "sigmoid"), both)])

        Applying one Layer object again shares it (one set of weights)."""
        be = _backend_arg(backend)
        out = c_void_p()
        check(_ffi.model_functional(byref(out), be._handle()))
        return cls(backend=be, seed=seed, _ptr=out.value)

    def input(self, shape, dtype="float32"):
        """Declares an input of per-sample shape; returns its Node."""
        dims = _ffi.shape_array(_seq_arg(shape, "shape"))
        out = c_void_p()
        check(_ffi.model_input(self._handle(), dtype_code(dtype), len(dims), dims, byref(out)))
        return Node(self, out.value)

    def _node_ptr(self, node, what):
        if not isinstance(node, Node):
            raise ArgumentTypeError("%s must be an llm Node (from Model.input/apply), not %s"
                                    % (what, type(node).__name__))
        if node.model is not self:
            raise InvalidArgument("%s belongs to another model" % what)
        return node._ptr

    def apply(self, layer, node):
        """Applies a one-input layer to a Node; returns the result's Node."""
        from .layers import Layer
        if not isinstance(layer, Layer):
            raise ArgumentTypeError("apply takes a Layer, not %s" % type(layer).__name__)
        ptr_node = self._node_ptr(node, "node")
        out = c_void_p()
        check(_ffi.model_apply(self._handle(), layer._apply_ptr(self), ptr_node, byref(out)))
        return Node(self, out.value)

    def merge(self, layer, nodes):
        """Applies a merge layer (layers.concatenate/add/multiply) to a list of Nodes."""
        from .layers import Layer
        if not isinstance(layer, Layer):
            raise ArgumentTypeError("merge takes a Layer, not %s" % type(layer).__name__)
        ptrs = [self._node_ptr(n, "nodes[%d]" % i) for i, n in enumerate(_seq_arg(nodes, "nodes"))]
        arr = (c_void_p * max(1, len(ptrs)))(*ptrs)
        out = c_void_p()
        check(_ffi.model_merge(self._handle(), layer._apply_ptr(self), len(ptrs), arr, byref(out)))
        return Node(self, out.value)

    def set_outputs(self, nodes):
        ptrs = [self._node_ptr(n, "nodes[%d]" % i) for i, n in enumerate(_seq_arg(nodes, "nodes"))]
        arr = (c_void_p * max(1, len(ptrs)))(*ptrs)
        check(_ffi.model_set_outputs(self._handle(), len(ptrs), arr))

    @property
    def num_inputs(self):
        n = c_int()
        check(_ffi.model_num_inputs(self._handle(), byref(n)))
        return n.value

    def predict_inputs(self, xs, dtypes=None):
        """Runs a model with several inputs on xs, one array per input."""
        handle = self._handle()
        xs = _seq_arg(xs, "xs")
        ts = _input_tensors(xs, dtypes, self)
        arr = (c_void_p * max(1, len(ts)))(*[t._handle() for t in ts])
        out = c_void_p()
        try:
            check(_ffi.model_predict_inputs(handle, len(ts), arr, byref(out)))
        finally:
            _close_converted(ts, xs)
        with Tensor(backend=self.backend, _ptr=out.value) as t:
            return t.to_numpy() if _np is not None and any(isinstance(x, _np.ndarray) for x in xs) else t.to_list()

    def dataset_inputs(self, xs, y, dtypes=None, y_dtype=None):
        """A Dataset of several inputs (one array per input) for fit/evaluate."""
        xs = _seq_arg(xs, "xs")
        ts = _input_tensors(xs, dtypes, self)
        try:
            ty = as_tensor(y, dtype=y_dtype, backend=self)
        except BaseException:
            _close_converted(ts, xs)
            raise
        arr = (c_void_p * max(1, len(ts)))(*[t._handle() for t in ts])
        out = c_void_p()
        try:
            check(_ffi.dataset_from_inputs(byref(out), len(ts), arr, ty._handle()))
        finally:
            _close_converted(ts, xs)
            if ty is not y:
                ty.close()
        return Dataset(_ptr=out.value)

    # ---- building
    def add(self, layer):
        """Appends a layer (llm.layers.*); the model takes it (also when this
        raises)."""
        from .layers import Layer
        if not isinstance(layer, Layer):
            raise ArgumentTypeError("add takes a Layer (llm.layers.dense(...), ...), not %s"
                                    % type(layer).__name__)
        handle = self._handle()
        check(_ffi.model_add(handle, layer._take()))
        return self

    def set_seed(self, seed):
        check(_ffi.model_set_seed(self._handle(), _check.integer(seed, "seed", c_uint64)))

    def build(self, sample_shape, dtype="float32"):
        """Builds for a per-sample input shape (no batch dimension), e.g.
        build([200], "int32") for token ids."""
        shape = [sample_shape] if not isinstance(sample_shape, (list, tuple)) else list(sample_shape)
        check(_ffi.model_build(self._handle(), dtype_code(dtype), len(shape),
                               _ffi.shape_array(shape, "sample_shape")))
        return self

    def summary(self):
        return _snprintf(lambda b, n, need: _ffi.model_summary(self._handle(), b, n, need))

    @property
    def param_count(self):
        n = c_int64()
        check(_ffi.model_param_count(self._handle(), byref(n)))
        return n.value

    def params(self):
        """{name: shape} of the weights, in order (e.g. "dense_0.weight")."""
        n = c_int()
        check(_ffi.model_num_params(self._handle(), byref(n)))
        out = {}
        for i in range(n.value):
            name, nd, dims = c_char_p(), c_int(), (c_int64 * 4)()
            check(_ffi.model_param_info(self._ptr, i, byref(name), byref(nd), dims))
            out[name.value.decode()] = tuple(dims[k] for k in range(nd.value))
        return out

    def get_param(self, name):
        """The weights of one parameter as a flat list of floats (a numpy
        array of its shape when numpy is there)."""
        name = _check.cstring(name, "name").decode("utf-8", "surrogateescape")
        shape = self.params().get(name)
        if shape is None:
            raise InvalidArgument("no parameter %r (Model.params() lists them)" % (name,))
        count = 1
        for d in shape:
            count *= d
        buf = (c_float * count)()
        check(_ffi.model_get_param(self._ptr, _check.cstring(name, "name"), buf, ctypes.sizeof(buf)))
        if _np is not None:
            return _np.frombuffer(buf, dtype=_np.float32).reshape(shape).copy()
        return list(buf)

    def set_param(self, name, values):
        """Overwrites one parameter with values (as many floats as it holds)."""
        from .core import HostBuffer
        hb = HostBuffer(values, "float32")
        check(_ffi.model_set_param(self._handle(), _check.cstring(name, "name"), hb.ptr, hb.nbytes))

    def copy_weights(self, src):
        """Copies every parameter of src whose name and shape match; returns
        how many were copied (e.g. a pretrained language model's blocks into
        a classifier)."""
        n = c_int()
        check(_ffi.model_copy_weights(self._handle(), _model_arg(src, "src")._handle(), byref(n)))
        return n.value

    # ---- training
    def compile(self, loss="binary_crossentropy", optimizer="adam", metrics=("accuracy",),
                **optimizer_options):
        """loss: a name (binary_crossentropy, binary_crossentropy_logits,
        sparse_categorical_crossentropy[_logits], mse); optimizer: a name
        (adam, adamw, sgd; optimizer_options such as learning_rate go to it)
        or an Optimizer; metrics: () or ("accuracy",)."""
        code = _check.choice(loss, LOSSES, "loss")
        if isinstance(metrics, str):
            metrics = (metrics,)
        if metrics is not None and not isinstance(metrics, (list, tuple)):
            raise ArgumentTypeError("metrics must be a list of names, not %s" % type(metrics).__name__)
        flags = 0
        for m in metrics or ():
            flags |= _check.choice(m, METRICS, "metric")
        own = not isinstance(optimizer, Optimizer)
        if not own and optimizer_options:
            raise InvalidArgument("optimizer options (%s) go with an optimizer name, not an Optimizer"
                                  % ", ".join(sorted(optimizer_options)))
        opt = Optimizer(optimizer, **optimizer_options) if own else optimizer
        try:
            check(_ffi.model_compile(self._handle(), code, opt._handle(), flags))
        finally:
            if own:
                opt.close()  # compile copied it
        return self

    def fit(self, x, y=None, epochs=1, batch_size=32, validation_split=0.0,
            validation_data=None, shuffle=True, seed=1, on_epoch=None, on_batch=None,
            early_stopping=None, patience=0, min_delta=0.0, restore_best=True,
            initial_epoch=0, checkpoint_path=None, x_dtype=None, y_dtype=None, dist=None):
        """Trains; x, y arrays or lists (or x a Dataset). validation_data: a
        Dataset or an (x, y) pair. on_epoch/on_batch(progress: dict) may
        return True to stop. dist: an llm.Dist for data-parallel training
        over MPI (every rank calls fit alike). Returns a dict: per-epoch lists
        under "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"
        (those recorded), plus "epochs", "stopped_early" and "best_epoch"."""
        o = _ffi.init(_ffi.FitOptions, _ffi.fit_options_init)
        _check.set_fields(o, "fit: ", epochs=epochs, batch_size=batch_size, shuffle=int(bool(shuffle)),
                          seed=seed, validation_split=validation_split, patience=patience,
                          min_delta=min_delta, restore_best=int(bool(restore_best)),
                          initial_epoch=initial_epoch,
                          early_stopping=_check.choice(early_stopping, MONITORS, "early_stopping monitor"))
        if checkpoint_path is not None:
            o.checkpoint_path = _check.path(checkpoint_path, "checkpoint_path")
        if dist is not None:
            from .dist import Dist
            if not isinstance(dist, Dist):
                raise ArgumentTypeError("dist must be an llm.Dist, not %s" % type(dist).__name__)
            o.dist = dist._handle()
        for name, fn in (("on_epoch", on_epoch), ("on_batch", on_batch)):
            if fn is not None and not callable(fn):
                raise ArgumentTypeError("%s must be callable" % name)
        handle = self._handle()
        train, own_train = _dataset(x, y, x_dtype, y_dtype)
        val, own_val = None, False
        try:
            if validation_data is not None:
                if isinstance(validation_data, Dataset):
                    val = validation_data
                elif isinstance(validation_data, (tuple, list)) and len(validation_data) == 2:
                    val, own_val = _dataset(validation_data[0], validation_data[1], x_dtype, y_dtype)
                else:
                    raise ArgumentTypeError("validation_data must be a Dataset or an (x, y) pair")
            o.validation = val._handle() if val is not None else None
            return self._fit(handle, train, o, on_epoch, on_batch)
        finally:
            if own_train:
                train.close()
            if own_val:
                val.close()

    def _fit(self, handle, train, o, on_epoch, on_batch):
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
            status = _ffi.model_fit(handle, train._handle(), byref(o), byref(hist))
            if raised:
                raise raised[0]
            check(status)
            return self._history(hist.value)
        finally:
            del keep
            if hist.value:
                _ffi.history_free(hist.value)

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
        handle = self._handle()
        tx = as_tensor(x, backend=self)
        try:
            ty = as_tensor(y, backend=self)
        except BaseException:
            if tx is not x:
                tx.close()
            raise
        loss, acc = c_float(), c_float()
        try:
            check(_ffi.model_train_on_batch(handle, tx._handle(), ty._handle(), byref(loss), byref(acc)))
        finally:
            if tx is not x:
                tx.close()
            if ty is not y:
                ty.close()
        return loss.value, acc.value

    def evaluate(self, x, y=None, batch_size=32, x_dtype=None, y_dtype=None):
        """Loss and metrics (accuracy; for a binary model also precision,
        recall, f1, auc, tp/fp/tn/fn) as a dict; undefined ones are left out."""
        batch_size = _check.integer(batch_size, "batch_size", c_int)
        handle = self._handle()
        ds, own = _dataset(x, y, x_dtype, y_dtype)
        m = _ffi.init(_ffi.Metrics, _ffi.metrics_init)
        try:
            check(_ffi.model_evaluate(handle, ds._handle(), batch_size, byref(m)))
        finally:
            if own:
                ds.close()
        return _metrics_dict(m)

    def predict_tensor(self, x, dtype=None):
        """Runs the model on x [N, ...]; returns a new Tensor (caller closes)."""
        handle = self._handle()
        tx = as_tensor(x, dtype=dtype, backend=self)
        out = c_void_p()
        try:
            check(_ffi.model_predict(handle, tx._handle(), byref(out)))
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
    def set_text_pipeline(self, tokens=None, seq_len=200, padding="pre", truncation="post",
                          email=False, **features):
        """Attaches the pipeline predict_text runs: tokens a Vocab (copied:
        word ids), a BPE (attached with set_tokenizer) or None (the tokenizer
        already attached), and the vectorizer settings. As in C, the input is
        plain text unless email says otherwise: True reads raw e-mail (MIME
        decoded, headers dropped but the subject) with the default reader
        settings, a dict of email_options() arguments or an EmailOptions
        changes them. features: vectorize_options' bigram_buckets,
        skip_unknown, unique, reverse and char_ngram_* (word vocabularies)."""
        from .text import vectorize_options, email_options, Vocab, BPE
        handle = self._handle()
        vo = _check.call_with(vectorize_options, dict(features, seq_len=seq_len, padding=padding,
                                                      truncation=truncation), "vectorize options")
        if email is True:
            em = email_options()
        elif isinstance(email, dict):
            em = _check.call_with(email_options, email, "email options")
        elif isinstance(email, _ffi.EmailOptions):
            em = email
        elif email is False or email is None:
            em = None
        else:
            raise ArgumentTypeError("email must be True, False, a dict or an EmailOptions, not %s"
                                    % type(email).__name__)
        if isinstance(tokens, BPE):
            self.set_tokenizer(tokens)
            vocab = None
        elif isinstance(tokens, Vocab):
            vocab = tokens._handle()
        elif tokens is None:
            vocab = None
        else:
            raise ArgumentTypeError("tokens must be a Vocab, a BPE or None, not %s" % type(tokens).__name__)
        check(_ffi.model_set_text_pipeline(handle, vocab, byref(vo),
                                           byref(em) if em is not None else None))
        self._text_outputs = None
        return self

    def set_tokenizer(self, bpe):
        """Attaches a copy of a BPE tokenizer, saved with the model (a
        language model carries its own, so generate() takes text)."""
        from .text import BPE
        if not isinstance(bpe, BPE):
            raise ArgumentTypeError("set_tokenizer takes an llm.BPE, not %s" % type(bpe).__name__)
        check(_ffi.model_set_tokenizer(self._handle(), bpe._handle()))
        return self

    @property
    def tokenizer(self):
        """A copy of the attached BPE tokenizer (StateError if none)."""
        from .text import BPE
        ptr = c_void_p()
        check(_ffi.model_tokenizer(self._handle(), byref(ptr)))
        need = ctypes.c_size_t()
        check(_ffi.bpe_serialize(ptr.value, None, 0, byref(need)))
        buf = ctypes.create_string_buffer(need.value + 1)
        check(_ffi.bpe_serialize(ptr.value, buf, len(buf), byref(need)))
        return BPE.deserialize(buf.raw[:need.value])

    def predict_text(self, text):
        """The model's outputs for one raw text (str, bytes, bytearray or
        memoryview) as a list of floats; for a binary classifier
        [probability of class 1]."""
        data = _check.text(text)
        handle = self._handle()
        n = self._text_outputs or 1
        while True:
            out = (c_float * n)()
            status = _ffi.model_predict_text(handle, data, len(data), out, n)
            if status == 0:
                self._text_outputs = n
                return list(out)
            err = error_for(status)
            m = self._OUT_RE.search(err.message)
            if status == InvalidArgument.status and m and int(m.group(1)) != n:
                n = int(m.group(1))  # learn the per-text output size once
                continue
            raise err

    # ---- generation
    def generate(self, prompt, max_tokens=100, temperature=1.0, top_k=0, top_p=1.0, seed=1,
                 stop_token=-1, on_token=None):
        """Samples up to max_tokens tokens after prompt from a causal language
        model (layers.gpt). prompt: a list of ids, giving a list of ids; or a
        text (str/bytes), encoded with the model's tokenizer, giving the
        generated text (str for a str prompt, decoded as UTF-8 with
        replacement, bytes otherwise). temperature 0 is greedy; top_k and
        top_p restrict the choice; the same seed gives the same tokens.
        on_token(id) is called as each is chosen and may return True to stop."""
        from .lm import generate_options
        from .text import _id_array
        handle = self._handle()
        o = generate_options(max_tokens, temperature, top_k, top_p, seed, stop_token)
        if on_token is not None and not callable(on_token):
            raise ArgumentTypeError("on_token must be callable")
        as_text = isinstance(prompt, (str, bytes, bytearray, memoryview))
        bpe = self.tokenizer if as_text else None
        toks, raised = [], []

        def cb(tok, user):  # collects the tokens: no buffer of max_tokens ids
            toks.append(tok)
            try:
                return 1 if on_token is not None and on_token(tok) else 0
            except BaseException as e:  # stop; re-raised after the call
                raised.append(e)
                return 1
        o.on_token = _ffi.TOKEN_FN(cb)
        try:
            arr = _id_array(bpe.encode(prompt) if as_text else prompt)
            n = c_int64()
            status = _ffi.model_generate(handle, arr, len(arr), byref(o), None, 0, byref(n))
            if raised:
                raise raised[0]
            check(status)
            if not as_text:
                return toks
            data = bpe.decode(toks)
            return data.decode("utf-8", "replace") if isinstance(prompt, str) else data
        finally:
            if bpe is not None:
                bpe.close()

    def decoder(self):
        """A Decoder (KV cache) over this model: feed ids, get logits."""
        from .lm import Decoder
        return Decoder(self)

    # ---- metadata and files
    def set_metadata(self, key, value):
        """value None removes the key."""
        check(_ffi.model_set_metadata(self._handle(), _check.cstring(key, "key"),
                                      None if value is None else _check.cstring(str(value), "value")))

    _MISSING = object()

    def get_metadata(self, key, default=_MISSING):
        """The value of key; default (if given) when absent, else InvalidArgument."""
        v = c_char_p()
        status = _ffi.model_get_metadata(self._handle(), _check.cstring(key, "key"), byref(v))
        if status != 0:
            if status == InvalidArgument.status and default is not Model._MISSING:
                return default
            check(status)
        return v.value.decode("utf-8", "replace")

    def save(self, path):
        check(_ffi.model_save(self._handle(), _check.path(path)))

    def save_checkpoint(self, path):
        check(_ffi.model_save_checkpoint(self._handle(), _check.path(path)))

    def export_onnx(self, path, opset=17, batch=None, text_pipeline=True):
        """Writes the built model as an ONNX file (docs/ONNX.md): input 'ids',
        int64 [batch, seq]; output 'probabilities' for a classifier, what
        predict() gives. batch None keeps the batch dimension dynamic;
        text_pipeline puts the vocabulary or tokenizer into its metadata."""
        data = _check.path(path)
        o = _ffi.init(_ffi.OnnxOptions, _ffi.onnx_options_init)
        _check.set_fields(o, opset=opset, batch=0 if batch is None else batch,
                          text_pipeline=1 if text_pipeline else 0)
        check(_ffi.model_export_onnx(self._handle(), data, byref(o)))

    @classmethod
    def load(cls, path, backend=None):
        """A model saved with save() (uncompiled), on backend (default CPU).
        path: str, bytes or os.PathLike."""
        data = _check.path(path)
        backend = _backend_arg(backend)
        out = c_void_p()
        check(_ffi.model_load(byref(out), backend._handle(), data))
        return cls(backend=backend, _ptr=out.value)

    @classmethod
    def load_checkpoint(cls, path, backend=None):
        """A compiled model from save_checkpoint(), ready to fit with
        initial_epoch=model.epochs_done."""
        data = _check.path(path)
        backend = _backend_arg(backend)
        out = c_void_p()
        check(_ffi.model_load_checkpoint(byref(out), backend._handle(), data))
        return cls(backend=backend, _ptr=out.value)

    @classmethod
    def ensemble(cls, members, backend=None):
        """A model whose outputs for a text are the mean of the members'
        (trained models with text pipelines, each read through its own).
        All or nothing: on success the ensemble takes the members (they are
        closed here and live on inside it); if any cannot join, none is taken
        and every member stays open and usable. Save and load it like any
        model."""
        if not isinstance(members, (list, tuple)):
            raise ArgumentTypeError("members must be a list of Models, not %s" % type(members).__name__)
        members = list(members)
        for m in members:
            _model_arg(m, "an ensemble member")._handle()
        backend = _backend_arg(backend)
        out = c_void_p()
        check(_ffi.model_ensemble(byref(out), backend._handle()))
        e = cls(backend=backend, _ptr=out.value)
        added = 0
        try:
            for m in members:
                check(_ffi.model_ensemble_add(e._ptr, m._ptr))
                added += 1
        except BaseException:
            back = c_void_p()
            while added:  # hand the members added so far back, newest first
                added -= 1
                check(_ffi.model_ensemble_remove(e._ptr, added, byref(back)))
            e.close()
            raise
        for m in members:
            m._ptr = None  # owned by the ensemble now
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
