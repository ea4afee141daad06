"""Your own images, one sub-folder per class, read with torchvision's ImageFolder.

data/images/train/cat/001.jpg      training images; validation_split holds some out
data/images/train/dog/002.png
data/images/test/cat/101.jpg       held-out images for test.py (same class folders)
"""

import random
from pathlib import Path

from PIL import Image, ImageDraw
from torchvision import transforms
from torchvision.datasets import ImageFolder

from base import BaseDataLoader

# Channel statistics of ImageNet: a sound default for photos; recompute them for unusual images.
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class ImageFolderDataLoader(BaseDataLoader):
    """RGB images resized to `image_size`; the class names are the sub-folder names, sorted.

    Training images are randomly cropped and flipped (augmentation); validation and test images
    are only resized and centre-cropped, so their scores are comparable from epoch to epoch.
    """

    def __init__(
        self,
        data_dir: str,
        batch_size: int,
        image_size: int = 64,
        shuffle: bool = True,
        validation_split: float = 0.0,
        num_workers: int = 0,
        training: bool = True,
        seed: int = 0,
    ) -> None:
        folder = Path(data_dir, "train" if training else "test")
        plain = transforms.Compose(
            [
                transforms.Resize(image_size),
                transforms.CenterCrop(image_size),
                transforms.ToTensor(),
                transforms.Normalize(MEAN, STD),
            ]
        )
        augmented = transforms.Compose(
            [
                transforms.RandomResizedCrop(image_size, scale=(0.7, 1.0)),
                transforms.RandomHorizontalFlip(),
                transforms.ToTensor(),
                transforms.Normalize(MEAN, STD),
            ]
        )
        dataset = _image_folder(folder, augmented if training else plain)
        super().__init__(
            dataset,
            batch_size,
            shuffle=shuffle and training,
            validation_split=validation_split if training else 0.0,
            num_workers=num_workers,
            seed=seed,
            valid_dataset=ImageFolder(folder, plain) if training else None,
        )
        self.classes = dataset.classes

    @staticmethod
    def write_sample(data_dir: str | Path, per_class: int = 12, size: int = 24) -> None:
        """Draw small images of three shapes into train/ and test/, for offline tests and smoke runs."""
        rng = random.Random(0)
        for split, count in (("train", per_class), ("test", per_class // 2)):
            for shape in ("circle", "square", "triangle"):
                folder = Path(data_dir, split, shape)
                folder.mkdir(parents=True, exist_ok=True)
                for i in range(count):
                    image = Image.new("RGB", (size, size), tuple(rng.randrange(0, 80) for _ in range(3)))
                    x, y, r = rng.randrange(7, size - 7), rng.randrange(7, size - 7), rng.randrange(4, 7)
                    colour = tuple(rng.randrange(150, 256) for _ in range(3))
                    draw = ImageDraw.Draw(image)
                    if shape == "circle":
                        draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
                    elif shape == "square":
                        draw.rectangle((x - r, y - r, x + r, y + r), fill=colour)
                    else:
                        draw.polygon([(x, y - r), (x - r, y + r), (x + r, y + r)], fill=colour)
                    image.save(folder / f"{i:03d}.png")


def _image_folder(folder: Path, transform) -> ImageFolder:
    """torchvision's ImageFolder, with a message that shows the layout it expects."""
    try:
        return ImageFolder(folder, transform)
    except (FileNotFoundError, OSError) as exc:
        raise FileNotFoundError(
            f"no images in {folder.absolute()} ({str(exc).splitlines()[0].rstrip('.')}); "
            f"put them in one sub-folder per class, e.g. {folder / 'cat' / '001.jpg'}"
        ) from None
