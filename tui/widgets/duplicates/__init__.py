"""The duplicates region of the review app."""
