"""Build the model score.py loads: an ONNX MNIST classifier with the ONNX Model Zoo model's interface.

onnx-inference-mnist-deploy.ipynb downloaded mnist-7 from the ONNX Model Zoo and registered its `model.onnx`
under the model name `mnist_1`. The zoo model takes `Input3` float32[1,1,28,28] and returns `Plus214_Output_0`
float32[1,10]. This writes a tiny stand-in with the same input and output names and shapes (a single linear
layer, deterministic weights, opset 13 / IR 8 so onnxruntime 1.15.1 loads it). It needs only the `onnx` package:

    python -m venv /tmp/v1s-onnx-make && /tmp/v1s-onnx-make/bin/pip install onnx==1.14.1 numpy
    /tmp/v1s-onnx-make/bin/python make_model.py      # writes model/model.onnx
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

here = os.path.dirname(os.path.abspath(__file__))
os.makedirs(os.path.join(here, "model"), exist_ok=True)

rng = np.random.RandomState(0)
# A "digit template" per class: pixels of the image's 10 horizontal bands vote for the class of their band,
# so an image whose bright pixels lie in band k is classified as k. Deterministic and easy to check.
W = np.full((784, 10), -0.01, dtype=np.float32)
for row in range(28):
    W[row * 28:(row + 1) * 28, min(row * 10 // 28, 9)] = 0.1
W += rng.normal(0, 1e-4, W.shape).astype(np.float32)
b = np.zeros((1, 10), dtype=np.float32)

graph = helper.make_graph(
    [helper.make_node("Flatten", ["Input3"], ["flat"], axis=1),
     helper.make_node("MatMul", ["flat", "W"], ["logits"]),
     helper.make_node("Add", ["logits", "b"], ["Plus214_Output_0"])],
    "mnist_standin",
    [helper.make_tensor_value_info("Input3", TensorProto.FLOAT, [1, 1, 28, 28])],
    [helper.make_tensor_value_info("Plus214_Output_0", TensorProto.FLOAT, [1, 10])],
    initializer=[numpy_helper.from_array(W, "W"), numpy_helper.from_array(b, "b")],
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="aks-serving make_model.py")
model.ir_version = 8
onnx.checker.check_model(model)
path = os.path.join(here, "model", "model.onnx")
onnx.save(model, path)
print("onnx", onnx.__version__, "->", path, os.path.getsize(path), "bytes")
