"""Write sample-request.json: {"data": float[1][1][28][28]}, a bar of bright pixels in rows 14-16 (band 5)."""
import json, os
img = [[0.0] * 28 for _ in range(28)]
for r in (14, 15, 16):
    for c in range(6, 22):
        img[r][c] = 1.0
here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "sample-request.json"), "w") as f:
    json.dump({"data": [[img]]}, f)
