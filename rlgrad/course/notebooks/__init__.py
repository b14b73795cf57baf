"""The course chapters: marimo notebooks, one per page of the course module E.3."""
