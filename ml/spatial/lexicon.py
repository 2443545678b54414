"""Words of the spatial language, shared by the parser (which must read every phrase listed here, and may read
more) and the generator and perturbation engine (which only write phrases listed here).

Binary relation phrases read "<subject> <copula> <phrase> <anchor>": "the mug is to the left of the laptop".
"""

from ml.spatial.graph import Extreme, RelationKind, SequenceDirection

BINARY_PHRASES: dict[RelationKind, tuple[str, ...]] = {
    RelationKind.LEFT_OF: ("to the left of", "on the left side of", "left of", "on the left of"),
    RelationKind.RIGHT_OF: ("to the right of", "on the right side of", "right of", "on the right of"),
    RelationKind.IN_FRONT_OF: ("in front of",),
    RelationKind.BEHIND: ("behind", "in back of"),
    RelationKind.ABOVE: ("above", "over"),
    RelationKind.BELOW: ("below",),
    RelationKind.ON_TOP_OF: ("on top of", "on"),
    RelationKind.UNDER: ("under", "beneath", "underneath"),
    RelationKind.NEXT_TO: ("next to", "beside"),
}

# The direction flip of each binary kind (perturbation rule "flip_direction"), grouped by axis.
FLIPS: dict[RelationKind, RelationKind] = {
    RelationKind.LEFT_OF: RelationKind.RIGHT_OF,
    RelationKind.RIGHT_OF: RelationKind.LEFT_OF,
    RelationKind.IN_FRONT_OF: RelationKind.BEHIND,
    RelationKind.BEHIND: RelationKind.IN_FRONT_OF,
    RelationKind.ABOVE: RelationKind.BELOW,
    RelationKind.BELOW: RelationKind.ABOVE,
    RelationKind.ON_TOP_OF: RelationKind.UNDER,
    RelationKind.UNDER: RelationKind.ON_TOP_OF,
}
AXES: dict[str, tuple[RelationKind, ...]] = {
    "horizontal": (RelationKind.LEFT_OF, RelationKind.RIGHT_OF),
    "depth": (RelationKind.IN_FRONT_OF, RelationKind.BEHIND),
    "vertical": (RelationKind.ABOVE, RelationKind.BELOW),
    "support": (RelationKind.ON_TOP_OF, RelationKind.UNDER),
}

# "<subject> is between <a> and <b>"
BETWEEN_PHRASES = ("between", "in between")
# "<subject> is in the middle" / "... is centered"
MIDDLE_PHRASES = ("in the middle", "in the center", "in the centre", "centered", "at the center")
# "<subject> is aligned with the left edge"; the edge word is the param
ALIGNED_TEMPLATES = ("aligned with the {edge} edge", "along the {edge} edge", "flush with the {edge} edge")
EDGES = ("left", "right", "top", "bottom", "front", "back")

# Sequences: "from left to right: A, B and C" / "A, B and C in a row from front to back"
SEQUENCE_PHRASES: dict[SequenceDirection, tuple[str, ...]] = {
    SequenceDirection.LEFT_TO_RIGHT: ("from left to right",),
    SequenceDirection.RIGHT_TO_LEFT: ("from right to left",),
    SequenceDirection.FRONT_TO_BACK: ("from front to back",),
    SequenceDirection.BACK_TO_FRONT: ("from back to front",),
    SequenceDirection.TOP_TO_BOTTOM: ("from top to bottom",),
    SequenceDirection.BOTTOM_TO_TOP: ("from bottom to top",),
}

# "<subject> is the leftmost object" / "the leftmost object is <subject>"
EXTREME_WORDS: dict[Extreme, tuple[str, ...]] = {
    Extreme.LEFTMOST: ("leftmost",),
    Extreme.RIGHTMOST: ("rightmost",),
    Extreme.FRONTMOST: ("frontmost",),
    Extreme.BACKMOST: ("backmost", "rearmost"),
    Extreme.TOPMOST: ("topmost", "highest"),
    Extreme.BOTTOMMOST: ("bottommost", "lowest"),
}

# Attribute vocabulary: words before the head noun that become attributes.
COLOURS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white", "grey",
           "gray", "silver", "gold", "beige", "teal", "navy")
MATERIALS = ("wooden", "metal", "glass", "ceramic", "plastic", "leather", "wicker", "marble", "stone", "paper",
             "cotton", "woollen", "steel", "copper", "porcelain")
SIZES = ("small", "large", "big", "tiny", "tall", "short", "huge", "little", "long", "round", "square", "wide")
NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
           "ten": 10, "a pair of": 2, "a couple of": 2}

# Scene categories of the generator, with the objects that belong in them (singular, plural).
SCENES: dict[str, tuple[tuple[str, str], ...]] = {
    "kitchen": (("mug", "mugs"), ("kettle", "kettles"), ("toaster", "toasters"), ("cutting board", "cutting boards"),
                ("bowl", "bowls"), ("plate", "plates"), ("knife", "knives"), ("jar", "jars"),
                ("frying pan", "frying pans"), ("teapot", "teapots"), ("spoon", "spoons"), ("bottle", "bottles"),
                ("blender", "blenders"), ("apple", "apples")),
    "living room": (("sofa", "sofas"), ("armchair", "armchairs"), ("lamp", "lamps"), ("coffee table", "coffee tables"),
                    ("cushion", "cushions"), ("plant", "plants"), ("television", "televisions"), ("rug", "rugs"),
                    ("bookshelf", "bookshelves"), ("vase", "vases"), ("clock", "clocks"), ("candle", "candles"),
                    ("remote", "remotes"), ("book", "books")),
    "classroom": (("desk", "desks"), ("chair", "chairs"), ("blackboard", "blackboards"), ("globe", "globes"),
                  ("backpack", "backpacks"), ("pencil case", "pencil cases"), ("notebook", "notebooks"),
                  ("ruler", "rulers"), ("map", "maps"), ("projector", "projectors"), ("trash can", "trash cans"),
                  ("book", "books"), ("clock", "clocks"), ("calculator", "calculators")),
    "office desk": (("laptop", "laptops"), ("keyboard", "keyboards"), ("monitor", "monitors"), ("mouse", "mice"),
                    ("stapler", "staplers"), ("pen", "pens"), ("notebook", "notebooks"), ("phone", "phones"),
                    ("lamp", "lamps"), ("mug", "mugs"), ("folder", "folders"), ("speaker", "speakers"),
                    ("plant", "plants"), ("calculator", "calculators")),
    "beach": (("umbrella", "umbrellas"), ("towel", "towels"), ("surfboard", "surfboards"), ("bucket", "buckets"),
              ("shovel", "shovels"), ("ball", "balls"), ("cooler", "coolers"), ("deck chair", "deck chairs"),
              ("sandcastle", "sandcastles"), ("shell", "shells"), ("kite", "kites"), ("bottle", "bottles")),
    "street": (("car", "cars"), ("bicycle", "bicycles"), ("bus", "buses"), ("lamp post", "lamp posts"),
               ("bench", "benches"), ("traffic light", "traffic lights"), ("mailbox", "mailboxes"), ("tree", "trees"),
               ("dog", "dogs"), ("trash can", "trash cans"), ("motorcycle", "motorcycles"), ("sign", "signs")),
    "bedroom": (("bed", "beds"), ("pillow", "pillows"), ("nightstand", "nightstands"), ("wardrobe", "wardrobes"),
                ("lamp", "lamps"), ("alarm clock", "alarm clocks"), ("mirror", "mirrors"), ("dresser", "dressers"),
                ("slipper", "slippers"), ("teddy bear", "teddy bears"), ("book", "books"), ("rug", "rugs")),
    "garden": (("flower pot", "flower pots"), ("watering can", "watering cans"), ("bench", "benches"),
               ("tree", "trees"), ("bird bath", "bird baths"), ("wheelbarrow", "wheelbarrows"), ("gnome", "gnomes"),
               ("fence", "fences"), ("hose", "hoses"), ("cat", "cats"), ("rake", "rakes"), ("shed", "sheds")),
}
