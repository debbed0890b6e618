"""From a book to answers: load, chunk, index, retrieve, re-rank, read."""
