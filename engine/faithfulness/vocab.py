"""The named vocabularies of the tagged short-prompt corpus and of the faithfulness metric.

One source for both: scripts/make_prompt_corpus.py draws its prompts from these lists, and
engine.faithfulness.match reads the same entries' surface forms and short synonym lists when it checks
whether a detailed prompt kept an element. A tag whose value is not listed here (a held-out corpus written
by someone else) is still matched, by its own words and their inflections (engine.faithfulness.match).

- OBJECTS: COCO's 80 classes (Lin et al. 2014) as nouns a person would write: "person" split into man /
  woman / child, "sports ball" -> ball, "dining table" -> table, "tv" -> television, "cell phone" -> phone;
  left out of the corpus where a prompt would be ambiguous (orange the fruit vs the colour, "tie", "mouse",
  "remote", plural-only "skis" / "scissors"). Each object has a category that picks its plausible actions.
- COLORS: the eleven basic colour terms (Berlin & Kay), grey spelled both ways.
- COUNTS: two to five, as words and digits.
- RELATIONS: left of, right of, on top of, under (two objects), with their inverse and opposite.
- SCENES, STYLES, ACTIONS: written here; each scene and style lists the phrases that count as keeping it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ObjectEntry:
    """One object class: its name (the tag value), the category that picks its actions, synonyms."""

    name: str
    category: str
    """animal, person, vehicle, furniture, food, thing: which ACTIONS fit it."""
    synonyms: tuple[str, ...] = ()
    """Other nouns that name the same thing (singular; plurals are derived)."""
    corpus: bool = True
    """False: matched when a tag names it, never drawn for the corpus (an ambiguous word)."""


OBJECTS: tuple[ObjectEntry, ...] = (
    # people (COCO "person")
    ObjectEntry("man", "person", ("gentleman", "guy")),
    ObjectEntry("woman", "person", ("lady",)),
    ObjectEntry("child", "person", ("kid",)),
    # vehicles
    ObjectEntry("bicycle", "vehicle", ("bike",)),
    ObjectEntry("car", "vehicle", ("automobile",)),
    ObjectEntry("motorcycle", "vehicle", ("motorbike",)),
    ObjectEntry("airplane", "vehicle", ("plane", "aeroplane", "airliner", "jet")),
    ObjectEntry("bus", "vehicle"),
    ObjectEntry("train", "vehicle", ("locomotive",)),
    ObjectEntry("truck", "vehicle", ("lorry",)),
    ObjectEntry("boat", "vehicle", ("sailboat", "rowboat")),
    # street things
    ObjectEntry("traffic light", "thing", ("stoplight", "traffic signal")),
    ObjectEntry("fire hydrant", "thing", ("hydrant",)),
    ObjectEntry("stop sign", "thing"),
    ObjectEntry("parking meter", "thing"),
    ObjectEntry("bench", "furniture"),
    # animals
    ObjectEntry("bird", "animal"),
    ObjectEntry("cat", "animal", ("kitten", "kitty")),
    ObjectEntry("dog", "animal", ("puppy",)),
    ObjectEntry("horse", "animal", ("pony",)),
    ObjectEntry("sheep", "animal", ("lamb",)),
    ObjectEntry("cow", "animal", ("calf",)),
    ObjectEntry("elephant", "animal"),
    ObjectEntry("bear", "animal"),
    ObjectEntry("zebra", "animal"),
    ObjectEntry("giraffe", "animal"),
    # accessories and sports gear
    ObjectEntry("backpack", "thing", ("rucksack",)),
    ObjectEntry("umbrella", "thing", ("parasol",)),
    ObjectEntry("handbag", "thing", ("purse",)),
    ObjectEntry("suitcase", "thing", ("luggage",)),
    ObjectEntry("frisbee", "thing", ("flying disc",)),
    ObjectEntry("snowboard", "thing"),
    ObjectEntry("ball", "thing"),
    ObjectEntry("kite", "thing"),
    ObjectEntry("baseball bat", "thing"),
    ObjectEntry("baseball glove", "thing", ("baseball mitt",)),
    ObjectEntry("skateboard", "thing"),
    ObjectEntry("surfboard", "thing"),
    ObjectEntry("tennis racket", "thing", ("racket", "racquet")),
    # kitchen
    ObjectEntry("bottle", "thing"),
    ObjectEntry("wine glass", "thing"),
    ObjectEntry("cup", "thing", ("mug",)),
    ObjectEntry("fork", "thing"),
    ObjectEntry("knife", "thing"),
    ObjectEntry("spoon", "thing"),
    ObjectEntry("bowl", "thing"),
    # food
    ObjectEntry("banana", "food"),
    ObjectEntry("apple", "food"),
    ObjectEntry("sandwich", "food"),
    ObjectEntry("broccoli", "food"),
    ObjectEntry("carrot", "food"),
    ObjectEntry("hot dog", "food", ("hotdog",)),
    ObjectEntry("pizza", "food"),
    ObjectEntry("donut", "food", ("doughnut",)),
    ObjectEntry("cake", "food"),
    # furniture and appliances
    ObjectEntry("chair", "furniture", ("armchair",)),
    ObjectEntry("couch", "furniture", ("sofa",)),
    ObjectEntry("potted plant", "furniture", ("houseplant", "plant")),
    ObjectEntry("bed", "furniture"),
    ObjectEntry("table", "furniture"),
    ObjectEntry("toilet", "furniture"),
    ObjectEntry("television", "furniture", ("tv",)),
    ObjectEntry("laptop", "thing", ("notebook computer",)),
    ObjectEntry("keyboard", "thing"),
    ObjectEntry("phone", "thing", ("smartphone", "cellphone", "cell phone", "mobile phone")),
    ObjectEntry("microwave", "furniture"),
    ObjectEntry("oven", "furniture", ("stove",)),
    ObjectEntry("toaster", "thing"),
    ObjectEntry("sink", "furniture"),
    ObjectEntry("refrigerator", "furniture", ("fridge",)),
    ObjectEntry("book", "thing"),
    ObjectEntry("clock", "thing"),
    ObjectEntry("vase", "thing"),
    ObjectEntry("teddy bear", "thing", ("teddy",)),
    ObjectEntry("hair dryer", "thing", ("hairdryer", "hair drier", "blow dryer")),
    ObjectEntry("toothbrush", "thing"),
    # COCO classes kept for matching only: ambiguous in a generated prompt.
    ObjectEntry("orange", "food", corpus=False),
    ObjectEntry("tie", "thing", ("necktie",), corpus=False),
    ObjectEntry("mouse", "thing", corpus=False),
    ObjectEntry("remote", "thing", ("remote control",), corpus=False),
    ObjectEntry("skis", "thing", corpus=False),
    ObjectEntry("scissors", "thing", corpus=False),
    ObjectEntry("person", "person", ("people", "man", "woman", "boy", "girl", "child", "kid"), corpus=False),
)

#: The eleven basic colour terms; value -> words that name it.
COLORS: dict[str, tuple[str, ...]] = {
    "red": ("red",),
    "orange": ("orange",),
    "yellow": ("yellow",),
    "green": ("green",),
    "blue": ("blue",),
    "purple": ("purple", "violet"),
    "pink": ("pink",),
    "brown": ("brown",),
    "black": ("black",),
    "white": ("white",),
    "gray": ("gray", "grey"),
}

#: Counts in the corpus, and the words that say them.
COUNTS: dict[int, tuple[str, ...]] = {
    1: ("one", "single", "lone", "1"),
    2: ("two", "2", "pair", "couple"),
    3: ("three", "3", "trio"),
    4: ("four", "4"),
    5: ("five", "5"),
    6: ("six", "6"),
    7: ("seven", "7"),
    8: ("eight", "8"),
    9: ("nine", "9"),
    10: ("ten", "10"),
}
CORPUS_COUNTS = (2, 3, 4, 5)

#: Relation value -> (phrases that state it between subject and object, the inverse relation (object first),
#: the opposite relation (same order, the other side)).
RELATIONS: dict[str, tuple[tuple[str, ...], str, str]] = {
    "left of": (
        ("to the left of", "left of", "on the left of", "on the left side of", "to the left side of"),
        "right of",
        "right of",
    ),
    "right of": (
        ("to the right of", "right of", "on the right of", "on the right side of", "to the right side of"),
        "left of",
        "left of",
    ),
    "on top of": (
        ("on top of", "atop", "on", "upon", "resting on", "sitting on", "perched on", "above", "over"),
        "under",
        "under",
    ),
    "under": (("under", "beneath", "below", "underneath"), "on top of", "on top of"),
}
#: Spellings a tag may use for a relation value.
RELATION_ALIASES: dict[str, str] = {
    "left": "left of",
    "to the left of": "left of",
    "left of": "left of",
    "on the left of": "left of",
    "right": "right of",
    "to the right of": "right of",
    "right of": "right of",
    "on the right of": "right of",
    "on top of": "on top of",
    "on": "on top of",
    "atop": "on top of",
    "above": "on top of",
    "over": "on top of",
    "under": "under",
    "below": "under",
    "beneath": "under",
    "underneath": "under",
}


@dataclass(frozen=True)
class PhraseEntry:
    """A scene or style: its name (the tag value), how a prompt may say it, what counts as keeping it."""

    name: str
    says: tuple[str, ...]
    """Ways a short prompt writes it (the corpus draws one): "{}" is where the rest of the prompt goes for a
    style prefix; a scene phrase carries its preposition."""
    keeps: tuple[str, ...]
    """Phrases any one of which in the detailed prompt keeps it (lower case; words split on non-letters)."""


SCENES: tuple[PhraseEntry, ...] = (
    PhraseEntry("beach", ("on a beach", "on a sandy beach", "at the beach"), ("beach", "seashore", "shore", "coast")),
    PhraseEntry("forest", ("in a forest", "in a dense forest", "in the woods"), ("forest", "woods", "woodland")),
    PhraseEntry("desert", ("in a desert", "in the desert", "among desert dunes"), ("desert",)),
    PhraseEntry(
        "city street", ("on a city street", "on a busy street", "in a city street"), ("street", "avenue", "road")
    ),
    PhraseEntry("kitchen", ("in a kitchen", "in a small kitchen"), ("kitchen",)),
    PhraseEntry(
        "living room", ("in a living room", "in a cozy living room"), ("living room", "lounge", "sitting room")
    ),
    PhraseEntry("park", ("in a park", "in a city park", "in a snowy park"), ("park",)),
    PhraseEntry("mountain", ("on a mountain", "in the mountains", "on a mountain trail"), ("mountain",)),
    PhraseEntry("lake", ("by a lake", "on a lake shore", "beside a calm lake"), ("lake",)),
    PhraseEntry("river", ("by a river", "along a river", "on a riverbank"), ("river", "riverbank")),
    PhraseEntry("farm", ("on a farm", "in a farmyard"), ("farm", "farmyard")),
    PhraseEntry("garden", ("in a garden", "in a flower garden"), ("garden",)),
    PhraseEntry("office", ("in an office", "in a modern office"), ("office",)),
    PhraseEntry("classroom", ("in a classroom",), ("classroom",)),
    PhraseEntry("library", ("in a library", "in an old library"), ("library",)),
    PhraseEntry("subway station", ("in a subway station", "on a subway platform"), ("subway", "metro")),
    PhraseEntry("airport", ("at an airport", "in an airport terminal"), ("airport",)),
    PhraseEntry("harbor", ("in a harbor", "at a harbour"), ("harbor", "harbour", "port", "marina")),
    PhraseEntry("stadium", ("in a stadium", "in a packed stadium"), ("stadium", "arena")),
    PhraseEntry("bedroom", ("in a bedroom", "in a quiet bedroom"), ("bedroom",)),
    PhraseEntry("restaurant", ("in a restaurant", "in a busy restaurant"), ("restaurant", "diner", "cafe")),
    PhraseEntry(
        "supermarket",
        ("in a supermarket", "in a grocery store"),
        ("supermarket", "grocery store", "grocery", "market"),
    ),
    PhraseEntry("highway", ("on a highway", "on a desert highway"), ("highway", "freeway", "motorway")),
    PhraseEntry("bridge", ("on a bridge", "on an old stone bridge"), ("bridge",)),
    PhraseEntry("rooftop", ("on a rooftop", "on a city rooftop"), ("rooftop", "roof")),
    PhraseEntry("meadow", ("in a meadow", "in a flowery meadow"), ("meadow", "field")),
    PhraseEntry("jungle", ("in a jungle", "in a rainforest"), ("jungle", "rainforest")),
    PhraseEntry("cave", ("in a cave", "inside a dark cave"), ("cave", "cavern")),
    PhraseEntry("snowfield", ("in a snowy field", "on a snowfield"), ("snowfield", "snowy field", "snow field")),
    PhraseEntry(
        "train station", ("at a train station", "on a train platform"), ("train station", "station", "platform")
    ),
)

STYLES: tuple[PhraseEntry, ...] = (
    PhraseEntry(
        "watercolor painting",
        ("watercolor painting", "in watercolor", "watercolor painting of {}"),
        ("watercolor", "watercolour"),
    ),
    PhraseEntry(
        "oil painting",
        ("oil painting", "as an oil painting", "oil painting of {}"),
        ("oil painting", "oil paint", "oil on canvas"),
    ),
    PhraseEntry("pencil sketch", ("pencil sketch", "pencil sketch of {}"), ("pencil",)),
    PhraseEntry("charcoal drawing", ("charcoal drawing", "charcoal drawing of {}"), ("charcoal",)),
    PhraseEntry("anime", ("anime style", "in anime style", "anime scene of {}"), ("anime",)),
    PhraseEntry("pixel art", ("pixel art", "pixel art of {}"), ("pixel art", "pixel", "pixelated", "8-bit")),
    PhraseEntry("claymation", ("claymation", "claymation scene of {}"), ("claymation", "clay")),
    PhraseEntry("film noir", ("film noir style", "shot as film noir", "film noir scene of {}"), ("noir",)),
    PhraseEntry("cyberpunk", ("cyberpunk style", "cyberpunk scene of {}"), ("cyberpunk",)),
    PhraseEntry("steampunk", ("steampunk style", "steampunk illustration of {}"), ("steampunk",)),
    PhraseEntry(
        "surrealism",
        ("surrealism style", "in a surrealist style", "surreal painting of {}"),
        ("surreal", "surrealism", "surrealist", "surrealistic"),
    ),
    PhraseEntry(
        "impressionism",
        ("impressionist painting", "in the style of impressionism", "impressionist painting of {}"),
        ("impressionism", "impressionist", "impressionistic"),
    ),
    PhraseEntry("cubism", ("cubism style", "in a cubist style"), ("cubism", "cubist")),
    PhraseEntry("pop art", ("pop art style", "pop art print of {}"), ("pop art", "pop-art")),
    PhraseEntry("art deco", ("art deco style", "art deco poster of {}"), ("art deco",)),
    PhraseEntry("vaporwave", ("vaporwave aesthetic", "vaporwave style"), ("vaporwave",)),
    PhraseEntry("low poly", ("low poly 3D", "low poly render of {}"), ("low poly", "low-poly", "polygonal")),
    PhraseEntry("3D render", ("3D render", "3D render of {}", "rendered in 3D"), ("3d", "cgi", "rendered", "render")),
    PhraseEntry(
        "ukiyo-e",
        ("in the style of Ukiyo-e", "ukiyo-e woodblock print", "ukiyo-e print of {}"),
        ("ukiyo", "ukiyoe", "woodblock"),
    ),
    PhraseEntry("Hokusai", ("by Hokusai", "in the style of Hokusai"), ("hokusai",)),
    PhraseEntry(
        "Van Gogh", ("by Van Gogh", "in the style of Van Gogh", "Van Gogh painting of {}"), ("van gogh", "gogh")
    ),
    PhraseEntry("Monet", ("by Monet", "in the style of Claude Monet"), ("monet",)),
    PhraseEntry("Studio Ghibli", ("Studio Ghibli style", "in the style of Studio Ghibli"), ("ghibli",)),
    PhraseEntry("cinematic", ("cinematic", "cinematic shot of {}", "cinematic lighting"), ("cinematic", "cinema")),
    PhraseEntry(
        "documentary",
        ("documentary footage", "documentary footage of {}", "nature documentary style"),
        ("documentary",),
    ),
    PhraseEntry(
        "vintage 8mm film",
        ("vintage 8mm film", "shot on 8mm film", "8mm home movie of {}"),
        ("8mm", "8 mm", "super 8"),
    ),
    PhraseEntry("VHS", ("VHS footage", "VHS tape footage of {}", "retro VHS look"), ("vhs",)),
    PhraseEntry(
        "tilt-shift", ("tilt-shift photo", "tilt-shift video of {}"), ("tilt-shift", "tilt shift", "miniature")
    ),
    PhraseEntry(
        "stained glass", ("stained glass style", "stained glass window of {}"), ("stained glass", "stained-glass")
    ),
    PhraseEntry("origami", ("origami style", "origami paper craft of {}"), ("origami", "paper craft", "folded paper")),
    PhraseEntry("comic book", ("comic book style", "comic book panel of {}"), ("comic",)),
    PhraseEntry(
        "monochrome photograph",
        ("monochrome photograph", "monochrome photo of {}"),
        ("monochrome", "black-and-white", "black and white"),
    ),
)

#: Action lemmas by the category of their subject (what a prompt can plausibly say it does).
ACTIONS: dict[str, tuple[str, ...]] = {
    "animal": ("run", "walk", "jump", "sleep", "eat", "drink", "sit", "play", "roll", "climb", "swim", "stand"),
    "person": ("run", "walk", "jump", "sleep", "eat", "dance", "read", "sing", "laugh", "cook", "wave", "sit"),
    "vehicle": ("drive", "speed", "turn", "stop", "race", "cross"),
    "furniture": ("stand", "sit", "wobble", "shake"),
    "food": ("spin", "roll", "fall", "melt", "steam", "float"),
    "thing": ("spin", "roll", "fall", "float", "glow", "swing", "shake", "slide"),
}

#: Verbs that keep an action when the detailed prompt words it otherwise (small, meaning-preserving).
ACTION_SYNONYMS: dict[str, tuple[str, ...]] = {
    "run": ("sprint", "dash", "jog", "race"),
    "walk": ("stroll", "wander", "stride"),
    "jump": ("leap", "hop", "bound"),
    "sleep": ("nap", "doze", "slumber"),
    "eat": ("munch", "chew", "nibble", "feed"),
    "drink": ("sip", "lap"),
    "laugh": ("giggle", "chuckle"),
    "speed": ("race", "zoom", "rush"),
    "drive": ("ride", "cruise", "roll"),
    "spin": ("rotate", "twirl", "whirl", "turn"),
    "glow": ("shine", "gleam", "light"),
    "fall": ("drop", "tumble"),
    "sing": ("chant",),
    "race": ("speed", "zoom"),
    "stop": ("halt", "park"),
    "float": ("drift", "hover"),
}


def object_entry(name: str) -> ObjectEntry | None:
    """The vocabulary entry a tag value names (its name or a synonym), or None."""
    key = name.strip().lower()
    for entry in OBJECTS:
        if key == entry.name or key in entry.synonyms:
            return entry
    return None


def phrase_entry(entries: tuple[PhraseEntry, ...], name: str) -> PhraseEntry | None:
    key = name.strip().lower()
    for entry in entries:
        if key == entry.name.lower():
            return entry
    return None
