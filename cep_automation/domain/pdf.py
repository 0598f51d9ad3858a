"""Text and tables from a course PDF, with clear errors for files that are not readable PDFs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cep_automation.errors import PermanentError

if TYPE_CHECKING:
    from pdfplumber.pdf import PDF  # at run time pdfplumber is imported on first use (llm pool only)

MAX_PAGES = 200
MAX_CHARS = 120_000  # what is sent to the model; beyond this the text is cut


@dataclass(frozen=True)
class ParsedPDF:
    """The document's text (tables as pipe-separated rows after each page's text)."""

    pages: int
    text: str
    tables: int


def _table_text(table: list[list[str | None]]) -> str:
    return "\n".join(" | ".join(cell or "" for cell in row) for row in table)


def parse_pdf(path: str | Path, max_pages: int = MAX_PAGES) -> ParsedPDF:
    """Read up to ``max_pages`` pages; raise :class:`PermanentError` for a missing, broken or encrypted file."""
    import pdfplumber
    from pdfminer.pdfdocument import PDFEncryptionError, PDFPasswordIncorrect
    from pdfminer.pdfparser import PDFSyntaxError
    from pdfplumber.utils.exceptions import PdfminerException

    path = Path(path)
    if not path.is_file():
        raise PermanentError(f"PDF file not found: {path}")
    try:
        with pdfplumber.open(path) as pdf:
            if len(pdf.pages) > max_pages:
                raise PermanentError(f"PDF has {len(pdf.pages)} pages; at most {max_pages} are accepted")
            return _read(pdf)
    except PermanentError:
        raise
    except (PdfminerException, PDFEncryptionError, PDFPasswordIncorrect, PDFSyntaxError, ValueError, KeyError,
            TypeError) as exc:
        cause = exc.args[0] if isinstance(exc, PdfminerException) and exc.args else exc
        if isinstance(cause, (PDFEncryptionError, PDFPasswordIncorrect)):
            raise PermanentError("PDF is encrypted (password protected); upload an unprotected copy") from None
        raise PermanentError(f"file is not a readable PDF ({type(cause).__name__}: {cause})") from None


def _read(pdf: PDF) -> ParsedPDF:
    parts, tables = [], 0
    for page in pdf.pages:
        parts.append(page.extract_text() or "")
        for table in page.extract_tables():
            parts.append(_table_text(table))
            tables += 1
        page.close()  # keeps memory flat on long documents
    text = "\n\n".join(p for p in parts if p.strip())
    if not text.strip():
        raise PermanentError("PDF has no extractable text (a scanned document?); upload a text PDF")
    return ParsedPDF(pages=len(pdf.pages), text=text[:MAX_CHARS], tables=tables)
