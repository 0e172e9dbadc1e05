"""Training/eval samples: decode -> (train only) augment -> the served preprocessing -> model targets.

The last step is always ``detection.preprocess.preprocess`` with the manifest ``preprocessing`` the checkpoint
records, i.e. the Lambda's own NumPy code, so the network never sees a tensor the Lambda would not produce.
Augmentations: horizontal flip and a random crop (zoom in; objects less than 40 % visible are dropped, the rest
clipped) on the decoded uint8 image before it; brightness/contrast/saturation jitter after it, on the resized
pixels of the tensor (the padding is left as served), which is 4x cheaper than jittering the full-size photo.

Targets:

- RetinaNet: ``{"boxes": xyxy in input-tensor pixels, "labels": 0..K-1}``;
- D-FINE: ``{"class_labels": 0..K-1, "boxes": cxcywh normalized by the input size}`` (HF convention).

Example:
    >>> import numpy as np
    >>> from detection.manifest import InputSpec, Preprocessing
    >>> tensor, boxes = letterbox_sample(np.zeros((100, 200, 3), np.uint8), np.array([[0, 0, 200, 100.]]),
    ...     spec=Preprocessing(), input_spec=InputSpec("x", 64, 64))
    >>> tensor.shape, boxes.tolist()
    ((3, 64, 64), [[0.0, 0.0, 64.0, 32.0]])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from detection.manifest import InputSpec, Preprocessing
from detection.preprocess import Geometry, normalization, preprocess
from zoo import FAMILIES


def load_rgb(path) -> np.ndarray:
    """Decode an image file to RGB uint8 (H, W, 3), as stored (no EXIF rotation, like VOC tools)."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def letterbox_sample(image: np.ndarray, boxes: np.ndarray, *, spec: Preprocessing, input_spec: InputSpec,
                     ) -> tuple[np.ndarray, np.ndarray]:
    """The served tensor ``(3, H, W)`` and ``boxes`` (N, 4 xyxy source pixels) mapped into it."""
    tensor, geometry = preprocess(image, spec=spec, input_spec=input_spec)
    return tensor[0], map_boxes(boxes, geometry)


def map_boxes(boxes: np.ndarray, geometry: Geometry) -> np.ndarray:
    """xyxy source-pixel boxes -> input-tensor pixels (``tensor = source * scale + pad``)."""
    mapped = np.asarray(boxes, dtype=np.float32).reshape(-1, 4).copy()
    mapped[:, [0, 2]] = mapped[:, [0, 2]] * geometry.scale_x + geometry.pad_x
    mapped[:, [1, 3]] = mapped[:, [1, 3]] * geometry.scale_y + geometry.pad_y
    return mapped


@dataclass(frozen=True)
class AugmentConfig:
    flip: float = 0.5
    crop: float = 0.5
    min_crop: float = 0.6
    min_visible: float = 0.4
    brightness: float = 0.25
    contrast: float = 0.25
    saturation: float = 0.25


def augment(image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, *, rng: np.random.Generator,
            config: AugmentConfig = AugmentConfig()) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random flip / crop of a uint8 image and its xyxy boxes (returns new arrays); colours: ``jitter_colours``."""
    height, width = image.shape[:2]
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4).copy()
    if rng.uniform() < config.flip:
        image = image[:, ::-1]
        boxes[:, [0, 2]] = width - boxes[:, [2, 0]]
    if rng.uniform() < config.crop:
        scale = rng.uniform(config.min_crop, 1.0)
        crop_w, crop_h = max(8, int(width * scale)), max(8, int(height * rng.uniform(config.min_crop, 1.0)))
        x0, y0 = int(rng.integers(0, width - crop_w + 1)), int(rng.integers(0, height - crop_h + 1))
        image = image[y0:y0 + crop_h, x0:x0 + crop_w]
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        boxes = boxes - np.array([x0, y0, x0, y0], dtype=np.float32)
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, crop_w)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, crop_h)
        visible = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        keep = (visible >= config.min_visible * np.maximum(area, 1e-6)) & (boxes[:, 2] - boxes[:, 0] >= 2) \
            & (boxes[:, 3] - boxes[:, 1] >= 2)
        boxes, labels = boxes[keep], np.asarray(labels)[keep]
    return image, boxes, np.asarray(labels)


def jitter_colours(region: np.ndarray, *, rng: np.random.Generator, gain: np.ndarray, bias: np.ndarray,
                   config: AugmentConfig = AugmentConfig()) -> None:
    """Brightness / contrast / saturation jitter, in place, of a served ``(3, h, w)`` tensor region.

    Done after the resize, on the few input pixels rather than the full-size photo (the jitter is affine per
    pixel, so it commutes with the resize up to the 0..255 clip): ``tensor = pixel * gain + bias`` is undone,
    jittered in pixel units, clipped and redone. ``region`` is the resized image only, never the padding.
    """
    if not (config.brightness or config.contrast or config.saturation) or region.size == 0:
        return
    gain, bias = gain[:, None, None], bias[:, None, None]
    pixels = (region - bias) / gain
    if config.brightness:
        pixels *= rng.uniform(1 - config.brightness, 1 + config.brightness)
    if config.contrast:
        mean = pixels.mean()
        pixels = (pixels - mean) * rng.uniform(1 - config.contrast, 1 + config.contrast) + mean
    if config.saturation:
        grey = pixels.mean(axis=0, keepdims=True)
        pixels = (pixels - grey) * rng.uniform(1 - config.saturation, 1 + config.saturation) + grey
    np.clip(pixels, 0, 255, out=pixels)
    np.multiply(pixels, gain, out=region)
    region += bias


class DetectionSamples(torch.utils.data.Dataset):
    """``records`` -> ``(tensor, target, index)`` in the family's target convention.

    With ``train=True`` every fetch is augmented with a generator seeded by ``(seed, epoch, index)``, so a
    run (and a resumed run) is reproducible for the same seed.
    """

    def __init__(self, records: Sequence, *, classes: Sequence[str], family: str, preprocessing: dict,
                 input_size: tuple[int, int], train: bool, seed: int = 0, augment_config: AugmentConfig = AugmentConfig()):
        self.records = list(records)
        self.class_index = {name: i for i, name in enumerate(classes)}
        self.family = family
        self.spec = Preprocessing(**{**preprocessing, "mean": _tuple(preprocessing.get("mean")),
                                     "std": _tuple(preprocessing.get("std"))})
        self.input_spec = InputSpec("images", int(input_size[0]), int(input_size[1]))
        self.gain, self.bias = normalization(self.spec)  # tensor = pixel * gain + bias, for the colour jitter
        self.train = train
        self.seed = seed
        self.epoch = 0
        self.augment_config = augment_config

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int):
        record = self.records[index]
        image = load_rgb(record.path)
        boxes = np.array([o.box for o in record.objects], dtype=np.float32).reshape(-1, 4)
        labels = np.array([self.class_index[o.label] for o in record.objects], dtype=np.int64)
        rng = np.random.default_rng([self.seed, self.epoch, index]) if self.train else None
        if rng is not None:
            image, boxes, labels = augment(image, boxes, labels, rng=rng, config=self.augment_config)
        tensor, geometry = preprocess(image, spec=self.spec, input_spec=self.input_spec)
        tensor = tensor[0]
        if rng is not None:
            jitter_colours(tensor[:, geometry.pad_y:geometry.pad_y + geometry.resized_height,
                                  geometry.pad_x:geometry.pad_x + geometry.resized_width],
                           rng=rng, gain=self.gain, bias=self.bias, config=self.augment_config)
        mapped = map_boxes(boxes, geometry)
        return torch.from_numpy(tensor), make_target(mapped, labels, family=self.family,
                                                     input_size=(self.input_spec.height, self.input_spec.width)), index


def make_target(boxes: np.ndarray, labels: np.ndarray, *, family: str, input_size: tuple[int, int]) -> dict:
    """One image's target as ``family`` (a ``zoo.FAMILIES`` key) trains on it."""
    boxes_t = torch.as_tensor(np.asarray(boxes, dtype=np.float32).reshape(-1, 4))
    labels_t = torch.as_tensor(np.asarray(labels, dtype=np.int64).reshape(-1))
    return FAMILIES[family].make_target(boxes_t, labels_t, input_size=input_size)


def collate(batch):
    tensors, targets, indices = zip(*batch)
    return torch.stack(tensors), list(targets), list(indices)


def _tuple(value):
    return tuple(value) if value is not None else None
