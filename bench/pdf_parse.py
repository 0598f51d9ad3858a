"""``parse_pdf`` of a 200-page PDF whose first pages exceed ``MAX_CHARS``: all pages extracted (before) vs stopping
at the limit (now).

    python bench/pdf_parse.py [--rounds 3]

The PDF is the one ``tests/actors/test_llm_ingest.py`` builds (``make_long_pdf``, copied here): 200 A4 pages,
each with a 3 x 3 ruled table; "full" pages carry 60 lines of text (about 5,900 characters), so about 20 of
them reach the 120,000 characters sent to the model. Two documents: every page full (a long course PDF), and
the test's (25 full pages, then 175 one-line pages). "Before" is the old ``parse_pdf`` reproduced with
pdfplumber directly (every page's text and tables, joined, then cut); "now" is ``cep_automation.domain.pdf
.parse_pdf``. They alternate; each round checks both give the same text. Printed: wall and CPU seconds
(medians), the ratio, the date and the machine's load before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import machine_line  # noqa: E402


def make_long_pdf(path: Path, pages: int = 200, full_pages: int | None = None) -> Path:
    """Same as ``tests/actors/test_llm_ingest.py::make_long_pdf``."""
    from reportlab.lib.pagesizes import A4  # type: ignore[import-untyped]
    from reportlab.pdfgen import canvas  # type: ignore[import-untyped]

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


def parse_all_pages(path: Path) -> tuple[str, int, int]:
    """The old ``parse_pdf``: every page's text and tables, joined, then cut at ``MAX_CHARS``."""
    import pdfplumber

    from cep_automation.domain.pdf import MAX_CHARS

    parts, tables = [], 0
    with pdfplumber.open(path) as pdf:
        for page in pdf.pages:
            parts.append(page.extract_text() or "")
            for table in page.extract_tables():
                parts.append("\n".join(" | ".join(cell or "" for cell in row) for row in table))
                tables += 1
            page.close()
        pages = len(pdf.pages)
    return "\n\n".join(p for p in parts if p.strip())[:MAX_CHARS], pages, tables


def parse_now(path: Path) -> tuple[str, int, int]:
    from cep_automation.domain.pdf import parse_pdf

    parsed = parse_pdf(path)
    return parsed.text, parsed.pages_read, parsed.tables


def timed(fn: Callable[[Path], tuple[str, int, int]], path: Path) -> tuple[float, float, tuple[str, int, int]]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(path)
    return time.perf_counter() - wall, time.process_time() - cpu, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import pdfplumber

    load_before = machine_line()
    print(f"pdf_parse: {time.strftime('%Y-%m-%d %H:%M')}; Python {sys.version.split()[0]}, "
          f"pdfplumber {pdfplumber.__version__}; {load_before}", flush=True)
    with tempfile.TemporaryDirectory(prefix="cep-bench-pdf-") as folder:
        documents = {"every page full": make_long_pdf(Path(folder) / "full.pdf"),
                     "the test's (25 full pages)": make_long_pdf(Path(folder) / "test.pdf", full_pages=25)}
        parse_now(documents["every page full"])  # warm-up: imports
        for name, path in documents.items():
            figures: dict[str, list[tuple[float, float]]] = {"before": [], "now": []}
            for _ in range(args.rounds):
                before_wall, before_cpu, (before_text, pages, tables_all) = timed(parse_all_pages, path)
                now_wall, now_cpu, (now_text, pages_read, tables_read) = timed(parse_now, path)
                if now_text != before_text:
                    raise SystemExit(f"{name}: the text differs from the old parse_pdf's")
                figures["before"].append((before_wall, before_cpu))
                figures["now"].append((now_wall, now_cpu))
            (bw, bc), (nw, nc) = ([statistics.median(x[i] for x in figures[k]) for i in (0, 1)]
                                  for k in ("before", "now"))
            print(f"{name}: {len(before_text):,} characters (same text both ways); before: {pages} pages and "
                  f"{tables_all} tables read, {bw:.2f} s ({bc:.2f} s CPU); now: {pages_read} pages and {tables_read} "
                  f"tables read, {nw:.2f} s ({nc:.2f} s CPU); ratio before/now {bw / nw:.1f} (CPU {bc / nc:.1f}); "
                  f"{args.rounds} rounds, medians", flush=True)
    print(f"load after: {machine_line()}")


if __name__ == "__main__":
    main()
