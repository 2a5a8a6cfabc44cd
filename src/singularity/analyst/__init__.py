"""Plain-language explanations and self-contained HTML reports."""
