"""The labelled image set the detectors are measured on, generated, never collected.

Every picture is made here from things that are free to use:

- **hands** are drawn with Pillow (a palm, fingers and a thumb in one of five skin
  tones, shaded), with words "written" on the palm: the fonts that ship with
  matplotlib (DejaVu, STIX, Computer Modern), each letter nudged and the line
  bent a little so it looks hand-lettered, in several sizes, angles, ink colours
  and lightings. These are drawings of hands, not photographs: real marker on
  real skin is harder to read (see docs/image-safety.md);
- **faces** are public-domain photos of adults that ship in the packages used here
  (scikit-image's ``astronaut``, Eileen Collins, NASA, and ``camera``, CC0 by Lav
  Varshney; matplotlib's ``grace_hopper.jpg``, US Navy), the same faces cut out and
  pasted into drawn scenes at several sizes, angles and lightings, alone and in
  groups, and drawn cartoon faces; never a photo of a real child;
- **reposts** are scikit-image's photos cropped, re-encoded, shrunk, brightened
  and mirrored; other photos of the same set are the non-matches;
- the **benign** set is hands with harmless words, drawn crowds, skin-tone
  close-ups (smooth gradients and textures in skin colours) and text-only cards.

Nothing explicit is made or kept: the nudity detector is measured on the benign
set for false alarms only.

``python -m benchmarks.imageset --out DIR`` writes the set as JPEG files and a
``labels.json``; tests and benchmarks call the functions directly.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import math
import random
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont, ImageOps

SKIN_TONES = ((241, 194, 167), (224, 172, 105), (198, 134, 66), (141, 85, 36), (92, 56, 30))
INKS = ((20, 20, 110), (15, 15, 15), (130, 15, 40), (10, 80, 30))
FONTS = (
    "DejaVuSans.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSerif-Italic.ttf",
    "DejaVuSansMono-Bold.ttf",
    "STIXGeneralItalic.ttf",
    "cmss10.ttf",
)
LIGHTINGS = ("even", "dim", "bright", "side")

#: What is written on the hands that should be flagged, with the rule each must trip.
PERSONAL_WORDS = (
    ("Call 07700 900123", "uk_phone"),
    ("Text me 07700900456", "uk_phone"),
    ("+44 7700 900789", "uk_phone"),
    ("Ring 0116 496 0123", "uk_phone"),
    ("jo.bloggs@example.org", "email"),
    ("Eastgate Academy", "place"),
    ("St Mary's School", "place"),
    ("Millbrook Estate", "place"),
)
#: Harmless words, as the campaign's hands carry them.
BENIGN_WORDS = (
    "You are not alone",
    "Speak up",
    "Ask for help",
    "We see you",
    "Not your fault",
    "Tell someone",
    "Hope not harm",
    "Kids not criminals",
)
#: The place-name list the evaluation loads (the place words above are on it).
PLACE_NAMES = ("Eastgate Academy", "St Mary's School", "Millbrook Estate", "Riverside Primary")


@dataclasses.dataclass(frozen=True)
class Sample:
    """One labelled picture."""

    name: str
    image: Image.Image
    #: ``hand_personal``, ``hand_benign``, ``face``, ``repost``, ``original``, ``benign``.
    group: str
    #: Words written in it, if any.
    words: str = ""
    #: The rule the words must trip (``uk_phone``, ``email``, ``place``), if any.
    expect_rule: str = ""
    #: Faces a person would count in it.
    faces: int = 0
    #: For a repost, the name of the original it copies.
    copy_of: str = ""
    #: Where each face is (left, top, right, bottom), for the faces a person would count.
    face_boxes: tuple[tuple[int, int, int, int], ...] = ()


@lru_cache(maxsize=64)
def _font(name: str, size: int) -> ImageFont.FreeTypeFont:
    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name
    return ImageFont.truetype(str(path), size)


def _shade(colour: tuple[int, int, int], factor: float) -> tuple[int, int, int]:
    r, g, b = colour
    return (min(255, int(r * factor)), min(255, int(g * factor)), min(255, int(b * factor)))


def _hand_mask(size: tuple[int, int], rng: random.Random) -> tuple[Image.Image, tuple[int, int]]:
    """An open hand's silhouette and the centre of its palm."""
    width, height = size
    mask = Image.new("L", size, 0)
    draw = ImageDraw.Draw(mask)
    scale = min(width, height) / 768 * rng.uniform(0.75, 0.85)
    cx, cy = width / 2 + rng.uniform(-40, 40) * scale, height * 0.64
    palm_w, palm_h = 330 * scale, 360 * scale
    draw.rounded_rectangle(
        (cx - palm_w / 2, cy - palm_h / 2, cx + palm_w / 2, cy + palm_h / 2),
        radius=int(110 * scale),
        fill=255,
    )
    finger_w = palm_w / 4.3
    for index, length in enumerate((230, 270, 255, 200)):
        x = cx - palm_w / 2 + 8 * scale + index * (palm_w - 16 * scale) / 4
        top = cy - palm_h / 2 - length * scale
        draw.rounded_rectangle(
            (x, top, x + finger_w, cy - palm_h / 2 + 60 * scale),
            radius=int(finger_w / 2),
            fill=255,
        )
    thumb = [
        (cx - palm_w / 2 + 20 * scale, cy),
        (cx - palm_w / 2 - 150 * scale, cy - 120 * scale),
        (cx - palm_w / 2 - 120 * scale, cy - 170 * scale),
        (cx - palm_w / 2 + 30 * scale, cy - 90 * scale),
    ]
    draw.polygon(thumb, fill=255)
    draw.rectangle((cx - palm_w / 2.6, cy + palm_h / 2 - 20, cx + palm_w / 2.6, height), fill=255)
    return mask.filter(ImageFilter.GaussianBlur(2)), (int(cx), int(cy))


def _lettering(words: str, font: ImageFont.FreeTypeFont, rng: random.Random) -> Image.Image:
    """The words as a hand writes them: each letter a little off its line and angle."""
    size = font.size
    width = int(size * 0.75 * len(words) + size * 2)
    layer = Image.new("L", (width, int(size * 2.4)), 0)
    x = size * 0.5
    phase = rng.uniform(0, math.pi)
    for char in words:
        glyph_w = max(1, int(font.getlength(char)))
        if char != " ":
            glyph = Image.new("L", (glyph_w + size, size * 2), 0)
            ImageDraw.Draw(glyph).text((size / 2, size / 2), char, font=font, fill=255)
            glyph = glyph.rotate(rng.uniform(-8, 8), resample=Image.Resampling.BICUBIC)
            dy = math.sin(phase + x / (size * 3)) * size * 0.12 + rng.uniform(-2, 2)
            layer.paste(glyph, (int(x - size / 2), int(size * 0.2 + dy)), glyph)
        x += glyph_w * rng.uniform(0.95, 1.1)
    return layer.crop(layer.getbbox() or (0, 0, 1, 1))


def _light(image: Image.Image, lighting: str, rng: random.Random) -> Image.Image:
    if lighting == "even":
        return image
    arr = np.asarray(image).astype(np.float32)
    h, w = arr.shape[:2]
    if lighting == "dim":
        arr *= 0.55
    elif lighting == "bright":
        arr = arr * 1.15 + 25
    else:  # side: a gradient across the picture, as from a window
        ramp = np.linspace(0.45, 1.15, w, dtype=np.float32)[None, :, None]
        arr *= ramp if rng.random() < 0.5 else ramp[:, ::-1]
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def jpeg(image: Image.Image, quality: int = 85) -> Image.Image:
    """The image as it comes back from a platform: re-encoded as JPEG."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def hand(
    words: str,
    *,
    seed: int,
    font: str | None = None,
    text_size: int | None = None,
    angle: float | None = None,
    lighting: str | None = None,
    size: tuple[int, int] = (1024, 768),
) -> Image.Image:
    """A hand with ``words`` written across the palm, the choices not given drawn at random."""
    rng = random.Random(seed)
    skin = rng.choice(SKIN_TONES)
    background = tuple(rng.randint(90, 235) for _ in range(3))
    picture = Image.new("RGB", size, background)  # type: ignore[arg-type]
    mask, (cx, cy) = _hand_mask(size, rng)
    # Skin with a soft gradient and a little texture, so it is not a flat colour.
    skin_layer = Image.linear_gradient("L").resize(size).rotate(rng.uniform(0, 360))
    skin_img = Image.merge(
        "RGB",
        [
            ImageChops.add(Image.new("L", size, int(c * 0.85)), skin_layer.point(lambda v: v // 8))
            for c in skin
        ],
    )
    picture.paste(skin_img, (0, 0), mask)
    letters = _lettering(
        words,
        _font(font or rng.choice(FONTS), text_size or rng.choice((40, 52, 64))),
        rng,
    )
    max_w = int(min(size) * 0.42)
    if letters.width > max_w:
        letters = letters.resize((max_w, max(1, letters.height * max_w // letters.width)))
    letters = letters.rotate(
        angle if angle is not None else rng.uniform(-20, 20),
        expand=True,
        resample=Image.Resampling.BICUBIC,
    )
    ink = Image.new("RGB", letters.size, rng.choice(INKS))
    picture.paste(ink, (cx - letters.width // 2, cy - letters.height // 2), letters)
    picture = _light(picture, lighting or rng.choice(LIGHTINGS), rng)
    return jpeg(picture.filter(ImageFilter.GaussianBlur(0.6)), quality=rng.choice((75, 85, 92)))


#: Where the face is in each public-domain portrait (boxed by the model at a low
#: threshold, then checked by eye): the ground truth of the face evaluation.
PORTRAIT_FACES = {
    "astronaut": (181, 58, 270, 178),
    "camera": (202, 118, 258, 197),
    "grace_hopper": (173, 127, 359, 335),
}


def portraits() -> dict[str, Image.Image]:
    """The public-domain photos of (adult) faces the face detector is measured on."""
    from skimage import data

    hopper = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    return {
        "astronaut": Image.fromarray(data.astronaut()).convert("RGB"),
        "camera": Image.fromarray(data.camera()).convert("RGB"),
        "grace_hopper": Image.open(hopper).convert("RGB"),
    }


def photos() -> dict[str, Image.Image]:
    """scikit-image's public-domain photographs (no person but an adult astronaut)."""
    from skimage import data

    chosen = {
        "astronaut": data.astronaut(),
        "coffee": data.coffee(),
        "chelsea": data.chelsea(),
        "rocket": data.rocket(),
        "hubble": data.hubble_deep_field(),
        "immunohistochemistry": data.immunohistochemistry(),
    }
    return {name: Image.fromarray(array).convert("RGB") for name, array in chosen.items()}


#: Reposts PDQ is not made to survive: a crop of 5% a side moves the hash ~90 bits.
BEYOND_PDQ = frozenset({"cropped"})


def copies(original: Image.Image, seed: int) -> Iterator[tuple[str, Image.Image]]:
    """The ways a picture comes back as a repost (1% and 5% a side cropped off)."""
    rng = random.Random(seed)
    w, h = original.size
    yield "reencoded", jpeg(original, quality=35)
    yield "shrunk", jpeg(original.resize((w // 2, h // 2)), quality=80)
    for how, share in (("trimmed", 0.01), ("cropped", 0.05)):
        margin_w, margin_h = int(w * share), int(h * share)
        yield how, jpeg(original.crop((margin_w, margin_h, w - margin_w, h - margin_h)))
    yield "mirrored", jpeg(ImageOps.mirror(original))
    bright = _light(original, "bright", rng)
    yield "brightened", jpeg(bright)
    yield "upscaled", jpeg(original.resize((w * 2, h * 2)), quality=70)


def cartoon_face(seed: int, size: tuple[int, int] = (800, 600)) -> Image.Image:
    """A drawn face (an adult's proportions); the demo's and tests' stand-in for a person."""
    rng = random.Random(seed)
    picture = Image.new("RGB", size, tuple(rng.randint(150, 240) for _ in range(3)))  # type: ignore[arg-type]
    draw = ImageDraw.Draw(picture)
    skin = rng.choice(SKIN_TONES)
    w, h = size
    draw.ellipse((w * 0.3, h * 0.12, w * 0.7, h * 0.85), fill=_shade(skin, 0.6))
    draw.ellipse((w * 0.33, h * 0.2, w * 0.67, h * 0.85), fill=skin)
    for x in (0.43, 0.57):
        draw.ellipse((w * x - 18, h * 0.42, w * x + 18, h * 0.48), fill=(250, 250, 250))
        draw.ellipse((w * x - 8, h * 0.43, w * x + 8, h * 0.475), fill=(40, 30, 20))
    draw.line((w * 0.5, h * 0.5, w * 0.49, h * 0.6), fill=_shade(skin, 0.7), width=4)
    draw.arc((w * 0.43, h * 0.6, w * 0.57, h * 0.72), 20, 160, fill=(150, 40, 40), width=6)
    return jpeg(picture)


Box = tuple[int, int, int, int]


def scene(seed: int, size: tuple[int, int] = (1024, 768)) -> Image.Image:
    """A drawn room with no one in it: a lit wall, a floor, furniture-like blocks, noise."""
    rng = random.Random(seed)
    w, h = size
    wall = tuple(rng.randint(120, 230) for _ in range(3))
    picture = Image.new("RGB", size, wall)
    draw = ImageDraw.Draw(picture)
    draw.rectangle((0, int(h * rng.uniform(0.6, 0.75)), w, h), fill=_shade(wall, 0.6))  # type: ignore[arg-type]
    for _ in range(6):
        x0, y0 = rng.randint(0, w - 100), rng.randint(0, h - 100)
        colour = tuple(rng.randint(30, 220) for _ in range(3))
        draw.rectangle((x0, y0, x0 + rng.randint(60, 300), y0 + rng.randint(60, 300)), fill=colour)
    noise = np.random.default_rng(seed).normal(0, 5, (h, w, 1)).astype(np.float32)
    arr = np.asarray(picture).astype(np.float32) + noise
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def _head(name: str) -> tuple[Image.Image, Image.Image, Box]:
    """A portrait's head cut out with a feathered oval mask, and the face's box in it."""
    left, top, right, bottom = PORTRAIT_FACES[name]
    grow_w, grow_h = (right - left) // 2, (bottom - top) // 3
    area = (left - grow_w, top - grow_h, right + grow_w, bottom + grow_h)
    head = portraits()[name].crop(area)
    mask = Image.new("L", head.size, 0)
    ImageDraw.Draw(mask).ellipse((0, 0, head.width - 1, head.height - 1), fill=255)
    mask = mask.filter(ImageFilter.GaussianBlur(min(head.size) / 20))
    return head, mask, (grow_w, grow_h, grow_w + right - left, grow_h + bottom - top)


def pasted_faces(
    placements: list[tuple[str, int, float, tuple[int, int]]],
    *,
    seed: int,
    lighting: str = "even",
    mirror: bool = False,
) -> tuple[Image.Image, tuple[Box, ...]]:
    """A drawn scene with portrait heads pasted in, and where each face now is.

    Each placement is (portrait, face height in pixels, angle in degrees, centre). A
    rotated face's box is the box around its rotated corners.
    """
    picture = scene(seed)
    boxes: list[Box] = []
    for name, face_height, angle, (cx, cy) in placements:
        head, mask, (fl, ft, fr, fb) = _head(name)
        scale = face_height / (fb - ft)
        size = (max(1, round(head.width * scale)), max(1, round(head.height * scale)))
        head, mask = head.resize(size, Image.Resampling.LANCZOS), mask.resize(size)
        corners = [(fl * scale, ft * scale), (fr * scale, ft * scale),
                   (fr * scale, fb * scale), (fl * scale, fb * scale)]  # fmt: skip
        if angle:
            head = head.rotate(angle, expand=True, resample=Image.Resampling.BICUBIC)
            mask = mask.rotate(angle, expand=True, resample=Image.Resampling.BICUBIC)
            cos, sin = math.cos(math.radians(angle)), math.sin(math.radians(angle))
            ox, oy = size[0] / 2, size[1] / 2
            corners = [
                (ox + (x - ox) * cos + (y - oy) * sin + (head.width - size[0]) / 2,
                 oy - (x - ox) * sin + (y - oy) * cos + (head.height - size[1]) / 2)
                for x, y in corners
            ]  # fmt: skip
        x0, y0 = cx - head.width // 2, cy - head.height // 2
        picture.paste(head, (x0, y0), mask)
        xs, ys = [x0 + x for x, _ in corners], [y0 + y for _, y in corners]
        boxes.append((round(min(xs)), round(min(ys)), round(max(xs)), round(max(ys))))
    picture = _light(picture, lighting, random.Random(seed))
    if mirror:
        picture = ImageOps.mirror(picture)
        boxes = [(picture.width - r, t, picture.width - left, b) for left, t, r, b in boxes]
    return jpeg(picture, quality=85), tuple(boxes)


#: Face heights (pixels, in a 1024 x 768 picture) the single pasted faces are drawn at.
FACE_HEIGHTS = (240, 120, 60, 36, 24)
#: Angles the pasted faces are turned by (a head tilted, a phone held sideways).
FACE_ANGLES = (-25, 25, 60, 90)


def face_samples() -> Iterator[Sample]:
    """The portraits, their heads pasted into scenes, and drawn faces, each labelled."""
    pictures = portraits()
    for name, box in PORTRAIT_FACES.items():
        yield Sample(name, pictures[name], "face", faces=1, face_boxes=(box,))
    seed = 500
    centre = (512, 384)

    def pasted(label: str, placements: list[tuple[str, int, float, tuple[int, int]]],
               **how: object) -> Sample:  # fmt: skip
        image, boxes = pasted_faces(placements, seed=seed, **how)  # type: ignore[arg-type]
        return Sample(label, image, "face", faces=len(boxes), face_boxes=boxes)

    for name in PORTRAIT_FACES:
        for height in FACE_HEIGHTS:
            seed += 1
            yield pasted(f"{name}-face-{height}px", [(name, height, 0, centre)])
        for angle in FACE_ANGLES:
            seed += 1
            yield pasted(f"{name}-face-turned-{angle}", [(name, 120, angle, centre)])
        for lighting in ("dim", "bright", "side"):
            seed += 1
            yield pasted(f"{name}-face-{lighting}", [(name, 120, 0, centre)], lighting=lighting)
        seed += 1
        yield pasted(f"{name}-face-mirrored", [(name, 120, 0, (300, 300))], mirror=True)
    names = list(PORTRAIT_FACES)
    for group in range(4):
        seed += 1
        rng = random.Random(seed)
        placements = [
            (names[(group + n) % 3], rng.choice((40, 60, 90)), rng.uniform(-15, 15),
             (150 + n * 240, rng.randint(200, 560)))
            for n in range(4)
        ]  # fmt: skip
        yield pasted(f"group-{group}", placements)
    for index in range(3):
        w, h = 800, 600
        box = (int(w * 0.3), int(h * 0.12), int(w * 0.7), int(h * 0.85))
        yield Sample(f"drawn-face-{index}", cartoon_face(index), "drawn_face", faces=1,
                     face_boxes=(box,))  # fmt: skip


def crowd(seed: int, size: tuple[int, int] = (1024, 768)) -> Image.Image:
    """Rows of small drawn figures: a crowd at a distance (no face is recognisable)."""
    rng = random.Random(seed)
    picture = Image.new("RGB", size, (170, 190, 210))
    draw = ImageDraw.Draw(picture)
    for row in range(6):
        y = 200 + row * 90
        for column in range(14):
            x = 30 + column * 72 + rng.randint(-10, 10) + (row % 2) * 30
            skin = rng.choice(SKIN_TONES)
            coat = tuple(rng.randint(20, 200) for _ in range(3))
            draw.ellipse((x, y, x + 26, y + 30), fill=skin)
            draw.rounded_rectangle((x - 8, y + 30, x + 34, y + 110), radius=10, fill=coat)  # type: ignore[arg-type]
    return jpeg(picture)


def skin_closeup(seed: int, size: tuple[int, int] = (1024, 768)) -> Image.Image:
    """A close-up of skin: a smooth, lit gradient in one tone with pores and creases."""
    rng = random.Random(seed)
    skin = np.array(rng.choice(SKIN_TONES), dtype=np.float32)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    light = 0.75 + 0.35 * np.cos((xx - w * rng.random()) / w * math.pi) * np.cos(
        (yy - h * rng.random()) / h * math.pi
    )
    noise = np.random.default_rng(seed).normal(0, 6, (h, w)).astype(np.float32)
    arr = skin[None, None, :] * light[..., None] + noise[..., None]
    picture = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(picture)
    for _ in range(12):
        x0, y0 = rng.randint(0, w), rng.randint(0, h)
        draw.arc((x0, y0, x0 + rng.randint(100, 400), y0 + rng.randint(40, 120)), 0, 180,
                 fill=tuple(int(c * 0.8) for c in skin), width=2)  # type: ignore[arg-type]  # fmt: skip
    return jpeg(picture.filter(ImageFilter.GaussianBlur(1.2)))


def text_card(words: str, seed: int, size: tuple[int, int] = (1024, 768)) -> Image.Image:
    """A text-only graphic, as charities post: words on a plain card."""
    rng = random.Random(seed)
    picture = Image.new("RGB", size, rng.choice(((255, 250, 235), (102, 45, 145), (240, 250, 255))))
    draw = ImageDraw.Draw(picture)
    ink = (255, 255, 255) if picture.getpixel((0, 0)) == (102, 45, 145) else (30, 30, 90)
    draw.text((size[0] / 2, size[1] / 2), words, font=_font("DejaVuSans-Bold.ttf", 72),
              fill=ink, anchor="mm")  # fmt: skip
    draw.text((size[0] / 2, size[1] * 0.8), "#HelpingHands", font=_font("DejaVuSans.ttf", 40),
              fill=ink, anchor="mm")  # fmt: skip
    return jpeg(picture)


def build() -> list[Sample]:
    """The whole labelled set (deterministic: the same pictures every run)."""
    samples: list[Sample] = []
    seed = 0
    for words, rule in PERSONAL_WORDS:
        for font, angle, lighting in (
            (FONTS[0], 0, "even"),
            (FONTS[1], -12, "dim"),
            (FONTS[2], 15, "side"),
            (FONTS[4], 5, "bright"),
        ):
            seed += 1
            image = hand(words, seed=seed, font=font, angle=angle, lighting=lighting)
            samples.append(Sample(f"hand-{seed}", image, "hand_personal", words, rule))
    for words in BENIGN_WORDS:
        for font in (FONTS[3], FONTS[5]):
            seed += 1
            image = hand(words, seed=seed, font=font)
            samples.append(Sample(f"hand-{seed}", image, "hand_benign", words))
    samples.extend(face_samples())
    for index, (name, picture) in enumerate(photos().items()):
        faces = int(name in PORTRAIT_FACES)
        samples.append(Sample(name, picture, "original", faces=faces))
        for how, copy in copies(picture, index):
            samples.append(Sample(f"{name}-{how}", copy, "repost", copy_of=name, faces=faces))
    for index in range(4):
        samples.append(Sample(f"crowd-{index}", crowd(index), "benign"))
        samples.append(Sample(f"skin-{index}", skin_closeup(index), "benign"))
    for index, words in enumerate(BENIGN_WORDS[:4]):
        samples.append(Sample(f"card-{index}", text_card(words, index), "benign", words))
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    labels = []
    for sample in build():
        sample.image.save(out / f"{sample.name}.jpg", quality=92)
        labels.append({k: v for k, v in dataclasses.asdict(sample).items() if k != "image"})
    (out / "labels.json").write_text(json.dumps(labels, indent=1))


if __name__ == "__main__":
    main()
