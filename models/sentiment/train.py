"""Train the two versions of the sentiment model served by the `sentiment` endpoint.

A bag-of-words logistic regression fitted with numpy on `corpus.tsv` (label TAB text):
v1 uses words, v2 words and word pairs. Each version is a JSON file of weights:
    python models/sentiment/train.py
"""
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def features(text: str, bigrams: bool) -> list[str]:
    words = text.lower().split()
    return words + ([f"{a} {b}" for a, b in zip(words, words[1:])] if bigrams else [])


def fit(rows: list[tuple[int, str]], bigrams: bool, steps: int = 2000, rate: float = 0.5) -> dict:
    vocabulary = sorted({f for _, text in rows for f in features(text, bigrams)})
    index = {f: i for i, f in enumerate(vocabulary)}
    x = np.zeros((len(rows), len(vocabulary)))
    for r, (_, text) in enumerate(rows):
        for f in features(text, bigrams):
            x[r, index[f]] += 1
    y = np.array([label for label, _ in rows], dtype=float)
    weights, bias = np.zeros(len(vocabulary)), 0.0
    for _ in range(steps):  # plain gradient descent with a little L2, enough for a few dozen rows
        p = 1 / (1 + np.exp(-(x @ weights + bias)))
        weights -= rate * (x.T @ (p - y) / len(rows) + 0.01 * weights)
        bias -= rate * float(np.mean(p - y))
    accuracy = float(np.mean((1 / (1 + np.exp(-(x @ weights + bias))) > 0.5) == y))
    return {"bigrams": bigrams, "bias": round(bias, 4), "trainingAccuracy": accuracy,
            "weights": {f: round(float(w), 4) for f, w in zip(vocabulary, weights) if abs(w) > 1e-3}}


def main() -> None:
    rows = [(int(label), text) for label, text in
            (line.split("\t", 1) for line in (HERE / "corpus.tsv").read_text().splitlines() if line)]
    for version, bigrams in (("v1", False), ("v2", True)):
        model = fit(rows, bigrams)
        out = HERE / f"model-{version}" / "weights.json"
        out.write_text(json.dumps(model, indent=1, sort_keys=True) + "\n")
        print(f"{version}: {len(model['weights'])} weights, training accuracy {model['trainingAccuracy']:.2f} -> {out}")


if __name__ == "__main__":
    main()
