"""dreamcurate's Textual front end: it composes and routes, and owns no logic of its own."""
