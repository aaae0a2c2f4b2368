"""Train the diabetes regression served by the `diabetes` sample service.

Uses the diabetes data set that ships inside scikit-learn (no download). Run it with the
environment's own interpreter, so the saved model matches the scikit-learn the service runs:
    python models/diabetes/train.py
"""
from pathlib import Path

import joblib
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge
from sklearn.model_selection import train_test_split

OUT = Path(__file__).resolve().parent / "model" / "model.joblib"


def main() -> None:
    features, target = load_diabetes(return_X_y=True)
    train_x, test_x, train_y, test_y = train_test_split(features, target, test_size=0.2, random_state=0)
    model = Ridge(alpha=0.1).fit(train_x, train_y)
    print(f"R^2 on held-out data: {model.score(test_x, test_y):.3f}")
    joblib.dump(model, OUT)
    print(f"saved {OUT}")


if __name__ == "__main__":
    main()
