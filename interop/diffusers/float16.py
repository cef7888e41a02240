"""A float32 ONNX graph turned into float16, as `optimum-cli export onnx --fp16` or onnxconverter-common's
float16 conversion leave a model: every float initializer, constant and graph input/output in float16, Casts to float
retargeted to float16 — except the `scales` of Resize/Upsample, which ONNX requires in float32. Debian's torch 1.13
cannot trace a float16 UNet on the CPU (no float16 convolution there), so the fixture's float16 folder is made this
way from the float32 exports.

    /usr/bin/python3 interop/diffusers/float16.py IN.onnx OUT.onnx
"""
import sys

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper


def convert(source, destination):
    model = onnx.load(source)
    graph = model.graph
    float32 = {n.input[2] for n in graph.node if n.op_type in ("Resize", "Upsample") and len(n.input) > 2}
    for i, tensor in enumerate(graph.initializer):
        if tensor.data_type == TensorProto.FLOAT and tensor.name not in float32:
            half = numpy_helper.to_array(tensor).astype(np.float16)
            graph.initializer[i].CopyFrom(numpy_helper.from_array(half, tensor.name))
    for node in graph.node:
        for attribute in node.attribute:
            if (attribute.type == onnx.AttributeProto.TENSOR and attribute.t.data_type == TensorProto.FLOAT
                    and not (node.op_type == "Constant" and node.output[0] in float32)):
                half = numpy_helper.to_array(attribute.t).astype(np.float16)
                attribute.t.CopyFrom(numpy_helper.from_array(half, attribute.t.name))
            if node.op_type == "Cast" and attribute.name == "to" and attribute.i == TensorProto.FLOAT:
                attribute.i = TensorProto.FLOAT16
    for value in list(graph.input) + list(graph.output):
        if value.type.tensor_type.elem_type == TensorProto.FLOAT:
            value.type.tensor_type.elem_type = TensorProto.FLOAT16
    del graph.value_info[:]  # the float32 shapes inferred at export; ONNX Runtime infers them again
    onnx.save(model, destination)


if __name__ == "__main__":
    convert(sys.argv[1], sys.argv[2])
