/* libllm: the umbrella header. Include this one. */
#ifndef LLM_LLM_H
#define LLM_LLM_H

#include "common.h"
#include "version.h"
#include "status.h"
#include "backend.h"
#include "tensor.h"
#include "layer.h"
#include "optimizer.h"
#include "dataset.h"
#include "text.h"
#include "metrics.h"
#include "model.h"
#include "graph.h"
#include "generate.h"
#include "gpt2.h"
#include "dist.h"
#include "onnx.h"
#include "crossval.h"

#endif /* LLM_LLM_H */
