"""Train the two models score.py loads, exactly as multi-model-register-and-deploy.ipynb does (cell 9).

    first_model = Ridge().fit(x, y); second_model = BayesianRidge().fit(x, y)   # diabetes data
    joblib.dump(...) -> first_model.pkl, second_model.pkl

registered as `my_first_model` and `my_second_model`. The notebook pins scikit-learn to the version it trained
with (`scikit-learn=={sklearn.__version__}`); this uses 1.3.2 (see SOURCE.md). Run it inside the sample's
environment:

    python make_model.py            # writes model/first_model.pkl, model/second_model.pkl
"""
import os

import joblib
import sklearn
from sklearn.datasets import load_diabetes
from sklearn.linear_model import BayesianRidge, Ridge

here = os.path.dirname(os.path.abspath(__file__))
os.makedirs(os.path.join(here, "model"), exist_ok=True)
x, y = load_diabetes(return_X_y=True)
first_model = Ridge().fit(x, y)
second_model = BayesianRidge().fit(x, y)
for name, m in (("first_model.pkl", first_model), ("second_model.pkl", second_model)):
    path = os.path.join(here, "model", name)
    joblib.dump(m, path)
    print("scikit-learn", sklearn.__version__, "->", path, os.path.getsize(path), "bytes")
