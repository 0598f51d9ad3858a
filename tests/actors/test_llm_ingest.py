"""llm.ingest: PDFs made with reportlab, answers from a fake OpenAI-compatible server."""

from __future__ import annotations

import pdfplumber
import pytest
from reportlab.lib.pagesizes import A4
from reportlab.lib.pdfencrypt import StandardEncryption
from reportlab.pdfgen import canvas

from cep_automation.actors import llm_ingest
from cep_automation.domain.pdf import MAX_CHARS, parse_pdf
from cep_automation.errors import PermanentError
from cep_automation.records import job_state

COURSE = {"title": "Excel avanzado", "objectives": ["Tablas dinámicas", "Macros"], "modules": ["Fórmulas", "VBA"],
          "hours": 60, "modality": "telematico", "requirements": ["Nivel básico"], "offer_type": "desempleados"}
ADS = {"ads": [{"primary_text": "Curso gratuito de Excel avanzado para personas desempleadas. ¡Plazas limitadas!",
                "headline": "Excel avanzado gratis", "description": "100% subvencionado"}]}


def make_pdf(path, pages=2, encrypt=False):
    c = canvas.Canvas(str(path), pagesize=A4, encrypt=StandardEncryption("secreto") if encrypt else None)
    for n in range(pages):
        c.drawString(72, 800, f"Curso de Excel avanzado — página {n + 1}")
        c.drawString(72, 780, "Duración: 60 horas. Modalidad: teleformación. Dirigido a desempleados.")
        c.showPage()
    c.save()
    return path


def make_long_pdf(path, pages=200, full_pages=None):
    """``full_pages`` pages (default all) of 60 lines (about 5,900 characters), the others one line; every page
    has a 3 x 3 ruled table. The same document as ``bench/pdf_parse.py`` builds."""
    full_pages = pages if full_pages is None else full_pages
    c = canvas.Canvas(str(path), pagesize=A4)
    for p in range(1, pages + 1):
        c.setFont("Helvetica", 8)
        for line in range(60 if p <= full_pages else 1):
            c.drawString(60, 800 - 10 * line, f"Página {p}, línea {line + 1}: módulo {line % 7 + 1} — fórmulas, "
                         f"tablas dinámicas, macros y VBA en Excel avanzado ({p * 100 + line}).")
        c.grid([60, 200, 340, 480], [180, 160, 140, 120])
        for row, y in enumerate((166, 146, 126)):
            for col, x in enumerate((66, 206, 346)):
                c.drawString(x, y, f"p{p} fila {row + 1} col {col + 1}")
        c.showPage()
    c.save()
    return path


def add_upload(db, path):
    return db.execute("INSERT INTO uploads (filename, file_path) VALUES ('curso.pdf', %s) RETURNING id::text",
                      (str(path),)).fetchone()["id"]


class Answers:
    """Scripts the fake model's two answers: course data, then ad copy."""

    def __init__(self, openai, *contents):
        self.openai, self.contents = openai, list(contents)
        original = openai.handle

        def handle(request):
            if request.path.endswith("/chat/completions") and self.contents:
                openai.content = self.contents.pop(0)
            return original(request)

        openai.handle = handle


def upload_row(db, upload_id):
    return db.execute("SELECT * FROM uploads WHERE id = %s", (upload_id,)).fetchone()


def test_ingest_stores_course_data_ads_tokens_and_cost(db, sandbox, tmp_path, stub_broker, stub_worker):
    Answers(sandbox.openai, COURSE, ADS)
    upload_id = add_upload(db, make_pdf(tmp_path / "curso.pdf"))
    message = llm_ingest.send(upload_id=upload_id, model="gpt-4")
    stub_broker.join("llm")
    stub_worker.join()
    row = upload_row(db, upload_id)
    assert row["status"] == "completed" and row["error"] is None
    assert row["result"]["course"]["title"] == "Excel avanzado" and len(row["result"]["ads"]) == 1
    assert row["tokens_used"] > 0 and row["model"] == "gpt-4"
    assert job_state.get_job(message.message_id).progress == 100
    prompts = [r["messages"][-1]["content"] for r in sandbox.openai.chat_requests]
    assert "Curso de Excel avanzado" in prompts[0] and "Excel avanzado" in prompts[1]


@pytest.mark.parametrize("ads, problem", [
    ({"ads": [{**ADS["ads"][0], "headline": "x" * 41}]}, "at most 40 characters"),
    ({"ads": [{**ADS["ads"][0], "description": "Llama al 600123456"}]}, "personal data"),
    ({"ads": [{**ADS["ads"][0], "primary_text": "Escribe a info@cep.es"}]}, "personal data"),
])
def test_invalid_ad_copy_fails_the_upload(db, sandbox, tmp_path, ads, problem):
    Answers(sandbox.openai, COURSE, ads)
    upload_id = add_upload(db, make_pdf(tmp_path / "curso.pdf"))
    with pytest.raises(PermanentError, match=problem):
        llm_ingest(upload_id=upload_id)
    row = upload_row(db, upload_id)
    assert row["status"] == "failed" and problem in row["error"]


def test_answer_that_is_not_json(db, sandbox, tmp_path):
    Answers(sandbox.openai, "Claro, aquí tienes: {title: Excel")
    upload_id = add_upload(db, make_pdf(tmp_path / "curso.pdf"))
    with pytest.raises(PermanentError, match="not valid JSON"):
        llm_ingest(upload_id=upload_id)
    assert "not valid JSON" in upload_row(db, upload_id)["error"]


def test_missing_course_fields_are_named(db, sandbox, tmp_path):
    Answers(sandbox.openai, {"title": "Excel"})
    upload_id = add_upload(db, make_pdf(tmp_path / "curso.pdf"))
    with pytest.raises(PermanentError) as error:
        llm_ingest(upload_id=upload_id)
    for field in ("objectives", "modules", "hours", "modality", "offer_type"):
        assert field in str(error.value)


@pytest.mark.parametrize("kind, message", [
    ("encrypted", "PDF is encrypted"),
    ("garbage", "not a readable PDF"),
    ("missing", "PDF file not found"),
])
def test_bad_pdfs_give_a_clear_error_on_the_upload(db, sandbox, tmp_path, kind, message):
    path = tmp_path / "curso.pdf"
    if kind == "encrypted":
        make_pdf(path, encrypt=True)
    elif kind == "garbage":
        path.write_bytes(b"%PDF-1.7\nthis is not really a pdf")
    upload_id = add_upload(db, path)
    with pytest.raises(PermanentError, match=message):
        llm_ingest(upload_id=upload_id)
    row = upload_row(db, upload_id)
    assert row["status"] == "failed" and message in row["error"]
    assert sandbox.openai.chat_requests == []  # nothing was sent to the model


def test_too_many_pages_is_refused(tmp_path):
    with pytest.raises(PermanentError, match="at most 3 are accepted"):
        parse_pdf(make_pdf(tmp_path / "long.pdf", pages=4), max_pages=3)


def test_two_hundred_pages_parse(tmp_path):
    parsed = parse_pdf(make_pdf(tmp_path / "long.pdf", pages=200))
    assert parsed.pages == parsed.pages_read == 200 and "página 200" in parsed.text


def test_extraction_stops_at_the_character_limit_with_the_same_text(tmp_path):
    """The first 25 pages alone exceed MAX_CHARS (the 175 short ones after them keep the reference cheap)."""
    path = make_long_pdf(tmp_path / "long.pdf", pages=200, full_pages=25)
    # What parse_pdf returned before it stopped early: every page's text and tables, joined, then cut.
    parts, tables, tables_before, crossed = [], 0, [], []
    with pdfplumber.open(path) as pdf:
        for page in pdf.pages:
            tables_before.append(tables)  # tables on the pages before this one
            parts.append(page.extract_text() or "")
            for table in page.extract_tables():
                parts.append("\n".join(" | ".join(cell or "" for cell in row) for row in table))
                tables += 1
            page.close()
            crossed.append(len("\n\n".join(p for p in parts if p.strip())) >= MAX_CHARS)
    before = "\n\n".join(p for p in parts if p.strip())
    assert tables == 200 and len(before) > MAX_CHARS + 10_000

    parsed = parse_pdf(path)
    assert parsed.text == before[:MAX_CHARS] and len(parsed.text) == MAX_CHARS
    assert parsed.pages == 200
    assert parsed.pages_read == crossed.index(True) + 1 < 25  # the page whose content crossed the limit
    assert tables_before[parsed.pages_read - 1] <= parsed.tables <= tables_before[parsed.pages_read - 1] + 1


def test_rate_limited_model_retries_then_fails_the_upload_on_the_last_attempt(db, sandbox, tmp_path, stub_broker,
                                                                              stub_worker):
    sandbox.openai.fail_with("rate_limit_exceeded", retry_after="0", times=3)
    upload_id = add_upload(db, make_pdf(tmp_path / "curso.pdf"))
    llm_ingest.send(upload_id=upload_id)
    stub_broker.join("llm", fail_fast=False)
    stub_worker.join()
    row = upload_row(db, upload_id)
    assert row["status"] == "failed" and "rate" in row["error"].lower()
    assert len(sandbox.openai.chat_requests) == 3
