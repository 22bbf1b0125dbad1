"""Real text layers: one-page PDFs written the way producers write them, read back with pypdf as the
pipeline reads them, for `bench/text_layer.py` and `tests/test_text_layer.py`.

Every garbled page here renders correctly (checked with poppler's pdftoppm when the builders were
written): what is wrong is only what a text extractor can get out of it, as with the PDFs of pypdf
issue #375. The ways a text layer goes wrong, each built for real:

- `no-tounicode`: fpdf2's Type0 font with its /ToUnicode removed. fpdf2 numbers the glyphs in order
  of use, so pypdf prints control characters for the first 31 glyphs, then ASCII punctuation.
- `gid`: a Type0 Identity-H font whose codes are glyph ids (as Word and many printer drivers write
  them), without /ToUnicode: Latin letters come out shifted by 29 ("Hello" as "+HOOR"), Cyrillic
  as Greek, spaces and digits as control characters.
- `custom-codes`: a simple TrueType subset, codes given from 0x21 in order of use, no /Encoding:
  ASCII symbol soup ("!\"#$%&").
- `glyph-names`: the same font with /Differences naming its glyphs /g4 /g5 ...: pypdf prints the
  names themselves ("/g4/g5/g6").
- `cp1251`: an old "Cyr" font, Cyrillic glyphs at the cp1251 codes, declared /WinAnsiEncoding:
  Latin-1 mojibake ("Ïðèâåò").
- `pua`, `fffd`: a /ToUnicode that maps every glyph into the private use area, or to U+FFFD.
- `missing-font`: Tf names a font the page's resources lack: pypdf prints U+FFFD for every byte.
- `scan`: a page image (Pillow's PDF writer, fpdf2, strips, an inline image) with no text or only a
  footer or stamp over it.

Good pages are fpdf2's (DejaVu TrueType fonts with their /ToUnicode, or the standard Helvetica in
WinAnsiEncoding) and the same hand-built fonts as above with a correct /ToUnicode.
"""

from __future__ import annotations

import io
import textwrap
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from fontTools import subset  # type: ignore[import-untyped]  # fpdf2's dependency, with no type hints
from fontTools.ttLib import TTFont  # type: ignore[import-untyped]
from fontTools.ttLib.tables._c_m_a_p import CmapSubtable  # type: ignore[import-untyped]
from fpdf import FPDF
from PIL import Image, ImageDraw
from pypdf import PdfReader, PdfWriter

from embedding_pipeline.stages.documents.text_layer import page_shows_image

FONT_DIRS = (
    Path("/usr/share/fonts/truetype/dejavu"),
    Path("/usr/share/fonts/dejavu"),
    Path("/usr/share/fonts"),
)


@dataclass(frozen=True, slots=True)
class Sample:
    group: str  # how the page was made: "good", "no-tounicode", "gid", ..., "scan"
    name: str  # what it says: "prose-ru", "numbers-only", ...
    needs_ocr: bool  # the label: True when the page's text can only be had by OCR
    make: Callable[[], bytes]  # writes the one-page PDF (each takes 10-200 ms: built when asked)


@dataclass(frozen=True, slots=True)
class PageRead:
    text: str
    shows_image: bool


def read_page(pdf: bytes) -> PageRead:
    """What the pipeline's PDF reader sees of the first page: pypdf's extract_text, stripped, as
    `pdf_pages` reads it, and whether the page shows an image (asked after extract_text, as its
    docstring says, so that an inline image is seen in the contents pypdf has already inflated)."""
    page = PdfReader(io.BytesIO(pdf)).pages[0]
    text = (page.extract_text() or "").strip()
    return PageRead(text, page_shows_image(page))


@cache
def font_path(name: str = "DejaVuSans.ttf") -> Path:
    """A DejaVu font of the system's (Debian's fonts-dejavu-core, on every machine of the project's)."""
    for folder in FONT_DIRS:
        for found in sorted(folder.rglob(name)) if folder.is_dir() else ():
            return found
    raise FileNotFoundError(
        f"{name} not found under {', '.join(map(str, FONT_DIRS))}: apt-get install fonts-dejavu-core"
    )


# --- Good pages: fpdf2 ------------------------------------------------------------------------------


def fpdf_page(
    blocks: list[str],
    *,
    font: str = "DejaVuSans.ttf",
    size: float = 11,
    image: Image.Image | None = None,
    invisible_text: bool = False,
) -> bytes:
    """One A4 page: each block a paragraph (a block starting with "|" is a table, rows by line, cells
    by "|"). `font` is a DejaVu file name, or "Helvetica" (a standard font: WinAnsiEncoding, no
    embedding). `image` is drawn over the whole page first, as a scanner's page image."""
    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(auto=False)
    if font == "Helvetica":
        family = "Helvetica"
    else:
        family = "body"
        pdf.add_font(family, fname=str(font_path(font)))
        if any(block.startswith("|") for block in blocks):  # tables' headings are bold
            pdf.add_font(family, style="B", fname=str(font_path(font.replace(".ttf", "-Bold.ttf"))))
    pdf.add_page()
    if image is not None:
        pdf.image(image, x=0, y=0, w=pdf.w, h=pdf.h)
    if invisible_text:  # a searchable scan: the OCR's words, unpainted, over the image
        pdf.text_mode = "INVISIBLE"
    pdf.set_font(family, size=size)
    for block in blocks:
        if block.startswith("|"):
            rows = [
                [cell.strip() for cell in line.strip().strip("|").split("|")] for line in block.splitlines()
            ]
            with pdf.table(text_align="LEFT", line_height=size * 0.5) as table:
                for cells in rows:
                    row = table.row()
                    for cell in cells:
                        row.cell(cell)
        else:
            pdf.multi_cell(0, size * 0.5, block, align="L")
        pdf.ln(size * 0.3)
    return bytes(pdf.output())


def strip_to_unicode(pdf: bytes) -> bytes:
    """The same PDF with every font's /ToUnicode removed (the way a font without one is embedded)."""
    writer = PdfWriter(clone_from=io.BytesIO(pdf))
    for page in writer.pages:
        fonts: Any = page["/Resources"]["/Font"]  # type: ignore[index]
        for font in fonts.values():
            font.get_object().pop("/ToUnicode", None)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def drop_font_resources(pdf: bytes) -> bytes:
    """The same PDF with the page's /Font resources gone: its Tf operators name fonts that don't exist."""
    writer = PdfWriter(clone_from=io.BytesIO(pdf))
    for page in writer.pages:
        resources: Any = page["/Resources"]
        resources.pop("/Font", None)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def scanned_image(width: int = 1240, height: int = 1754) -> Image.Image:
    """A 150 dpi A4 page image: grey bars where the lines of text would be."""
    image = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(image)
    for top in range(height // 12, height - height // 12, height // 60):
        draw.rectangle(
            (width // 10, top, width - width // 10 - (top * 7) % (width // 4), top + height // 120), fill=60
        )
    return image


def pillow_pdf(image: Image.Image) -> bytes:
    """Pillow's own PDF writer: one page, one image XObject, no text (a scanner's output)."""
    out = io.BytesIO()
    image.save(out, format="PDF", resolution=150)
    return out.getvalue()


# --- Hand-built fonts: what fpdf2 doesn't write -----------------------------------------------------


class RawPdf:
    """A minimal PDF writer: numbered objects, one page, a classic xref table."""

    def __init__(self) -> None:
        self.objects: list[bytes] = []

    def add(self, body: str | bytes) -> int:
        self.objects.append(body.encode("latin-1") if isinstance(body, str) else body)
        return len(self.objects)

    def stream(self, data: bytes, entries: str = "") -> int:
        packed = zlib.compress(data)
        head = f"<< /Length {len(packed)} /Filter /FlateDecode {entries} >>\nstream\n".encode()
        return self.add(head + packed + b"\nendstream")

    def page(self, content: bytes, fonts: dict[str, int], xobjects: dict[str, int] | None = None) -> bytes:
        """The document: one A4 page drawing `content` with these resources."""
        contents = self.stream(content)
        font_entries = " ".join(f"/{name} {number} 0 R" for name, number in fonts.items())
        image_entries = " ".join(f"/{name} {number} 0 R" for name, number in (xobjects or {}).items())
        pages = len(self.objects) + 2
        page = self.add(
            f"<< /Type /Page /Parent {pages} 0 R /MediaBox [0 0 595 842] /Contents {contents} 0 R "
            f"/Resources << /Font << {font_entries} >> /XObject << {image_entries} >> >> >>"
        )
        self.add(f"<< /Type /Pages /Kids [{page} 0 R] /Count 1 >>")
        root = self.add(f"<< /Type /Catalog /Pages {pages} 0 R >>")
        out = io.BytesIO()
        out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
        offsets = []
        for number, body in enumerate(self.objects, start=1):
            offsets.append(out.tell())
            out.write(b"%d 0 obj\n%b\nendobj\n" % (number, body))
        xref = out.tell()
        out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(self.objects) + 1))
        out.writelines(b"%010d 00000 n \n" % offset for offset in offsets)
        out.write(
            b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(offsets) + 1, root, xref)
        )
        return out.getvalue()


Encode = Callable[[str], bytes]  # a line of text → the bytes of its show-text operator


def text_content(text: str, encode: Encode, *, size: float = 11, width: int = 85, top: float = 790) -> bytes:
    """A content stream showing `text` line by line, wrapped at `width` characters."""
    lines = [line for paragraph in text.split("\n") for line in textwrap.wrap(paragraph, width) or [""]]
    ops = [f"BT /F1 {size} Tf {size * 1.35:.1f} TL 56 {top} Td".encode()]
    ops += [b"<%b> Tj T*" % encode(line).hex().encode() for line in lines]
    ops.append(b"ET")
    return b"\n".join(ops)


@cache
def _font_file(name: str) -> bytes:
    return font_path(name).read_bytes()


def _subset(text: str, *, retain_gids: bool) -> Any:  # a fontTools TTFont (fontTools has no type hints)
    font = TTFont(io.BytesIO(_font_file("DejaVuSans.ttf")))
    options = subset.Options()
    options.retain_gids = retain_gids
    options.notdef_outline = True
    options.drop_tables += ["FFTM"]
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes={ord(char) for char in text} | {ord(" ")})
    subsetter.subset(font)
    return font


def _embed(pdf: RawPdf, font: Any, *, name: str, flags: int) -> int:
    """The font program as /FontFile2 and its /FontDescriptor."""
    out = io.BytesIO()
    font.save(out)
    program = pdf.stream(out.getvalue(), f"/Length1 {len(out.getvalue())}")
    scale = 1000 / font["head"].unitsPerEm
    head, hhea = font["head"], font["hhea"]
    box = " ".join(str(int(v * scale)) for v in (head.xMin, head.yMin, head.xMax, head.yMax))
    return pdf.add(
        f"<< /Type /FontDescriptor /FontName /{name} /Flags {flags} /FontBBox [{box}] /ItalicAngle 0 "
        f"/Ascent {int(hhea.ascent * scale)} /Descent {int(hhea.descent * scale)} /CapHeight 729 /StemV 87 "
        f"/FontFile2 {program} 0 R >>"
    )


def _width(font: Any, char: str) -> int:
    glyph = font.getBestCmap().get(ord(char), ".notdef")
    return int(font["hmtx"][glyph][0] * 1000 / font["head"].unitsPerEm)


def _to_unicode_cmap(codes: dict[str, int], target: Callable[[str], str], code_bytes: int) -> bytes:
    digits = 2 * code_bytes
    pairs = "\n".join(f"<{code:0{digits}X}> <{target(char)}>" for char, code in codes.items())
    return (
        "/CIDInit /ProcSet findresource begin 12 dict begin begincmap /CMapName /Adobe-Identity-UCS def "
        f"/CMapType 2 def 1 begincodespacerange <{'0' * digits}> <{'F' * digits}> endcodespacerange\n"
        f"{len(codes)} beginbfchar\n{pairs}\nendbfchar\nendcmap "
        "CMapName currentdict /CMap defineresource pop end end"
    ).encode()


def utf16(char: str) -> str:
    """A character as a /ToUnicode target: UTF-16BE hex."""
    return char.encode("utf-16-be").hex().upper()


def gid_font(pdf: RawPdf, text: str, to_unicode: Callable[[str], str] | None = None) -> Encode:
    """Type0 /Identity-H, CIDFontType2 with /CIDToGIDMap /Identity: each code is the glyph's id in
    DejaVuSans (subset keeping the ids), as Word writes its fonts. `to_unicode` (a character → its
    /ToUnicode target, hex) or none at all."""
    font = _subset(text, retain_gids=True)
    cmap = font.getBestCmap()
    codes = {char: font.getGlyphID(cmap[ord(char)]) for char in set(text) | {" "} if ord(char) in cmap}
    widths = " ".join(
        f"{gid} [{_width(font, char)}]" for char, gid in sorted(codes.items(), key=lambda kv: kv[1])
    )
    descriptor = _embed(pdf, font, name="AAAAAA+DejaVuSans", flags=32)
    cid_font = pdf.add(
        "<< /Type /Font /Subtype /CIDFontType2 /BaseFont /AAAAAA+DejaVuSans "
        "/CIDSystemInfo << /Registry (Adobe) /Ordering (Identity) /Supplement 0 >> "
        f" /FontDescriptor {descriptor} 0 R /CIDToGIDMap /Identity "
        f"/W [{widths}] >>"
    )
    unicode_map = (
        "" if to_unicode is None else f" /ToUnicode {pdf.stream(_to_unicode_cmap(codes, to_unicode, 2))} 0 R"
    )
    pdf.add(
        "<< /Type /Font /Subtype /Type0 /BaseFont /AAAAAA+DejaVuSans /Encoding /Identity-H "
        f"/DescendantFonts [{cid_font} 0 R]{unicode_map} >>"
    )
    return lambda line: b"".join(codes[char].to_bytes(2, "big") for char in line if char in codes)


def custom_code_font(
    pdf: RawPdf, text: str, *, glyph_names: bool = False, to_unicode: bool = False
) -> Encode:
    """A simple TrueType subset, symbolic, whose codes are given from 0x21 in order of first use (the
    space keeps 0x20): its cmap (3,0) maps 0xF000 + code to the glyph, as subsetting producers write it.
    No /Encoding, or (`glyph_names`) /Differences naming the glyphs /g4, /g5, ...; a /ToUnicode or none."""
    codes = {" ": 0x20}
    for char in text:
        codes.setdefault(char, 0x20 + len(codes))
    if len(codes) > 224:
        raise ValueError(f"{len(codes)} distinct characters: a simple font holds 224")
    font = _subset(text, retain_gids=False)
    glyphs = font.getBestCmap()
    tables = []
    for platform, platform_encoding, base, fmt in ((1, 0, 0, 6), (3, 0, 0xF000, 4)):
        table = CmapSubtable.newSubtable(fmt)
        table.platformID, table.platEncID, table.language = platform, platform_encoding, 0
        table.cmap = {base + code: glyphs[ord(char)] for char, code in codes.items() if ord(char) in glyphs}
        tables.append(table)
    last = 0x20 + len(codes) - 1
    widths = " ".join(str(_width(font, char)) for char in codes)  # before the cmap is replaced
    font["cmap"].tables = tables
    descriptor = _embed(pdf, font, name="BAAAAA+DejaVuSans", flags=4)
    names = " ".join(f"/g{code - 29}" for code in range(0x21, last + 1))
    encoding = f" /Encoding << /Type /Encoding /Differences [33 {names}] >>" if glyph_names else ""
    unicode_map = f" /ToUnicode {pdf.stream(_to_unicode_cmap(codes, utf16, 1))} 0 R" if to_unicode else ""
    pdf.add(
        f"<< /Type /Font /Subtype /TrueType /BaseFont /BAAAAA+DejaVuSans /FirstChar 32 /LastChar {last} "
        f"/Widths [{widths}] /FontDescriptor {descriptor} 0 R{encoding}{unicode_map} >>"
    )
    return lambda line: bytes(codes[char] for char in line)


def cp1251_font(pdf: RawPdf, text: str) -> Encode:
    """An old Cyrillic "Cyr" TrueType font: its glyphs sit at the cp1251 codes, and the PDF declares
    /WinAnsiEncoding (cp1252). Viewers draw Cyrillic; the text extracts as Latin-1 letters."""
    font = _subset(text, retain_gids=False)
    glyphs = font.getBestCmap()
    used = {char for char in text if ord(char) in glyphs} | {" "}
    table = CmapSubtable.newSubtable(4)
    table.platformID, table.platEncID, table.language = 3, 1, 0
    table.cmap = {ord(char.encode("cp1251").decode("cp1252")): glyphs[ord(char)] for char in used}
    by_code = {char.encode("cp1251")[0]: char for char in used}
    widths = " ".join(str(_width(font, by_code[code])) if code in by_code else "0" for code in range(32, 256))
    font["cmap"].tables = [table]  # after the widths, which look glyphs up by Unicode
    descriptor = _embed(pdf, font, name="CAAAAA+TimesET", flags=32)
    pdf.add(
        "<< /Type /Font /Subtype /TrueType /BaseFont /CAAAAA+TimesET /FirstChar 32 /LastChar 255 "
        f"/Widths [{widths}] /Encoding /WinAnsiEncoding /FontDescriptor {descriptor} 0 R >>"
    )
    return lambda line: line.encode("cp1251")


def hand_built_page(text: str, make_font: Callable[[RawPdf, str], Encode]) -> bytes:
    pdf = RawPdf()
    encode = make_font(pdf, text)
    font = len(pdf.objects)  # each builder adds its font dictionary last
    return pdf.page(text_content(text, encode), {"F1": font})


def image_xobject(pdf: RawPdf, image: Image.Image) -> int:
    gray = image.convert("L")
    return pdf.stream(
        gray.tobytes(),
        f"/Type /XObject /Subtype /Image /Width {gray.width} /Height {gray.height} /ColorSpace /DeviceGray "
        "/BitsPerComponent 8",
    )


def strips_scan(footer: str, strips: int = 8) -> bytes:
    """A scan stored as horizontal strips, one image XObject each (as some scanners write pages), and a
    footer in Helvetica."""
    image = scanned_image()
    pdf = RawPdf()
    font = pdf.add("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    band = image.height // strips
    names, ops = {}, []
    for index in range(strips):
        names[f"Im{index}"] = image_xobject(
            pdf, image.crop((0, index * band, image.width, (index + 1) * band))
        )
        ops.append(
            f"q 595 0 0 {842 / strips:.2f} 0 {842 - (index + 1) * 842 / strips:.2f} cm "
            f"/Im{index} Do Q".encode()
        )
    ops.append(b"BT /F1 9 Tf 270 20 Td (%b) Tj ET" % footer.encode("cp1252"))
    return pdf.page(b"\n".join(ops), {"F1": font}, names)


def form_scan(footer: str) -> bytes:
    """A page image inside a Form XObject (as some scanning software wraps it), and a footer."""
    pdf = RawPdf()
    font = pdf.add("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    image = image_xobject(pdf, scanned_image())
    form = pdf.stream(
        b"q 595 0 0 842 0 0 cm /Scan Do Q",
        "/Type /XObject /Subtype /Form /BBox [0 0 595 842] "
        f"/Resources << /XObject << /Scan {image} 0 R >> >>",
    )
    content = b"/Page Do\nBT /F1 9 Tf 270 20 Td (%b) Tj ET" % footer.encode("cp1252")
    return pdf.page(content, {"F1": font}, {"Page": form})


def inline_image_scan(footer: str) -> bytes:
    """A page image written inline (BI ... ID ... EI), 1 bit per pixel, with a footer."""
    image = scanned_image().convert("1")
    pdf = RawPdf()
    font = pdf.add("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    data = zlib.compress(image.tobytes()).hex().encode() + b">"  # hex: the data can't hold "EI"
    content = (
        b"q 595 0 0 842 0 0 cm\nBI /W %d /H %d /CS /G /BPC 1 /F [/AHx /Fl] ID\n%b\nEI Q\n"
        b"BT /F1 9 Tf 270 20 Td (%b) Tj ET" % (image.width, image.height, data, footer.encode("cp1252"))
    )
    return pdf.page(content, {"F1": font})


# --- What the pages say -----------------------------------------------------------------------------

PROSE_RU = (
    "Годовой отчёт за 2024 год. В отчётном периоде компания продолжила развитие облачных сервисов и "
    "увеличила выручку на 18% по сравнению с предыдущим годом. Основной рост обеспечили сегменты "
    "хранения данных и машинного обучения: число корпоративных клиентов выросло до 4 200, а средний чек "
    "— на 11%. Совет директоров рекомендовал направить на выплату дивидендов половину чистой прибыли.\n"
    "Операционные расходы выросли медленнее выручки благодаря автоматизации поддержки и переходу на "
    "собственные серверы. Капитальные вложения составили 2,3 млрд рублей, из них 60% пришлось на "
    "новый центр обработки данных во Владимирской области, который будет введён в эксплуатацию в третьем "
    "квартале следующего года.\n"
    "В следующем году компания планирует выйти на рынки Казахстана и Узбекистана, расширить линейку "
    "сервисов для разработчиков и сократить время ответа службы поддержки до пятнадцати минут."
)
LEGAL_RU = (
    "1. Предмет договора\n"
    "1.1. Исполнитель обязуется по заданию Заказчика оказать услуги по хранению и обработке данных, а "
    "Заказчик обязуется принять и оплатить эти услуги в порядке и сроки, предусмотренные настоящим "
    "договором.\n"
    "1.2. Перечень услуг, их объём и стоимость определяются в Приложении № 1, являющемся неотъемлемой "
    "частью договора.\n"
    "2. Права и обязанности сторон\n"
    "2.1. Исполнитель вправе привлекать третьих лиц для оказания услуг, оставаясь ответственным перед "
    "Заказчиком за их действия.\n"
    "2.2. Заказчик обязан своевременно предоставлять сведения, необходимые для оказания услуг, и "
    "уведомлять Исполнителя об изменении реквизитов в течение 5 (пяти) рабочих дней.\n"
    "3. Ответственность сторон\n"
    "3.1. За просрочку оплаты Исполнитель вправе потребовать уплаты неустойки в размере 0,1% от "
    "неоплаченной суммы за каждый день просрочки, но не более 10% от стоимости услуг."
)
TECH_RU = (
    "Конвейер читает документ из бакета, делит его на фрагменты по 500 токенов с перекрытием 50 "
    "токенов и отправляет их в сервис эмбеддингов пакетами по 32 фрагмента. Если сервис отвечает "
    "кодом 429, запрос повторяется с экспоненциальной задержкой, но не дольше 60 секунд.\n"
    "Для PDF-файлов текст извлекается постранично; страницы без текстового слоя (сканы) отправляются на "
    "распознавание. Результаты записываются в формате JSON Lines: одна строка на фрагмент, с полями "
    "id, text, vector и metadata."
)
PROSE_EN = (
    "Annual report 2024. During the year the company kept growing its cloud services and increased "
    "revenue by 18% compared with the previous year. Storage and machine learning drove most of the "
    "growth: the number of corporate customers rose to 4,200 and the average bill by 11%. The board "
    "recommends paying out half of the net profit as dividends.\n"
    "Operating expenses grew more slowly than revenue thanks to support automation and the move to our "
    "own servers. Capital expenditure was 2.3 billion roubles, 60% of which went to the new data centre, "
    "due to open in the third quarter of next year.\n"
    "Next year the company plans to enter new markets, broaden its developer services and bring the "
    "support team's first response time down to fifteen minutes."
)
TECH_EN = (
    "The pipeline reads a document from the bucket, splits it into chunks of 500 tokens with an overlap "
    "of 50 tokens, and sends them to the embeddings service in batches of 32. When the service answers "
    "429, the request is retried with exponential backoff for at most 60 seconds.\n"
    "PDF files are read page by page; pages without a text layer (scans) are sent to OCR. Results are "
    "written as JSON Lines: one line per chunk, with the fields id, text, vector and metadata."
)
LEGAL_EN = (
    "12. LIMITATION OF LIABILITY. IN NO EVENT SHALL EITHER PARTY BE LIABLE FOR ANY INDIRECT, "
    "INCIDENTAL, SPECIAL OR CONSEQUENTIAL DAMAGES, INCLUDING LOSS OF PROFITS, ARISING OUT OF THIS "
    "AGREEMENT. 12.1 The total liability of the Provider shall not exceed the fees paid by the Customer "
    "in the twelve (12) months preceding the claim. 12.2 Nothing in this Section limits liability for "
    "fraud, gross negligence or wilful misconduct."
)
MIXED = (
    "Сервис совместим с OpenAI Embeddings API: достаточно указать base_url и API-ключ. Модель "
    "text-search-doc/latest возвращает векторы размерности 256; для запросов используйте "
    "text-search-query/latest. Ограничения: не более 10 запросов в секунду на каталог (folder), "
    "не более 2 048 токенов на текст. Подробнее — в разделе «Quotas and limits» документации."
)
EUROPEAN = (
    "Le rapport annuel présente les résultats de l'exercice écoulé : le chiffre d'affaires a progressé de "
    "18 % grâce à la croissance des services de stockage. Der Jahresbericht zeigt, dass die Umsätze "
    "gestiegen sind; die Geschäftsführung schlägt eine Dividende vor. El informe anual muestra que la "
    "facturación creció un 18 % y que la compañía abrirá un nuevo centro de datos. A vállalat árbevétele "
    "18 százalékkal nőtt, és az igazgatóság osztalékfizetést javasol. Ao longo do ano, a empresa também "
    "reforçou a sua posição no mercado português e não prevê alterações na política de dividendos."
)
CYRILLIC_EXTENDED = (
    "Қазақстан Республикасының заңнамасына сәйкес деректер елдің аумағында сақталуы тиіс. "
    "Україна: їжак, ґанок, євро, Київ — перевірка літер. Беларусь: ўзровень, дзяржаўны, інфармацыя."
)
NUMBERS_FIN = (
    "| Показатель | 2022 | 2023 | 2024 | Изм., % |\n"
    "| Выручка | 12 345 678 | 14 112 905 | 16 653 228 | 18,0 |\n"
    "| Себестоимость | 7 210 004 | 8 001 377 | 9 102 561 | 13,8 |\n"
    "| Валовая прибыль | 5 135 674 | 6 111 528 | 7 550 667 | 23,5 |\n"
    "| EBITDA | 3 004 118 | 3 612 940 | 4 480 213 | 24,0 |\n"
    "| Чистая прибыль | 1 702 336 | 2 115 004 | 2 690 117 | 27,2 |\n"
    "| Капвложения | 1 120 450 | 1 870 001 | 2 300 000 | 23,0 |"
)
NUMBERS_ONLY = "\n".join(
    "  ".join(f"{(row * 7919 + column * 104729) % 1000000 / 100:>10,.2f}" for column in range(6))
    for row in range(40)
)
PRICE_LIST = (
    "| Артикул | Наименование | Ед. | Цена, ₽ |\n"
    "| НЦ-4417 | Насос центробежный | шт. | 48 900,00 |\n"
    "| НЦ-4418 | Насос центробежный, нерж. | шт. | 61 250,00 |\n"
    "| ТР-0212/А | Труба 57×3,5 ГОСТ 8732-78 | м | 1 214,50 |\n"
    "| ФЛ-16-050 | Фланец Ду50 Ру16 | шт. | 986,00 |\n"
    '| КШ-25-40 | Кран шаровой 1" | шт. | 2 430,00 |\n'
    "| ЭД-7,5/3000 | Электродвигатель 7,5 кВт | шт. | 39 870,00 |\n"
    "| ПР-12×1,5 | Прокладка паронитовая | уп. | 312,40 |"
)
INVOICE = (
    "Счёт на оплату № 2024-0917 от 17.09.2024\n"
    "Поставщик: ООО «Облачные решения», ИНН 7707083893, КПП 770701001\n"
    "Покупатель: АО «Северсталь-Инфо», ИНН 3528000597\n"
    "1. Хранение данных, 12 000 ГБ × 30 дн. — 86 400,00\n"
    "2. Обработка запросов, 1 250 000 шт. — 18 750,00\n"
    "3. Техническая поддержка (тариф «Бизнес») — 25 000,00\n"
    "Итого: 130 150,00\nНДС 20%: 26 030,00\nВсего к оплате: 156 180,00 (сто пятьдесят шесть тысяч сто "
    "восемьдесят рублей 00 копеек)\nОплатить до 01.10.2024."
)
INVOICE_EN = (
    "INVOICE #INV-2024-0917    Date: 09/17/2024    Due: 10/01/2024\n"
    "Bill to: Northwind Traders Ltd., 42 Harbour Rd, Leeds LS1 4AP, VAT GB 123 4567 89\n"
    "Qty  Description                   Unit price    Amount\n"
    "12   Storage, 1 TB-month            $23.00      $276.00\n"
    "3    Support hours                  $95.00      $285.00\n"
    "1    Setup fee                      $150.00     $150.00\n"
    "Subtotal $711.00   Tax (8.25%) $58.66   TOTAL $769.66"
)
PHONES = "\n".join(
    f"{name} .......... +7 (495) {100 + index * 37 % 900:03d}-{index * 13 % 100:02d}-"
    f"{index * 29 % 100:02d}, доб. {200 + index}"
    for index, name in enumerate(
        (
            "Приёмная",
            "Бухгалтерия",
            "Отдел кадров",
            "Юридический отдел",
            "Служба поддержки",
            "Склад",
            "Охрана",
            "Транспортный отдел",
            "ИТ-служба",
            "Отдел продаж",
            "Закупки",
            "Архив",
        )
    )
)
TIMETABLE = "Маршрут № 12: Вокзал — Университет\n" + "\n".join(
    " ".join(
        f"{(6 * 60 + 5 + row * 17 + column * 4) // 60:02d}:{(5 + row * 17 + column * 4) % 60:02d}"
        for column in range(9)
    )
    for row in range(30)
)
BANK = (
    "Банковские реквизиты\nПолучатель: ООО «Облачные решения»\nИНН 7707083893 / КПП 770701001\n"
    "ОГРН 1027700132195\nр/с 40702810938000012345\nв ПАО Сбербанк, г. Москва\nк/с 30101810400000000225\n"
    "БИК 044525225\nОКПО 00032537, ОКВЭД 63.11"
)
CODES = (
    "Нормативные ссылки: ГОСТ 8732-78, ГОСТ Р 52857.1-2007, ТУ 14-3-1128-2000, СП 60.13330.2020, "
    "ISO 9001:2015, EN 1092-1:2018, ASME B16.5-2020. Исполнения: НЦ-4417-01, НЦ-4417-02/У1, "
    "НЦ-4417-03/ХЛ1, НЦ-4417-04/Т2. Коды ОКПД2: 28.13.14.110, 28.13.14.190; ТН ВЭД 8413 70 300 0."
)
CODE_PYTHON = '''def usable_text_layer(text: str) -> bool:
    """True when the page's text can be indexed as it is."""
    quality = measure(text)
    if quality.chars == 0:
        return True
    bad = quality.unreadable / max(quality.chars, 20)
    return bad < 0.1 and quality.letters >= 0

for page_number, page in enumerate(reader.pages, start=1):
    text = (page.extract_text() or "").strip()
    if not usable_text_layer(text):
        queue.append({"page": page_number, "reason": "ocr"})
print(f"{len(queue)} pages of {len(reader.pages)} need OCR")'''
CODE_JSON = (
    '{"id": "doc-0917", "pages": [{"page": 1, "ocr": false, "chars": 2180}, {"page": 2, "ocr": true, '
    '"chars": 0}], "metadata": {"source": "s3://bucket/incoming/report.pdf", "sha256": '
    '"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "tags": ["отчёт", "2024"], '
    '"sizes": {"bytes": 1048576, "tokens": 52311}}, "vector": [0.0123, -0.0456, 0.0789, -0.1011, 0.1213]}'
)
CODE_SQL = (
    "SELECT d.id, d.title, count(c.id) AS chunks, sum(c.tokens) AS tokens\n"
    "FROM documents AS d\nLEFT JOIN chunks AS c ON c.document_id = d.id\n"
    "WHERE d.updated_at >= now() - interval '7 days' AND d.status <> 'failed'\n"
    "GROUP BY d.id, d.title\nHAVING count(c.id) > 0\nORDER BY tokens DESC\nLIMIT 100;"
)
CODE_SHELL = (
    "$ export YC_FOLDER_ID=b1g2h3j4k5l6m7n8p9q0\n"
    "$ yc serverless function version create --function-name=embed --runtime python312 \\\n"
    "    --entrypoint index.handler --memory 256m --execution-timeout 600s --source-path ./build/fn.zip\n"
    '$ curl -sS -X POST "https://functions.yandexcloud.net/d4e5f6?wait=true" '
    "-H 'Content-Type: application/json' "
    "-d '{\"key\": \"incoming/report.pdf\"}' | jq '.chunks[] | {id, tokens}'"
)
FORMULAS = (
    "Косинусная близость: cos(θ) = (a · b) / (‖a‖ · ‖b‖), где a, b ∈ ℝⁿ.\n"
    "Среднее и дисперсия: μ = (1/n) ∑ xᵢ, σ² = (1/n) ∑ (xᵢ − μ)².\n"
    "Оценка: P(A|B) = P(B|A)·P(A) / P(B) ≈ 0,87 ± 0,02.\n"
    "∫₀¹ x² dx = 1/3;  lim_{n→∞} (1 + 1/n)ⁿ = e ≈ 2,71828;  ∀ε > 0 ∃δ > 0: |x − a| < δ ⇒ |f(x) − f(a)| < ε.\n"
    "Закон Ома: U = I·R; мощность P = U·I = I²R; при R = 4,7 кОм и I = 2 мА U = 9,4 В."
)
LATEX_SOURCE = (
    "\\begin{equation} \\mathrm{sim}(q, d) = \\frac{\\langle q, d \\rangle}{\\|q\\|_2 \\, \\|d\\|_2} "
    "\\end{equation} where $q, d \\in \\mathbb{R}^{256}$ and $\\|x\\|_2 = \\sqrt{\\sum_{i=1}^{n} x_i^2}$; "
    "see \\cite{reimers2019} and Eq.~(\\ref{eq:sim})."
)
CHEMISTRY = (
    "Состав: H₂SO₄ — 96%, H₂O — 4%. Реакция: 2H₂ + O₂ → 2H₂O + 572 кДж. "
    "Условия хранения: от +5 °C до +25 °C, влажность ≤ 60%, допуск ±0,5 мм; площадь 12,5 м², "
    "объём 3 м³; концентрация 10⁻³ моль/л; pH 7,4 ± 0,1."
)
GREEK = (
    "Параметры модели: α = 0,05; β = 0,9; γ = 0,99; λ = 10⁻⁴; η = 3·10⁻⁴; θ — веса; Δt = 15 мин. "
    "Ошибка ε распределена нормально N(μ, σ²) с μ = 0 и σ = 1,2; ω = 2πf; Ω — область интегрирования; "
    "ρ = 7 850 кг/м³; τ = 0,3 с; φ = 30°; ψ = arctg(φ)."
)
TOC = "Содержание\n" + "\n".join(
    f"{title} {'.' * (70 - len(title))} {page}"
    for title, page in (
        ("Введение", 3),
        ("1. Обзор рынка", 5),
        ("1.1. Облачные сервисы", 6),
        ("1.2. Конкуренты", 11),
        ("2. Финансовые результаты", 14),
        ("2.1. Выручка", 15),
        ("2.2. Расходы", 19),
        ("3. Риски", 24),
        ("4. Планы на 2025 год", 29),
        ("Заключение", 33),
        ("Приложение А. Отчётность по МСФО", 35),
    )
)
FORM = (
    "ЗАЯВЛЕНИЕ\nФамилия, имя, отчество: ______________________________________________\n"
    "Паспорт: серия ________ № ______________ выдан ____________________________\n"
    "Адрес: ____________________________________________________________________\n"
    "Телефон: +7 (____) ___-__-__   E-mail: ______________@______________\n"
    "«____» _______________ 20___ г.          Подпись: ______________ / ______________ /"
)
ASCII_TABLE = (
    "+--------+--------------+-----------+\n| Код    | Регион       | Клиентов  |\n"
    "+========+==============+===========+\n| 77     | Москва       | 1 904     |\n"
    "+--------+--------------+-----------+\n| 78     | С.-Петербург | 812       |\n"
    "+--------+--------------+-----------+\n| 16     | Татарстан    | 301       |\n"
    "+--------+--------------+-----------+"
)
BULLETS = (
    "Что входит в тариф «Бизнес»:\n• хранение до 10 ТБ;\n• 1 000 000 запросов в месяц;\n"
    "– поддержка 24/7;\n— выделенный менеджер;\n▪ резервное копирование;\n✓ SLA 99,95%;\n"
    "1) подключение за 1 день; 2) миграция данных; а) бесплатно; б) с консультацией.\n"
    "→ Подробнее: https://example.ru/tariffs/business"
)
URLS = (
    "Ссылки и пути:\nhttps://storage.yandexcloud.net/bucket-01/incoming/2024/09/report_v2.pdf\n"
    "https://cloud.yandex.ru/docs/functions/api-ref/v1/functions/Function/create\n"
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf\n/var/log/nginx/access.log.1\n"
    "C:\\Users\\ivanov\\Documents\\Отчёт_2024_v3.docx\n"
    "git@github.com:org/repo.git, s3://backups/db/2024-09-17T03:00:00Z.sql.gz, mailto:support@example.ru"
)
CODE_C = (
    "static size_t copy_line(char *dst, const char *src, size_t n) {\n"
    "    size_t i = 0;\n    while (i + 1 < n && src[i] && src[i] != '\\n') { *dst++ = src[i++]; }\n"
    "    *dst = '\\0';\n    return i;  /* bytes copied, without the NUL */\n}\n"
    "#define MAX(a, b) ((a) > (b) ? (a) : (b))\n"
    "int main(int argc, char **argv) { return argc > 1 ? atoi(argv[1]) : -1; }"
)
REGEX_PERL = (
    "Полезные регулярные выражения:\n"
    "s/^\\s+|\\s+$//g;   # обрезать пробелы\n"
    'm{^(\\d{4})-(\\d{2})-(\\d{2})$} or die "bad date: $_";\n'
    '$h{$k} //= [];  push @{$h{$k}}, $v;  print join(",", map { "<$_>" } @list), "\\n";\n'
    "grep -E '^[A-Z]{2}-[0-9]{4}(/[A-Z]+)?$' codes.txt | sort -u > /tmp/codes && wc -l < /tmp/codes"
)
MARKDOWN = (
    "# Установка\n\n## Требования\n\n* Python **3.11+**;\n* `pip install -r requirements.txt`;\n"
    "* [документация](https://example.ru/docs) и _примеры_.\n\n"
    "> **Важно:** ключ API хранится в `YC_API_KEY`.\n\n"
    "| Параметр | По умолчанию |\n|---|---|\n| `CHUNK_TOKENS` | 500 |\n| `OVERLAP` | 50 |"
)
SLIDE_PUA_BULLETS = "Города присутствия\n• Москва\n• Казань\n• Сочи\n• Омск"
SIGNATURES = (
    "Подписи сторон:\nИсполнитель ____________ / Иванов И. И. /\n"
    "Заказчик ____________ / Петров П. П. /\nМ. П."
)
MAKEFILE = (
    ".PHONY: all lint test\nVENV ?= .venv\nBIN := $(VENV)/bin\n\nall: lint test\n\n"
    "$(VENV)/.stamp: requirements.txt\n    @test -x $(BIN)/python || python3 -m venv $(VENV)\n"
    "    $(BIN)/pip install -q -r $< && touch $@\n\n"
    "lint: $(VENV)/.stamp\n    $(BIN)/ruff check . && $(BIN)/mypy --strict .\n\n"
    "%.o: %.c ; $(CC) -c $(CFLAGS) -o $@ $<\n"
    "awk -F'|' '$3 > 100 { s += $3; n++ } END { printf(\"%d/%d=%.2f\\n\", s, n, s/n) }' data.txt"
)
HEX_DUMP = "\n".join(
    f"{offset:08x}  "
    + " ".join(f"{(offset * 31 + i * 17) % 256:02x}" for i in range(16))
    + "  |.PDF-1.7..%....|"
    for offset in range(0, 16 * 24, 16)
)
EMOTICONS = (
    "Итоги опроса :-)  Нравится: 82% (!!!)  Не нравится: 7% :-(  Без ответа: 11% ¯\\_(°_°)_/¯\n"
    "Оценки: ***** (5) — 41%; ****  (4) — 33%; ***   (3) — 17%; <= 2 — 9%.\n"
    "P.S. Спасибо всем!!! ;-) <3  ==>  см. стр. 2  <==  #опрос #итоги @команда"
)
SYMBOL_BULLETS_PAGE = (
    "Требования к серверу:\n• 2 ядра, 4 ГБ памяти;\n• 40 ГБ диска;\n• Ubuntu 22.04 или новее;\n"
    + PROSE_RU[:600]
)
PUA_BULLET = "\uf0b7"  # Word's Symbol-font bullet, as its /ToUnicode says it
SCAN_FOOTER = "Page 3 of 10"
SCAN_STAMPS = "КОПИЯ ВЕРНА. Инв. № 4417. Лист 3 из 10. Отсканировано 17.09.2024 12:04"


# --- The corpus ---------------------------------------------------------------------------------------


def _fpdf(*blocks: str, font: str = "DejaVuSans.ttf", **options: Any) -> Callable[[], bytes]:
    return lambda: fpdf_page(list(blocks), font=font, **options)


def _hand(text: str, make_font: Callable[[RawPdf, str], Encode]) -> Callable[[], bytes]:
    return lambda: hand_built_page(text, make_font)


def _stripped(*blocks: str, font: str = "DejaVuSans.ttf") -> Callable[[], bytes]:
    return lambda: strip_to_unicode(fpdf_page(list(blocks), font=font))


def _photo() -> Image.Image:
    """A photograph's worth of pixels (1600×1000), no text in it."""
    return Image.radial_gradient("L").resize((1600, 1000)).convert("RGB")


def _logo_page() -> bytes:
    """A cover: a small logo (240×80 pixels) and the title."""
    pdf = FPDF(format="A4")
    pdf.add_font("body", fname=str(font_path()))
    pdf.add_page()
    pdf.image(Image.linear_gradient("L").resize((240, 80)), x=20, y=20, w=40)
    pdf.set_font("body", size=28)
    pdf.set_y(120)
    pdf.multi_cell(0, 14, "Годовой отчёт 2024", align="C")
    return bytes(pdf.output())


def _mixed_fonts(heading: str, body: str) -> bytes:
    """A heading in Helvetica (WinAnsiEncoding, extracts well) over a body whose font lost its /ToUnicode."""
    pdf = FPDF(format="A4")
    pdf.add_font("body", fname=str(font_path()))
    pdf.add_page()
    pdf.set_font("Helvetica", size=16)
    pdf.multi_cell(0, 8, heading, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("body", size=11)
    pdf.multi_cell(0, 5.5, body)
    return strip_to_unicode(bytes(pdf.output()))


def _pua_bullets(char: str) -> str:
    return PUA_BULLET.encode("utf-16-be").hex().upper() if char == "•" else utf16(char)


def _pua_symbol(char: str) -> str:  # a Symbol-font style target: U+F000 + the low byte
    return f"{0xF000 + (ord(char) & 0xFF):04X}"


def _pua_glyph(char: str) -> str:  # U+E000 + a per-character number, as some producers fill unknown glyphs
    return f"{0xE000 + ord(char) % 0x1000:04X}"


def _cp1251_safe(text: str) -> str:
    return text.encode("cp1251", errors="replace").decode("cp1251")


GOOD_TEXTS: dict[str, str] = {
    "prose-ru": PROSE_RU,
    "legal-ru": LEGAL_RU,
    "tech-ru": TECH_RU,
    "prose-en": PROSE_EN,
    "tech-en": TECH_EN,
    "legal-en-caps": LEGAL_EN,
    "mixed-ru-en": MIXED,
    "european": EUROPEAN,
    "cyrillic-extended": CYRILLIC_EXTENDED,
    "numbers-financial-table": NUMBERS_FIN,
    "numbers-only": NUMBERS_ONLY,
    "price-list-codes": PRICE_LIST,
    "invoice-ru": INVOICE,
    "phone-list": PHONES,
    "timetable": TIMETABLE,
    "bank-details": BANK,
    "standard-codes": CODES,
    "formulas": FORMULAS,
    "chemistry-units": CHEMISTRY,
    "greek-letters": GREEK,
    "toc-dot-leaders": TOC,
    "form-underscores": FORM,
    "bullets-dashes": BULLETS,
    "urls-paths": URLS,
    "title-2-words-ru": "Годовой отчёт",
    "title-3-words-en": "Annual Report 2024",
    "page-number": "12",
    "page-number-dashes": "— 12 —",
    "appendix-title": "Приложение А",
    "footer-only-no-image": SCAN_FOOTER,
    "section-break": "* * *",
    "signatures": SIGNATURES,
    "emoticons": EMOTICONS,
}
MONO_TEXTS: dict[str, str] = {
    "code-python": CODE_PYTHON,
    "code-json": CODE_JSON,
    "code-sql": CODE_SQL,
    "code-shell": CODE_SHELL,
    "latex-source": LATEX_SOURCE,
    "ascii-table": ASCII_TABLE,
    "code-c": CODE_C,
    "regex-perl-shell": REGEX_PERL,
    "markdown-source": MARKDOWN,
    "makefile-awk": MAKEFILE,
    "hex-dump": HEX_DUMP,
}


def _good() -> list[Sample]:
    good = [Sample("good", name, False, _fpdf(text)) for name, text in GOOD_TEXTS.items()]
    good += [
        Sample("good", name, False, _fpdf(text, font="DejaVuSansMono.ttf", size=9))
        for name, text in MONO_TEXTS.items()
    ]
    good += [
        Sample("good", "blank-page", False, _fpdf()),
        Sample("good", "prose-ru-serif", False, _fpdf(PROSE_RU, LEGAL_RU, font="DejaVuSerif.ttf")),
        Sample("good", "long-ru-en-page", False, _fpdf(PROSE_RU, TECH_EN, LEGAL_RU, size=9)),
        Sample("good", "helvetica-prose-en", False, _fpdf(PROSE_EN, font="Helvetica")),
        Sample("good", "helvetica-invoice-en", False, _fpdf(INVOICE_EN, font="Helvetica")),
        Sample("good", "helvetica-numbers-only", False, _fpdf(NUMBERS_ONLY, font="Helvetica")),
        Sample("good", "helvetica-title", False, _fpdf("Annual Report", font="Helvetica", size=28)),
        Sample(
            "good", "gid-tounicode-prose-ru", False, _hand(PROSE_RU, lambda pdf, t: gid_font(pdf, t, utf16))
        ),
        Sample(
            "good", "gid-tounicode-prose-en", False, _hand(PROSE_EN, lambda pdf, t: gid_font(pdf, t, utf16))
        ),
        Sample(
            "good", "gid-tounicode-invoice", False, _hand(INVOICE, lambda pdf, t: gid_font(pdf, t, utf16))
        ),
        Sample(
            "good",
            "custom-codes-tounicode-ru",
            False,
            _hand(PROSE_RU, lambda pdf, t: custom_code_font(pdf, t, to_unicode=True)),
        ),
        Sample(
            "good",
            "word-symbol-bullets-pua",
            False,
            _hand(SYMBOL_BULLETS_PAGE, lambda pdf, t: gid_font(pdf, t, _pua_bullets)),
        ),
        Sample(
            "good",
            "slide-word-bullets-pua",
            False,
            _hand(SLIDE_PUA_BULLETS, lambda pdf, t: gid_font(pdf, t, _pua_bullets)),
        ),
    ]
    return good


def _garbled() -> list[Sample]:
    samples = []
    for name, text in (
        ("prose-ru", PROSE_RU),
        ("prose-en", PROSE_EN),
        ("numbers-financial-table", NUMBERS_FIN),
        ("numbers-only", NUMBERS_ONLY),
        ("price-list-codes", PRICE_LIST),
        ("title-2-words-ru", "Годовой отчёт"),
        ("page-number", "12"),
        ("long-ru-en-page", PROSE_RU + "\n" + TECH_EN + "\n" + LEGAL_RU),
    ):
        samples.append(Sample("no-tounicode", name, True, _stripped(text)))
    samples.append(
        Sample("no-tounicode", "code-python", True, _stripped(CODE_PYTHON, font="DejaVuSansMono.ttf"))
    )
    for name, text in (
        ("prose-ru", PROSE_RU),
        ("prose-en", PROSE_EN),
        ("legal-en-caps", LEGAL_EN),
        ("numbers-only", NUMBERS_ONLY),
        ("invoice-en", INVOICE_EN),
        ("title-3-words-en", "Annual Report 2024"),
    ):
        samples.append(Sample("gid", name, True, _hand(text, gid_font)))
    for name, text in (
        ("prose-ru", PROSE_RU),
        ("prose-en", PROSE_EN),
        ("numbers-financial-table", NUMBERS_FIN),
        ("numbers-only", NUMBERS_ONLY),
        ("code-python", CODE_PYTHON),
        ("title-2-words-ru", "Годовой отчёт"),
        ("invoice-ru", INVOICE),
        ("long-ru-en-page", PROSE_RU + "\n" + TECH_EN + "\n" + LEGAL_RU),
        ("tech-en", TECH_EN),
        ("legal-en-caps", LEGAL_EN),
        ("standard-codes", CODES),
        ("mixed-ru-en", MIXED),
        ("long-en-page", PROSE_EN + "\n" + TECH_EN + "\n" + LEGAL_EN),
    ):
        samples.append(Sample("custom-codes", name, True, _hand(text, custom_code_font)))
    for name, text in (("prose-ru", PROSE_RU), ("prose-en", PROSE_EN), ("numbers-only", NUMBERS_ONLY)):
        samples.append(
            Sample(
                "glyph-names",
                name,
                True,
                _hand(text, lambda pdf, t: custom_code_font(pdf, t, glyph_names=True)),
            )
        )
    for name, text in (
        ("prose-ru", PROSE_RU),
        ("legal-ru", LEGAL_RU),
        ("invoice-ru", INVOICE),
        ("bank-details", BANK),
        ("phone-list", PHONES),
        ("title-2-words-ru", "Годовой отчёт"),
    ):
        samples.append(Sample("cp1251", name, True, _hand(_cp1251_safe(text), cp1251_font)))
    samples += [
        Sample(
            "pua",
            "symbol-style-prose-ru",
            True,
            _hand(PROSE_RU, lambda pdf, t: gid_font(pdf, t, _pua_symbol)),
        ),
        Sample(
            "pua",
            "glyph-numbers-prose-en",
            True,
            _hand(PROSE_EN, lambda pdf, t: gid_font(pdf, t, _pua_glyph)),
        ),
        Sample(
            "pua",
            "symbol-style-numbers",
            True,
            _hand(NUMBERS_FIN, lambda pdf, t: gid_font(pdf, t, _pua_symbol)),
        ),
        Sample("fffd", "prose-ru", True, _hand(PROSE_RU, lambda pdf, t: gid_font(pdf, t, lambda _: "FFFD"))),
        Sample("fffd", "prose-en", True, _hand(PROSE_EN, lambda pdf, t: gid_font(pdf, t, lambda _: "FFFD"))),
        Sample("missing-font", "prose-ru", True, lambda: drop_font_resources(fpdf_page([PROSE_RU]))),
        Sample("missing-font", "numbers-only", True, lambda: drop_font_resources(fpdf_page([NUMBERS_ONLY]))),
        Sample(
            "partly-garbled",
            "heading-ok-body-no-tounicode",
            True,
            lambda: _mixed_fonts("Annual Report 2024", PROSE_RU),
        ),
    ]
    return samples


def _images() -> list[Sample]:
    return [
        Sample("scan", "pillow-image-no-text", True, lambda: pillow_pdf(scanned_image())),
        Sample(
            "scan", "pillow-1-bit-no-text", True, lambda: pillow_pdf(scanned_image(2480, 3508).convert("1"))
        ),
        Sample("scan", "image-and-footer", True, _fpdf(SCAN_FOOTER, image=scanned_image())),
        Sample("scan", "image-and-stamps", True, _fpdf(SCAN_STAMPS, image=scanned_image(), size=8)),
        Sample("scan", "strips-and-footer", True, lambda: strips_scan(SCAN_FOOTER)),
        Sample("scan", "inline-image-and-footer", True, lambda: inline_image_scan(SCAN_FOOTER)),
        Sample("scan", "form-wrapped-image-and-footer", True, lambda: form_scan(SCAN_FOOTER)),
        Sample("scan", "photo-and-title", True, _fpdf("Наш новый офис", image=_photo(), size=20)),
        Sample(
            "good-with-image",
            "searchable-scan",
            False,
            _fpdf(PROSE_RU, image=scanned_image(), invisible_text=True),
        ),
        Sample("good-with-image", "photo-and-article", False, _fpdf(PROSE_EN, TECH_EN, image=_photo())),
        Sample("good-with-image", "logo-and-title", False, _logo_page),
    ]


SAMPLES: tuple[Sample, ...] = (*_good(), *_garbled(), *_images())


def sample(group: str, name: str) -> Sample:
    return next(found for found in SAMPLES if (found.group, found.name) == (group, name))
