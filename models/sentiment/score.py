"""Entry script for the sentiment model, in Azure ML's init()/run() form.

Request:  {"data": ["some text", ...]}  and, for load tests, an optional "delayMs" the model waits first
Response: {"version": "v1", "scores": [probability the text is positive, ...], "labels": ["positive", ...]}
"""
import json
import os
import time

import numpy as np

model = None


def init():
    global model
    with open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "weights.json")) as f:
        model = json.load(f)
    # v1's layout: AZUREML_MODEL_DIR is azureml-models/<name>/<version> for a service with one model.
    model["version"] = "v" + os.path.basename(os.path.normpath(os.environ["AZUREML_MODEL_DIR"]))


def features(text):
    words = text.lower().split()
    return words + ([f"{a} {b}" for a, b in zip(words, words[1:])] if model["bigrams"] else [])


def run(raw_data):
    request = json.loads(raw_data)
    texts = request["data"]
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise ValueError("data must be a list of strings")
    time.sleep(min(float(request.get("delayMs", 0)), 30000) / 1000)  # a slow model, on demand
    weights = model["weights"]
    logits = np.array([model["bias"] + sum(weights.get(f, 0.0) for f in features(t)) for t in texts])
    scores = (1 / (1 + np.exp(-logits))).round(4)
    return {"version": model["version"], "scores": scores.tolist(),
            "labels": ["positive" if s > 0.5 else "negative" for s in scores]}
