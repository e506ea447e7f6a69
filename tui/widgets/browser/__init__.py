"""The browser region of the review app."""
