"""The sample's pictures, drawn with Pillow: hands with a message, cards, a child's face.

Nothing is downloaded or copied from anywhere: every picture is a drawing made
from the post's words, so the demo needs no network and shows no real person.
"""

from __future__ import annotations

import os
import random
import tempfile
import textwrap
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from monitor.demo.sample import SampleImage, SamplePost

WIDTH, HEIGHT = 800, 600
SKIN_TONES = ((241, 194, 167), (224, 172, 105), (198, 134, 66), (141, 85, 36), (92, 56, 30))
BACKGROUNDS = ((200, 225, 245), (250, 228, 200), (220, 240, 215), (240, 215, 235), (235, 235, 220))
INKS = ((30, 30, 120), (120, 20, 60), (20, 90, 40), (40, 40, 40))
CARD_COLOURS = ((255, 250, 235), (255, 240, 245), (240, 250, 255))
PURPLE = (102, 45, 145)


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _centred_text(
    draw: ImageDraw.ImageDraw,
    centre: tuple[float, float],
    words: str,
    *,
    size: int,
    fill: tuple[int, int, int],
    width: int,
) -> None:
    text = "\n".join(textwrap.wrap(words, width=width)) or words
    draw.multiline_text(centre, text, font=_font(size), fill=fill, anchor="mm", align="center")


def _hand(draw: ImageDraw.ImageDraw, rng: random.Random, words: str) -> None:
    """An open palm: four fingers, a thumb and the message in marker on the palm."""
    skin = rng.choice(SKIN_TONES)
    outline = tuple(max(0, c - 50) for c in skin)
    left, top = 250, 250
    draw.rounded_rectangle(
        (left, top, left + 300, top + 330), radius=90, fill=skin, outline=outline
    )
    for index, (height, offset) in enumerate(((200, 10), (240, 0), (225, 5), (170, 30))):
        x = left + 8 + index * 74
        y = top - height + 60 + offset
        draw.rounded_rectangle((x, y, x + 62, top + 80), radius=31, fill=skin, outline=outline)
    draw.rounded_rectangle((left - 120, top + 90, left + 40, top + 160), radius=35, fill=skin)
    draw.rounded_rectangle(
        (left + 10, top + 60, left + 290, top + 320), radius=80, fill=skin
    )  # the palm drawn again over the finger roots
    _centred_text(draw, (left + 150, top + 190), words, size=34, fill=rng.choice(INKS), width=12)


def _card(draw: ImageDraw.ImageDraw, rng: random.Random, words: str) -> None:
    draw.rectangle((110, 90, 690, 510), fill=rng.choice(CARD_COLOURS), outline=PURPLE, width=6)
    _centred_text(draw, (400, 270), words, size=52, fill=rng.choice(INKS), width=16)
    _centred_text(draw, (400, 450), "#HelpingHands", size=30, fill=PURPLE, width=30)


def _face(draw: ImageDraw.ImageDraw, rng: random.Random, name: str) -> None:
    """A cartoon child's face: the kind of picture a moderator must not publish."""
    skin = rng.choice(SKIN_TONES)
    hair = rng.choice(((60, 40, 20), (200, 160, 60), (20, 20, 20), (150, 70, 30)))
    draw.ellipse((230, 90, 570, 450), fill=hair)
    draw.ellipse((255, 130, 545, 450), fill=skin)
    for x in (335, 465):
        draw.ellipse((x - 22, 250, x + 22, 290), fill=(255, 255, 255))
        draw.ellipse((x - 10, 260, x + 10, 285), fill=(40, 30, 20))
    draw.arc((330, 300, 470, 400), start=20, end=160, fill=(150, 40, 40), width=8)
    draw.rounded_rectangle((560, 300, 700, 520), radius=40, fill=skin)
    _centred_text(draw, (630, 410), name, size=28, fill=rng.choice(INKS), width=8)


def draw_image(image: SampleImage) -> Image.Image:
    """The picture for one sample image (the same every time for the same image)."""
    rng = random.Random(f"{image.style}:{image.words}:{image.variant}")
    picture = Image.new("RGB", (WIDTH, HEIGHT), rng.choice(BACKGROUNDS))
    draw = ImageDraw.Draw(picture)
    _scenery(draw, rng)
    if image.style == "hand":
        _hand(draw, rng, image.words)
    elif image.style == "card":
        _card(draw, rng, image.words)
    else:
        _face(draw, rng, image.words)
    return _framed(picture, rng)


def _scenery(draw: ImageDraw.ImageDraw, rng: random.Random) -> None:
    """Whatever is behind the hand: soft shapes of furniture, walls and windows."""
    for _ in range(rng.randint(4, 8)):
        x, y = rng.randint(-100, WIDTH), rng.randint(-100, HEIGHT)
        w, h = rng.randint(80, 400), rng.randint(80, 400)
        shade = tuple(rng.randint(60, 240) for _ in range(3))
        draw.rectangle((x, y, x + w, y + h), fill=shade)


def _framed(picture: Image.Image, rng: random.Random) -> Image.Image:
    """The drawing as a phone frames it: turned, zoomed and shifted a little, each picture
    its own way. Without this every drawn hand is one template, and a perceptual hash
    rightly takes two different messages for reposts of one picture."""
    background = picture.getpixel((0, 0))
    zoom = rng.uniform(1.0, 1.35)
    turned = picture.rotate(
        rng.uniform(-25, 25), resample=Image.Resampling.BICUBIC, fillcolor=background
    )
    width, height = int(WIDTH / zoom), int(HEIGHT / zoom)
    left = rng.randint(0, WIDTH - width)
    top = rng.randint(0, HEIGHT - height)
    return turned.crop((left, top, left + width, top + height)).resize((WIDTH, HEIGHT))


def image_name(post: SamplePost) -> str:
    return f"{post.sid}.jpg"


def ensure_image(post: SamplePost, directory: Path) -> Path:
    """The post's image file in ``directory``, drawn on first use (written atomically)."""
    if post.image is None:
        raise ValueError(f"sample post {post.sid} has no image")
    path = directory / image_name(post)
    if not path.is_file():
        directory.mkdir(parents=True, exist_ok=True)
        fd, partial = tempfile.mkstemp(dir=directory, prefix=".draw-", suffix=".jpg")
        try:
            with os.fdopen(fd, "wb") as handle:
                draw_image(post.image).save(handle, format="JPEG", quality=85)
            os.replace(partial, path)
        except BaseException:
            Path(partial).unlink(missing_ok=True)
            raise
    return path
