"""Demo data for CEP Formación: campuses, courses of every offer type, runs, campaigns and leads.

Everything comes from one seeded ``random.Random``, so two machines get the same data. Loading
is idempotent (catalogue rows are matched on their natural keys, leads on ``demo-<n>``), so
``cep-automation dev --demo`` can run it on every start. Emails use example.com, phones a
``+34 6xx 000…`` pattern and consent IPs the documentation range 192.0.2.0/24.
"""

from __future__ import annotations

import datetime as dt
import random
import unicodedata
from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow, tuple_row

DEFAULT_SEED = 20261
DAYS = 60
# Any constant works; it serialises two demo loads running at once.
ADVISORY_LOCK_ID = 0x0CE9_DE30

CAMPUSES = (("Madrid", "+34699000001", "asesor.madrid@cepformacion.es"),
            ("Sevilla", "+34699000002", "asesor.sevilla@cepformacion.es"),
            ("Málaga", "+34699000003", "asesor.malaga@cepformacion.es"))
COURSES = (
    ("Marketing Digital y Redes Sociales", "telematico"),
    ("Programación en Python", "telematico"),
    ("Inglés Profesional B2", "telematico"),
    ("Prevención de Riesgos Laborales", "ocupados"),
    ("Excel Avanzado para la Empresa", "ocupados"),
    ("Atención Sociosanitaria a Personas Dependientes", "desempleados"),
    ("Operaciones Auxiliares de Almacén", "desempleados"),
    ("Técnico en Cuidados Auxiliares de Enfermería", "privados"),
    ("Técnico en Nutrición y Dietética", "privados"),
)
# name, tracking_tag, meta_campaign_id, status, budget (EUR)
CAMPAIGNS = (
    ("Sanidad · otoño", "demo-sanidad-otono", "120200000000000001", "active", 1500),
    ("Desempleados · Andalucía", "demo-desempleados-andalucia", "120200000000000002", "active", 900),
    ("Ocupados · PRL", "demo-ocupados-prl", "120200000000000003", "paused", 600),
    ("Newsletter de verano", "demo-newsletter-verano", None, "ended", 250),
)
FIRST_NAMES = ("Lucía", "Hugo", "Martina", "Mateo", "Sofía", "Daniel", "Paula", "Álvaro", "Carmen", "Javier",
               "Irene", "Sergio", "Elena", "Raúl", "Nuria", "Adrián", "Rocío", "Iván", "Marta", "José")
SURNAMES = ("García", "Fernández", "González", "Rodríguez", "López", "Martínez", "Sánchez", "Pérez", "Gómez",
            "Martín", "Jiménez", "Ruiz", "Hernández", "Díaz", "Moreno", "Muñoz", "Álvarez", "Romero", "Navarro")
CONSENT_TEXT = "Acepto la política de privacidad y recibir información sobre cursos de CEP Formación."
# Spanish daytime in UTC: most forms are sent between 08:00 and 22:00 local time.
BUSY_HOURS_UTC = tuple(range(6, 21))


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()


def plan_runs(rng: random.Random) -> list[tuple[int, int | None, int]]:
    """(course index, campus index or None for telemático, days until start) per course run."""
    runs: list[tuple[int, int | None, int]] = []
    for index, (_, offer_type) in enumerate(COURSES):
        campuses = [None] if offer_type == "telematico" else sorted(rng.sample(range(len(CAMPUSES)), 2))
        runs.extend((index, campus, rng.randrange(-30, 90)) for campus in campuses)
    return runs


def _pick_campaign(rng: random.Random, source: str) -> int | None:
    """Meta leads always come from a Meta campaign (the first three); some web leads carry a UTM tag."""
    if source == "meta":
        return rng.randrange(3)
    return rng.randrange(len(CAMPAIGNS)) if rng.random() < 0.2 else None


def plan_lead(rng: random.Random, n: int, runs: int, now: dt.datetime) -> dict[str, Any]:
    """One fake lead; ``run`` and ``campaign`` are indexes into the demo plan (or None)."""
    first, last = rng.choice(FIRST_NAMES), rng.choice(SURNAMES)
    day = now.date() - dt.timedelta(days=rng.randrange(DAYS))
    at = dt.datetime.combine(day, dt.time(rng.choice(BUSY_HOURS_UTC), rng.randrange(60), rng.randrange(60)),
                             tzinfo=dt.UTC)
    source = rng.choices(("web", "meta"), weights=(65, 35))[0]
    consent = rng.random() < 0.85
    return {
        "external_id": f"demo-{n}",
        "name": f"{first} {last}",
        "email": f"{_ascii(first)}.{_ascii(last)}.{n}@example.com",
        "phone": f"+34600{n:06d}" if rng.random() < 0.9 else None,
        "source": source,
        "run": rng.randrange(runs) if rng.random() < 0.95 else None,
        "campaign": _pick_campaign(rng, source),
        "consent_at": at if consent else None,
        "consent_ip": f"192.0.2.{rng.randrange(1, 255)}" if consent else None,
        "consent_text": CONSENT_TEXT if consent else None,
        # A form sent "later today" would be in the future: move it back a day.
        "created_at": at if at <= now else at - dt.timedelta(days=1),
    }


def _ensure(cur: psycopg.Cursor[TupleRow], table: str, key: Mapping[str, Any],
            values: Mapping[str, Any]) -> tuple[int, bool]:
    """The id of the row matching ``key`` (NULL matches NULL), inserted with ``values`` if missing."""
    where = sql.SQL(" AND ").join(
        sql.SQL("{} IS NOT DISTINCT FROM {}").format(sql.Identifier(k), sql.Placeholder(k)) for k in key
    )
    row = cur.execute(sql.SQL("SELECT id FROM {} WHERE {} ORDER BY id LIMIT 1").format(sql.Identifier(table), where),
                      key).fetchone()
    if row:
        return int(row[0]), False
    columns = {**key, **values}
    insert = sql.SQL("INSERT INTO {} ({}) VALUES ({}) RETURNING id").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns)),
        sql.SQL(", ").join(map(sql.Placeholder, columns)),
    )
    inserted = cur.execute(insert, columns).fetchone()
    assert inserted is not None  # INSERT ... RETURNING of one row
    return int(inserted[0]), True


def _load_catalogue(cur: psycopg.Cursor[TupleRow], rng: random.Random, today: dt.date,
                    counts: dict[str, int]) -> tuple[list[int], list[int]]:
    """Campuses, courses, runs and campaigns; returns the ids of the runs and of the campaigns."""
    def ensure(table: str, key: Mapping[str, Any], values: Mapping[str, Any]) -> int:
        row_id, created = _ensure(cur, table, key, values)
        counts[table] += created
        return row_id

    campuses = [ensure("campuses", {"name": name}, {"advisor_phone": phone, "advisor_email": email})
                for name, phone, email in CAMPUSES]
    courses = [ensure("courses", {"title": title, "offer_type": kind}, {}) for title, kind in COURSES]
    runs = [
        ensure("course_runs", {"course_id": courses[course], "campus_id": None if campus is None else campuses[campus]},
               {"starts_on": today + dt.timedelta(days=days)})
        for course, campus, days in plan_runs(rng)
    ]
    campaigns = [
        ensure("campaigns", {"tracking_tag": tag}, {"name": name, "meta_campaign_id": meta, "status": status,
                                                    "budget": budget})
        for name, tag, meta, status, budget in CAMPAIGNS
    ]
    return runs, campaigns


def load_demo(conn: psycopg.Connection[Any], leads: int = 300, seed: int = DEFAULT_SEED,
              now: dt.datetime | None = None) -> dict[str, int]:
    """Insert the demo data in one transaction; returns how many rows of each table were added."""
    now = now or dt.datetime.now(dt.UTC)
    rng = random.Random(seed)
    counts = dict.fromkeys(("campuses", "courses", "course_runs", "campaigns", "leads"), 0)
    with conn.transaction():
        cur = conn.cursor(row_factory=tuple_row)
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_ID,))
        runs, campaigns = _load_catalogue(cur, rng, now.date(), counts)
        rows = [plan_lead(rng, n, len(runs), now) for n in range(1, leads + 1)]
        for row in rows:
            row["course_run_id"] = None if row["run"] is None else runs[row["run"]]
            row["campaign_id"] = None if row["campaign"] is None else campaigns[row["campaign"]]
        cur.executemany(
            "INSERT INTO leads (external_id, name, email, phone, source, course_run_id, campaign_id, consent_at,"
            " consent_ip, consent_text, created_at) VALUES (%(external_id)s, %(name)s, %(email)s, %(phone)s,"
            " %(source)s, %(course_run_id)s, %(campaign_id)s, %(consent_at)s, %(consent_ip)s, %(consent_text)s,"
            " %(created_at)s) ON CONFLICT (external_id) DO NOTHING",
            rows,
        )
        counts["leads"] = max(cur.rowcount, 0)
    return counts
