"""Text helpers every stage may use: charset decoding (charset.py) and language identification
(language.py: CLD2 for extract and ingest, langdetect for cleanup)."""
