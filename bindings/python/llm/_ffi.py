"""Loading libllm.so.1 and declaring its C API for ctypes.

Every function the package calls is declared here with its argtypes and
restype, and every option struct mirrors its C definition field by field in
the header's order (include/llm/*.h). The library is looked for in order at
$LIBLLM_PATH, at build/lib/libllm.so.1 of the source tree this package sits
in, then by the system loader (ctypes.util.find_library / "libllm.so.1").
"""
import ctypes
import ctypes.util
import os
from ctypes import (POINTER, Structure, CFUNCTYPE, c_char_p, c_double, c_float, c_int,
                    c_int32, c_int64, c_size_t, c_uint, c_uint64, c_void_p)

from .errors import LibraryNotFound
from . import _check

SONAME = "libllm.so.1"


def _candidates():
    env = os.environ.get("LIBLLM_PATH")
    if env:
        yield env
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.normpath(os.path.join(here, "..", "..", ".."))
    local = os.path.join(repo, "build", "lib", SONAME)
    if os.path.exists(local):
        yield local
    found = ctypes.util.find_library("llm")
    if found:
        yield found
    yield SONAME


def _load():
    errors = []
    env = os.environ.get("LIBLLM_PATH")
    for path in _candidates():
        try:
            return ctypes.CDLL(path), path
        except OSError as e:
            errors.append("%s: %s" % (path, e))
            if env and path == env:
                # an explicit path that does not load is an error, not a hint
                raise LibraryNotFound("LIBLLM_PATH=%s cannot be loaded: %s" % (env, e)) from e
    raise LibraryNotFound("cannot load %s (tried: %s); build it with `make lib` or set LIBLLM_PATH"
                          % (SONAME, "; ".join(errors)))


lib, path = _load()

status_t = c_int
enum_t = c_int
p = c_void_p  # opaque handles travel as void *


# ---- option and result structs (same field order as the headers) ----
class BackendOptions(Structure):
    _fields_ = [("size", c_size_t), ("threads", c_int), ("device", c_int)]


class EmbeddingOptions(Structure):
    _fields_ = [("size", c_size_t), ("vocab", c_int64), ("dim", c_int64), ("mask_zero", c_int),
                ("init_scale", c_float)]


class RecurrentOptions(Structure):
    _fields_ = [("size", c_size_t), ("units", c_int64), ("return_mode", enum_t),
                ("unit_forget_bias", c_int), ("go_backwards", c_int)]


class DenseOptions(Structure):
    _fields_ = [("size", c_size_t), ("units", c_int64), ("activation", enum_t), ("use_bias", c_int)]


class OptimizerOptions(Structure):
    _fields_ = [("size", c_size_t), ("kind", enum_t), ("learning_rate", c_float),
                ("beta1", c_float), ("beta2", c_float), ("epsilon", c_float),
                ("momentum", c_float), ("nesterov", c_int), ("weight_decay", c_float),
                ("clip_norm", c_float), ("schedule", enum_t), ("warmup_steps", c_int64),
                ("decay_steps", c_int64), ("decay_rate", c_float), ("min_learning_rate", c_float)]


class Metrics(Structure):
    _fields_ = [("size", c_size_t), ("count", c_int64), ("loss", c_double),
                ("accuracy", c_double), ("precision", c_double), ("recall", c_double),
                ("f1", c_double), ("auc", c_double), ("tp", c_int64), ("fp", c_int64),
                ("tn", c_int64), ("fn", c_int64), ("threshold", c_double)]


class Progress(Structure):
    _fields_ = [("size", c_size_t), ("epoch", c_int), ("epochs", c_int), ("batch", c_int64),
                ("batches", c_int64), ("step", c_int64), ("loss", c_double),
                ("accuracy", c_double), ("val_loss", c_double), ("val_accuracy", c_double),
                ("learning_rate", c_double), ("elapsed_s", c_double)]


PROGRESS_FN = CFUNCTYPE(c_int, POINTER(Progress), c_void_p)


class FitOptions(Structure):
    _fields_ = [("size", c_size_t), ("epochs", c_int), ("batch_size", c_int), ("shuffle", c_int),
                ("seed", c_uint64), ("validation", c_void_p), ("validation_split", c_float),
                ("on_batch", PROGRESS_FN), ("on_epoch", PROGRESS_FN), ("user", c_void_p),
                ("early_stopping", enum_t), ("patience", c_int), ("min_delta", c_double),
                ("restore_best", c_int), ("initial_epoch", c_int), ("checkpoint_path", c_char_p),
                ("dist", c_void_p)]


class TransformerEmbeddingOptions(Structure):
    _fields_ = [("size", c_size_t), ("vocab", c_int64), ("context", c_int64), ("dim", c_int64),
                ("positional", enum_t), ("mask_zero", c_int), ("init_std", c_float)]


class AttentionOptions(Structure):
    _fields_ = [("size", c_size_t), ("heads", c_int64), ("causal", c_int), ("init_std", c_float)]


class TransformerBlockOptions(Structure):
    _fields_ = [("size", c_size_t), ("heads", c_int64), ("mlp_hidden", c_int64), ("causal", c_int),
                ("dropout", c_float), ("eps", c_float), ("init_std", c_float)]


class LMHeadOptions(Structure):
    _fields_ = [("size", c_size_t), ("vocab", c_int64), ("tie", c_int), ("init_std", c_float)]


TOKEN_FN = CFUNCTYPE(c_int, c_int32, c_void_p)


class GenerateOptions(Structure):
    _fields_ = [("size", c_size_t), ("max_tokens", c_int64), ("temperature", c_float),
                ("top_k", c_int32), ("top_p", c_float), ("seed", c_uint64), ("stop_token", c_int32),
                ("on_token", TOKEN_FN), ("user", c_void_p)]


class BPETrainOptions(Structure):
    _fields_ = [("size", c_size_t), ("vocab_size", c_int32), ("min_frequency", c_int32)]


class EmailOptions(Structure):
    _fields_ = [("size", c_size_t), ("max_bytes", c_size_t), ("keep_subject", c_int),
                ("keep_headers", c_char_p), ("decode_mime", c_int), ("text_attachments", c_int)]


class TokenizerOptions(Structure):
    _fields_ = [("size", c_size_t), ("lowercase", c_int), ("keep_high_bytes", c_int),
                ("fold_numbers", c_int), ("fold_urls", c_int), ("fold_emails", c_int),
                ("max_token_length", c_int)]


class VocabOptions(Structure):
    _fields_ = [("size", c_size_t), ("max_tokens", c_int32), ("min_count", c_int64)]


class VectorizeOptions(Structure):
    _fields_ = [("size", c_size_t), ("seq_len", c_int32), ("padding", enum_t),
                ("truncation", enum_t), ("bigram_buckets", c_int32), ("skip_unknown", c_int),
                ("unique", c_int), ("reverse", c_int), ("char_ngram_buckets", c_int32),
                ("char_ngram_min", c_int32), ("char_ngram_max", c_int32)]


class OnnxOptions(Structure):
    _fields_ = [("size", c_size_t), ("opset", c_int), ("batch", c_int64), ("text_pipeline", c_int)]


class CorpusOptions(Structure):
    _fields_ = [("size", c_size_t), ("format", enum_t), ("max_file_bytes", c_size_t),
                ("skip_unreadable", c_int), ("email", POINTER(EmailOptions))]


PP = POINTER(c_void_p)
I64P = POINTER(c_int64)
SZP = POINTER(c_size_t)

_PROTOS = {
    # status, version
    "llm_status_string": (c_char_p, [status_t]),
    "llm_last_error": (c_char_p, []),
    "llm_clear_error": (None, []),
    "llm_version": (c_uint, []),
    "llm_version_string": (c_char_p, []),
    # backend
    "llm_backend_options_init": (None, [POINTER(BackendOptions)]),
    "llm_backend_create": (status_t, [PP, enum_t, POINTER(BackendOptions)]),
    "llm_backend_free": (None, [p]),
    "llm_backend_is_available": (status_t, [enum_t, POINTER(c_int)]),
    "llm_backend_kind_of": (status_t, [p, POINTER(enum_t)]),
    "llm_backend_threads": (status_t, [p, POINTER(c_int)]),
    "llm_backend_describe": (status_t, [p, c_char_p, c_size_t, SZP]),
    # tensor
    "llm_dtype_size": (c_size_t, [enum_t]),
    "llm_tensor_create": (status_t, [PP, p, enum_t, c_int, I64P]),
    "llm_tensor_from_host": (status_t, [PP, p, enum_t, c_int, I64P, c_void_p, c_size_t]),
    "llm_tensor_to_host": (status_t, [p, c_void_p, c_size_t]),
    "llm_tensor_copy_from_host": (status_t, [p, c_void_p, c_size_t]),
    "llm_tensor_fill": (status_t, [p, c_double]),
    "llm_tensor_reshape": (status_t, [p, c_int, I64P]),
    "llm_tensor_ndim": (status_t, [p, POINTER(c_int)]),
    "llm_tensor_shape": (status_t, [p, I64P]),
    "llm_tensor_numel": (status_t, [p, I64P]),
    "llm_tensor_dtype": (status_t, [p, POINTER(enum_t)]),
    "llm_tensor_backend": (status_t, [p, PP]),
    "llm_tensor_free": (None, [p]),
    # layers
    "llm_embedding_options_init": (None, [POINTER(EmbeddingOptions)]),
    "llm_layer_embedding_ex": (p, [POINTER(EmbeddingOptions)]),
    "llm_recurrent_options_init": (None, [POINTER(RecurrentOptions)]),
    "llm_layer_lstm_ex": (p, [POINTER(RecurrentOptions)]),
    "llm_layer_gru_ex": (p, [POINTER(RecurrentOptions)]),
    "llm_layer_bidirectional": (p, [p]),
    "llm_dense_options_init": (None, [POINTER(DenseOptions)]),
    "llm_layer_dense_ex": (p, [POINTER(DenseOptions)]),
    "llm_layer_activation": (p, [enum_t]),
    "llm_layer_dropout": (p, [c_float]),
    "llm_layer_layernorm": (p, [c_float]),
    "llm_layer_global_pool": (p, [enum_t]),
    "llm_layer_concatenate": (p, []),
    "llm_layer_add": (p, []),
    "llm_layer_multiply": (p, []),
    "llm_layer_status": (status_t, [p]),
    "llm_layer_error": (c_char_p, [p]),
    "llm_layer_kind": (c_char_p, [p]),
    "llm_layer_free": (None, [p]),
    # optimizer
    "llm_optimizer_options_init": (None, [POINTER(OptimizerOptions), enum_t]),
    "llm_optimizer_create": (status_t, [PP, POINTER(OptimizerOptions)]),
    "llm_optimizer_get_options": (status_t, [p, POINTER(OptimizerOptions)]),
    "llm_optimizer_learning_rate": (status_t, [p, c_int64, POINTER(c_float)]),
    "llm_optimizer_free": (None, [p]),
    # dataset
    "llm_dataset_from_host": (status_t, [PP, enum_t, c_int, I64P, c_void_p,
                                         enum_t, c_int, I64P, c_void_p]),
    "llm_dataset_size": (status_t, [p, I64P]),
    "llm_dataset_split": (status_t, [p, c_float, c_uint64, PP, PP]),
    "llm_dataset_free": (None, [p]),
    # metrics
    "llm_metrics_init": (None, [POINTER(Metrics)]),
    "llm_metrics_format": (status_t, [POINTER(Metrics), c_char_p, c_char_p, c_char_p, c_size_t, SZP]),
    # model
    "llm_fit_options_init": (None, [POINTER(FitOptions)]),
    "llm_model_sequential": (status_t, [PP, p]),
    "llm_model_add": (status_t, [p, p]),
    # the functional API (include/llm/graph.h)
    "llm_model_functional": (status_t, [PP, p]),
    "llm_model_input": (status_t, [p, enum_t, c_int, I64P, PP]),
    "llm_model_apply": (status_t, [p, p, p, PP]),
    "llm_model_merge": (status_t, [p, p, c_int, PP, PP]),
    "llm_model_set_outputs": (status_t, [p, c_int, PP]),
    "llm_model_num_inputs": (status_t, [p, POINTER(c_int)]),
    "llm_model_num_outputs": (status_t, [p, POINTER(c_int)]),
    "llm_model_predict_inputs": (status_t, [p, c_int, PP, PP]),
    "llm_dataset_from_inputs": (status_t, [PP, c_int, PP, p]),
    "llm_model_set_seed": (status_t, [p, c_uint64]),
    "llm_model_build": (status_t, [p, enum_t, c_int, I64P]),
    "llm_model_summary": (status_t, [p, c_char_p, c_size_t, SZP]),
    "llm_model_param_count": (status_t, [p, I64P]),
    "llm_model_compile": (status_t, [p, enum_t, p, c_uint]),
    "llm_model_train_on_batch": (status_t, [p, p, p, POINTER(c_float), POINTER(c_float)]),
    "llm_model_fit": (status_t, [p, p, POINTER(FitOptions), PP]),
    "llm_model_evaluate": (status_t, [p, p, c_int, POINTER(Metrics)]),
    "llm_model_predict": (status_t, [p, p, PP]),
    "llm_model_set_text_pipeline": (status_t, [p, p, POINTER(VectorizeOptions),
                                               POINTER(EmailOptions)]),
    "llm_model_predict_text": (status_t, [p, c_char_p, c_size_t, POINTER(c_float), c_size_t]),
    "llm_model_set_metadata": (status_t, [p, c_char_p, c_char_p]),
    "llm_model_get_metadata": (status_t, [p, c_char_p, POINTER(c_char_p)]),
    "llm_model_save": (status_t, [p, c_char_p]),
    "llm_model_load": (status_t, [PP, p, c_char_p]),
    "llm_model_save_checkpoint": (status_t, [p, c_char_p]),
    "llm_onnx_options_init": (None, [POINTER(OnnxOptions)]),
    "llm_model_export_onnx": (status_t, [p, c_char_p, POINTER(OnnxOptions)]),
    "llm_model_load_checkpoint": (status_t, [PP, p, c_char_p]),
    "llm_model_epochs_done": (status_t, [p, POINTER(c_int)]),
    "llm_model_free": (None, [p]),
    "llm_model_ensemble": (status_t, [PP, p]),
    "llm_model_ensemble_add": (status_t, [p, p]),
    "llm_model_ensemble_remove": (status_t, [p, c_int, PP]),
    "llm_model_ensemble_size": (status_t, [p, POINTER(c_int)]),
    "llm_model_ensemble_member": (status_t, [p, c_int, PP]),
    "llm_model_num_params": (status_t, [p, POINTER(c_int)]),
    "llm_model_param_info": (status_t, [p, c_int, POINTER(c_char_p), POINTER(c_int), I64P]),
    "llm_model_get_param": (status_t, [p, c_char_p, c_void_p, c_size_t]),
    "llm_model_set_param": (status_t, [p, c_char_p, c_void_p, c_size_t]),
    "llm_model_copy_weights": (status_t, [p, p, POINTER(c_int)]),
    "llm_model_set_tokenizer": (status_t, [p, p]),
    "llm_model_tokenizer": (status_t, [p, PP]),
    # transformers and generation
    "llm_transformer_embedding_options_init": (None, [POINTER(TransformerEmbeddingOptions)]),
    "llm_layer_transformer_embedding_ex": (p, [POINTER(TransformerEmbeddingOptions)]),
    "llm_attention_options_init": (None, [POINTER(AttentionOptions)]),
    "llm_layer_attention_ex": (p, [POINTER(AttentionOptions)]),
    "llm_transformer_block_options_init": (None, [POINTER(TransformerBlockOptions)]),
    "llm_layer_transformer_block_ex": (p, [POINTER(TransformerBlockOptions)]),
    "llm_lm_head_options_init": (None, [POINTER(LMHeadOptions)]),
    "llm_layer_lm_head_ex": (p, [POINTER(LMHeadOptions)]),
    "llm_decoder_create": (status_t, [PP, p]),
    "llm_decoder_reset": (status_t, [p]),
    "llm_decoder_feed": (status_t, [p, POINTER(c_int32), c_int64, POINTER(c_float)]),
    "llm_decoder_length": (status_t, [p, I64P]),
    "llm_decoder_vocab_size": (status_t, [p, I64P]),
    "llm_decoder_free": (None, [p]),
    "llm_generate_options_init": (None, [POINTER(GenerateOptions)]),
    "llm_sample_token": (status_t, [POINTER(c_float), c_int64, POINTER(GenerateOptions),
                                    POINTER(c_uint64), POINTER(c_int32)]),
    "llm_model_generate": (status_t, [p, POINTER(c_int32), c_int64, POINTER(GenerateOptions),
                                      POINTER(c_int32), c_int64, I64P]),
    # BPE tokenizer
    "llm_bpe_create_bytes": (status_t, [PP]),
    "llm_bpe_train_options_init": (None, [POINTER(BPETrainOptions)]),
    "llm_bpe_train": (status_t, [PP, c_char_p, c_size_t, POINTER(BPETrainOptions)]),
    "llm_bpe_encode": (status_t, [p, c_char_p, c_size_t, POINTER(c_int32), c_size_t, SZP]),
    "llm_bpe_decode": (status_t, [p, POINTER(c_int32), c_size_t, c_char_p, c_size_t, SZP]),
    "llm_bpe_token_bytes": (status_t, [p, c_int32, POINTER(c_void_p), SZP]),
    "llm_bpe_vocab_size": (status_t, [p, POINTER(c_int32)]),
    "llm_bpe_serialize": (status_t, [p, c_char_p, c_size_t, SZP]),
    "llm_bpe_deserialize": (status_t, [PP, c_char_p, c_size_t]),
    "llm_bpe_vectorize": (status_t, [p, c_char_p, c_size_t, POINTER(VectorizeOptions),
                                     POINTER(c_int32), c_int64, I64P]),
    "llm_dataset_from_corpus_bpe": (status_t, [PP, p, p, POINTER(VectorizeOptions)]),
    "llm_bpe_free": (None, [p]),
    # distributed training
    "llm_dist_init": (status_t, [PP, c_void_p, c_void_p]),
    "llm_dist_rank": (status_t, [p, POINTER(c_int)]),
    "llm_dist_size": (status_t, [p, POINTER(c_int)]),
    "llm_dist_set_timeout": (status_t, [p, c_double]),
    "llm_dist_barrier": (status_t, [p]),
    "llm_dist_launched": (status_t, [POINTER(c_int)]),
    "llm_dist_sync_model": (status_t, [p, p]),
    "llm_dist_train_on_batch": (status_t, [p, p, p, p, c_int64, POINTER(c_float)]),
    "llm_dist_free": (None, [p]),
    "llm_history_epochs": (status_t, [p, POINTER(c_int)]),
    "llm_history_get": (status_t, [p, c_char_p, c_int, POINTER(c_double)]),
    "llm_history_stopped_early": (status_t, [p, POINTER(c_int)]),
    "llm_history_best_epoch": (status_t, [p, POINTER(c_int)]),
    "llm_history_free": (None, [p]),
    # text
    "llm_email_options_init": (None, [POINTER(EmailOptions)]),
    "llm_tokenizer_options_init": (None, [POINTER(TokenizerOptions)]),
    "llm_tokenize_join": (status_t, [c_char_p, c_size_t, POINTER(TokenizerOptions), c_char_p,
                                     c_size_t, SZP]),
    "llm_vocab_options_init": (None, [POINTER(VocabOptions)]),
    "llm_vocab_build_from_corpus": (status_t, [PP, p, POINTER(TokenizerOptions),
                                               POINTER(VocabOptions)]),
    "llm_vocab_size": (status_t, [p, POINTER(c_int32)]),
    "llm_vocab_lookup": (status_t, [p, c_char_p, c_size_t, POINTER(c_int32)]),
    "llm_vocab_token": (status_t, [p, c_int32, POINTER(c_void_p), SZP]),
    "llm_vocab_free": (None, [p]),
    "llm_vectorize_options_init": (None, [POINTER(VectorizeOptions)]),
    "llm_vectorize": (status_t, [p, c_char_p, c_size_t, POINTER(VectorizeOptions),
                                 POINTER(c_int32), c_int64, I64P]),
    "llm_corpus_options_init": (None, [POINTER(CorpusOptions)]),
    "llm_text_corpus_from_directory": (status_t, [PP, c_char_p, POINTER(CorpusOptions)]),
    "llm_text_corpus_create": (status_t, [PP, POINTER(c_char_p), c_int32]),
    "llm_text_corpus_add": (status_t, [p, c_char_p, c_size_t, c_int32]),
    "llm_text_corpus_count": (status_t, [p, I64P]),
    "llm_text_corpus_num_classes": (status_t, [p, POINTER(c_int32)]),
    "llm_text_corpus_class_count": (status_t, [p, c_int32, I64P]),
    "llm_text_corpus_skipped": (status_t, [p, I64P]),
    "llm_text_corpus_class_name": (status_t, [p, c_int32, POINTER(c_char_p)]),
    "llm_text_corpus_text": (status_t, [p, c_int64, POINTER(c_void_p), SZP]),
    "llm_text_corpus_label": (status_t, [p, c_int64, POINTER(c_int32)]),
    "llm_text_corpus_shuffle": (status_t, [p, c_uint64]),
    "llm_text_corpus_split": (status_t, [p, c_double, c_uint64, PP, PP]),
    "llm_dataset_from_corpus": (status_t, [PP, p, p, POINTER(VectorizeOptions)]),
    "llm_text_corpus_free": (None, [p]),
}

_INT_CODES = "bBhHiIlLqQ"


def _checked(name, f, argtypes):
    """f with every integer and float argument checked against its C type
    (_check), so no value wraps or overflows silently on its way in; other
    arguments go to ctypes as they are."""
    checks = []
    for i, t in enumerate(argtypes):
        code = getattr(t, "_type_", None)
        if isinstance(code, str) and code in _INT_CODES:
            checks.append((i, lambda v, label, t=t: _check.integer(v, label, t)))
        elif t is c_float:
            checks.append((i, _check.float32))
        elif t is c_double:
            checks.append((i, _check.real))
    if not checks:
        return f

    def call(*args):
        args = list(args)
        for i, conv in checks:
            args[i] = conv(args[i], "%s: argument %d" % (name, i + 1))
        return f(*args)
    call.__name__ = name
    call.raw = f
    return call


for _name, (_res, _args) in _PROTOS.items():
    _f = getattr(lib, _name)
    _f.restype = _res
    _f.argtypes = _args
    globals()[_name[4:]] = _checked(_name, _f, _args)  # llm_model_fit -> _ffi.model_fit


def init(struct_type, init_fn, *extra):
    """A new option struct filled by its _init function, with .size set to the
    binding's sizeof. The _init function writes into a generous scratch buffer,
    so a newer library whose struct has grown (fields appended, per the ABI
    rules) cannot write past the binding's smaller struct."""
    scratch = ctypes.create_string_buffer(max(1024, ctypes.sizeof(struct_type)))
    init_fn(ctypes.cast(scratch, POINTER(struct_type)), *extra)
    s = struct_type.from_buffer_copy(scratch.raw[:ctypes.sizeof(struct_type)])
    if s.size < ctypes.sizeof(struct_type):
        from .errors import Unavailable
        raise Unavailable("libllm's %s is %d bytes, the binding's %d: the library is older "
                          "than the binding" % (struct_type.__name__, s.size,
                                                ctypes.sizeof(struct_type)))
    s.size = ctypes.sizeof(struct_type)
    return s


def shape_array(shape, name="shape"):
    """An int64_t[] of the dimensions, each checked."""
    dims = [_check.integer(d, "%s[%d]" % (name, i), c_int64) for i, d in enumerate(shape)]
    return (c_int64 * len(dims))(*dims)
