"""The daily digest's figures: one day's leads per course and campaign, campaigns' CTR/CPL, anomalies alerted.

Read from what other jobs computed, never from the leads themselves: ``lead_rollups`` (marketing's figures,
every campus), ``lead_rollups_by_campus`` (an advisor's), ``campaign_metrics`` (what ``campaign.sync`` stored
for periods ending that day) and ``campaign_anomalies`` (what it alerted that day) — each read is an index
range of one day. Days are the rollups' UTC days. Aggregates only: no lead's name, email or phone.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg.rows import dict_row

from cep_automation.domain import campus_rollups, rollups
from cep_automation.domain.leads import TELEMATICO

MADRID = ZoneInfo("Europe/Madrid")
SEND_HOUR = 8  # local time in Madrid; periodiq's cron is UTC, so the job ticks at 06:00 and 07:00 UTC
NO_COURSE, NO_CAMPAIGN = "Sin curso", "Sin campaña"


def due_day(tick: dt.datetime) -> dt.date | None:
    """The day whose digest is due at ``tick`` (yesterday in Madrid) when ``tick`` falls in Madrid's 08:00 hour,
    else None: of the 06:00 and 07:00 UTC ticks, exactly one does, in winter (CET) and in summer (CEST)."""
    local = tick.astimezone(MADRID)
    return local.date() - dt.timedelta(days=1) if local.hour == SEND_HOUR else None


def last_day_over(now: dt.datetime) -> dt.date:
    """A manual run's day: the last (UTC) day that is over. From 08:00 in Madrid, Madrid's yesterday; just after
    Madrid's midnight, the day before (Madrid's yesterday is not over in UTC yet, and would be sent half-counted)."""
    return now.astimezone(dt.UTC).date() - dt.timedelta(days=1)


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


def ensure_rollup(conn: psycopg.Connection[Any], day: dt.date) -> bool:
    """Compute the day's daily rollup if ``stats.rollup`` has not (no total row, one computed before the day
    was over, or no campus split for a day with leads); True when it had to. Same code, same indexed range."""
    found = conn.cursor(row_factory=dict_row).execute(
        "SELECT leads, updated_at FROM lead_rollups WHERE granularity = 'daily' AND dimension = 'total'"
        " AND period_start = %s AND key_id = 0", (day,)).fetchone()
    if (found is not None and found["updated_at"] >= _midnight(day + dt.timedelta(days=1))
            and (found["leads"] == 0 or campus_rollups.has_period(conn, "daily", day))):
        return False
    rollups.rollup(conn, day, "daily")
    return True


@dataclass(frozen=True)
class Count:
    """Leads of one course or campaign (``label`` is its title or name)."""

    key_id: int
    label: str
    leads: int


@dataclass(frozen=True)
class CampaignFigures:
    """What campaign.sync last stored for a campaign for a period ending on the day."""

    campaign_id: int
    name: str
    period_start: dt.date
    period_end: dt.date
    ctr: float | None
    cpl: float | None
    spend: float


@dataclass(frozen=True)
class Digest:
    """One recipient's digest: ``scope`` is ``Todos los centros`` or the campus's name."""

    day: dt.date
    scope: str
    leads: int
    consented: int
    by_course: list[Count]
    by_campaign: list[Count]
    campaigns: list[CampaignFigures]
    anomalies: list[str]

    def merge_vars(self) -> dict[str, str]:
        """The template's merge variables (strings; lists one item a line)."""
        return {
            "DIGEST_DATE": self.day.isoformat(), "SCOPE": self.scope,
            "LEADS_TOTAL": str(self.leads), "LEADS_CONSENTED": str(self.consented),
            "LEADS_BY_COURSE": "\n".join(f"{c.label}: {c.leads}" for c in self.by_course),
            "LEADS_BY_CAMPAIGN": "\n".join(f"{c.label}: {c.leads}" for c in self.by_campaign),
            "CAMPAIGNS": "\n".join(_campaign_line(c) for c in self.campaigns),
            "ANOMALIES": "\n".join(self.anomalies),
        }


def _campaign_line(c: CampaignFigures) -> str:
    ctr = f"{c.ctr:.2f}%" if c.ctr is not None else "—"
    cpl = f"{c.cpl:.2f} €" if c.cpl is not None else "—"
    return f"{c.name}: CTR {ctr}, CPL {cpl}, gasto {c.spend:.2f} € ({c.period_start} – {c.period_end})"


@dataclass
class DayFigures:
    """Everything the day's digests are made of, read once for every recipient."""

    day: dt.date
    totals: dict[str, dict[int, tuple[int, int]]] = field(default_factory=dict)  # dimension → key → (leads, consented)
    by_campus: list[dict[str, Any]] = field(default_factory=list)
    names: dict[str, dict[int, str]] = field(default_factory=dict)  # "course"/"campaign"/"campus" → id → label
    campaigns: dict[int, CampaignFigures] = field(default_factory=dict)
    anomalies: list[tuple[int, str]] = field(default_factory=list)  # (campaign id, message)

    def for_all(self) -> Digest:
        """Marketing's digest: every campus (``lead_rollups``), every campaign synced, every anomaly."""
        leads, consented = self.totals.get("total", {}).get(0, (0, 0))
        return Digest(self.day, "Todos los centros", leads, consented,
                      self._counts("course", {k: v[0] for k, v in self.totals.get("course", {}).items()}),
                      self._counts("campaign", {k: v[0] for k, v in self.totals.get("campaign", {}).items()}),
                      list(self.campaigns.values()), [message for _, message in self.anomalies])

    def for_campus(self, campus_id: int) -> Digest:
        """An advisor's digest: the campus's leads, and the campaigns that brought it leads that day."""
        rows = [r for r in self.by_campus if r["campus_id"] == campus_id]
        courses = {r["key_id"]: r["leads"] for r in rows if r["dimension"] == "course"}
        campaigns = {r["key_id"]: r["leads"] for r in rows if r["dimension"] == "campaign"}
        consented = sum(r["consented"] for r in rows if r["dimension"] == "course")
        mine = set(campaigns) - {0}
        return Digest(self.day, self.names.get("campus", {}).get(campus_id, TELEMATICO), sum(courses.values()),
                      consented, self._counts("course", courses), self._counts("campaign", campaigns),
                      [c for k, c in self.campaigns.items() if k in mine],
                      [message for k, message in self.anomalies if k in mine])

    def _counts(self, dimension: str, leads: dict[int, int]) -> list[Count]:
        none = NO_COURSE if dimension == "course" else NO_CAMPAIGN
        names = self.names.get(dimension, {})
        counts = [Count(k, names.get(k, f"#{k}") if k else none, n) for k, n in leads.items()]
        return sorted(counts, key=lambda c: (-c.leads, c.label))


@dataclass(frozen=True)
class Recipient:
    """Who gets a digest: ``step`` names its send in the effects ledger (``marketing``, ``campus:<id>``)."""

    step: str
    email: str
    name: str
    campus_id: int | None


def recipients(conn: psycopg.Connection[Any], marketing_email: str | None) -> list[Recipient]:
    """Each campus with an advisor email, then marketing (when its address is set)."""
    cursor = conn.cursor(row_factory=dict_row)
    rows = cursor.execute("SELECT id, name, advisor_email FROM campuses WHERE coalesce(advisor_email, '') <> ''"
                          " ORDER BY id").fetchall()
    found = [Recipient(f"campus:{r['id']}", r["advisor_email"].strip(), r["name"], r["id"]) for r in rows]
    if marketing_email:
        found.append(Recipient("marketing", marketing_email, "Marketing", None))
    return found


CAMPAIGN_FIGURES = (
    # The longest period ending that day: the scheduled sync's (the campaign's life so far), its last run that day.
    "SELECT DISTINCT ON (m.campaign_id) m.campaign_id, c.name, m.period_start, m.period_end, m.ctr, m.cpl, m.spend"
    " FROM campaign_metrics m JOIN campaigns c ON c.id = m.campaign_id WHERE m.period_end = %s"
    " ORDER BY m.campaign_id, m.period_start")
ANOMALIES = (
    # The last alert of each kind per campaign (campaign.sync runs every 6 hours and may alert each time).
    "SELECT DISTINCT ON (campaign_id, kind) campaign_id, severity, message FROM campaign_anomalies"
    " WHERE alerted_at >= %s AND alerted_at < %s ORDER BY campaign_id, kind, alerted_at DESC")
TOTALS = ("SELECT dimension, key_id, leads, consented FROM lead_rollups WHERE granularity = 'daily'"
          " AND dimension = ANY(%s) AND period_start = %s")


def read_day(conn: psycopg.Connection[Any], day: dt.date) -> DayFigures:
    """The day's figures for every recipient: a few index lookups, whatever the number of leads."""
    cursor = conn.cursor(row_factory=dict_row)
    figures = DayFigures(day)
    for row in cursor.execute(TOTALS, (["total", "course", "campaign"], day)).fetchall():
        figures.totals.setdefault(row["dimension"], {})[row["key_id"]] = (row["leads"], row["consented"])
    figures.by_campus = campus_rollups.read_period(conn, "daily", day)
    for row in cursor.execute(CAMPAIGN_FIGURES, (day,)).fetchall():
        figures.campaigns[row["campaign_id"]] = CampaignFigures(
            row["campaign_id"], row["name"], row["period_start"], row["period_end"],
            None if row["ctr"] is None else float(row["ctr"]), None if row["cpl"] is None else float(row["cpl"]),
            float(row["spend"]))
    bounds = (_midnight(day), _midnight(day + dt.timedelta(days=1)))
    figures.anomalies = [(r["campaign_id"], f"{r['severity'].upper()}: {r['message']}")
                         for r in cursor.execute(ANOMALIES, bounds).fetchall()]
    figures.names = _names(cursor, figures)
    return figures


def _names(cursor: psycopg.Cursor[Any], figures: DayFigures) -> dict[str, dict[int, str]]:
    """Course titles, campaign and campus names of the keys in the figures (by primary key)."""
    keys: dict[str, set[int]] = {"course": set(figures.totals.get("course", {})),
                                 "campaign": set(figures.totals.get("campaign", {}))}
    for row in figures.by_campus:
        keys[row["dimension"]].add(row["key_id"])
    courses = cursor.execute("SELECT id, title AS label FROM courses WHERE id = ANY(%s)",
                             (sorted(keys["course"] - {0}),)).fetchall()
    campaigns = cursor.execute("SELECT id, name AS label FROM campaigns WHERE id = ANY(%s)",
                               (sorted(keys["campaign"] - {0}),)).fetchall()
    campuses = cursor.execute("SELECT id, name AS label FROM campuses").fetchall()  # a handful of rows
    return {name: {r["id"]: r["label"] for r in rows}
            for name, rows in (("course", courses), ("campaign", campaigns), ("campus", campuses))}
