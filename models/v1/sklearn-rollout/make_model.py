"""Train the model score.py loads: a Ridge regression on scikit-learn's diabetes data, saved with joblib.

The notebook registered a prebuilt `sklearn_regression_model.pkl` (Ridge on the diabetes data) under the model
name `sklearn_regression_model.pkl`. This makes an equivalent with the scikit-learn the conda file pins
(scikit-learn==0.22.1, numpy==1.23, Python 3.8). Run it inside the sample's environment:

    python make_model.py            # writes model/sklearn_regression_model.pkl
"""
import os

import joblib
import sklearn
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge

here = os.path.dirname(os.path.abspath(__file__))
os.makedirs(os.path.join(here, "model"), exist_ok=True)
X, y = load_diabetes(return_X_y=True)
model = Ridge().fit(X, y)
path = os.path.join(here, "model", "sklearn_regression_model.pkl")
joblib.dump(model, path)
print("scikit-learn", sklearn.__version__, "->", path, os.path.getsize(path), "bytes")
