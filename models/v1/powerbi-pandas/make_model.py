"""Train the model score.py loads, as tutorial-power-bi-custom-model.md does ("Train the model"):

    X_df, y_df = Diabetes (Azure Open Datasets): AGE SEX BMI BP S1..S6 / Y, 442 rows
    model = Ridge().fit(X_df, y_df); joblib.dump(model, 'sklearn_regression_model.pkl')

registered as `my-sklearn-model`. Azure Open Datasets needs azureml-opendatasets and the internet; the same
442 unscaled rows ship with scikit-learn (`load_diabetes(scaled=False)`, lower-case column names), so the
frames are built from that with the Open Datasets column names. y stays a one-column DataFrame, as
`y.to_pandas_dataframe()` gave, so predict() returns one list per row. Run it inside the sample's environment
(scikit-learn 1.2.1, the conda file's pin):

    python make_model.py            # writes model/sklearn_regression_model.pkl
"""
import os

import joblib
import sklearn
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge

here = os.path.dirname(os.path.abspath(__file__))
os.makedirs(os.path.join(here, "model"), exist_ok=True)
frame = load_diabetes(scaled=False, as_frame=True).frame
frame.columns = [c.upper() for c in frame.columns[:-1]] + ["Y"]   # age..s6, target -> AGE..S6, Y
X_df = frame.drop(columns=["Y"])
y_df = frame[["Y"]]
model = Ridge().fit(X_df, y_df)
path = os.path.join(here, "model", "sklearn_regression_model.pkl")
joblib.dump(model, path)
print("scikit-learn", sklearn.__version__, "->", path, os.path.getsize(path), "bytes")
print("first two rows:", X_df[0:2].values.tolist())
print("their predictions:", model.predict(X_df[0:2]).tolist())
