"""Train the model score.py loads, as MLOpsPython's diabetes_regression/training/train.py does.

train.py fits `Ridge(alpha=0.4)` (parameters.json) on data/diabetes.csv (scikit-learn's diabetes data, columns
AGE..S6 and Y) split 80/20 with random_state=0, and register_model.py registers the joblib file under the name
`diabetes_model.pkl`. This does the same with scikit-learn's copy of the data. Run it inside the sample's
environment (the conda file leaves scikit-learn unpinned; Python 3.7):

    python make_model.py            # writes model/diabetes_model.pkl
"""
import os

import joblib
import sklearn
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge
from sklearn.model_selection import train_test_split

here = os.path.dirname(os.path.abspath(__file__))
os.makedirs(os.path.join(here, "model"), exist_ok=True)
X, y = load_diabetes(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)
model = Ridge(alpha=0.4).fit(X_train, y_train)
path = os.path.join(here, "model", "diabetes_model.pkl")
joblib.dump(model, path)
print("scikit-learn", sklearn.__version__, "->", path, os.path.getsize(path), "bytes")
