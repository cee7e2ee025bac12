"""Sensible choices for whatever a request leaves open (offline provider only)."""

NAMES = {
    "girl": ["Maya", "Lina", "Zoe", "Amara", "Ivy", "Nora", "Rosa", "Hana"],
    "boy": ["Leo", "Omar", "Theo", "Kai", "Sami", "Jonah", "Ravi", "Finn"],
    "child": ["Robin", "Sky", "Ari", "Jules", "Remy", "Sasha"],
}
ANIMALS = ["fox", "owl", "rabbit", "turtle", "bear cub", "hedgehog", "otter", "elephant"]
COLORS = ["orange", "blue", "green", "yellow", "purple", "red", "pink", "teal"]
TOYS = ["wooden train", "kite", "stuffed bunny", "red ball", "paper boat", "toy drum"]
PERSONALITIES = ["curious", "kind", "shy", "playful", "brave", "thoughtful", "giggly", "gentle"]
FEARS = ["the dark", "thunder", "big dogs", "being alone", "deep water", "loud noises"]
VALUES = ["sharing", "kindness", "patience", "honesty", "courage", "friendship", "gratitude"]
SETTINGS = [
    "a quiet forest with tall pine trees",
    "a seaside village with colorful boats",
    "a sunny meadow full of wildflowers",
    "a snowy mountain cabin",
    "a busy city park with a pond",
    "a cozy farm with a red barn",
]
TONES = ["warm and gentle", "playful", "cozy and calm", "adventurous but safe", "whimsical"]
HEIGHTS = ["small for their age", "average height", "tall for their age"]
BUILDS = ["slim", "sturdy", "round-cheeked"]
SKIN_TONES = ["light", "olive", "light brown", "brown", "dark brown", "freckled peach"]
HAIR_COLORS = ["black", "brown", "auburn", "blond", "red", "dark brown"]
HAIR_STYLES = ["curly bob", "two braids", "short and messy", "ponytail", "shoulder-length waves"]
EYE_COLORS = ["brown", "hazel", "green", "blue", "dark brown"]
ACCESSORIES = ["round glasses", "a star hairclip", "a little backpack", "a knitted scarf"]
TOPS = ["striped sweater", "yellow raincoat", "t-shirt with a star", "hooded jacket"]
BOTTOMS = ["blue overalls", "green shorts", "corduroy trousers", "a twirly skirt"]
SHOES = ["red boots", "sneakers", "sandals", "rain boots"]
ART_STYLES = [
    "soft watercolor picture-book illustration",
    "gouache storybook painting with visible brush texture",
    "colored-pencil illustration with gentle shading",
    "cut-paper collage style",
]
LIGHTING = ["warm golden-hour light", "soft morning light", "gentle moonlight", "bright daylight"]
ATMOSPHERES = ["cozy and safe", "dreamy and calm", "cheerful and lively", "quiet wonder"]
COMPOSITION = [
    "child at eye level, rule of thirds, uncluttered background",
    "wide shot with the child small in a big friendly world",
    "medium shot, characters centered, soft vignette",
]
OPENINGS = [
    "{name} lived near {setting}, and loved nothing more than {possessive} {toy}.",
    "Every morning, {name} ran out to {setting} with {possessive} {toy} tucked under one arm.",
    "In {setting}, there was a {personality} {age}-year-old called {name}.",
]
FEAR_SCENES = [
    "One day, {name} noticed something that made {possessive} tummy flutter: {fear}.",
    "When evening came, {name} felt small, because {name} was afraid of {fear}.",
    "{name} stopped. Just ahead was {fear}, and {name} did not want to go on.",
]
HELP_SCENES = [
    '{side} came close and said, "We can do this together."',
    "Then {side_lower} appeared, blinking kindly, and showed {name} a little trick.",
    "{side} sat down beside {name} and shared a warm, calm breath.",
]
VALUE_SCENES = [
    "{name} remembered what {value} means and tried it, one small step at a time.",
    "Together they found that {value} made the {animal} smile, and {name} smiled too.",
    "{name} offered the {toy} to a new friend, and learned how good {value} feels.",
]
MIDDLE_SCENES = [
    "They followed a path of {color} leaves and counted them, one, two, three.",
    "A {color} butterfly danced ahead, and {name} laughed and followed it.",
    "They built a tiny house for the {animal} out of sticks and moss.",
]
ENDINGS = [
    "That night {name} fell asleep smiling, {possessive} {toy} close and {possessive} heart full.",
    "Back home, {name} told everyone about {value}, and {fear} did not seem so big anymore.",
    "{name} waved goodbye to the {animal}, feeling braver than ever before.",
]
