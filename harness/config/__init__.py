"""Suite files: the typed suite model and the validation that names file and key."""
