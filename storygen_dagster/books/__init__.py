"""The finished book's files: the print PDF, the EPUB 3 and the PDF's preflight. Plain code
(no Dagster import): engine/print_books.py stores what these render."""
