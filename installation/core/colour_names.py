"""Colour names in the languages captions are shown in: the vision stage names a scene's
colours in English (for the prompt), and a caption in Korean, Japanese, Chinese, Spanish,
French or German shows them in its own words. Shared by the vision stage and the show control,
so it lives here."""

from __future__ import annotations

# The colour names in the languages captions are shown in, one row per colour. Forms chosen to
# read naturally in a caption's list ("빨간색과 파란색", "in Rot und Blau", "en rojo y azul"):
# Korean: the noun with -색 (빨간색, not the bare 빨강 a child's colour chart uses, nor the
# adjective 빨간 that needs a noun after it); Japanese: the everyday nouns (赤, 青, 茶色);
# Chinese: the nouns with 色, in simplified characters (for every zh tag, zh-TW too); German:
# nouns, capitalised; Spanish and French: the masculine singular nouns. Teal is the dark
# blue-green, cyan the light one.
LANGUAGES = ("ko", "ja", "zh", "es", "fr", "de")
COLOUR_NAMES: dict[str, tuple[str, str, str, str, str, str]] = {
    #          ko             ja          zh        es              fr             de
    "black": ("검은색", "黒", "黑色", "negro", "noir", "Schwarz"),
    "white": ("흰색", "白", "白色", "blanco", "blanc", "Weiß"),
    "grey": ("회색", "灰色", "灰色", "gris", "gris", "Grau"),
    "brown": ("갈색", "茶色", "棕色", "marrón", "marron", "Braun"),
    "beige": ("베이지색", "ベージュ", "米色", "beige", "beige", "Beige"),
    "pink": ("분홍색", "ピンク", "粉色", "rosa", "rose", "Rosa"),
    "purple": ("보라색", "紫", "紫色", "morado", "violet", "Lila"),
    "red": ("빨간색", "赤", "红色", "rojo", "rouge", "Rot"),
    "orange": ("주황색", "オレンジ", "橙色", "naranja", "orange", "Orange"),
    "yellow": ("노란색", "黄色", "黄色", "amarillo", "jaune", "Gelb"),
    "green": ("초록색", "緑", "绿色", "verde", "vert", "Grün"),
    "teal": ("짙은 청록색", "青緑", "蓝绿色", "verde azulado", "bleu canard", "Petrol"),
    "cyan": ("청록색", "水色", "青色", "turquesa", "turquoise", "Türkis"),
    "blue": ("파란색", "青", "蓝色", "azul", "bleu", "Blau"),
}


def colour_name(name: str, language: str) -> str:
    """`name` (one of COLOURS) in `language` (an ISO 639-1 code such as "ko", or a tag such as
    "ko-KR" or "zh_CN"). English, and any language or name the table lacks, gives `name` back
    unchanged: a caption in an unlisted language still shows a colour word."""
    lang = language.strip().lower().replace("_", "-").split("-")[0]
    row = COLOUR_NAMES.get(name)
    if row is None or lang not in LANGUAGES:
        return name
    return row[LANGUAGES.index(lang)]
