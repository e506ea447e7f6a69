"""The overview region of the review app."""
