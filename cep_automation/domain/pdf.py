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
    """The document's text (tables as pipe-separated rows after each page's text), cut at ``MAX_CHARS``.

    Extraction stops as soon as the text reaches ``MAX_CHARS``: the pages after that point are not read.

    Attributes:
      pages: the document's page count (all of them, read or not; at most ``max_pages``).
      text: the first ``MAX_CHARS`` characters of the document's text and tables.
      tables: the tables extracted, i.e. those on the pages read, up to the point where the text reached
        ``MAX_CHARS``; a table beyond the cut is not counted.
      pages_read: the pages whose text was extracted (``pages`` unless the limit was reached first; the last
        one read may be cut, and its tables after the limit are not read).
    """

    pages: int
    text: str
    tables: int
    pages_read: int


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
    """Text then tables of each page, until the text so far (parts joined by blank lines) reaches ``MAX_CHARS``.

    The result is the same as extracting every page and cutting the joined text: each part only appends to
    it, so once ``MAX_CHARS`` characters are there the rest cannot change them.
    """
    parts: list[str] = []
    length, tables, pages_read = 0, 0, 0

    def add(part: str) -> bool:
        """Keep a non-blank part; true once the text is long enough."""
        nonlocal length
        if part.strip():
            length += len(part) + (2 if parts else 0)  # "\n\n" between parts
            parts.append(part)
        return length >= MAX_CHARS

    for page in pdf.pages:
        pages_read += 1
        full = add(page.extract_text() or "")
        if not full:
            for table in page.extract_tables():
                tables += 1
                if full := add(_table_text(table)):
                    break
        page.close()  # keeps memory flat on long documents
        if full:
            break
    text = "\n\n".join(parts)
    if not text.strip():
        raise PermanentError("PDF has no extractable text (a scanned document?); upload a text PDF")
    return ParsedPDF(pages=len(pdf.pages), text=text[:MAX_CHARS], tables=tables, pages_read=pages_read)
