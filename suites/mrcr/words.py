"""Vocabulary of the MRCR generator: writing formats, topics and word classes for the sentences
its synthetic assistant writes. Plain data; changing it changes every generated sample, so it is
covered by the generator's version string."""

FORMATS = (
    "poem", "haiku", "limerick", "sonnet", "short story", "essay", "blog post", "social media post",
    "riddle", "speech", "letter", "song", "news article", "diary entry", "product description",
    "movie review", "fable", "travel guide", "recipe", "podcast script",
)

TOPICS = (
    "tapirs", "rocks", "lighthouses", "glaciers", "accordions", "beekeeping", "bicycles", "volcanoes",
    "origami", "submarines", "cacti", "thunderstorms", "libraries", "owls", "sourdough", "comets",
    "lanterns", "otters", "deserts", "clocks", "marathons", "mushrooms", "tea ceremonies", "kites",
    "coral reefs", "trains", "chess", "fireflies", "windmills", "jellyfish", "cartography", "violins",
    "snowflakes", "pottery", "bridges", "hedgehogs", "astronauts", "orchards", "typewriters", "caves",
    "penguins", "gardens", "sailboats", "fossils", "markets", "wolves", "rainbows", "telescopes",
    "honey", "castles", "ferns", "robots", "harbors", "dragonflies", "quilts", "canyons", "pianos",
    "elephants", "bakeries", "satellites", "tides", "moss", "carnivals", "falcons", "bamboo",
    "meteorites", "vineyards", "octopuses", "umbrellas", "deserted islands", "tortoises", "candles",
    "mountains", "dolphins", "fountains", "puzzles", "autumn leaves", "salt marshes", "zebras",
    "geysers", "hot air balloons", "sand dunes", "beetles", "railway stations", "peacocks", "maps",
)

ADJECTIVES = (
    "quiet", "bright", "ancient", "restless", "golden", "hollow", "gentle", "crimson", "distant",
    "silver", "patient", "wild", "tender", "stubborn", "luminous", "weathered", "curious", "humble",
    "fragile", "vast", "hidden", "velvet", "bitter", "sweet", "sudden", "slow", "endless", "brittle",
    "amber", "dusty", "radiant", "solemn", "playful", "misty", "silent", "sturdy", "wandering", "pale",
    "fierce", "honest", "secret", "swift", "tangled", "warm", "cold", "narrow", "open", "lonely",
    "faithful", "restful", "jagged", "smooth", "shimmering", "heavy", "light", "careful", "clever",
    "broken", "healing", "forgotten", "familiar", "strange", "early", "late", "deep", "shallow",
)

NOUNS = (
    "river", "morning", "window", "stone", "harbor", "meadow", "shadow", "lantern", "forest", "valley",
    "voice", "garden", "season", "thread", "bridge", "mirror", "horizon", "ember", "orchard", "path",
    "whisper", "storm", "village", "compass", "feather", "candle", "tide", "field", "story", "song",
    "road", "city", "sky", "wave", "door", "hill", "letter", "promise", "journey", "island", "kitchen",
    "market", "tower", "cloud", "ocean", "evening", "winter", "summer", "memory", "circle", "echo",
    "riverbank", "workshop", "notebook", "chorus", "rooftop", "coastline", "canvas", "engine", "pocket",
    "shelf", "ladder", "anchor", "blanket", "signal", "corner", "fence", "spark", "rhythm", "pattern",
)

VERBS = (
    "carries", "remembers", "follows", "gathers", "shelters", "answers", "awakens", "measures",
    "crosses", "guards", "borrows", "paints", "teaches", "holds", "finds", "hides", "lifts", "mends",
    "shapes", "greets", "circles", "outlasts", "softens", "invites", "echoes", "reveals", "quiets",
    "balances", "scatters", "collects", "steadies", "welcomes", "traces", "unfolds", "tempers",
    "brightens", "watches", "keeps", "sends", "turns",
)

ADVERBS = (
    "slowly", "gently", "always", "quietly", "boldly", "softly", "rarely", "patiently", "suddenly",
    "gladly", "carefully", "freely", "barely", "deeply", "warmly", "proudly", "calmly", "nearly",
)

PREPOSITIONS = ("across", "beneath", "beside", "beyond", "through", "over", "under", "toward", "around",
                "along", "within", "against", "before", "after", "near")

OPENERS = ("In the end,", "At dawn,", "Somewhere,", "Every year,", "Long ago,", "Tonight,", "Still,",
           "For a while,", "Even now,", "By noon,", "Once,", "Later,", "Meanwhile,", "Above all,")

NAMES = ("Mara", "Tobin", "Ines", "Kofi", "Lena", "Arjun", "Sofia", "Eli", "Noor", "Bram", "Yuki",
         "Ada", "Felix", "Rosa", "Ilya", "June")
