"""Curated contrast sets for response / prompt hallucination (paper section 3.3).

Each category maps a *class* (a rough semantic field) to *groups* of near-synonyms. A word is
replaced by a word of the same class (so the sentence stays plausible: boys -> girls, throwing ->
lifting) but from a different group (so the meaning changes: never man -> guy, gray -> silver).
Keys are lemmas for nouns and verbs and lower-case surface forms for the closed classes.

Camera and shot words ("camera", "shot", "lens", ...) are absent on purpose: they describe how a clip is
filmed, not what it shows (see `engine.hallucination.guards`). Polysemous entries ("coat", "foot",
"glasses", "look", ...) carry context checks there for the sense their group assumes.

Why word lists and not an embedding model: a MiniLM call per swap would cost more than the spaCy
parse itself (the bench goal is >= 0.8x the tagger's throughput), and curated groups make
"different meaning, same kind of thing" a property of the data that a test can check.
"""

from __future__ import annotations

Groups = tuple[tuple[str, ...], ...]

NOUNS: dict[str, Groups] = {
    "people": (
        ("man", "gentleman", "guy"),
        ("woman", "lady"),
        ("boy",),
        ("girl",),
        ("child", "kid"),
        ("baby", "infant", "toddler"),
        ("teenager",),
        ("person", "individual"),
        ("couple",),
    ),
    "role": (
        ("worker", "employee", "staff"),
        ("customer", "shopper", "client"),
        ("soldier",),
        ("chef", "cook"),
        ("doctor",),
        ("nurse",),
        ("teacher",),
        ("student",),
        ("policeman", "officer"),
        ("athlete", "player"),
        ("dancer",),
        ("musician",),
        ("farmer",),
        ("vendor", "seller"),
        ("tourist",),
        ("driver",),
        ("pedestrian",),
    ),
    "animal": (
        ("dog", "puppy"),
        ("cat", "kitten"),
        ("horse", "pony"),
        ("cow",),
        ("sheep", "lamb"),
        ("pig",),
        ("bird",),
        ("duck",),
        ("chicken",),
        ("fish",),
        ("rabbit", "bunny"),
        ("bear",),
        ("lion",),
        ("tiger",),
        ("elephant",),
        ("monkey",),
        ("deer",),
        ("squirrel",),
        ("goat",),
        ("fox",),
        ("wolf",),
        ("butterfly",),
        ("snake",),
    ),
    "vehicle": (
        ("car", "automobile", "vehicle"),
        ("truck", "lorry"),
        ("bus",),
        ("bicycle", "bike"),
        ("motorcycle", "motorbike", "scooter"),
        ("train",),
        ("boat", "ship"),
        ("airplane", "plane", "aircraft", "jet"),
        ("helicopter",),
        ("taxi", "cab"),
        ("van",),
        ("tractor",),
    ),
    "clothing": (
        ("shirt", "blouse", "t-shirt", "top"),
        ("jacket", "coat"),
        ("dress", "gown"),
        ("skirt",),
        ("pants", "trousers", "jeans"),
        ("shorts",),
        ("suit",),
        ("sweater", "jumper"),
        ("hat", "cap"),
        ("helmet",),
        ("scarf",),
        ("uniform",),
        ("apron",),
        ("tie",),
        ("boot",),
        ("shoe", "sneaker"),
        ("glove",),
        ("sunglasses", "glasses"),
        ("vest",),
        ("hoodie",),
    ),
    "object": (
        ("ball",),
        ("bag", "backpack", "purse", "handbag"),
        ("box", "carton"),
        ("bottle",),
        ("cup", "mug"),
        ("glass",),
        ("plate", "dish"),
        ("bowl",),
        ("book",),
        ("phone", "smartphone", "cellphone"),
        ("laptop", "computer"),
        ("umbrella",),
        ("knife",),
        ("spoon",),
        ("fork",),
        ("chair", "seat"),
        ("table", "desk"),
        ("bench",),
        ("lamp",),
        ("clock", "watch"),
        ("guitar",),
        ("piano",),
        ("card",),
        ("document", "paper"),
        ("pen", "pencil"),
        ("basket",),
        ("toy",),
        ("key",),
        ("flag",),
        ("sign",),
        ("mirror",),
        ("candle",),
        ("flower",),
        ("tool",),
        ("device",),
        ("rope",),
        ("stick",),
        ("kite",),
        ("balloon",),
    ),
    "place": (
        ("street", "road", "avenue"),
        ("park", "garden"),
        ("beach", "shore", "coast"),
        ("forest", "jungle"),
        ("mountain", "hill"),
        ("river", "stream"),
        ("lake", "pond"),
        ("ocean", "sea"),
        ("field", "meadow"),
        ("desert",),
        ("city", "town"),
        ("village",),
        ("kitchen",),
        ("bedroom",),
        ("bathroom",),
        ("office",),
        ("classroom",),
        ("store", "shop"),
        ("market", "supermarket"),
        ("restaurant", "cafe", "diner"),
        ("hallway", "corridor"),
        ("stadium", "arena"),
        ("church",),
        ("hospital",),
        ("library",),
        ("station",),
        ("airport",),
        ("bridge",),
        ("farm",),
        ("room",),
        ("building",),
        ("house", "home"),
        ("stage",),
        ("gym",),
        ("studio",),
    ),
    "food": (
        ("apple",),
        ("banana",),
        ("strawberry",),
        ("grape",),
        ("tomato",),
        ("carrot",),
        ("potato",),
        ("egg",),
        ("cake",),
        ("cookie", "biscuit"),
        ("sandwich",),
        ("pizza",),
        ("burger", "hamburger"),
        ("fruit",),
        ("vegetable",),
        ("bread",),
        ("cheese",),
        ("salad",),
        ("soup",),
        ("noodle", "pasta"),
        ("rice",),
        ("coffee",),
        ("tea",),
        ("wine",),
        ("beer",),
        ("juice",),
        ("milk",),
    ),
    "nature": (
        ("tree",),
        ("grass", "lawn"),
        ("rock", "stone"),
        ("sand",),
        ("snow",),
        ("water",),
        ("cloud",),
        ("sun",),
        ("moon",),
        ("star",),
        ("leaf",),
        ("wave",),
        ("fire", "flame"),
        ("rain",),
        ("bush", "shrub"),
    ),
    "body": (
        ("hand",),
        ("arm",),
        ("leg",),
        ("foot",),
        ("head",),
        ("face",),
        ("shoulder",),
        ("finger",),
        ("hair",),
        ("eye",),
        ("mouth",),
        ("knee",),
        ("back",),
    ),
    "structure": (
        ("window",),
        ("door", "doorway", "gate"),
        ("wall",),
        ("floor", "ground"),
        ("ceiling",),
        ("roof",),
        ("stairs", "staircase"),
        ("fence",),
        ("shelf", "rack"),
        ("counter",),
        ("tower",),
        ("column", "pillar"),
    ),
}

VERBS: dict[str, Groups] = {
    "locomotion": (
        ("walk", "stroll", "wander"),
        ("run", "jog", "sprint"),
        ("jump", "leap", "hop"),
        ("swim",),
        ("crawl",),
        ("dance",),
        ("climb",),
        ("march",),
        ("skate",),
        ("fly",),
    ),
    "vehicle": (("drive", "steer"), ("ride",), ("tow",)),
    "posture": (
        ("sit",),
        ("stand",),
        ("kneel",),
        ("lie",),
        ("lean",),
        ("crouch", "squat"),
        ("bend",),
    ),
    "manipulation": (
        ("throw", "toss", "hurl"),
        ("lift", "raise"),
        ("hold", "grip", "grasp"),
        ("carry",),
        ("push",),
        ("pull", "drag"),
        ("drop",),
        ("kick",),
        ("catch",),
        ("grab", "snatch"),
        ("touch",),
        ("hit", "strike"),
        ("shake",),
        ("hand", "give", "pass"),
    ),
    "handling": (
        ("open",),
        ("close", "shut"),
        ("cut", "slice", "chop"),
        ("wash", "clean", "wipe"),
        ("pour",),
        ("fold",),
        ("paint",),
        ("fix", "repair"),
        ("stir", "mix"),
    ),
    "dressing": (("wear",), ("remove",), ("adjust",), ("button",)),
    "activity": (
        ("read",),
        ("write",),
        ("play",),
        ("examine", "inspect", "study"),
        ("browse",),
        ("select", "choose", "pick"),
        ("type",),
        ("draw",),
    ),
    "gaze": (
        ("look", "gaze", "stare", "glance"),
        ("point",),
        ("smile", "grin"),
        ("frown",),
        ("nod",),
        ("wink",),
        ("wave",),
        ("clap",),
    ),
    "communication": (
        ("talk", "speak", "chat", "converse"),
        ("laugh", "giggle"),
        ("shout", "yell", "scream"),
        ("whisper",),
        ("sing",),
        ("cry", "weep", "sob"),
        ("argue",),
        ("cheer",),
    ),
    "consumption": (
        ("eat",),
        ("drink", "sip"),
        ("cook", "fry", "bake"),
        ("chew",),
        ("taste",),
        ("feed",),
    ),
    "motion": (
        ("fall", "tumble"),
        ("spin", "rotate", "twirl"),
        ("roll",),
        ("float", "drift"),
        ("bounce",),
        ("slide", "glide"),
        ("sway", "swing"),
        ("shine", "glow"),
        ("flicker", "flash"),
        ("melt",),
        ("burn",),
    ),
}

COLORS: dict[str, Groups] = {
    "color": (
        ("red", "crimson", "scarlet", "maroon"),
        ("orange",),
        ("yellow", "gold", "golden", "amber"),
        ("green", "olive"),
        ("blue", "navy", "azure", "cyan", "turquoise", "teal"),
        ("purple", "violet", "magenta", "lavender"),
        ("pink",),
        ("brown", "tan", "beige", "khaki"),
        ("black",),
        ("white",),
        ("gray", "grey", "silver"),
    ),
}

DIRECTIONS: dict[str, Groups] = {
    "lateral": (("left",), ("right",)),
    "lateral_ward": (("leftward",), ("rightward",)),
    "vertical": (("up",), ("down",)),
    "vertical_ward": (("upward",), ("downward",)),
    "vertical_wards": (("upwards",), ("downwards",)),
    "sagittal": (("forward",), ("backward",)),
    "sagittal_s": (("forwards",), ("backwards",)),
    "compass": (("north",), ("south",), ("east",), ("west",)),
    "rotation": (("clockwise",), ("counterclockwise", "anticlockwise", "counter-clockwise")),
    "containment": (("inside",), ("outside",)),
    "elevation": (("above",), ("below", "beneath", "underneath")),
    "axis": (("horizontal",), ("vertical",)),
    "axis_ly": (("horizontally",), ("vertically",)),
}

# Number words by scale, so "twenty-five" -> "forty-five" and "a dozen" -> "a hundred" stay well formed.
# "one" is absent on purpose: swapping it breaks singular agreement ("one man" -> "five man").
NUMBERS: dict[str, Groups] = {
    "units": (("two",), ("three",), ("four",), ("five",), ("six",), ("seven",), ("eight",), ("nine",)),
    "teens": (
        ("ten",),
        ("eleven",),
        ("twelve",),
        ("thirteen",),
        ("fourteen",),
        ("fifteen",),
        ("sixteen",),
        ("seventeen",),
        ("eighteen",),
        ("nineteen",),
    ),
    "tens": (("twenty",), ("thirty",), ("forty",), ("fifty",), ("sixty",), ("seventy",), ("eighty",), ("ninety",)),
    "scales": (("dozen",), ("hundred",), ("thousand",), ("million",)),
}

# Irregular plurals lemminflect gets "wrong" for captions (it prefers "persons").
PLURALS = {"person": "people", "staff": "staff", "sunglasses": "sunglasses", "glasses": "glasses"}
# Lemmas spaCy returns for words our tables list under another key.
LEMMA_ALIASES = {
    "people": "person",
    "pant": "pants",
    "trouser": "trousers",
    "jean": "jeans",
    "short": "shorts",
    "sunglass": "sunglasses",
    "stair": "stairs",
}
# Hypernyms: swapped away, never swapped in ("man" -> "person" or "truck" -> "vehicle" is no contradiction).
SOURCE_ONLY = frozenset(
    {"person", "individual", "vehicle", "aircraft", "room", "building", "device", "tool", "fruit", "vegetable"}
)
# Plural-only nouns: used as replacements only for plural originals (never "a pants").
PLURALIA = frozenset({"pants", "trousers", "jeans", "shorts", "sunglasses", "glasses", "stairs"})

# Verb lemmas whose form for a tag the small tagger (en_core_web_sm 3.8) reads as another part of speech in
# plain caption frames ("A woman squats on a wooden bench." -> squats/NNS): as replacements they would make
# the swapped word read as a noun. Kept out as replacements for that tag only. Measured (misread in >= 2 of
# 6 frames), and re-measured by tests/engine/hallucination/test_hallucination_text.py.
MISREAD_VERBS: dict[str, frozenset[str]] = {
    "VBZ": frozenset(
        "wander sprint dance climb kneel crouch squat bend hurl grab slice fix repair adjust study type stare wink "
        "wave clap chat converse giggle sob cheer sip fry chew twirl glide swing flash melt".split()
    ),
    "VBP": frozenset(
        "stroll crawl dance tow crouch squat hit close shut cut slice button read glance grin frown nod wink cheer "
        "fry twirl flicker".split()
    ),
}


def build_index(table: dict[str, Groups]) -> dict[str, tuple[str, int]]:
    """word -> (class, group index). A word listed twice keeps its first entry."""
    index: dict[str, tuple[str, int]] = {}
    for cls, groups in table.items():
        for g, group in enumerate(groups):
            for word in group:
                index.setdefault(word, (cls, g))
    return index


def alternatives(table: dict[str, Groups], cls: str, group: int, heads_only: bool = False) -> tuple[str, ...]:
    """Words of `cls` outside `group`: the replacements that change the meaning (in table order)."""
    others = (words for g, words in enumerate(table[cls]) if g != group)
    return tuple(w for words in others for w in (words[:1] if heads_only else words))
