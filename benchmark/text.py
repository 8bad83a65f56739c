"""Text from dataset files and archive members, decoded as UTF-8 with one clear line when it is not.

A leading byte-order mark is dropped (utf-8-sig): editors on Windows write one, and left in place it would
become part of the first class name or caption, a silent change of the prompts.
"""

from __future__ import annotations

from pathlib import Path

from .errors import ClipbenchError


def decode(data: bytes, where: str) -> str:
    """`data` as text; `where` names the file (and member or sample) in the error."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ClipbenchError(
            f"{where} is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}); save it as UTF-8"
        ) from None


def read_text(path: Path | str, where: str | None = None) -> str:
    return decode(Path(path).read_bytes(), where or str(path))


def printable(name: str) -> str:
    """A file or folder name as the OS gave it, with bytes that are not UTF-8 shown as \\xNN (a name holding
    them cannot be printed, written to a result file, or hashed as text)."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def check_name(name: str, where: str) -> None:
    """Refuse a file or folder name that is not UTF-8 (Python hands such names over with surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise ClipbenchError(f"{where}: the name '{printable(name)}' is not UTF-8; rename it in UTF-8") from None
