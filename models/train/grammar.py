"""The caption grammar of vlmdescribe-tiny: building captions from scene descriptions and parsing
them back, so captions can be checked by machine.

    scene  := shapes " on " ARTICLE " " COLOUR " background"   (ARTICLE: "an" before orange)
    shapes := shape | shape " and " shape | shape ", " shape " and " shape
    shape  := "a " SIZE " " COLOUR " " TYPE " " PLACE
    PLACE  := "on the left" | "on the right" | "at the top" | "at the bottom" | "in the center"
    plain  := "a plain " COLOUR " frame"
    pattern:= "color bars" | "noise" | "checkerboard" | "gradient"
            | "a white ball on a black background"

Shapes are always listed in the order of POSITIONS, and a scene never has two shapes at the same
position, so every scene has exactly one caption.
"""
import re

COLOURS = ["red", "green", "blue", "yellow", "orange", "purple", "white", "black", "gray"]
TYPES = ["circle", "square", "triangle"]
SIZES = ["small", "large"]
POSITIONS = ["left", "right", "top", "bottom", "center"]
PLACE = {"left": "on the left", "right": "on the right", "top": "at the top",
         "bottom": "at the bottom", "center": "in the center"}
PATTERNS = ["color bars", "noise", "checkerboard", "ball", "gradient"]
BALL_CAPTION = "a white ball on a black background"
PROMPT = "caption en"


def scene_caption(background, shapes):
    """shapes: list of (size, colour, type, position) at distinct positions."""
    shapes = sorted(shapes, key=lambda s: POSITIONS.index(s[3]))
    parts = [f"a {size} {colour} {kind} {PLACE[pos]}" for size, colour, kind, pos in shapes]
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"{listed} on {article(background)} {background} background"


def article(word):
    return "an" if word[0] in "aeiou" else "a"


def plain_caption(colour):
    return f"a plain {colour} frame"


def pattern_caption(pattern):
    return BALL_CAPTION if pattern == "ball" else pattern


_ALT = lambda words: "(" + "|".join(words) + ")"
_SHAPE = re.compile(f"a {_ALT(SIZES)} {_ALT(COLOURS)} {_ALT(TYPES)} "
                    f"{_ALT(PLACE.values())}$")
_SCENE = re.compile(f"(.+) on an? {_ALT(COLOURS)} background$")
_PLAIN = re.compile(f"a plain {_ALT(COLOURS)} frame$")


def parse(caption):
    """Caption -> {"kind": "pattern"|"plain"|"scene"|"invalid", ...}. Scenes give "background"
    and "shapes" [(size, colour, type, position)]; plain frames "colour"; patterns "pattern"."""
    caption = caption.strip()
    if caption == BALL_CAPTION:
        return {"kind": "pattern", "pattern": "ball"}
    if caption in PATTERNS:
        return {"kind": "pattern", "pattern": caption}
    m = _PLAIN.match(caption)
    if m:
        return {"kind": "plain", "colour": m.group(1)}
    m = _SCENE.match(caption)
    if m:
        head, tail = m.group(1).rsplit(" and ", 1) if " and " in m.group(1) else (None, m.group(1))
        phrases = (head.split(", ") if head else []) + [tail]
        place_to_pos = {v: k for k, v in PLACE.items()}
        shapes = []
        for phrase in phrases:
            s = _SHAPE.match(phrase)
            if not s:
                return {"kind": "invalid"}
            shapes.append((s.group(1), s.group(2), s.group(3), place_to_pos[s.group(4)]))
        return {"kind": "scene", "background": m.group(2), "shapes": shapes}
    return {"kind": "invalid"}


def tokenizer_corpus():
    """Text the sentencepiece model is trained on: the prompt and captions using every word."""
    lines = [PROMPT, BALL_CAPTION] + PATTERNS + [plain_caption(c) for c in COLOURS]
    for i, bg in enumerate(COLOURS):
        for j, colour in enumerate(COLOURS):
            shapes = [(SIZES[(i + j + k) % 2], COLOURS[(j + 2 * k) % 9], TYPES[(i + k) % 3],
                       POSITIONS[(i + j + k) % 5]) for k in range(1 + (i + j) % 3)]
            lines.append(scene_caption(bg, shapes))
    return lines
