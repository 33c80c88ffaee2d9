"""The model's input pixels as the engine makes them (src/image.c), in numpy and PIL only: the
training and evaluation scripts that need no PyTorch import them from here."""
import numpy as np
from PIL import Image


def preprocess(image, size):
    """SiglipImageProcessor's slow path: PIL bicubic resize of the whole image to size x size
    (aspect not kept), x * (1/255) in double rounded to float32, (x - 0.5) / 0.5, CHW."""
    return normalize(np.asarray(resize(image, size)))


def resize(image, size):
    image = image.convert("RGB")
    if image.size != (size, size):
        image = image.resize((size, size), Image.BICUBIC)
    return image


def normalize(u8_hwc):
    x = (u8_hwc.astype(np.float64) * (1 / 255)).astype(np.float32)
    x = (x - np.float32(0.5)) / np.float32(0.5)
    return np.ascontiguousarray(x.transpose(2, 0, 1))
