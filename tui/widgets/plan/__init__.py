"""The plan region of the review app."""
