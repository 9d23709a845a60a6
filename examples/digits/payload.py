"""Reading a /predict request body into a pixel matrix, and naming what is wrong when it cannot.

Pure functions: bytes or a decoded JSON document in, an (n, 64) float array out, or an
``InvalidInput`` whose field points at the offending value (``images[3][17]``) and whose fix says
what to send instead.

Accepted shapes::

    {"image": [64 numbers]}              one image, pixels row by row
    {"image": [[8 numbers] x 8]}         one image as 8 rows
    {"images": [image, image, ...]}      up to MAX_IMAGES images, each in either shape above
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from numpy.typing import NDArray

from gs_engine.errors import InvalidInput

PIXELS = 64
SIDE = 8
MAX_PIXEL = 16.0
MAX_IMAGES = 1000
MAX_BODY_BYTES = 2 * 1024 * 1024
"""Room for MAX_IMAGES images written with long decimals; anything larger is refused unread."""

_SHAPE_FIX = 'send {"images": [[64 numbers 0..16], ...]} or {"image": [64 numbers 0..16]}'
_PIXEL_FIX = "each pixel is a number from 0 to 16, as in scikit-learn's digits data set"


def decode_json(body: bytes) -> Any:
    """The JSON document in a request body, or InvalidInput saying why it is not one."""
    if not body:
        raise InvalidInput("the request body is empty", fix=_SHAPE_FIX, field="body")
    try:
        return json.loads(body, parse_constant=_refuse_constant)
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"the body is not UTF-8 text: {exc.reason}", fix=_SHAPE_FIX, field="body") from exc
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"the body is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            fix=_SHAPE_FIX,
            field="body",
        ) from exc


def _refuse_constant(name: str) -> Any:
    raise InvalidInput(f"{name} is not a valid pixel value", fix=_PIXEL_FIX, field="body")


def parse_images(document: Any, max_images: int = MAX_IMAGES) -> NDArray[np.float64]:
    """The images in a decoded /predict document, as an (n, 64) float array, n >= 1."""
    if not isinstance(document, dict):
        raise InvalidInput(
            f"the body must be a JSON object, not {_json_type(document)}", fix=_SHAPE_FIX, field="body"
        )
    has_one, has_many = "image" in document, "images" in document
    if has_one and has_many:
        raise InvalidInput('give either "image" or "images", not both', fix=_SHAPE_FIX, field="body")
    if has_one:
        return np.asarray([_flatten_image(document["image"], "image")], dtype=np.float64)
    if not has_many:
        keys = ", ".join(sorted(str(k) for k in document)) or "none"
        raise InvalidInput(
            f'the body has no "images" or "image" field (fields given: {keys})',
            fix=_SHAPE_FIX,
            field="images",
        )
    images = document["images"]
    if not isinstance(images, list):
        raise InvalidInput(
            f'"images" must be a list of images, not {_json_type(images)}', fix=_SHAPE_FIX, field="images"
        )
    if not images:
        raise InvalidInput('"images" is empty', fix="send at least one image", field="images")
    if len(images) > max_images:
        raise InvalidInput(
            f"{len(images)} images in one request; at most {max_images} are accepted",
            fix=f"split the batch into requests of at most {max_images} images",
            field="images",
        )
    rows = [_flatten_image(image, f"images[{i}]") for i, image in enumerate(images)]
    return np.asarray(rows, dtype=np.float64)


def _flatten_image(image: Any, field: str) -> list[float]:
    """64 pixel values from a flat list of 64 or 8 rows of 8, each checked to be a number in 0..16."""
    if not isinstance(image, list):
        raise InvalidInput(
            f"an image must be a list of {PIXELS} numbers, not {_json_type(image)}",
            fix=_SHAPE_FIX,
            field=field,
        )
    if len(image) == SIDE and all(isinstance(row, list) for row in image):
        pixels: list[float] = []
        for r, row in enumerate(image):
            if len(row) != SIDE:
                raise InvalidInput(
                    f"row {r} of an 8x8 image has {len(row)} values, not {SIDE}",
                    fix=f"send {SIDE} rows of {SIDE} numbers, or one flat list of {PIXELS}",
                    field=f"{field}[{r}]",
                )
            for c, value in enumerate(row):
                pixels.append(_pixel(value, f"{field}[{r}][{c}]"))
        return pixels
    if len(image) != PIXELS:
        raise InvalidInput(
            f"an image has {PIXELS} pixels (8x8), this one has {len(image)} values",
            fix=f"send {PIXELS} numbers row by row, or {SIDE} rows of {SIDE}",
            field=field,
        )
    return [_pixel(value, f"{field}[{i}]") for i, value in enumerate(image)]


def _pixel(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"a pixel must be a number, not {_json_type(value)}", fix=_PIXEL_FIX, field=field)
    if not 0 <= value <= MAX_PIXEL:  # also false for NaN and infinities
        raise InvalidInput(f"pixel value {value!r} is outside 0..16", fix=_PIXEL_FIX, field=field)
    return float(value)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
