"""The tags region of the review app."""
