"""Images for inference (paper IV.A.2): folders, scikit-image photographs, preprocessing.

Light to import: numpy and Pillow only, no torch.
"""

from carbonedge.data.images import (
    IMAGE_SUFFIXES,
    MAX_IMAGES,
    SKIMAGE_PHOTOGRAPHS,
    ImageSet,
    find_images,
    load_images,
    read_image,
    read_pixels,
    skimage_photographs,
)
from carbonedge.data.preprocess import (
    IMAGE_SIZE_PX,
    IMAGENET_MEAN,
    IMAGENET_STD,
    MAX_ASPECT_RATIO,
    MAX_IMAGE_PIXELS,
    MAX_RESIZED_PIXELS,
    ImageTooLargeError,
    check_image_size,
    crop_pixels,
    model_input,
    normalize_pixels,
    preprocess,
    to_rgb,
)

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMAGE_SIZE_PX",
    "IMAGE_SUFFIXES",
    "MAX_ASPECT_RATIO",
    "MAX_IMAGES",
    "MAX_IMAGE_PIXELS",
    "MAX_RESIZED_PIXELS",
    "SKIMAGE_PHOTOGRAPHS",
    "ImageSet",
    "ImageTooLargeError",
    "check_image_size",
    "crop_pixels",
    "find_images",
    "load_images",
    "model_input",
    "normalize_pixels",
    "preprocess",
    "read_image",
    "read_pixels",
    "skimage_photographs",
    "to_rgb",
]
