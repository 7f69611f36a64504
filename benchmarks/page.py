"""Write one section of BENCHMARKS.md, leaving the other sections as they are."""

from __future__ import annotations

import platform
from pathlib import Path

import psutil

PAGE = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"
HEADER = (
    "# Benchmarks\n\n"
    "Figures written by the scripts in `benchmarks/`; each section names its script, "
    "the machine and the date of its run.\n"
)


def machine_line() -> str:
    return (
        f"{platform.processor() or platform.machine()}, {psutil.cpu_count(logical=True)} logical cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM, Python {platform.python_version()}"
    )


def write_section(name: str, body: str) -> Path:
    """Replace the section delimited by ``<!-- name:start -->`` and ``<!-- name:end -->``."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = PAGE.read_text(encoding="utf-8") if PAGE.exists() else HEADER
    block = f"{start}\n{body.strip()}\n{end}"
    if start in text and end in text:
        before = text.split(start, 1)[0]
        after = text.split(end, 1)[1]
        text = before + block + after
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    PAGE.write_text(text, encoding="utf-8")
    return PAGE
