"""Modal screens of the review app: help, caption editor, confirmations."""
