"""Regenerates the RandomAugment fixtures in this folder from BLIP's own code.

    cd data/image/testdata/randaugment && python3 gen.py /path/to/salesforce/BLIP/transform/randaugment.py

BLIP's file is imported from the given path (it is not copied here). Each case applies one of its
op functions (func_dict) with an explicit argument, as RandomAugment.__call__ does after
arg_dict[name](level) has drawn the sign; geometric ops get BLIP's replace_value (128, 128, 128).
Writes in_<image>.npy (H, W, 3 uint8), out_<image>.npy (K, H, W, 3 uint8) and cases.txt
("<image> <op> <arg>" per line, in the order of each image's outputs). The committed files were
made with Debian bookworm's python3-numpy 1.24.2 and python3-opencv 4.6.0.
"""
import importlib.util
import sys

import numpy as np

spec = importlib.util.spec_from_file_location("blip_randaugment", sys.argv[1])
ra = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ra)

rng = np.random.RandomState(20240601)
images = {}
images["noise"] = rng.randint(0, 256, size=(11, 13, 3)).astype(np.uint8)
low = np.empty((11, 13, 3), np.uint8)
low[..., 0] = rng.randint(40, 201, size=(11, 13))  # min > 0: BLIP's AutoContrast saturates it
low[..., 1] = rng.randint(0, 121, size=(11, 13))   # min 0: a plain stretch
low[..., 1].flat[0] = 0
low[..., 2] = 90                                   # constant: unchanged
images["lowc"] = low
yy, xx = np.mgrid[0:20, 0:24]
grad = np.empty((20, 24, 3), np.uint8)
grad[..., 0] = (xx * 255 // 23)
grad[..., 1] = (yy * 255 // 19)
grad[..., 2] = ((xx // 4 + yy // 4) % 2) * 200 + 20
images["grad"] = grad
# A skewed histogram large enough for Equalize's step to exceed 1.
skew = (rng.beta(2, 5, size=(32, 36, 3)) * 255).astype(np.uint8)
images["skew"] = skew

geo = [
    ("Rotate", [0.0, 15.0, -15.0, 30.0, -30.0, 3.0, 45.7, 90.0, -90.0, 180.0]),
    ("ShearX", [0.15, -0.15, 0.3, -0.3, 0.03]),
    ("ShearY", [0.15, -0.15, 0.3, -0.3, 0.03]),
    ("TranslateX", [5.0, -5.0, 10.0, -10.0, 3.5, 0.3, -0.7]),
    ("TranslateY", [5.0, -5.0, 10.0, -10.0, 3.5, 0.3, -0.7]),
]
value = [
    ("Identity", [None]),
    ("AutoContrast", [None]),
    ("Equalize", [None]),
    ("Solarize", [0, 77, 128, 256]),
    ("Posterize", [0, 1, 2, 4]),
    ("Brightness", [0.1, 0.55, 1.0, 1.37, 1.9]),
    ("Contrast", [0.1, 0.55, 1.0, 1.9]),
    ("Color", [0.1, 0.55, 1.0, 1.9]),
    ("Sharpness", [0.0, 0.1, 0.55, 1.0, 1.9]),
]
plan = {
    "noise": value + geo,
    "lowc": [("AutoContrast", [None]), ("Equalize", [None]), ("Contrast", [0.55]), ("Sharpness", [1.9])],
    "grad": value + geo,
    "skew": [("AutoContrast", [None]), ("Equalize", [None]), ("Sharpness", [0.1, 1.9]), ("Rotate", [15.0, -15.0])],
}

lines = []
for name, img in images.items():
    np.save("in_%s.npy" % name, img)
    outs = []
    for op, args in plan[name]:
        for a in args:
            f = ra.func_dict[op]
            if a is None:
                out = f(img.copy())
            elif op in ("Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY"):
                out = f(img.copy(), a, (128, 128, 128))
            else:
                out = f(img.copy(), a)
            out = np.asarray(out)
            assert out.dtype == np.uint8 and out.shape == img.shape, (op, a, out.dtype, out.shape)
            outs.append(out)
            lines.append("%s %s %s" % (name, op, "-" if a is None else repr(a)))
    np.save("out_%s.npy" % name, np.stack(outs))
with open("cases.txt", "w") as f:
    f.write("\n".join(lines) + "\n")
