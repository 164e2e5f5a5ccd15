"""mini-COCO: the embedded demo dataset, generated in exactly the formats of the course files.

No photo, COCO download or pretrained image network is available offline, so the demo's data
are *generated* by a seeded generator. `generate` writes into a folder:

- ``captions_train2014.json`` (`CAPTIONS_FILE`), in the format of COCO's captions file:
  ``{"info", "images", "licenses", "annotations"}``; each image ``{license, file_name,
  coco_url, height, width, date_captured, flickr_url, id}``, each annotation ``{image_id, id,
  caption}``, at least 5 captions per image. URLs point at the host ``minicoco.invalid``
  (the ``.invalid`` domain never resolves): a generated image has no photo.
- ``resnet18_features.pkl`` (`FEATURES_FILE`): a pickled dict, int image id -> float32 array of
  shape (1, 512), non-negative. As in the real file, about 0.2% of the images have none.
- ``minicoco_scenes.json`` (`SCENES_FILE`): the latent truth behind each image::

      {"description": str, "seed": int, "images": [
          {"image_id": int, "scene": str, "has_descriptor": bool,
           "objects": [{"category": str, "count": 1 | 2 | 3 | "several", "colour": str | null}],
           "distractors": [same as objects]}, ...]}

  ``objects`` are what the captions talk about, most salient first; ``distractors`` are in the
  "picture" (the descriptor) but never in a caption.

The model of an image
---------------------
Each image is a latent scene: a scene type s (one of `SCENES`), 1-3 objects from COCO's 80
`CATEGORIES`, drawn with weights that depend on the scene (surfboards at the beach, ovens in
kitchens, people almost everywhere), each with a count level k in {1, 2, 3, several} and
possibly a colour, plus 0-2 distractor objects.

Descriptor (shape (512,)): a fixed random nonlinear map of the scene, the same for every
dataset since it depends only on an internal seed. With random codes S (scenes), C
(categories), K (counts) and P (colours) in R^L, independent of any word vectors,

    z = 0.8 S[s] + sum_j w_j (g[k_j] C[c_j] + K[k_j] + P[colour_j]) + eps,  eps ~ N(0, s^2 I_L)
    x = gain * relu(tanh(z A + a) B + b)

where j runs over the objects (salience weights w = 1, 0.8, 0.65) and distractors (w = 0.5).
A model must learn this map: it is not a linear image of GloVe, but a linear map from x back to
the caption space recovers much of z.

Captions: COCO-like English, written from the scene by varied "annotators": synonyms, counts
in words, plural forms, scene phrases, actions, templates, capitalization and punctuation. Every
caption names at least one of its image's objects (see `mention_forms`); captions may omit the
other objects or the scene.
"""

from __future__ import annotations

import json
import numbers
import pickle
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from capstone.archive import atomic_write
from capstone.paths import CAPTIONS_FILE, FEATURES_FILE

__all__ = [
    "CAPTIONS_FILE",
    "CATEGORIES",
    "COCO_SCALE",
    "FEATURES_FILE",
    "SCENES",
    "SCENES_FILE",
    "generate",
    "mention_forms",
]

SCENES_FILE = "minicoco_scenes.json"
COCO_SCALE = (82_783, 414_113)  # images, captions in the real captions_train2014.json
DESCRIPTOR_DIM = 512

# ---------------------------------------------------------------------------------------------
# Word lists
# ---------------------------------------------------------------------------------------------

# COCO's 80 object categories, in COCO's order.
CATEGORIES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip

# What annotators call each category (singular; plurals are derived). A repeated word is a more
# common choice.
_NOUNS = {
    "person": ("man", "man", "woman", "woman", "person", "boy", "girl", "child", "guy", "lady",
               "kid", "young man", "young woman", "little girl", "little boy"),
    "bicycle": ("bicycle", "bike", "bike"),
    "car": ("car", "car", "car", "vehicle", "sedan"),
    "motorcycle": ("motorcycle", "motorcycle", "motorbike", "motor bike", "dirt bike"),
    "airplane": ("airplane", "plane", "plane", "jet", "airliner", "aircraft"),
    "bus": ("bus", "bus", "city bus", "double decker bus", "school bus"),
    "train": ("train", "train", "passenger train", "locomotive", "freight train"),
    "truck": ("truck", "truck", "pickup truck", "fire truck", "delivery truck"),
    "boat": ("boat", "boat", "sailboat", "ship", "canoe", "fishing boat"),
    "traffic light": ("traffic light", "traffic light", "traffic signal", "stop light"),
    "fire hydrant": ("fire hydrant", "fire hydrant", "hydrant"),
    "stop sign": ("stop sign", "stop sign", "red stop sign"),
    "parking meter": ("parking meter", "parking meter", "meter"),
    "bench": ("bench", "bench", "park bench", "wooden bench"),
    "bird": ("bird", "bird", "bird", "seagull", "pigeon", "duck"),
    "cat": ("cat", "cat", "cat", "kitten", "kitty"),
    "dog": ("dog", "dog", "dog", "puppy", "pup"),
    "horse": ("horse", "horse", "pony"),
    "sheep": ("sheep", "sheep", "lamb"),
    "cow": ("cow", "cow", "cow", "bull", "calf"),
    "elephant": ("elephant", "elephant", "baby elephant"),
    "bear": ("bear", "bear", "brown bear", "grizzly bear", "polar bear"),
    "zebra": ("zebra",),
    "giraffe": ("giraffe", "giraffe", "baby giraffe"),
    "backpack": ("backpack", "backpack", "back pack"),
    "umbrella": ("umbrella",),
    "handbag": ("handbag", "purse", "purse", "bag", "hand bag"),
    "tie": ("tie", "tie", "necktie", "bow tie"),
    "suitcase": ("suitcase", "suitcase", "piece of luggage", "suit case"),
    "frisbee": ("frisbee", "frisbee", "frisbee", "flying disc"),
    "skis": ("pair of skis", "skis", "skis"),
    "snowboard": ("snowboard", "snowboard", "snow board"),
    "sports ball": ("ball", "ball", "soccer ball", "football"),
    "kite": ("kite",),
    "baseball bat": ("baseball bat", "bat", "bat"),
    "baseball glove": ("baseball glove", "glove", "mitt", "catcher's mitt"),
    "skateboard": ("skateboard", "skateboard", "skate board"),
    "surfboard": ("surfboard", "surfboard", "surf board"),
    "tennis racket": ("tennis racket", "racket", "racquet", "tennis racquet"),
    "bottle": ("bottle", "bottle", "water bottle", "beer bottle", "wine bottle"),
    "wine glass": ("wine glass", "wine glass", "glass of wine", "glass"),
    "cup": ("cup", "cup", "mug", "coffee cup", "cup of coffee"),
    "fork": ("fork",),
    "knife": ("knife",),
    "spoon": ("spoon",),
    "bowl": ("bowl",),
    "banana": ("banana", "banana", "bunch of bananas"),
    "apple": ("apple",),
    "sandwich": ("sandwich", "sandwich", "sub", "hamburger"),
    "orange": ("orange", "orange", "tangerine"),
    "broccoli": ("piece of broccoli", "broccoli floret", "head of broccoli"),
    "carrot": ("carrot",),
    "hot dog": ("hot dog", "hot dog", "hot-dog", "hotdog"),
    "pizza": ("pizza", "pizza", "pizza", "slice of pizza"),
    "donut": ("donut", "donut", "doughnut"),
    "cake": ("cake", "cake", "birthday cake", "slice of cake", "cupcake"),
    "chair": ("chair",),
    "couch": ("couch", "couch", "sofa", "sofa", "loveseat"),
    "potted plant": ("potted plant", "plant", "house plant"),
    "bed": ("bed", "bed", "double bed"),
    "dining table": ("table", "table", "dining table", "dinner table"),
    "toilet": ("toilet",),
    "tv": ("tv", "television", "television", "TV", "flat screen tv"),
    "laptop": ("laptop", "laptop", "laptop computer", "computer", "notebook computer"),
    "mouse": ("computer mouse", "mouse", "mouse"),
    "remote": ("remote", "remote", "remote control", "controller", "tv remote"),
    "keyboard": ("keyboard", "keyboard", "computer keyboard"),
    "cell phone": ("cell phone", "cell phone", "phone", "phone", "cellphone", "smartphone",
                   "mobile phone"),
    "microwave": ("microwave", "microwave", "microwave oven"),
    "oven": ("oven", "oven", "stove", "stove top"),
    "toaster": ("toaster", "toaster", "toaster oven"),
    "sink": ("sink",),
    "refrigerator": ("refrigerator", "refrigerator", "fridge", "fridge"),
    "book": ("book", "book", "novel"),
    "clock": ("clock", "clock", "wall clock", "clock tower"),
    "vase": ("vase", "vase", "flower vase", "vase of flowers"),
    "scissors": ("pair of scissors", "scissors"),
    "teddy bear": ("teddy bear", "teddy bear", "stuffed animal", "stuffed bear", "teddy-bear"),
    "hair drier": ("hair dryer", "hair dryer", "blow dryer", "hair drier"),
    "toothbrush": ("toothbrush", "toothbrush", "tooth brush"),
}  # fmt: skip

# What each category is seen doing: phrases that follow its noun ("a dog" + "laying down"),
# singular or plural alike, and read after "is"/"are" too.
_ACTS = {
    "person": ("standing", "standing", "walking", "sitting", "posing for a picture", "smiling",
               "looking at the camera"),
    "bicycle": ("parked", "leaning against a wall", "locked to a pole", "parked on the side"),
    "car": ("parked", "driving by", "parked along the curb", "stopped at a light"),
    "motorcycle": ("parked", "parked on the side of the road", "on display"),
    "airplane": ("flying in the sky", "taking off", "parked at a gate", "landing"),
    "bus": ("driving by", "parked", "stopped at a bus stop"),
    "train": ("pulling into the station", "traveling down the tracks", "stopped at a platform"),
    "truck": ("parked", "driving by", "parked on the side"),
    "boat": ("floating", "docked", "sailing", "tied to a dock"),
    "traffic light": ("hanging over the street", "showing red", "on a pole"),
    "fire hydrant": ("on the sidewalk", "next to the curb", "spraying water"),
    "stop sign": ("on a pole", "at the corner", "covered in stickers"),
    "parking meter": ("on the sidewalk", "next to the curb", "on a pole"),
    "bench": ("sitting empty", "under a tree", "facing the water"),
    "bird": ("perched on a branch", "flying", "standing", "sitting on a ledge"),
    "cat": ("sitting", "laying down", "sleeping", "curled up", "staring at the camera"),
    "dog": ("sitting", "laying down", "running", "playing", "looking at the camera"),
    "horse": ("standing", "grazing", "running", "pulling a carriage"),
    "sheep": ("grazing", "standing", "laying in the grass"),
    "cow": ("grazing", "standing", "laying down", "looking at the camera"),
    "elephant": ("walking", "standing", "eating", "spraying water"),
    "bear": ("walking", "sitting", "standing", "looking around"),
    "zebra": ("grazing", "standing", "walking"),
    "giraffe": ("standing", "eating leaves", "walking", "looking over a fence"),
    "backpack": ("on the ground", "leaning against a wall", "sitting on the floor"),
    "umbrella": ("open", "opened up", "providing shade"),
    "handbag": ("on a table", "sitting on the floor", "hanging on a hook"),
    "tie": ("hanging", "on display", "laid out"),
    "suitcase": ("packed", "sitting on the floor", "open", "lined up"),
    "frisbee": ("flying through the air", "on the ground", "in the air"),
    "skis": ("propped against a fence", "laying in the snow", "lined up"),
    "snowboard": ("stuck in the snow", "propped against a wall", "laying on the snow"),
    "sports ball": ("in the air", "on the ground", "flying through the air"),
    "kite": ("flying", "flying high in the sky", "in the air", "soaring"),
    "baseball bat": ("leaning against a fence", "on the ground"),
    "baseball glove": ("on the ground", "resting on a bench"),
    "skateboard": ("on the ground", "upside down", "rolling"),
    "surfboard": ("leaning against a wall", "laying on the sand", "stuck in the sand"),
    "tennis racket": ("on the ground", "leaning against the net"),
    "bottle": ("sitting on a table", "lined up", "half full", "empty"),
    "wine glass": ("filled with wine", "sitting on a table", "half full", "empty"),
    "cup": ("sitting on a table", "filled with coffee", "next to a plate"),
    "fork": ("on a plate", "laying on a napkin", "next to a plate"),
    "knife": ("on a cutting board", "on a plate", "laying on the table"),
    "spoon": ("in a bowl", "on a napkin", "resting on a plate"),
    "bowl": ("filled with soup", "full of fruit", "sitting on a table", "filled with food"),
    "banana": ("hanging", "on a table", "ripe", "sitting on a counter", "for sale"),
    "apple": ("in a basket", "on a table", "for sale", "piled up"),
    "sandwich": ("on a plate", "cut in half", "served with fries", "wrapped in paper"),
    "orange": ("in a bowl", "on a table", "cut in half", "piled up"),
    "broccoli": ("on a plate", "in a bowl", "mixed with rice", "steamed"),
    "carrot": ("on a cutting board", "chopped up", "on a plate", "in a pile"),
    "hot dog": ("covered in mustard", "in a bun", "covered in ketchup", "on a plate"),
    "pizza": ("on a plate", "topped with cheese and pepperoni", "cut into slices", "on a pan",
              "fresh out of the oven"),
    "donut": ("on a plate", "in a box", "covered in sprinkles", "covered in frosting"),
    "cake": ("topped with candles", "on a plate", "covered in frosting", "cut into pieces"),
    "chair": ("empty", "pulled up to a table", "in the corner", "sitting by a window"),
    "couch": ("covered in pillows", "against the wall", "facing a window"),
    "potted plant": ("sitting by a window", "on a shelf", "in the corner", "on a table"),
    "bed": ("covered in white sheets", "neatly made", "unmade", "piled with pillows"),
    "dining table": ("set for dinner", "covered with food", "covered with plates", "empty"),
    "toilet": ("left open", "with its lid down", "that has been cleaned"),
    "tv": ("turned on", "turned off", "mounted on the wall", "on a stand", "showing a game"),
    "laptop": ("open", "turned on", "sitting on a desk", "on a table"),
    "mouse": ("on a mouse pad", "on a desk", "plugged in"),
    "remote": ("on a table", "laying on a cushion", "in a hand"),
    "keyboard": ("on a desk", "plugged in", "in front of a monitor"),
    "cell phone": ("on a table", "turned on", "with a cracked screen", "in a case"),
    "microwave": ("on a counter", "above the stove", "standing open"),
    "oven": ("standing open", "turned on", "with pots on top"),
    "toaster": ("on a counter", "plugged in", "next to the wall"),
    "sink": ("with running water", "full of dishes", "under a mirror"),
    "refrigerator": ("standing open", "covered in magnets", "full of food"),
    "book": ("on a shelf", "stacked up", "open", "on a table"),
    "clock": ("on the wall", "showing the time", "on a tower", "hanging on the wall"),
    "vase": ("filled with flowers", "on a table", "on a shelf"),
    "scissors": ("on a table", "open", "cutting paper"),
    "teddy bear": ("sitting", "wearing a hat", "on a shelf", "laying on its back"),
    "hair drier": ("plugged in", "hanging on the wall", "on the counter"),
    "toothbrush": ("in a cup", "by the sink", "covered in toothpaste"),
}  # fmt: skip

# What a person does with each category ("a man" + "riding" + "a horse").
_PERSON_VERBS = {
    "bicycle": ("riding", "riding", "pushing", "on"),
    "car": ("driving", "getting out of", "washing"),
    "motorcycle": ("riding", "riding", "sitting on"),
    "airplane": ("boarding", "looking at", "standing under"),
    "bus": ("getting on", "waiting for", "driving"),
    "train": ("boarding", "waiting for", "getting off"),
    "truck": ("driving", "loading"),
    "boat": ("rowing", "sitting in", "riding in"),
    "stop sign": ("holding",),
    "parking meter": ("paying",),
    "bench": ("sitting on", "sitting on", "laying on"),
    "bird": ("feeding", "watching", "holding"),
    "cat": ("holding", "petting", "playing with"),
    "dog": ("walking", "petting", "playing with", "holding"),
    "horse": ("riding", "riding", "petting", "leading"),
    "sheep": ("herding", "feeding", "shearing"),
    "cow": ("milking", "herding", "feeding"),
    "elephant": ("riding", "feeding", "washing"),
    "bear": ("watching", "photographing"),
    "zebra": ("watching", "photographing"),
    "giraffe": ("feeding", "watching"),
    "backpack": ("wearing", "carrying"),
    "umbrella": ("holding", "holding", "under", "carrying"),
    "handbag": ("carrying", "holding"),
    "tie": ("wearing", "wearing", "adjusting"),
    "suitcase": ("pulling", "carrying", "packing"),
    "frisbee": ("throwing", "catching", "playing with"),
    "skis": ("on", "wearing", "carrying"),
    "snowboard": ("riding", "on", "carrying"),
    "sports ball": ("kicking", "throwing", "catching", "hitting"),
    "kite": ("flying", "flying", "holding"),
    "baseball bat": ("swinging", "swinging", "holding"),
    "baseball glove": ("wearing", "holding"),
    "skateboard": ("riding", "riding", "doing a trick on", "holding"),
    "surfboard": ("riding", "carrying", "holding"),
    "tennis racket": ("swinging", "swinging", "holding"),
    "bottle": ("drinking from", "holding", "opening"),
    "wine glass": ("holding", "drinking from"),
    "cup": ("holding", "drinking from"),
    "fork": ("eating with", "holding"),
    "knife": ("cutting with", "holding"),
    "spoon": ("eating with", "holding"),
    "bowl": ("eating from", "holding"),
    "banana": ("eating", "holding", "peeling"),
    "apple": ("eating", "holding", "picking"),
    "sandwich": ("eating", "holding", "biting into"),
    "orange": ("peeling", "eating", "holding"),
    "broccoli": ("eating", "cooking", "cutting"),
    "carrot": ("cutting", "eating", "chopping"),
    "hot dog": ("eating", "holding", "biting into"),
    "pizza": ("eating", "cutting", "making", "holding"),
    "donut": ("eating", "holding"),
    "cake": ("cutting", "eating", "holding"),
    "chair": ("sitting in", "sitting on"),
    "couch": ("sitting on", "laying on", "sleeping on"),
    "potted plant": ("watering",),
    "bed": ("laying on", "sleeping in", "sitting on"),
    "dining table": ("sitting at", "sitting at"),
    "toilet": ("cleaning", "fixing"),
    "tv": ("watching", "watching"),
    "laptop": ("using", "typing on", "working on", "looking at"),
    "mouse": ("using",),
    "remote": ("holding", "pointing"),
    "keyboard": ("typing on",),
    "cell phone": ("talking on", "looking at", "holding", "texting on"),
    "microwave": ("opening", "using"),
    "oven": ("opening", "cleaning", "cooking at"),
    "toaster": ("using",),
    "sink": ("washing dishes in", "standing at"),
    "refrigerator": ("opening", "looking in"),
    "book": ("reading", "reading", "holding"),
    "clock": ("looking at",),
    "vase": ("holding", "arranging flowers in"),
    "scissors": ("cutting with", "holding"),
    "teddy bear": ("holding", "hugging"),
    "hair drier": ("using", "holding", "drying hair with"),
    "toothbrush": ("brushing teeth with", "holding"),
}
# Categories above without verbs of their own, and every category some of the time.
_ANY_PERSON_VERBS = ("standing next to", "standing near", "next to", "with", "looking at")

COLOURS = ("white", "black", "red", "blue", "green", "yellow", "brown", "orange", "pink",
           "gray", "silver", "purple")  # fmt: skip
_COLOUR_SPELLINGS = {"gray": ("gray", "grey")}

# palette: (its colours, the categories that take them). Other categories have no colour.
_PALETTES = {
    "clothes": (("red", "blue", "white", "black", "green", "yellow", "pink", "gray"),
                ("person",)),
    "fur": (("black", "white", "brown", "gray"),
            ("bird", "cat", "dog", "horse", "sheep", "cow", "bear", "teddy bear")),
    "paint": (("red", "white", "blue", "black", "yellow", "silver", "green"),
              ("bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
               "fire hydrant")),
    "bright": (("red", "blue", "green", "yellow", "pink", "orange", "purple", "white", "black"),
               ("backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis",
                "snowboard", "kite", "skateboard", "surfboard", "vase", "scissors", "hair drier",
                "toothbrush")),
    "plain": (("white", "black", "silver", "brown", "gray", "red", "blue"),
              ("bench", "cup", "bowl", "chair", "couch", "bed", "toilet", "laptop", "mouse",
               "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink",
               "refrigerator", "book", "clock", "bottle")),
}  # fmt: skip
_GARMENTS = ("shirt", "shirt", "jacket", "coat", "hat", "sweater")  # how a person wears a colour

# How often each count level (1, 2, 3, several) is drawn, by kind of category.
_COUNT_P = {"usual": (0.62, 0.18, 0.08, 0.12), "many": (0.3, 0.2, 0.12, 0.38),
            "single": (0.93, 0.05, 0.01, 0.01)}  # fmt: skip
_MANY = ("person", "car", "bird", "sheep", "cow", "elephant", "zebra", "giraffe", "kite",
         "bottle", "banana", "apple", "orange", "carrot", "donut", "book", "boat",
         "suitcase")  # fmt: skip
_SINGLE = ("bus", "train", "airplane", "fire hydrant", "stop sign", "bed", "dining table",
           "toilet", "oven", "refrigerator", "microwave", "toaster", "sink", "couch", "tv",
           "laptop", "keyboard", "baseball bat", "baseball glove", "tennis racket", "skateboard",
           "snowboard", "hair drier", "clock")  # fmt: skip

# Determiners by count level; "a" becomes "an" before a vowel.
_ONE = ("a", "a", "a", "a", "a", "a", "one", "the", "a single")
_TWO = ("two", "two", "two", "a couple of", "a pair of", "2")
_THREE = ("three", "three", "three", "3")
_SEVERAL = ("several", "several", "a group of", "many", "some", "a bunch of", "lots of")
_COLLECTIVE = {"person": ("a crowd of", "a group of"), "bird": ("a flock of",),
               "sheep": ("a herd of", "a flock of"), "cow": ("a herd of",),
               "elephant": ("a herd of",), "zebra": ("a herd of",), "horse": ("a herd of",),
               "giraffe": ("a herd of",)}  # fmt: skip

# scene: (how often, where phrases, "a <scene> with ..." nouns, {category: weight}).
# Categories not listed get a small weight, so anything can turn up anywhere, rarely.
_SCENES = {
    "kitchen": (1.3,
        ("in a kitchen", "in the kitchen", "in a small kitchen", "in someone's kitchen",
         "in a restaurant kitchen"),
        ("a kitchen", "a small kitchen", "a clean kitchen", "a kitchen area"),
        {"oven": 5, "refrigerator": 5, "microwave": 4, "sink": 4, "person": 4, "bowl": 3,
         "toaster": 2, "cup": 2, "knife": 2, "bottle": 2, "dining table": 2, "chair": 2,
         "pizza": 1, "cake": 1, "banana": 1, "broccoli": 1, "carrot": 1, "potted plant": 1,
         "clock": 1, "vase": 1, "spoon": 1}),
    "street": (1.3,
        ("on a city street", "on the street", "on a busy street", "on the road",
         "at an intersection", "on the side of the road"),
        ("a city street", "a busy street", "a street", "a road"),
        {"car": 5, "person": 5, "bus": 4, "truck": 4, "traffic light": 4, "stop sign": 3,
         "fire hydrant": 3, "motorcycle": 3, "parking meter": 2, "bicycle": 2, "umbrella": 2,
         "bench": 1, "handbag": 1, "dog": 1}),
    "beach": (1.0,
        ("on the beach", "on a sandy beach", "at the beach", "by the ocean", "near the shore"),
        ("a beach", "a sandy beach", "a crowded beach"),
        {"person": 6, "surfboard": 5, "kite": 4, "umbrella": 4, "dog": 2, "boat": 2, "bird": 2,
         "frisbee": 2, "bench": 1, "chair": 1}),
    "ski slope": (1.0,
        ("in the snow", "on a snowy slope", "down a ski slope", "on a snow-covered hill",
         "on a snowy mountain"),
        ("a snowy slope", "a ski slope", "a snowy hill"),
        {"person": 7, "skis": 6, "snowboard": 5, "backpack": 2, "dog": 1}),
    "living room": (1.1,
        ("in a living room", "in the living room", "in a family room",
         "in someone's living room", "at home"),
        ("a living room", "a family room", "a cozy living room"),
        {"couch": 5, "tv": 5, "chair": 4, "remote": 3, "potted plant": 3, "book": 3,
         "person": 3, "laptop": 2, "cat": 2, "dog": 2, "clock": 2, "vase": 2}),
    "bathroom": (0.9,
        ("in a bathroom", "in the bathroom", "in a small bathroom", "in a men's restroom",
         "in a hotel bathroom"),
        ("a bathroom", "a small bathroom", "a restroom"),
        {"toilet": 6, "sink": 6, "toothbrush": 2, "bottle": 2, "hair drier": 1, "scissors": 1,
         "cup": 1, "vase": 1, "person": 0.5}),
    "park": (1.0,
        ("in a park", "in the park", "on the grass", "in a grassy park", "on a grassy lawn"),
        ("a park", "a grassy park", "a public park"),
        {"person": 6, "bench": 4, "dog": 4, "frisbee": 4, "kite": 3, "bird": 2, "bicycle": 2,
         "sports ball": 2, "umbrella": 1}),
    "downtown": (1.0,
        ("in the city", "in a downtown area", "in front of a building", "in a city square",
         "on a sidewalk"),
        ("a city", "a downtown area", "a city square"),
        {"person": 6, "car": 4, "clock": 3, "bus": 3, "traffic light": 3, "umbrella": 3,
         "truck": 2, "bicycle": 2, "handbag": 2, "stop sign": 1, "backpack": 1}),
    "airport": (0.8,
        ("at an airport", "on the runway", "on the tarmac", "at the airport"),
        ("an airport", "a runway", "an airport tarmac"),
        {"airplane": 7, "truck": 3, "person": 3, "suitcase": 2, "bus": 1, "car": 1}),
    "farm": (0.9,
        ("in a field", "in a grassy pasture", "on a farm", "in a green field",
         "behind a fence"),
        ("a field", "a pasture", "a farm"),
        {"cow": 5, "sheep": 5, "horse": 5, "person": 3, "dog": 2, "bird": 2, "truck": 1}),
    "waterfront": (0.9,
        ("in the water", "on the ocean", "on a lake", "in a harbor", "on a river",
         "near the dock"),
        ("a harbor", "a lake", "a body of water", "a marina"),
        {"boat": 7, "person": 4, "bird": 3, "surfboard": 2, "kite": 1, "umbrella": 1}),
    "tennis court": (0.9,
        ("on a tennis court", "on the court", "at a tennis match", "on a clay court"),
        ("a tennis court", "a court"),
        {"person": 8, "tennis racket": 7, "sports ball": 5, "chair": 1}),
    "baseball field": (0.9,
        ("on a baseball field", "at a baseball game", "on the field", "at home plate"),
        ("a baseball field", "a baseball diamond", "a ball field"),
        {"person": 8, "baseball bat": 6, "baseball glove": 5, "sports ball": 4, "bench": 1}),
    "office": (0.9,
        ("in an office", "on a desk", "at a desk", "on a cluttered desk", "in a cubicle"),
        ("an office", "a desk", "a work station", "a cluttered desk"),
        {"laptop": 5, "keyboard": 4, "mouse": 4, "cell phone": 3, "book": 3, "cup": 3,
         "chair": 3, "tv": 3, "person": 3, "scissors": 1, "potted plant": 1, "bottle": 1}),
    "bedroom": (0.9,
        ("in a bedroom", "in the bedroom", "in a hotel room", "in a child's bedroom"),
        ("a bedroom", "a hotel room", "a small bedroom"),
        {"bed": 7, "cat": 3, "teddy bear": 2, "book": 2, "dog": 2, "laptop": 2, "tv": 2,
         "person": 2, "clock": 1, "remote": 1, "chair": 1, "suitcase": 1}),
    "dining room": (1.3,
        ("on a table", "on a dining table", "at a restaurant", "on a wooden table",
         "at a dinner table"),
        ("a table", "a dining table", "a restaurant table"),
        {"pizza": 5, "dining table": 5, "sandwich": 4, "person": 4, "cake": 3, "donut": 3,
         "hot dog": 3, "wine glass": 3, "cup": 3, "fork": 3, "knife": 3, "bowl": 3,
         "spoon": 2, "bottle": 2, "chair": 2, "broccoli": 2, "carrot": 1, "orange": 1,
         "apple": 1}),
    "train station": (0.9,
        ("at a train station", "at the station", "on a platform", "at a subway station"),
        ("a train station", "a platform", "a station"),
        {"train": 8, "person": 5, "bench": 2, "clock": 2, "suitcase": 1, "backpack": 1,
         "traffic light": 1}),
    "zoo": (0.9,
        ("in a zoo", "in an enclosure", "in the wild", "on the savanna", "in a grassy area"),
        ("a zoo enclosure", "a grassy area", "a savanna"),
        {"elephant": 5, "giraffe": 5, "zebra": 5, "bear": 4, "bird": 2, "person": 1}),
    "skate park": (0.7,
        ("at a skate park", "on a ramp", "in a skate park", "on a concrete ramp"),
        ("a skate park", "a ramp"),
        {"skateboard": 7, "person": 7, "bench": 1, "backpack": 1}),
    "market": (0.7,
        ("at a market", "at a fruit stand", "in a grocery store", "at a farmers market"),
        ("a market", "a fruit stand", "a produce stand"),
        {"banana": 5, "apple": 4, "orange": 4, "person": 4, "carrot": 3, "broccoli": 3,
         "bottle": 1, "umbrella": 1}),
}  # fmt: skip
SCENES = tuple(_SCENES)
_OFF_SCENE_WEIGHT = 0.01

# What annotators call a category in one particular scene ("a skier", "a tennis ball").
_SCENE_NOUNS = {
    ("ski slope", "person"): ("skier", "skier", "snowboarder"),
    ("beach", "person"): ("surfer",),
    ("waterfront", "person"): ("surfer", "fisherman"),
    ("tennis court", "person"): ("tennis player", "tennis player", "player"),
    ("baseball field", "person"): ("baseball player", "batter", "catcher", "pitcher"),
    ("skate park", "person"): ("skateboarder", "skater"),
    ("kitchen", "person"): ("chef", "cook"),
    ("farm", "person"): ("farmer",),
    ("airport", "person"): ("traveler", "passenger"),
    ("train station", "person"): ("passenger", "commuter"),
    ("market", "person"): ("vendor", "shopper"),
    ("office", "person"): ("businessman", "worker"),
    ("tennis court", "sports ball"): ("tennis ball",),
    ("baseball field", "sports ball"): ("baseball",),
    ("park", "sports ball"): ("soccer ball", "football"),
    ("beach", "sports ball"): ("volleyball", "beach ball"),
    ("kitchen", "sink"): ("kitchen sink",),
    ("bathroom", "sink"): ("bathroom sink", "vanity"),
    ("kitchen", "dining table"): ("kitchen table",),
    ("street", "car"): ("taxi", "cab"),
    ("waterfront", "boat"): ("sailboat", "yacht", "fishing boat"),
    ("beach", "umbrella"): ("beach umbrella", "parasol"),
    ("airport", "truck"): ("baggage truck", "fuel truck"),
    ("airport", "airplane"): ("jumbo jet", "passenger jet", "airliner"),
    ("train station", "train"): ("commuter train", "subway train"),
    ("office", "tv"): ("monitor", "computer monitor", "screen"),
}

_IRREGULAR_PLURALS = {
    "man": "men", "woman": "women", "person": "people", "child": "children", "mouse": "mice",
    "knife": "knives", "sheep": "sheep", "calf": "calves", "skis": "skis",
    "scissors": "scissors", "fisherman": "fishermen", "businessman": "businessmen",
    "aircraft": "aircraft",
}  # fmt: skip
_PLURAL_ONLY = ("skis", "scissors")  # one of them is "a pair of" them

# Caption templates by kind and by whether the scene is said. {a}, {b}, {c}: noun phrases,
# {act}: what {a} is doing, {v}: what person {a} does with {b}, {w}: where, {n}: "a kitchen".
_TEMPLATES = {
    ("one", True): (
        "{a} {act} {w}", "{a} {act} {w}", "{a} {be} {act} {w}", "{a} {w}",
        "there {be} {a} {act} {w}", "{w}, {a} {be} {act}", "{w} there {be} {a}",
        "a picture of {a} {act} {w}", "a close up of {a} {w}", "{n} with {a} in it",
        "{n} with {a}", "an image of {a} {w}", "{a} that {be} {act} {w}", "here {be} {a} {act} {w}",
    ),
    ("one", False): (
        "{a} {act}", "{a} {act}", "{a} {be} {act}", "there {be} {a} {act}",
        "a picture of {a} {act}", "a close up of {a}", "an image of {a} {act}",
        "{a} {act} in this picture", "{a} that {be} {act}", "a view of {a}",
    ),
    ("two", True): (
        "{a} and {b} {w}", "{a} {act} next to {b} {w}", "{a} with {b} {w}",
        "{n} with {a} and {b}", "{a} {act} near {b} {w}", "there {be} {a} and {b} {w}",
        "{w}, {a} {be} {act} beside {b}", "{a} {act} {w} with {b} nearby",
    ),
    ("two", False): (
        "{a} and {b}", "{a} {act} next to {b}", "{a} with {b}", "{a} {act} near {b}",
        "a picture of {a} and {b}", "{a} {be} {act} by {b}",
    ),
    ("three", True): (
        "{a}, {b} and {c} {w}", "{n} with {a}, {b}, and {c}", "{a} {act} {w} with {b} and {c}",
        "{a} and {b} {w} near {c}", "there {be} {a}, {b} and {c} {w}",
    ),
    ("three", False): (
        "{a}, {b} and {c}", "{a} {act} with {b} and {c}", "{a} with {b} and {c}",
        "{a} next to {b} and {c}",
    ),
    ("person", True): (
        "{a} {v} {b} {w}", "{a} {v} {b} {w}", "{a} {be} {v} {b} {w}", "{a} {act} {w} {v} {b}",
        "{w}, {a} {be} {v} {b}", "a picture of {a} {v} {b} {w}", "{a} {act} {w} and {v} {b}",
    ),
    ("person", False): (
        "{a} {v} {b}", "{a} {be} {v} {b}", "{a} {act} and {v} {b}", "a close up of {a} {v} {b}",
        "{a} {act} while {v} {b}",
    ),
    ("person3", True): (
        "{a} {v} {b} {w} next to {c}", "{a} {v} {b} and {c} {w}", "{a} {be} {v} {b} near {c} {w}",
        "{w}, {a} {v} {b} with {c} nearby",
    ),
    ("person3", False): (
        "{a} {v} {b} next to {c}", "{a} {v} {b} and {c}", "{a} {be} {v} {b} near {c}",
    ),
}  # fmt: skip

# ---------------------------------------------------------------------------------------------
# The latent scene model and the descriptor map
# ---------------------------------------------------------------------------------------------

_N_OBJECTS_P = (0.35, 0.4, 0.25)  # 1, 2 or 3 captioned objects
_N_DISTRACTORS_P = (0.45, 0.35, 0.2)  # 0, 1 or 2 uncaptioned objects
_COLOUR_P = 0.5  # chance that an object of a category with a palette has a colour
# Object slots: 3 captioned objects, most salient first, then 2 distractors.
_SLOT_WEIGHTS = (1.0, 0.8, 0.65, 0.5, 0.5)
_MENTION_P = (0.92, 0.6, 0.45)  # chance that a caption names each captioned object

_MAP_SEED = 20140501  # fixed: the descriptor map must be the same for every dataset
_LATENT_DIM, _HIDDEN_DIM = 128, 256
_SCENE_WEIGHT = 0.8
_COUNT_GAIN = (1.0, 1.3, 1.5, 1.7)  # more of an object fills more of the picture
_COUNT_CODE_SCALE, _COLOUR_CODE_SCALE = 0.3, 0.4
_LATENT_NOISE = 0.5  # norm of the latent noise, against unit-norm codes

# ---------------------------------------------------------------------------------------------
# Caption style: one uniform byte (0..255) per random decision
# ---------------------------------------------------------------------------------------------


def _p(probability: float) -> int:
    """The byte threshold below which an event of this probability happens."""
    return round(probability * 256)


_P_SHOW_SCENE, _P_SWAP, _P_PERSON_KIND = _p(0.7), _p(0.3), _p(0.75)
_P_SCENE_NOUN, _P_SAY_COLOUR, _P_CONTRACT = _p(0.35), _p(0.55), _p(0.3)
_P_LOWER, _P_UPPER = _p(0.1), _p(0.12)  # cumulative: 10% all lower case, 2% all upper case
_P_PERIOD, _P_SPACED_PERIOD = _p(0.6), _p(0.63)  # cumulative; otherwise no final period
_P_DOUBLE_SPACE, _P_TRAILING_SPACE = _p(0.03), _p(0.04)
(_R_KIND, _R_SCENE, _R_TEMPLATE, _R_WHERE, _R_SCENE_NOUN, _R_SWAP, _R_ACT, _R_VERB, _R_CASE,
 _R_END, _R_SPACE, _R_SPACE_AT, _R_TRAIL, _R_CONTRACT, _R_NP) = range(15)  # fmt: skip
_NP_BYTES = 5  # per noun phrase: scene noun?, noun, determiner, say colour?, spelling/garment
_N_BYTES = _R_NP + 3 * _NP_BYTES

# ---------------------------------------------------------------------------------------------
# Tables derived from the word lists, indexed by category and scene number for speed
# ---------------------------------------------------------------------------------------------


def _plural(noun: str) -> str:
    """English plural of a noun phrase: its head word is the one before "of", else the last."""
    words = noun.split(" ")
    head = words.index("of") - 1 if "of" in words else len(words) - 1
    word = words[head]
    if word in _IRREGULAR_PLURALS:
        word = _IRREGULAR_PLURALS[word]
    elif word.endswith(("s", "x", "ch", "sh")):
        word += "es"
    elif word.endswith("y") and word[-2] not in "aeiou":
        word = word[:-1] + "ies"
    else:
        word += "s"
    words[head] = word
    return " ".join(words)


def _forms(nouns: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    return tuple((noun, _plural(noun)) for noun in nouns)


_PERSON = CATEGORIES.index("person")
_FORMS = tuple(_forms(_NOUNS[c]) for c in CATEGORIES)
_SCENE_FORMS = {(SCENES.index(s), CATEGORIES.index(c)): _forms(n) for (s, c), n in
                _SCENE_NOUNS.items()}  # fmt: skip
_ACTS_BY = tuple(_ACTS[c] for c in CATEGORIES)
_VERBS_BY = tuple(_PERSON_VERBS.get(c, ()) + _ANY_PERSON_VERBS for c in CATEGORIES)
_DETERMINERS = tuple((_ONE, _TWO, _THREE, _SEVERAL + _COLLECTIVE.get(c, ())) for c in CATEGORIES)
_WHERE = tuple(_SCENES[s][1] for s in SCENES)
_SCENE_PLACES = tuple(_SCENES[s][2] for s in SCENES)
_COLOUR_WORDS = tuple(_COLOUR_SPELLINGS.get(c, (c,)) for c in COLOURS)
_COUNT_LABELS = (1, 2, 3, "several")


def mention_forms(category: str) -> frozenset[str]:
    """Every word or phrase a caption may use for a category, singular and plural, lower case.

    Examples
    --------
    >>> sorted(mention_forms("dog"))
    ['dog', 'dogs', 'pup', 'puppies', 'puppy', 'pups']
    """
    if category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r}; see minicoco.CATEGORIES")
    c = CATEGORIES.index(category)
    forms = _FORMS[c] + sum((f for (_, cat), f in _SCENE_FORMS.items() if cat == c), ())
    return frozenset(w.lower() for pair in forms for w in pair)


@cache
def _scene_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sampling tables, built once.

    Returns
    -------
    scene_p : (n_scenes,) probability of each scene
    weights : (n_scenes, 80) relative weight of each category in each scene
    count_cdf : (80, 3) cumulative probabilities of the count levels 1, 2, 3 (then several)
    palette : (80, P) int colour indices of each category's palette, padded with -1
    palette_size : (80,) number of colours in each palette (0: the category has no colour)
    """
    scene_p = np.array([_SCENES[s][0] for s in SCENES])
    weights = np.full((len(SCENES), len(CATEGORIES)), _OFF_SCENE_WEIGHT)
    for i, s in enumerate(SCENES):
        for c, w in _SCENES[s][3].items():
            weights[i, CATEGORIES.index(c)] = w
    kinds = ["many" if c in _MANY else "single" if c in _SINGLE else "usual" for c in CATEGORIES]
    count_cdf = np.cumsum([_COUNT_P[k] for k in kinds], axis=1)[:, :3]
    widest = max(len(colours) for colours, _ in _PALETTES.values())
    palette = np.full((len(CATEGORIES), widest), -1)
    palette_size = np.zeros(len(CATEGORIES), dtype=np.int64)
    for colours, categories in _PALETTES.values():
        for c in categories:
            palette[CATEGORIES.index(c), : len(colours)] = [COLOURS.index(x) for x in colours]
            palette_size[CATEGORIES.index(c)] = len(colours)
    return scene_p / scene_p.sum(), weights, count_cdf, palette, palette_size


@dataclass(frozen=True)
class _Scenes:
    """The latent scenes of N images; object slots 0-2 are captioned, 3-4 are distractors.

    Attributes
    ----------
    scene : (N,) int scene index into `SCENES`
    category, count, colour : (N, 5) int category index, count level 0-3 (1, 2, 3, several),
        colour index into `COLOURS` or -1 for none
    present : (N, 5) bool whether the slot holds an object
    """

    scene: np.ndarray
    category: np.ndarray
    count: np.ndarray
    colour: np.ndarray
    present: np.ndarray


def _draw_scenes(rng: np.random.Generator, n: int) -> _Scenes:
    scene_p, weights, count_cdf, palette, palette_size = _scene_tables()
    scene = rng.choice(len(SCENES), size=n, p=scene_p)
    n_objects = rng.choice(3, size=n, p=_N_OBJECTS_P) + 1
    n_distractors = rng.choice(3, size=n, p=_N_DISTRACTORS_P)
    # Weighted sampling without replacement, all images at once: the categories with the
    # smallest E / w (E ~ Exp(1)) are a weighted draw in order (exponential race).
    race = rng.standard_exponential((n, len(CATEGORIES))) / weights[scene]
    first5 = np.argpartition(race, 4, axis=1)[:, :5]
    ranked = np.take_along_axis(first5, np.argsort(np.take_along_axis(race, first5, 1), 1), 1)
    distractors = np.take_along_axis(ranked, n_objects[:, None] + np.arange(2), axis=1)
    category = np.concatenate([ranked[:, :3], distractors], axis=1)
    present = np.concatenate(
        [np.arange(3) < n_objects[:, None], np.arange(2) < n_distractors[:, None]], axis=1
    )
    count = (rng.random((n, 5))[..., None] > count_cdf[category]).sum(-1)
    has_colour = rng.random((n, 5)) < _COLOUR_P
    pick = (rng.random((n, 5)) * palette_size[category]).astype(np.int64)
    colour = np.where(has_colour, palette[category, pick], -1)  # -1 also for no palette
    return _Scenes(scene, category, count, colour, present)


@dataclass(frozen=True)
class _DescriptorMap:
    """The fixed map from latent scenes to descriptors (see the module docstring)."""

    scene_codes: np.ndarray  # (n_scenes, L)
    category_codes: np.ndarray  # (80, L)
    count_codes: np.ndarray  # (4, L)
    colour_codes: np.ndarray  # (n_colours + 1, L); the last row, zero, is "no colour" (-1)
    A: np.ndarray  # (L, H)
    a: np.ndarray  # (H,)
    B: np.ndarray  # (H, 512)
    b: np.ndarray  # (512,)
    gain: np.ndarray  # (512,)


@cache
def _descriptor_map() -> _DescriptorMap:
    rng = np.random.default_rng(_MAP_SEED)
    L, H = _LATENT_DIM, _HIDDEN_DIM

    def codes(k: int, scale: float = 1.0) -> np.ndarray:
        # Random directions of norm about `scale`: nearly orthogonal in L dimensions.
        return (rng.standard_normal((k, L)) * scale / np.sqrt(L)).astype(np.float32)

    colour_codes = np.concatenate([codes(len(COLOURS), _COLOUR_CODE_SCALE), np.zeros((1, L))])
    return _DescriptorMap(
        scene_codes=codes(len(SCENES)),
        category_codes=codes(len(CATEGORIES)),
        count_codes=codes(4, _COUNT_CODE_SCALE),
        colour_codes=colour_codes.astype(np.float32),
        A=(rng.standard_normal((L, H)) * 0.7).astype(np.float32),
        a=(rng.standard_normal(H) * 0.5).astype(np.float32),
        B=(rng.standard_normal((H, DESCRIPTOR_DIM)) / np.sqrt(H)).astype(np.float32),
        b=(rng.standard_normal(DESCRIPTOR_DIM) * 0.3 + 0.7).astype(np.float32),
        # Uneven channel scales, as in a real network: a few large channels, many small.
        gain=rng.lognormal(0.0, 0.5, DESCRIPTOR_DIM).astype(np.float32),
    )


def _descriptors(scenes: _Scenes, rng: np.random.Generator) -> np.ndarray:
    """(N, 512) float32 non-negative descriptors of the scenes, with latent noise from rng."""
    m = _descriptor_map()
    z = _SCENE_WEIGHT * m.scene_codes[scenes.scene]
    for j, weight in enumerate(_SLOT_WEIGHTS):
        cat, count = scenes.category[:, j], scenes.count[:, j]
        gain = np.asarray(_COUNT_GAIN, dtype=np.float32)[count, None]
        colour = m.colour_codes[scenes.colour[:, j]]
        obj = gain * m.category_codes[cat] + m.count_codes[count] + colour
        z += (weight * scenes.present[:, j, None]).astype(np.float32) * obj
    noise = rng.standard_normal(z.shape, dtype=np.float32) * (_LATENT_NOISE / _LATENT_DIM**0.5)
    hidden = np.tanh((z + noise) @ m.A + m.a)
    return np.maximum(hidden @ m.B + m.b, 0.0) * m.gain


# ---------------------------------------------------------------------------------------------
# Captions
# ---------------------------------------------------------------------------------------------


def _pick(options: tuple, byte: int):
    return options[byte * len(options) >> 8]


def _noun_phrase(scene: int, category: int, count: int, colour: int, r: list[int], at: int):
    """A noun phrase for one object ("two white dogs"), from the bytes ``r[at:at + 5]``."""
    forms = _SCENE_FORMS.get((scene, category)) if r[at] < _P_SCENE_NOUN else None
    singular, plural = _pick(forms or _FORMS[category], r[at + 1])
    noun = singular if count == 0 else plural
    determiner = _pick(_DETERMINERS[category][count], r[at + 2])
    if determiner == "a pair of" and " of " in noun:
        determiner = "two"  # not "a pair of pairs of skis"
    elif count == 0 and noun in _PLURAL_ONLY:
        determiner = "a pair of"  # not "a skis"
    if colour >= 0 and r[at + 3] < _P_SAY_COLOUR:
        colour_word = _pick(_COLOUR_WORDS[colour], r[at + 4])
        if category == _PERSON:  # people wear their colour
            garment = _pick(_GARMENTS, r[at + 4])
            worn = f"a {colour_word} {garment}" if count == 0 else f"{colour_word} {garment}s"
            noun += f" in {worn}"
        else:
            noun = f"{colour_word} {noun}"
    if determiner == "a" and noun[0] in "aeiouAEIOU":
        determiner = "an"
    return f"{determiner} {noun}"


def _caption(scene: int, objects: list[tuple[int, int, int]], r: list[int]) -> str:
    """One caption naming ``objects`` ((category, count level, colour), most salient first).

    ``r`` holds `_N_BYTES` uniform random bytes, one per decision, so that captions can be
    written by a plain loop over pre-drawn numbers.
    """
    if len(objects) > 1 and r[_R_SWAP] < _P_SWAP:
        objects = [objects[1], objects[0], *objects[2:]]
    kind = ("one", "two", "three")[len(objects) - 1]
    people = [o for o in objects if o[0] == _PERSON]
    if people and len(objects) > 1 and r[_R_KIND] < _P_PERSON_KIND:
        objects = people + [o for o in objects if o[0] != _PERSON]
        kind = "person" if len(objects) == 2 else "person3"
    phrases = [_noun_phrase(scene, *o, r, _R_NP + i * _NP_BYTES) for i, o in enumerate(objects)]
    phrases += ["", ""]
    verb = _pick(_VERBS_BY[objects[1][0]], r[_R_VERB]) if kind.startswith("person") else ""
    text = _pick(_TEMPLATES[kind, r[_R_SCENE] < _P_SHOW_SCENE], r[_R_TEMPLATE]).format(
        a=phrases[0],
        b=phrases[1],
        c=phrases[2],
        act=_pick(_ACTS_BY[objects[0][0]], r[_R_ACT]),
        v=verb,
        w=_pick(_WHERE[scene], r[_R_WHERE]),
        n=_pick(_SCENE_PLACES[scene], r[_R_SCENE_NOUN]),
        be="is" if objects[0][1] == 0 else "are",
    )
    return _styled(text, r)


def _styled(text: str, r: list[int]) -> str:
    """The annotator's habits: case, final period, stray spaces, contractions."""
    text = " ".join(text.split()).replace(" ,", ",")
    if text.startswith("there is ") and r[_R_CONTRACT] < _P_CONTRACT:
        text = "there's " + text[9:]
    if r[_R_CASE] >= _P_UPPER:
        text = text[0].upper() + text[1:]
    elif r[_R_CASE] >= _P_LOWER:
        text = text.upper()
    if r[_R_END] < _P_PERIOD:
        text += "."
    elif r[_R_END] < _P_SPACED_PERIOD:
        text += " ."
    if r[_R_SPACE] < _P_DOUBLE_SPACE:
        words = text.split(" ")
        at = 1 + (r[_R_SPACE_AT] * (len(words) - 1) >> 8)
        text = " ".join(words[:at]) + "  " + " ".join(words[at:])
    if r[_R_TRAIL] < _P_TRAILING_SPACE:
        text += " "
    return text


def _caption_texts(
    rng: np.random.Generator, scenes: _Scenes, caption_image: np.ndarray
) -> list[str]:
    """The text of each caption; ``caption_image[k]`` is the image index of caption k."""
    n_captions = len(caption_image)
    n_objects = scenes.present[:, :3].sum(1).tolist()
    image_objects = [
        tuple(zip(cats[:k], counts[:k], colours[:k], strict=True))
        for cats, counts, colours, k in zip(
            scenes.category[:, :3].tolist(),
            scenes.count[:, :3].tolist(),
            scenes.colour[:, :3].tolist(),
            n_objects,
            strict=True,
        )
    ]
    # Which of its image's objects each caption names: at least the most salient one.
    said = (rng.random((n_captions, 3)) < _MENTION_P) & scenes.present[caption_image, :3]
    said[:, 0] |= ~said.any(1)
    said_bits = (said @ np.array([1, 2, 4])).tolist()
    random_bytes = rng.integers(0, 256, size=(n_captions, _N_BYTES), dtype=np.uint8).tolist()
    scene_of = scenes.scene.tolist()
    return [
        _caption(scene_of[i], [o for j, o in enumerate(image_objects[i]) if bits >> j & 1], r)
        for i, bits, r in zip(caption_image.tolist(), said_bits, random_bytes, strict=True)
    ]


# ---------------------------------------------------------------------------------------------
# The files
# ---------------------------------------------------------------------------------------------

_URL = "http://images.minicoco.invalid/train2014/"
_FLICKR_URL = "http://flickr.minicoco.invalid/train2014/"
_INFO = {
    "description": "mini-COCO: a GENERATED demo dataset in the format of the MS-COCO 2014 "
    "captions file. Captions and descriptors are generated from random latent scenes by "
    "capstone.minicoco; there are no photos, and the descriptors are not from a real network.",
    "url": "http://minicoco.invalid",
    "version": "1.0",
    "year": 2014,
    "contributor": "capstone.minicoco (generated)",
}
_LICENSES = [
    {
        "url": "http://minicoco.invalid/license",
        "id": 1,
        "name": "Generated demo data, no photograph: free to use",
    }
]
# (width, height, relative frequency): the commonest COCO image sizes.
_IMAGE_SIZES = ((640, 480, 40), (480, 640, 12), (640, 427, 15), (427, 640, 6), (500, 375, 8),
                (375, 500, 3), (612, 612, 4), (640, 426, 5), (640, 360, 4),
                (500, 333, 3))  # fmt: skip
_FIRST_CAPTURE, _CAPTURE_DAYS = np.datetime64("2013-11-14T00:00:00"), 45
_IMAGE_ID_SPACE, _CAPTION_ID_SPACE = 600_000, 1_000_000  # ids are below these, as in COCO


def _distinct_ids(rng: np.random.Generator, k: int, space: int) -> np.ndarray:
    """k distinct positive ints below ``space`` (widened if k is too large for it)."""
    return rng.choice(max(space, 2 * k) - 1, size=k, replace=False) + 1


def _n_without_descriptor(n_images: int) -> int:
    # As in the real files (171 of 82,783 images); at least one once there are 200 images.
    return max(round(n_images * 171 / COCO_SCALE[0]), int(n_images >= 200))


def _image_records(rng: np.random.Generator, image_ids: np.ndarray) -> list[dict]:
    n = len(image_ids)
    sizes = np.array(_IMAGE_SIZES)
    size = sizes[rng.choice(len(sizes), size=n, p=sizes[:, 2] / sizes[:, 2].sum()), :2]
    seconds = rng.integers(0, _CAPTURE_DAYS * 86_400, size=n).astype("timedelta64[s]")
    dates = np.datetime_as_string(_FIRST_CAPTURE + seconds, unit="s").tolist()
    records = []
    for i, (width, height), date in zip(image_ids.tolist(), size.tolist(), dates, strict=True):
        name = f"COCO_train2014_{i:012d}.jpg"
        records.append({
            "license": 1,
            "file_name": name,
            "coco_url": _URL + name,
            "height": height,
            "width": width,
            "date_captured": date.replace("T", " "),
            "flickr_url": _FLICKR_URL + name,
            "id": i,
        })  # fmt: skip
    return records


def _scene_records(
    scenes: _Scenes, image_ids: np.ndarray, has_descriptor: np.ndarray
) -> list[dict]:
    category, count = scenes.category.tolist(), scenes.count.tolist()
    colour, present = scenes.colour.tolist(), scenes.present.tolist()

    def objects(i: int, slots: range) -> list[dict]:
        return [
            {
                "category": CATEGORIES[category[i][j]],
                "count": _COUNT_LABELS[count[i][j]],
                "colour": COLOURS[colour[i][j]] if colour[i][j] >= 0 else None,
            }
            for j in slots
            if present[i][j]
        ]

    return [
        {
            "image_id": image_id,
            "scene": SCENES[scene],
            "objects": objects(i, range(3)),
            "distractors": objects(i, range(3, 5)),
            "has_descriptor": has,
        }
        for i, (image_id, scene, has) in enumerate(
            zip(image_ids.tolist(), scenes.scene.tolist(), has_descriptor.tolist(), strict=True)
        )
    ]


def _check_int(value, name: str, minimum: int, error: type[Exception]) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise error(f"`{name}` must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"`{name}` must be at least {minimum}, got {value}")
    return int(value)


def generate(
    out_dir,
    n_images: int = 10_000,
    *,
    n_captions: int | None = None,
    seed: int = 0,
    overwrite: bool = False,
) -> dict:
    """Write the mini-COCO files into ``out_dir`` (created if needed).

    Writes `CAPTIONS_FILE`, `FEATURES_FILE` and `SCENES_FILE` (formats in the module
    docstring). Each file is written to a temporary file in ``out_dir`` and then renamed, so an
    interrupted run never leaves half a file. The same seed gives byte-identical files.

    Parameters
    ----------
    out_dir : path-like
        Destination folder.
    n_images : int, optional (default=10_000)
        Number of images, at least 10 (COCO: 82,783; see `COCO_SCALE`).
    n_captions : int, optional
        Number of captions, at least (and by default) ``5 * n_images``; each image gets 5,
        and the extra ones go to random images.
    seed : int, optional (default=0)
        Seed of the dataset (scenes, captions, ids, noise). The map from scenes to descriptors
        is fixed: it is the same for every seed.
    overwrite : bool, optional (default=False)
        Whether existing files may be replaced.

    Returns
    -------
    dict
        ``captions``, ``features``, ``scenes`` (the paths written), ``n_images``,
        ``n_captions``, ``n_without_descriptor`` (images in the captions file that have no
        descriptor, about 0.2% as in the real files) and ``seed``.

    Raises
    ------
    FileExistsError
        If one of the files exists and ``overwrite`` is False (nothing is written).
    ValueError, TypeError
        For a bad argument; the message names it.

    Examples
    --------
    With real data (shown, not run as a test)::

        generate(tmp_path, 1_000, seed=1)["n_without_descriptor"]
    2
    """
    n_images = _check_int(n_images, "n_images", 10, ValueError)
    if n_captions is None:
        n_captions = 5 * n_images
    n_captions = _check_int(n_captions, "n_captions", 5 * n_images, ValueError)
    seed = _check_int(seed, "seed", 0, TypeError)
    out_dir = Path(out_dir).expanduser()
    paths = {
        "captions": out_dir / CAPTIONS_FILE,
        "features": out_dir / FEATURES_FILE,
        "scenes": out_dir / SCENES_FILE,
    }
    existing = [p for p in paths.values() if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{existing[0]} already exists; pass overwrite=True to replace it")

    rng = np.random.default_rng(seed)
    scenes = _draw_scenes(rng, n_images)
    descriptors = _descriptors(scenes, rng)
    image_ids = _distinct_ids(rng, n_images, _IMAGE_ID_SPACE)
    has_descriptor = np.ones(n_images, dtype=bool)
    has_descriptor[rng.choice(n_images, _n_without_descriptor(n_images), replace=False)] = False
    per_image = 5 + np.bincount(rng.integers(0, n_images, n_captions - 5 * n_images),
                                minlength=n_images)  # fmt: skip
    caption_image = rng.permutation(np.repeat(np.arange(n_images), per_image))
    caption_ids = np.sort(_distinct_ids(rng, n_captions, _CAPTION_ID_SPACE))
    texts = _caption_texts(rng, scenes, caption_image)
    captions = {
        "info": _INFO,
        "images": _image_records(rng, image_ids),
        "licenses": _LICENSES,
        "annotations": [
            {"image_id": i, "id": k, "caption": text}
            for i, k, text in zip(
                image_ids[caption_image].tolist(), caption_ids.tolist(), texts, strict=True
            )
        ],
    }
    # Row views: pickle stores each as a (1, 512) array of its own.
    features = {
        i: descriptors[row : row + 1]
        for row, i in enumerate(image_ids.tolist())
        if has_descriptor[row]
    }
    sidecar = {
        "description": "The latent scene behind each image of the generated mini-COCO dataset "
        "(see capstone.minicoco): objects are named by captions, distractors are not.",
        "seed": seed,
        "images": _scene_records(scenes, image_ids, has_descriptor),
    }

    def write_json(doc: dict):
        return lambda f: f.write(json.dumps(doc, separators=(",", ":")).encode("utf-8"))

    atomic_write(paths["scenes"], write_json(sidecar), overwrite=overwrite)
    atomic_write(paths["features"], lambda f: pickle.dump(features, f, protocol=4),
                 overwrite=overwrite)  # fmt: skip
    atomic_write(paths["captions"], write_json(captions), overwrite=overwrite)
    return {
        **paths,
        "n_images": n_images,
        "n_captions": n_captions,
        "n_without_descriptor": n_images - len(features),
        "seed": seed,
    }
