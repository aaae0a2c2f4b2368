"""Entry script for the diabetes regression, in Azure ML's init()/run() form.

Request:  {"data": [[age, sex, bmi, bp, s1, s2, s3, s4, s5, s6], ...]}  (scaled as in scikit-learn's data set)
Response: {"predictions": [disease progression one year on, ...]}
"""
import json
import os

import joblib
import numpy as np

model = None


def init():
    global model
    model = joblib.load(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model.joblib"))


def run(raw_data):
    rows = np.asarray(json.loads(raw_data)["data"], dtype=float)
    if rows.ndim != 2 or rows.shape[1] != model.n_features_in_:
        raise ValueError(f"data must be rows of {model.n_features_in_} numbers")
    return {"predictions": model.predict(rows).round(2).tolist()}
