"""Hand-written prompts and the scene graphs the parser must read from them.

Objects are written "[count] [attributes] name": "red mug", "3 book", "2 wooden spoon". Relations:

    ("left_of", subject, anchor)        any binary kind: left_of right_of in_front_of behind above below
                                        on_top_of under next_to
    ("between", subject, a, b)
    ("in_middle", subject)              / ("in_middle", subject, anchor)
    ("aligned", subject, edge)          / ("aligned", subject, edge, anchor)
    ("sequence", direction, a, b, ...)  items in the written order, direction as written
    ("extreme", subject, which)         which: leftmost rightmost frontmost backmost topmost bottommost

`unparsed` lists the exact text of each span the parser must report as unparsed.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Case:
    text: str
    objects: list[str]
    relations: list[tuple] = field(default_factory=list)
    unparsed: list[str] = field(default_factory=list)


CASES: list[Case] = [
    # ---- left / right, every phrasing ------------------------------------------------------------------
    Case("The red mug is to the left of the laptop.", ["red mug", "laptop"], [("left_of", "red mug", "laptop")]),
    Case("A kettle sits on the left side of the toaster.", ["kettle", "toaster"], [("left_of", "kettle", "toaster")]),
    Case("The stapler is left of the monitor.", ["stapler", "monitor"], [("left_of", "stapler", "monitor")]),
    Case("A green notebook lies on the left of the keyboard.", ["green notebook", "keyboard"],
         [("left_of", "green notebook", "keyboard")]),
    Case("The bus is to the right of the lamp post.", ["bus", "lamp post"], [("right_of", "bus", "lamp post")]),
    Case("A small plant stands on the right side of the monitor.", ["small plant", "monitor"],
         [("right_of", "small plant", "monitor")]),
    Case("The globe is right of the blackboard.", ["globe", "blackboard"], [("right_of", "globe", "blackboard")]),
    Case("A wicker basket rests on the right of the armchair.", ["wicker basket", "armchair"],
         [("right_of", "wicker basket", "armchair")]),
    Case("The cat sits directly to the left of the watering can.", ["cat", "watering can"],
         [("left_of", "cat", "watering can")]),
    Case("A tall lamp stands slightly to the right of the sofa.", ["tall lamp", "sofa"],
         [("right_of", "tall lamp", "sofa")]),
    Case("The yellow towel is placed to the left of the striped umbrella.", ["yellow towel", "striped umbrella"],
         [("left_of", "yellow towel", "striped umbrella")]),
    Case("THE BLUE CAR IS TO THE RIGHT OF THE BICYCLE.", ["blue car", "bicycle"],
         [("right_of", "blue car", "bicycle")]),
    Case("a pencil case lies left of the calculator", ["pencil case", "calculator"],
         [("left_of", "pencil case", "calculator")]),
    Case("The ruler is positioned on the left-hand side of the map.", ["ruler", "map"], [("left_of", "ruler", "map")]),
    # ---- front / behind ------------------------------------------------------------------------------
    Case("The cutting board is in front of the blender.", ["cutting board", "blender"],
         [("in_front_of", "cutting board", "blender")]),
    Case("A wooden bench stands behind the mailbox.", ["wooden bench", "mailbox"],
         [("behind", "wooden bench", "mailbox")]),
    Case("The dog is lying in front of the red car.", ["dog", "red car"], [("in_front_of", "dog", "red car")]),
    Case("A wardrobe stands in back of the bed.", ["wardrobe", "bed"], [("behind", "wardrobe", "bed")]),
    Case("The surfboard is propped up behind the cooler.", ["surfboard", "cooler"],
         [("behind", "surfboard", "cooler")]),
    Case("Two chairs are in front of the desk.", ["2 chair", "desk"], [("in_front_of", "2 chair", "desk")]),
    Case("The garden gnome hides just behind the flower pot.", ["garden gnome", "flower pot"],
         [("behind", "garden gnome", "flower pot")]),
    # ---- above / below / on / under ----------------------------------------------------------------
    Case("A round clock hangs above the television.", ["round clock", "television"],
         [("above", "round clock", "television")]),
    Case("The map is over the blackboard.", ["map", "blackboard"], [("above", "map", "blackboard")]),
    Case("The shelf is below the mirror.", ["shelf", "mirror"], [("below", "shelf", "mirror")]),
    Case("A white pillow lies on top of the bed.", ["white pillow", "bed"], [("on_top_of", "white pillow", "bed")]),
    Case("The teapot sits on the cutting board.", ["teapot", "cutting board"],
         [("on_top_of", "teapot", "cutting board")]),
    Case("A pair of slippers is under the nightstand.", ["2 slipper", "nightstand"],
         [("under", "2 slipper", "nightstand")]),
    Case("The cat sleeps beneath the wooden bench.", ["cat", "wooden bench"], [("under", "cat", "wooden bench")]),
    Case("A rug lies underneath the coffee table.", ["rug", "coffee table"], [("under", "rug", "coffee table")]),
    Case("The kite flies high above the sandcastle.", ["kite", "sandcastle"], [("above", "kite", "sandcastle")],),
    Case("A glass jar stands atop the fridge.", ["glass jar", "fridge"], [("on_top_of", "glass jar", "fridge")]),
    Case("The projector hangs from the ceiling above the desks.", ["projector", "2 desk"],
         [("above", "projector", "2 desk")]),
    # ---- next to / beside ------------------------------------------------------------------------------
    Case("The mug is next to the keyboard.", ["mug", "keyboard"], [("next_to", "mug", "keyboard")]),
    Case("A bucket sits beside the shovel.", ["bucket", "shovel"], [("next_to", "bucket", "shovel")]),
    Case("The pen lies right next to the notebook.", ["pen", "notebook"], [("next_to", "pen", "notebook")]),
    Case("A bicycle is parked alongside the bench.", ["bicycle", "bench"], [("next_to", "bicycle", "bench")]),
    Case("The kettle and the toaster stand next to each other.", ["kettle", "toaster"],
         [("next_to", "toaster", "kettle")]),
    Case("A teddy bear sits beside a stack of books.", ["teddy bear", "stack of books"],
         [("next_to", "teddy bear", "stack of books")]),
    # ---- fronted (inverted) clauses ------------------------------------------------------------------
    Case("To the left of the laptop is a mug.", ["laptop", "mug"], [("left_of", "mug", "laptop")]),
    Case("Behind the sofa stands a tall lamp.", ["sofa", "tall lamp"], [("behind", "tall lamp", "sofa")]),
    Case("Next to the bed, there is a small nightstand.", ["bed", "small nightstand"],
         [("next_to", "small nightstand", "bed")]),
    Case("Under the desk lies a black backpack.", ["desk", "black backpack"], [("under", "black backpack", "desk")]),
    Case("On top of the bookshelf sits a brass clock.", ["bookshelf", "brass clock"],
         [("on_top_of", "brass clock", "bookshelf")]),
    Case("In front of the shed, a wheelbarrow rests.", ["shed", "wheelbarrow"],
         [("in_front_of", "wheelbarrow", "shed")]),
    Case("On the right side of the bus is a traffic light.", ["bus", "traffic light"],
         [("right_of", "traffic light", "bus")]),
    Case("Above the dresser hangs a square mirror.", ["dresser", "square mirror"],
         [("above", "square mirror", "dresser")]),
    Case("Beside the towel, a blue cooler stands next to the umbrella.", ["towel", "blue cooler", "umbrella"],
         [("next_to", "blue cooler", "towel"), ("next_to", "blue cooler", "umbrella")]),
    Case("To the right of the monitor are a phone and a speaker.", ["monitor", "phone", "speaker"],
         [("right_of", "phone", "monitor"), ("right_of", "speaker", "monitor")]),
    Case("Behind the bench, you can see a lamp post.", ["bench", "lamp post"], [("behind", "lamp post", "bench")]),
    # ---- existential and attached relations ------------------------------------------------------------
    Case("There is a lamp beside the sofa.", ["lamp", "sofa"], [("next_to", "lamp", "sofa")]),
    Case("There are three books on the desk.", ["3 book", "desk"], [("on_top_of", "3 book", "desk")]),
    Case("There's a kettle on the left side of the stove.", ["kettle", "stove"], [("left_of", "kettle", "stove")]),
    Case("There is a mug to the left of the laptop and a lamp behind it.", ["mug", "laptop", "lamp"],
         [("left_of", "mug", "laptop"), ("behind", "lamp", "laptop")]),
    Case("A cat on the rug in front of the sofa.", ["cat", "rug", "sofa"],
         [("on_top_of", "cat", "rug"), ("in_front_of", "rug", "sofa")]),
    Case("A red apple next to a white plate.", ["red apple", "white plate"], [("next_to", "red apple", "white plate")]),
    Case("The mug on the desk is to the left of the laptop.", ["mug", "desk", "laptop"],
         [("on_top_of", "mug", "desk"), ("left_of", "mug", "laptop")]),
    Case("The lamp, which is behind the armchair, is tall.", ["lamp", "armchair"], [("behind", "lamp", "armchair")]),
    Case("There is a desk, a chair and a globe.", ["desk", "chair", "globe"], []),
    # ---- shared subjects and several relations per sentence ----------------------------------------------
    Case("The mug is left of the laptop and in front of the lamp.", ["mug", "laptop", "lamp"],
         [("left_of", "mug", "laptop"), ("in_front_of", "mug", "lamp")]),
    Case("The bowl sits on the table, next to the jar, and behind the knife.", ["bowl", "table", "jar", "knife"],
         [("on_top_of", "bowl", "table"), ("next_to", "bowl", "jar"), ("behind", "bowl", "knife")]),
    Case("The car is behind the bus, and the bicycle is to the left of the car.", ["car", "bus", "bicycle"],
         [("behind", "car", "bus"), ("left_of", "bicycle", "car")]),
    Case("The pillow is on the bed while the slippers are under it.", ["pillow", "bed", "2 slipper"],
         [("on_top_of", "pillow", "bed"), ("under", "2 slipper", "bed")]),
    Case("The lamp is behind the sofa and the armchair.", ["lamp", "sofa", "armchair"],
         [("behind", "lamp", "sofa"), ("behind", "lamp", "armchair")]),
    Case("The mug and the pen are both on the notebook.", ["mug", "pen", "notebook"],
         [("on_top_of", "mug", "notebook"), ("on_top_of", "pen", "notebook")]),
    Case("The towel lies under the umbrella; the ball is in front of the towel; the kite is above the umbrella.",
         ["towel", "umbrella", "ball", "kite"],
         [("under", "towel", "umbrella"), ("in_front_of", "ball", "towel"), ("above", "kite", "umbrella")]),
    Case("The globe stands on the desk and is right of the books.", ["globe", "desk", "2 book"],
         [("on_top_of", "globe", "desk"), ("right_of", "globe", "2 book")]),
    # ---- between ------------------------------------------------------------------------------------------
    Case("The nightstand is between the bed and the wardrobe.", ["nightstand", "bed", "wardrobe"],
         [("between", "nightstand", "bed", "wardrobe")]),
    Case("A blue bowl sits in between the kettle and the toaster.", ["blue bowl", "kettle", "toaster"],
         [("between", "blue bowl", "kettle", "toaster")]),
    Case("Between the sofa and the armchair stands a small table.", ["sofa", "armchair", "small table"],
         [("between", "small table", "sofa", "armchair")]),
    Case("The dog sits between the bench and the trash can, in front of the tree.",
         ["dog", "bench", "trash can", "tree"],
         [("between", "dog", "bench", "trash can"), ("in_front_of", "dog", "tree")]),
    Case("There is a lamp between the two armchairs.", ["lamp"], [], ["between the two armchairs"]),
    # ---- middle / centre ---------------------------------------------------------------------------------
    Case("The coffee table is in the middle.", ["coffee table"], [("in_middle", "coffee table")]),
    Case("A vase stands in the center of the table.", ["vase", "table"], [("in_middle", "vase", "table")]),
    Case("In the middle of the scene is a large sandcastle.", ["large sandcastle"],
         [("in_middle", "large sandcastle")]),
    Case("The rug lies in the centre of the room.", ["rug"], [("in_middle", "rug")]),
    Case("The globe is centered on the desk.", ["globe", "desk"],
         [("in_middle", "globe"), ("on_top_of", "globe", "desk")]),
    Case("At the center, a fountain stands.", ["fountain"], [("in_middle", "fountain")]),
    Case("The teapot sits in the middle of the tray, behind the cups.", ["teapot", "tray", "2 cup"],
         [("in_middle", "teapot", "tray"), ("behind", "teapot", "2 cup")]),
    # ---- aligned with an edge ----------------------------------------------------------------------------
    Case("The bookshelf is aligned with the left edge.", ["bookshelf"], [("aligned", "bookshelf", "left")]),
    Case("A row of pens lies along the bottom edge of the desk.", [], [],
         ["A row of pens lies along the bottom edge of the desk"]),
    Case("The ruler lies along the bottom edge of the notebook.", ["ruler", "notebook"],
         [("aligned", "ruler", "bottom", "notebook")]),
    Case("The keyboard sits flush with the front edge of the desk.", ["keyboard", "desk"],
         [("aligned", "keyboard", "front", "desk")]),
    Case("The mirror is aligned with the top edge of the picture.", ["mirror"], [("aligned", "mirror", "top")]),
    # ---- sequences ---------------------------------------------------------------------------------------
    Case("From left to right: a mug, a laptop, and a lamp.", ["mug", "laptop", "lamp"],
         [("sequence", "left_to_right", "mug", "laptop", "lamp")]),
    Case("From left to right there are a red book, a green book and a blue book.",
         ["red book", "green book", "blue book"],
         [("sequence", "left_to_right", "red book", "green book", "blue book")]),
    Case("The bowl, the plate and the cup stand in a row from front to back.", ["bowl", "plate", "cup"],
         [("sequence", "front_to_back", "bowl", "plate", "cup")]),
    Case("From right to left: the bus, the car, the bicycle.", ["bus", "car", "bicycle"],
         [("sequence", "right_to_left", "bus", "car", "bicycle")]),
    Case("A bucket, a shovel and a ball are lined up from left to right.", ["bucket", "shovel", "ball"],
         [("sequence", "left_to_right", "bucket", "shovel", "ball")]),
    Case("From top to bottom, the shelf holds a clock, a vase and a candle.", [], [],
         ["From top to bottom, the shelf holds a clock, a vase and a candle"]),
    Case("From bottom to top: a dictionary, an atlas and a notebook.", ["dictionary", "atlas", "notebook"],
         [("sequence", "bottom_to_top", "dictionary", "atlas", "notebook")]),
    Case("From back to front, there are a tree, a bench and a dog.", ["tree", "bench", "dog"],
         [("sequence", "back_to_front", "tree", "bench", "dog")]),
    Case("The kettle, the toaster, then the blender, from left to right.", ["kettle", "toaster", "blender"],
         [("sequence", "left_to_right", "kettle", "toaster", "blender")]),
    Case("Lined up from left to right are a pen, a pencil, and an eraser.", ["pen", "pencil", "eraser"],
         [("sequence", "left_to_right", "pen", "pencil", "eraser")]),
    Case("Arranged from back to front: a wardrobe, a bed and a rug. Everything is neatly arranged.",
         ["wardrobe", "bed", "rug"], [("sequence", "back_to_front", "wardrobe", "bed", "rug")]),
    Case("Three books stand in a row from left to right.", [], [],
         ["Three books stand in a row from left to right"]),
    Case("From left to right: a mug, then a laptop, then a lamp.", ["mug", "laptop", "lamp"],
         [("sequence", "left_to_right", "mug", "laptop", "lamp")]),
    Case("The mailbox and the tree stand from left to right on the sidewalk.", ["mailbox", "tree", "sidewalk"],
         [("sequence", "left_to_right", "mailbox", "tree"), ("on_top_of", "mailbox", "sidewalk"),
          ("on_top_of", "tree", "sidewalk")]),
    # ---- extremes -----------------------------------------------------------------------------------------
    Case("The mug is the leftmost object.", ["mug"], [("extreme", "mug", "leftmost")]),
    Case("The leftmost item is a yellow pencil.", ["yellow pencil"], [("extreme", "yellow pencil", "leftmost")]),
    Case("The rightmost of them is the lamp.", ["lamp"], [("extreme", "lamp", "rightmost")]),
    Case("The frontmost object is the ball.", ["ball"], [("extreme", "ball", "frontmost")]),
    Case("The shed is the backmost item in the scene.", ["shed"], [("extreme", "shed", "backmost")]),
    Case("The clock is the highest object.", ["clock"], [("extreme", "clock", "topmost")]),
    Case("The rug is lowest.", ["rug"], [("extreme", "rug", "bottommost")]),
    Case("The kettle is the rightmost object, and the toaster is the leftmost.", ["kettle", "toaster"],
         [("extreme", "kettle", "rightmost"), ("extreme", "toaster", "leftmost")]),
    Case("The leftmost is the bus, and the rightmost is the bicycle.", ["bus", "bicycle"],
         [("extreme", "bus", "leftmost"), ("extreme", "bicycle", "rightmost")]),
    Case("The highest shelf holds a clock.", [], [], ["The highest shelf holds a clock"]),
    # ---- plurals, counts, irregular nouns, coreference -------------------------------------------------------
    Case("Two knives lie next to the cutting board.", ["2 knife", "cutting board"],
         [("next_to", "2 knife", "cutting board")]),
    Case("Three mice sit in front of the keyboard.", ["3 mouse", "keyboard"], [("in_front_of", "3 mouse", "keyboard")]),
    Case("Two buses are behind the benches.", ["2 bus", "2 bench"], [("behind", "2 bus", "2 bench")]),
    Case("The boxes are under the shelves.", ["2 box", "2 shelf"], [("under", "2 box", "2 shelf")]),
    Case("A couple of cushions rest on the sofa.", ["2 cushion", "sofa"], [("on_top_of", "2 cushion", "sofa")]),
    Case("Four glasses stand behind the teapot.", ["4 glass", "teapot"], [("behind", "4 glass", "teapot")]),
    Case("The red mug is left of the laptop. The mug is also in front of the lamp.", ["red mug", "laptop", "lamp"],
         [("left_of", "red mug", "laptop"), ("in_front_of", "red mug", "lamp")]),
    Case("Three books lie on the desk. The books are next to the globe.", ["3 book", "desk", "globe"],
         [("on_top_of", "3 book", "desk"), ("next_to", "3 book", "globe")]),
    Case("A red mug is left of a blue mug. The blue mug is behind the kettle.", ["red mug", "blue mug", "kettle"],
         [("left_of", "red mug", "blue mug"), ("behind", "blue mug", "kettle")]),
    Case("A red mug sits on the table. A mug is next to the kettle.", ["red mug", "table", "mug", "kettle"],
         [("on_top_of", "red mug", "table"), ("next_to", "mug", "kettle")]),
    Case("There is a desk by the window, and a lamp is on it.", ["desk", "lamp"], [("on_top_of", "lamp", "desk")]),
    Case("Two dogs sit on the left side of a bench, and one dog sits on the right side of it.",
         ["2 dog", "bench", "dog"], [("left_of", "2 dog", "bench"), ("right_of", "dog", "bench")]),
    Case("A tiny metal spoon is inside the ceramic bowl.", [], [], ["A tiny metal spoon is inside the ceramic bowl"]),
    # ---- unparseable spatial parts are reported, filler is ignored ------------------------------------------
    Case("The scene is bright and cozy.", [], []),
    Case("A warm afternoon in the garden.", [], []),
    Case("The lamp stands near the sofa.", [], [], ["The lamp stands near the sofa"]),
    Case("The mug is left of the laptop near the window.", ["mug", "laptop"], [("left_of", "mug", "laptop")],
         ["near the window"]),
    Case("The bench is across the street from the shop, and a tree stands behind the bench.", ["tree", "bench"],
         [("behind", "tree", "bench")], ["The bench is across the street from the shop"]),
    Case("The pillow is on the left.", [], [], ["The pillow is on the left"]),
    Case("A plant stands in the corner.", [], [], ["A plant stands in the corner"]),
    Case("The clock is to the left.", [], [], ["The clock is to the left"]),
    Case("The chair faces the desk, opposite the blackboard.", [], [], ["opposite the blackboard"]),
    Case("The vase is in front of them.", [], [], ["The vase is in front of them"]),
    Case("The cat is curled up in the background.", [], [], ["The cat is curled up in the background"]),
    Case("It is a sunny day. A surfboard leans against the cooler, and a towel lies in front of the cooler.",
         ["towel", "cooler"], [("in_front_of", "towel", "cooler")], ["A surfboard leans against the cooler"]),
]

# Long prompts: 40-120 words, several sentences, 4-11 relations, the way the paper's prompts read.
LONG_CASES: list[Case] = [
    # kitchen
    Case("A bright kitchen in the morning. The red ceramic mug sits to the left of the silver kettle, and a wooden "
         "cutting board lies in front of the toaster. The blue bowl is between the kettle and the toaster. A glass "
         "jar stands behind the bowl. From left to right: a teapot, a blender, and a bottle. The apple is the "
         "rightmost object.",
         ["red ceramic mug", "silver kettle", "wooden cutting board", "toaster", "blue bowl", "glass jar", "teapot",
          "blender", "bottle", "apple"],
         [("left_of", "red ceramic mug", "silver kettle"), ("in_front_of", "wooden cutting board", "toaster"),
          ("between", "blue bowl", "silver kettle", "toaster"), ("behind", "glass jar", "blue bowl"),
          ("sequence", "left_to_right", "teapot", "blender", "bottle"), ("extreme", "apple", "rightmost")]),
    Case("On the marble counter, a frying pan rests to the right of the stove top kettle. Two knives lie on the "
         "cutting board, which is in front of the frying pan. A white plate sits on top of a larger plate, and a small "
         "spoon is next to the plates. Above the counter hangs a copper pot. The jar of honey is the leftmost item.",
         ["marble counter", "frying pan", "stove top kettle", "2 knife", "cutting board", "white plate",
          "larger plate", "small spoon", "2 plate", "copper pot", "jar of honey"],
         [("on_top_of", "frying pan", "marble counter"), ("right_of", "frying pan", "stove top kettle"),
          ("on_top_of", "2 knife", "cutting board"), ("in_front_of", "cutting board", "frying pan"),
          ("on_top_of", "white plate", "larger plate"), ("next_to", "small spoon", "2 plate"),
          ("above", "copper pot", "marble counter"), ("extreme", "jar of honey", "leftmost")]),
    Case("The kitchen table holds breakfast. A green teapot stands in the middle of the table. To the left of the "
         "teapot is a stack of plates, and to the right of it sits a bowl of apples. The two mugs are in front of "
         "the teapot, while the toaster stands behind it. A knife lies beside the bowl of apples.",
         ["green teapot", "table", "stack of plates", "bowl of apples", "2 mug", "toaster", "knife"],
         [("in_middle", "green teapot", "table"), ("left_of", "stack of plates", "green teapot"),
          ("right_of", "bowl of apples", "green teapot"), ("in_front_of", "2 mug", "green teapot"),
          ("behind", "toaster", "green teapot"), ("next_to", "knife", "bowl of apples")]),
    Case("Seen from the front, the kitchen shelf is busy. From left to right: a yellow jar, a blue jar and a red jar. "
         "Below the jars, a wooden cutting board leans against the wall. The blender is on top of the fridge. A "
         "kettle is beneath the shelf, and a tiny bottle is on the right side of the kettle.",
         ["yellow jar", "blue jar", "red jar", "2 jar", "wooden cutting board", "blender", "fridge", "kettle",
          "shelf", "tiny bottle"],
         [("sequence", "left_to_right", "yellow jar", "blue jar", "red jar"),
          ("below", "wooden cutting board", "2 jar"), ("on_top_of", "blender", "fridge"),
          ("under", "kettle", "shelf"), ("right_of", "tiny bottle", "kettle")],
         ["Seen from the front, the kitchen shelf is busy", "against the wall"]),
    # living room
    Case("In a quiet living room, a grey sofa stands against the wall. A tall lamp is to the right of the sofa, and "
         "a small round coffee table sits in front of it. Two cushions rest on top of the sofa. A green plant is "
         "next to the lamp, while a wooden bookshelf stands behind the armchair. The rug lies under the coffee table.",
         ["tall lamp", "sofa", "small round coffee table", "2 cushion", "green plant", "wooden bookshelf",
          "armchair", "rug"],
         [("right_of", "tall lamp", "sofa"), ("in_front_of", "small round coffee table", "sofa"),
          ("on_top_of", "2 cushion", "sofa"), ("next_to", "green plant", "tall lamp"),
          ("behind", "wooden bookshelf", "armchair"), ("under", "rug", "small round coffee table")],
         ["a grey sofa stands against the wall"]),
    Case("The living room is arranged around a fireplace. A leather armchair is on the left side of the fireplace "
         "and a leather sofa is on the right side of it. A glass coffee table stands between the armchair and the "
         "sofa. On the coffee table there are a vase and a candle. A clock hangs above the fireplace. The "
         "television is the backmost object.",
         ["leather armchair", "fireplace", "leather sofa", "glass coffee table", "vase", "candle", "clock",
          "television"],
         [("left_of", "leather armchair", "fireplace"), ("right_of", "leather sofa", "fireplace"),
          ("between", "glass coffee table", "leather armchair", "leather sofa"),
          ("on_top_of", "vase", "glass coffee table"), ("on_top_of", "candle", "glass coffee table"),
          ("above", "clock", "fireplace"), ("extreme", "television", "backmost")],
         ["The living room is arranged around a fireplace"]),
    Case("A cozy reading corner with warm light. The bookshelf stands behind the armchair, and a floor lamp is to "
         "the left of the armchair. A woollen blanket lies on the armchair. In front of the armchair is a small "
         "stool, and a cup of tea sits on the stool. Three books are stacked under the stool. The plant is the "
         "rightmost item.",
         ["bookshelf", "armchair", "floor lamp", "woollen blanket", "small stool", "cup of tea", "3 book", "plant"],
         [("behind", "bookshelf", "armchair"), ("left_of", "floor lamp", "armchair"),
          ("on_top_of", "woollen blanket", "armchair"), ("in_front_of", "small stool", "armchair"),
          ("on_top_of", "cup of tea", "small stool"), ("under", "3 book", "small stool"),
          ("extreme", "plant", "rightmost")]),
    Case("The television sits in the center of the wall unit. Two speakers stand next to the television, one on "
         "each side. A remote lies on the coffee table, which is in front of the sofa. Behind the sofa, a tall "
         "lamp glows. A red cushion and a blue cushion lie on the sofa from left to right.",
         ["television", "wall unit", "2 speaker", "remote", "coffee table", "sofa", "tall lamp", "red cushion",
          "blue cushion"],
         [("in_middle", "television", "wall unit"), ("next_to", "2 speaker", "television"),
          ("on_top_of", "remote", "coffee table"), ("in_front_of", "coffee table", "sofa"),
          ("behind", "tall lamp", "sofa"), ("on_top_of", "red cushion", "sofa"), ("on_top_of", "blue cushion", "sofa"),
          ("sequence", "left_to_right", "red cushion", "blue cushion")],
         ["one on each side"]),
    # classroom
    Case("A classroom before the lesson starts. The blackboard hangs behind the teacher's desk. A globe stands on "
         "the teacher's desk, to the right of a pile of notebooks. The map is above the blackboard. In front of "
         "the desk there are three rows of chairs. A trash can sits next to the door, and a backpack lies under the "
         "first chair.",
         ["blackboard", "teacher's desk", "globe", "pile of notebooks", "map", "trash can", "door", "backpack",
          "first chair"],
         [("behind", "blackboard", "teacher's desk"), ("on_top_of", "globe", "teacher's desk"),
          ("right_of", "globe", "pile of notebooks"), ("above", "map", "blackboard"),
          ("next_to", "trash can", "door"), ("under", "backpack", "first chair")],
         ["In front of the desk there are three rows of chairs"]),
    Case("On the student's desk, a pencil case lies to the left of a green notebook, and a ruler lies on top of the "
         "notebook. A calculator sits on the right side of the notebook. The eraser is between the pencil case and "
         "the notebook. Behind the notebook stands a small globe. The pen is the frontmost object.",
         ["student's desk", "pencil case", "green notebook", "ruler", "calculator", "eraser", "small globe", "pen"],
         [("on_top_of", "pencil case", "student's desk"), ("left_of", "pencil case", "green notebook"),
          ("on_top_of", "ruler", "green notebook"), ("right_of", "calculator", "green notebook"),
          ("between", "eraser", "pencil case", "green notebook"), ("behind", "small globe", "green notebook"),
          ("extreme", "pen", "frontmost")]),
    Case("The classroom is empty after school. Four desks stand in front of the blackboard. The projector hangs "
         "above the desks, and a clock is on the wall above the blackboard. A tall cabinet stands to the left of the "
         "blackboard, and a plant is on top of the cabinet. From front to back: a backpack, a chair and a bin.",
         ["4 desk", "blackboard", "projector", "clock", "wall", "tall cabinet", "plant", "backpack", "chair", "bin"],
         [("in_front_of", "4 desk", "blackboard"), ("above", "projector", "4 desk"),
          ("on_top_of", "clock", "wall"), ("above", "wall", "blackboard"),
          ("left_of", "tall cabinet", "blackboard"), ("on_top_of", "plant", "tall cabinet"),
          ("sequence", "front_to_back", "backpack", "chair", "bin")]),
    Case("Two chairs are next to each other in front of the table. A globe is on the table, and a stack "
         "of books sits beside the globe. The map hangs behind the table, above the radiator. The blue backpack lies "
         "under the table. The ruler is the leftmost object in the scene.",
         ["table", "globe", "stack of books", "map", "radiator", "blue backpack", "ruler"],
         [("on_top_of", "globe", "table"), ("next_to", "stack of books", "globe"),
          ("behind", "map", "table"), ("above", "map", "radiator"),
          ("under", "blue backpack", "table"), ("extreme", "ruler", "leftmost")],
         ["Two chairs are next to each other in front of the table"]),
    # office desk
    Case("On the office desk, the black keyboard is in front of the monitor and the white mouse is to the right of "
         "the keyboard. A blue mug sits on the left side of the laptop. Beneath the office desk there is a trash can. "
         "The stapler, the pen and the notebook are lined up from left to right. The phone is the leftmost item.",
         ["office desk", "black keyboard", "monitor", "white mouse", "blue mug", "laptop", "trash can", "stapler",
          "pen", "notebook", "phone"],
         [("on_top_of", "black keyboard", "office desk"), ("in_front_of", "black keyboard", "monitor"),
          ("right_of", "white mouse", "black keyboard"), ("left_of", "blue mug", "laptop"),
          ("under", "trash can", "office desk"), ("sequence", "left_to_right", "stapler", "pen", "notebook"),
          ("extreme", "phone", "leftmost")]),
    Case("A tidy workspace seen from above. The laptop is in the middle of the desk. To the right of the laptop lies "
         "a wireless mouse, and to the left of it a notebook with a pen on top. A desk lamp stands behind the "
         "laptop. The coffee mug is next to the notebook, and a small plant sits in the corner.",
         ["laptop", "desk", "wireless mouse", "notebook", "desk lamp", "coffee mug"],
         [("in_middle", "laptop", "desk"), ("right_of", "wireless mouse", "laptop"), ("left_of", "notebook", "laptop"),
          ("behind", "desk lamp", "laptop"), ("next_to", "coffee mug", "notebook")],
         ["A tidy workspace seen from above", "with a pen on top", "a small plant sits in the corner"]),
    Case("Two monitors stand side by side on the desk. The keyboard is in front of the monitors and the mouse is "
         "right of the keyboard. A silver laptop is on the left of the monitors. The speakers are behind the "
         "laptop. A yellow folder lies under the keyboard, and the phone lies on top of the folder.",
         ["2 monitor", "keyboard", "mouse", "silver laptop", "2 speaker", "yellow folder", "phone"],
         [("in_front_of", "keyboard", "2 monitor"), ("right_of", "mouse", "keyboard"),
          ("left_of", "silver laptop", "2 monitor"), ("behind", "2 speaker", "silver laptop"),
          ("under", "yellow folder", "keyboard"), ("on_top_of", "phone", "yellow folder")],
         ["Two monitors stand side by side on the desk"]),
    Case("The desk is cluttered but organised. From left to right: a calculator, a stapler, a mug and a lamp. The "
         "notebook lies in front of the stapler, and the pen is on the notebook. A plant is behind the mug. The "
         "monitor stands between the lamp and the plant.",
         ["calculator", "stapler", "mug", "lamp", "notebook", "pen", "plant", "monitor"],
         [("sequence", "left_to_right", "calculator", "stapler", "mug", "lamp"),
          ("in_front_of", "notebook", "stapler"), ("on_top_of", "pen", "notebook"), ("behind", "plant", "mug"),
          ("between", "monitor", "lamp", "plant")]),
    # beach
    Case("A sunny beach at noon. A striped umbrella stands in the sand, and a yellow towel lies under the umbrella. "
         "A blue cooler is to the left of the towel. Two surfboards lean behind the umbrella. A child's bucket and "
         "a shovel sit in front of the towel. The kite flies above the sea, and the sandcastle is the frontmost "
         "object.",
         ["yellow towel", "umbrella", "blue cooler", "2 surfboard", "child's bucket", "shovel", "kite", "sea",
          "sandcastle"],
         [("under", "yellow towel", "umbrella"), ("left_of", "blue cooler", "yellow towel"),
          ("behind", "2 surfboard", "umbrella"), ("in_front_of", "child's bucket", "yellow towel"),
          ("in_front_of", "shovel", "yellow towel"), ("above", "kite", "sea"),
          ("extreme", "sandcastle", "frontmost")]),
    Case("On the beach, a red towel lies next to a green towel. The umbrella is between the towels. A ball is in "
         "front of the red towel, and a bottle of water stands beside the ball. Behind the umbrella, a surfboard "
         "is stuck in the sand. Seashells are scattered around.",
         ["red towel", "green towel", "umbrella", "ball", "bottle of water", "surfboard"],
         [("next_to", "red towel", "green towel"), ("in_front_of", "ball", "red towel"),
          ("next_to", "bottle of water", "ball"), ("behind", "surfboard", "umbrella")],
         ["The umbrella is between the towels", "Seashells are scattered around"]),
    Case("From left to right along the shore: a deck chair, an umbrella and a cooler. A towel is draped over the "
         "deck chair. The bucket sits on top of the cooler, and the shovel is inside the bucket. A kite is above the "
         "umbrella. The sandcastle stands in front of the cooler.",
         ["towel", "deck chair", "bucket", "cooler", "kite", "umbrella", "sandcastle"],
         [("above", "towel", "deck chair"), ("on_top_of", "bucket", "cooler"), ("above", "kite", "umbrella"),
          ("in_front_of", "sandcastle", "cooler")],
         ["From left to right along the shore: a deck chair, an umbrella and a cooler",
          "the shovel is inside the bucket"]),
    Case("The beach picnic is set. A large blanket lies in the center of the scene. On the blanket there is a "
         "basket, and a watermelon sits to the right of the basket. Two cups stand in front of the basket. An "
         "umbrella is behind the blanket, and a surfboard leans next to the umbrella.",
         ["large blanket", "basket", "watermelon", "2 cup", "umbrella", "surfboard"],
         [("in_middle", "large blanket"), ("on_top_of", "basket", "large blanket"),
          ("right_of", "watermelon", "basket"), ("in_front_of", "2 cup", "basket"),
          ("behind", "umbrella", "large blanket"), ("next_to", "surfboard", "umbrella")]),
    # street
    Case("A city street in the evening. A red bus is to the right of the traffic light, and a bicycle stands "
         "behind the bus. The lamp post is next to the bench. A dog sleeps under the bench. The mailbox stands "
         "between the bench and the trash can. The yellow car is the leftmost object.",
         ["red bus", "traffic light", "bicycle", "lamp post", "bench", "dog", "mailbox", "trash can", "yellow car"],
         [("right_of", "red bus", "traffic light"), ("behind", "bicycle", "red bus"),
          ("next_to", "lamp post", "bench"), ("under", "dog", "bench"), ("between", "mailbox", "bench", "trash can"),
          ("extreme", "yellow car", "leftmost")]),
    Case("Along the sidewalk, from left to right, there are a tree, a bench, a lamp post and a mailbox. A motorcycle "
         "is parked in front of the bench. The bus stop sign stands behind the tree. A cat sits on the mailbox, and "
         "a bicycle leans beside the lamp post.",
         ["tree", "bench", "lamp post", "mailbox", "motorcycle", "bus stop sign", "cat", "bicycle"],
         [("sequence", "left_to_right", "tree", "bench", "lamp post", "mailbox"),
          ("in_front_of", "motorcycle", "bench"), ("behind", "bus stop sign", "tree"),
          ("on_top_of", "cat", "mailbox"), ("next_to", "bicycle", "lamp post")],
         ["Along the sidewalk"]),
    Case("A busy crossing. The traffic light is above the crosswalk. A white car waits to the left of the crosswalk, "
         "and a blue car waits to the right of it. A cyclist is in front of the white car. Behind the blue car "
         "stands a bus. The sign is the rightmost object, and the tree is the backmost.",
         ["traffic light", "crosswalk", "white car", "blue car", "cyclist", "bus", "sign", "tree"],
         [("above", "traffic light", "crosswalk"), ("left_of", "white car", "crosswalk"),
          ("right_of", "blue car", "crosswalk"), ("in_front_of", "cyclist", "white car"),
          ("behind", "bus", "blue car"), ("extreme", "sign", "rightmost"), ("extreme", "tree", "backmost")]),
    # bedroom
    Case("A calm bedroom at night. The bed is in the middle of the room, with a nightstand on each side. A lamp "
         "stands on top of the left nightstand. The alarm clock is next to the lamp. A teddy bear sits on the bed, "
         "in front of the pillows. The wardrobe is to the right of the bed, and a mirror hangs above the dresser.",
         ["bed", "lamp", "left nightstand", "alarm clock", "teddy bear", "2 pillow", "wardrobe", "mirror",
          "dresser"],
         [("in_middle", "bed"), ("on_top_of", "lamp", "left nightstand"), ("next_to", "alarm clock", "lamp"),
          ("on_top_of", "teddy bear", "bed"), ("in_front_of", "teddy bear", "2 pillow"),
          ("right_of", "wardrobe", "bed"), ("above", "mirror", "dresser")],
         ["with a nightstand on each side"]),
    Case("The bedroom is tidy. Two pillows lie on top of the bed, and a folded blanket is at the foot of the bed. "
         "The slippers are under the bed. A rug lies in front of the dresser, which stands to the left of the "
         "window. On the dresser there are a jewellery box and a small mirror, from left to right.",
         ["2 pillow", "bed", "2 slipper", "rug", "dresser", "window", "jewellery box", "small mirror"],
         [("on_top_of", "2 pillow", "bed"), ("under", "2 slipper", "bed"), ("in_front_of", "rug", "dresser"),
          ("left_of", "dresser", "window"), ("on_top_of", "jewellery box", "dresser"),
          ("on_top_of", "small mirror", "dresser"), ("sequence", "left_to_right", "jewellery box", "small mirror")]),
    Case("It is early in the morning. The nightstand is between the bed and the wardrobe. A book lies on the "
         "nightstand, beneath a lamp. Behind the bed, the mirror is aligned with the top edge of the headboard. The "
         "slippers are in front of the nightstand, and a cat sleeps on the rug.",
         ["nightstand", "bed", "wardrobe", "book", "lamp", "mirror", "headboard", "2 slipper", "cat", "rug"],
         [("between", "nightstand", "bed", "wardrobe"), ("on_top_of", "book", "nightstand"),
          ("under", "book", "lamp"), ("behind", "mirror", "bed"), ("aligned", "mirror", "top", "headboard"),
          ("in_front_of", "2 slipper", "nightstand"), ("on_top_of", "cat", "rug")]),
    # garden
    Case("A small garden in spring. The wooden bench stands under the big tree. A watering can is to the left of "
         "the bench, and a flower pot is on the right side of it. The gnome hides behind the flower pot. A "
         "wheelbarrow is in front of the shed, and a rake leans against the fence.",
         ["wooden bench", "big tree", "watering can", "flower pot", "gnome", "wheelbarrow", "shed"],
         [("under", "wooden bench", "big tree"), ("left_of", "watering can", "wooden bench"),
          ("right_of", "flower pot", "wooden bench"), ("behind", "gnome", "flower pot"),
          ("in_front_of", "wheelbarrow", "shed")],
         ["a rake leans against the fence"]),
    Case("The garden path leads to the shed. From front to back: a bird bath, a bench and the shed. A cat sits on "
         "the bench. Three flower pots stand to the left of the path, and a hose lies on the right of the path. The "
         "tree is the tallest thing and stands behind the shed.",
         ["bird bath", "bench", "shed", "cat", "3 flower pot", "path", "hose"],
         [("sequence", "front_to_back", "bird bath", "bench", "shed"), ("on_top_of", "cat", "bench"),
          ("left_of", "3 flower pot", "path"), ("right_of", "hose", "path")],
         ["stands behind the shed"]),
    Case("In the backyard, a green hose is coiled next to the watering can. The wheelbarrow is between the shed "
         "and the fence. Above the fence hangs a bird feeder. Two gnomes stand in front of the wheelbarrow, and a "
         "rake lies beside them. The flower pot is the rightmost item.",
         ["green hose", "watering can", "wheelbarrow", "shed", "fence", "bird feeder", "2 gnome", "flower pot"],
         [("next_to", "green hose", "watering can"), ("between", "wheelbarrow", "shed", "fence"),
          ("above", "bird feeder", "fence"), ("in_front_of", "2 gnome", "wheelbarrow"),
          ("extreme", "flower pot", "rightmost")],
         ["a rake lies beside them"]),
    # mixed, generator-like phrasing
    Case("The mug is to the left of the laptop. The lamp is behind the laptop. The notebook is in front of the "
         "laptop. The phone is to the right of the notebook. The plant is next to the lamp. The pen is on top of "
         "the notebook. The stapler is the rightmost object.",
         ["mug", "laptop", "lamp", "notebook", "phone", "plant", "pen", "stapler"],
         [("left_of", "mug", "laptop"), ("behind", "lamp", "laptop"), ("in_front_of", "notebook", "laptop"),
          ("right_of", "phone", "notebook"), ("next_to", "plant", "lamp"), ("on_top_of", "pen", "notebook"),
          ("extreme", "stapler", "rightmost")]),
    Case("A wooden table stands in the center. On top of the table there are a red apple, a green apple and a "
         "yellow apple, from left to right. A bowl is behind the apples. Under the table lies a cat, and a dog "
         "sleeps to the right of the table. The chair is in front of the table.",
         ["wooden table", "red apple", "green apple", "yellow apple", "bowl", "2 apple", "cat", "dog", "chair"],
         [("in_middle", "wooden table"), ("on_top_of", "red apple", "wooden table"),
          ("on_top_of", "green apple", "wooden table"), ("on_top_of", "yellow apple", "wooden table"),
          ("sequence", "left_to_right", "red apple", "green apple", "yellow apple"), ("behind", "bowl", "2 apple"),
          ("under", "cat", "wooden table"), ("right_of", "dog", "wooden table"),
          ("in_front_of", "chair", "wooden table")]),
    Case("There is a lamp on the left side of the sofa and a plant on the right side of the sofa. The coffee table "
         "is in front of the sofa, and the rug is under the coffee table. A painting hangs above the sofa, aligned "
         "with the top edge. The armchair faces the sofa.",
         ["lamp", "sofa", "plant", "coffee table", "rug", "painting"],
         [("left_of", "lamp", "sofa"), ("right_of", "plant", "sofa"), ("in_front_of", "coffee table", "sofa"),
          ("under", "rug", "coffee table"), ("above", "painting", "sofa"), ("aligned", "painting", "top")]),
    Case("Three books lie on the nightstand, and a glass of water stands next to the books. The alarm clock is "
         "behind the glass of water. A lamp is to the left of the nightstand. The bed is on the right side of the "
         "nightstand. A pair of slippers rests under the bed. The teddy bear is the topmost object.",
         ["3 book", "nightstand", "glass of water", "alarm clock", "lamp", "bed", "2 slipper", "teddy bear"],
         [("on_top_of", "3 book", "nightstand"), ("next_to", "glass of water", "3 book"),
          ("behind", "alarm clock", "glass of water"), ("left_of", "lamp", "nightstand"),
          ("right_of", "bed", "nightstand"), ("under", "2 slipper", "bed"), ("extreme", "teddy bear", "topmost")]),
    Case("A street corner scene. Next to the bus stop, a bench stands under a tree. Two bicycles are parked to the "
         "left of the bench. The trash can is beside the bench. A traffic light is behind the bus stop, and a car is "
         "in front of the traffic light. From left to right: a dog, a mailbox and a sign.",
         ["bus stop", "bench", "tree", "2 bicycle", "trash can", "traffic light", "car", "dog", "mailbox", "sign"],
         [("next_to", "bench", "bus stop"), ("under", "bench", "tree"), ("left_of", "2 bicycle", "bench"),
          ("next_to", "trash can", "bench"), ("behind", "traffic light", "bus stop"),
          ("in_front_of", "car", "traffic light"), ("sequence", "left_to_right", "dog", "mailbox", "sign")]),
    Case("The office is quiet this Sunday. A monitor sits in the middle of the desk, and the keyboard is directly in "
         "front of the monitor. To the right of the keyboard is a mouse. A mug of coffee is on the left side of the "
         "keyboard. Behind the monitor is a window. The lamp is the leftmost item on the desk.",
         ["monitor", "desk", "keyboard", "mouse", "mug of coffee", "window", "lamp"],
         [("in_middle", "monitor", "desk"), ("in_front_of", "keyboard", "monitor"), ("right_of", "mouse", "keyboard"),
          ("left_of", "mug of coffee", "keyboard"), ("behind", "window", "monitor"),
          ("extreme", "lamp", "leftmost"), ("on_top_of", "lamp", "desk")]),
]

CASES += LONG_CASES
