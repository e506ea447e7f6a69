"""Widgets of the review app, one folder per screen region."""
