"""The `traxo` command: serving, migrating, operators' commands and `traxo dev`."""
