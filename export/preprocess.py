"""Raw-input models: wrap a trained image model into one .onnx whose input is encoded image
bytes, decoded by onnxruntime-extensions' DecodeImage and preprocessed / post-processed in
standard ONNX ops, next to steport's own custom ops in the same session.

Input contract of a wrapped model (a batch of N images of any sizes):
  image_bytes   uint8 [N, L]  each row one encoded PNG, zero-padded to the longest (L)
  image_lengths int64 [N]     the true byte length of each row
Outputs: ``probabilities`` float [N, classes] (softmax), ``top_indices`` int64 [N, k],
``top_probabilities`` float [N, k], and ``top_labels`` string [N, k] when labels are given.
Labels are also stored in the metadata (key ``steport.labels``, a JSON list).
:func:`pack_images` builds the two inputs from a list of ``bytes``.

Safety: DecodeImage (onnxruntime-extensions 0.15.2) hands every non-PNG input to libjpeg,
whose error handler *exits the process* on malformed data (and a truncated JPEG can hang).
So the graph checks each image before decoding: PNG signature, at least a full IHDR, width and
height within ``max_side``. A failing check raises an ORT error naming the node
``steport_bad_image`` (see BAD_IMAGE_NODE); a PNG that fails inside libpng raises
"[ImageDecoder]: ...". JPEG is refused unless ``allow_jpeg=True`` (trusted input only).
"""
from __future__ import annotations

import json
from typing import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from steport.registry import IR_VERSION

DECODE_DOMAIN = "com.microsoft.extensions"  # DecodeImage's domain in onnxruntime-extensions
BAD_IMAGE_NODE = "steport_bad_image__not_a_PNG_or_too_large_or_truncated"
PNG_SIGNATURE = bytes([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
JPEG_SIGNATURE = bytes([0xFF, 0xD8, 0xFF])
_HDR = 33  # PNG signature + IHDR chunk: shortest byte string that can be a PNG
# BGR weights (DecodeImage yields BGR), ITU-R 601 luma as PIL's convert("L")
_LUMA_BGR = np.float32([0.114, 0.587, 0.299])


class ImageInputError(ValueError):
    """Bytes the wrapped model would refuse (for servers: a 4xx, not a 5xx)."""


def check_image_bytes(data: bytes, allow_jpeg: bool = False, max_side: int = 4096) -> None:
    """The same checks the graph does, in Python, so a server can reject bad input early."""
    if len(data) >= _HDR and data[:8] == PNG_SIGNATURE:
        w, h = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        if not (1 <= w <= max_side and 1 <= h <= max_side):
            raise ImageInputError(f"PNG of {w}x{h} pixels; each side must be in [1, {max_side}]")
        return
    if allow_jpeg and data[:3] == JPEG_SIGNATURE:
        return
    raise ImageInputError("input is not a PNG image" + (" or JPEG" if allow_jpeg else "")
                          + f" ({len(data)} bytes, starts with {data[:8].hex() or 'nothing'})")


def pack_images(images: Sequence[bytes]) -> dict[str, np.ndarray]:
    """Feeds for a wrapped model: rows of encoded bytes zero-padded to the longest."""
    if len(images) == 0:
        raise ImageInputError("no images")
    lengths = np.array([len(b) for b in images], np.int64)
    buf = np.zeros((len(images), max(int(lengths.max()), 1)), np.uint8)
    for i, b in enumerate(images):
        buf[i, :len(b)] = np.frombuffer(bytes(b), np.uint8)
    return {"image_bytes": buf, "image_lengths": lengths}


def labels_of(model: onnx.ModelProto) -> list[str] | None:
    for p in model.metadata_props:
        if p.key == "steport.labels":
            return json.loads(p.value)
    return None


def _c(name: str, value, dtype) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name],
                            value=numpy_helper.from_array(np.asarray(value, dtype), name))


def _n(op: str, ins, outs, name: str | None = None, **attrs) -> onnx.NodeProto:
    return helper.make_node(op, list(ins), list(outs), name=name or f"pre/{outs[0]}", **attrs)


def _check_branch(allow_jpeg: bool, max_side: int) -> list[onnx.NodeProto]:
    """Nodes computing bool scalar 'ok' from 1-D uint8 'img' (the body's local names)."""
    nodes = [
        _c("pad", np.zeros(_HDR, np.uint8), np.uint8),
        _n("Concat", ["img", "pad"], ["padded"], axis=0),
        _c("s0", [0], np.int64), _c("s8", [8], np.int64),
        _c("s16", [16], np.int64), _c("s24", [24], np.int64),
        _n("Slice", ["padded", "s0", "s8"], ["sig"]),
        _c("png_sig", np.frombuffer(PNG_SIGNATURE, np.uint8), np.uint8),
        _n("Equal", ["sig", "png_sig"], ["sig_eq"]),
        _n("Cast", ["sig_eq"], ["sig_eq_i"], to=TensorProto.INT32),
        _n("ReduceMin", ["sig_eq_i"], ["sig_all"], keepdims=0),
        _c("one_i", 1, np.int32),
        _n("Equal", ["sig_all", "one_i"], ["is_png"]),
        _n("Shape", ["img"], ["len1"]),
        _n("ReduceSum", ["len1"], ["len"], keepdims=0),
        _c("hdr_len", _HDR, np.int64),
        _n("GreaterOrEqual", ["len", "hdr_len"], ["long_enough"]),
        # IHDR width and height: big-endian uint32 at bytes 16..23
        _n("Slice", ["padded", "s16", "s24"], ["wh_bytes"]),
        _n("Cast", ["wh_bytes"], ["wh_i"], to=TensorProto.INT64),
        _c("shape24", [2, 4], np.int64),
        _n("Reshape", ["wh_i", "shape24"], ["wh_rows"]),
        _c("be", [1 << 24, 1 << 16, 1 << 8, 1], np.int64),
        _n("Mul", ["wh_rows", "be"], ["wh_terms"]),
        _c("axis1", [1], np.int64),
        _n("ReduceSum", ["wh_terms", "axis1"], ["wh"], keepdims=0),
        _n("ReduceMax", ["wh"], ["side_max"], keepdims=0),
        _n("ReduceMin", ["wh"], ["side_min"], keepdims=0),
        _c("max_side", max_side, np.int64), _c("one_l", 1, np.int64),
        _n("LessOrEqual", ["side_max", "max_side"], ["small_enough"]),
        _n("GreaterOrEqual", ["side_min", "one_l"], ["nonempty"]),
        _n("And", ["is_png", "long_enough"], ["ok1"]),
        _n("And", ["ok1", "small_enough"], ["ok2"]),
        _n("And", ["ok2", "nonempty"], ["ok_png"]),
    ]
    if not allow_jpeg:
        return nodes + [_n("Identity", ["ok_png"], ["ok"])]
    return nodes + [
        _c("s3", [3], np.int64),
        _n("Slice", ["padded", "s0", "s3"], ["sig3"]),
        _c("jpeg_sig", np.frombuffer(JPEG_SIGNATURE, np.uint8), np.uint8),
        _n("Equal", ["sig3", "jpeg_sig"], ["j_eq"]),
        _n("Cast", ["j_eq"], ["j_eq_i"], to=TensorProto.INT32),
        _n("ReduceMin", ["j_eq_i"], ["j_all"], keepdims=0),
        _n("Equal", ["j_all", "one_i"], ["is_jpeg"]),
        _n("Or", ["ok_png", "is_jpeg"], ["ok"]),
    ]


def _loop_body(height: int, width: int, invert: bool, mean: float, std: float,
               resize_mode: str, allow_jpeg: bool, max_side: int) -> onnx.GraphProto:
    """One image per iteration: slice its bytes, check, decode, gray, resize, normalize."""
    decode = helper.make_graph(
        [helper.make_node("DecodeImage", ["img"], ["hwc_then"], domain=DECODE_DOMAIN,
                          name="pre/DecodeImage")],
        "decode", [], [helper.make_tensor_value_info("hwc_then", TensorProto.UINT8, None)])
    # Failing branch: a Gather one past the end, which ORT always refuses at run time; its
    # node name is what ORT's error message shows.
    fail = helper.make_graph(
        [_n("Shape", ["img"], ["f_len"]),
         _n("Gather", ["img", "f_len"], ["f_byte"], name=BAD_IMAGE_NODE, axis=0),
         _c("f_shape", [1, 1, 1], np.int64),
         _n("Reshape", ["f_byte", "f_shape"], ["hwc_else"])],
        "refuse", [], [helper.make_tensor_value_info("hwc_else", TensorProto.UINT8, None)])
    nodes = [
        _n("Gather", ["image_bytes", "i"], ["row"], axis=0),
        _n("Gather", ["image_lengths", "i"], ["n_bytes"], axis=0),
        _c("zero1", [0], np.int64),
        _c("ax0", [0], np.int64),
        _n("Unsqueeze", ["n_bytes", "ax0"], ["n_bytes1"]),
        _n("Slice", ["row", "zero1", "n_bytes1"], ["img"]),
        *_check_branch(allow_jpeg, max_side),
        helper.make_node("If", ["ok"], ["hwc"], name="pre/check_then_decode",
                         then_branch=decode, else_branch=fail),
        _n("Cast", ["hwc"], ["hwc_f"], to=TensorProto.FLOAT),
        # gray = Σ_c w_c·pixel_c over the channels present (DecodeImage gives 3 for PNG,
        # 1 for a gray JPEG): weights sliced to C and renormalized
        _n("Shape", ["hwc"], ["c_dim"], start=2, end=3),
        _c("luma", _LUMA_BGR, np.float32),
        _n("Slice", ["luma", "zero1", "c_dim"], ["w_c"]),
        _n("ReduceSum", ["w_c"], ["w_sum"], keepdims=1),
        _n("Div", ["w_c", "w_sum"], ["w_norm"]),
        _n("MatMul", ["hwc_f", "w_norm"], ["gray"]),  # [H, W]
        _c("ax01", [0, 1], np.int64),
        _n("Unsqueeze", ["gray", "ax01"], ["gray4"]),  # [1, 1, H, W]
        _c("sizes", [1, 1, height, width], np.int64),
        _n("Resize", ["gray4", "", "", "sizes"], ["resized"],
           mode="linear" if resize_mode == "antialias" else resize_mode,
           antialias=1 if resize_mode == "antialias" else 0,
           coordinate_transformation_mode="half_pixel"),
        _c("c255", 255.0, np.float32),
        _n("Div", ["resized", "c255"], ["unit"]),
    ]
    x = "unit"
    if invert:  # dark ink on light paper -> the training data's light-on-dark
        nodes += [_c("c1", 1.0, np.float32), _n("Sub", ["c1", x], ["inverted"])]
        x = "inverted"
    nodes += [_c("mean", mean, np.float32), _c("std", std, np.float32),
              _n("Sub", [x, "mean"], ["centered"]), _n("Div", ["centered", "std"], ["normed"]),
              _c("shape3", [1, height, width], np.int64),
              _n("Reshape", ["normed", "shape3"], ["pixels_i"]),
              _n("Identity", ["cond_in"], ["cond_out"])]
    return helper.make_graph(
        nodes, "per_image",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("pixels_i", TensorProto.FLOAT, [1, height, width])])


def wrap_image_model(model: onnx.ModelProto, labels: Sequence[str] | None = None, *,
                     top_k: int = 3, invert: bool = False, mean: float = 0.0, std: float = 1.0,
                     resize: str = "antialias", allow_jpeg: bool = False, max_side: int = 4096,
                     keep_logits: bool = False, check: bool = True) -> onnx.ModelProto:
    """Return a new model: encoded PNG bytes in, class probabilities / top-k out.

    ``model`` must take one float input [N, 1, H, W] (values as in training, by default
    [0, 1] = pixel / 255, then ``(x - mean) / std``) and return logits [N, classes]. Its nodes,
    custom-domain ops, fallback functions, opset imports and metadata are kept."""
    # antialias: linear with a widened filter when shrinking (like PIL / torch antialias=True)
    if resize not in ("antialias", "linear", "nearest", "cubic"):
        raise ValueError(f"resize must be antialias, linear, nearest or cubic, got {resize!r}")
    if std == 0:
        raise ValueError("std must be non-zero")
    g = model.graph
    inits = {t.name for t in g.initializer}
    real_inputs = [i for i in g.input if i.name not in inits]
    if len(real_inputs) != 1 or len(g.output) != 1:
        raise ValueError("wrap_image_model needs a model with one input and one output, got "
                         f"{[i.name for i in real_inputs]} -> {[o.name for o in g.output]}")
    inp, out = real_inputs[0], g.output[0]
    dims = inp.type.tensor_type.shape.dim
    if inp.type.tensor_type.elem_type != TensorProto.FLOAT or len(dims) != 4:
        raise ValueError(f"input '{inp.name}' must be float [N, 1, H, W]")
    c, height, width = (d.dim_value for d in dims[1:])
    if c != 1 or height <= 0 or width <= 0:
        raise ValueError(f"input '{inp.name}' must be [N, 1, H, W] with static 1, H, W; got "
                         f"[N, {c}, {height}, {width}] (only grayscale models for now)")
    classes = 0
    odims = out.type.tensor_type.shape.dim
    if len(odims) == 2 and odims[1].HasField("dim_value"):
        classes = odims[1].dim_value
    if labels is not None:
        labels = [str(s) for s in labels]
        if classes and len(labels) != classes:
            raise ValueError(f"{len(labels)} labels for a model with {classes} classes")
    k = min(top_k, classes) if classes else top_k
    if k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")

    body = _loop_body(height, width, invert, mean, std, resize, allow_jpeg, max_side)
    pre = [
        _n("Shape", ["image_bytes"], ["n_images"], start=0, end=1),
        _c("pre_true", True, np.bool_),
        _n("Squeeze", ["n_images"], ["trip"]),
        helper.make_node("Loop", ["trip", "pre_true"], ["pre_pixels"], body=body,
                         name="pre/per_image"),  # scan output: [N, 1, H, W]
        _n("Identity", ["pre_pixels"], [inp.name], name="pre/to_model"),
    ]
    post = [
        _n("Softmax", [out.name], ["probabilities"], name="post/softmax", axis=-1),
        _c("post_k", [k], np.int64),
        _n("TopK", ["probabilities", "post_k"], ["top_probabilities", "top_indices"],
           name="post/topk", axis=-1, largest=1, sorted=1),
    ]
    outputs = [
        helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", classes or None]),
        helper.make_tensor_value_info("top_indices", TensorProto.INT64, ["N", k]),
        helper.make_tensor_value_info("top_probabilities", TensorProto.FLOAT, ["N", k]),
    ]
    if labels is not None:
        post += [helper.make_node("Constant", [], ["post_labels"], name="post/labels",
                                  value=helper.make_tensor("post_labels", TensorProto.STRING,
                                                           [len(labels)],
                                                           [s.encode() for s in labels])),
                 _n("Gather", ["post_labels", "top_indices"], ["top_labels"],
                    name="post/gather_labels", axis=0)]
        outputs.append(helper.make_tensor_value_info("top_labels", TensorProto.STRING, ["N", k]))
    if keep_logits:
        outputs.append(out)
    graph = helper.make_graph(
        pre + list(g.node) + post, f"{g.name or 'model'}_image",
        [helper.make_tensor_value_info("image_bytes", TensorProto.UINT8, ["N", "L"]),
         helper.make_tensor_value_info("image_lengths", TensorProto.INT64, ["N"])],
        outputs, list(g.initializer))
    graph.value_info.extend(g.value_info)
    wrapped = helper.make_model(graph, opset_imports=list(model.opset_import),
                                ir_version=min(model.ir_version or IR_VERSION, IR_VERSION))
    wrapped.functions.extend(model.functions)
    if DECODE_DOMAIN not in {o.domain for o in wrapped.opset_import}:
        wrapped.opset_import.append(helper.make_opsetid(DECODE_DOMAIN, 1))
    wrapped.producer_name, wrapped.producer_version = model.producer_name, model.producer_version
    meta = {p.key: p.value for p in model.metadata_props}
    meta["steport.preprocess"] = json.dumps({
        "kind": "image", "inputs": {"image_bytes": "uint8 [N, L], zero-padded encoded images",
                                    "image_lengths": "int64 [N], true byte lengths"},
        "formats": ["png", "jpeg"] if allow_jpeg else ["png"], "max_side": max_side,
        "size": [height, width], "grayscale": "luma", "invert": invert, "mean": mean,
        "std": std, "resize": resize, "top_k": k}, sort_keys=True)
    if labels is not None:
        meta["steport.labels"] = json.dumps(labels)
    for key in sorted(meta):
        wrapped.metadata_props.add(key=key, value=meta[key])
    if check:
        onnx.checker.check_model(wrapped)
    return wrapped


__all__ = ["wrap_image_model", "pack_images", "check_image_bytes", "labels_of",
           "ImageInputError", "DECODE_DOMAIN", "BAD_IMAGE_NODE"]
