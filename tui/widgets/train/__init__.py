"""The train region of the review app."""
