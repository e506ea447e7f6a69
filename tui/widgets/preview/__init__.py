"""The preview region of the review app."""
