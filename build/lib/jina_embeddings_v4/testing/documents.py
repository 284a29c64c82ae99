"""Synthetic document page images with real, readable text.

This module draws small but realistic-looking document pages (invoices,
receipts, application forms, contracts and presentation slides) with
Pillow. Every page contains real text: titles, company and person names,
dates between 2022 and 2025, dollar amounts, tables, labelled form fields,
numbered clauses, bullets and a bar chart. The pages are meant for demos and
tests of document-embedding models, where text-to-image retrieval needs
pages that actually say something.

Everything is deterministic: the same ``seed`` always yields byte-identical
images on the same machine (same Pillow version and fonts), while different
seeds yield different numbers, names, dates and item lists.

Fonts: DejaVu TrueType fonts are used when they can be found in a few common
locations; otherwise Pillow's built-in default font is used, so the module
also works on machines without any font packages installed.

Example::

    from examples.documents import make_page, write_dataset_images

    image, info = make_page("invoice", seed=3)
    records = write_dataset_images("/tmp/docs", n=30, seed=0)
"""

import datetime
import functools
import importlib.util
import io
import logging
import os
import random
import re
import sys

from PIL import Image, ImageDraw, ImageFont

logger = logging.getLogger(__name__)

__all__ = [
    "KINDS",
    "PAGE_SIZES",
    "FONT_DIRS",
    "make_page",
    "write_dataset_images",
    "write_corrupt_files",
    "has_truetype_fonts",
]

KINDS = ("invoice", "receipt", "form", "contract", "slide")

# Page sizes in pixels at ``scale=1.0`` as ``(width, height)``.
PAGE_SIZES = {
    "invoice": (600, 800),
    "receipt": (360, 760),
    "form": (600, 800),
    "contract": (600, 800),
    "slide": (800, 450),
}

# Directories searched (in order) for the DejaVu TrueType fonts.
FONT_DIRS = (
    "/usr/share/fonts/truetype/dejavu",
    "/usr/share/fonts/dejavu",
    "/usr/share/fonts/TTF",
    "/usr/share/fonts/truetype",
    "/usr/local/share/fonts",
    "/usr/share/fonts",
    "/opt/homebrew/share/fonts",
    "/Library/Fonts",
    os.path.expanduser("~/Library/Fonts"),
    os.path.expanduser("~/.fonts"),
    os.path.expanduser("~/.local/share/fonts"),
    "C:/Windows/Fonts",
)

_FONT_FILES = {
    "regular": ("DejaVuSans.ttf",),
    "bold": ("DejaVuSans-Bold.ttf", "DejaVuSans.ttf"),
    "mono": ("DejaVuSansMono.ttf", "DejaVuSans.ttf"),
    "mono_bold": (
        "DejaVuSansMono-Bold.ttf",
        "DejaVuSansMono.ttf",
        "DejaVuSans-Bold.ttf",
    ),
}

_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)

_FIRST_DATE = datetime.date(2022, 1, 1)
_LAST_DATE = datetime.date(2025, 12, 31)

_INK = (28, 28, 32)
_GRAY = (105, 105, 112)
_LIGHT = (222, 224, 230)
_PEN = (22, 48, 150)
_WHITE = (255, 255, 255)

_ACCENTS = (
    (31, 78, 121),
    (0, 105, 105),
    (128, 20, 40),
    (46, 110, 50),
    (75, 45, 150),
    (180, 82, 0),
    (45, 45, 55),
    (20, 95, 170),
)

_FIRST_NAMES = (
    "Alice",
    "Benjamin",
    "Carla",
    "David",
    "Elena",
    "Farid",
    "Grace",
    "Hiro",
    "Isabel",
    "James",
    "Keiko",
    "Liam",
    "Maria",
    "Noah",
    "Olivia",
    "Priya",
    "Quentin",
    "Rosa",
    "Samuel",
    "Tara",
    "Umar",
    "Valerie",
    "William",
    "Ximena",
    "Yusuf",
    "Zoe",
)

_LAST_NAMES = (
    "Anderson",
    "Brooks",
    "Chen",
    "Dubois",
    "Evans",
    "Fischer",
    "Garcia",
    "Hughes",
    "Ivanova",
    "Johnson",
    "Kowalski",
    "Lopez",
    "Martin",
    "Nakamura",
    "O'Brien",
    "Patel",
    "Quinn",
    "Rossi",
    "Schmidt",
    "Thompson",
    "Usman",
    "Vargas",
    "Walker",
    "Young",
    "Zhang",
)

_COMPANY_HEADS = (
    "Northwind",
    "Blue Harbor",
    "Cedar & Stone",
    "Brightline",
    "Redwood",
    "Summit Peak",
    "Lumen",
    "Granite Bay",
    "Harborview",
    "Silverleaf",
    "Orion",
    "Pinecrest",
    "Quantum",
    "Atlas",
    "Evergreen",
    "Copperfield",
    "Riverside",
    "Starling",
    "Vantage",
    "Ironwood",
    "Meridian",
    "Crescent",
    "Aurora",
    "Bluebird",
)

_COMPANY_TAILS = (
    "Traders",
    "Logistics",
    "Analytics",
    "Office Supply",
    "Consulting",
    "Solar",
    "Engineering",
    "Catering",
    "Software",
    "Freight",
    "Medical",
    "Print Works",
    "Cloud Services",
    "Landscaping",
    "Design Studio",
    "Media",
    "Robotics",
    "Foods",
    "Textiles",
    "Labs",
)

_COMPANY_SUFFIXES = ("Inc.", "LLC", "Ltd.", "Co.", "Group", "Corp.")

_STREETS = (
    "Main Street",
    "Oak Avenue",
    "Harbor Blvd",
    "Elm Street",
    "Market Street",
    "Cedar Lane",
    "Park Road",
    "River Drive",
    "Hillcrest Ave",
    "Industrial Pkwy",
    "Maple Court",
    "Sunset Blvd",
    "Washington St",
    "Lakeview Drive",
)

_CITIES = (
    ("Springfield", "IL", "627"),
    ("Portland", "OR", "972"),
    ("Austin", "TX", "787"),
    ("Denver", "CO", "802"),
    ("Boston", "MA", "021"),
    ("Seattle", "WA", "981"),
    ("Madison", "WI", "537"),
    ("Raleigh", "NC", "276"),
    ("Phoenix", "AZ", "850"),
    ("Columbus", "OH", "432"),
    ("San Diego", "CA", "921"),
    ("Nashville", "TN", "372"),
    ("Minneapolis", "MN", "554"),
    ("Pittsburgh", "PA", "152"),
    ("Richmond", "VA", "232"),
)

_STATE_NAMES = {
    "IL": "Illinois",
    "OR": "Oregon",
    "TX": "Texas",
    "CO": "Colorado",
    "MA": "Massachusetts",
    "WA": "Washington",
    "WI": "Wisconsin",
    "NC": "North Carolina",
    "AZ": "Arizona",
    "OH": "Ohio",
    "CA": "California",
    "TN": "Tennessee",
    "MN": "Minnesota",
    "PA": "Pennsylvania",
    "VA": "Virginia",
}

# (description, min unit price, max unit price, min qty, max qty)
_INVOICE_ITEMS = (
    ("Web design services (hours)", 60, 150, 4, 40),
    ("Consulting services (hours)", 90, 240, 2, 30),
    ("Ergonomic office chair", 120, 420, 1, 12),
    ("Printer toner cartridge", 35, 130, 1, 20),
    ("Cloud hosting - monthly plan", 45, 900, 1, 12),
    ("Software license (annual)", 150, 2500, 1, 25),
    ("Cat6 network cable, 50 ft", 9, 40, 2, 50),
    ("Technical support plan", 250, 1500, 1, 4),
    ("Aluminium laptop stand", 25, 80, 1, 30),
    ("Shipping and handling", 12, 95, 1, 1),
    ("On-site training workshop", 400, 2200, 1, 3),
    ("Data migration service", 500, 3200, 1, 2),
    ("Custom report development", 180, 1200, 1, 6),
    ("Wireless keyboard and mouse", 30, 95, 1, 25),
    ("27-inch LED monitor", 180, 480, 1, 15),
    ("Conference room rental (day)", 150, 600, 1, 5),
    ("Security audit", 900, 4800, 1, 1),
    ("Copy paper, case of 10 reams", 35, 70, 1, 40),
    ("Catering - lunch for 20", 220, 650, 1, 4),
    ("Logo and brand guidelines", 600, 3500, 1, 1),
)

# (description, min price, max price)
_RECEIPT_ITEMS = (
    ("Organic Bananas", 0.59, 2.99),
    ("Whole Milk 1 gal", 3.19, 5.99),
    ("Sourdough Bread", 3.49, 6.99),
    ("Large Eggs 12ct", 2.49, 6.49),
    ("Coffee Beans 1 lb", 7.99, 17.99),
    ("Sharp Cheddar", 3.99, 8.99),
    ("Greek Yogurt", 0.99, 5.99),
    ("Gala Apples 3 lb", 2.99, 6.99),
    ("Penne Pasta", 1.29, 3.99),
    ("Marinara Sauce", 2.19, 5.49),
    ("Orange Juice 52oz", 2.99, 6.99),
    ("Paper Towels 6pk", 5.99, 13.99),
    ("Dish Soap", 1.99, 4.99),
    ("Chicken Breast", 5.99, 14.99),
    ("Avocados 3ct", 2.99, 5.99),
    ("Latte Grande", 3.95, 5.95),
    ("Blueberry Muffin", 1.95, 3.95),
    ("Baby Spinach 10oz", 2.49, 4.99),
    ("Jasmine Rice 2 lb", 2.99, 6.99),
    ("Dark Chocolate Bar", 1.49, 3.99),
    ("Sparkling Water 8pk", 3.99, 6.99),
    ("Olive Oil 500ml", 6.99, 14.99),
)

_STORES = (
    "FRESHMART GROCERY",
    "CORNER CAFE",
    "GREEN VALLEY MARKET",
    "QUICKSTOP #214",
    "SUNRISE FOODS",
    "DAILY GRIND COFFEE",
    "PARKSIDE PHARMACY",
    "HARVEST MOON CO-OP",
)

_CARDS = ("VISA", "MASTERCARD", "AMEX", "DEBIT")

_FORM_TYPES = (
    (
        "EMPLOYMENT APPLICATION FORM",
        (
            ("Position Applied For", "position"),
            ("Desired Annual Salary", "salary"),
            ("Available Start Date", "date"),
            ("Years of Experience", "years"),
        ),
    ),
    (
        "MEMBERSHIP APPLICATION FORM",
        (
            ("Membership Type", "membership"),
            ("Annual Fee", "fee"),
            ("Membership Start Date", "date"),
            ("Referred By", "person"),
        ),
    ),
    (
        "RENTAL APPLICATION FORM",
        (
            ("Property Address", "address"),
            ("Monthly Rent", "rent"),
            ("Requested Move-in Date", "date"),
            ("Current Employer", "company"),
        ),
    ),
    (
        "LOAN APPLICATION FORM",
        (
            ("Requested Loan Amount", "loan"),
            ("Loan Purpose", "purpose"),
            ("Annual Income", "salary"),
            ("Current Employer", "company"),
        ),
    ),
    (
        "APPLICATION FORM",
        (
            ("Program Name", "program"),
            ("Application Fee", "fee"),
            ("Preferred Start Date", "date"),
            ("Referred By", "person"),
        ),
    ),
)

_POSITIONS = (
    "Senior Data Analyst",
    "Software Engineer",
    "Project Manager",
    "Accounts Payable Clerk",
    "Marketing Coordinator",
    "Warehouse Supervisor",
    "UX Designer",
    "Customer Success Lead",
)

_MEMBERSHIPS = (
    "Individual - Gold",
    "Family - Standard",
    "Student",
    "Corporate - Premium",
    "Senior - Basic",
)

_LOAN_PURPOSES = (
    "Home renovation",
    "Vehicle purchase",
    "Debt consolidation",
    "Small business expansion",
    "Education expenses",
)

_PROGRAMS = (
    "Summer Leadership Program",
    "Community Arts Grant",
    "Graduate Fellowship",
    "Startup Incubator",
    "Volunteer Mentorship",
)

_CONTRACT_TITLES = (
    "SERVICE AGREEMENT",
    "CONSULTING AGREEMENT",
    "MAINTENANCE SERVICE AGREEMENT",
    "SOFTWARE DEVELOPMENT AGREEMENT",
)

_CONTRACT_SERVICES = (
    "monthly bookkeeping and payroll services",
    "website development and hosting services",
    "preventive maintenance of HVAC equipment",
    "IT help desk and network administration",
    "commercial cleaning of the Client's offices",
    "digital marketing and social media management",
    "custom software development and testing",
    "quarterly financial audit support",
)

_ROLES = (
    "Chief Executive Officer",
    "Managing Director",
    "Operations Manager",
    "Chief Financial Officer",
    "President",
    "General Counsel",
)

_SLIDE_TITLES = (
    "Q{q} {year} Sales Review",
    "{year} Marketing Results",
    "Customer Growth Update {year}",
    "Quarterly Business Review Q{q}",
    "Product Roadmap {year}",
    "Operations Dashboard Q{q} {year}",
)

_CHARTS = (
    ("Revenue by Quarter ($K)", ("Q1", "Q2", "Q3", "Q4"), 200, 950),
    (
        "Monthly Active Users (K)",
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun"),
        20,
        140,
    ),
    ("Units Sold by Region", ("North", "South", "East", "West"), 800, 5200),
    ("New Customers per Quarter", ("Q1", "Q2", "Q3", "Q4"), 30, 260),
    ("Support Tickets by Month", ("Jul", "Aug", "Sep", "Oct", "Nov"), 90, 480),
)

_PRODUCTS = (
    "Atlas Mobile",
    "Nimbus Cloud",
    "Pulse Analytics",
    "Beacon CRM",
    "Helix API",
    "Vega Payments",
)

_AMOUNT_RE = re.compile(r"\$\d[\d,]*\.\d{2}")


# --------------------------------------------------------------------------
# Fonts
# --------------------------------------------------------------------------


def _font_dirs():
    """Returns the directories to search for TrueType fonts.

    Returns:
        a list of directory paths, most specific first
    """
    dirs = list(FONT_DIRS)
    # Matplotlib bundles DejaVu; locate it without importing matplotlib.
    try:
        spec = importlib.util.find_spec("matplotlib")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.origin:
        base = os.path.dirname(spec.origin)
        dirs.append(os.path.join(base, "mpl-data", "fonts", "ttf"))
    return dirs


@functools.lru_cache(maxsize=None)
def _find_font_file(filename):
    """Finds a font file by name in the common font directories.

    Args:
        filename: a font file name such as ``"DejaVuSans.ttf"``

    Returns:
        the path to the font file, or None if it was not found
    """
    for dirpath in _font_dirs():
        path = os.path.join(dirpath, filename)
        if os.path.isfile(path):
            return path
    for root in ("/usr/share/fonts", "/usr/local/share/fonts"):
        if not os.path.isdir(root):
            continue
        for dirpath, _, files in os.walk(root):
            if filename in files:
                return os.path.join(dirpath, filename)
    return None


@functools.lru_cache(maxsize=512)
def _get_font(style, size):
    """Loads a font of the given style and pixel size.

    Args:
        style: one of ``"regular"``, ``"bold"``, ``"mono"``, ``"mono_bold"``
        size: the font size in pixels

    Returns:
        a Pillow font object
    """
    for filename in _FONT_FILES[style]:
        path = _find_font_file(filename)
        if path is None:
            continue
        try:
            return ImageFont.truetype(path, size)
        except OSError as e:
            logger.debug("Failed to load font '%s': %s", path, e)
    logger.debug("No TrueType font for style '%s'; using default", style)
    try:
        return ImageFont.load_default(size=size)
    except TypeError:
        # Pillow < 10.1 does not accept a size
        return ImageFont.load_default()


def has_truetype_fonts():
    """Tells whether the DejaVu TrueType fonts were found on this machine.

    Returns:
        True if all regular, bold and monospace DejaVu fonts are available
    """
    return all(
        _find_font_file(name) is not None
        for name in (
            "DejaVuSans.ttf",
            "DejaVuSans-Bold.ttf",
            "DejaVuSansMono.ttf",
        )
    )


# --------------------------------------------------------------------------
# Drawing surface
# --------------------------------------------------------------------------


class _Canvas(object):
    """A page whose drawing methods take coordinates at ``scale=1.0``.

    All coordinates, sizes and line widths passed to the methods are in base
    units and are multiplied by ``scale`` when drawn. Every string drawn with
    :meth:`text` is recorded in :attr:`texts`; consecutive strings drawn on
    the same line (e.g. the cells of a table row) are recorded as one entry.

    Args:
        size: the ``(width, height)`` of the page in base units
        scale: the factor from base units to pixels
        background: the RGB paper color
    """

    def __init__(self, size, scale, background=_WHITE):
        self.width, self.height = size
        self.scale = float(scale)
        pixels = (
            max(1, int(round(self.width * self.scale))),
            max(1, int(round(self.height * self.scale))),
        )
        self.image = Image.new("RGB", pixels, background)
        self.draw = ImageDraw.Draw(self.image)
        self.texts = []
        self._row_y = None

    def _px(self, value):
        return int(round(value * self.scale))

    def _box(self, box):
        x0, y0, x1, y1 = box
        return (self._px(x0), self._px(y0), self._px(x1), self._px(y1))

    def _lw(self, width):
        return max(1, int(round(width * self.scale)))

    def font(self, style, size):
        """Returns the font for a style and a size in base units."""
        return _get_font(style, max(6, int(round(size * self.scale))))

    def text_width(self, s, style="regular", size=12):
        """Returns the width of a string in base units."""
        font = self.font(style, size)
        return self.draw.textlength(s, font=font) / self.scale

    def text(
        self,
        x,
        y,
        s,
        style="regular",
        size=12,
        fill=_INK,
        align="left",
        record=True,
    ):
        """Draws a single line of text.

        Args:
            x: the anchor x coordinate; the left, right or center of the text
                depending on ``align``
            y: the top of the text line
            s: the string
            style: the font style
            size: the font size in base units
            fill: the RGB text color
            align: ``"left"``, ``"right"`` or ``"center"``
            record: whether to add the string to :attr:`texts`

        Returns:
            the width of the drawn text in base units
        """
        width = self.text_width(s, style=style, size=size)
        if align == "right":
            x -= width
        elif align == "center":
            x -= width / 2.0
        self.draw.text(
            (self._px(x), self._px(y)),
            s,
            font=self.font(style, size),
            fill=fill,
        )
        if record:
            if self._row_y is not None and abs(self._row_y - y) < 1e-6:
                self.texts[-1] += "  " + s
            else:
                self.texts.append(s)
            self._row_y = y
        return width

    def wrap(self, s, max_width, style="regular", size=12):
        """Greedily wraps a string into lines that fit ``max_width``.

        Args:
            s: the string
            max_width: the maximum line width in base units
            style: the font style
            size: the font size in base units

        Returns:
            a list of lines
        """
        lines = []
        current = ""
        for word in s.split():
            candidate = word if not current else current + " " + word
            if current and self.text_width(candidate, style, size) > max_width:
                lines.append(current)
                current = word
            else:
                current = candidate
        if current:
            lines.append(current)
        return lines

    def paragraph(
        self,
        x,
        y,
        s,
        max_width,
        style="regular",
        size=12,
        fill=_INK,
        leading=1.4,
    ):
        """Draws a wrapped paragraph.

        The paragraph is recorded in :attr:`texts` as one string.

        Args:
            x: the left edge
            y: the top of the first line
            s: the string
            max_width: the maximum line width in base units
            style: the font style
            size: the font size in base units
            fill: the RGB text color
            leading: the line height as a multiple of ``size``

        Returns:
            the y coordinate just below the paragraph
        """
        for line in self.wrap(s, max_width, style=style, size=size):
            self.text(x, y, line, style, size, fill, record=False)
            y += size * leading
        self.texts.append(s)
        self._row_y = None
        return y

    def record(self, *parts):
        """Records text without drawing it, e.g. a table row as one line.

        Args:
            *parts: strings that are joined with two spaces
        """
        self.texts.append("  ".join(parts))
        self._row_y = None

    def fit_size(self, s, max_width, style="regular", size=12, min_size=7):
        """Returns the largest size <= ``size`` at which ``s`` fits.

        Args:
            s: the string
            max_width: the available width in base units
            style: the font style
            size: the preferred font size in base units
            min_size: the smallest font size to return

        Returns:
            a font size in base units
        """
        while size > min_size and self.text_width(s, style, size) > max_width:
            size -= 0.5
        return size

    def rect(self, box, fill=None, outline=None, width=1):
        """Draws a rectangle given as ``(x0, y0, x1, y1)``."""
        self.draw.rectangle(
            self._box(box), fill=fill, outline=outline, width=self._lw(width)
        )

    def ellipse(self, box, fill=None, outline=None, width=1):
        """Draws an ellipse inside ``(x0, y0, x1, y1)``."""
        self.draw.ellipse(
            self._box(box), fill=fill, outline=outline, width=self._lw(width)
        )

    def line(self, x0, y0, x1, y1, fill=_INK, width=1):
        """Draws a straight line."""
        self.draw.line(
            (self._px(x0), self._px(y0), self._px(x1), self._px(y1)),
            fill=fill,
            width=self._lw(width),
        )

    def dashed(self, x0, x1, y, fill=_GRAY, dash=5, gap=3, width=1):
        """Draws a horizontal dashed line."""
        x = x0
        while x < x1:
            self.line(x, y, min(x + dash, x1), y, fill=fill, width=width)
            x += dash + gap


# --------------------------------------------------------------------------
# Random content
# --------------------------------------------------------------------------


def _random_date(rng, latest=_LAST_DATE):
    """Returns a random date between 2022-01-01 and ``latest``."""
    span = (latest - _FIRST_DATE).days
    return _FIRST_DATE + datetime.timedelta(days=rng.randint(0, span))


def _fmt_date(date, style):
    """Formats a date as ``iso``, ``long``, ``us`` or ``short`` text."""
    if style == "iso":
        return date.isoformat()
    if style == "long":
        return "%s %d, %d" % (_MONTHS[date.month - 1], date.day, date.year)
    if style == "us":
        return "%02d/%02d/%d" % (date.month, date.day, date.year)
    if style == "short":
        return "%d %s %d" % (date.day, _MONTHS[date.month - 1][:3], date.year)
    raise ValueError("Unknown date style '%s'" % style)


def _add_months(date, months):
    """Adds a number of months to a date, clamping the day if needed."""
    index = date.month - 1 + months
    year = date.year + index // 12
    month = index % 12 + 1
    day = date.day
    while True:
        try:
            return datetime.date(year, month, day)
        except ValueError:
            day -= 1


def _money(cents):
    """Formats an integer number of cents as ``$1,234.56``."""
    sign = "-" if cents < 0 else ""
    cents = abs(int(cents))
    return "%s$%s.%02d" % (sign, "{:,}".format(cents // 100), cents % 100)


def _percent(basis_points):
    """Formats basis points as a short percentage, e.g. 825 -> ``8.25``."""
    text = "%.2f" % (basis_points / 100.0)
    return text.rstrip("0").rstrip(".")


def _person(rng):
    return "%s %s" % (rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES))


def _company(rng, exclude=None):
    while True:
        name = "%s %s %s" % (
            rng.choice(_COMPANY_HEADS),
            rng.choice(_COMPANY_TAILS),
            rng.choice(_COMPANY_SUFFIXES),
        )
        if name != exclude:
            return name


def _domain(company):
    word = re.sub(r"[^a-z]", "", company.split()[0].lower())
    return word + ".com"


def _email(person, company):
    first, last = person.split(" ", 1)
    local = "%s.%s" % (first.lower(), re.sub(r"[^a-z]", "", last.lower()))
    return "%s@%s" % (local, _domain(company))


def _phone(rng):
    return "(%d) %d-%04d" % (
        rng.randint(201, 989),
        rng.randint(200, 999),
        rng.randint(0, 9999),
    )


def _address(rng):
    """Returns a random ``(street line, city line, state code)``."""
    city, state, prefix = rng.choice(_CITIES)
    street = "%d %s" % (rng.randint(10, 9890), rng.choice(_STREETS))
    if rng.random() < 0.3:
        street += ", Suite %d" % rng.randint(100, 950)
    city_line = "%s, %s %s%02d" % (city, state, prefix, rng.randint(1, 99))
    return street, city_line, state


# --------------------------------------------------------------------------
# Document kinds
# --------------------------------------------------------------------------


def _draw_invoice(cv, rng):
    w, h = cv.width, cv.height
    m = 40
    accent = rng.choice(_ACCENTS)
    seller = _company(rng)
    buyer = _company(rng, exclude=seller)
    contact = _person(rng)
    issued = _random_date(rng, latest=datetime.date(2025, 11, 30))
    terms = rng.choice((15, 30))
    due = issued + datetime.timedelta(days=terms)
    date_style = rng.choice(("iso", "long"))
    date_str = _fmt_date(issued, date_style)
    number = "INV-%d-%04d" % (issued.year, rng.randint(1, 9999))

    # Header
    cv.rect((0, 0, w, 10), fill=accent)
    cv.text(m, 32, seller, "bold", 16, fill=accent)
    street, city_line, _ = _address(rng)
    y = 56
    for line in (street, city_line, _phone(rng), "billing@" + _domain(seller)):
        cv.text(m, y, line, size=10, fill=_GRAY)
        y += 14
    cv.text(w - m, 28, "INVOICE", "bold", 30, fill=accent, align="right")

    rows = [("Invoice No.", number), ("Date", date_str)]
    rows.append(("Due Date", _fmt_date(due, date_style)))
    if rng.random() < 0.6:
        rows.append(("PO Number", "PO-%05d" % rng.randint(10000, 99999)))
    y = 76
    for label, value in rows:
        cv.text(w - m - 205, y, label + ":", "bold", 10, fill=_GRAY)
        cv.text(w - m, y, value, size=11, align="right")
        y += 17

    # Parties
    y = 160
    cv.text(m, y, "BILL TO", "bold", 10, fill=accent)
    b_street, b_city, _ = _address(rng)
    cv.text(m, y + 16, buyer, "bold", 12)
    cv.text(m, y + 33, "Attn: " + contact, size=11)
    cv.text(m, y + 49, b_street, size=11)
    cv.text(m, y + 65, b_city, size=11)
    if rng.random() < 0.5:
        s_street, s_city, _ = _address(rng)
        cv.text(320, y, "SHIP TO", "bold", 10, fill=accent)
        cv.text(320, y + 16, buyer, "bold", 12)
        cv.text(320, y + 33, s_street, size=11)
        cv.text(320, y + 49, s_city, size=11)

    # Line items
    y = 262
    x_qty, x_unit, x_amt = 372, 470, w - m - 8
    cv.rect((m, y, w - m, y + 24), fill=accent)
    cv.text(m + 8, y + 6, "Description", "bold", 11, fill=_WHITE)
    cv.text(x_qty, y + 6, "Qty", "bold", 11, fill=_WHITE, align="right")
    cv.text(
        x_unit, y + 6, "Unit Price", "bold", 11, fill=_WHITE, align="right"
    )
    cv.text(x_amt, y + 6, "Amount", "bold", 11, fill=_WHITE, align="right")
    y += 24
    subtotal = 0
    for i, item in enumerate(rng.sample(_INVOICE_ITEMS, rng.randint(3, 7))):
        name, lo, hi, qlo, qhi = item
        qty = rng.randint(qlo, qhi)
        unit = rng.randint(lo * 100, hi * 100)
        if rng.random() < 0.5:
            unit = unit // 100 * 100
        amount = qty * unit
        subtotal += amount
        if i % 2:
            cv.rect((m, y, w - m, y + 23), fill=(245, 246, 249))
        cv.text(m + 8, y + 5, name, size=11)
        cv.text(x_qty, y + 5, str(qty), size=11, align="right")
        cv.text(x_unit, y + 5, _money(unit), size=11, align="right")
        cv.text(x_amt, y + 5, _money(amount), size=11, align="right")
        y += 23
    cv.line(m, y, w - m, y, fill=_LIGHT, width=1)

    # Totals
    y += 12
    totals = [("Subtotal", subtotal)]
    discount = 0
    if rng.random() < 0.3:
        rate = rng.choice((5, 10, 15))
        discount = subtotal * rate // 100
        totals.append(("Discount (%d%%)" % rate, -discount))
    tax_bp = rng.choice((0, 500, 625, 725, 825, 1000))
    tax = ((subtotal - discount) * tax_bp + 5000) // 10000
    totals.append(("Tax (%s%%)" % _percent(tax_bp), tax))
    total = subtotal - discount + tax
    for label, value in totals:
        cv.text(360, y, label, size=11, fill=_GRAY, record=False)
        cv.text(x_amt, y, _money(value), size=11, align="right", record=False)
        cv.record(label + ":", _money(value))
        y += 18
    cv.rect((350, y, w - m, y + 28), fill=accent)
    cv.text(360, y + 6, "TOTAL DUE", "bold", 12, fill=_WHITE, record=False)
    cv.text(
        x_amt,
        y + 6,
        _money(total),
        "bold",
        12,
        fill=_WHITE,
        align="right",
        record=False,
    )
    cv.record("TOTAL DUE:", _money(total))
    total_str = _money(total)

    # Payment notes
    y += 52
    cv.text(m, y, "Payment Terms", "bold", 11, fill=accent)
    notes = (
        "Net %d. Payment is due by %s." % (terms, _fmt_date(due, date_style)),
        "Bank transfer to %s, account ****%04d."
        % (seller, rng.randint(0, 9999)),
        "Please include invoice number %s with your payment." % number,
    )
    y += 18
    for note in notes:
        y = cv.paragraph(m, y, note, w - 2 * m, size=10, fill=_GRAY)

    # Footer
    cv.line(m, h - 56, w - m, h - 56, fill=_LIGHT)
    cv.text(
        w / 2,
        h - 44,
        "Thank you for your business!",
        "bold",
        11,
        accent,
        align="center",
    )
    cv.text(
        w / 2,
        h - 26,
        "%s  |  %s" % (seller, _phone(rng)),
        size=9,
        fill=_GRAY,
        align="center",
    )
    return {
        "title": "INVOICE",
        "date": date_str,
        "iso_date": issued.isoformat(),
        "total": total_str,
        "company": seller,
        "doc_id": number,
    }


def _draw_receipt(cv, rng):
    w, h = cv.width, cv.height
    m = 22
    mono, bold = "mono", "mono_bold"
    store = rng.choice(_STORES)
    street, city_line, _ = _address(rng)
    when = _random_date(rng)
    date_style = rng.choice(("iso", "us"))
    date_str = _fmt_date(when, date_style)
    time_str = "%02d:%02d" % (rng.randint(7, 21), rng.randint(0, 59))
    number = "%06d" % rng.randint(1, 999999)

    y = 26
    cv.text(w / 2, y, store, bold, 16, align="center")
    y += 26
    for line in (street, city_line, "Tel " + _phone(rng)):
        cv.text(w / 2, y, line, mono, 10, fill=_GRAY, align="center")
        y += 14
    y += 8
    cv.text(w / 2, y, "RECEIPT", bold, 14, align="center")
    y += 24
    cv.text(m, y, "Date: %s" % date_str, mono, 10)
    cv.text(w - m, y, "Time: %s" % time_str, mono, 10, align="right")
    y += 15
    cv.text(m, y, "Receipt #: %s" % number, mono, 10)
    cv.text(
        w - m, y, "Reg: %02d" % rng.randint(1, 12), mono, 10, align="right"
    )
    y += 15
    cv.text(m, y, "Cashier: %s" % rng.choice(_FIRST_NAMES), mono, 10)
    y += 20
    cv.dashed(m, w - m, y)
    y += 10

    subtotal = 0
    count = 0
    for name, lo, hi in rng.sample(_RECEIPT_ITEMS, rng.randint(4, 10)):
        qty = rng.choice((1, 1, 1, 2, 3))
        unit = rng.randint(int(lo * 100), int(hi * 100))
        amount = qty * unit
        subtotal += amount
        count += qty
        cv.text(m, y, name.upper(), mono, 11)
        cv.text(w - m, y, _money(amount), mono, 11, align="right")
        y += 16
        if qty > 1:
            line = "  %d @ %s" % (qty, _money(unit))
            cv.text(m, y, line, mono, 10, fill=_GRAY)
            y += 15
    y += 4
    cv.dashed(m, w - m, y)
    y += 10

    tax_bp = rng.choice((0, 400, 600, 725, 875))
    tax = (subtotal * tax_bp + 5000) // 10000
    total = subtotal + tax
    total_str = _money(total)
    cv.text(m, y, "SUBTOTAL", mono, 11)
    cv.text(w - m, y, _money(subtotal), mono, 11, align="right")
    y += 16
    cv.text(m, y, "TAX %s%%" % _percent(tax_bp), mono, 11)
    cv.text(w - m, y, _money(tax), mono, 11, align="right")
    y += 20
    cv.text(m, y, "TOTAL", bold, 15)
    cv.text(w - m, y, total_str, bold, 15, align="right")
    y += 26

    if rng.random() < 0.3:
        step = rng.choice((500, 1000, 2000))
        tendered = (total // step + 1) * step
        cv.text(m, y, "CASH", mono, 11)
        cv.text(w - m, y, _money(tendered), mono, 11, align="right")
        y += 16
        cv.text(m, y, "CHANGE", mono, 11)
        cv.text(w - m, y, _money(tendered - total), mono, 11, align="right")
    else:
        card = "%s **** %04d" % (rng.choice(_CARDS), rng.randint(0, 9999))
        cv.text(m, y, card, mono, 11)
        cv.text(w - m, y, total_str, mono, 11, align="right")
        y += 16
        auth = "AUTH CODE %06d" % rng.randint(0, 999999)
        cv.text(m, y, auth, mono, 10, fill=_GRAY)
    y += 20
    cv.text(m, y, "ITEMS SOLD: %d" % count, mono, 10)
    y += 22
    cv.dashed(m, w - m, y)
    y += 12
    cv.text(w / 2, y, "THANK YOU FOR SHOPPING!", bold, 12, align="center")
    y += 20
    note = "Returns accepted within %d days with this receipt." % rng.choice(
        (14, 30, 60, 90)
    )
    for line in cv.wrap(note, w - 2 * m, mono, 9):
        cv.text(
            w / 2, y, line, mono, 9, fill=_GRAY, align="center", record=False
        )
        y += 13
    cv.record(note)

    # Barcode
    y = max(y + 14, h - 92)
    x = m + 20
    while x < w - m - 24:
        bar = rng.choice((1, 1, 2, 3))
        cv.rect((x, y, x + bar - 0.01, y + 44), fill=_INK)
        x += bar + rng.choice((1, 2, 2, 3))
    code = "%04d %04d %04d" % (
        rng.randint(0, 9999),
        rng.randint(0, 9999),
        rng.randint(0, 9999),
    )
    cv.text(w / 2, y + 50, code, mono, 10, align="center")
    return {
        "title": "RECEIPT",
        "date": date_str,
        "iso_date": when.isoformat(),
        "total": total_str,
        "company": store,
        "doc_id": number,
    }


def _form_value(rng, kind, when):
    """Returns a filled-in value for a form field of the given kind."""
    if kind == "position":
        return rng.choice(_POSITIONS)
    if kind == "salary":
        return _money(rng.randint(38, 185) * 100000)
    if kind == "fee":
        return _money(rng.choice((2500, 4900, 7500, 12000, 19900, 35000)))
    if kind == "rent":
        return _money(rng.randint(18, 58) * 5000)
    if kind == "loan":
        return _money(rng.randint(5, 250) * 100000)
    if kind == "date":
        return _fmt_date(when + datetime.timedelta(rng.randint(7, 60)), "iso")
    if kind == "years":
        return str(rng.randint(1, 25))
    if kind == "membership":
        return rng.choice(_MEMBERSHIPS)
    if kind == "person":
        return _person(rng)
    if kind == "address":
        street, city_line, _ = _address(rng)
        return "%s, %s" % (street, city_line)
    if kind == "company":
        return _company(rng)
    if kind == "purpose":
        return rng.choice(_LOAN_PURPOSES)
    if kind == "program":
        return rng.choice(_PROGRAMS)
    raise ValueError("Unknown field kind '%s'" % kind)


def _draw_form(cv, rng):
    w, h = cv.width, cv.height
    m = 40
    accent = rng.choice(_ACCENTS)
    title, extra_fields = rng.choice(_FORM_TYPES)
    org = _company(rng)
    applicant = _person(rng)
    signed = _random_date(rng, latest=datetime.date(2025, 10, 31))
    date_str = _fmt_date(signed, "iso")
    form_no = "Form %s-%03d" % (
        "".join(word[0] for word in title.split()[:2]),
        rng.randint(100, 999),
    )

    # Header with a round logo
    initials = "".join(word[0] for word in org.split()[:2])
    cv.ellipse((m, 24, m + 40, 64), fill=accent)
    cv.text(m + 20, 36, initials, "bold", 14, fill=_WHITE, align="center")
    cv.text(m + 52, 28, org, "bold", 13, fill=accent)
    cv.text(
        m + 52, 46, "%s  |  %s" % (form_no, _phone(rng)), size=9, fill=_GRAY
    )
    y = 84
    cv.text(w / 2, y, title, "bold", 19, align="center")
    y += 28
    cv.text(
        w / 2,
        y,
        "Please print clearly. Fields marked * are required.",
        size=9,
        fill=_GRAY,
        align="center",
    )
    y += 22

    def section(y, label):
        cv.rect((m, y, w - m, y + 20), fill=accent)
        cv.text(m + 8, y + 4, label, "bold", 10, fill=_WHITE)
        return y + 28

    def field(x0, x1, y, label, value):
        cv.text(x0, y, label, size=9, fill=_GRAY, record=False)
        cv.rect((x0, y + 13, x1, y + 35), outline=(150, 150, 160), width=1)
        size = cv.fit_size(value, x1 - x0 - 12, size=11)
        cv.text(x0 + 6, y + 18, value, size=size, fill=_PEN, record=False)
        cv.record(label.rstrip(" *") + ":", value)
        return y + 44

    street, city_line, state = _address(rng)
    city = city_line.split(",")[0]
    zip_code = city_line.split()[-1]
    id_number = "%s%07d" % (rng.choice("ABDFKMRT"), rng.randint(0, 9999999))
    mid = w / 2
    y = section(y, "SECTION 1 - APPLICANT INFORMATION")
    y = field(m, w - m, y, "Full Name *", applicant)
    field(m, mid - 8, y, "ID Number *", id_number)
    y = field(mid + 8, w - m, y, "Phone *", _phone(rng))
    y = field(m, w - m, y, "Email Address", _email(applicant, org))
    y = field(m, w - m, y, "Street Address *", street)
    field(m, 300, y, "City *", city)
    field(312, 420, y, "State *", state)
    y = field(432, w - m, y, "ZIP Code *", zip_code)

    y += 6
    y = section(y, "SECTION 2 - DETAILS")
    values = [
        (label, _form_value(rng, kind, signed)) for label, kind in extra_fields
    ]
    field(m, mid - 8, y, values[0][0] + " *", values[0][1])
    y = field(mid + 8, w - m, y, values[1][0] + " *", values[1][1])
    field(m, mid - 8, y, values[2][0], values[2][1])
    y = field(mid + 8, w - m, y, values[3][0], values[3][1])

    cv.text(m, y, "Preferred contact method:", size=10)
    x = m + 170
    choice = rng.randrange(3)
    for i, option in enumerate(("Email", "Phone", "Mail")):
        cv.rect((x, y, x + 12, y + 12), outline=_INK, width=1)
        if i == choice:
            cv.line(x + 2, y + 6, x + 5, y + 10, fill=_PEN, width=2)
            cv.line(x + 5, y + 10, x + 11, y + 1, fill=_PEN, width=2)
        cv.text(x + 18, y, option, size=10)
        x += 80
    y += 28

    y = section(y, "SECTION 3 - DECLARATION")
    declaration = (
        "I certify that the information provided in this application is "
        "true and complete to the best of my knowledge. I authorize %s to "
        "verify the information above and understand that false statements "
        "may result in rejection of this application." % org
    )
    y = cv.paragraph(m, y, declaration, w - 2 * m, size=10, leading=1.45)
    y += 22
    cv.text(m + 8, y, applicant, size=15, fill=_PEN, record=False)
    cv.line(m, y + 24, 330, y + 24, fill=_INK)
    cv.text(m, y + 28, "Applicant Signature", size=9, fill=_GRAY)
    cv.text(380, y + 4, date_str, size=12, fill=_PEN)
    cv.line(370, y + 24, w - m, y + 24, fill=_INK)
    cv.text(370, y + 28, "Date", size=9, fill=_GRAY)

    # Footer
    cv.line(m, h - 44, w - m, h - 44, fill=_LIGHT)
    cv.text(
        m,
        h - 34,
        "%s (Rev. %d)" % (form_no, max(2022, signed.year - 1)),
        size=8,
        fill=_GRAY,
    )
    cv.text(
        w - m,
        h - 34,
        "For office use only: ________",
        size=8,
        fill=_GRAY,
        align="right",
    )
    return {
        "title": title,
        "date": date_str,
        "iso_date": signed.isoformat(),
        "total": None,
        "company": org,
        "doc_id": form_no,
    }


def _draw_contract(cv, rng):
    w, h = cv.width, cv.height
    m = 48
    title = rng.choice(_CONTRACT_TITLES)
    provider = _company(rng)
    client = _company(rng, exclude=provider)
    signers = (_person(rng), _person(rng))
    start = _random_date(rng, latest=datetime.date(2025, 9, 30))
    date_str = _fmt_date(start, "long")
    terms = [
        n for n in (3, 6, 12, 18, 24) if _add_months(start, n) <= _LAST_DATE
    ]
    months = rng.choice(terms)
    end = _add_months(start, months)
    installments = rng.choice([n for n in (1, 3, 6, 12) if n <= months])
    per_payment = rng.randint(8, 400) * 2500
    total = per_payment * installments
    total_str = _money(total)
    _, city_line, state = _address(rng)
    city = city_line.split(",")[0]
    number = "AGR-%d-%04d" % (start.year, rng.randint(1, 9999))

    y = 44
    cv.text(w / 2, y, title, "bold", 19, align="center")
    y += 28
    cv.text(
        w / 2,
        y,
        "Agreement No. " + number,
        size=10,
        fill=_GRAY,
        align="center",
    )
    y += 18
    cv.line(m, y, w - m, y, fill=_INK, width=1)
    y += 16

    body = 10.5
    preamble = (
        'This %s (the "Agreement") is entered into as of %s (the "Effective '
        'Date") by and between %s ("Provider") and %s ("Client").'
        % (title.title(), date_str, provider, client)
    )
    y = cv.paragraph(m, y, preamble, w - 2 * m, size=body) + 8

    if installments == 1:
        payment = (
            "in a single payment due within 30 days of the Effective Date"
        )
    else:
        payment = "in %d equal installments of %s" % (
            installments,
            _money(per_payment),
        )
    clauses = [
        (
            "Services",
            "Provider shall provide %s to Client as described in Exhibit A, "
            "in a professional and workmanlike manner."
            % rng.choice(_CONTRACT_SERVICES),
        ),
        (
            "Term",
            "This Agreement begins on the Effective Date and continues for %d "
            "months until %s, unless terminated earlier as provided below."
            % (months, _fmt_date(end, "long")),
        ),
        (
            "Compensation",
            "Client shall pay Provider a total fee of %s, %s. Late payments "
            "accrue interest at %s%% per month."
            % (total_str, payment, rng.choice(("1", "1.5", "2"))),
        ),
        (
            "Confidentiality",
            "Each party shall keep confidential all non-public information "
            "received from the other party and use it only to perform this "
            "Agreement.",
        ),
        (
            "Intellectual Property",
            "All deliverables created under this Agreement become the "
            "property of Client upon full payment of the fees.",
        ),
        (
            "Termination",
            "Either party may terminate this Agreement with %d days' written "
            "notice. Client shall pay for services performed up to the "
            "termination date." % rng.choice((15, 30, 60, 90)),
        ),
        (
            "Limitation of Liability",
            "Neither party's total liability under this Agreement shall "
            "exceed %s." % _money(rng.randint(5, 100) * 1000000),
        ),
        (
            "Independent Contractor",
            "Provider is an independent contractor. Nothing in this "
            "Agreement creates a partnership, joint venture or employment "
            "relationship between the parties.",
        ),
        (
            "Notices",
            "Notices must be in writing and sent to %s, attention %s, or to "
            "such other address as a party designates in writing."
            % (client, signers[1]),
        ),
        (
            "Governing Law",
            "This Agreement is governed by the laws of the State of %s, and "
            "the courts located in %s shall have exclusive jurisdiction."
            % (_STATE_NAMES[state], city),
        ),
        (
            "Entire Agreement",
            "This Agreement, including its exhibits, is the entire agreement "
            "between the parties and supersedes all prior proposals and "
            "understandings. Amendments must be signed by both parties.",
        ),
    ]
    # Keep the first three clauses and a random, ordered subset of the rest;
    # clauses are drawn until the page is full.
    rest = range(3, len(clauses))
    optional = sorted(rng.sample(rest, rng.randint(len(rest) - 2, len(rest))))
    chosen = clauses[:3] + [clauses[i] for i in optional]
    limit = h - 186
    for i, (heading, text) in enumerate(chosen, 1):
        lines = cv.wrap(text, w - 2 * m - 16, size=body)
        if y + 16 + len(lines) * body * 1.4 > limit:
            break
        cv.text(m, y, "%d. %s" % (i, heading), "bold", 11)
        y += 16
        y = cv.paragraph(m + 16, y, text, w - 2 * m - 16, size=body) + 6

    # Signature blocks
    y = max(y + 14, h - 176)
    cv.text(
        m,
        y,
        "IN WITNESS WHEREOF, the parties have signed this Agreement.",
        size=body,
    )
    y += 26
    col = (w - 2 * m) / 2
    for j, (party, label) in enumerate(
        ((provider, "PROVIDER"), (client, "CLIENT"))
    ):
        x = m + j * (col + 10)
        cv.text(x, y, label, "bold", 10)
        cv.text(x, y + 15, party, size=10)
        cv.line(x, y + 50, x + col - 20, y + 50, fill=_INK)
        cv.text(x, y + 54, "By: " + signers[j], size=9)
        cv.text(x, y + 68, "Title: " + rng.choice(_ROLES), size=9)
        cv.text(x, y + 82, "Date: " + date_str, size=9)
    cv.text(
        w / 2,
        h - 30,
        "Page 1 of %d" % rng.randint(2, 6),
        size=8,
        fill=_GRAY,
        align="center",
    )
    return {
        "title": title,
        "date": date_str,
        "iso_date": start.isoformat(),
        "total": total_str,
        "company": provider,
        "doc_id": number,
    }


def _slide_bullets(rng):
    """Returns four or five bullet strings with random numbers."""
    pool = [
        "Revenue up %d%% year over year" % rng.randint(4, 48),
        "%d new enterprise customers signed" % rng.randint(6, 140),
        "Churn reduced to %.1f%%" % (rng.randint(8, 60) / 10.0),
        "Launched %s in %d new markets"
        % (rng.choice(_PRODUCTS), rng.randint(2, 9)),
        "Net promoter score reached %d" % rng.randint(31, 78),
        "Headcount grew to %d employees" % rng.randint(40, 900),
        "Average deal size: %s" % _money(rng.randint(80, 950) * 10000),
        "Gross margin improved to %d%%" % rng.randint(52, 81),
        "Cloud costs down %d%% after migration" % rng.randint(5, 35),
        "Sales pipeline valued at %s"
        % _money(rng.randint(12, 95) * 10000000 + rng.randint(0, 99) * 1000),
    ]
    return rng.sample(pool, rng.randint(4, 5))


def _draw_slide(cv, rng):
    w, h = cv.width, cv.height
    accent = rng.choice(_ACCENTS)
    company = _company(rng)
    when = _random_date(rng)
    date_str = _fmt_date(when, rng.choice(("long", "iso")))
    quarter = (when.month - 1) // 3 + 1
    title = rng.choice(_SLIDE_TITLES).format(q=quarter, year=when.year)

    # Title band
    cv.rect((0, 0, w, 74), fill=accent)
    cv.text(36, 20, title, "bold", 26, fill=_WHITE)
    cv.rect((0, 74, w, 78), fill=(235, 170, 40))

    # Bullets
    y = 104
    for bullet in _slide_bullets(rng):
        cv.ellipse((40, y + 6, 48, y + 14), fill=accent)
        lines = cv.wrap(bullet, 330, size=15)
        for line in lines:
            cv.text(58, y, line, size=15, record=False)
            y += 21
        cv.record(bullet)
        y += 12

    # Key takeaway box
    takeaway = rng.choice(
        (
            "Next steps: expand the partner program and hire %d account "
            "executives." % rng.randint(3, 25),
            "Focus for next quarter: %s adoption and enterprise renewals."
            % rng.choice(_PRODUCTS),
            "Budget request: %s for growth initiatives."
            % _money(rng.randint(15, 240) * 1000000),
            "Risk: supplier lead times up %d days; mitigation plan in "
            "progress." % rng.randint(5, 30),
        )
    )
    tint = tuple(int(c + (255 - c) * 0.88) for c in accent)
    box_top = max(y + 4, 312)
    cv.rect((36, box_top, 410, box_top + 70), fill=tint)
    cv.rect((36, box_top, 41, box_top + 70), fill=accent)
    cv.text(52, box_top + 9, "KEY TAKEAWAY", "bold", 10, fill=accent)
    cv.paragraph(52, box_top + 27, takeaway, 345, size=12, leading=1.35)

    # Bar chart
    chart_title, labels, lo, hi = rng.choice(_CHARTS)
    values = [rng.randint(lo, hi) for _ in labels]
    x0, x1, top, base = 450, 768, 126, 362
    cv.text((x0 + x1) / 2, 96, chart_title, "bold", 12, align="center")
    peak = max(values)
    step = 10 ** max(0, len(str(peak)) - 1)
    while peak / step > 5:
        step *= 2
    ymax = (peak // step + 1) * step
    for tick in range(0, ymax + 1, step):
        ty = base - (base - top) * tick / float(ymax)
        cv.line(x0, ty, x1, ty, fill=_LIGHT)
        cv.text(
            x0 - 6,
            ty - 6,
            "{:,}".format(tick),
            size=9,
            fill=_GRAY,
            align="right",
            record=False,
        )
    slot = (x1 - x0) / float(len(values))
    bar_color = rng.choice([a for a in _ACCENTS if a != accent])
    for i, (label, value) in enumerate(zip(labels, values)):
        bx = x0 + i * slot + slot * 0.2
        bh = (base - top) * value / float(ymax)
        cv.rect((bx, base - bh, bx + slot * 0.6, base), fill=bar_color)
        center = bx + slot * 0.3
        cv.text(
            center,
            base - bh - 15,
            "{:,}".format(value),
            "bold",
            9,
            align="center",
            record=False,
        )
        cv.text(center, base + 5, label, size=10, align="center", record=False)
    cv.line(x0, base, x1, base, fill=_INK, width=1)
    cv.record(
        chart_title + ":",
        ", ".join(
            "%s %s" % (k, "{:,}".format(v)) for k, v in zip(labels, values)
        ),
    )

    # Footer
    cv.line(30, h - 36, w - 30, h - 36, fill=_LIGHT)
    cv.text(36, h - 28, company, "bold", 10, fill=accent)
    cv.text(w / 2, h - 28, date_str, size=10, fill=_GRAY, align="center")
    total_slides = rng.randint(8, 30)
    cv.text(
        w - 36,
        h - 28,
        "%d / %d" % (rng.randint(2, total_slides), total_slides),
        size=10,
        fill=_GRAY,
        align="right",
    )
    return {
        "title": title,
        "date": date_str,
        "iso_date": when.isoformat(),
        "total": None,
        "company": company,
        "doc_id": "%s-%d" % (title, rng.randint(1000, 9999)),
    }


_DRAWERS = {
    "invoice": _draw_invoice,
    "receipt": _draw_receipt,
    "form": _draw_form,
    "contract": _draw_contract,
    "slide": _draw_slide,
}

_PAPER = {
    "invoice": (_WHITE, (252, 252, 250)),
    "receipt": ((250, 249, 244), (253, 252, 247), (247, 246, 240)),
    "form": (_WHITE, (253, 253, 250)),
    "contract": (_WHITE, (252, 251, 247)),
    "slide": (_WHITE, (248, 249, 252)),
}


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


def make_page(kind, seed, scale=1.0):
    """Draws one synthetic document page.

    Args:
        kind: the document kind, one of :data:`KINDS`
        seed: an int or string seed, or a ``random.Random`` to draw from. The
            same seed and kind always give a byte-identical image
        scale (1.0): a factor applied to the page size in
            :data:`PAGE_SIZES`, the fonts and all drawing coordinates

    Returns:
        a tuple of

        -   the page as an RGB ``PIL.Image.Image``
        -   a metadata dict with keys ``kind``, ``title``, ``date`` (as
            printed on the page), ``iso_date``, ``year`` (int), ``total`` (an
            amount string such as ``"$1,234.56"``, or None), ``company``,
            ``doc_id``, ``amounts`` (all amounts printed, in order),
            ``width``, ``height`` and ``text`` (all text drawn, one string
            per line of the returned string)

    Raises:
        ValueError: if ``kind`` is unknown or ``scale`` is not positive
    """
    if kind not in _DRAWERS:
        raise ValueError(
            "Unknown kind '%s'; expected one of %s" % (kind, KINDS)
        )
    if not scale > 0:
        raise ValueError("scale must be positive, got %r" % (scale,))

    if isinstance(seed, random.Random):
        rng = seed
    else:
        rng = random.Random("documents:%s:%s" % (kind, seed))

    cv = _Canvas(PAGE_SIZES[kind], scale, background=rng.choice(_PAPER[kind]))
    info = _DRAWERS[kind](cv, rng)
    text = "\n".join(cv.texts)
    amounts = []
    for amount in _AMOUNT_RE.findall(text):
        if amount not in amounts:
            amounts.append(amount)

    metadata = {
        "kind": kind,
        "title": info["title"],
        "date": info["date"],
        "iso_date": info["iso_date"],
        "year": int(info["iso_date"][:4]),
        "total": info["total"],
        "company": info["company"],
        "doc_id": info["doc_id"],
        "amounts": amounts,
        "width": cv.image.width,
        "height": cv.image.height,
        "text": text,
    }
    return cv.image, metadata


def _save_options(fmt):
    """Returns ``(extension, Pillow format, save kwargs)`` for ``fmt``."""
    ext = fmt.lower().lstrip(".")
    pil_format = Image.registered_extensions().get("." + ext)
    if pil_format is None:
        raise ValueError("Unsupported image format '%s'" % fmt)
    kwargs = {}
    if pil_format == "JPEG":
        kwargs = {"quality": 92}
    return ext, pil_format, kwargs


def write_dataset_images(
    out_dir, n=30, seed=0, kinds=KINDS, scale=1.0, fmt="png"
):
    """Writes ``n`` synthetic document pages to a directory.

    Page ``i`` has kind ``kinds[i % len(kinds)]``, so all kinds appear about
    equally often, and is written to ``out_dir/<kind>_<i:03d>.<fmt>``. Page
    ``i`` is drawn with seed ``"<seed>-<i>"``, so the pages are all different
    from each other and the whole set is reproducible from ``seed``.

    Args:
        out_dir: the output directory, created if needed
        n (30): the number of pages
        seed (0): the seed of the whole set
        kinds (KINDS): the kinds to cycle through
        scale (1.0): the page scale, see :func:`make_page`
        fmt ("png"): the image format/extension, e.g. ``"png"`` or ``"jpg"``

    Returns:
        a list of dicts, one per page, with a ``filepath`` key (absolute
        path) plus the metadata returned by :func:`make_page`
    """
    if isinstance(kinds, str):
        kinds = (kinds,)
    kinds = tuple(kinds)
    if not kinds:
        raise ValueError("kinds must not be empty")
    for kind in kinds:
        if kind not in _DRAWERS:
            raise ValueError("Unknown kind '%s'" % kind)
    ext, pil_format, save_kwargs = _save_options(fmt)

    out_dir = os.path.abspath(os.path.expanduser(out_dir))
    os.makedirs(out_dir, exist_ok=True)
    records = []
    for i in range(int(n)):
        kind = kinds[i % len(kinds)]
        image, metadata = make_page(kind, "%s-%d" % (seed, i), scale=scale)
        filepath = os.path.join(out_dir, "%s_%03d.%s" % (kind, i, ext))
        image.save(filepath, format=pil_format, **save_kwargs)
        record = {"filepath": filepath}
        record.update(metadata)
        records.append(record)

    logger.info("Wrote %d document images to '%s'", len(records), out_dir)
    return records


def write_corrupt_files(out_dir):
    """Writes a few unreadable image files for robustness tests.

    The files are:

    -   ``corrupt_truncated.png``: a valid PNG page with its second half cut
        off
    -   ``corrupt_not_an_image.jpg``: a plain text file with a ``.jpg``
        extension
    -   ``corrupt_empty.png``: an empty file

    Args:
        out_dir: the output directory, created if needed

    Returns:
        the list of absolute paths written
    """
    out_dir = os.path.abspath(os.path.expanduser(out_dir))
    os.makedirs(out_dir, exist_ok=True)

    image, _ = make_page("invoice", "corrupt", scale=0.5)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    data = buffer.getvalue()

    contents = (
        ("corrupt_truncated.png", data[: len(data) // 2]),
        (
            "corrupt_not_an_image.jpg",
            b"This is a plain text file, not a JPEG image.\n",
        ),
        ("corrupt_empty.png", b""),
    )
    paths = []
    for name, payload in contents:
        path = os.path.join(out_dir, name)
        with open(path, "wb") as f:
            f.write(payload)
        paths.append(path)

    logger.info("Wrote %d corrupt files to '%s'", len(paths), out_dir)
    return paths


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print("usage: python documents.py OUT_DIR")
        sys.exit(2)

    for record in write_dataset_images(sys.argv[1], n=10):
        print(
            "%s  %s  %s  %s"
            % (
                record["filepath"],
                record["title"],
                record["date"],
                record["total"],
            )
        )
