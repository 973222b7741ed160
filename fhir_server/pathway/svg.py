"""The program figure as SVG: confirmed vs. not confirmed, the program and each team.

Hand-written SVG (no plotting library): one row per column of the report, two bars each,
every text escaped so that team names can never break the XML.
"""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

from fhir_server.pathway.report import Figures, Report

_CONFIRMED = "#c0392b"
_NOT_CONFIRMED = "#2e86c1"
_LABEL_WIDTH = 290
_BAR_WIDTH = 420
_ROW = 34
_TOP = 78


def program_svg(report: Report) -> str:
    """Horizontal 100 % bars (share of decided cases), so that small teams stay readable."""
    rows: list[tuple[str, Figures]] = [("Program (all teams)", report.overall)]
    rows += [
        (f"{team} {_short(name)}" if name != team else team, f)
        for team, (name, f) in report.teams.items()
    ]
    width = _LABEL_WIDTH + _BAR_WIDTH + 120
    height = _TOP + _ROW * len(rows) + 20
    period = _period_text(report)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f"<title>{escape('Second-opinion verdicts: surgery confirmed vs. not confirmed')}</title>",
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        '<text x="10" y="22" font-size="16" font-weight="bold">'
        f"{escape('Second opinion on spine surgery: verdicts')}</text>",
        f'<text x="10" y="42">{escape(period)}</text>',
        _legend(10, 58),
    ]
    for index, (label, figures) in enumerate(rows):
        parts.append(_row(_TOP + index * _ROW, label, figures))
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _period_text(report: Report) -> str:
    start = report.period.start or report.first
    end = report.period.end or report.last
    span = f"{start} to {end}" if start and end else "no referrals"
    o = report.overall
    share = "n/a" if o.decided == 0 else f"{100 * o.confirmed / o.decided:.1f}%"
    return f"Receipt {span}; {o.participants} participants; confirmed {share} of decided cases"


def _legend(x: int, y: int) -> str:
    return (
        f'<rect x="{x}" y="{y - 10}" width="12" height="12" fill="{_CONFIRMED}"/>'
        f'<text x="{x + 18}" y="{y}">{escape("surgery confirmed")}</text>'
        f'<rect x="{x + 160}" y="{y - 10}" width="12" height="12" fill="{_NOT_CONFIRMED}"/>'
        f'<text x="{x + 178}" y="{y}">{escape("surgery not confirmed")}</text>'
    )


def _row(y: int, label: str, figures: Figures) -> str:
    """One 100 % bar split into confirmed and not confirmed, with counts and shares."""
    out = [f'<g><text x="10" y="{y + 17}">{escape(_clip(label))}</text>']
    decided = figures.decided
    if decided == 0:
        out.append(f'<text x="{_LABEL_WIDTH}" y="{y + 17}" fill="#777777">no verdicts</text>')
    x = float(_LABEL_WIDTH)
    for count, colour, name in (
        (figures.confirmed, _CONFIRMED, "confirmed"),
        (figures.not_confirmed, _NOT_CONFIRMED, "not confirmed"),
    ):
        if decided == 0 or count == 0:
            continue
        length = round(_BAR_WIDTH * count / decided, 1)
        share = f"{100 * count / decided:.1f}%"
        out.append(
            f'<rect x="{x}" y="{y + 4}" width="{length}" height="18" fill="{colour}" '
            f"data-series={quoteattr(name)}>"
            f"<title>{escape(f'{label}: {count} {name} ({share})')}</title></rect>"
        )
        if length >= 40:
            out.append(
                f'<text x="{x + 4}" y="{y + 17}" fill="#ffffff" font-size="11">'
                f"{count} ({escape(share)})</text>"
            )
        x += length
    out.append(f'<text x="{_LABEL_WIDTH + _BAR_WIDTH + 8}" y="{y + 17}">n = {decided}</text>')
    out.append("</g>")
    return "".join(out)


def _short(name: str) -> str:
    """The distinctive part of a team name: the clinic after the shared service title."""
    return name.rsplit(", ", 1)[-1]


def _clip(label: str, limit: int = 44) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "\u2026"
