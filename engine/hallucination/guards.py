"""Context guards for word swaps: camera language, hyphenated compounds and word senses (paper section 3.3).

A swap must give a plausible error about the *scene* (Eq. 6-8: a caption the video contradicts), not
nonsense. So a token that the lexicon lists is still kept when:
- it is camera or shot language: "the camera slowly pans left", "shot from above", "a drone shot
  glides", "depth of field", "the video opens with" — how the clip is filmed, not what it shows;
- it is part of a hyphenated compound ("close-up", "first-person"); a compound that is itself a lexicon
  entry ("t-shirt", "counter-clockwise") is swapped whole by the caller;
- it is used outside the sense its contrast group assumes: a dog's "coat", "the foot of the hill",
  "looks happy", "pass by", "a couple of", "a glass door".

Every check reads the tagged spaCy doc around one token (POS, Penn tag, lemma, spacing; no parser, for
speed) and runs only for tokens the lexicon already lists, so the cost stays a few set look-ups each.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.hallucination import lexicon as lx

DIRECTION_WORDS = frozenset(w for groups in lx.DIRECTIONS.values() for group in groups for w in group)
HYPHENS = frozenset({"-", "\u2010", "\u2011"})
SENTENCE_END = frozenset({".", "!", "?", ":", ";", '"', "\n"})

# ---- camera and shot language --------------------------------------------------------------------

#: Nouns (lemmas) that name how a clip is filmed or the clip itself, never what is in it.
CAMERA_NOUNS = frozenset(
    "camera camcorder cam shot angle close-up closeup pan zoom tracking frame framing dolly tilt aerial footage lens "
    "focus bokeh viewpoint perspective pov view drone tripod gimbal steadicam jib shutter exposure aperture "
    "cinematography videography timelapse time-lapse slow-motion fisheye telephoto video clip film scene sequence "
    "montage cut transition fade take viewer audience screen".split()
)
#: Camera-movement verbs. Matched on lemma or surface form, whatever the tag: the small tagger reads
#: "the camera slowly pans" / "zooms" as plural nouns.
CAMERA_VERBS = frozenset(
    "pan pans panned panning zoom zooms zoomed zooming tilt tilts tilted tilting dolly dollies dollied dollying "
    "orbit orbits orbited orbiting track tracks tracked tracking".split()
)
#: Verbs of filming or seeing: camera language when the direction hangs on "from" ("shot from above").
VIEW_VERBS = frozenset("shoot film capture record view see photograph show frame depict observe take".split())
#: Fixed phrases whose words are camera language however they are tagged.
CAMERA_PHRASES = (("depth", "of", "field"), ("field", "of", "view"), ("point", "of", "view"), ("angle", "of", "view"))
_PHRASE_WORDS = frozenset(w for phrase in CAMERA_PHRASES for w in phrase)
# Tokens the walk from a direction back to its head steps over ("pans slowly across the room from left to").
_TRANSPARENT_POS = frozenset({"ADP", "DET", "ADV", "AUX", "PART", "ADJ", "NUM"})
# Tokens the walk from a verb back to its subject steps over ("the camera slowly pans and tilts").
_SUBJECT_SKIP_POS = frozenset({"ADV", "AUX", "PART"})
_SUBJECT_SKIP_WORDS = frozenset({"and", "or", "then", ","})
# Nouns after a direction that keep it a place ("pans to the LEFT SIDE of the room"), not a thing's attribute.
_PLACE_NOUNS = frozenset("side sides edge corner half part end background foreground frame".split())


def _sentence_break(tok) -> bool:
    return tok.text in SENTENCE_END or "\n" in tok.text


def is_camera_noun(tok) -> bool:
    """A camera noun in noun use: the verb "cut" (a chef cut the bread) is no film cut."""
    if tok.pos_ in ("VERB", "AUX"):
        return False
    return tok.lower_ in CAMERA_NOUNS or (tok.pos_ == "NOUN" and tok.lemma_.lower() in CAMERA_NOUNS)


def _is_camera_verb(tok) -> bool:
    return tok.lower_ in CAMERA_VERBS or (tok.pos_ == "VERB" and tok.lemma_.lower() in CAMERA_VERBS)


def _sentence(doc, i: int):
    """The span of the sentence holding token i (cut at SENTENCE_END tokens; no parser)."""
    start = i
    while start > 0 and not _sentence_break(doc[start - 1]):
        start -= 1
    end = i + 1
    while end < len(doc) and not _sentence_break(doc[end]):
        end += 1
    return doc[start:end]


def _object_start(doc, j: int) -> int | None:
    """Index of the preposition or verb governing noun / pronoun j ("across [the wide] room",
    "following [her]"), or None when j is no object (a subject: "[the man] on the left")."""
    k = j - 1
    while k >= 0 and not _sentence_break(doc[k]) and (doc[k].pos_ in ("DET", "ADJ", "NUM", "NOUN") or
                                                       doc[k].tag_ in ("PRP$", "POS")):  # fmt: skip
        k -= 1
    return k if k >= 0 and doc[k].pos_ in ("ADP", "VERB") else None


def _main_subject(doc, i: int):
    """The first noun or pronoun of token i's sentence that is no object ("In the video, a MAN ...")."""
    for tok in _sentence(doc, i):
        if tok.pos_ in ("NOUN", "PROPN", "PRON") and _object_start(doc, tok.i) is None:
            return tok
    return None


def subject_of(doc, j: int):
    """The token heading the subject of verb j, or None when it cannot be told. Walks back over adverbs,
    auxiliaries and coordinated verbs ("the camera slowly pans and tilts"); a participle after a comma
    takes the sentence's subject ("the camera is mounted on his board, looking up at him")."""
    k = j - 1
    participle = doc[j].tag_ in ("VBG", "VBN")
    while k >= 0:
        tok = doc[k]
        if _sentence_break(tok):
            return None
        if participle and tok.text == ",":
            return _main_subject(doc, j)
        if tok.pos_ in _SUBJECT_SKIP_POS or tok.lower_ in _SUBJECT_SKIP_WORDS or tok.pos_ == "VERB":
            k -= 1
            continue
        if _is_camera_verb(tok):  # "pans" tagged NOUN in "the camera pans and tilts"
            k -= 1
            continue
        return tok if tok.pos_ in ("NOUN", "PROPN", "PRON") else None
    return None


def _verb_is_camera(doc, j: int) -> bool | None:
    """Is verb j's subject camera language? None when the subject cannot be found."""
    subject = subject_of(doc, j)
    return None if subject is None else is_camera_noun(subject)


def _sentence_has_camera(doc, i: int) -> bool:
    return any(is_camera_noun(t) or _is_camera_verb(t) for t in _sentence(doc, i))


def _in_camera_phrase(doc, i: int) -> bool:
    if doc[i].lower_ not in _PHRASE_WORDS:
        return False
    n = len(doc)
    for phrase in CAMERA_PHRASES:
        for offset in range(3):
            a = i - offset
            if a >= 0 and a + 3 <= n and all(doc[a + m].lower_ == w for m, w in enumerate(phrase)):
                return True
    return False


def _direction_head(doc, i: int) -> bool | None:
    """Does direction i describe the camera? Walk back to the word it hangs on: a camera-movement verb
    ("pans to the right"), a camera noun ("the camera is on the left"), a filming verb through "from"
    ("shot from above"), or a verb whose subject is a camera noun ("the camera moves up", "following
    her from below"). False for a scene word ("the man on the left"); None when the walk cannot tell."""
    if i + 1 < len(doc) and doc[i + 1].pos_ == "NOUN" and doc[i + 1].lower_ not in _PLACE_NOUNS:
        return False  # an attribute of a thing: "zooms in on its LEFT paw"
    via_from = False
    j = i - 1
    while j >= 0:
        tok = doc[j]
        if _sentence_break(tok):
            return None
        if _is_camera_verb(tok) or is_camera_noun(tok):
            return True
        if tok.pos_ == "VERB":
            return True if via_from and tok.lemma_.lower() in VIEW_VERBS else _verb_is_camera(doc, j)
        if tok.pos_ in ("NOUN", "PROPN", "PRON") and tok.tag_ != "PRP$" and tok.lower_ not in DIRECTION_WORDS:
            start = _object_start(doc, j)  # "across the room", "following her": go on to what governs it
            if start is None:
                return False
            j = start
            continue
        if tok.lower_ == "from":
            via_from = True
        if tok.pos_ not in _TRANSPARENT_POS and tok.lower_ not in DIRECTION_WORDS:
            return None
        j -= 1
    return None


def camera_language(doc, i: int, category: str, first: int | None = None) -> bool:
    """True when token i (a compound's last token, `first` its first) is camera or shot language.
    Where the word's head cannot be told ("..., high above", "at walking speed"), a sentence that
    speaks of the camera claims it: precision over recall."""
    tok, first = doc[i], i if first is None else first
    if is_camera_noun(tok) or _is_camera_verb(tok) or _in_camera_phrase(doc, i):
        return True
    if category == "noun":
        return i + 1 < len(doc) and is_camera_noun(doc[i + 1])  # "rack focus", "drone shot", "camera angle"
    if category == "direction":
        if tok.lower_ == "up" and first > 0 and doc[first - 1].lower_ == "close":  # "a close up of"
            return True
        head = _direction_head(doc, first)
    elif category == "verb":
        head = _verb_is_camera(doc, first)  # "the camera glides", "the video opens with", "the scene cuts to"
    else:
        return False
    return _sentence_has_camera(doc, i) if head is None else head


# ---- hyphenated compounds -----------------------------------------------------------------------


def hyphen_span(doc, i: int) -> tuple[int, int] | None:
    """(start, end) token range of the hyphenated compound holding token i ("close-up", "bird's-eye",
    "t-shirts"), or None when i is not in one. A compound is a run of tokens with no space between them
    that has a hyphen inside; punctuation at its edges ("(close-up),") is not part of it."""
    n = len(doc)
    joined_right = i + 1 < n and not doc[i].whitespace_ and doc[i + 1].text in HYPHENS
    joined_left = i > 0 and doc[i - 1].text in HYPHENS and not doc[i - 1].whitespace_
    if not (joined_right or joined_left):
        return None
    start, end = i, i + 1
    while start > 0 and not doc[start - 1].whitespace_ and not doc[start - 1].is_space:
        start -= 1
    while end < n and not doc[end - 1].whitespace_ and not doc[end].is_space:
        end += 1
    while start < i and doc[start].is_punct and doc[start].text not in HYPHENS:
        start += 1
    while end > i + 1 and doc[end - 1].is_punct and doc[end - 1].text not in HYPHENS:
        end -= 1
    if not any(doc[k].text in HYPHENS for k in range(start + 1, end - 1)):
        return None
    return start, end


def compound_keys(doc, start: int, end: int) -> tuple[str, str]:
    """(noun key, surface key) of a compound: "T-shirts" -> ("t-shirt", "t-shirts")."""
    head = "".join(t.text_with_ws for t in doc[start : end - 1]).lower()
    last = doc[end - 1]
    return head + last.lemma_.lower(), head + last.lower_


# ---- word senses ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sense:
    """Context a word must (not) have to be in the sense its contrast group assumes. Word sets hold
    lower-case surface forms or lemmas; "before" / "after" are the neighbouring tokens."""

    not_next: frozenset[str] = frozenset()
    """Word right after it ("the foot OF the hill", "a couple OF", "pass BY")."""
    not_next_pos: frozenset[str] = frozenset()
    """POS right after it ("looks HAPPY", "falls ASLEEP": ADJ)."""
    not_prev: frozenset[str] = frozenset()
    """Word right before it ("on the OTHER hand", "LIVE stream")."""
    not_prev_pos: frozenset[str] = frozenset()
    """POS right before it ("SIX feet": NUM; "BOTTLE cap": NOUN)."""
    not_soon_after: frozenset[str] = frozenset()
    """Lemmas within 3 tokens after it ("draws the viewer's ATTENTION", "carries a SENSE of")."""
    not_in_sentence: frozenset[str] = frozenset()
    """Lemmas anywhere in its sentence (a "coat" beside a dog is fur)."""
    not_subject: frozenset[str] = frozenset()
    """Subjects that make a motion verb a figure of speech ("the ROAD runs along the river")."""
    needs_before: frozenset[str] = frozenset()
    """At least one of these lemmas within 4 tokens before it, same sentence ("WEARING a black coat")."""
    source: bool = True
    """False: a replacement only, never swapped away ("give" is mostly a light verb: "giving a sense of")."""


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_WEAR = _words("wear dress don put button zip remove take in his her their my your")
_POSSESSIVE = _words("his her their its my your 's")
_ANIMAL_CUES = frozenset(w for group in lx.NOUNS["animal"] for w in group) | _words(
    "animal pet fur breed mane its paint dust snow layer"
)
_ABSTRACT = _words(
    "sense feeling feel impression mood tone atmosphere vibe attention eye breath meaning emotion emphasis moment "
    "role part look"
)
_WORN = Sense(needs_before=_WEAR)
_DRINKS = _words("wine water juice milk beer drink pour toast champagne")
_PATHS = _words("road street path trail river stream line fence wall wire cable track highway bridge hill")
_AWAY_PARTICLES = _words("by through over under along into away out across around behind near between past")

# Noun classes whose members may be swapped as the modifier of a following noun ("dog collar" ->
# "cat collar"); elsewhere a noun modifier is a material or a kind ("glass door", "paper bag", "fire truck").
MODIFIER_CLASSES = frozenset({"animal", "food", "vehicle"})

NOUN_CLASS_SENSES: dict[str, Sense] = {
    "body": Sense(not_next=_words("of")),  # "the foot of the hill", "the mouth of the river"
}
NOUN_SENSES: dict[str, Sense] = {
    "coat": Sense(not_next=_words("of"), not_in_sentence=_ANIMAL_CUES, needs_before=_WEAR),
    "top": Sense(not_next=_words("of"), needs_before=_WEAR),
    "cap": Sense(not_next=_words("of"), not_prev_pos=_words("NOUN PROPN")),  # "bottle cap", "lens cap"
    "foot": Sense(not_next=_words("of"), not_prev=_words("on"), not_prev_pos=_words("NUM")),  # "six feet", "on foot"
    "back": Sense(not_next=_words("of"), needs_before=_POSSESSIVE),  # "in the back of the room"
    "hand": Sense(not_next=_words("of in"), not_prev=_words("other by farm helping")),
    "face": Sense(not_next=_words("of"), not_prev_pos=_words("NOUN")),  # "rock face"
    "eye": Sense(not_next=_words("of contact level"), not_in_sentence=_words("catch draw")),
    "couple": Sense(not_next=_words("of")),  # "a couple of minutes"
    "jet": Sense(not_next=_words("of")),  # "a jet of water"
    "cloud": Sense(not_next=_words("of")),  # "a cloud of dust"
    "column": Sense(not_next=_words("of")),
    "bridge": Sense(not_next=_words("of")),
    "window": Sense(not_next=_words("of")),
    "sign": Sense(not_next=_words("of")),
    "wave": Sense(not_next=_words("of goodbye hello"), not_in_sentence=_words("give goodbye hello greet greeting")),
    "fork": Sense(not_next=_words("in"), not_in_sentence=_words("road path trail river")),
    "pen": Sense(not_in_sentence=_ANIMAL_CUES),  # a sheep pen
    "star": Sense(not_prev_pos=_words("NOUN"), not_in_sentence=_words("famous celebrity actor actress singer fan")),
    "plate": Sense(not_prev_pos=_words("NOUN PROPN")),  # "license plate"
    "dish": Sense(not_prev_pos=_words("NOUN")),  # "satellite dish"
    "key": Sense(not_prev=_words("piano keyboard")),
    "stage": Sense(not_next=_words("of"), not_prev=_words("this that early later final first next each every")),
    "stream": Sense(not_prev=_words("live")),
    "room": Sense(not_next=_words("for to"), not_prev=_words("make no enough much more little")),
    "player": Sense(not_prev=_words("record video media dvd cd music")),
    "market": Sense(not_prev=_words("stock")),
    "floor": Sense(not_prev=_words("first second third fourth fifth top ground upper lower bottom dance")),
}
VERB_CLASS_SENSES: dict[str, Sense] = {
    "manipulation": Sense(not_soon_after=_ABSTRACT),  # "holds a sense of", "carries the mood"
    "handling": Sense(not_soon_after=_ABSTRACT),
}
VERB_SENSES: dict[str, Sense] = {
    "look": Sense(not_next=_words("like as to"), not_next_pos=_words("ADJ")),  # "looks happy": appears
    "give": Sense(source=False),
    "pass": Sense(not_next=_AWAY_PARTICLES),  # "pass by": walk past, not hand over
    "fall": Sense(not_next=_words("in apart behind"), not_next_pos=_words("ADJ"), not_subject=_words("night dusk")),
    "draw": Sense(not_soon_after=_ABSTRACT | _words("crowd comparison conclusion inspiration focus")),
    "play": Sense(not_soon_after=_words("role part")),
    "run": Sense(not_subject=_PATHS),  # "the road runs along the river"
    "climb": Sense(not_subject=_PATHS),
    "drop": Sense(not_subject=_PATHS),
    "stand": Sense(not_next=_words("out")),  # "stands out"
    "hold": Sense(not_soon_after=_ABSTRACT | _words("meeting conversation position")),
    "raise": Sense(not_soon_after=_words("question concern awareness eyebrow")),
    "catch": Sense(not_soon_after=_ABSTRACT | _words("glimpse sight light")),
    "pick": Sense(not_next=_words("up out at")),  # "picks up the ball" is lifting, not choosing
    "point": Sense(not_next=_words("out")),
    "cut": Sense(not_next=_words("across through off in to")),  # "cuts across the field" is moving
    "carry": Sense(not_soon_after=_ABSTRACT | _words("weight")),
}


def _fits(doc, i: int, sense: Sense, first: int | None = None) -> bool:
    """Does the context of token i (a compound's last token, `first` its first) allow the sense?"""
    n, first = len(doc), i if first is None else first
    nxt = doc[i + 1] if i + 1 < n else None
    prev = doc[first - 1] if first > 0 else None
    if nxt is not None and (nxt.lower_ in sense.not_next or nxt.pos_ in sense.not_next_pos):
        return False
    if prev is not None and (prev.lower_ in sense.not_prev or prev.pos_ in sense.not_prev_pos):
        return False
    if sense.not_soon_after and any(t.lemma_.lower() in sense.not_soon_after for t in doc[i + 1 : i + 4]):
        return False
    if sense.not_in_sentence and any(t.lemma_.lower() in sense.not_in_sentence for t in _sentence(doc, i)):
        return False
    if sense.not_subject:
        subject = subject_of(doc, first)
        if subject is not None and subject.lemma_.lower() in sense.not_subject:
            return False
    if sense.needs_before:
        before = doc[max(0, first - 4) : first]
        cut = max((k for k, t in enumerate(before) if _sentence_break(t)), default=-1)
        cues = sense.needs_before
        if not any(t.lemma_.lower() in cues or t.lower_ in cues for t in before[cut + 1 :]):
            return False
    return sense.source


def sense_ok(doc, i: int, category: str, cls: str, key: str, first: int | None = None) -> bool:
    """Is token i (a compound's last token, `first` its first) used in the sense its contrast group assumes?"""
    if category == "noun":
        if cls not in MODIFIER_CLASSES and i + 1 < len(doc) and doc[i + 1].tag_ in ("NN", "NNS"):
            return False  # a material or kind before its noun: "glass door", "paper bag"
        senses = (NOUN_CLASS_SENSES.get(cls), NOUN_SENSES.get(key))
    elif category == "verb":
        senses = (VERB_CLASS_SENSES.get(cls), VERB_SENSES.get(key))
    else:
        return True
    return all(s is None or _fits(doc, i, s, first) for s in senses)


def glasses_key(doc, i: int) -> str | None:
    """Key of "glasses" (spaCy lemma "glass"): drinking glasses before "of", eyewear after a wearing cue
    ("wears glasses", "his glasses"), drinking glasses beside a drink, ambiguous (kept) otherwise."""
    if i + 1 < len(doc) and doc[i + 1].lower_ == "of":
        return "glass"
    if _fits(doc, i, _WORN):
        return "glasses"
    return "glass" if any(t.lemma_.lower() in _DRINKS for t in _sentence(doc, i)) else None
