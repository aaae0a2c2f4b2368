"""Build the model folder score.py loads: a TF1-style SavedModel folder `resnet50` that takes JPEG bytes.

production-deploy-to-aks-gpu.ipynb downloads TensorFlow's official ResNet-50 SavedModel
(resnet_v1_fp32_savedmodel_NCHW_jpg: tag `serve`, signature `serving_default` with one string input of JPEG
bytes and the outputs `classes` and `probabilities`), copies it to a folder `resnet50` and registers that
folder as the model `resnet50`. score.py loads it with tf.compat.v1.saved_model.loader.load, feeds
`[jpeg_bytes]` to the single input and returns output [1] of the signature's outputs.

This writes a tiny stand-in with the same interface: decode JPEG -> resize to 8x8 -> one dense layer -> 5
classes (weights fixed: class = which fifth of the image, left to right, is brightest). Same tag, signature
name, input dtype (string, shape [None]) and output names. Run it inside the sample's environment:

    python make_model.py      # writes model/resnet50/{saved_model.pb,variables/} and sample.jpg
"""
import os
import shutil

import numpy as np
import tensorflow.compat.v1 as tf

here = os.path.dirname(os.path.abspath(__file__))
out = os.path.join(here, "model", "resnet50")
shutil.rmtree(out, ignore_errors=True)

# Weights: feature (row, col, channel) of the 8x8x3 image votes for class col * 5 // 8.
W = np.zeros((8 * 8 * 3, 5), dtype=np.float32)
for r in range(8):
    for c in range(8):
        for ch in range(3):
            W[(r * 8 + c) * 3 + ch, c * 5 // 8] = 1.0

graph = tf.Graph()
with graph.as_default():
    image_bytes = tf.placeholder(tf.string, shape=[None], name="input_tensor")

    def decode(b):
        img = tf.image.decode_jpeg(b, channels=3)
        img = tf.image.resize(tf.cast(img, tf.float32), [8, 8]) / 255.0
        return tf.reshape(img, [8 * 8 * 3])

    x = tf.map_fn(decode, image_bytes, dtype=tf.float32)
    weights = tf.Variable(W, name="dense/kernel")
    bias = tf.Variable(np.zeros(5, dtype=np.float32), name="dense/bias")
    logits = tf.matmul(x, weights) + bias
    probabilities = tf.nn.softmax(logits, name="softmax_tensor")
    classes = tf.argmax(logits, axis=1, name="ArgMax")
    with tf.Session(graph=graph) as sess:
        sess.run(tf.global_variables_initializer())
        builder = tf.saved_model.builder.SavedModelBuilder(out)
        signature = tf.saved_model.signature_def_utils.predict_signature_def(
            inputs={"image_bytes": image_bytes},
            outputs={"classes": classes, "probabilities": probabilities})
        builder.add_meta_graph_and_variables(sess, ["serve"], signature_def_map={"serving_default": signature})
        builder.save()

# The upload: a 40x40 JPEG, dark except a bright vertical stripe in the fourth fifth (class 3).
img = np.zeros((40, 40, 3), dtype=np.uint8)
img[:, 24:32, :] = 255
with tf.Session(graph=tf.Graph()) as sess:
    jpeg = sess.run(tf.image.encode_jpeg(tf.constant(img), quality=95))
with open(os.path.join(here, "sample.jpg"), "wb") as f:
    f.write(jpeg)
print("tensorflow", tf.VERSION if hasattr(tf, "VERSION") else tf.__version__, "->", out,
      sorted(os.listdir(out)), "sample.jpg", len(jpeg), "bytes")
