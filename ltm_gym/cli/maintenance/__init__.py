"""Maintenance commands of the package's shipped artifacts: the default study and the book text."""
