"""What Traxo serves as HTML: the status page (Jinja2 templates, its stylesheet)."""
