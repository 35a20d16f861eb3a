"""The local backend: files on disk, a SQLite index, failures on the console and in a file."""
