"""Handwritten digits (MNIST) with ONNX Runtime on a GPU: the production stack's GPU service.

The model is v1's ONNX MNIST sample's (models/v1/onnx-mnist). ONNX Runtime wants its execution providers
named when a build has several; CUDA is asked for first. The providers the session got are printed at
start, and each answer says which one ran it, so a pod that fell back to the CPU (a node without the
GPU driver or device plugin) is visible in its logs and in its answers.
"""
import json
import os

import numpy as np
import onnxruntime

session = None


def init():
    global session
    model = os.path.join(os.environ["AZUREML_MODEL_DIR"], "model.onnx")
    session = onnxruntime.InferenceSession(model, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    print(f"mnist-gpu: ONNX Runtime {onnxruntime.__version__}, providers {session.get_providers()}")


def run(raw_data):
    images = np.asarray(json.loads(raw_data)["data"], dtype=np.float32)  # [batch, 1, 28, 28]
    scores = session.run(None, {session.get_inputs()[0].name: images})[0]
    return {"digits": [int(d) for d in np.argmax(scores.reshape(len(images), -1), axis=1)],
            "provider": session.get_providers()[0]}
