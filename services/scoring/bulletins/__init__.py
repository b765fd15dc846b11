"""Bulletins (通报) as the bureau issues them: composed from a ranking and the period's
incidents (``document``), as an XLSX workbook ready to print (``workbook``), as a
printable HTML page (``page``), and the ranking as CSV."""

from services.scoring.bulletins.document import Bulletin, compose, ranking_csv
from services.scoring.bulletins.page import bulletin_html
from services.scoring.bulletins.workbook import bulletin_xlsx

__all__ = ["Bulletin", "bulletin_html", "bulletin_xlsx", "compose", "ranking_csv"]
