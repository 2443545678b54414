"""English prompt text -> SceneGraph, keeping the character span of every object mention and relation phrase.

Pure Python, no NLP library: one precompiled tokenizer regex, a word -> class table, and small regexes that run
over the string of token classes (one character per token), so the grammar is matched in C and Python only
touches the few tokens that make up noun phrases and relations. Sentences are parsed on their own (memoised by
their text) and then joined by coreference, because the perturbation engine re-parses everything it writes and
a perturbed prompt shares most sentences with its original.

How a prompt is read
--------------------
Text is cut into sentences at . ! ? ; and each sentence into clauses. A clause is one of:

- subject first:   "The red mug (that is) to the left of the laptop and in front of the lamp ..."
                   "The mug and the pen are next to each other" / "A, B and C stand in a row from front to back"
- fronted phrase:  "To the left of the laptop is a mug" / "Behind the sofa, a lamp stands next to the plant"
- existential:     "There is a lamp beside the sofa" / "There are a mug, a cup and a pen from left to right"
- sequence first:  "From left to right: a mug, a laptop, and a lamp."
- extreme first:   "The leftmost object is the mug" / "The rightmost of them is the lamp"

Predicates are the lexicon's binary phrases, "between A and B", "in the middle (of X)", "aligned with the left
edge (of X)", "the leftmost (object)". Several predicates may share a subject ("..., and behind the lamp"); a
predicate that directly follows an anchor with no comma and no verb, or after ", which/that", describes that
anchor ("a cat on the rug in front of the sofa": the rug is in front of the sofa). A plain prepositional phrase
between the verb and the predicate is skipped ("hangs from the ceiling above the desks").

Decisions (documented here because the generator and the perturbation engine rely on them)
------------------------------------------------------------------------------------------
- Noun phrase: [article] [number word] [attributes] head. The head is every word after the last attribute up
  to the next relation phrase, verb, punctuation or conjunction ("cutting board", "lamp post"); unknown
  adjectives written before an attribute are dropped from the name ("a shiny red mug" -> red mug) but stay in
  the mention span. A lone attribute word can be the head ("a glass", "the red glass").
- Mention span: the number word (if any), the attributes and the head; articles (a, an, the, some, ...) are
  not part of it: "the three red books" -> "three red books".
- Count: the number word's value ("a pair of" = 2); otherwise 1 for a singular head and 2 for a bare plural
  ("books", "some books"), meaning "several".
- Coreference: a mention joins an earlier object with the same key (name, attributes, count); otherwise a
  definite or bare mention ("the mug", "the books") joins the most recently mentioned object with the same
  name whose attributes include the mention's and whose count fits (a number word must match exactly; a bare
  plural fits any count above 1; a singular fits count 1). An indefinite mention ("a mug") with different
  attributes is a new object. A mention never links to an object with a different name ("the pan" is not
  "the frying pan"), so every mention span contains its object's name. "it" refers to the single object most
  recently used as an anchor ("a mug left of the laptop and a lamp behind it"), else the one most recently
  mentioned, never one already named in the same clause; it is not recorded in `mentions`, and a relation whose
  "it" finds nothing is reported as unparsed. "they"/"them"/"both" are not resolved (the clause is unparsed).
  Object ids follow first mention.
- Scene words ("the scene", "the image", "the room", the scene categories) after "in the middle of" or
  "... edge of" are not objects: "in the middle of the scene" is IN_MIDDLE with no anchor; a binary phrase with
  a scene word ("On the beach, ...") sets the scene and is no relation.
- Relation span: the phrase itself ("to the left of", "beneath", "in the middle", "aligned with the left
  edge", the extreme word); for BETWEEN from "between" through the second anchor; for SEQUENCE from the
  direction phrase through the last item when the phrase comes first, and from the first item through the
  direction phrase when it comes last.
- Unparsed: a stretch of a sentence that no clause pattern accepts is reported in `SceneGraph.unparsed` when it
  holds anything spatial (a relation phrase, a direction word such as "near", "left", "opposite", or a
  preposition before a position noun: "in the corner", "in the background"); stretches with nothing spatial
  ("The scene is bright and cozy.") are description and ignored. A failed stretch ends at the next comma or
  conjunction, where parsing resumes. Objects are only created by clauses that parse (or by "there is/are"),
  so an unparsed clause adds no objects.
"""

from __future__ import annotations

import re
from itertools import repeat

from ml.spatial import lexicon
from ml.spatial.graph import Extreme, Relation, RelationKind, SceneGraph, SceneObject, SequenceDirection, Span

# ---------------------------------------------------------------------------------------------------------
# singular()

_IRREGULAR = {
    "knives": "knife", "wives": "wife", "lives": "life", "shelves": "shelf", "bookshelves": "bookshelf",
    "leaves": "leaf", "halves": "half", "wolves": "wolf", "loaves": "loaf", "scarves": "scarf", "calves": "calf",
    "thieves": "thief", "elves": "elf", "selves": "self", "hooves": "hoof", "wharves": "wharf",
    "mice": "mouse", "men": "man", "women": "woman", "children": "child", "people": "person", "feet": "foot",
    "teeth": "tooth", "geese": "goose", "oxen": "ox", "cacti": "cactus", "fungi": "fungus", "dice": "dice",
    "buses": "bus", "gases": "gas", "lenses": "lens", "bonuses": "bonus", "canvases": "canvas",
    "atlases": "atlas", "campuses": "campus", "cactuses": "cactus", "octopuses": "octopus", "walruses": "walrus",
    "viruses": "virus", "circuses": "circus", "irises": "iris", "quizzes": "quiz", "axes": "axe",
    "tomatoes": "tomato", "potatoes": "potato", "heroes": "hero", "echoes": "echo", "mangoes": "mango",
    "volcanoes": "volcano", "torpedoes": "torpedo", "dominoes": "domino", "mosquitoes": "mosquito",
    "cookies": "cookie", "movies": "movie", "pies": "pie", "ties": "tie", "zombies": "zombie",
    "brownies": "brownie", "smoothies": "smoothie", "selfies": "selfie", "hippies": "hippie", "lies": "lie",
    "niches": "niche", "caches": "cache", "quiches": "quiche", "cliches": "cliche", "moustaches": "moustache",
    "mustaches": "mustache", "avalanches": "avalanche", "headaches": "headache", "creches": "creche",
}
# Words that end in s but are singular (or have no separate singular).
_SINGULAR_S = frozenset({
    "glass", "bus", "gas", "lens", "canvas", "atlas", "iris", "axis", "tennis", "chassis", "trellis", "pelvis",
    "mantis", "ibis", "bias", "alias", "christmas", "pancreas", "cosmos", "chaos", "kudos", "asbestos",
    "rhinoceros", "thermos", "news", "series", "species", "scissors", "trousers", "pants", "jeans", "shorts",
    "pliers", "tongs", "binoculars", "goggles", "headphones", "earphones", "clothes", "its", "this",
    "was", "is", "has", "yes", "us", "as", "physics", "mathematics", "measles", "dais", "oasis", "debris",
})


def singular(noun: str) -> str:
    """The singular of an English noun (the last word of a multi-word noun): "knives" -> "knife"."""
    noun = noun.lower()
    head, sep, last = noun.rpartition(" ")
    return head + sep + _singular_word(last)


def _singular_word(word: str) -> str:
    if not word.endswith("s") and word not in _IRREGULAR:
        return word
    irregular = _IRREGULAR.get(word)
    if irregular is not None:
        return irregular
    if word in _SINGULAR_S or len(word) < 3 or word.endswith(("ss", "us", "sis", "'s", "’s")):
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("xes", "ches", "shes", "sses", "zzes", "oes")):
        return word[:-2] if not word.endswith("oes") else word[:-1]
    return word[:-1]


# ---------------------------------------------------------------------------------------------------------
# Token classes (one character each; the grammar regexes below match over the string of classes)
#
#   R binary relation phrase   B between            M middle phrase        L aligned-with-edge phrase
#   S sequence direction       X extreme word       G "in a row"/"lined up"  E "each other"
#   T "there"/"we see"         N number word        D article/determiner   A attribute (colour/material/size)
#   V verb/copula              C conjunction        Q which/that           F filler adverb ("directly")
#   P pronoun                  O "of"               J "object"/"item"      Z spatial word we cannot use ("near")
#   Y position noun ("corner") I other preposition  H left/right           W any other word
#   c , ( ) dash               k :                  e . ! ? ;

_CLASS: dict[str, str] = {}
_REL: dict[str, RelationKind] = {}
_SEQ: dict[str, SequenceDirection] = {}
_EXT: dict[str, Extreme] = {}
_EDGE: dict[str, str] = {}
_NUM: dict[str, int] = {}


def _add(cls: str, words) -> None:
    for word in words:
        _CLASS.setdefault(word, cls)


# Binary phrases: the lexicon's, and a few more the parser also reads.
_EXTRA_BINARY = {
    RelationKind.LEFT_OF: ("to the left side of", "to the left-hand side of", "on the left-hand side of"),
    RelationKind.RIGHT_OF: ("to the right side of", "to the right-hand side of", "on the right-hand side of"),
    RelationKind.ON_TOP_OF: ("atop", "upon", "on the top of"),
    RelationKind.NEXT_TO: ("alongside", "adjacent to"),
}
for _kind, _phrases in list(lexicon.BINARY_PHRASES.items()) + list(_EXTRA_BINARY.items()):
    for _phrase in _phrases:
        _REL.setdefault(_phrase, _kind)
        _add("R", [_phrase])
_add("B", lexicon.BETWEEN_PHRASES)
_add("M", lexicon.MIDDLE_PHRASES + ("in the very middle", "at the centre", "centred", "in the exact center",
                                    "in the exact centre", "at the very center", "at the very centre"))
for _template in lexicon.ALIGNED_TEMPLATES:
    for _edge in lexicon.EDGES:
        _EDGE[_template.format(edge=_edge)] = _edge
        _add("L", [_template.format(edge=_edge)])
_SEQ_WORDS = {"left": "l", "right": "r", "front": "f", "back": "b", "top": "t", "bottom": "m"}
for _direction, _phrases in lexicon.SEQUENCE_PHRASES.items():
    for _phrase in _phrases:
        _a, _b = _phrase.split()[1], _phrase.split()[3]  # "from left to right"
        for _variant in (_phrase, f"{_a} to {_b}", f"from the {_a} to the {_b}", f"going from {_a} to {_b}"):
            _SEQ[_variant] = _direction
            _add("S", [_variant])
for _extreme, _words in lexicon.EXTREME_WORDS.items():
    for _word in _words + tuple(w.replace("most", "-most") for w in _words if w.endswith("most")):
        _EXT[_word] = _extreme
        _add("X", [_word])
_add("G", ("in a row", "in a line", "in a straight line", "in a single row", "in one row", "lined up",
           "in that order", "in this order", "in order", "one after another", "one after the other"))
_add("E", ("each other", "one another"))
_add("T", ("there", "there's", "there’s", "we see", "we can see", "you see", "you can see", "one can see",
           "one sees", "here is", "here are"))
_NUM.update(lexicon.NUMBERS)
_NUM.update({"eleven": 11, "twelve": 12, "a pair of": 2, "a couple of": 2})
_NUM.update({str(i): i for i in range(1, 21)})
_add("N", _NUM)
_INDEFINITE = frozenset({"a", "an", "another", "some", "several", "many", "a few", "few", "various", "multiple"})
_add("D", ("the", "a", "an", "another", "some", "several", "many", "a few", "few", "various", "multiple", "these",
           "those", "this", "its", "their", "his", "her", "my", "our", "your", "each", "every"))
_add("A", lexicon.COLOURS + lexicon.MATERIALS + lexicon.SIZES)
_add("V", (
    "is", "are", "was", "were", "be", "being", "been", "sits", "sit", "sitting", "seated", "stands", "stand",
    "standing", "stood", "lies", "lie", "lying", "lay", "rests", "rest", "resting", "placed", "positioned",
    "located", "situated", "set", "sets", "put", "kept", "stored", "found", "appears", "appear", "appearing",
    "hangs", "hang", "hanging", "hung", "perched", "parked", "leans", "lean", "leaning", "propped", "mounted",
    "displayed", "shown", "seen", "visible", "laid", "lays", "can be", "could be", "will be", "should be", "must be",
    "waits", "wait", "waiting", "stays", "stay", "floats", "float", "floating", "grows", "grow", "growing",
    "sleeps", "sleep", "sleeping", "tucked", "nestled", "nestles", "stacked", "piled", "remains", "remain",
    "sprawls", "lounges", "rolls", "stuck", "balanced", "balances", "rises", "rise", "towers", "looms",
    "hovers", "hover", "hovering", "has", "have", "go", "goes", "come", "comes", "lined", "hides", "hide",
    "hiding", "flies", "holds", "hold", "peeks", "peeking", "sprawled", "curled", "shines", "glows", "dangles",
    "dangling", "sticks", "poking", "pokes", "lurks", "stretches", "spreads", "falls", "fall", "coiled",
    "draped", "scattered", "folded", "spread", "strewn", "arranged", "ordered",
))
_add("C", ("and", "while", "whereas", "but", "then", "and then", "followed by", "plus", "as well as", "whilst"))
_add("Q", ("which", "that", "who", "where"))
_add("F", ("directly", "just", "slightly", "immediately", "exactly", "squarely", "neatly", "also", "both", "all",
           "partly", "partially", "somewhat", "roughly", "approximately", "precisely", "clearly", "carefully",
           "too", "still", "now", "together", "casually", "prominently",
           "further", "farther", "way", "well", "firmly", "snugly", "perfectly", "centrally", "up", "down", "high",
           "low", "safely", "quietly", "upright"))
_add("P", ("it", "they", "them"))
_add("O", ("of",))
_add("J", ("object", "objects", "item", "items", "thing", "things", "ones", "element", "elements", "piece",
           "pieces"))
_add("H", ("left", "right"))  # also modifiers: "the left nightstand"
_add("Z", (
    "near", "nearby", "close", "closer", "closest", "inside", "outside", "within", "into", "onto",
    "across", "around", "against", "along", "beyond", "toward", "towards", "opposite", "facing", "adjacent", "far",
    "farthest", "furthest", "nearest", "diagonal", "diagonally", "upward", "downward", "leftward", "rightward",
    "surrounded", "surrounding", "encircling", "amid", "amidst", "among", "amongst", "overlooking", "past",
    "left-hand", "right-hand", "sideways", "upstairs", "downstairs", "north", "south", "east", "west", "beside",
))
_add("Y", ("front", "back", "top", "bottom", "middle", "center", "centre", "side", "sides", "corner", "corners",
           "edge", "edges", "row", "rows", "line", "rear", "end", "foreground", "background", "midground", "upper",
           "lower", "far-left", "far-right"))
_add("I", ("in", "at", "by", "with", "for", "to", "from", "off", "up", "down", "out", "through", "about", "during",
           "like", "than", "as", "into"))
_add("c", (",", "(", ")", "—", "–"))
_add("k", (":",))
_add("e", (".", "!", "?", ";"))

# Scene words: "in the middle of the scene" has no anchor object.
_OBJECT_WORDS = frozenset(word for objects in lexicon.SCENES.values() for pair in objects for word in pair[0].split())
_SCENE_WORDS = frozenset({"scene", "image", "picture", "frame", "photo", "photograph", "composition", "shot", "view",
                          "room", "space", "setting", "area", "layout", "arrangement", "canvas", "office"}
                         | {name for name in lexicon.SCENES if name.split()[-1] not in _OBJECT_WORDS})


def _trie_regex(phrases: list[str]) -> str:
    """A regex alternation of phrases, factored as a character trie: at each level the alternatives start with
    distinct literal characters, which the regex engine rejects with one comparison each, so trying the phrase
    table at every word costs about as much as one alternative. A space matches any run of whitespace."""
    root: dict = {}
    for phrase in phrases:
        node = root
        for ch in phrase:
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: dict) -> str:
        alternatives = []
        for ch in sorted(c for c in node if c):
            child = node[ch]
            piece = r"\s+" if ch == " " else re.escape(ch)
            # Collapse single-child chains into one literal run.
            while len(child) == 1 and "" not in child:
                (nxt, grandchild), = child.items()
                piece += r"\s+" if nxt == " " else re.escape(nxt)
                child = grandchild
            rest = emit(child) if any(child) else ""
            if rest:
                rest = "(?:" + rest + ")" + ("?" if "" in child else "")
            alternatives.append(piece + rest)
        return "|".join(alternatives)

    return emit(root)


_MATCH_GROUP = re.Match.group
_MULTI = [phrase for phrase in _CLASS if " " in phrase]
_WORD_TAIL = r"(?![\w'’-])"
_TOKEN_RE = re.compile(
    r"(?:" + _trie_regex(_MULTI) + r")" + _WORD_TAIL   # multi-word phrases, longest first
    + r"|[a-z][\w'’-]*|[^\W\d_][\w'’-]*"                # a word
    + r"|\d+"
    + r"|[,;:.!?()—–]"
)

# Grammar over the class string.
# [article] [number] [modifiers ending in an attribute] head [of ...]; "wine glass" and "red glass" end in an
# attribute word, which is then the head.
_NP_RE = re.compile(r"(D?)(N?)((?:[AWYH]*A)?)[WYH]*[AW](?:(O)[AWYH]*[AW])?|P")
_LIST_SEP_RE = re.compile(r"cC{0,2}|C{1,2}")
_TRAIL_SEQ_RE = re.compile(r"[VGFc]*S")
_LEAD_SEQ_RE = re.compile(r"[GV]*(S)[ck]*T?[VFG]*[ck]*")
_AFTER_SEQ_RE = re.compile(r"(?:c?[GV])*")
_X_TAIL_RE = re.compile(r"[JN]?(?:O(?:P|F|D?N?J|DY))?(?:ID[WY])?")
_LEAD_X_RE = re.compile(r"D?X")
_BOUNDARY_RE = re.compile(r"[cCk]")
# Spatial content: any relation/direction/position phrase, or a preposition before a position noun ("in the
# corner", "at the back"). A position noun alone ("a reading corner") is description.
_HINT_RE = re.compile(r"[RBMLSXZGEH]|ID?Y")
_PRED_START = frozenset("RBMLX")
_SKIP_BEFORE_PRED = frozenset("FVQ")
_FILLER_BEFORE_REL = frozenset({"right", "far"})  # "right next to", "far to the left of"
# A phrase with these may stand between a verb and the relation phrase and is skipped: "hangs from the ceiling
# above the desks", "sits in the kitchen to the left of the kettle".
_ADJUNCT_PREPOSITIONS = frozenset({"in", "at", "from", "by", "during", "through"})

# Relation specs produced by _pred: (kind, anchors, param, span, low_anchor, is_extreme)
_EACH = (-1,)  # anchors placeholder for "next to each other"
_SCENE_SPEC = (None, (), "", None, None, False)  # "on the beach": says where the scene is, relates nothing


class _Sentence:
    """Tokens and clauses of one sentence. The result depends on the sentence's text alone (offsets are relative
    to the sentence), so it is memoised: a perturbed prompt re-parsed after an edit shares most sentences with the
    prompt it came from, and generated prompts repeat sentences."""

    __slots__ = ("strs", "ms", "kinds", "items")

    def __init__(self, text: str) -> None:
        low = text.lower()
        if len(low) != len(text):  # a few non-ASCII letters lower-case to two characters; keep offsets exact
            low = "".join(ch if len(ch.lower()) != 1 else ch.lower() for ch in text)
        ms = list(_TOKEN_RE.finditer(low))
        strs = list(map(_MATCH_GROUP, ms))  # m.group() is m[0]
        if "  " in low or "\n" in low or "\t" in low or "\r" in low:
            strs = [" ".join(s.split()) if " " in s or "\n" in s or "\t" in s else s for s in strs]
        self.ms = ms
        self.strs = strs
        self.kinds = "".join(map(_CLASS.get, strs, repeat("W")))  # _CLASS.get(s, "W") for each
        # ("c", noun phrase records, relations) for each clause read, (start, end) for each unparsed stretch
        self.items: list[tuple] = []

    def parse(self) -> tuple:
        kinds = self.kinds
        pos, end = 0, len(kinds)
        frag_start = frag_end = -1
        while pos < end:
            if kinds[pos] in "ckCFQe":
                pos += 1
                continue
            result = self._clause(pos, end)
            if result is None:
                # Skip to the next comma/conjunction and try again from there. Skipped stretches are reported
                # if they say anything spatial; one that does absorbs the failed stretches that follow it.
                boundary = _BOUNDARY_RE.search(kinds, pos + 1, end)
                stop = boundary.start() if boundary else end
                if frag_start < 0 or not _HINT_RE.search(kinds, frag_start, frag_end):
                    frag_start = pos
                frag_end = stop
                pos = stop
                continue
            if frag_start >= 0:
                self._fragment(frag_start, frag_end)
                frag_start = -1
            new_pos, nps, rels = result
            self.items.append(("c", tuple(nps), tuple(rels)))
            pos = new_pos
        if frag_start >= 0:
            self._fragment(frag_start, frag_end)
        return tuple(self.items)

    def _fragment(self, start: int, end: int) -> None:
        kinds = self.kinds
        while end > start and kinds[end - 1] in "ckC":
            end -= 1
        if end > start and _HINT_RE.search(kinds, start, end):
            self.items.append((self.ms[start].start(), self.ms[end - 1].end()))

    def _clause(self, pos: int, end: int):
        kinds = self.kinds
        k = kinds[pos]
        if k == "S" or k == "G" or (k == "V" and _LEAD_SEQ_RE.match(kinds, pos, end)):
            return self._lead_sequence(pos, end)  # "From left to right: ...", "Arranged from left to right ..."
        if k == "T":
            return self._existential(pos, end)
        if k == "X" or (k == "D" and kinds.startswith("X", pos + 1)):
            return self._lead_extreme(pos, end)
        if k in "DNAWYP":
            return self._subject_first(pos, end)
        if k in "RBML" or self._pred_start(pos, end) >= 0:
            return self._fronted(pos, end)
        return None

    def _pred_start(self, pos: int, end: int) -> int:
        """Index of the predicate phrase that starts at pos after fillers and verbs, or -1."""
        kinds, strs = self.kinds, self.strs
        while pos < end:
            k = kinds[pos]
            if k in _PRED_START:
                return pos
            if k == "D" and kinds.startswith("X", pos + 1):
                return pos
            if k in _SKIP_BEFORE_PRED or ((k == "H" or k == "Z") and strs[pos] in _FILLER_BEFORE_REL
                                          and pos + 1 < end and kinds[pos + 1] in "RBML"):
                pos += 1
                continue
            if (k == "D" and strs[pos] == "a" and pos + 2 < end and strs[pos + 1] in ("little", "bit")
                    and kinds[pos + 2] in "RBMLF"):  # "a little to the left of" (but "a little grey toaster")
                pos += 2
                continue
            if k == "I" and strs[pos] in _ADJUNCT_PREPOSITIONS:  # "hangs from the ceiling above the desks"
                m = _NP_RE.match(kinds, pos + 1, end)
                if m and m.end() < end and kinds[m.end()] not in "ckCe":
                    pos = m.end()
                    continue
            return -1
        return -1

    def _subject_first(self, pos: int, end: int):
        nps: list = []
        subjects, p = self._np_list(pos, end, nps, stop_before_verb=False)
        if not subjects:
            return None
        rels: list = []
        if len(subjects) >= 2:
            m = _TRAIL_SEQ_RE.match(self.kinds, p, end)
            if m:
                p = self._trailing_sequence(subjects, m.end(), nps, rels)
                p = self._continue(p, end, nps, subjects, rels, None, existential=False)
                return p, nps, rels
        if self.kinds.startswith("cQ", p):
            p += 1
        after_subjects = p
        p = self._predicates(p, end, nps, subjects, rels, existential=False)
        if p == after_subjects:
            return None
        return self._sequence_after_predicates(p, end, subjects, nps, rels), nps, rels

    def _sequence_after_predicates(self, p: int, end: int, subjects: list[int], nps: list, rels: list) -> int:
        """ "A red cushion and a blue cushion lie on the sofa, from left to right." """
        if len(subjects) >= 2:
            m = _TRAIL_SEQ_RE.match(self.kinds, p, end)
            if m:
                return self._trailing_sequence(subjects, m.end(), nps, rels)
        return p

    def _existential(self, pos: int, end: int):
        kinds = self.kinds
        p = pos + 1
        while p < end and kinds[p] in "VF":
            p += 1
        if p < end and kinds[p] == "k":
            p += 1
        nps: list = []
        subjects, p = self._np_list(p, end, nps, stop_before_verb=True)
        if not subjects:
            return None
        rels: list = []
        if len(subjects) >= 2:
            m = _TRAIL_SEQ_RE.match(kinds, p, end)
            if m:
                p = self._trailing_sequence(subjects, m.end(), nps, rels)
                p = self._continue(p, end, nps, subjects, rels, None, existential=True)
                return p, nps, rels
        p = self._predicates(p, end, nps, subjects, rels, existential=True)
        return self._sequence_after_predicates(p, end, subjects, nps, rels), nps, rels

    def _lead_sequence(self, pos: int, end: int):
        m = _LEAD_SEQ_RE.match(self.kinds, pos, end)
        if not m:
            return None
        s_tok = m.start(1)
        nps: list = []
        items, p = self._np_list(m.end(), end, nps, stop_before_verb=False)
        if len(items) < 2:
            return None
        last = nps[items[-1]]
        span = (self.ms[s_tok].start(), last[6] if last is not None and len(last) > 6 else self.ms[p - 1].end())
        rels = [(RelationKind.SEQUENCE, None, tuple(items), _SEQ[self.strs[s_tok]].value, span)]
        p = _AFTER_SEQ_RE.match(self.kinds, p, end).end()
        p = self._continue(p, end, nps, items, rels, None, existential=False)
        return p, nps, rels

    def _trailing_sequence(self, items: list[int], s_end: int, nps: list, rels: list) -> int:
        s_tok = s_end - 1
        first = nps[items[0]]
        start = first[5] if first is not None else self.ms[s_tok].start()
        rels.append((RelationKind.SEQUENCE, None, tuple(items), _SEQ[self.strs[s_tok]].value,
                     (start, self.ms[s_tok].end())))
        return _AFTER_SEQ_RE.match(self.kinds, s_end, len(self.kinds)).end()

    def _lead_extreme(self, pos: int, end: int):
        kinds = self.kinds
        m = _LEAD_X_RE.match(kinds, pos, end)
        x_tok = m.end() - 1
        p = _X_TAIL_RE.match(kinds, m.end(), end).end()
        if p >= end or kinds[p] not in "Vkc":
            return None
        while p < end and kinds[p] in "VkcF":
            p += 1
        nps: list = []
        np = self._np(p, end, nps)
        if np is None:
            return None
        subject, p = np
        rels = [(RelationKind.EXTREME, subject, (), _EXT[self.strs[x_tok]].value, self._tok_span(x_tok))]
        p = self._continue(p, end, nps, [subject], rels, None, existential=False)
        return p, nps, rels

    def _fronted(self, pos: int, end: int):
        """A predicate before its subject: "To the left of the laptop (,) is/sits/there is a mug ..."."""
        kinds = self.kinds
        nps: list = []
        specs = []
        p = pos
        while True:
            pred = self._pred(p, end, nps)
            if pred is None or pred[1][5] or pred[1][1] is _EACH:
                return None
            p, spec = pred
            specs.append(spec)
            q = p
            while q < end and kinds[q] in "cC":
                q += 1
            if q < end and self._pred_start(q, end) >= 0 and kinds[q] not in "VQ":
                p = q
                continue
            break
        while p < end and kinds[p] in "ck":
            p += 1
        if p < end and kinds[p] == "T":
            p += 1
        while p < end and kinds[p] in "VF":
            p += 1
        subjects, p = self._np_list(p, end, nps, stop_before_verb=True)
        if not subjects:
            return None
        rels: list = []
        for spec in specs:
            self._emit(spec, subjects, rels)
        if len(subjects) >= 2:
            m = _TRAIL_SEQ_RE.match(kinds, p, end)
            if m:
                p = self._trailing_sequence(subjects, m.end(), nps, rels)
        while p < end and kinds[p] == "V":
            p += 1
        p = self._continue(p, end, nps, subjects, rels, None, existential=False)
        return p, nps, rels

    # -- predicates ----------------------------------------------------------------------------------------

    def _predicates(self, p: int, end: int, nps: list, subjects: list[int], rels: list, existential: bool) -> int:
        pred = self._pred(p, end, nps)
        if pred is None:
            return p
        p0 = p
        p, spec = pred
        if not self._emit(spec, subjects, rels):
            return p0
        return self._continue(p, end, nps, subjects, rels, spec[4], existential)

    def _continue(self, p: int, end: int, nps: list, subjects: list[int], rels: list, low_anchor, existential: bool):
        """More predicates after one: "..., and in front of the lamp" (same subjects), "... the laptop behind the
        lamp" (no comma, no verb: about the anchor just read), "... and the armchair." (a second anchor)."""
        kinds = self.kinds
        while p < end:
            k = kinds[p]
            separated = k in "cC"
            q = p
            while q < end and kinds[q] in "cC":
                q += 1
            start = self._pred_start(q, end)
            if start < 0:
                if (k == "C" and not existential and low_anchor is not None and rels
                        and rels[-1][0] in _BINARY_KINDS):
                    q2 = self._tail_anchor(q, end, nps, rels)
                    if q2 > 0:
                        return q2
                return p
            between = kinds[q:start]
            if "Q" in between and low_anchor is not None:
                targets = [low_anchor]  # "..., which is ...": about the noun just before
            elif separated or "V" in between or low_anchor is None:
                targets = subjects
            else:
                targets = [low_anchor]  # "on the rug in front of the sofa": the rug is in front of the sofa
            if kinds[start] in "DX":  # "..., and the rightmost is a lamp": a new clause, not a predicate
                x = start + 1 if kinds[start] == "D" else start
                tail = _X_TAIL_RE.match(kinds, x + 1, end).end()
                if tail < end and kinds[tail] in "Vk":
                    return p
            n = len(nps)
            pred = self._pred(q, end, nps)
            if pred is None:
                return p
            if separated and pred[0] < end and kinds[pred[0]] in "DNAWPVT":
                # "..., and to the left of it (sits) a notebook": a fronted clause of its own
                del nps[n:]
                return p
            p, spec = pred
            if not self._emit(spec, targets, rels):
                return p
            low_anchor = spec[4]
        return p

    def _tail_anchor(self, q: int, end: int, nps: list, rels: list) -> int:
        """"The lamp is behind the sofa and the armchair." -> a second anchor, only when it ends the sentence."""
        n = len(nps)
        np = self._np(q, end, nps)
        if np is None or np[1] != end:
            del nps[n:]
            return -1
        anchor = np[0]
        last = rels[-1]
        for rel in [r for r in rels if r[0] == last[0] and r[4] == last[4] and r[2] == last[2]]:
            rels.append((rel[0], rel[1], (anchor,), rel[3], rel[4]))
        return end

    def _pred(self, p: int, end: int, nps: list):
        """One predicate phrase with its anchors, after fillers/verbs. Returns (end, spec) or None."""
        start = self._pred_start(p, end)
        if start < 0:
            return None
        kinds, strs = self.kinds, self.strs
        n = len(nps)
        k = kinds[start]
        q = start + 1
        if k == "R":
            if q < end and kinds[q] == "E":
                return q + 1, (_REL[strs[start]], _EACH, "", self._tok_span(start), None, False)
            np = self._np(q, end, nps)
            if np is None:
                return None
            rec = nps[np[0]]
            if rec is not None and rec[0] in _SCENE_WORDS and not rec[3]:  # "on the beach": the setting
                del nps[n:]
                return np[1], _SCENE_SPEC
            return np[1], (_REL[strs[start]], (np[0],), "", self._tok_span(start), np[0], False)
        if k == "B":
            first = self._np(q, end, nps)
            if first is None:
                return None
            m = _LIST_SEP_RE.match(kinds, first[1], end)
            second = self._np(m.end(), end, nps) if m else None
            if second is None:
                del nps[n:]
                return None
            span = (self.ms[start].start(), self.ms[second[1] - 1].end())
            return second[1], (RelationKind.BETWEEN, (first[0], second[0]), "", span, None, False)
        if k == "M" or k == "L":
            kind = RelationKind.IN_MIDDLE if k == "M" else RelationKind.ALIGNED
            param = "" if k == "M" else _EDGE[strs[start]]
            anchors: tuple[int, ...] = ()
            if q < end and kinds[q] == "O":
                np = self._np(q + 1, end, nps)
                if np is None:
                    return None
                q = np[1]
                rec = nps[np[0]]
                if rec is not None and rec[0] in _SCENE_WORDS:
                    del nps[n:]
                else:
                    anchors = (np[0],)
            return q, (kind, anchors, param, self._tok_span(start), anchors[0] if anchors else None, False)
        # extreme: "(the) leftmost (object) (of them)"
        x = q if k == "D" else start
        q = _X_TAIL_RE.match(kinds, x + 1, end).end()
        return q, (RelationKind.EXTREME, (), _EXT[strs[x]].value, self._tok_span(x), None, True)

    def _emit(self, spec, subjects: list[int], rels: list) -> bool:
        kind, anchors, param, span, _, _ = spec
        if kind is None:
            return True
        if anchors is _EACH:
            if len(subjects) != 2 or kind != RelationKind.NEXT_TO:
                return False
            rels.append((kind, subjects[0], (subjects[1],), param, span))
            return True
        for subject in subjects:
            if subject not in anchors:
                rels.append((kind, subject, anchors, param, span))
        return True

    # -- noun phrases ----------------------------------------------------------------------------------

    def _np_list(self, pos: int, end: int, nps: list, stop_before_verb: bool) -> tuple[list[int], int]:
        items: list[int] = []
        np = self._np(pos, end, nps)
        if np is None:
            return items, pos
        items.append(np[0])
        p = np[1]
        kinds = self.kinds
        while p < end:
            m = _LIST_SEP_RE.match(kinds, p, end)
            if not m:
                break
            n = len(nps)
            np = self._np(m.end(), end, nps)
            if np is None or (stop_before_verb and np[1] < end and kinds[np[1]] == "V"):
                del nps[n:]
                break
            items.append(np[0])
            p = np[1]
        return items, p

    def _np(self, pos: int, end: int, nps: list):
        """A noun phrase at pos: appends its record to nps and returns (index, end) or None.

        Record: (name, attributes, count, explicit count, plural, span start, span end, indefinite); None for
        the pronoun "it" (resolved at commit)."""
        m = _NP_RE.match(self.kinds, pos, end)
        if m is None:
            return None
        (_, j), (_, d_end), (n_start, n_end), (mods_start, head), (of, _) = m.regs
        strs = self.strs
        if head < 0:  # the pronoun alternative
            if strs[pos] != "it":
                return None
            nps.append(None)
            return len(nps) - 1, j
        if head == mods_start:
            attrs = ()
        elif head == mods_start + 1:
            attrs = (strs[mods_start],)
        else:
            kinds = self.kinds
            attrs = tuple(sorted({strs[t] for t in range(mods_start, head) if kinds[t] == "A"}))
        main_end = j if of < 0 else of
        last = strs[main_end - 1]
        single = _singular_word(last) if last[-1] == "s" or last in _IRREGULAR else last
        name = single if main_end - 1 == head else " ".join(strs[head:main_end - 1]) + " " + single
        if of >= 0:
            name = name + " of " + " ".join(strs[of + 1:j])
        plural = single is not last
        count = _NUM[strs[n_start]] if n_end > n_start else 0
        nps.append((name, attrs, count or (2 if plural else 1), count > 0, plural, self.ms[d_end].start(),
                    self.ms[j - 1].end(), d_end > pos and strs[pos] in _INDEFINITE))
        return len(nps) - 1, j

    def _tok_span(self, tok: int) -> tuple[int, int]:
        return self.ms[tok].span()


class _Builder:
    """Objects across sentences (coreference), then the SceneGraph."""

    __slots__ = ("text", "objects", "by_key", "by_name", "serial", "rels", "unparsed")

    def __init__(self, text: str) -> None:
        self.text = text
        # [name, attributes, count, mention spans, serial of the latest mention, serial of the latest anchor use]
        self.objects: list[list] = []
        self.by_key: dict[tuple, int] = {}
        self.by_name: dict[str, list[int]] = {}
        self.serial = 0
        self.rels: list[tuple] = []
        self.unparsed: list[tuple[int, int]] = []

    def _commit(self, nps: tuple, rels: tuple, base: int) -> None:
        ids: list = []
        objects, by_key, by_name = self.objects, self.by_key, self.by_name
        pronoun = False
        serial = self.serial  # kept here, stored back for _resolve (the only reader) and at the end
        for rec in nps:
            if rec is None:
                ids.append(self._pronoun(ids))
                pronoun = True
                continue
            serial += 1
            key = rec[:3]
            found = by_key.get(key)  # the same key is always the same object
            if found is None:
                name = rec[0]
                if name in by_name:
                    self.serial = serial
                    found = self._resolve(rec, base)
                else:  # _resolve with no object of that name: a new object
                    found = len(objects)
                    objects.append([name, rec[1], rec[2], [(rec[5] + base, rec[6] + base)], serial, 0])
                    by_key[key] = found
                    by_name[name] = [found]
            else:
                obj = objects[found]
                obj[3].append((rec[5] + base, rec[6] + base))
                obj[4] = serial
            ids.append(found)
        out = self.rels
        for kind, subject, anchors, param, span in rels:
            sid = None if subject is None else ids[subject]
            if len(anchors) == 1:
                a = ids[anchors[0]]
                if span is not None:
                    span = (span[0] + base, span[1] + base)
                if pronoun and ((subject is not None and sid is None) or a is None):
                    self.unparsed.append(span)  # "it" with nothing to refer to
                    continue
                out.append((kind, sid, (a,), param, span))
                serial += 1
                objects[a][5] = serial
                continue
            aids = tuple([ids[a] for a in anchors])
            span = None if span is None else (span[0] + base, span[1] + base)
            if pronoun and ((subject is not None and sid is None) or None in aids):
                self.unparsed.append(span)  # "it" with nothing to refer to
                continue
            out.append((kind, sid, aids, param, span))
            for a in aids:
                serial += 1
                objects[a][5] = serial
        self.serial = serial

    def _pronoun(self, exclude: list) -> int | None:
        """ "it": the single object most recently used as an anchor ("a mug left of the laptop and a lamp behind
        it"), else the one most recently mentioned; never one already named in the same clause."""
        best, best_rank = None, (-1, -1)
        for oi, obj in enumerate(self.objects):
            rank = (obj[5], obj[4])
            if obj[2] == 1 and rank > best_rank and oi not in exclude:
                best, best_rank = oi, rank
        return best

    def _resolve(self, rec: tuple, base: int) -> int:
        """The object a mention with no exact key match refers to (see the module docstring), or a new one."""
        name, attrs, count, explicit, plural, start, end, indefinite = rec
        objects = self.objects
        found, best_seen = -1, -1
        for oi in self.by_name.get(name, ()):
            obj = objects[oi]
            if indefinite and obj[1] != attrs:
                continue
            # a number word must match; a bare plural fits any group; a singular fits a single object
            fits = obj[2] == count if explicit else (obj[2] > 1 if plural else obj[2] == 1)
            if fits and obj[4] > best_seen and set(attrs) <= set(obj[1]):
                found, best_seen = oi, obj[4]
        if found < 0:
            found = len(objects)
            objects.append([name, attrs, count, [(start + base, end + base)], self.serial, 0])
            self.by_key[rec[:3]] = found
            self.by_name.setdefault(name, []).append(found)
        else:
            obj = objects[found]
            obj[3].append((start + base, end + base))
            obj[4] = self.serial
        return found

    def graph(self) -> SceneGraph:
        ids = _IDS if len(self.objects) <= len(_IDS) else [f"o{i + 1}" for i in range(len(self.objects))]
        objects = tuple([_new_object(ids[i], name, attrs, count, tuple([_new_span(s, e) for s, e in mentions]))
                         for i, (name, attrs, count, mentions, _, _) in enumerate(self.objects)])
        relations = tuple([_new_relation(kind, None if subject is None else ids[subject],
                                         tuple([ids[a] for a in anchors]), param, _new_span(*span))
                           for kind, subject, anchors, param, span in self.rels])
        return SceneGraph(objects, relations, tuple([_new_span(s, e) for s, e in self.unparsed]), self.text)

    def graph_inline(self) -> SceneGraph:
        """graph() with _new_span, _new_object and _new_relation written out (no call per instance); used when
        those build the dataclasses' instances (checked at import)."""
        ids = _IDS if len(self.objects) <= len(_IDS) else [f"o{i + 1}" for i in range(len(self.objects))]
        new, set_dict = _object_new, _set_dict
        objects = []
        for i, (name, attrs, count, mentions, _, _) in enumerate(self.objects):
            spans = []
            for start, end in mentions:
                span = new(Span)
                set_dict(span, "__dict__", {"start": start, "end": end})
                spans.append(span)
            obj = new(SceneObject)
            set_dict(obj, "__dict__", {"id": ids[i], "name": name, "attributes": attrs, "count": count,
                                       "mentions": tuple(spans)})
            objects.append(obj)
        relations = []
        for kind, subject, anchors, param, (start, end) in self.rels:
            span = new(Span)
            set_dict(span, "__dict__", {"start": start, "end": end})
            relation = new(Relation)
            set_dict(relation, "__dict__", {"kind": kind, "subject": None if subject is None else ids[subject],
                                            "anchors": (ids[anchors[0]],) if len(anchors) == 1
                                            else tuple([ids[a] for a in anchors]), "param": param,
                                            "span": span})
            relations.append(relation)
        return SceneGraph(tuple(objects), tuple(relations), tuple([_new_span(s, e) for s, e in self.unparsed]),
                          self.text)


# parse() builds a few dozen spans, objects and relations per prompt; the dataclasses' generated __init__ sets
# each field through object.__setattr__ (they are frozen), which costs more than the rest of parsing a clause.
# These build the same instances by installing the field dict directly. If graph.py changes its fields or
# uses slots, the plain classes are used instead (the check below runs at import).
_object_new = object.__new__
_set_dict = object.__setattr__


def _new_span(start: int, end: int) -> Span:
    obj = _object_new(Span)
    _set_dict(obj, "__dict__", {"start": start, "end": end})
    return obj


def _new_object(id, name, attributes, count, mentions) -> SceneObject:  # noqa: A002 - the field's name
    obj = _object_new(SceneObject)
    _set_dict(obj, "__dict__", {"id": id, "name": name, "attributes": attributes, "count": count,
                                "mentions": mentions})
    return obj


def _new_relation(kind, subject, anchors, param, span) -> Relation:
    obj = _object_new(Relation)
    _set_dict(obj, "__dict__", {"kind": kind, "subject": subject, "anchors": anchors, "param": param, "span": span})
    return obj


def _fast_constructors_match() -> bool:
    try:
        return (_new_span(1, 2) == Span(1, 2)
                and _new_object("o1", "a", (), 1, ()) == SceneObject("o1", "a", (), 1, ())
                and _new_relation(RelationKind.LEFT_OF, "o1", ("o2",), "", None)
                == Relation(RelationKind.LEFT_OF, "o1", ("o2",), "", None))
    except (AttributeError, TypeError):
        return False


if _fast_constructors_match():
    _Builder.graph = _Builder.graph_inline
else:  # pragma: no cover - only if graph.py's dataclasses change shape
    _new_span, _new_object, _new_relation = Span, SceneObject, Relation  # noqa: F811

_IDS = [f"o{i + 1}" for i in range(256)]
_BINARY_KINDS = frozenset(lexicon.BINARY_PHRASES)


_SENTENCE_END_RE = re.compile(r"[.!?;]")  # the tokenizer's "e" class: no token spans one of these
_SENTENCE_CACHE: dict[str, tuple] = {}
_SENTENCE_CACHE_SIZE = 20000  # entries are small tuples; cleared when full


def parse(text: str) -> SceneGraph:
    """Reads a prompt into a scene graph; every span is an exact character range of `text`."""
    return _parse_raw(text).graph()


def _parse_raw(text: str) -> _Builder:
    """parse() up to the graph: the builder's plain lists (objects, relations, unparsed spans, by object index),
    which the perturbation engine's verification reads without building the SceneGraph's instances."""
    plain = "!" not in text and "?" not in text and ";" not in text
    sentences = text.split(".") if plain else _SENTENCE_END_RE.split(text)
    builder = _Builder(text)
    commit, unparsed = builder._commit, builder.unparsed
    cache = _SENTENCE_CACHE
    base = 0
    for sentence in sentences:
        if sentence and not sentence.isspace():
            items = cache.get(sentence)
            if items is None:
                items = _Sentence(sentence).parse()
                if len(cache) >= _SENTENCE_CACHE_SIZE:
                    cache.clear()
                cache[sentence] = items
            for item in items:  # a clause's noun phrases and relations, or an unparsed stretch
                if item[0] == "c":
                    commit(item[1], item[2], base)
                else:
                    unparsed.append((item[0] + base, item[1] + base))
        base += len(sentence) + 1
    return builder
