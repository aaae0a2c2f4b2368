"""Train the model score.py loads: a linear regression of elevation on five weather features.

drift-on-aks.ipynb registered a prebuilt `elevation-regression-model.pkl` (linear regression predicting
elevation from latitude, longitude, temperature, windAngle, windSpeed; trained on NOAA weather data) under the
model name `elevation-regression-model.pkl`. This fits an equivalent on made-up weather rows, with the
scikit-learn the conda file resolves to (unpinned; Python 3.6), saved with the joblib that score.py picks
(`sklearn.externals.joblib` below scikit-learn 0.23, `joblib` from 0.23 on). Run it inside the sample's
environment:

    python make_model.py            # writes model/elevation-regression-model.pkl
"""
import os

import numpy as np
import sklearn
from packaging.version import Version
from sklearn.linear_model import LinearRegression

if Version(sklearn.__version__) < Version("0.23.0"):
    from sklearn.externals import joblib
else:
    import joblib

here = os.path.dirname(os.path.abspath(__file__))
os.makedirs(os.path.join(here, "model"), exist_ok=True)
rng = np.random.RandomState(0)
n = 200
X = np.column_stack([rng.uniform(25, 45, n),      # latitude
                     rng.uniform(-120, -75, n),   # longitude
                     rng.uniform(-5, 35, n),      # temperature
                     rng.uniform(0, 360, n),      # windAngle
                     rng.uniform(0, 15, n)])      # windSpeed
y = 0.5 * X[:, 0] - 0.05 * X[:, 1] - 0.3 * X[:, 2] + 0.001 * X[:, 3] + 0.2 * X[:, 4] + rng.normal(0, 0.1, n)
model = LinearRegression().fit(X, y)
path = os.path.join(here, "model", "elevation-regression-model.pkl")
joblib.dump(model, path)
print("scikit-learn", sklearn.__version__, "->", path, os.path.getsize(path), "bytes")
