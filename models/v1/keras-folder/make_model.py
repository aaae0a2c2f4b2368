"""Train the model folder score.py loads: a Keras MLP saved as model.json + model.h5 in a folder named `model`.

The notebook's training script (keras_mnist.py) builds Sequential([Dense(n_h1, relu), Dense(n_h2, relu),
Dense(10, softmax)]) on 784 MNIST pixels, writes `model.to_json()` to ./outputs/model/model.json and
`model.save_weights('./outputs/model/model.h5')`, and the notebook registers the folder `outputs/model` as
`keras-mlp-mnist`. This does the same with a small network (784-32-16-10) fitted for a few epochs on made-up
"digits" (the class is the image row band holding the bright pixels; no MNIST download), with the versions
the conda file pins (tensorflow=2.2.0, keras<=2.3.1, h5py<=2.10.0, Python 3.7). Run it inside the sample's
environment:

    python make_model.py            # writes model/model.json and model/model.h5
"""
import os

import numpy as np
import keras
from keras.layers import Dense
from keras.models import Sequential

here = os.path.dirname(os.path.abspath(__file__))
out = os.path.join(here, "model")
os.makedirs(out, exist_ok=True)


def digits(n, rng):
    """n 28x28 images flattened to 784 floats in [0, 1]: class k lights rows of band k (of 10 bands)."""
    y = rng.randint(0, 10, n)
    X = rng.uniform(0, 0.1, (n, 28, 28)).astype(np.float32)
    for i, k in enumerate(y):
        rows = [r for r in range(28) if min(r * 10 // 28, 9) == k]
        X[i, rows, 4:24] = 1.0
    return X.reshape(n, 784), y


rng = np.random.RandomState(0)
X, y = digits(2000, rng)
model = Sequential()
model.add(Dense(32, activation='relu', input_shape=(784,)))
model.add(Dense(16, activation='relu'))
model.add(Dense(10, activation='softmax'))
model.compile(loss='categorical_crossentropy', optimizer='adam', metrics=['accuracy'])
model.fit(X, keras.utils.to_categorical(y, 10), epochs=5, batch_size=50, verbose=0)
with open(os.path.join(out, "model.json"), "w") as f:
    f.write(model.to_json())
model.save_weights(os.path.join(out, "model.h5"))
print("keras", keras.__version__, "->", out, sorted(os.listdir(out)))
