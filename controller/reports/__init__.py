"""Showing results: tables, HTML/Markdown/CSV/JSON reports, plots and exports to other tools."""
