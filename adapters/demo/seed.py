"""Creates the demo systems on SQLite and fills them with realistic, reproducible sample data."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from adapters.demo.schemas import crm, erp
from adapters.sqlengine import make_engine

FIRST = [
    "Anna",
    "Ben",
    "Carla",
    "David",
    "Eva",
    "Frank",
    "Gita",
    "Hugo",
    "Ines",
    "Jonas",
    "Katja",
    "Lars",
    "Mia",
    "Nils",
    "Olga",
    "Paul",
    "Rosa",
    "Sven",
    "Tina",
    "Uwe",
]
LAST = [
    "Andersen",
    "Berg",
    "Costa",
    "Dahl",
    "Eriksen",
    "Fischer",
    "Garcia",
    "Hansen",
    "Ito",
    "Jensen",
    "Keller",
    "Larsen",
    "Meyer",
    "Nowak",
    "Olsen",
]
LAST += ["Petersen", "Quist", "Rossi", "Schmidt", "Tanaka", "Weber", "Young", "Zimmer"]
COMPANY_A = [
    "Adatum",
    "Alpine",
    "Blue",
    "Contoso",
    "Fabrikam",
    "Litware",
    "Northwind",
    "Proseware",
    "Relecloud",
    "Tailspin",
    "Trey",
    "Wingtip",
]
COMPANY_B = [
    "Corporation",
    "Industries",
    "Traders",
    "Systems",
    "Logistics",
    "Foods",
    "Motors",
    "Energy",
    "Labs",
    "Partners",
    "Retail",
    "Works",
]
CITIES = [
    ("Atlanta", "30301", "US"),
    ("Chicago", "60601", "US"),
    ("Seattle", "98101", "US"),
    ("Berlin", "10115", "DE"),
    ("Munich", "80331", "DE"),
    ("London", "EC1A", "GB"),
    ("Paris", "75001", "FR"),
    ("Copenhagen", "1050", "DK"),
]
TITLES = ["Purchaser", "CEO", "Accountant", "Sales Manager", "Engineer", "Office Manager", None]
ITEMS = [
    "Bicycle",
    "Helmet",
    "Saddle",
    "Pedal",
    "Chain",
    "Tyre",
    "Frame",
    "Brake",
    "Lamp",
    "Bell",
    "Pump",
    "Lock",
    "Bottle",
    "Basket",
    "Mirror",
]
CURRENCIES = [
    ("EUR", "Euro", "€"),
    ("GBP", "Pound Sterling", "£"),
    ("DKK", "Danish Krone", "kr"),
    ("JPY", "Yen", "¥"),
]
CURRENCIES += [("CHF", "Swiss Franc", "Fr")]
TERMS = [
    ("14D", "14 days", 14),
    ("30D", "Net 30 days", 30),
    ("60D", "Net 60 days", 60),
    ("COD", "Cash on delivery", 0),
]


@dataclass(frozen=True)
class DemoPaths:
    folder: Path

    @property
    def erp(self) -> Path:
        return self.folder / "erp.db"

    @property
    def crm(self) -> Path:
        return self.folder / "crm.db"

    @property
    def store(self) -> Path:
        return self.folder / "tandem.db"

    def url(self, path: Path) -> str:
        return f"sqlite:///{path}"


@dataclass(frozen=True)
class Sizes:
    customers: int = 200
    contacts: int = 300
    items: int = 150
    salespeople: int = 8
    shared_accounts: int = 3  # accounts that exist in the CRM already, to be coupled by hand


def create(paths: DemoPaths, sizes: Sizes = Sizes(), seed: int = 7) -> dict[str, int]:
    """(Re)creates both demo databases and the store's file location; returns the row counts."""
    paths.folder.mkdir(parents=True, exist_ok=True)
    for path in (paths.erp, paths.crm, paths.store):
        for suffix in ("", "-wal", "-shm", ".lock"):
            Path(str(path) + suffix).unlink(missing_ok=True)
    rng = random.Random(seed)
    stamp = dt.datetime(2026, 1, 5, 9, 0, 0)
    erp_engine = make_engine(paths.url(paths.erp))
    crm_engine = make_engine(paths.url(paths.crm))
    try:
        erp.create_all(erp_engine)
        crm.create_all(crm_engine)
        counts = _fill(erp_engine, crm_engine, sizes, rng, stamp)
    finally:
        erp_engine.dispose()
        crm_engine.dispose()
    return counts


def _guid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _fill(
    erp_engine: sa.Engine, crm_engine: sa.Engine, sizes: Sizes, rng: random.Random, stamp: dt.datetime
) -> dict[str, int]:
    t = erp.tables
    c = crm.tables
    base = {"last_modified": stamp}
    with erp_engine.begin() as db:
        db.execute(
            sa.insert(t["currency"]),
            [
                {"code": k, "description": d, "symbol": s, "system_id": _guid(rng), **base}
                for k, d, s in CURRENCIES
            ],
        )
        db.execute(
            sa.insert(t["payment_terms"]),
            [
                {"code": k, "description": d, "due_days": n, "system_id": _guid(rng), **base}
                for k, d, n in TERMS
            ],
        )
    users = []
    for i in range(sizes.salespeople):
        first, last = FIRST[i % len(FIRST)], LAST[(i * 7) % len(LAST)]
        users.append(
            {
                "systemuserid": _guid(rng),
                "fullname": f"{first} {last}",
                "internalemailaddress": f"{first[0].lower()}{last.lower()}@cronus.example",
                "mobilephone": f"+1 555 01{i:02d}",
                "modifiedon": stamp,
            }
        )
    codes = [str(u["internalemailaddress"]).split("@")[0].upper() for u in users]
    customers = []
    for i in range(1, sizes.customers + 1):
        city, post, country = rng.choice(CITIES)
        name = f"{rng.choice(COMPANY_A)} {rng.choice(COMPANY_B)} {i:03d}"
        customers.append(
            {
                "no": f"C{i:05d}",
                "name": name,
                "address": f"{rng.randint(1, 250)} {rng.choice(['Main', 'Park', 'Harbour', 'Mill'])} Street",
                "city": city,
                "post_code": post,
                "country_code": country,
                "phone": f"+{rng.randint(1, 49)} {rng.randint(100, 999)} {rng.randint(1000, 9999)}",
                "email": f"info@{name.split(maxsplit=1)[0].lower()}{i}.example",
                "website": f"https://{name.split(maxsplit=1)[0].lower()}{i}.example",
                "currency_code": rng.choice([None, None, "EUR", "GBP", "DKK"]),
                "salesperson_code": rng.choice(codes),
                "payment_terms_code": rng.choice(TERMS)[0],
                "credit_limit": rng.choice([0, 5000, 10000, 25000]),
                "blocked": i % 50 == 0,
                "system_id": _guid(rng),
                **base,
            }
        )
    contacts = []
    for i in range(1, sizes.contacts + 1):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        parent = customers[(i - 1) % len(customers)]
        contacts.append(
            {
                "no": f"CT{i:05d}",
                "type": "company" if i % 10 == 0 else "person",
                "first_name": first,
                "surname": last,
                "job_title": rng.choice(TITLES),
                "email": f"{first.lower()}.{last.lower()}{i}@{str(parent['email']).split('@')[1]}",
                "phone": parent["phone"],
                "mobile": f"+45 {rng.randint(20000000, 99999999)}",
                "customer_no": parent["no"],
                "system_id": _guid(rng),
                **base,
            }
        )
    # one person works for a blocked customer (outside the CUSTOMER filter): its parent is never coupled
    blocked = next(c for c in customers if c["blocked"])
    contacts[0]["customer_no"] = blocked["no"]
    items = []
    for i in range(1, sizes.items + 1):
        price = rng.randint(500, 250000) / 100
        items.append(
            {
                "no": f"{1000 + i}",
                "description": f"{rng.choice(['City', 'Racing', 'Touring', 'Kids'])} {rng.choice(ITEMS)} {i}",
                "base_unit": rng.choice(["PCS", "BOX", "SET"]),
                "unit_price": price,
                "unit_cost": round(price * 0.6, 2),
                "blocked": i % 40 == 0,
                "system_id": _guid(rng),
                **base,
            }
        )
    with erp_engine.begin() as db:
        db.execute(sa.insert(t["customer"]), customers)
        db.execute(sa.insert(t["contact"]), contacts)
        db.execute(sa.insert(t["item"]), items)
    accounts = []
    for customer in customers[: sizes.shared_accounts]:
        accounts.append(
            {
                "accountid": _guid(rng),
                "name": customer["name"],
                "telephone1": "+1 555 0100",  # the CRM's copy is older: coupling will bring the ERP's values
                "customertypecode": 3,
                "statecode": 0,
                "modifiedon": stamp,
            }
        )
    with crm_engine.begin() as db:
        db.execute(sa.insert(c["systemuser"]), users)
        db.execute(sa.insert(c["account"]), accounts)
    return {
        "erp customers": len(customers),
        "erp contacts": len(contacts),
        "erp items": len(items),
        "erp currencies": len(CURRENCIES),
        "erp payment terms": len(TERMS),
        "crm users": len(users),
        "crm accounts": len(accounts),
    }
